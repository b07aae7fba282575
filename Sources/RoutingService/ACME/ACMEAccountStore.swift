import Foundation

/// The ACME account key, kept in the certificate directory's hidden `.acme/` folder (the store never
/// loads hidden folders as certificates): `account.key` (PKCS#8 PEM, 0600), written atomically. Made
/// on first use; a restart reuses it, so the CA sees the same account.
public struct ACMEAccountStore: Sendable {
    public let folder: String

    public init(certificateDirectory: String) {
        folder = "\(certificateDirectory)/.acme"
    }

    public var keyPath: String { "\(folder)/account.key" }

    public func loadOrCreateKey() throws -> P256PrivateKey {
        if FileManager.default.fileExists(atPath: keyPath) {
            guard let pem = FileManager.default.contents(atPath: keyPath) else {
                throw ACMEError(.accountStorage, "\(keyPath) cannot be read (check its permissions)")
            }
            do {
                return try P256PrivateKey(pem: Array(pem))
            } catch {
                throw ACMEError(.accountStorage, "\(keyPath) is not an EC P-256 private key: \(error)")
            }
        }
        do {
            let key = try P256PrivateKey.generate()
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]
            )
            try AtomicFile.write(key.pem, to: keyPath, permissions: 0o600)
            return key
        } catch let error as ACMEError {
            throw error
        } catch {
            throw ACMEError(.accountStorage, "cannot create the ACME account key at \(keyPath): \(error)")
        }
    }
}
