import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A bound public port of the project balancer. One object per `PublicPortConfiguration`, so a config
/// reload can bind a new port (`start`) or release one (`stop`) while the others keep running.
public protocol L4PortListener: AnyObject, Sendable {
    var configuration: PublicPortConfiguration { get }
    /// The bound address, once started (the real port when `listen` asked for port 0).
    var localAddress: SocketAddress? { get }
    func start() async throws
    /// Stops accepting (TCP) or closes the port and its flows (UDP). TCP sessions in flight go on; a
    /// reload that drops the port closes them after the drain deadline (`L4SessionRegistry`).
    func stop() async
    /// Points new sessions at another set of instances (instances added or removed, config reload).
    func updateTarget(_ target: L4UpstreamTarget)
}

public enum L4ListenerError: Error, CustomStringConvertible {
    case alreadyStarted(ListenAddress)
    case wrongTransport(expected: TransportProtocol, got: TransportProtocol)

    public var description: String {
        switch self {
        case .alreadyStarted(let address): "the L4 listener on \(address) is already started"
        case .wrongTransport(let expected, let got): "an L4 \(expected) listener was given a \(got) public port"
        }
    }
}

/// Makes the listener for one public port, its target resolved through the shared registry.
public enum L4ListenerFactory {
    public static func makeListener(
        for port: PublicPortConfiguration,
        service: ServiceConfiguration,
        registry: L4ConnectionRegistry,
        tcp: TCPRelayConfiguration = .init(),
        udp: UDPProxyConfiguration = .init(),
        group: any EventLoopGroup,
        logger: Logger,
        sessions: L4SessionRegistry? = nil
    ) throws -> any L4PortListener {
        let target = registry.target(service: service, port: port.port, transport: port.transport)
        switch port.transport {
        case .tcp:
            return try L4TCPListener(
                configuration: port, target: target, relay: tcp, group: group, logger: logger, sessions: sessions
            )
        case .udp:
            return try L4UDPListener(configuration: port, target: target, proxy: udp, group: group, logger: logger)
        }
    }
}

/// A public TCP port: every accepted connection is relayed to the least-busy instance.
public final class L4TCPListener: L4PortListener {
    public let configuration: PublicPortConfiguration
    private let relay: TCPRelayConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let target: Mutex<L4UpstreamTarget>
    private let channel = Mutex<(any Channel)?>(nil)
    /// Sessions are registered here under this port's key, so a reload that removes the port can
    /// close them after the drain deadline (the listener itself is stopped at once).
    private let session: L4SessionTag?

    public init(
        configuration: PublicPortConfiguration,
        target: L4UpstreamTarget,
        relay: TCPRelayConfiguration,
        group: any EventLoopGroup,
        logger: Logger,
        sessions: L4SessionRegistry? = nil
    ) throws {
        guard configuration.transport == .tcp else {
            throw L4ListenerError.wrongTransport(expected: .tcp, got: configuration.transport)
        }
        self.session = sessions.map { L4SessionTag(registry: $0, route: .forPublicPort(configuration)) }
        self.configuration = configuration
        self.target = Mutex(target)
        self.relay = relay
        self.group = group
        self.logger = logger
    }

    public var localAddress: SocketAddress? { channel.withLock { $0?.localAddress } }

    private var currentTarget: L4UpstreamTarget { target.withLock { $0 } }

    public func updateTarget(_ target: L4UpstreamTarget) {
        self.target.withLock { $0 = target }
    }

    public func start() async throws {
        guard channel.withLock({ $0 == nil }) else { throw L4ListenerError.alreadyStarted(configuration.listen) }
        let listenerName = "tcp/\(configuration.listen)"
        let bound = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { [self] channel in
                let target = currentTarget
                return channel.eventLoop.makeCompletedFuture {
                    let record = L4SessionRecord(
                        kind: .tcp,
                        client: channel.remoteAddress.logDescription,
                        listener: listenerName,
                        target: target.name,
                        logger: logger
                    )
                    try channel.pipeline.syncOperations.addHandler(
                        TCPRelayConnectHandler(target: target, configuration: relay, record: record, session: session)
                    )
                }
            }
            .bind(host: configuration.listen.host, port: configuration.listen.port)
            .get()
        channel.withLock { $0 = bound }
        logger.info("L4 TCP listener started", metadata: ["l4.listener": "\(listenerName)",
                                                        "l4.local": "\(bound.localAddress.logDescription)"])
    }

    public func stop() async {
        guard let bound = channel.withLock({ channel in defer { channel = nil }; return channel }) else { return }
        try? await bound.close()
        logger.info("L4 TCP listener stopped", metadata: ["l4.listener": "tcp/\(configuration.listen)"])
    }
}

/// A public UDP port: a flow per client address and port, relayed to the instance with the fewest flows.
public final class L4UDPListener: L4PortListener {
    public let configuration: PublicPortConfiguration
    public let statistics = UDPProxyStatistics()
    private let proxy: UDPProxyConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let target: Mutex<L4UpstreamTarget>
    private let channel = Mutex<(any Channel)?>(nil)

    public init(
        configuration: PublicPortConfiguration,
        target: L4UpstreamTarget,
        proxy: UDPProxyConfiguration,
        group: any EventLoopGroup,
        logger: Logger
    ) throws {
        guard configuration.transport == .udp else {
            throw L4ListenerError.wrongTransport(expected: .udp, got: configuration.transport)
        }
        self.configuration = configuration
        self.target = Mutex(target)
        self.proxy = proxy
        self.group = group
        self.logger = logger
    }

    public var localAddress: SocketAddress? { channel.withLock { $0?.localAddress } }

    private var currentTarget: L4UpstreamTarget { target.withLock { $0 } }

    /// UDP flows keep the instance they started on; new flows use the new target.
    public func updateTarget(_ target: L4UpstreamTarget) {
        self.target.withLock { $0 = target }
        let handlerTarget = target
        guard let bound = channel.withLock({ $0 }) else { return }
        bound.eventLoop.execute {
            let handler = try? bound.pipeline.syncOperations.handler(type: UDPProxyHandler.self)
            handler?.updateTarget(handlerTarget)
        }
    }

    public func start() async throws {
        guard channel.withLock({ $0 == nil }) else { throw L4ListenerError.alreadyStarted(configuration.listen) }
        let listenerName = "udp/\(configuration.listen)"
        let bound = try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            // Room for the largest datagram: the default allocator would cut datagrams at 2 KiB.
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelInitializer { [self] channel in
                let target = currentTarget
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        UDPProxyHandler(
                            target: target,
                            configuration: proxy,
                            statistics: statistics,
                            listenerName: listenerName,
                            logger: logger
                        )
                    )
                }
            }
            .bind(host: configuration.listen.host, port: configuration.listen.port)
            .get()
        channel.withLock { $0 = bound }
        logger.info("L4 UDP listener started", metadata: ["l4.listener": "\(listenerName)",
                                                        "l4.local": "\(bound.localAddress.logDescription)"])
    }

    public func stop() async {
        guard let bound = channel.withLock({ channel in defer { channel = nil }; return channel }) else { return }
        try? await bound.close()
        logger.info("L4 UDP listener stopped", metadata: ["l4.listener": "udp/\(configuration.listen)"])
    }
}
