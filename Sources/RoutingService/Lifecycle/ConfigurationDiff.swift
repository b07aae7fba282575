/// What changed between the running configuration and a new one. Pure: computed from the two values
/// alone, so a reload touches only what is listed here, and a test can check it without any I/O.
public struct ConfigurationDiff: Sendable, Equatable {
    public var domainsAdded: [DomainName] = []
    public var domainsRemoved: [DomainName] = []
    /// Same name, different service, port, ssl or redirect.
    public var domainsChanged: [DomainName] = []
    public var servicesAdded: [String] = []
    public var servicesRemoved: [String] = []
    /// Same name, different ports or health check (instances are listed apart).
    public var servicesChanged: [String] = []
    /// Instances added to, or removed from, services present on both sides: service → instances.
    public var instancesAdded: [String: [InstanceAddress]] = [:]
    public var instancesRemoved: [String: [InstanceAddress]] = [:]
    public var publicPortsAdded: [PublicPortConfiguration] = []
    public var publicPortsRemoved: [PublicPortConfiguration] = []
    /// Same `listen` and protocol, different service or port: the listener stays bound, new sessions go elsewhere.
    public var publicPortsRetargeted: [PublicPortConfiguration] = []
    /// `certificates.directory` or `certificates.default` changed: the certificate index is rebuilt.
    public var certificatesChanged = false
    public var timeoutsChanged = false
    public var acmeChanged = false
    public var adminTokenFileChanged = false
    /// Changes a running gateway cannot apply (a listener's address, the number of balancers): the
    /// reload is refused with these, as `(key, reason)`.
    public var needsRestart: [(key: String, reason: String)] = []

    public init() {}

    public static func == (lhs: ConfigurationDiff, rhs: ConfigurationDiff) -> Bool {
        lhs.summary == rhs.summary && lhs.needsRestart.map(\.key) == rhs.needsRestart.map(\.key)
            && lhs.instancesAdded == rhs.instancesAdded && lhs.instancesRemoved == rhs.instancesRemoved
    }

    public var isEmpty: Bool { summary == "no change" && needsRestart.isEmpty }

    /// Whether a domain's TLS treatment may have changed, so certificates should be looked at again.
    public var touchesTLS: Bool {
        certificatesChanged || !domainsAdded.isEmpty || !domainsChanged.isEmpty || !domainsRemoved.isEmpty
    }

    /// Domains whose open long-lived connections (WebSockets) must be drained: gone, or now routed elsewhere.
    public var domainsToDrain: Set<DomainName> { Set(domainsRemoved).union(domainsChanged) }

    public static func between(_ old: GatewayConfiguration, _ new: GatewayConfiguration) -> ConfigurationDiff {
        var diff = ConfigurationDiff()

        let oldDomains = Dictionary(old.domains.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let newDomains = Dictionary(new.domains.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let oldServicesByName = old.servicesByName, newServicesByName = new.servicesByName
        for domain in new.domains {
            guard let before = oldDomains[domain.name] else {
                diff.domainsAdded.append(domain.name)
                continue
            }
            let serviceChanged = oldServicesByName[domain.service]?.ports != newServicesByName[domain.service]?.ports
            if before != domain || serviceChanged { diff.domainsChanged.append(domain.name) }
        }
        diff.domainsRemoved = old.domains.map(\.name).filter { newDomains[$0] == nil }

        let oldServices = oldServicesByName
        let newNames = Set(new.services.map(\.name))
        for service in new.services {
            guard let before = oldServices[service.name] else {
                diff.servicesAdded.append(service.name)
                continue
            }
            if before.ports != service.ports || before.healthCheck != service.healthCheck {
                diff.servicesChanged.append(service.name)
            }
            let added = service.instances.filter { !before.instances.contains($0) }
            let removed = before.instances.filter { !service.instances.contains($0) }
            if !added.isEmpty { diff.instancesAdded[service.name] = added }
            if !removed.isEmpty { diff.instancesRemoved[service.name] = removed }
        }
        diff.servicesRemoved = old.services.map(\.name).filter { !newNames.contains($0) }

        func key(_ port: PublicPortConfiguration) -> String { "\(port.transport.rawValue)/\(port.listen)" }
        let oldPorts = Dictionary(old.publicPorts.map { (key($0), $0) }, uniquingKeysWith: { first, _ in first })
        let newPorts = Dictionary(new.publicPorts.map { (key($0), $0) }, uniquingKeysWith: { first, _ in first })
        for port in new.publicPorts {
            guard let before = oldPorts[key(port)] else {
                diff.publicPortsAdded.append(port)
                continue
            }
            if before != port { diff.publicPortsRetargeted.append(port) }
        }
        diff.publicPortsRemoved = old.publicPorts.filter { newPorts[key($0)] == nil }

        diff.certificatesChanged = old.certificates != new.certificates
        diff.timeoutsChanged = old.timeouts != new.timeouts
        diff.acmeChanged = old.acme != new.acme
        diff.adminTokenFileChanged = old.admin.tokenFile != new.admin.tokenFile

        if old.listen.https != new.listen.https {
            diff.needsRestart.append(("listen.https", "the TLS listener moves from \(old.listen.https) to \(new.listen.https): that needs a restart"))
        }
        if old.listen.http != new.listen.http {
            diff.needsRestart.append(("listen.http", "the plain listener moves from \(old.listen.http) to \(new.listen.http): that needs a restart"))
        }
        if old.admin.listen != new.admin.listen {
            diff.needsRestart.append(("admin.listen", "the admin API moves from \(old.admin.listen) to \(new.admin.listen): that needs a restart"))
        }
        if old.acme != new.acme {
            diff.needsRestart.append(("acme", "the ACME settings change: the certificate manager takes its CA and account at start, so that needs a restart"))
        }
        if old.balancers != new.balancers {
            diff.needsRestart.append(("balancers.http", "the number of HTTP balancers changes from \(old.balancers.http) to \(new.balancers.http): that needs a restart"))
        }
        return diff
    }

    /// One short line for logs and the admin API: `+2 domains (a.test, b.test), -1 instance (app: 127.0.0.4)`.
    public var summary: String {
        var parts: [String] = []
        func list<T: CustomStringConvertible>(_ sign: String, _ items: [T], _ noun: String) {
            guard !items.isEmpty else { return }
            let shown = items.prefix(3).map(\.description).joined(separator: ", ")
            let more = items.count > 3 ? ", …" : ""
            parts.append("\(sign)\(items.count) \(noun)\(items.count == 1 ? "" : "s") (\(shown)\(more))")
        }
        list("+", domainsAdded, "domain")
        list("-", domainsRemoved, "domain")
        list("~", domainsChanged, "domain")
        list("+", servicesAdded, "service")
        list("-", servicesRemoved, "service")
        list("~", servicesChanged, "service")
        list("+", instancesAdded.sorted { $0.key < $1.key }.flatMap { entry in entry.value.map { "\(entry.key): \($0)" } }, "instance")
        list("-", instancesRemoved.sorted { $0.key < $1.key }.flatMap { entry in entry.value.map { "\(entry.key): \($0)" } }, "instance")
        list("+", publicPortsAdded.map { "\($0.transport.rawValue)/\($0.listen)" }, "public port")
        list("-", publicPortsRemoved.map { "\($0.transport.rawValue)/\($0.listen)" }, "public port")
        list("~", publicPortsRetargeted.map { "\($0.transport.rawValue)/\($0.listen)" }, "public port")
        if certificatesChanged { parts.append("certificates settings") }
        if timeoutsChanged { parts.append("timeouts") }
        if acmeChanged { parts.append("acme settings") }
        if adminTokenFileChanged { parts.append("admin token file") }
        return parts.isEmpty ? "no change" : parts.joined(separator: ", ")
    }
}
