import Synchronization

/// The live load of one instance endpoint at layer 4: open TCP connections, or active UDP flows.
/// Shared by every listener that relays to the same endpoint, so it survives a config reload.
public final class L4InstanceLoad: Sendable {
    public let endpoint: ListenAddress
    public let transport: TransportProtocol
    private let active = Atomic<Int>(0)

    init(endpoint: ListenAddress, transport: TransportProtocol) {
        self.endpoint = endpoint
        self.transport = transport
    }

    /// Open connections (TCP) or active flows (UDP) right now.
    public var activeCount: Int { active.load(ordering: .relaxed) }

    /// Counts one more session and returns the lease that un-counts it exactly once.
    func acquire() -> L4Lease {
        active.wrappingAdd(1, ordering: .relaxed)
        return L4Lease(load: self)
    }

    fileprivate func release() {
        active.wrappingSubtract(1, ordering: .relaxed)
    }
}

/// One counted session on an instance. `release()` is idempotent, and a lease dropped without
/// being released releases itself, so the counts stay exact on every path, errors included.
public final class L4Lease: Sendable {
    public let load: L4InstanceLoad
    private let released = Atomic<Bool>(false)

    fileprivate init(load: L4InstanceLoad) {
        self.load = load
    }

    public func release() {
        if !released.exchange(true, ordering: .relaxed) {
            load.release()
        }
    }

    deinit { release() }
}

/// The per-endpoint counters of the project balancer, keyed by endpoint and transport.
/// The lock is taken only when a target is resolved (config load or reload); relaying and
/// selection touch only the atomics of the `L4InstanceLoad`s a target already holds.
public final class L4ConnectionRegistry: Sendable {
    private struct Key: Hashable {
        var endpoint: ListenAddress
        var transport: TransportProtocol
    }

    private let loads = Mutex<[Key: L4InstanceLoad]>([:])

    public init() {}

    public func load(for endpoint: ListenAddress, transport: TransportProtocol) -> L4InstanceLoad {
        let key = Key(endpoint: endpoint, transport: transport)
        return loads.withLock { loads in
            if let load = loads[key] { return load }
            let load = L4InstanceLoad(endpoint: endpoint, transport: transport)
            loads[key] = load
            return load
        }
    }

    /// Open TCP sessions over every instance (UDP flows excluded: they have no end to wait for).
    public var activeTCPSessions: Int {
        loads.withLock { $0.values.reduce(0) { $0 + ($1.transport == .tcp ? $1.activeCount : 0) } }
    }

    /// The current count for `endpoint`, 0 when it was never used.
    public func activeCount(for endpoint: ListenAddress, transport: TransportProtocol) -> Int {
        loads.withLock { $0[Key(endpoint: endpoint, transport: transport)]?.activeCount ?? 0 }
    }

    /// The instances of `service` for its port `port`, each with its shared counter.
    public func target(
        service: ServiceConfiguration,
        port: Int,
        transport: TransportProtocol
    ) -> L4UpstreamTarget {
        L4UpstreamTarget(
            name: "\(service.name):\(port)/\(transport.rawValue)",
            instances: service.instances.map { load(for: $0.endpoint(forServicePort: port), transport: transport) }
        )
    }
}

/// A service port as the project balancer sees it: a name for logs and the instances to pick from.
public struct L4UpstreamTarget: Sendable {
    public var name: String
    public var instances: [L4InstanceLoad]

    public init(name: String, instances: [L4InstanceLoad]) {
        self.name = name
        self.instances = instances
    }
}
