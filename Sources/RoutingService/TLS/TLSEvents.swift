/// Fired inbound by the TLS handler once the handshake is complete, before any plaintext.
/// Handlers above it learn the SNI and the negotiated ALPN protocol from this event.
public struct TLSHandshakeCompletedEvent: Sendable, Equatable {
    /// The SNI the client sent, lower-cased; nil when it sent none.
    public var serverName: String?
    public var alpnProtocol: String?
    public var protocolVersion: String
    public var sessionReused: Bool

    public init(serverName: String?, alpnProtocol: String?, protocolVersion: String, sessionReused: Bool) {
        self.serverName = serverName
        self.alpnProtocol = alpnProtocol
        self.protocolVersion = protocolVersion
        self.sessionReused = sessionReused
    }
}

/// Why a server handshake did not complete, in a few classes (metrics labels stay few).
public enum TLSHandshakeFailure: String, Sendable {
    case unrecognizedName = "unrecognized_name"
    case timeout
    case protocolError = "protocol_error"
}

/// Told of every handshake's outcome by the TLS handler, on its event loop: must be cheap.
public protocol TLSHandshakeObserver: Sendable {
    func handshakeCompleted(_ event: TLSHandshakeCompletedEvent)
    func handshakeFailed(reason: TLSHandshakeFailure)
}
