import Synchronization

/// One balancer's instances by endpoint. Looked up only when a routing snapshot is built (at start
/// and on reload), never per request; an endpoint that stays in the configuration keeps its object,
/// and so its in-flight count and health, across reloads.
public final class UpstreamRegistry: Sendable {
    public let balancerIndex: Int
    private let instances = Mutex<[ListenAddress: UpstreamInstance]>([:])

    public init(balancerIndex: Int) {
        self.balancerIndex = balancerIndex
    }

    /// The instances for `endpoints` (in the same order), created on first sight.
    public func instances(for endpoints: [ListenAddress]) -> [UpstreamInstance] {
        instances.withLock { table in
            endpoints.map { endpoint in
                if let existing = table[endpoint] {
                    existing.setRetired(false)
                    return existing
                }
                let created = UpstreamInstance(endpoint: endpoint, balancerIndex: balancerIndex)
                table[endpoint] = created
                return created
            }
        }
    }

    /// Retires endpoints no longer configured, and forgets those with nothing in flight. One with
    /// requests in flight is kept, so that adding it back at once keeps its count exact.
    public func prune(keeping endpoints: Set<ListenAddress>) {
        instances.withLock { table in
            for (endpoint, instance) in table where !endpoints.contains(endpoint) { instance.setRetired(true) }
            table = table.filter { endpoints.contains($0.key) || $0.value.inFlight > 0 }
        }
    }

    public func instance(for endpoint: ListenAddress) -> UpstreamInstance? {
        instances.withLock { $0[endpoint] }
    }

    public var all: [UpstreamInstance] {
        instances.withLock { Array($0.values) }
    }
}
