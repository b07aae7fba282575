internal import COpenSSL

/// The `SSL_CTX` every server connection starts on. It holds no certificate: its servername callback
/// looks the ClientHello's SNI up (through `selectContext`, normally a `TLSContextStore`) and moves the
/// connection to that certificate's context, or refuses the handshake with `unrecognized_name`.
/// Keep one per listener for the life of the process: session tickets are sealed with its keys.
public final class OpenSSLFrontContext: @unchecked Sendable {
    let context: OpaquePointer
    private let selectContext: @Sendable (_ serverName: String?) -> OpenSSLServerContext?
    private let selectChallengeContext: (@Sendable (_ serverName: String) -> OpenSSLServerContext?)?

    /// Chooses from `store`'s current index at each handshake, so `store.replace(_:)` takes effect at once.
    public convenience init(store: TLSContextStore) throws(OpenSSLError) {
        try self.init { serverName in store.context(forServerName: serverName) }
    }

    /// `selectContext` gets the SNI (nil when the client sent none) and returns the context to serve,
    /// or nil to refuse. It runs inside the handshake on the event loop: it must only look up.
    ///
    /// `selectChallengeContext` (ACME TLS-ALPN-01, RFC 8737) is asked first, and only, when the
    /// ClientHello offers ALPN `acme-tls/1` and has an SNI: a context it returns (a challenge certificate
    /// speaking only `acme-tls/1`) is served instead, and `selectContext` is not consulted, so a name
    /// still waiting for its first certificate can be validated. The servername callback cannot see
    /// ALPN, so a ClientHello callback (`SSL_CTX_set_client_hello_cb`) notes the offer first.
    public init(
        selectContext: @escaping @Sendable (_ serverName: String?) -> OpenSSLServerContext?,
        selectChallengeContext: (@Sendable (_ serverName: String) -> OpenSSLServerContext?)? = nil
    ) throws(OpenSSLError) {
        context = try OpenSSLServerSettings.makeServerContext()
        self.selectContext = selectContext
        self.selectChallengeContext = selectChallengeContext
        _ = CO_SSL_CTX_set_tlsext_servername_callback(context, switchContextForServerName)
        if selectChallengeContext != nil {
            SSL_CTX_set_client_hello_cb(context, noteACMEChallengeOffer, nil)
        }
    }

    deinit {
        SSL_CTX_free(context)
    }

    func context(forServerName serverName: String?) -> OpenSSLServerContext? {
        selectContext(serverName)
    }

    func challengeContext(forServerName serverName: String) -> OpenSSLServerContext? {
        selectChallengeContext?(serverName)
    }
}

/// ClientHello callback: runs before the servername callback and notes whether the client offers
/// ALPN `acme-tls/1`. It never refuses a handshake.
private func noteACMEChallengeOffer(
    _ ssl: OpaquePointer?,
    _ alert: UnsafeMutablePointer<Int32>?,
    _ argument: UnsafeMutableRawPointer?
) -> Int32 {
    guard let ssl, let connection = OpenSSLConnection.owning(ssl) else { return SSL_CLIENT_HELLO_SUCCESS }
    var data: UnsafePointer<UInt8>?
    var length = 0
    let alpnExtension = UInt32(TLSEXT_TYPE_application_layer_protocol_negotiation)
    guard SSL_client_hello_get0_ext(ssl, alpnExtension, &data, &length) == 1, let data else {
        return SSL_CLIENT_HELLO_SUCCESS
    }
    connection.clientOffersACMETLS1 = ALPNProtocol.extensionOffers(
        .acmeTLS1, UnsafeBufferPointer(start: data, count: length)
    )
    return SSL_CLIENT_HELLO_SUCCESS
}

/// Servername callback, called once the ClientHello's extensions are parsed (also without SNI).
private func switchContextForServerName(
    _ ssl: OpaquePointer?,
    _ alert: UnsafeMutablePointer<Int32>?,
    _ argument: UnsafeMutableRawPointer?
) -> Int32 {
    guard let ssl, let connection = OpenSSLConnection.owning(ssl), connection.switchToContextForServerName() else {
        alert?.pointee = SSL_AD_UNRECOGNIZED_NAME
        return SSL_TLSEXT_ERR_ALERT_FATAL
    }
    return SSL_TLSEXT_ERR_OK
}
