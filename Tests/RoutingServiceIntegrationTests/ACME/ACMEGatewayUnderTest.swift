import Foundation
import Logging
import NIOCore
import NIOPosix
import RoutingService
import Synchronization

/// The gateway's plain and TLS listeners in this process, wired to ACME the way the lead wires the
/// real `Gateway`: the challenge table is the plain listener's `ACMEChallengeResponder` and the TLS
/// front's challenge selection; the manager swaps certificates into `contexts`.
final class ACMEGatewayUnderTest: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let storeDirectory: String
    let store: CertificateStore
    let contexts = TLSContextStore()
    let challenges = ACMEChallengeTable()
    let front: OpenSSLFrontContext
    let runtime: HTTPProxyRuntime
    let logger: Logger
    private let listeners = Mutex<[Int: ListeningSockets]>([:])
    /// Connections accepted by the plain listeners, by port: unbinding closes them too, or Pebble's
    /// kept-alive validation connection would still reach a listener the test took away.
    private let accepted = Mutex<[Int: [any Channel]]>([:])

    init(storeDirectory: String? = nil) throws {
        let directory = storeDirectory ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("acme-store-\(UUID().uuidString)").path
        self.storeDirectory = directory
        store = CertificateStore(directory: directory)
        var logger = Logger(label: "edge-router.test.acme")
        logger.logLevel = ProcessInfo.processInfo.environment["ACME_TEST_LOG"] != nil ? .debug : .critical
        self.logger = logger
        let contexts = contexts
        let challenges = challenges
        front = try OpenSSLFrontContext(
            selectContext: { contexts.context(forServerName: $0) },
            selectChallengeContext: { challenges.tlsALPN01Context(forServerName: $0) }
        )
        runtime = HTTPProxyRuntime(
            configuration: Self.configuration(domains: [], pebble: nil),
            eventLoopGroup: group, acmeResponder: challenges, logger: logger
        )
    }

    static func configuration(domains: [(String, SSLMode)], pebble: PebbleServer?) -> GatewayConfiguration {
        GatewayConfiguration(
            acme: pebble.map { ACMEConfiguration(directoryURL: $0.directoryURL, email: "ops@example.com", caBundle: $0.listenerCAPath) },
            services: [
                ServiceConfiguration(name: "app", ports: [ServicePort(port: 3000, http: true)], instances: [InstanceAddress(host: "127.0.0.9")]),
            ],
            domains: domains.map { DomainConfiguration(name: DomainName($0.0), service: "app", port: 3000, ssl: $0.1) }
        )
    }

    func bindPlain(port: Int) async throws {
        let channel = try await HTTPListener.bind(
            host: "127.0.0.1", port: port, mode: .plain, runtime: runtime,
            beforeFront: { child in self.accepted.withLock { $0[port, default: []].append(child) } }
        )
        listeners.withLock { $0[port] = channel }
    }

    func bindTLS(port: Int) async throws {
        let registry = L4ConnectionRegistry()
        let routes = RoutingTableStore(TLSListenerRoutes(configuration: Self.configuration(domains: [], pebble: nil), registry: registry))
        let channel = try await HTTPSListener.bind(
            host: "127.0.0.1",
            port: port,
            dependencies: .init(
                front: front, routes: routes, proxy: runtime, tls: .init(handshakeTimeout: .seconds(5)),
                sniPeek: .init(), listenerName: "https/test", logger: logger
            )
        )
        listeners.withLock { $0[port] = channel }
    }

    func unbind(port: Int) async throws {
        let channel = listeners.withLock { $0.removeValue(forKey: port) }
        try await channel?.close()
        for child in accepted.withLock({ $0.removeValue(forKey: port) ?? [] }) {
            try? await child.close()
        }
    }

    func makeIssuer(pebble: PebbleServer, polling: ACMEPollingPolicy = .init()) throws -> ACMECertificateIssuer {
        try ACMECertificateIssuer(
            configuration: ACMEConfiguration(directoryURL: pebble.directoryURL, email: "ops@example.com", caBundle: pebble.listenerCAPath),
            certificateDirectory: storeDirectory,
            challenges: challenges,
            polling: polling,
            group: group,
            logger: logger
        )
    }

    func shutdown() async throws {
        for channel in listeners.withLock({ Array($0.values) }) { try? await channel.close() }
        try await group.shutdownGracefully()
    }

    deinit {
        try? FileManager.default.removeItem(atPath: storeDirectory)
    }
}

/// Counts the orders an issuer is asked for (restart test: none for a valid certificate).
final class CountingIssuer: CertificateIssuer {
    let base: any CertificateIssuer
    private let counter = Mutex(0)

    init(_ base: any CertificateIssuer) {
        self.base = base
    }

    var orders: Int { counter.withLock { $0 } }

    func issue(names: [String], challengeType: ACMEChallengeType) async throws -> IssuedCertificate {
        counter.withLock { $0 += 1 }
        return try await base.issue(names: names, challengeType: challengeType)
    }
}

/// Runs `manager` in a child task for the duration of `body`, then cancels it.
func withRunning<T: Sendable>(_ manager: CertificateManager, _ body: () async throws -> T) async throws -> T {
    let task = Task { try await manager.run() }
    defer { task.cancel() }
    let result = try await body()
    task.cancel()
    _ = await task.result
    return result
}
