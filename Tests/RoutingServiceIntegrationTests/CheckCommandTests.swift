import Foundation
import Testing

/// Runs the built `edge-router check` binary (from `swift build --build-tests`) the way an operator would,
/// from the repository root, and checks exit codes and the exact output format.
@Suite(.timeLimit(.minutes(1))) struct CheckCommandTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// The debug build, or the binary named by `EDGE_ROUTER_BINARY` (CI also runs the end-to-end suites
    /// against the release build, where optimisation changes object lifetimes around C calls).
    static let binary = ProcessInfo.processInfo.environment["EDGE_ROUTER_BINARY"].map { URL(fileURLWithPath: $0) }
        ?? repositoryRoot.appendingPathComponent(".build/debug/edge-router")

    struct Outcome {
        let status: Int32
        let standardOutput: String
        let standardError: String
    }

    /// Runs to completion; the process is always waited for, so none outlives the test.
    static func check(_ arguments: [String], in directory: URL = repositoryRoot) throws -> Outcome {
        let process = Process()
        process.executableURL = binary
        process.arguments = ["check"] + arguments
        process.currentDirectoryURL = directory
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Both pipes are small here; reading one after the other cannot fill the second.
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus,
            standardOutput: String(decoding: outputData, as: UTF8.self),
            standardError: String(decoding: errorData, as: UTF8.self)
        )
    }

    @Test func demoConfigurationIsOK() throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.binary.path),
            "build first: swift build --build-tests"
        )
        // The demo's `ssl: manual` domains need their certificates in run/certs (relative to the working
        // directory), which the demo script makes; here a scratch directory gets them the same way.
        let scratch = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let config = Self.repositoryRoot.appendingPathComponent("Configs/demo.yaml").path

        let withoutCertificates = try Self.check(["--config", config], in: scratch)
        #expect(withoutCertificates.status == 1)
        #expect(withoutCertificates.standardError.contains("\(config):25: domains[0].ssl: ssl: manual needs a certificate"))
        #expect(withoutCertificates.standardError.contains("and there is none"))

        try Self.makeCertificates(in: scratch.appendingPathComponent("run"), names: ["app.demo.test", "*.demo.test"])
        let outcome = try Self.check(["--config", config], in: scratch)
        #expect(outcome.status == 0)
        #expect(outcome.standardOutput == "\(config): OK: 1 service, 3 instances, 3 domains, 0 public ports\n")
        #expect(outcome.standardError.isEmpty)
    }

    static func scratchDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("check-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// The dev-certificate script of the demo, writing `directory/certs/<folder>`.
    static func makeCertificates(in directory: URL, names: [String]) throws {
        let process = Process()
        process.executableURL = repositoryRoot.appendingPathComponent("scripts/dev-certs.sh")
        process.arguments = [directory.path] + names
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0)
    }

    @Test func exampleConfigurationIsOK() throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.binary.path),
            "build first: swift build --build-tests"
        )
        // The example's wildcard domain is `ssl: manual`: its certificate must be in `certs/`.
        let scratch = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: scratch) }
        try Self.makeCertificates(in: scratch, names: ["*.example.com"])
        let config = Self.repositoryRoot.appendingPathComponent("Configs/edge-router.example.yaml").path
        let outcome = try Self.check(["--config", config], in: scratch)
        #expect(outcome.status == 0, "\(outcome.standardError)")
        #expect(outcome.standardOutput == "\(config): OK: 1 service, 3 instances, 3 domains, 2 public ports\n")
    }

    @Test func brokenConfigurationListsEveryProblemOnStandardError() throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.binary.path),
            "build first: swift build --build-tests"
        )
        // In an empty working directory, so its two `ssl: manual` domains lack certificates for sure.
        let scratch = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let file = Self.repositoryRoot
            .appendingPathComponent("Tests/RoutingServiceTests/Fixtures/configs/broken/several-mistakes.yaml").path
        let outcome = try Self.check(["--config", file], in: scratch)
        #expect(outcome.status == 1)
        #expect(outcome.standardOutput.isEmpty)
        let lines = outcome.standardError.split(separator: "\n").map(String.init)
        #expect(lines.count == 13, "\(lines.joined(separator: "\n"))")
        #expect(lines.filter { $0.contains("and there is none") }.count == 2)
        for line in lines {
            // FILE:LINE: KEY: reason
            let parts = line.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
            #expect(parts.count == 4, "\(line)")
            #expect(parts.first.map(String.init) == file)
            #expect(Int(parts[1]) != nil, "\(line)")
            #expect(parts[2].hasPrefix(" ") && !parts[2].dropFirst().contains(" "), "\(line)")
            #expect(parts[3].hasPrefix(" ") && parts[3].count > 1, "\(line)")
        }
        #expect(
            lines.contains(
                "\(file):32: domains[2].ssl: ssl: auto cannot be used on the wildcard \"*.example.com\": wildcard names cannot use HTTP-01 (nor TLS-ALPN-01) validation; import a certificate and use ssl: manual"
            )
        )
        let lineNumbers = lines.compactMap { Int($0.split(separator: ":")[1]) }
        #expect(lineNumbers == lineNumbers.sorted())
    }

    @Test func missingFileFailsWithAProblemLine() throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.binary.path),
            "build first: swift build --build-tests"
        )
        let outcome = try Self.check(["--config", "Configs/does-not-exist.yaml"])
        #expect(outcome.status == 1)
        #expect(outcome.standardError == "Configs/does-not-exist.yaml:0: (file): cannot read the file: no such file\n")
    }
}
