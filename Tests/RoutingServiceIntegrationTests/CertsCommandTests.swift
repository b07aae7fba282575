import Foundation
import TestSupport
import Testing

/// `edge-router certs import|list` run as the built binary, the way an operator runs it.
@Suite struct CertsCommandTests {
    static let binary = CheckCommandTests.binary.path

    static let scripts = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts").path

    struct Result {
        var status: Int32
        var standardOutput: String
        var standardError: String
    }

    /// Runs a tool to completion in `directory`, with stdout and stderr kept apart (in files, so neither
    /// pipe can fill up and block the child).
    static func run(_ executable: String, _ arguments: [String], in directory: String) throws -> Result {
        let capture = FileManager.default.temporaryDirectory.appendingPathComponent("edge-router-run-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: capture + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: capture + ".err", contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: capture + ".out")
            try? FileManager.default.removeItem(atPath: capture + ".err")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: capture + ".out"))
        let error = try FileHandle(forWritingTo: URL(fileURLWithPath: capture + ".err"))
        defer {
            try? output.close()
            try? error.close()
        }
        process.standardOutput = output
        process.standardError = error
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus,
            standardOutput: (try? String(contentsOfFile: capture + ".out", encoding: .utf8)) ?? "",
            standardError: (try? String(contentsOfFile: capture + ".err", encoding: .utf8)) ?? ""
        )
    }

    func makeWorkspace() throws -> String {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build first: \(Self.binary) is missing")
        let workspace = FileManager.default.temporaryDirectory.appendingPathComponent("edge-router-certs-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: workspace + "/Configs", withIntermediateDirectories: true)
        try "certificates:\n  directory: store/certs\n".write(toFile: workspace + "/Configs/gateway.yaml", atomically: true, encoding: .utf8)
        return workspace
    }

    @Test func importThenList() throws {
        let workspace = try makeWorkspace()
        defer { try? FileManager.default.removeItem(atPath: workspace) }
        let authority = try TestCertificateAuthority()
        let leaf = try authority.issue(["app.example.com", "*.app.example.com"])

        let imported = try Self.run(Self.binary, [
            "certs", "import", "--config", "Configs/gateway.yaml", "--cert", leaf.chainPath, "--key", leaf.keyPath,
        ], in: workspace)
        #expect(imported.status == 0, "\(imported.standardError)")
        #expect(imported.standardOutput.contains("store/certs/app.example.com directly in the certificate store"))
        let folder = workspace + "/store/certs/app.example.com"
        #expect(FileManager.default.fileExists(atPath: folder + "/meta.json"))
        let keyMode = (try FileManager.default.attributesOfItem(atPath: folder + "/key.pem")[.posixPermissions] as? NSNumber)?.intValue
        #expect(keyMode == 0o600)

        let listed = try Self.run(Self.binary, ["certs", "list", "--config", "Configs/gateway.yaml"], in: workspace)
        #expect(listed.status == 0, "\(listed.standardError)")
        let lines = listed.standardOutput.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(listed.standardOutput)")
        // No admin.tokenFile in that configuration: no gateway API can run, so the store is read directly.
        #expect(lines.first == "certificates directly in the certificate store \(workspace)/store/certs (Configs/gateway.yaml sets no admin.tokenFile, so no admin API runs)")
        let line = try #require(lines.last)
        #expect(line.hasPrefix("app.example.com,*.app.example.com"))
        #expect(line.contains("manual"))
        #expect(line.contains("CN=edge-router test CA"))
        #expect(line.contains("(in 29 days)") || line.contains("(in 30 days)"))
        #expect(line.hasSuffix("app.example.com"))
    }

    @Test func mismatchedKeyFailsWithAClearMessage() throws {
        let workspace = try makeWorkspace()
        defer { try? FileManager.default.removeItem(atPath: workspace) }
        let authority = try TestCertificateAuthority()
        let leaf = try authority.issue(["app.example.com"])
        let stranger = try authority.issue(["stranger.example.com"])

        let result = try Self.run(Self.binary, [
            "certs", "import", "--directory", "store", "--cert", leaf.chainPath, "--key", stranger.keyPath,
        ], in: workspace)
        #expect(result.status == 1)
        #expect(result.standardError.contains("the private key does not match the certificate (CN=app.example.com)"))
        #expect(!FileManager.default.fileExists(atPath: workspace + "/store/app.example.com"))

        let missingConfig = try Self.run(Self.binary, ["certs", "list", "--config", "nowhere.yaml"], in: workspace)
        #expect(missingConfig.status == 1)
        #expect(missingConfig.standardError.contains("cannot read the configuration file nowhere.yaml"))
    }

    @Test func listReportsABrokenFolderAndTheRest() throws {
        let workspace = try makeWorkspace()
        defer { try? FileManager.default.removeItem(atPath: workspace) }
        let dev = workspace + "/dev"
        let made = try Self.run("/bin/bash", [Self.scripts + "/dev-certs.sh", dev, "one.test", "*.one.test"], in: workspace)
        #expect(made.status == 0, "\(made.standardError)")
        let again = try Self.run("/bin/bash", [Self.scripts + "/dev-certs.sh", dev, "one.test", "*.one.test"], in: workspace)
        #expect(again.standardOutput.contains("up to date"))
        _ = try Self.run("/bin/bash", [Self.scripts + "/dev-certs.sh", dev, "two.test"], in: workspace)
        try "garbage".write(toFile: dev + "/certs/two.test/cert.pem", atomically: true, encoding: .utf8)

        let listed = try Self.run(Self.binary, ["certs", "list", "--directory", dev + "/certs"], in: workspace)
        #expect(listed.status == 0)
        #expect(listed.standardOutput.contains("one.test,*.one.test  manual  CN=edge-router dev CA"))
        #expect(listed.standardOutput.contains("FAILED  two.test: certificate chain: no certificate in the PEM"))
    }
}
