import Foundation
import RoutingService
import TestSupport

/// Pieces every test gateway's configuration shares.
enum TestConfiguration {
    /// The `listen:` and `admin:` sections on loopback, at column 0 (interpolate at the start of a line).
    static func listenAndAdmin(http: Int, https: Int, admin: Int, token: String) -> String {
        """
        listen:
          https: 127.0.0.1:\(https)
          http: 127.0.0.1:\(http)
        admin:
          listen: 127.0.0.1:\(admin)
          tokenFile: \(token)
        """
    }
}

/// A certificate store directory holding one manually installed certificate for `names`, issued by a
/// throwaway CA; `remove()` deletes both.
struct ManualCertificateStore {
    let authority: TestCertificateAuthority
    let directory: String
    var caPath: String { authority.caCertificatePath }

    init(names: [String]) throws {
        authority = try TestCertificateAuthority()
        let leaf = try authority.issue(names)
        directory = authority.directory.appendingPathComponent("store").path
        _ = try CertificateStore(directory: directory).store(
            chainPEM: Array(try String(contentsOfFile: leaf.chainPath, encoding: .utf8).utf8),
            keyPEM: Array(try String(contentsOfFile: leaf.keyPath, encoding: .utf8).utf8),
            source: .manual
        )
    }

    func remove() {
        try? FileManager.default.removeItem(at: authority.directory)
    }
}
