import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Keeps every `ssl: auto` domain's certificate (SPEC §3): on start a valid stored certificate is
/// served as is (no new order); a domain without one is ordered at once; renewal starts when a third
/// of the lifetime is left (with jitter); failures retry with exponential backoff (capped at an hour),
/// trying each challenge type in turn; at most `maximumConcurrentOrders` orders run at once. Each new
/// certificate is stored atomically (source `acme`) and swapped into the TLS front without a restart.
///
/// A `Service`: `run()` does the work until cancelled or graceful shutdown. `apply(_:)` takes a new
/// configuration (domains toggled to `auto` are ordered at once; domains no longer `auto` are dropped).
public final class CertificateManager: Service, Sendable {
    public struct Settings: Sendable {
        public var maximumConcurrentOrders: Int
        public var renewal: CertificateRenewalPolicy
        /// Tried in this order within one attempt; the next one gets a new order when one fails.
        public var challengeTypes: [ACMEChallengeType]
        /// The longest the loop sleeps without a reason to wake (it re-reads the clock then).
        public var maximumIdleWait: Duration

        public init(
            maximumConcurrentOrders: Int = 4,
            renewal: CertificateRenewalPolicy = .init(),
            challengeTypes: [ACMEChallengeType] = [.http01, .tlsALPN01],
            maximumIdleWait: Duration = .seconds(60)
        ) {
            self.maximumConcurrentOrders = max(1, maximumConcurrentOrders)
            self.renewal = renewal
            self.challengeTypes = challengeTypes
            self.maximumIdleWait = maximumIdleWait
        }
    }

    private struct Record {
        var state: DomainCertificateState
        /// When the next order starts (nil: nothing scheduled).
        var due: Date?
        var inFlight = false
        /// Bumped when the domain is dropped and re-added, so a late result of the old order is ignored.
        var generation: Int
    }

    private struct Managed {
        var records: [String: Record] = [:]
        var defaultName: String?
        var inFlight = 0
        var nextGeneration = 0
    }

    private let store: CertificateStore
    private let contexts: TLSContextStore
    private let issuer: any CertificateIssuer
    private let settings: Settings
    private let clock: any CertificateClock
    private let random: @Sendable () -> Double
    private let logger: Logger
    private let managed = Mutex(Managed())
    private let wake = WakeSignal()

    /// - Parameters:
    ///   - contexts: the TLS front's context store; replaced (rebuilt from the store) after each issuance.
    ///   - random: the renewal jitter source, 0..<1 (injected for tests).
    public init(
        configuration: GatewayConfiguration,
        store: CertificateStore,
        contexts: TLSContextStore,
        issuer: any CertificateIssuer,
        settings: Settings = .init(),
        clock: any CertificateClock = SystemCertificateClock(),
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        logger: Logger
    ) {
        self.store = store
        self.contexts = contexts
        self.issuer = issuer
        self.settings = settings
        self.clock = clock
        self.random = random
        self.logger = logger
        apply(configuration)
    }

    // MARK: Queries (admin API, CLI, routing)

    /// Every managed domain, sorted by name.
    public func states() -> [DomainCertificateState] {
        managed.withLock { $0.records.values.map(\.state) }.sorted { $0.name < $1.name }
    }

    public func state(for name: String) -> DomainCertificateState? {
        managed.withLock { $0.records[name.lowercased()]?.state }
    }

    /// Whether the TLS front can serve `name` now. The plain listener should not redirect an `ssl: auto`
    /// domain to HTTPS while this is false (pending, no certificate yet).
    public func hasServableCertificate(for name: String) -> Bool {
        contexts.context(forServerName: name.lowercased()) != nil
    }

    // MARK: Configuration

    /// Starts managing domains that became `ssl: auto` (ordered at once unless a valid certificate is
    /// stored), stops managing those that are no longer `auto`; the others are untouched.
    public func apply(_ configuration: GatewayConfiguration) {
        let wanted = Set(
            configuration.domains.filter { $0.ssl == .auto && !$0.name.isWildcard }.map(\.name.value)
        )
        let known = managed.withLock { Set($0.records.keys) }
        let added = wanted.subtracting(known)
        let report = added.isEmpty ? CertificateLoadReport() : store.loadAll()
        let now = clock.now
        managed.withLock { managed in
            managed.defaultName = configuration.certificates.defaultName
            for name in known.subtracting(wanted) {
                managed.records[name] = nil
            }
            for name in added {
                managed.nextGeneration += 1
                managed.records[name] = initialRecord(
                    name: name, stored: report.certificate(covering: DomainName(name)), now: now,
                    generation: managed.nextGeneration
                )
            }
        }
        if !added.isEmpty || known != wanted {
            logger.info("Automatic certificates", metadata: [
                "added": "\(added.sorted())", "removed": "\(known.subtracting(wanted).sorted())",
            ])
        }
        wake.signal()
    }

    private func initialRecord(name: String, stored: StoredCertificate?, now: Date, generation: Int) -> Record {
        guard let stored, !stored.isExpired(at: now) else {
            return Record(state: DomainCertificateState(name: name, status: .pending), due: now, generation: generation)
        }
        let renewal = settings.renewal.renewalDate(notBefore: stored.notBefore, notAfter: stored.notAfter, random: random())
        return Record(
            state: DomainCertificateState(
                name: name, status: .active, serialNumber: stored.serialNumber,
                notBefore: stored.notBefore, notAfter: stored.notAfter, renewalDate: renewal
            ),
            due: renewal,
            generation: generation
        )
    }

    // MARK: Running

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                while !Task.isCancelled {
                    for (name, generation) in self.takeDueOrders() {
                        group.addTask {
                            await self.order(name: name, generation: generation)
                            self.wake.signal()
                        }
                    }
                    await self.wake.wait(timeout: self.idleWait(), clock: self.clock)
                }
                group.cancelAll()
            }
        }
    }

    /// Marks due domains in flight, up to the concurrency limit, earliest first.
    private func takeDueOrders() -> [(String, Int)] {
        let now = clock.now
        return managed.withLock { managed in
            let due = managed.records.values
                .filter { !$0.inFlight && ($0.due.map { $0 <= now } ?? false) }
                .sorted { ($0.due!, $0.state.name) < ($1.due!, $1.state.name) }
                .prefix(max(0, settings.maximumConcurrentOrders - managed.inFlight))
            return due.map { record in
                let name = record.state.name
                managed.records[name]?.inFlight = true
                managed.records[name]?.state.status = record.state.hasValidCertificate(at: now) ? .renewing : .pending
                managed.inFlight += 1
                return (name, record.generation)
            }
        }
    }

    private func idleWait() -> Duration {
        let now = clock.now
        let next = managed.withLock { managed in
            managed.records.values.filter { !$0.inFlight }.compactMap(\.due).min()
        }
        guard let next else { return settings.maximumIdleWait }
        let seconds = max(0, next.timeIntervalSince(now))
        return min(.milliseconds(Int64((seconds * 1000).rounded(.up))), settings.maximumIdleWait)
    }

    private func order(name: String, generation: Int) async {
        var reasons: [String] = []
        for challengeType in settings.challengeTypes {
            let started = clock.now
            do {
                let issued = try await issuer.issue(names: [name], challengeType: challengeType)
                let stored = try store.store(chainPEM: issued.chainPEM, keyPEM: issued.keyPEM, source: .acme)
                installStoredCertificates()
                logger.info("Certificate issued", metadata: [
                    "domain": "\(name)", "challenge": "\(challengeType)", "serial": "\(stored.serialNumber)",
                    "notAfter": "\(stored.notAfter)",
                    "seconds": "\(String(format: "%.3f", clock.now.timeIntervalSince(started)))",
                ])
                succeeded(name: name, generation: generation, certificate: stored)
                return
            } catch is CancellationError {
                finished(name: name, generation: generation) { _ in }
                return
            } catch {
                if Task.isCancelled {
                    finished(name: name, generation: generation) { _ in }
                    return
                }
                reasons.append("\(challengeType): \(error)")
                logger.warning("Certificate order failed", metadata: [
                    "domain": "\(name)", "challenge": "\(challengeType)", "reason": "\(error)",
                ])
            }
        }
        failed(name: name, generation: generation, reason: reasons.joined(separator: "; "))
    }

    /// Rebuilds the TLS index from the store and swaps it in; open connections keep their context.
    private func installStoredCertificates() {
        let defaultName = managed.withLock { $0.defaultName }
        let refused = contexts.rebuild {
            let outcome = CertificateContexts.build(from: store.loadAll().certificates, defaultName: defaultName)
            return (outcome.index, outcome.refused)
        }
        for (folder, reason) in refused {
            logger.error("Certificate refused by OpenSSL", metadata: ["folder": "\(folder)", "reason": "\(reason)"])
        }
    }

    private func succeeded(name: String, generation: Int, certificate: StoredCertificate) {
        let renewal = settings.renewal.renewalDate(
            notBefore: certificate.notBefore, notAfter: certificate.notAfter, random: random()
        )
        finished(name: name, generation: generation) { record in
            record.state = DomainCertificateState(
                name: name, status: .active, serialNumber: certificate.serialNumber,
                notBefore: certificate.notBefore, notAfter: certificate.notAfter, renewalDate: renewal
            )
            record.due = renewal
        }
    }

    private func failed(name: String, generation: Int, reason: String) {
        let now = clock.now
        finished(name: name, generation: generation) { record in
            record.state.consecutiveFailures += 1
            let retry = now.addingTimeInterval(
                Self.seconds(settings.renewal.retryDelay(afterFailures: record.state.consecutiveFailures))
            )
            record.state.status = .failed
            record.state.lastError = reason
            record.state.nextRetry = retry
            record.due = retry
        }
        logger.error("Certificate not obtained; retrying later", metadata: ["domain": "\(name)", "reason": "\(reason)"])
    }

    private func finished(name: String, generation: Int, update: (inout Record) -> Void) {
        managed.withLock { managed in
            managed.inFlight -= 1
            guard var record = managed.records[name], record.generation == generation else { return }
            record.inFlight = false
            update(&record)
            if record.state.status != .failed {
                record.state.lastError = nil
                record.state.nextRetry = nil
            }
            managed.records[name] = record
        }
    }

    private static func seconds(_ duration: Duration) -> TimeInterval {
        let (seconds, attoseconds) = duration.components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
