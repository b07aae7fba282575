import Synchronization

/// Holds the certificate index in use. Handshakes read `current`; the certificate store calls
/// `replace(_:)` when certificates change. Connections keep the context they switched to, so a
/// replace never breaks an open connection.
public final class TLSContextStore: Sendable {
    private let index: Mutex<TLSCertificateIndex>
    /// Serializes `rebuild`s (kept apart from `index`, which handshakes read, so building never blocks them).
    private let rebuilding = Mutex(())

    public init(_ index: TLSCertificateIndex = .empty) {
        self.index = Mutex(index)
    }

    public var current: TLSCertificateIndex {
        index.withLock { $0 }
    }

    public func replace(_ newIndex: TLSCertificateIndex) {
        index.withLock { $0 = newIndex }
    }

    /// Builds a new index (typically: reads the certificate store) and swaps it in, one rebuild at a time.
    /// Without this, two writers (a reload and an ACME issuance) could each read the store, and the one
    /// that read it first could swap in last, dropping the other's certificate.
    public func rebuild<Result>(_ make: () -> (TLSCertificateIndex, Result)) -> Result {
        rebuilding.withLock { _ in
            let (newIndex, result) = make()
            replace(newIndex)
            return result
        }
    }

    /// The context for a ClientHello's SNI in the current index (`nil` SNI → the default).
    public func context(forServerName serverName: String?) -> OpenSSLServerContext? {
        index.withLock { $0.context(forServerName: serverName) }
    }
}
