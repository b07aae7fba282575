internal import COpenSSL

/// An ECDSA P-256 private key (`EVP_PKEY`): the ACME account key (JWS `ES256`) and the key of each
/// certificate ACME issues. Immutable once made; OpenSSL's signing with a shared key is thread-safe.
public final class P256PrivateKey: @unchecked Sendable {
    let key: OpaquePointer
    /// PKCS#8 PEM, unencrypted: what goes to `key.pem` / `account.key` (mode 0600).
    public let pem: [UInt8]
    /// The public point's affine coordinates, 32 bytes each (JWK `x` and `y`, RFC 7518 §6.2.1).
    public let publicX: [UInt8]
    public let publicY: [UInt8]

    /// A fresh key from OpenSSL's CSPRNG.
    public static func generate() throws(OpenSSLError) -> P256PrivateKey {
        OpenSSLError.clearErrorQueue()
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else {
            throw OpenSSLError.draining(.keyGenerationFailed, detail: "EVP_PKEY_CTX_new_from_name EC")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_CTX_set_group_name(context, "P-256") == 1 else {
            throw OpenSSLError.draining(.keyGenerationFailed, detail: "P-256 key generation setup")
        }
        var key: OpaquePointer?
        guard EVP_PKEY_generate(context, &key) == 1, let key else {
            throw OpenSSLError.draining(.keyGenerationFailed, detail: "EVP_PKEY_generate")
        }
        return try P256PrivateKey(taking: key)
    }

    /// Reads a stored key; anything but an unencrypted EC P-256 private key is refused.
    public convenience init(pem: [UInt8]) throws(OpenSSLError) {
        let parsed: PrivateKey
        do {
            parsed = try PrivateKey(pem: pem)
        } catch {
            throw OpenSSLError(code: .keyGenerationFailed, detail: "not a readable PEM private key: \(error)")
        }
        // Our own reference: `parsed` frees its one when it goes.
        EVP_PKEY_up_ref(parsed.evpKey)
        try self.init(taking: parsed.evpKey)
    }

    /// Takes ownership of `key` (freed in deinit, also when it is refused here).
    private init(taking key: OpaquePointer) throws(OpenSSLError) {
        self.key = key
        var groupName = [CChar](repeating: 0, count: 64)
        var groupLength = 0
        guard EVP_PKEY_get_base_id(key) == EVP_PKEY_EC,
            EVP_PKEY_get_group_name(key, &groupName, groupName.count, &groupLength) == 1,
            ["prime256v1", "P-256"].contains(
                String(decoding: groupName.prefix(groupLength).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            )
        else {
            EVP_PKEY_free(key)
            throw OpenSSLError(code: .keyGenerationFailed, detail: "the key is not an EC P-256 key")
        }
        // Uncompressed point: 0x04 || X || Y.
        var point = [UInt8](repeating: 0, count: 65)
        var pointLength = 0
        guard EVP_PKEY_get_octet_string_param(key, "encoded-pub-key", &point, point.count, &pointLength) == 1,
            pointLength == 65, point[0] == 0x04
        else {
            EVP_PKEY_free(key)
            throw OpenSSLError.draining(.keyGenerationFailed, detail: "cannot read the public point")
        }
        publicX = Array(point[1...32])
        publicY = Array(point[33...64])
        do {
            pem = try PEMBIO.writing("a private key") { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }
        } catch {
            EVP_PKEY_free(key)
            throw OpenSSLError.draining(.keyGenerationFailed, detail: "cannot encode the key as PEM")
        }
    }

    deinit {
        EVP_PKEY_free(key)
    }

    /// ES256 (RFC 7518 §3.4): ECDSA over SHA-256, as the 64-byte `r || s` a JWS carries (OpenSSL gives DER).
    public func signES256(_ message: [UInt8]) throws(OpenSSLError) -> [UInt8] {
        OpenSSLError.clearErrorQueue()
        guard let digestContext = EVP_MD_CTX_new() else {
            throw OpenSSLError.draining(.signingFailed, detail: "EVP_MD_CTX_new")
        }
        defer { EVP_MD_CTX_free(digestContext) }
        guard EVP_DigestSignInit(digestContext, nil, EVP_sha256(), nil, key) == 1 else {
            throw OpenSSLError.draining(.signingFailed, detail: "EVP_DigestSignInit")
        }
        var length = 0
        guard EVP_DigestSign(digestContext, nil, &length, message, message.count) == 1 else {
            throw OpenSSLError.draining(.signingFailed, detail: "signature length")
        }
        var der = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(digestContext, &der, &length, message, message.count) == 1 else {
            throw OpenSSLError.draining(.signingFailed, detail: "EVP_DigestSign")
        }
        return try Self.rawSignature(fromDER: Array(der.prefix(length)))
    }

    /// DER `ECDSA-Sig-Value` → `r || s`, each left-padded to 32 bytes.
    static func rawSignature(fromDER der: [UInt8]) throws(OpenSSLError) -> [UInt8] {
        let signature: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let signature else { throw OpenSSLError.draining(.signingFailed, detail: "cannot read the DER signature") }
        defer { ECDSA_SIG_free(signature) }
        var raw = [UInt8](repeating: 0, count: 64)
        let written = raw.withUnsafeMutableBufferPointer { buffer in
            BN_bn2binpad(ECDSA_SIG_get0_r(signature), buffer.baseAddress, 32)
                + BN_bn2binpad(ECDSA_SIG_get0_s(signature), buffer.baseAddress! + 32, 32)
        }
        guard written == 64 else { throw OpenSSLError(code: .signingFailed, detail: "signature component too long") }
        return raw
    }
}

/// SHA-256 through OpenSSL (JWK thumbprints, the TLS-ALPN-01 `acmeIdentifier`, the DNS-free HTTP-01 check).
public enum SHA256Digest {
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let succeeded = EVP_Digest(bytes, bytes.count, &digest, &length, EVP_sha256(), nil) == 1
        // SHA-256 of bytes in memory has no failure mode short of memory exhaustion.
        precondition(succeeded && length == 32, "EVP_Digest SHA-256 failed")
        return digest
    }
}
