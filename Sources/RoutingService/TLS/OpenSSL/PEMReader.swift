internal import COpenSSL

/// Small PEM/X.509 helpers of the TLS contexts (parsing itself is `X509Certificate` and `PrivateKey`).
enum PEMReader {
    /// Reads one or more certificates into `store` (a client's trust roots).
    static func addCertificates(_ pem: [UInt8], to store: OpaquePointer) throws(OpenSSLError) {
        let roots: [X509Certificate]
        do {
            roots = try X509Certificate.parseChain(pem: pem)
        } catch {
            throw OpenSSLError(code: .invalidTrustRoots, detail: "\(error)")
        }
        for root in roots where X509_STORE_add_cert(store, root.x509) != 1 {
            throw OpenSSLError.draining(.invalidTrustRoots, detail: "certificate refused by the trust store")
        }
    }

    static func subjectLine(of certificate: OpaquePointer) -> String {
        guard let name = X509_get_subject_name(certificate) else { return "" }
        var buffer = [CChar](repeating: 0, count: 512)
        return buffer.withUnsafeMutableBufferPointer { pointer in
            guard let line = X509_NAME_oneline(name, pointer.baseAddress, Int32(pointer.count)) else { return "" }
            return String(cString: line)
        }
    }
}
