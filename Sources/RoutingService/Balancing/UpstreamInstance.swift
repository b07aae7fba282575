import NIOCore
import Synchronization

/// Live state of one instance endpoint inside one balancer: requests in flight and passive health.
/// Shared by every event loop, so counters are atomics; the object lives in an `UpstreamRegistry`
/// keyed by endpoint, which is what lets the counts survive a config reload.
public final class UpstreamInstance: Sendable, CustomStringConvertible {
    public let endpoint: ListenAddress
    /// Resolved once for IP literals so connecting needs no resolver; nil for host names.
    public let socketAddress: SocketAddress?
    public let balancerIndex: Int
    /// A number no other instance object has: per-event-loop tables (connection pools) index arrays
    /// by it instead of hashing the object.
    let slot: Int
    private static let slots = Atomic<Int>(0)
    private let inFlightCounter = Atomic<Int>(0)
    /// `NIODeadline.uptimeNanoseconds` until which the instance is skipped; 0 when healthy.
    private let downUntilNanoseconds = Atomic<UInt64>(0)
    /// Written only by the active health checker; true until a check says otherwise.
    private let passesHealthCheck = Atomic<Bool>(true)
    /// Set when a reload removed the endpoint: no new requests, and its pooled connections close.
    private let retiredFlag = Atomic<Bool>(false)

    public init(endpoint: ListenAddress, balancerIndex: Int) {
        self.endpoint = endpoint
        self.balancerIndex = balancerIndex
        self.slot = Self.slots.wrappingAdd(1, ordering: .relaxed).oldValue
        self.socketAddress = try? SocketAddress(ipAddress: endpoint.host, port: endpoint.port)
    }

    public var description: String { endpoint.description }

    public var inFlight: Int { inFlightCounter.load(ordering: .relaxed) }

    func requestStarted() { inFlightCounter.add(1, ordering: .relaxed) }

    func requestFinished() { inFlightCounter.subtract(1, ordering: .relaxed) }

    /// True once a reload removed this endpoint from every upstream group (until a reload adds it back).
    public var isRetired: Bool { retiredFlag.load(ordering: .relaxed) }

    func setRetired(_ retired: Bool) { retiredFlag.store(retired, ordering: .relaxed) }

    public func isAvailable(at now: NIODeadline) -> Bool {
        passesHealthCheck.load(ordering: .relaxed) && now.uptimeNanoseconds >= downUntilNanoseconds.load(ordering: .relaxed)
    }

    /// Active health: what the last checks concluded (see `HealthCheckService`).
    public var isHealthy: Bool { passesHealthCheck.load(ordering: .relaxed) }

    public func setHealthCheckResult(healthy: Bool) {
        passesHealthCheck.store(healthy, ordering: .relaxed)
    }

    /// Passive health: the instance refused a connection; skip it until `until`.
    public func markDown(until: NIODeadline) {
        downUntilNanoseconds.store(until.uptimeNanoseconds, ordering: .relaxed)
    }

    public func markUp() {
        // Load first: a store on every response would bounce the cache line between event loops.
        guard downUntilNanoseconds.load(ordering: .relaxed) != 0 else { return }
        downUntilNanoseconds.store(0, ordering: .relaxed)
    }
}
