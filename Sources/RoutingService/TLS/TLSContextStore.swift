import Synchronization

/// Holds the certificate index in use. Handshakes read `current`; the certificate store calls
/// `replace(_:)` when certificates change. Connections keep the context they switched to, so a
/// replace never breaks an open connection.
public final class TLSContextStore: Sendable {
    private let index: Mutex<TLSCertificateIndex>

    public init(_ index: TLSCertificateIndex = .empty) {
        self.index = Mutex(index)
    }

    public var current: TLSCertificateIndex {
        index.withLock { $0 }
    }

    public func replace(_ newIndex: TLSCertificateIndex) {
        index.withLock { $0 = newIndex }
    }

    /// The context for a ClientHello's SNI in the current index (`nil` SNI → the default).
    public func context(forServerName serverName: String?) -> OpenSSLServerContext? {
        index.withLock { $0.context(forServerName: serverName) }
    }
}
