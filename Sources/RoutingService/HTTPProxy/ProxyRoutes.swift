import NIOCore

/// The snapshot a request runs on: the routing table, the timeouts, and for each balancer the live
/// instance objects of every upstream group (so picking an instance needs no lookup and no lock).
public final class ProxyRoutes: Sendable {
    public let table: RoutingTable
    public let timeouts: TimeoutConfiguration
    /// `[balancer index][upstream group id]` → instances in configuration order.
    let instances: [[[UpstreamInstance]]]

    init(configuration: GatewayConfiguration, balancers: [HTTPBalancer]) {
        let table = RoutingTable(configuration: configuration)
        self.table = table
        self.timeouts = configuration.timeouts
        self.instances = balancers.map { balancer in
            table.upstreamGroups.map { balancer.registry.instances(for: $0.endpoints) }
        }
    }

    func instances(balancer: HTTPBalancer, group: UpstreamGroup) -> [UpstreamInstance] {
        instances[balancer.index][group.id]
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
