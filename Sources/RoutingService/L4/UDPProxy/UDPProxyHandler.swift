import Logging
import NIOCore

/// The handler of a public UDP port's listener channel: keeps a flow per client address and port,
/// picks the instance with the fewest active flows for a new one, relays datagrams to the flow's
/// upstream socket, and expires idle flows on a timer.
final class UDPProxyHandler {
    private var target: L4UpstreamTarget
    private let configuration: UDPProxyConfiguration
    private let statistics: UDPProxyStatistics
    private let listenerName: String
    private let logger: Logger
    private let policy = FewestConnectionsPolicy()
    private var table: UDPSessionTable<SocketAddress, UDPFlow>
    private var expiryTimer: Scheduled<Void>?
    private var limitLog = RateLimitedLog()
    private var noInstanceLog = RateLimitedLog()

    init(
        target: L4UpstreamTarget,
        configuration: UDPProxyConfiguration,
        statistics: UDPProxyStatistics,
        listenerName: String,
        logger: Logger
    ) {
        self.target = target
        self.configuration = configuration
        self.statistics = statistics
        self.listenerName = listenerName
        self.logger = logger
        self.table = UDPSessionTable(
            maximumFlows: configuration.maximumFlows,
            idleTimeout: TimeAmount(configuration.idleTimeout)
        )
    }

    /// New flows go to `target`'s instances; flows in progress keep theirs.
    func updateTarget(_ target: L4UpstreamTarget) {
        self.target = target
    }

    /// How often idle flows are looked for: a quarter of the timeout, between 10 ms and 1 s.
    private var sweepInterval: TimeAmount {
        let quarter = TimeAmount(configuration.idleTimeout).nanoseconds / 4
        return .nanoseconds(min(max(quarter, 10_000_000), 1_000_000_000))
    }

    private func scheduleSweep(context: ChannelHandlerContext) {
        expiryTimer = context.eventLoop.assumeIsolated().scheduleTask(in: sweepInterval) {
            for (_, flow) in self.table.expire(now: .now()) {
                self.end(flow, reason: .idleTimeout)
            }
            self.scheduleSweep(context: context)
        }
    }

    private func end(_ flow: UDPFlow, reason: L4SessionEnd) {
        statistics.flowEnded()
        flow.close(reason: reason)
    }

    private func startFlow(for client: SocketAddress, context: ChannelHandlerContext, now: NIODeadline) -> UDPFlow? {
        guard let (_, lease) = policy.acquire(from: target.instances, excluding: []) else {
            statistics.dropped()
            if let suppressed = noInstanceLog.occurrence(now: now) {
                logger.warning(
                    "UDP datagram dropped: the service has no instances",
                    metadata: ["l4.listener": "\(listenerName)", "l4.target": "\(target.name)",
                               "l4.suppressed": "\(suppressed)"]
                )
            }
            return nil
        }
        let record = L4SessionRecord(
            kind: .udp,
            client: Optional(client).logDescription,
            listener: listenerName,
            target: target.name,
            logger: logger
        )
        let flow = UDPFlow(
            client: client,
            lease: lease,
            record: record,
            listenerChannel: context.channel,
            maximumQueuedDatagrams: configuration.maximumQueuedDatagrams,
            statistics: statistics
        )
        flow.onReply = { [unowned self] in
            self.table.activity(on: client, now: .now())
        }
        flow.onFailure = { [unowned self, unowned flow] reason, detail in
            guard self.table.flow(for: client) === flow else { return }
            self.table.remove(client)
            flow.record.noteEnd(reason, detail: detail)
            self.end(flow, reason: reason)
        }
        table.insert(flow, for: client, now: now)
        statistics.flowStarted()
        flow.start()
        return flow
    }
}

extension UDPProxyHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    func handlerAdded(context: ChannelHandlerContext) {
        scheduleSweep(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let now = NIODeadline.now()
        switch table.datagramReceived(from: envelope.remoteAddress, now: now) {
        case .existing(let flow):
            flow.datagramFromClient(envelope.data)
        case .admit:
            startFlow(for: envelope.remoteAddress, context: context, now: now)?.datagramFromClient(envelope.data)
        case .full:
            statistics.refusedAtLimit()
            if let suppressed = limitLog.occurrence(now: now) {
                logger.warning(
                    "UDP flow limit reached: datagram from a new client dropped",
                    metadata: [
                        "l4.listener": "\(listenerName)",
                        "l4.client": "\(Optional(envelope.remoteAddress).logDescription)",
                        "l4.max_flows": "\(configuration.maximumFlows)",
                        "l4.suppressed": "\(suppressed)",
                    ]
                )
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A bad datagram or an ICMP error on the listening socket must not stop the port.
        logger.debug("UDP listener error", metadata: ["l4.listener": "\(listenerName)", "l4.error": "\(error)"])
    }

    func channelInactive(context: ChannelHandlerContext) {
        expiryTimer?.cancel()
        expiryTimer = nil
        for flow in table.removeAll() {
            end(flow, reason: .shutdown)
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        expiryTimer?.cancel()
        expiryTimer = nil
    }
}

@available(*, unavailable)
extension UDPProxyHandler: Sendable {}
