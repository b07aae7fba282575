/// Which names the loaded certificates cover, for configuration validation (a `ssl: manual` domain needs one).
/// Matching is the SNI rule: the exact name, or a wildcard certificate covering one label.
public struct CertificateInventorySnapshot: Sendable {
    private let table: HostTable<Bool>

    public init(names: some Sequence<DomainName>) {
        var table = HostTable<Bool>()
        for name in names { table.insert(true, for: name) }
        self.table = table
    }

    /// `name` may itself be a wildcard (`*.example.com`): then only a wildcard certificate for the same
    /// parent covers it.
    public func hasCertificate(covering name: DomainName) -> Bool {
        table.lookup(name.value) != nil
    }
}
