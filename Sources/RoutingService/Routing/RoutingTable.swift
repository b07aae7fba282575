import NIOCore

/// The service port behind one or more domains: where a proxied request may go.
public struct UpstreamGroup: Sendable, Hashable {
    /// Index of this group in `RoutingTable.upstreamGroups`, so balancers can keep per-group state in arrays.
    public let id: Int
    public let service: String
    public let port: Int
    /// One endpoint per instance of the service, in configuration order.
    public let endpoints: [ListenAddress]
}

/// What a domain maps to, as far as HTTP routing is concerned. An object, not a struct: every request
/// holds its route, and a copy then costs one retain instead of one per string and array in it.
public final class DomainRoute: Sendable {
    public let domain: DomainName
    public let ssl: SSLMode?
    public let redirectHTTP: Bool
    /// False for a domain on a non-HTTP port (SNI passthrough): the HTTP front never proxies it.
    public let isHTTP: Bool
    public let upstream: UpstreamGroup

    init(domain: DomainName, ssl: SSLMode?, redirectHTTP: Bool, isHTTP: Bool, upstream: UpstreamGroup) {
        self.domain = domain
        self.ssl = ssl
        self.redirectHTTP = redirectHTTP
        self.isHTTP = isHTTP
        self.upstream = upstream
    }
}

/// An immutable snapshot of the HTTP routes built from one `GatewayConfiguration`.
/// Readers on any event loop share it without locks; a reload builds a new one.
public struct RoutingTable: Sendable {
    public let upstreamGroups: [UpstreamGroup]
    /// The TLS listener's port, so redirects from the plain listener name it when it is not 443.
    public let httpsPort: Int
    private let hosts: HostTable<DomainRoute>

    public init(configuration: GatewayConfiguration) {
        var groups: [UpstreamGroup] = []
        var groupIndex: [String: Int] = [:]
        var hosts = HostTable<DomainRoute>()
        let services = configuration.servicesByName
        for domain in configuration.domains {
            guard let service = services[domain.service] else { continue }
            let key = "\(domain.service)\u{0}\(domain.port)"
            let groupID: Int
            if let existing = groupIndex[key] {
                groupID = existing
            } else {
                groupID = groups.count
                groupIndex[key] = groupID
                groups.append(
                    UpstreamGroup(
                        id: groupID,
                        service: service.name,
                        port: domain.port,
                        endpoints: service.instances.map { $0.endpoint(forServicePort: domain.port) }
                    )
                )
            }
            let isHTTP = service.port(domain.port)?.http ?? false
            let route = DomainRoute(
                domain: domain.name,
                ssl: domain.ssl,
                redirectHTTP: domain.redirectHTTP,
                isHTTP: isHTTP,
                upstream: groups[groupID]
            )
            hosts.insert(route, for: domain.name)
        }
        self.upstreamGroups = groups
        self.hosts = hosts
        self.httpsPort = configuration.listen.https.port
    }

    /// The route for a host name (SNI or the host part of a `Host` header, port already stripped).
    public func route(forHost host: some StringProtocol) -> DomainRoute? {
        hosts.lookup(host)
    }
}
