import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The running gateway: certificates, routing, the TLS and plain listeners, the public L4 ports.
/// A `Service`: `run()` binds everything, serves until graceful shutdown, then stops accepting,
/// lets requests and L4 sessions in flight finish up to `timeouts.drain`, and returns.
public final class Gateway: Service, Sendable {
    public let loaded: LoadedConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let bound = Mutex<BoundAddresses?>(nil)

    /// The addresses actually bound (ports chosen by the system when 0 was configured), once running.
    public struct BoundAddresses: Sendable {
        public var https: SocketAddress?
        public var http: SocketAddress?
        public var publicPorts: [SocketAddress?]
    }

    public init(loaded: LoadedConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        self.loaded = loaded
        self.group = group
        self.logger = logger
    }

    public var boundAddresses: BoundAddresses? { bound.withLock { $0 } }

    public func run() async throws {
        let configuration = loaded.configuration
        let certificateStore = CertificateStore(directory: configuration.certificates.directory)
        let (index, _) = CertificateContexts.load(
            store: certificateStore,
            defaultName: configuration.certificates.defaultName,
            logger: logger
        )
        let contexts = TLSContextStore(index)
        let registry = L4ConnectionRegistry()
        let tlsRoutes = RoutingTableStore(TLSListenerRoutes(configuration: configuration, registry: registry))
        let front = try OpenSSLFrontContext { serverName in
            guard tlsRoutes.snapshot.terminatesTLS(forServerName: serverName) else { return nil }
            return contexts.context(forServerName: serverName)
        }
        let proxy = HTTPProxyRuntime(configuration: configuration, eventLoopGroup: group, logger: logger)
        let timeouts = configuration.timeouts
        let relay = TCPRelayConfiguration(connectTimeout: timeouts.upstreamConnect, idleTimeout: .seconds(300))

        let https = try await HTTPSListener.bind(
            host: configuration.listen.https.host,
            port: configuration.listen.https.port,
            dependencies: .init(
                front: front,
                routes: tlsRoutes,
                proxy: proxy,
                tls: .init(handshakeTimeout: timeouts.handshake),
                sniPeek: .init(peekTimeout: timeouts.handshake, relay: relay),
                listenerName: "https/\(configuration.listen.https)",
                logger: logger
            )
        )
        let http = try await HTTPListener.bind(
            host: configuration.listen.http.host,
            port: configuration.listen.http.port,
            mode: .plain,
            runtime: proxy
        )
        var publicListeners: [any L4PortListener] = []
        for publicPort in configuration.publicPorts {
            guard let service = configuration.service(named: publicPort.service) else { continue }
            let listener = try L4ListenerFactory.makeListener(
                for: publicPort,
                service: service,
                registry: registry,
                tcp: relay,
                group: group,
                logger: logger
            )
            try await listener.start()
            publicListeners.append(listener)
        }
        bound.withLock {
            $0 = BoundAddresses(
                https: https.localAddress,
                http: http.localAddress,
                publicPorts: publicListeners.map(\.localAddress)
            )
        }
        logger.info("edge-router running", metadata: [
            "https": "\(https.localAddress?.description ?? "-")",
            "http": "\(http.localAddress?.description ?? "-")",
            "publicPorts": "\(publicListeners.count)",
            "config": "\(loaded.path)",
        ])

        await withGracefulShutdownHandler {
            await waitForever()
        } onGracefulShutdown: {
            self.logger.info("Shutting down: no new connections; draining", metadata: [
                "drain": "\(timeouts.drain)",
            ])
        }

        // Stop accepting first, then let what is in flight finish up to the drain deadline.
        https.close(promise: nil)
        http.close(promise: nil)
        for listener in publicListeners { await listener.stop() }
        let deadline = ContinuousClock.now.advanced(by: timeouts.drain)
        while proxy.inFlight > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if proxy.inFlight > 0 {
            logger.warning("Drain deadline reached with requests in flight", metadata: ["inFlight": "\(proxy.inFlight)"])
        }
        try? await proxy.closeIdleConnections().get()
        logger.info("edge-router stopped")
    }
}

/// Suspends until the task is cancelled (graceful shutdown ends it through the handler above).
private func waitForever() async {
    let stream = AsyncStream<Never> { _ in }
    for await _ in stream.cancelOnGracefulShutdown() {}
}
