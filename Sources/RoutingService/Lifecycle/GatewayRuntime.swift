import Foundation
import Logging
import NIOCore
import Synchronization

/// The parts of a running gateway that the configuration drives (routing snapshots, certificate index,
/// public L4 ports), and how a new configuration is applied to them: only what the diff lists is touched.
/// Not thread-safe for concurrent `apply` calls: `ConfigReloader` (an actor) serializes them.
public final class GatewayRuntime: Sendable {
    public let proxy: HTTPProxyRuntime
    public let tlsRoutes: RoutingTableStore<TLSListenerRoutes>
    public let contexts: TLSContextStore
    public let registry: L4ConnectionRegistry
    /// Open TCP sessions of public ports and SNI passthrough, by route, for draining on reload.
    public let l4Sessions = L4SessionRegistry()
    public let metrics: GatewayMetrics
    /// Active health checks of HTTP instances; run beside the listeners.
    public let health: HealthCheckService
    /// ACME challenge answers, shared by the plain listener (HTTP-01) and the TLS front (TLS-ALPN-01).
    public let challenges: ACMEChallengeTable
    /// Automatic certificates (`ssl: auto`); nil without an `acme` section.
    public let certificateManager: CertificateManager?
    let relay: TCPRelayConfiguration
    let udp: UDPProxyConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    /// Keyed by `tcp/127.0.0.1:7000`: the identity of a public port across reloads.
    private let publicListenersByKey = Mutex<[String: any L4PortListener]>([:])
    private let certificateFingerprint = Mutex<String>("")
    private let certificatesLoaded = Mutex<[StoredCertificate]>([])

    /// What the last load of the store found (for metrics and the admin API).
    public var loadedCertificates: [StoredCertificate] { certificatesLoaded.withLock { $0 } }

    var publicListeners: [any L4PortListener] { publicListenersByKey.withLock { Array($0.values) } }

    public init(configuration: GatewayConfiguration, group: any EventLoopGroup, logger: Logger) {
        self.group = group
        self.logger = logger
        self.registry = L4ConnectionRegistry()
        self.tlsRoutes = RoutingTableStore(TLSListenerRoutes(configuration: configuration, registry: registry))
        let contexts = TLSContextStore()
        self.contexts = contexts
        let challenges = ACMEChallengeTable()
        self.challenges = challenges
        let metrics = GatewayMetrics()
        self.metrics = metrics
        self.proxy = HTTPProxyRuntime(
            configuration: configuration,
            eventLoopGroup: group,
            acmeResponder: challenges,
            canServeTLS: { contexts.context(forServerName: String($0)) != nil },
            metrics: metrics,
            logger: logger
        )
        self.health = HealthCheckService(configuration: configuration, runtime: proxy, logger: logger)
        self.certificateManager = Self.makeCertificateManager(
            configuration: configuration, contexts: contexts, challenges: challenges, group: group, logger: logger
        )
        self.relay = TCPRelayConfiguration(
            connectTimeout: configuration.timeouts.upstreamConnect, idleTimeout: configuration.timeouts.l4Idle
        )
        self.udp = UDPProxyConfiguration(idleTimeout: configuration.timeouts.udpFlowIdle)
    }

    private static func makeCertificateManager(
        configuration: GatewayConfiguration,
        contexts: TLSContextStore,
        challenges: ACMEChallengeTable,
        group: any EventLoopGroup,
        logger: Logger
    ) -> CertificateManager? {
        guard let acme = configuration.acme else { return nil }
        do {
            let issuer = try ACMECertificateIssuer(
                configuration: acme,
                certificateDirectory: configuration.certificates.directory,
                challenges: challenges,
                group: group,
                logger: logger
            )
            return CertificateManager(
                configuration: configuration,
                store: CertificateStore(directory: configuration.certificates.directory),
                contexts: contexts,
                issuer: issuer,
                logger: logger
            )
        } catch {
            logger.error("Automatic certificates are off: the ACME client could not start", metadata: [
                "directory": "\(acme.directoryURL)", "reason": "\(error)",
            ])
            return nil
        }
    }

    static func key(_ port: PublicPortConfiguration) -> String { "\(port.transport.rawValue)/\(port.listen)" }

    /// The public listeners in configuration order of their keys (for `BoundAddresses` and the admin API).
    public func publicListener(for port: PublicPortConfiguration) -> (any L4PortListener)? {
        publicListenersByKey.withLock { $0[Self.key(port)] }
    }

    public var publicListenerCount: Int { publicListenersByKey.withLock { $0.count } }

    // MARK: certificates

    /// Loads the certificate store and swaps the index in, when the store changed since the last load
    /// (or `force`). Open connections keep the context they have.
    @discardableResult
    public func reloadCertificates(_ configuration: GatewayConfiguration, force: Bool = false) -> Bool {
        let store = CertificateStore(directory: configuration.certificates.directory)
        let fingerprint = Self.fingerprint(of: store) + "|" + (configuration.certificates.defaultName ?? "")
        let unchanged = certificateFingerprint.withLock { current in
            defer { current = fingerprint }
            return current == fingerprint
        }
        if unchanged && !force { return false }
        let report = contexts.rebuild {
            CertificateContexts.load(store: store, defaultName: configuration.certificates.defaultName, logger: logger)
        }
        certificatesLoaded.withLock { $0 = report.certificates }
        return true
    }

    /// Folder names with the size and modification time of their files: a cheap way to tell that the
    /// store changed without parsing a certificate.
    static func fingerprint(of store: CertificateStore) -> String {
        let manager = FileManager.default
        guard let folders = try? manager.contentsOfDirectory(atPath: store.directory) else { return store.directory }
        var parts: [String] = [store.directory]
        for folder in folders.sorted() where !folder.hasPrefix(".") {
            for file in [CertificateStore.certificateFileName, CertificateStore.keyFileName] {
                let attributes = try? manager.attributesOfItem(atPath: "\(store.directory)/\(folder)/\(file)")
                let size = (attributes?[.size] as? NSNumber)?.intValue ?? -1
                let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
                parts.append("\(folder)/\(file):\(size):\(modified)")
            }
        }
        return parts.joined(separator: ";")
    }

    // MARK: public ports

    /// Binds the public ports of the configuration at start.
    public func startPublicPorts(_ loaded: LoadedConfiguration) async throws {
        let added = try await bind(loaded.configuration.publicPorts, of: loaded)
        publicListenersByKey.withLock { table in
            for listener in added { table[Self.key(listener.configuration)] = listener }
        }
    }

    public func stopPublicPorts() async {
        let listeners = publicListenersByKey.withLock { table in
            defer { table.removeAll() }
            return Array(table.values)
        }
        for listener in listeners { await listener.stop() }
    }

    private func makeListener(_ port: PublicPortConfiguration, configuration: GatewayConfiguration) throws -> (any L4PortListener)? {
        guard let service = configuration.service(named: port.service) else { return nil }
        return try L4ListenerFactory.makeListener(
            for: port, service: service, registry: registry, tcp: relay, udp: udp, group: group, logger: logger,
            sessions: l4Sessions
        )
    }

    /// Binds `ports`; on the first failure, releases those bound so far and throws the problem,
    /// pinned to the port's line.
    private func bind(_ ports: [PublicPortConfiguration], of loaded: LoadedConfiguration) async throws -> [any L4PortListener] {
        var started: [any L4PortListener] = []
        for port in ports {
            do {
                guard let listener = try makeListener(port, configuration: loaded.configuration) else { continue }
                try await listener.start()
                started.append(listener)
            } catch {
                for listener in started { await listener.stop() }
                let index = loaded.configuration.publicPorts.firstIndex(of: port) ?? 0
                let path = loaded.sourceMap.path(ofEntry: index, in: "publicPorts").appending("listen")
                throw ConfigurationError(problems: [
                    ConfigurationProblem(
                        file: loaded.path,
                        line: loaded.sourceMap.line(of: path),
                        key: path.description,
                        reason: "cannot bind \(port.transport.rawValue) \(port.listen): \(error)"
                    )
                ])
            }
        }
        return started
    }

    // MARK: applying a new configuration

    /// Applies `loaded` (already validated) given its diff from the running configuration. Ports are
    /// bound first: if one cannot be bound, nothing else changes and the problem is thrown.
    public func apply(_ loaded: LoadedConfiguration, old: GatewayConfiguration, diff: ConfigurationDiff) async throws {
        let configuration = loaded.configuration
        // Released first, so a port moved from one address form to another can be bound again.
        let removed = publicListenersByKey.withLock { table in
            diff.publicPortsRemoved.compactMap { table.removeValue(forKey: Self.key($0)) }
        }
        for listener in removed { await listener.stop() }
        let added: [any L4PortListener]
        do {
            added = try await bind(diff.publicPortsAdded, of: loaded)
        } catch {
            // Put back what was released: the running configuration stays whole.
            let restored = (try? await bind(removed.map(\.configuration), of: LoadedConfiguration(
                configuration: old, sourceMap: .init(), path: loaded.path
            ))) ?? []
            publicListenersByKey.withLock { table in
                for listener in restored { table[Self.key(listener.configuration)] = listener }
            }
            throw error
        }

        let oldEndpoints = Set(proxy.routes.snapshot.table.upstreamGroups.flatMap(\.endpoints))
        proxy.apply(configuration)
        tlsRoutes.replace(with: TLSListenerRoutes(configuration: configuration, registry: registry))
        let newEndpoints = Set(proxy.routes.snapshot.table.upstreamGroups.flatMap(\.endpoints))

        let kept = publicListenersByKey.withLock { table in
            for listener in added { table[Self.key(listener.configuration)] = listener }
            return Array(table.values)
        }
        let addedKeys = Set(added.map { Self.key($0.configuration) })
        for listener in kept where !addedKeys.contains(Self.key(listener.configuration)) {
            let port = configuration.publicPorts.first { Self.key($0) == Self.key(listener.configuration) }
            guard let port, let service = configuration.service(named: port.service) else { continue }
            listener.updateTarget(registry.target(service: service, port: port.port, transport: port.transport))
        }

        reloadCertificates(configuration, force: diff.certificatesChanged)
        health.apply(configuration)
        certificateManager?.apply(configuration)

        let drained = proxy.longLivedConnections.drain(
            domains: diff.domainsToDrain,
            upstreams: oldEndpoints.subtracting(newEndpoints),
            deadline: configuration.timeouts.drain
        )
        if drained > 0 {
            logger.info("Long-lived connections on removed routes will close after the drain deadline", metadata: [
                "connections": "\(drained)", "drain": "\(configuration.timeouts.drain)",
            ])
        }
        // L4 sessions on a removed or re-routed passthrough domain, or on a released public port (its
        // listener is already stopped): the same deadline. Sessions on unchanged routes are not touched.
        let goneRoutes = Set(diff.domainsToDrain.map(L4SessionRoute.passthrough))
            .union(diff.publicPortsRemoved.filter { $0.transport == .tcp }.map(L4SessionRoute.forPublicPort))
        let drainedSessions = l4Sessions.drain(routes: goneRoutes, deadline: configuration.timeouts.drain)
        if drainedSessions > 0 {
            logger.info("L4 sessions on removed routes will close after the drain deadline", metadata: [
                "sessions": "\(drainedSessions)", "drain": "\(configuration.timeouts.drain)",
            ])
        }
    }
}
