import Logging
import NIOCore
import NIOPosix

/// Everything the HTTP fronts share: the balancers, the routing store, the per-event-loop upstream
/// pools, the upstream connector and the ACME seam. One per gateway; both listeners use it.
public final class HTTPProxyRuntime: Sendable {
    public let eventLoopGroup: any EventLoopGroup
    public let balancers: [HTTPBalancer]
    public let routes: RoutingTableStore<ProxyRoutes>
    /// WebSockets and other upgraded connections, so a reload can drain those on removed routes.
    public let longLivedConnections = LongLivedConnectionRegistry()
    let connector: any UpstreamConnector
    let acmeResponder: any ACMEChallengeResponder
    /// Whether the TLS front holds a certificate for a host (plain-listener redirects depend on it).
    let canServeTLS: @Sendable (Substring) -> Bool
    let accessLog: AccessLog
    let logger: Logger
    /// How long an instance that refused a connection is skipped (passive health).
    let markDownDuration: TimeAmount
    /// Built once from the group's loops and never changed: reading it needs no lock.
    private let loopContexts: [ObjectIdentifier: LoopConfined<ProxyEventLoopContext>]

    public init(
        configuration: GatewayConfiguration,
        eventLoopGroup: any EventLoopGroup,
        connector: any UpstreamConnector = SocketUpstreamConnector(),
        acmeResponder: any ACMEChallengeResponder = NoACMEChallenges(),
        canServeTLS: @escaping @Sendable (Substring) -> Bool = { _ in true },
        metrics: GatewayMetrics? = nil,
        markDownDuration: TimeAmount = .seconds(5),
        logger: Logger = Logger(label: "edge-router.http")
    ) {
        self.eventLoopGroup = eventLoopGroup
        let balancers = (0..<max(1, configuration.balancers.http)).map { HTTPBalancer(index: $0) }
        self.balancers = balancers
        self.routes = RoutingTableStore(ProxyRoutes(configuration: configuration, balancers: balancers))
        self.connector = connector
        self.acmeResponder = acmeResponder
        self.canServeTLS = canServeTLS
        self.markDownDuration = markDownDuration
        self.logger = logger
        self.accessLog = AccessLog(logger: logger)
        var contexts: [ObjectIdentifier: LoopConfined<ProxyEventLoopContext>] = [:]
        let clock: TimerQueue.Clock = eventLoopGroup is MultiThreadedEventLoopGroup ? .system : .eventLoop
        for loop in eventLoopGroup.makeIterator() {
            let context = ProxyEventLoopContext(eventLoop: loop, clock: clock, metrics: metrics)
            contexts[ObjectIdentifier(loop)] = LoopConfined(context, eventLoop: loop)
        }
        self.loopContexts = contexts
    }

    /// Hot reload: new requests use the new routes; requests in flight finish on theirs. Instance
    /// counters and pools of endpoints that stay are kept. The number of balancers is fixed at start.
    public func apply(_ configuration: GatewayConfiguration) {
        let routes = ProxyRoutes(configuration: configuration, balancers: balancers)
        self.routes.replace(with: routes)
        let endpoints = Set(routes.table.upstreamGroups.flatMap(\.endpoints))
        for balancer in balancers { balancer.registry.prune(keeping: endpoints) }
        for bound in loopContexts.values {
            bound.eventLoop.execute { bound.value.dropRetiredPools() }
        }
    }

    /// Idle pooled connections over all loops (for tests and the admin API).
    public func idleConnectionCount() async -> Int {
        var total = 0
        for bound in loopContexts.values {
            total += (try? await bound.eventLoop.submit { bound.value.idleConnectionCount }.get()) ?? 0
        }
        return total
    }

    /// Requests in flight over all balancers.
    public var inFlight: Int { balancers.reduce(0) { $0 + $1.inFlight } }

    /// The in-flight count of an endpoint summed over the balancers.
    public func inFlight(at endpoint: ListenAddress) -> Int {
        balancers.reduce(0) { $0 + ($1.registry.instance(for: endpoint)?.inFlight ?? 0) }
    }

    func loopContext(for eventLoop: any EventLoop) -> ProxyEventLoopContext {
        guard let bound = loopContexts[ObjectIdentifier(eventLoop)] else {
            preconditionFailure("channel on event loop \(eventLoop) outside the HTTPProxyRuntime's group")
        }
        return bound.value
    }

    /// Graceful stop: tells every open client connection on every loop to finish what it has and close
    /// (HTTP/1: idle ones at once, others after their response, which says `Connection: close`;
    /// HTTP/2: shutdown notice, then the final GOAWAY after `policy.http2FinalGoAwayDelay`). Connections
    /// that start later are told as they start. Returns how many were told.
    public func drainClientConnections(_ policy: FrontDrainPolicy = .init()) -> EventLoopFuture<Int> {
        let futures = loopContexts.values.map { bound in
            bound.eventLoop.submit { bound.value.fronts.drainAll(policy) }
        }
        return EventLoopFuture.reduce(0, futures, on: eventLoopGroup.any(), +)
    }

    /// Client connections still open over all loops, WebSocket tunnels not counted.
    public func openClientConnectionCount() async -> Int {
        var total = 0
        for bound in loopContexts.values {
            total += (try? await bound.eventLoop.submit { bound.value.fronts.count }.get()) ?? 0
        }
        return total
    }

    /// Closes the idle upstream connections on every loop (at shutdown).
    public func closeIdleConnections() -> EventLoopFuture<Void> {
        let futures = loopContexts.values.map { bound in
            bound.eventLoop.submit { bound.value.closeAllIdle() }
        }
        return EventLoopFuture.andAllSucceed(futures, on: eventLoopGroup.any())
    }
}
