import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The running gateway: certificates, routing, the TLS and plain listeners, the public L4 ports, the
/// admin API and the configuration file watcher. A `Service`: `run()` binds everything, serves until
/// graceful shutdown, then stops accepting, lets requests and L4 sessions in flight finish up to
/// `timeouts.drain`, and returns. Configuration changes go through `reloader` (SIGHUP: `reload()`).
public final class Gateway: Service, Sendable {
    public let loaded: LoadedConfiguration
    private let initialText: String?
    private let options: Options
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state = Mutex<Running?>(nil)

    public struct Options: Sendable {
        /// Reload when the configuration file changes (polled every `watchInterval`).
        public var watchFile: Bool
        public var watchInterval: Duration
        /// Test hook: how the configuration file is written back (default: `AtomicFile`).
        public var writeFile: (@Sendable (String, String) throws -> Void)?

        public init(watchFile: Bool = true, watchInterval: Duration = .milliseconds(250),
                    writeFile: (@Sendable (String, String) throws -> Void)? = nil) {
            self.watchFile = watchFile
            self.watchInterval = watchInterval
            self.writeFile = writeFile
        }
    }

    /// The addresses actually bound (ports chosen by the system when 0 was configured), once running.
    public struct BoundAddresses: Sendable {
        public var https: SocketAddress?
        public var http: SocketAddress?
        public var publicPorts: [SocketAddress?]
        public var admin: SocketAddress?
    }

    private struct Running: Sendable {
        var bound: BoundAddresses
        var reloader: ConfigReloader
    }

    /// `text` is the file's text when the caller already has it; otherwise it is read from `loaded.path`.
    public init(
        loaded: LoadedConfiguration,
        text: String? = nil,
        options: Options = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) {
        self.loaded = loaded
        self.initialText = text
        self.options = options
        self.group = group
        self.logger = logger
    }

    public var boundAddresses: BoundAddresses? { state.withLock { $0?.bound } }

    /// Serializes every configuration change; nil until `run()` has bound the listeners.
    public var reloader: ConfigReloader? { state.withLock { $0?.reloader } }

    /// Reloads the configuration file (SIGHUP). Refused configurations are logged with every problem.
    @discardableResult
    public func reload(trigger: ReloadTrigger = .signal) async -> ReloadOutcome? {
        guard let reloader else { return nil }
        let outcome = await reloader.reloadFromFile(trigger: trigger)
        if case .unchanged(let version) = outcome {
            logger.info("Reload: configuration unchanged", metadata: ["version": "\(version)", "trigger": "\(trigger.rawValue)"])
        }
        return outcome
    }

    public func run() async throws {
        let configuration = loaded.configuration
        let runtime = GatewayRuntime(configuration: configuration, group: group, logger: logger)
        runtime.reloadCertificates(configuration, force: true)
        let tlsRoutes = runtime.tlsRoutes
        let contexts = runtime.contexts
        let challenges = runtime.challenges
        var selectChallengeContext: (@Sendable (String) -> OpenSSLServerContext?)?
        if runtime.certificateManager != nil {
            selectChallengeContext = { challenges.tlsALPN01Context(forServerName: $0) }
        }
        let front = try OpenSSLFrontContext(
            selectContext: { serverName in
                guard tlsRoutes.snapshot.terminatesTLS(forServerName: serverName) else { return nil }
                return contexts.context(forServerName: serverName)
            },
            selectChallengeContext: selectChallengeContext
        )
        runtime.registerMetricCollectors()
        let proxy = runtime.proxy
        let timeouts = configuration.timeouts

        let https = try await HTTPSListener.bind(
            host: configuration.listen.https.host,
            port: configuration.listen.https.port,
            dependencies: .init(
                front: front,
                routes: tlsRoutes,
                proxy: proxy,
                tls: {
                    var tls = TLSHandler.Configuration(handshakeTimeout: timeouts.handshake)
                    tls.observer = runtime.metrics
                    return tls
                }(),
                sniPeek: .init(peekTimeout: timeouts.handshake, relay: runtime.relay),
                listenerName: "https/\(configuration.listen.https)",
                logger: logger,
                sessions: runtime.l4Sessions
            )
        )
        let http = try await HTTPListener.bind(
            host: configuration.listen.http.host,
            port: configuration.listen.http.port,
            mode: .plain,
            runtime: proxy
        )
        try await runtime.startPublicPorts(loaded)

        let text = initialText
            ?? (try? String(contentsOfFile: loaded.path, encoding: .utf8))
            ?? ConfigurationEmitter.yaml(configuration)
        let reloader = ConfigReloader(
            loaded: loaded, text: text, runtime: runtime, logger: logger,
            writeFile: options.writeFile ?? { text, path in try AtomicFile.write(Array(text.utf8), to: path) }
        )
        let admin = await startAdmin(configuration: configuration, reloader: reloader)

        state.withLock {
            $0 = Running(
                bound: BoundAddresses(
                    https: https.localAddress,
                    http: http.localAddress,
                    publicPorts: configuration.publicPorts.map { runtime.publicListener(for: $0)?.localAddress },
                    admin: admin?.localAddress
                ),
                reloader: reloader
            )
        }
        let version = await reloader.version
        logger.info("edge-router running", metadata: [
            "https": "\(https.localAddress?.description ?? "-")",
            "http": "\(http.localAddress?.description ?? "-")",
            "admin": "\(admin?.localAddress?.description ?? "-")",
            "publicPorts": "\(runtime.publicListenerCount)",
            "config": "\(loaded.path)",
            "version": "\(version)",
        ])

        await withTaskGroup(of: Void.self) { tasks in
            if let admin { tasks.addTask { await admin.run() } }
            tasks.addTask { try? await runtime.health.run() }
            if let manager = runtime.certificateManager { tasks.addTask { try? await manager.run() } }
            if options.watchFile, FileManager.default.fileExists(atPath: loaded.path) {
                let watcher = ConfigFileWatcher(path: loaded.path, interval: options.watchInterval)
                tasks.addTask {
                    await watcher.run { [weak self] in _ = await self?.reload(trigger: .fileChange) }
                }
            }
            await withGracefulShutdownHandler {
                await waitForever()
            } onGracefulShutdown: {
                self.logger.info("Shutting down: no new connections; draining", metadata: [
                    "drain": "\(timeouts.drain)",
                ])
            }
            await admin?.close()
            tasks.cancelAll()
        }

        // Stop accepting first, tell the client connections to finish what they have (HTTP/1: close
        // when idle, `Connection: close` on the response in progress; HTTP/2: GOAWAY), then let what
        // is in flight finish up to the drain deadline.
        https.close(promise: nil)
        http.close(promise: nil)
        let drain = await reloader.current.configuration.timeouts.drain
        let deadline = ContinuousClock.now.advanced(by: drain)
        let told = (try? await proxy.drainClientConnections(Self.drainPolicy(for: drain)).get()) ?? 0
        logger.info("Client connections told to drain", metadata: ["connections": "\(told)"])
        await runtime.stopPublicPorts()
        let registry = runtime.registry
        var clientConnections = await proxy.openClientConnectionCount()
        while proxy.inFlight + registry.activeTCPSessions + clientConnections > 0 && ContinuousClock.now < deadline {
            await pause(.milliseconds(50))
            clientConnections = await proxy.openClientConnectionCount()
        }
        if proxy.inFlight + registry.activeTCPSessions + clientConnections > 0 {
            logger.warning("Drain deadline reached: closing what is still open", metadata: [
                "requestsInFlight": "\(proxy.inFlight)", "l4Sessions": "\(registry.activeTCPSessions)",
                "clientConnections": "\(clientConnections)",
            ])
        }
        try? await proxy.closeIdleConnections().get()
        logger.info("edge-router stopped")
    }

    /// HTTP/2's final GOAWAY follows the shutdown notice after a second, or half the drain time when
    /// that is shorter, so it goes out before the deadline.
    static func drainPolicy(for drain: Duration) -> FrontDrainPolicy {
        FrontDrainPolicy(http2FinalGoAwayDelay: min(.seconds(1), (drain / 2).timeAmount))
    }

    /// Waits `amount` even when the task is cancelled (an in-process gateway stopped by cancelling its
    /// task still drains; `Task.sleep` would return at once and the drain loop would spin).
    private func pause(_ amount: TimeAmount) async {
        try? await group.any().scheduleTask(in: amount) {}.futureResult.get()
    }

    /// The admin API, when a token file is configured and readable; otherwise it is not started, and the
    /// log says why (the CLI's management commands then report that no gateway answers).
    private func startAdmin(configuration: GatewayConfiguration, reloader: ConfigReloader) async -> AdminServer? {
        guard let tokenFile = configuration.admin.tokenFile else {
            logger.notice("Admin API not started: admin.tokenFile is not set")
            return nil
        }
        let token: AdminToken
        do {
            token = try AdminToken(path: tokenFile)
        } catch {
            logger.error("Admin API not started", metadata: ["reason": "\(error)"])
            return nil
        }
        do {
            return try await AdminServer.bind(
                host: configuration.admin.listen.host,
                port: configuration.admin.listen.port,
                router: AdminRouter(reloader: reloader, token: token),
                group: group,
                logger: logger
            )
        } catch {
            logger.error("Admin API not started: cannot bind \(configuration.admin.listen)", metadata: ["error": "\(error)"])
            return nil
        }
    }
}

/// Suspends until the task is cancelled (graceful shutdown ends it through the handler above).
private func waitForever() async {
    let stream = AsyncStream<Never> { _ in }
    for await _ in stream.cancelOnGracefulShutdown() {}
}
