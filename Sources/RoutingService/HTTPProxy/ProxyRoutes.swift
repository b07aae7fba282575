import NIOCore

/// The snapshot a request runs on: the routing table, the timeouts, and for each balancer the live
/// instance objects of every upstream group (so picking an instance needs no lookup and no lock).
public final class ProxyRoutes: Sendable {
    public let table: RoutingTable
    public let timeouts: TimeoutConfiguration
    /// The timeouts every proxied request arms, converted once: a `Duration`'s conversion divides 128-bit
    /// integers, twice a request otherwise.
    let upstreamTimeouts: UpstreamTimeouts
    /// `[balancer index][upstream group id]` → instances in configuration order.
    let instances: [[[UpstreamInstance]]]

    init(configuration: GatewayConfiguration, balancers: [HTTPBalancer]) {
        let table = RoutingTable(configuration: configuration)
        self.table = table
        self.timeouts = configuration.timeouts
        self.upstreamTimeouts = UpstreamTimeouts(configuration.timeouts)
        self.instances = balancers.map { balancer in
            table.upstreamGroups.map { balancer.registry.instances(for: $0.endpoints) }
        }
    }

    func instances(balancer: HTTPBalancer, group: UpstreamGroup) -> [UpstreamInstance] {
        instances[balancer.index][group.id]
    }
}

/// The `TimeoutConfiguration` entries of a proxied request, as the event loop's `TimeAmount`.
struct UpstreamTimeouts: Sendable {
    let connect: TimeAmount
    let responseHead: TimeAmount
    let idle: TimeAmount

    init(_ timeouts: TimeoutConfiguration) {
        connect = timeouts.upstreamConnect.timeAmount
        responseHead = timeouts.upstreamResponseHead.timeAmount
        idle = timeouts.upstreamIdle.timeAmount
    }
}

/// A connection's last proxied Host and its route, under the snapshot that gave it: a client asks for
/// the same host again and again, and the answer cannot change without a new snapshot. One object, so
/// that keeping and reading it costs one retain rather than one per field.
final class RouteMemo {
    let routes: ProxyRoutes
    let host: String
    let route: DomainRoute

    init(routes: ProxyRoutes, host: String, route: DomainRoute) {
        self.routes = routes
        self.host = host
        self.route = route
    }

    func matches(routes current: ProxyRoutes, host: String) -> Bool {
        routes === current && self.host == host
    }
}

extension Duration {
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    var millisecondsText: String {
        let (seconds, attoseconds) = components
        return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000) ms"
    }
}
