internal import COpenSSL

/// One certificate (a PEM chain, leaf first, and its private key) with the server TLS policy, as an
/// `SSL_CTX`. Built when certificates load, off the event loop; a handshake only switches to it.
/// A configured `SSL_CTX` is thread-safe, so one instance is shared by every connection.
public final class OpenSSLServerContext: @unchecked Sendable {
    /// Owned; freed in deinit. Stays inside `TLS/OpenSSL/`.
    let context: OpaquePointer
    /// ALPN identifiers this context accepts, in server preference order.
    public let alpnProtocols: [ALPNProtocol]
    /// The leaf's subject, one line (`/CN=app.example.com`), for logs and tests.
    public let leafSubject: String
    /// ALPN list in wire format. The select callback's output points into it, so it lives as long as
    /// the context (an `SSL` on this context is always owned by a connection that retains it).
    private let alpnWireFormat: UnsafeMutableBufferPointer<UInt8>

    public convenience init(
        certificateChainPEM: String,
        privateKeyPEM: String,
        alpnProtocols: [ALPNProtocol] = [.http1_1]
    ) throws(OpenSSLError) {
        try self.init(
            certificateChainPEM: Array(certificateChainPEM.utf8),
            privateKeyPEM: Array(privateKeyPEM.utf8),
            alpnProtocols: alpnProtocols
        )
    }

    public convenience init(
        certificateChainPEM: [UInt8],
        privateKeyPEM: [UInt8],
        alpnProtocols: [ALPNProtocol] = [.http1_1]
    ) throws(OpenSSLError) {
        let chain: [X509Certificate]
        let key: PrivateKey
        do {
            chain = try X509Certificate.parseChain(pem: certificateChainPEM)
        } catch {
            throw OpenSSLError(code: .invalidCertificateChain, detail: "\(error)")
        }
        do {
            key = try PrivateKey(pem: privateKeyPEM)
        } catch {
            throw OpenSSLError(code: .invalidPrivateKey, detail: "\(error)")
        }
        try self.init(chain: chain, key: key, alpnProtocols: alpnProtocols)
    }

    /// From certificates and a key already parsed (e.g. a `CertificatePair` the store validated).
    public init(chain: [X509Certificate], key: PrivateKey, alpnProtocols: [ALPNProtocol] = [.http1_1]) throws(OpenSSLError) {
        guard let leaf = chain.first else {
            throw OpenSSLError(code: .invalidCertificateChain, detail: "no PEM certificate found")
        }
        let context = try OpenSSLServerSettings.makeServerContext()
        do {
            // The X509Certificate objects own the X509s: keep them (and the key) alive until OpenSSL has
            // taken its own references. In release builds an owned parameter can otherwise be released
            // right after its last Swift use, freeing the intermediates before `install` up-refs them.
            try withExtendedLifetime((chain, key)) { () throws(OpenSSLError) in
                try Self.install(chain: chain.map(\.x509), key: key.evpKey, into: context)
            }
        } catch {
            SSL_CTX_free(context)
            throw error
        }
        self.context = context
        self.alpnProtocols = alpnProtocols
        self.leafSubject = withExtendedLifetime(leaf) { PEMReader.subjectLine(of: leaf.x509) }
        let wire = ALPNProtocol.wireFormat(alpnProtocols)
        alpnWireFormat = .allocate(capacity: wire.count)
        _ = alpnWireFormat.initialize(from: wire)
        // After the SNI switch OpenSSL asks *this* context's callback, so every context carries one.
        SSL_CTX_set_alpn_select_cb(context, selectALPN, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        SSL_CTX_free(context)
        alpnWireFormat.deallocate()
    }

    private static func install(chain: [OpaquePointer], key: OpaquePointer, into context: OpaquePointer)
        throws(OpenSSLError)
    {
        OpenSSLError.clearErrorQueue()
        guard SSL_CTX_use_certificate(context, chain[0]) == 1 else {
            throw OpenSSLError.draining(.invalidCertificateChain, detail: "leaf certificate refused")
        }
        for intermediate in chain.dropFirst() {
            // add_extra_chain_cert takes ownership on success; the X509Certificate keeps its own reference.
            X509_up_ref(intermediate)
            guard CO_SSL_CTX_add_extra_chain_cert(context, intermediate) == 1 else {
                X509_free(intermediate)
                throw OpenSSLError.draining(.invalidCertificateChain, detail: "chain certificate refused")
            }
        }
        guard X509_check_private_key(chain[0], key) == 1 else {
            throw OpenSSLError.draining(.privateKeyMismatch)
        }
        guard SSL_CTX_use_PrivateKey(context, key) == 1 else {
            throw OpenSSLError.draining(.invalidPrivateKey, detail: "key refused")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            throw OpenSSLError.draining(.privateKeyMismatch)
        }
    }

    /// Picks the first of our protocols the client also offers; `nil` when there is no overlap.
    fileprivate func select(
        from clientList: UnsafePointer<UInt8>,
        count: UInt32
    ) -> (pointer: UnsafePointer<UInt8>, length: UInt8)? {
        guard let ours = alpnWireFormat.baseAddress, !alpnWireFormat.isEmpty else { return nil }
        var selected: UnsafeMutablePointer<UInt8>?
        var length: UInt8 = 0
        let outcome = SSL_select_next_proto(
            &selected, &length, ours, UInt32(alpnWireFormat.count), clientList, count
        )
        guard outcome == OPENSSL_NPN_NEGOTIATED, let selected else { return nil }
        return (UnsafePointer(selected), length)
    }

    /// The one way back from a C callback argument to the context that registered it.
    fileprivate static func fromCallbackArgument(_ argument: UnsafeMutableRawPointer?) -> OpenSSLServerContext? {
        argument.map { Unmanaged<OpenSSLServerContext>.fromOpaque($0).takeUnretainedValue() }
    }
}

/// ALPN select callback. No overlap → no ALPN in the answer (RFC 7301 allows a server to ignore it;
/// an HTTP/1.1 client without `http/1.1` in its list still gets served).
private func selectALPN(
    _ ssl: OpaquePointer?,
    _ output: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
    _ outputLength: UnsafeMutablePointer<UInt8>?,
    _ clientList: UnsafePointer<UInt8>?,
    _ clientListLength: UInt32,
    _ argument: UnsafeMutableRawPointer?
) -> Int32 {
    guard let context = OpenSSLServerContext.fromCallbackArgument(argument),
        let output, let outputLength, let clientList,
        let choice = context.select(from: clientList, count: clientListLength)
    else { return SSL_TLSEXT_ERR_NOACK }
    output.pointee = choice.pointer
    outputLength.pointee = choice.length
    return SSL_TLSEXT_ERR_OK
}
