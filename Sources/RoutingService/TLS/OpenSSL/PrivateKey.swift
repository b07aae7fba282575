internal import COpenSSL

/// A private key for a served certificate: EC or RSA, unencrypted PEM (PKCS#8 or the traditional
/// `EC PRIVATE KEY`/`RSA PRIVATE KEY` forms). Owns its `EVP_PKEY*`.
public final class PrivateKey: @unchecked Sendable {
    public enum Algorithm: String, Sendable, Hashable {
        case ec = "EC"
        case rsa = "RSA"
    }

    public let algorithm: Algorithm
    /// Key size in bits (256 for P-256, 2048 for RSA-2048).
    public let bits: Int
    /// The key re-encoded as unencrypted PKCS#8 PEM.
    public let pem: [UInt8]

    /// The owned `EVP_PKEY*`, for building TLS contexts in this folder only: it must not leave `TLS/OpenSSL/`.
    let evpKey: OpaquePointer

    /// Parses the first private key in `pem`; other blocks (certificates) are skipped.
    public init(pem bytes: [UInt8]) throws {
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.contains("PRIVATE KEY-----") else {
            throw X509Error(.noPrivateKeyInPEM, "no private key in the PEM (expected a -----BEGIN PRIVATE KEY----- block)")
        }
        // Checked before parsing: OpenSSL would otherwise ask for a passphrase, and a gateway starting
        // unattended has none to give.
        guard !text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----"), !text.contains("Proc-Type: 4,ENCRYPTED") else {
            throw X509Error(
                .encryptedPrivateKey,
                "the private key is encrypted; store it unencrypted (e.g. `openssl pkey -in KEY -out PLAIN`)"
            )
        }
        X509ErrorQueue.clear()
        let parsed = try PEMBIO.reading(bytes) { bio in
            // The callback refuses any passphrase request, so OpenSSL never prompts on the terminal.
            PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in 0 }, nil)
        }
        guard let parsed else {
            throw X509Error.draining(.malformedPrivateKeyPEM, "the private key PEM cannot be read")
        }
        evpKey = parsed
        do {
            switch EVP_PKEY_get_base_id(parsed) {
            case EVP_PKEY_EC: algorithm = .ec
            case EVP_PKEY_RSA: algorithm = .rsa
            case let other:
                let name = OBJ_nid2sn(other).map { String(cString: $0) } ?? "NID \(other)"
                throw X509Error(.unsupportedKeyType, "unsupported private key type \(name): use an EC or RSA key")
            }
            bits = Int(EVP_PKEY_get_bits(parsed))
            pem = try PEMBIO.writing("the private key") { PEM_write_bio_PrivateKey($0, parsed, nil, nil, 0, nil, nil) }
        } catch {
            EVP_PKEY_free(parsed)
            throw error
        }
    }

    deinit {
        EVP_PKEY_free(evpKey)
    }

    /// True when this is the private half of `certificate`'s public key.
    public func matches(_ certificate: X509Certificate) -> Bool {
        X509ErrorQueue.clear()
        let result = X509_check_private_key(certificate.x509, evpKey)
        X509ErrorQueue.clear()
        return result == 1
    }
}
