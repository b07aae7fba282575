/// Which certificate context answers which SNI: exact names, then one-label wildcards (`*.example.com`),
/// plus an optional default for clients that send no SNI. Immutable once built, so handshakes on any
/// event loop read it without a lock; `TLSContextStore` swaps whole indexes.
public struct TLSCertificateIndex: Sendable {
    public struct Entry: Sendable {
        public var names: [DomainName]
        public var context: OpenSSLServerContext

        public init(names: [DomainName], context: OpenSSLServerContext) {
            self.names = names
            self.context = context
        }
    }

    private let table: HostTable<OpenSSLServerContext>
    /// Served to clients that send no SNI; nil → such clients are refused with `unrecognized_name`.
    public let defaultContext: OpenSSLServerContext?
    /// Every name in the index, as given (for logs and the admin API).
    public let names: [DomainName]

    /// An index that refuses every handshake.
    public static let empty = TLSCertificateIndex()

    private init() {
        table = HostTable()
        defaultContext = nil
        names = []
    }

    /// Throws `TLSCertificateIndexError.duplicateName` when two entries claim the same name: which one
    /// wins is the certificate store's decision, not the index's.
    public init(entries: [Entry], defaultContext: OpenSSLServerContext? = nil) throws(TLSCertificateIndexError) {
        var table = HostTable<OpenSSLServerContext>()
        var names: [DomainName] = []
        for entry in entries {
            for name in entry.names {
                guard table.insert(entry.context, for: name) else { throw .duplicateName(name) }
                names.append(name)
            }
        }
        self.table = table
        self.defaultContext = defaultContext
        self.names = names
    }

    /// The context for a ClientHello's SNI (`nil` when the client sent none → the default).
    public func context(forServerName serverName: String?) -> OpenSSLServerContext? {
        guard let serverName, !serverName.isEmpty else { return defaultContext }
        return table.lookup(serverName)
    }
}

public struct TLSCertificateIndexError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Base: Hashable, Sendable {
        case duplicateName(DomainName)
    }

    private let base: Base

    /// Two certificates were given for the same name.
    public static func duplicateName(_ name: DomainName) -> TLSCertificateIndexError {
        TLSCertificateIndexError(base: .duplicateName(name))
    }

    public var description: String {
        switch base {
        case .duplicateName(let name): "two certificates given for \(name)"
        }
    }
}
