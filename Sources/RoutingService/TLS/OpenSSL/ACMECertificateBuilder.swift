internal import COpenSSL

/// The two X.509 objects ACME needs built locally: the CSR sent to `finalize` (RFC 8555 §7.4) and the
/// self-signed TLS-ALPN-01 challenge certificate (RFC 8737 §3).
public enum ACMECertificateBuilder {
    /// A DER PKCS#10 request for `names` (all in the subjectAltName; the first as CN when it fits 64
    /// characters), signed by `key`.
    public static func certificateSigningRequestDER(names: [String], key: P256PrivateKey) throws(OpenSSLError) -> [UInt8] {
        guard !names.isEmpty else { throw OpenSSLError(code: .certificateBuildFailed, detail: "a CSR needs a name") }
        OpenSSLError.clearErrorQueue()
        guard let request = X509_REQ_new() else { throw OpenSSLError.draining(.certificateBuildFailed, detail: "X509_REQ_new") }
        defer { X509_REQ_free(request) }
        guard X509_REQ_set_version(request, 0) == 1 else {
            throw OpenSSLError.draining(.certificateBuildFailed, detail: "CSR version")
        }
        if names[0].utf8.count <= 64 {
            try addCommonName(names[0], to: X509_REQ_get_subject_name(request))
        }
        guard let alternativeNames = subjectAlternativeNameExtension(names) else {
            throw OpenSSLError.draining(.certificateBuildFailed, detail: "subjectAltName for \(names)")
        }
        defer { X509_EXTENSION_free(alternativeNames) }
        guard CO_X509_REQ_add_extension(request, alternativeNames) == 1,
            X509_REQ_set_pubkey(request, key.key) == 1,
            X509_REQ_sign(request, key.key, EVP_sha256()) > 0
        else { throw OpenSSLError.draining(.certificateBuildFailed, detail: "CSR signature") }
        let length = i2d_X509_REQ(request, nil)
        guard length > 0 else { throw OpenSSLError.draining(.certificateBuildFailed, detail: "CSR encoding") }
        var der = [UInt8](repeating: 0, count: Int(length))
        der.withUnsafeMutableBufferPointer { buffer in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            _ = i2d_X509_REQ(request, &cursor)
        }
        return der
    }

    /// The TLS-ALPN-01 certificate for `name`: self-signed by `key`, `name` as its only subjectAltName,
    /// and the critical `id-pe-acmeIdentifier` extension (1.3.6.1.5.5.7.1.31) holding the DER OCTET STRING
    /// of SHA-256(key authorization). Returned as a server context that only speaks `acme-tls/1`.
    public static func tlsALPN01Context(
        name: String,
        keyAuthorization: String,
        key: P256PrivateKey
    ) throws(OpenSSLError) -> OpenSSLServerContext {
        let certificatePEM = try tlsALPN01CertificatePEM(name: name, keyAuthorization: keyAuthorization, key: key)
        return try OpenSSLServerContext(
            certificateChainPEM: certificatePEM,
            privateKeyPEM: key.pem,
            alpnProtocols: [.acmeTLS1]
        )
    }

    static let acmeIdentifierOID = "1.3.6.1.5.5.7.1.31"

    public static func tlsALPN01CertificatePEM(
        name: String,
        keyAuthorization: String,
        key: P256PrivateKey
    ) throws(OpenSSLError) -> [UInt8] {
        OpenSSLError.clearErrorQueue()
        guard let certificate = X509_new() else { throw OpenSSLError.draining(.certificateBuildFailed, detail: "X509_new") }
        defer { X509_free(certificate) }
        guard X509_set_version(certificate, 2) == 1,
            ASN1_INTEGER_set(X509_get_serialNumber(certificate), Int.random(in: 1...Int(Int32.max))) == 1,
            X509_gmtime_adj(X509_getm_notBefore(certificate), -3600) != nil,
            X509_gmtime_adj(X509_getm_notAfter(certificate), 7 * 86_400) != nil
        else { throw OpenSSLError.draining(.certificateBuildFailed, detail: "challenge certificate fields") }
        let subject = X509_get_subject_name(certificate)
        if name.utf8.count <= 64 { try addCommonName(name, to: subject) }
        guard X509_set_issuer_name(certificate, subject) == 1, X509_set_pubkey(certificate, key.key) == 1 else {
            throw OpenSSLError.draining(.certificateBuildFailed, detail: "challenge certificate issuer and key")
        }
        guard let alternativeNames = subjectAlternativeNameExtension([name]) else {
            throw OpenSSLError.draining(.certificateBuildFailed, detail: "subjectAltName for \(name)")
        }
        defer { X509_EXTENSION_free(alternativeNames) }
        guard X509_add_ext(certificate, alternativeNames, -1) == 1 else {
            throw OpenSSLError.draining(.certificateBuildFailed, detail: "adding subjectAltName")
        }
        try addACMEIdentifier(SHA256Digest.hash(Array(keyAuthorization.utf8)), to: certificate)
        guard X509_sign(certificate, key.key, EVP_sha256()) > 0 else {
            throw OpenSSLError.draining(.certificateBuildFailed, detail: "signing the challenge certificate")
        }
        do {
            return try PEMBIO.writing("the challenge certificate") { PEM_write_bio_X509($0, certificate) }
        } catch {
            throw OpenSSLError.draining(.certificateBuildFailed, detail: "challenge certificate PEM")
        }
    }

    private static func addACMEIdentifier(_ digest: [UInt8], to certificate: OpaquePointer) throws(OpenSSLError) {
        guard let oid = OBJ_txt2obj(acmeIdentifierOID, 1) else {
            throw OpenSSLError.draining(.certificateBuildFailed, detail: "OID \(acmeIdentifierOID)")
        }
        defer { ASN1_OBJECT_free(oid) }
        guard let value = ASN1_OCTET_STRING_new() else {
            throw OpenSSLError.draining(.certificateBuildFailed, detail: "ASN1_OCTET_STRING_new")
        }
        defer { ASN1_OCTET_STRING_free(value) }
        // extnValue is the DER encoding of `Authorization ::= OCTET STRING (SIZE (32))`.
        let encoded: [UInt8] = [0x04, 0x20] + digest
        guard ASN1_OCTET_STRING_set(value, encoded, Int32(encoded.count)) == 1,
            let extensionObject = X509_EXTENSION_create_by_OBJ(nil, oid, 1, value)
        else { throw OpenSSLError.draining(.certificateBuildFailed, detail: "acmeIdentifier extension") }
        defer { X509_EXTENSION_free(extensionObject) }
        guard X509_add_ext(certificate, extensionObject, -1) == 1 else {
            throw OpenSSLError.draining(.certificateBuildFailed, detail: "adding acmeIdentifier")
        }
    }

    private static func addCommonName(_ name: String, to subject: OpaquePointer?) throws(OpenSSLError) {
        // MBSTRING_ASC = MBSTRING_FLAG | 1, a macro expression Swift does not import.
        let mbstringASCII: Int32 = 0x1000 | 1
        guard let subject, X509_NAME_add_entry_by_txt(subject, "CN", mbstringASCII, name, -1, -1, 0) == 1 else {
            throw OpenSSLError.draining(.certificateBuildFailed, detail: "common name \(name)")
        }
    }

    private static func subjectAlternativeNameExtension(_ names: [String]) -> OpaquePointer? {
        let value = names.map { "DNS:\($0)" }.joined(separator: ",")
        return X509V3_EXT_conf_nid(nil, nil, NID_subject_alt_name, value)
    }
}
