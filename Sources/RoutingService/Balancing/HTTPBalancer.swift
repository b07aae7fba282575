import NIOCore
import Synchronization

/// One active HTTP balancer: its own instance registry (in-flight counts, health) and, per event
/// loop, its own upstream connection pools (kept by `ProxyEventLoopContext`).
public final class HTTPBalancer: Sendable {
    public let index: Int
    public let registry: UpstreamRegistry
    private let inFlightCounter = Atomic<Int>(0)
    private let requestCounter = Atomic<Int>(0)
    private let policy = LeastBusyPolicy()

    public init(index: Int) {
        self.index = index
        self.registry = UpstreamRegistry(balancerIndex: index)
    }

    public var inFlight: Int { inFlightCounter.load(ordering: .relaxed) }

    /// Requests this balancer has taken since start (for metrics and tests).
    public var requestsHandled: Int { requestCounter.load(ordering: .relaxed) }

    func requestStarted() {
        inFlightCounter.add(1, ordering: .relaxed)
        requestCounter.add(1, ordering: .relaxed)
    }

    func requestFinished() { inFlightCounter.subtract(1, ordering: .relaxed) }

    /// The least-busy available instance, `excluding` one already tried (for the retry).
    func pickInstance<R: RandomNumberGenerator>(
        from instances: [UpstreamInstance],
        excluding excluded: UpstreamInstance?,
        now: NIODeadline,
        using generator: inout R
    ) -> UpstreamInstance? {
        let index = policy.choose(
            from: instances,
            using: &generator,
            inFlight: { $0.inFlight },
            isAvailable: { $0 !== excluded && $0.isAvailable(at: now) }
        )
        guard let index else { return nil }
        let chosen = instances[index]
        // The fallback may hand back the excluded instance when it is the only one: a retry there is pointless.
        return chosen === excluded ? nil : chosen
    }
}

extension Array where Element == HTTPBalancer {
    /// The front's choice: the balancer with fewer requests in flight, ties at random.
    func leastBusy<R: RandomNumberGenerator>(using generator: inout R) -> HTTPBalancer {
        let index = LeastBusyPolicy().choose(from: self, using: &generator, inFlight: { $0.inFlight })
        return self[index ?? startIndex]
    }
}
