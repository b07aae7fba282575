import Logging
import NIOCore
import NIOPosix

/// The TLS listener (default :443). Each connection is either terminated here (OpenSSL TLS handler,
/// then the HTTP front) or, when its SNI names a domain on a non-HTTP port, passed through to the
/// project balancer with its ClientHello untouched.
public enum HTTPSListener {
    public struct Dependencies: Sendable {
        public var front: OpenSSLFrontContext
        public var routes: RoutingTableStore<TLSListenerRoutes>
        public var proxy: HTTPProxyRuntime
        public var tls: TLSHandler.Configuration
        public var sniPeek: SNIRouterConfiguration
        public var listenerName: String
        public var logger: Logger
        /// Where passed-through sessions are registered for draining on reload (nil: not tracked).
        public var sessions: L4SessionRegistry?

        public init(
            front: OpenSSLFrontContext,
            routes: RoutingTableStore<TLSListenerRoutes>,
            proxy: HTTPProxyRuntime,
            tls: TLSHandler.Configuration,
            sniPeek: SNIRouterConfiguration,
            listenerName: String,
            logger: Logger,
            sessions: L4SessionRegistry? = nil
        ) {
            self.sessions = sessions
            self.front = front
            self.routes = routes
            self.proxy = proxy
            self.tls = tls
            self.sniPeek = sniPeek
            self.listenerName = listenerName
            self.logger = logger
        }
    }

    public static func bind(host: String, port: Int, dependencies: Dependencies) async throws -> ListeningSockets {
        let tlsSettings = TLSHandler.Settings(configuration: dependencies.tls, logger: dependencies.logger)
        return try await ListeningSockets.bind(group: dependencies.proxy.eventLoopGroup, host: host, port: port) { bootstrap in
            bootstrap
                .serverChannelOption(.backlog, value: 1024)
                // Accepted sockets inherit TCP_NODELAY from the listening one (Linux), so no setsockopt per
                // connection. (`.socketOption(.tcp_nodelay)` per child, as before, set SOL_SOCKET option 1:
                // SO_DEBUG, not TCP_NODELAY.)
                .serverChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                // One accept per readiness event, as nginx without multi_accept: with several per event the
                // last one is a failed accept4 (EAGAIN) for nearly every connection.
                .serverChannelOption(.maxMessagesPerRead, value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // Set here, synchronously: as child channel options each would cost a future chain per
                        // accepted connection.
                        if let options = channel.syncOptions {
                            try options.setOption(.allowRemoteHalfClosure, value: true)
                            // NIO keeps a channel's first receive buffer for its whole life: make it a
                            // placeholder, so an idle connection holds no receive buffer.
                            let loop = dependencies.proxy.loopContext(for: channel.eventLoop)
                            try ReleasingRecvByteBufferAllocator.install(on: options, recycler: loop.recycler)
                        } else {
                            throw ChannelError.operationUnsupported
                        }
                        try configure(channel: channel, dependencies: dependencies, tlsSettings: tlsSettings)
                    }
                }
        }
    }

    static func configure(channel: any Channel, dependencies: Dependencies, tlsSettings: TLSHandler.Settings) throws {
        let pipeline = channel.pipeline.syncOperations
        let routes = dependencies.routes.snapshot
        guard routes.hasPassthrough else {
            try addTermination(to: pipeline, dependencies: dependencies, tlsSettings: tlsSettings)
            return
        }
        try pipeline.addHandler(
            SNIRouterHandler(
                configuration: dependencies.sniPeek,
                listenerName: dependencies.listenerName,
                logger: dependencies.logger,
                addTerminationHandlers: { pipeline in
                    try addTermination(to: pipeline, dependencies: dependencies, tlsSettings: tlsSettings)
                },
                sessions: dependencies.sessions,
                decide: { routes.decide($0) }
            )
        )
    }

    private static func addTermination(
        to pipeline: ChannelPipeline.SynchronousOperations,
        dependencies: Dependencies,
        tlsSettings: TLSHandler.Settings
    ) throws {
        let loop = dependencies.proxy.loopContext(for: pipeline.eventLoop)
        try pipeline.addTLSServerHandler(
            front: dependencies.front, settings: tlsSettings, timers: loop.timers, recycler: loop.recycler
        )
        try pipeline.configureHTTPFront(mode: .tls, runtime: dependencies.proxy)
    }
}
