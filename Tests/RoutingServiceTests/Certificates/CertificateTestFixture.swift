import Foundation
import RoutingService
import TestSupport

/// A throwaway CA plus an empty temporary certificate directory, both deleted when the fixture goes.
final class CertificateTestFixture {
    let authority: TestCertificateAuthority
    let directory: String

    init() throws {
        authority = try TestCertificateAuthority()
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("edge-router-store-\(UUID().uuidString)").path
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func store(now: @escaping @Sendable () -> Date = { Date() }) -> CertificateStore {
        CertificateStore(directory: directory, now: now)
    }

    /// Chain PEM (leaf then CA) and key PEM of a new leaf for `names`.
    func issue(_ names: [String], days: Int = 30) throws -> (chain: [UInt8], key: [UInt8], leaf: TestCertificateAuthority.Leaf) {
        let leaf = try authority.issue(names, days: days, file: "\(names[0].replacingOccurrences(of: "*", with: "_wildcard"))-\(UUID().uuidString)")
        return (try Self.read(leaf.chainPath), try Self.read(leaf.keyPath), leaf)
    }

    static func read(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func mode(of path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }
}
