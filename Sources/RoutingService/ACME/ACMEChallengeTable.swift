import Synchronization

/// The answers to challenges in flight, shared by the ACME orders (which write) and the listeners
/// (which read): HTTP-01 tokens for the plain listener, TLS-ALPN-01 certificates for the TLS front.
public final class ACMEChallengeTable: ACMEChallengeResponder, Sendable {
    private struct Entries {
        var keyAuthorizations: [String: String] = [:]
        var tlsALPN01Contexts: [String: OpenSSLServerContext] = [:]
    }

    private let entries = Mutex(Entries())

    public init() {}

    // MARK: HTTP-01 (the plain listener's `ACMEChallengeResponder`)

    public func keyAuthorization(forToken token: Substring, host: String?) -> String? {
        entries.withLock { $0.keyAuthorizations[String(token)] }
    }

    public func addHTTP01(token: String, keyAuthorization: String) {
        entries.withLock { $0.keyAuthorizations[token] = keyAuthorization }
    }

    public func removeHTTP01(token: String) {
        _ = entries.withLock { $0.keyAuthorizations.removeValue(forKey: token) }
    }

    // MARK: TLS-ALPN-01 (the TLS front's challenge selection)

    /// The challenge certificate for a ClientHello offering `acme-tls/1` with this SNI; nil when none is pending.
    public func tlsALPN01Context(forServerName serverName: String) -> OpenSSLServerContext? {
        entries.withLock { $0.tlsALPN01Contexts[serverName.lowercased()] }
    }

    public func addTLSALPN01(name: String, context: OpenSSLServerContext) {
        entries.withLock { $0.tlsALPN01Contexts[name.lowercased()] = context }
    }

    public func removeTLSALPN01(name: String) {
        _ = entries.withLock { $0.tlsALPN01Contexts.removeValue(forKey: name.lowercased()) }
    }

    public var isEmpty: Bool {
        entries.withLock { $0.keyAuthorizations.isEmpty && $0.tlsALPN01Contexts.isEmpty }
    }
}
