import Foundation
import Logging
import RoutingService
import Synchronization
import TestSupport
import Testing

/// The manager's scheduling with a stand-in issuer (certificates from a throwaway CA, no ACME server):
/// the concurrency limit, toggles through `apply`, failure backoff and recovery.
@Suite("Certificate manager", .serialized)
struct CertificateManagerTests {
    /// Issues from a test CA after `delay`, failing the first `failures` calls; records peak concurrency.
    final class StandInIssuer: CertificateIssuer {
        let authority: TestCertificateAuthority
        let delay: Duration
        private let counters = Mutex((running: 0, peak: 0, calls: 0, failuresLeft: 0))

        init(authority: TestCertificateAuthority, delay: Duration = .milliseconds(150), failures: Int = 0) {
            self.authority = authority
            self.delay = delay
            counters.withLock { $0.failuresLeft = failures }
        }

        var peak: Int { counters.withLock { $0.peak } }
        var calls: Int { counters.withLock { $0.calls } }

        func issue(names: [String], challengeType: ACMEChallengeType) async throws -> IssuedCertificate {
            let fail = counters.withLock { counters -> Bool in
                counters.calls += 1
                counters.running += 1
                counters.peak = max(counters.peak, counters.running)
                guard counters.failuresLeft > 0 else { return false }
                counters.failuresLeft -= 1
                return true
            }
            defer { counters.withLock { $0.running -= 1 } }
            try await Task.sleep(for: delay)
            if fail { throw ACMEError(.challengeFailed, "\(challengeType) stand-in failure") }
            let leaf = try authority.issue(names, file: "\(names[0])-\(UUID().uuidString)")
            return IssuedCertificate(
                chainPEM: Array(try Data(contentsOf: URL(fileURLWithPath: leaf.chainPath))),
                keyPEM: Array(try Data(contentsOf: URL(fileURLWithPath: leaf.keyPath)))
            )
        }
    }

    let authority: TestCertificateAuthority
    let store: CertificateStore
    let contexts = TLSContextStore()

    init() throws {
        authority = try TestCertificateAuthority()
        store = CertificateStore(directory: authority.directory.appendingPathComponent("certs").path)
    }

    static func configuration(_ domains: [(String, SSLMode)]) -> GatewayConfiguration {
        GatewayConfiguration(
            acme: ACMEConfiguration(directoryURL: "https://ca.invalid/dir"),
            services: [ServiceConfiguration(name: "app", ports: [ServicePort(port: 3000, http: true)], instances: [InstanceAddress(host: "127.0.0.9")])],
            domains: domains.map { DomainConfiguration(name: DomainName($0.0), service: "app", port: 3000, ssl: $0.1) }
        )
    }

    func run<T: Sendable>(_ manager: CertificateManager, _ body: () async throws -> T) async throws -> T {
        let task = Task { try await manager.run() }
        defer { task.cancel() }
        let result = try await body()
        task.cancel()
        _ = await task.result
        return result
    }

    func eventually(_ timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test func ordersRespectTheConcurrencyLimit() async throws {
        let issuer = StandInIssuer(authority: authority)
        let names = (1...6).map { "d\($0).example.test" }
        let manager = CertificateManager(
            configuration: Self.configuration(names.map { ($0, .auto) }), store: store, contexts: contexts,
            issuer: issuer, settings: .init(maximumConcurrentOrders: 2), logger: Logger(label: "test")
        )
        #expect(manager.states().map(\.status) == Array(repeating: .pending, count: 6))
        try await run(manager) {
            #expect(await eventually { manager.states().allSatisfy { $0.status == .active } }, "\(manager.states())")
        }
        #expect(issuer.peak == 2)
        #expect(issuer.calls == 6)
        #expect(names.allSatisfy { manager.hasServableCertificate(for: $0) })
    }

    @Test func togglesAffectOnlyTheToggledDomain() async throws {
        let issuer = StandInIssuer(authority: authority, delay: .milliseconds(20))
        let manager = CertificateManager(
            configuration: Self.configuration([("a.example.test", .auto), ("b.example.test", .off)]),
            store: store, contexts: contexts, issuer: issuer, logger: Logger(label: "test")
        )
        try await run(manager) {
            #expect(await eventually { manager.state(for: "a.example.test")?.status == .active })
            let serialA = manager.state(for: "a.example.test")?.serialNumber
            #expect(manager.state(for: "b.example.test") == nil)
            #expect(!manager.hasServableCertificate(for: "b.example.test"))

            manager.apply(Self.configuration([("a.example.test", .auto), ("b.example.test", .auto)]))
            #expect(await eventually { manager.state(for: "b.example.test")?.status == .active })
            #expect(manager.state(for: "a.example.test")?.serialNumber == serialA, "a untouched")

            manager.apply(Self.configuration([("a.example.test", .manual), ("b.example.test", .auto)]))
            #expect(manager.states().map(\.name) == ["b.example.test"])
        }
        #expect(issuer.calls == 2)
    }

    @Test func failuresBackOffThenRecover() async throws {
        let issuer = StandInIssuer(authority: authority, delay: .milliseconds(5), failures: 4)
        let renewal = CertificateRenewalPolicy(retryInitialDelay: .milliseconds(200), retryMaximumDelay: .seconds(5))
        let manager = CertificateManager(
            configuration: Self.configuration([("f.example.test", .auto)]), store: store, contexts: contexts,
            issuer: issuer, settings: .init(renewal: renewal), logger: Logger(label: "test")
        )
        try await run(manager) {
            // Both challenge types fail in the first attempt (two calls), then the retry 200 ms later.
            #expect(await eventually { manager.state(for: "f.example.test")?.status == .failed })
            let first = try #require(manager.state(for: "f.example.test"))
            #expect(first.consecutiveFailures == 1)
            #expect(first.lastError == "http-01: http-01 stand-in failure; tls-alpn-01: tls-alpn-01 stand-in failure")
            let wait = try #require(first.nextRetry).timeIntervalSinceNow
            #expect(wait <= 0.2, "first retry at most the initial delay away: \(wait)")
            #expect(!manager.hasServableCertificate(for: "f.example.test"))

            #expect(await eventually { manager.state(for: "f.example.test")?.consecutiveFailures == 2 })
            let second = try #require(manager.state(for: "f.example.test"))
            // nextRetry₂ − nextRetry₁ = (failure₂ − failure₁) + (400 − 200 ms), and failure₂ − failure₁ ≥ 200 ms:
            // without doubling the gap would be only the time between the failures.
            let gap = try #require(second.nextRetry).timeIntervalSince(try #require(first.nextRetry))
            #expect(gap >= 0.39, "the second delay doubled: gap \(gap)")

            #expect(await eventually { manager.state(for: "f.example.test")?.status == .active })
            let recovered = try #require(manager.state(for: "f.example.test"))
            #expect(recovered.consecutiveFailures == 0 && recovered.lastError == nil && recovered.nextRetry == nil)
        }
        #expect(issuer.calls == 5)
    }
}
