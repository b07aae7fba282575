/// What the validator asks the certificate store: is there a certificate for this name? Lets `ssl: manual`
/// on a domain without one be refused at load time instead of failing handshakes later.
public protocol CertificateInventory: Sendable {
    /// True when a stored certificate covers `name`: the same name, or for an exact name a one-label wildcard
    /// over it. A wildcard domain needs a wildcard certificate.
    func hasCertificate(covering name: DomainName) -> Bool
}

/// A fixed list of certificate names, for tests and for tools that know the names without a store.
public struct StaticCertificateInventory: CertificateInventory {
    private let names: Set<DomainName>

    public init(names: [DomainName]) {
        self.names = Set(names)
    }

    public init(names: [String]) {
        self.init(names: names.map(DomainName.init))
    }

    public func hasCertificate(covering name: DomainName) -> Bool {
        if names.contains(name) { return true }
        guard !name.isWildcard, let dot = name.value.firstIndex(of: ".") else { return false }
        return names.contains(DomainName("*" + name.value[dot...]))
    }
}
