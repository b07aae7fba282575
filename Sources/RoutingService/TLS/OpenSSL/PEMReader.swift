internal import COpenSSL

/// Reads PEM text held in memory through a read-only memory BIO. Returned objects are owned by the caller.
enum PEMReader {
    /// Every certificate in `pem`, in order (leaf first for a server chain). Fails when there is none,
    /// or when a block does not parse.
    static func certificates(_ pem: [UInt8]) throws(OpenSSLError) -> [OpaquePointer] {
        OpenSSLError.clearErrorQueue()
        var certificates: [OpaquePointer] = []
        let failure: OpenSSLError? = try withMemoryBIO(pem, .invalidCertificateChain) { bio in
            while let certificate = PEM_read_bio_X509(bio, nil, refusePassphrase, nil) {
                certificates.append(certificate)
            }
            // Running out of PEM blocks leaves "no start line" on the queue; anything else is a bad block.
            let last = ERR_peek_last_error()
            if last != 0, ERR_GET_REASON(last) != PEM_R_NO_START_LINE {
                return OpenSSLError.draining(.invalidCertificateChain, detail: "certificate \(certificates.count + 1)")
            }
            OpenSSLError.clearErrorQueue()
            if certificates.isEmpty {
                return OpenSSLError(code: .invalidCertificateChain, detail: "no PEM certificate found")
            }
            return nil
        }
        if let failure {
            certificates.forEach { X509_free($0) }
            throw failure
        }
        return certificates
    }

    /// The first private key in `pem` (PKCS#8, EC or RSA). Encrypted keys are refused, never prompted for.
    static func privateKey(_ pem: [UInt8]) throws(OpenSSLError) -> OpaquePointer {
        OpenSSLError.clearErrorQueue()
        let key = try withMemoryBIO(pem, .invalidPrivateKey) { PEM_read_bio_PrivateKey($0, nil, refusePassphrase, nil) }
        guard let key else {
            throw OpenSSLError.draining(.invalidPrivateKey, detail: "no readable unencrypted PEM private key")
        }
        return key
    }

    /// Reads one or more certificates into `store` (a client's trust roots).
    static func addCertificates(_ pem: [UInt8], to store: OpaquePointer) throws(OpenSSLError) {
        let roots: [OpaquePointer]
        do {
            roots = try certificates(pem)
        } catch {
            throw OpenSSLError(code: .invalidTrustRoots, detail: error.detail, reasons: error.reasons)
        }
        defer { roots.forEach { X509_free($0) } }
        for root in roots where X509_STORE_add_cert(store, root) != 1 {
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

    private static func withMemoryBIO<Result>(
        _ bytes: [UInt8],
        _ code: OpenSSLError.Code,
        _ body: (OpaquePointer) -> Result
    ) throws(OpenSSLError) -> Result {
        guard bytes.count < Int32.max else { throw OpenSSLError(code: code, detail: "PEM larger than 2 GiB") }
        let result: Result? = bytes.withUnsafeBytes { raw -> Result? in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return body(bio)
        }
        guard let result else { throw OpenSSLError.draining(code, detail: "BIO_new_mem_buf") }
        return result
    }
}

/// Without a callback OpenSSL would prompt on the terminal for an encrypted key's passphrase.
private func refusePassphrase(
    _ buffer: UnsafeMutablePointer<CChar>?,
    _ size: Int32,
    _ writing: Int32,
    _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    -1
}
