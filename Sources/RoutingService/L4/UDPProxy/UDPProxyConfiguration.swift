import Synchronization

/// Limits of the UDP relay of the project balancer.
public struct UDPProxyConfiguration: Sendable, Equatable {
    /// A flow with no datagram either way for this long ends, and its upstream socket is closed.
    public var idleTimeout: Duration
    /// New flows beyond this many are dropped (and counted) until some expire.
    public var maximumFlows: Int
    /// Datagrams a new flow may queue while its upstream socket is being set up.
    public var maximumQueuedDatagrams: Int

    public init(idleTimeout: Duration = .seconds(30), maximumFlows: Int = 10_000, maximumQueuedDatagrams: Int = 64) {
        self.idleTimeout = idleTimeout
        self.maximumFlows = maximumFlows
        self.maximumQueuedDatagrams = maximumQueuedDatagrams
    }

    /// The largest UDP payload over IPv4 (65,535 − 8 UDP − 20 IP header bytes).
    public static let maximumDatagramSize = 65_507
}

/// Counters of one UDP public port, readable from any thread (metrics will read them).
public final class UDPProxyStatistics: Sendable {
    private let _activeFlows = Atomic<Int>(0)
    private let _flowsStarted = Atomic<Int>(0)
    private let _flowsRefusedAtLimit = Atomic<Int>(0)
    private let _datagramsDropped = Atomic<Int>(0)

    public init() {}

    public var activeFlows: Int { _activeFlows.load(ordering: .relaxed) }
    public var flowsStarted: Int { _flowsStarted.load(ordering: .relaxed) }
    /// Datagrams from new clients dropped because the flow limit was reached.
    public var flowsRefusedAtLimit: Int { _flowsRefusedAtLimit.load(ordering: .relaxed) }
    /// Datagrams dropped for other reasons (no instance, queue full while connecting, flow failed).
    public var datagramsDropped: Int { _datagramsDropped.load(ordering: .relaxed) }

    func flowStarted() {
        _activeFlows.wrappingAdd(1, ordering: .relaxed)
        _flowsStarted.wrappingAdd(1, ordering: .relaxed)
    }

    func flowEnded() { _activeFlows.wrappingSubtract(1, ordering: .relaxed) }
    func refusedAtLimit() { _flowsRefusedAtLimit.wrappingAdd(1, ordering: .relaxed) }
    func dropped() { _datagramsDropped.wrappingAdd(1, ordering: .relaxed) }
}
