/// What the TLS listener does with a connection, decided from its SNI before any TLS work:
/// terminate it here (HTTP ports) or pass the raw stream through to the project balancer.
public enum TLSListenerRoute: Sendable {
    case terminate(ssl: SSLMode)
    case passthrough(L4UpstreamTarget, domain: DomainName)
}

/// An immutable snapshot of the TLS listener's routes, built from one configuration. Reload builds
/// a new one; a connection keeps the snapshot it looked at.
public final class TLSListenerRoutes: Sendable {
    private let hosts: HostTable<TLSListenerRoute>
    /// False when no domain is passed through: connections then skip the ClientHello peek entirely.
    public let hasPassthrough: Bool

    public init(configuration: GatewayConfiguration, registry: L4ConnectionRegistry) {
        var hosts = HostTable<TLSListenerRoute>()
        var hasPassthrough = false
        let services = configuration.servicesByName
        for domain in configuration.domains {
            guard let service = services[domain.service] else { continue }
            if service.port(domain.port)?.http == true {
                hosts.insert(.terminate(ssl: domain.ssl ?? .auto), for: domain.name)
            } else {
                hasPassthrough = true
                hosts.insert(
                    .passthrough(registry.target(service: service, port: domain.port, transport: .tcp), domain: domain.name),
                    for: domain.name
                )
            }
        }
        self.hosts = hosts
        self.hasPassthrough = hasPassthrough
    }

    public func route(forServerName serverName: some StringProtocol) -> TLSListenerRoute? {
        hosts.lookup(serverName)
    }

    /// Whether a handshake for `serverName` may be terminated here. Unknown names, passed-through
    /// names and `ssl: off` domains are refused (`unrecognized_name`), even when a wildcard
    /// certificate would cover them. Clients without SNI are routed by `Host` later.
    public func terminatesTLS(forServerName serverName: String?) -> Bool {
        guard let serverName else { return true }
        guard case .terminate(let ssl) = route(forServerName: serverName) else { return false }
        return ssl != .off
    }

    /// The decision the ClientHello peek hands to `SNIRouterHandler`.
    public func decide(_ result: ClientHelloParseResult) -> SNIRoute {
        guard case .clientHello(let serverName?, _) = result,
            case .passthrough(let target, let domain) = route(forServerName: serverName)
        else {
            // Terminated names, unknown names and garbage all go to the TLS handler, which refuses
            // what it cannot serve with the proper alert.
            return .terminate
        }
        return .passthrough(target, domain: domain)
    }
}
