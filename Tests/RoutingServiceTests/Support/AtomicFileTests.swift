import Foundation
import RoutingService
import Testing

@Suite struct AtomicFileTests {
    @Test func writesAndReplacesWithRequestedPermissions() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/key.pem"

        try AtomicFile.write(Array("first".utf8), to: path, permissions: 0o600)
        #expect(FileManager.default.contents(atPath: path) == Data("first".utf8))
        #expect(try Self.mode(of: path) == 0o600)

        try AtomicFile.write(Array("second, longer".utf8), to: path, permissions: 0o644)
        #expect(FileManager.default.contents(atPath: path) == Data("second, longer".utf8))
        #expect(try Self.mode(of: path) == 0o644)
        // Nothing left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["key.pem"])
    }

    @Test func crashBeforeRenameKeepsThePreviousContents() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/cert.pem"
        try AtomicFile.write(Array("previous".utf8), to: path)

        let error = try #require(throws: AtomicFileError.self) {
            try AtomicFile._testOnly_writeCrashingBeforeRename(Array("next".utf8), to: path, permissions: 0o600)
        }
        #expect(error.isSimulatedCrash)
        #expect(FileManager.default.contents(atPath: path) == Data("previous".utf8))
        // The temporary file is what a crash leaves: hidden, complete, with the final permissions already.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0 != "cert.pem" }
        #expect(leftovers.count == 1)
        let leftover = try #require(leftovers.first)
        #expect(leftover.hasPrefix(".cert.pem.tmp-"))
        #expect(FileManager.default.contents(atPath: "\(directory)/\(leftover)") == Data("next".utf8))
        #expect(try Self.mode(of: "\(directory)/\(leftover)") == 0o600)
    }

    @Test func failureNamesThePathAndCause() throws {
        let error = try #require(throws: AtomicFileError.self) {
            try AtomicFile.write(Array("x".utf8), to: "/nonexistent-edge-router-dir/file")
        }
        #expect(!error.isSimulatedCrash)
        #expect(error.description.contains("/nonexistent-edge-router-dir"))
        #expect(error.description.contains("No such file or directory"))
    }

    static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("edge-router-atomic-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func mode(of path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }
}
