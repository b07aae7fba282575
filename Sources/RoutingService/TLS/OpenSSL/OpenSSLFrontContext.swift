internal import COpenSSL

/// The `SSL_CTX` every server connection starts on. It holds no certificate: its servername callback
/// looks the ClientHello's SNI up (through `selectContext`, normally a `TLSContextStore`) and moves the
/// connection to that certificate's context, or refuses the handshake with `unrecognized_name`.
/// Keep one per listener for the life of the process: session tickets are sealed with its keys.
public final class OpenSSLFrontContext: @unchecked Sendable {
    let context: OpaquePointer
    private let selectContext: @Sendable (_ serverName: String?) -> OpenSSLServerContext?

    /// Chooses from `store`'s current index at each handshake, so `store.replace(_:)` takes effect at once.
    public convenience init(store: TLSContextStore) throws(OpenSSLError) {
        try self.init { serverName in store.context(forServerName: serverName) }
    }

    /// `selectContext` gets the SNI (nil when the client sent none) and returns the context to serve,
    /// or nil to refuse. It runs inside the handshake on the event loop: it must only look up.
    public init(
        selectContext: @escaping @Sendable (_ serverName: String?) -> OpenSSLServerContext?
    ) throws(OpenSSLError) {
        context = try OpenSSLServerSettings.makeServerContext()
        self.selectContext = selectContext
        _ = CO_SSL_CTX_set_tlsext_servername_callback(context, switchContextForServerName)
    }

    deinit {
        SSL_CTX_free(context)
    }

    func context(forServerName serverName: String?) -> OpenSSLServerContext? {
        selectContext(serverName)
    }
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
