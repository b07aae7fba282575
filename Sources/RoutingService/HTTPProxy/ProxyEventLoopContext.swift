import NIOCore

/// What the proxy keeps per event loop: the upstream pools (one per balancer and instance), a cheap
/// random generator, the routing snapshot cache, the open client connection fronts (for the drain
/// at shutdown), the loop's timer queue (every connection timeout on the loop) and its spare byte
/// buffers. Only ever touched on its loop, so no locks.
final class ProxyEventLoopContext {
    let eventLoop: any EventLoop
    /// The client and upstream connections' timeouts on this loop (TLS handshake, header, idle,
    /// response head, pooled connections' idle).
    let timers: TimerQueue
    /// The request path's buffers (TLS reads and records, plaintext, heads), reused.
    let recycler = ByteBufferRecycler()
    var random = SplitMix64()
    private var routesCache = RoutingTableStore<ProxyRoutes>.Cache()
    /// Indexed by `UpstreamInstance.slot`.
    private var pools: [UpstreamConnectionPool?] = []
    /// The client connections' fronts on this loop (WebSocket tunnels leave it at their upgrade).
    let fronts = FrontConnectionSet()

    /// Nil when the runtime has no metrics (tests of the proxy alone).
    let requestMetrics: RequestMetricsRecorder?

    init(eventLoop: any EventLoop, clock: TimerQueue.Clock = .eventLoop, metrics: GatewayMetrics? = nil) {
        self.eventLoop = eventLoop
        self.timers = TimerQueue(eventLoop: eventLoop, clock: clock)
        self.requestMetrics = metrics.map(RequestMetricsRecorder.init)
    }

    func routes(from store: RoutingTableStore<ProxyRoutes>) -> ProxyRoutes {
        routesCache.current(from: store)
    }

    /// The pool for an instance of one balancer; the pool keeps the instance alive, so the key stays unique.
    func pool(for instance: UpstreamInstance) -> UpstreamConnectionPool {
        let slot = instance.slot
        if slot < pools.count, let pool = pools[slot] { return pool }
        if slot >= pools.count { pools.append(contentsOf: repeatElement(nil, count: slot + 1 - pools.count)) }
        let pool = UpstreamConnectionPool(instance: instance, timers: timers)
        pools[slot] = pool
        return pool
    }

    var idleConnectionCount: Int { pools.reduce(0) { $0 + ($1?.idleCount ?? 0) } }

    /// After a reload: pools of instances that were removed close their idle connections and go away.
    func dropRetiredPools() {
        for (slot, pool) in pools.enumerated() where pool?.instance.isRetired == true {
            pool?.closeAll()
            pools[slot] = nil
        }
    }

    func closeAllIdle() {
        for pool in pools { pool?.closeAll() }
    }
}

/// A value created off its event loop (at start) and used only on it afterwards. Unlike
/// `NIOLoopBound`, it may be created anywhere; access is checked in debug builds.
struct LoopConfined<Value: AnyObject>: @unchecked Sendable {
    let eventLoop: any EventLoop
    private let storage: Value

    init(_ value: Value, eventLoop: any EventLoop) {
        self.storage = value
        self.eventLoop = eventLoop
    }

    var value: Value {
        eventLoop.assertInEventLoop()
        return storage
    }
}
