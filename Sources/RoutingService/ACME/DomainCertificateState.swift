import Foundation

/// Where an `ssl: auto` domain's certificate stands (SPEC §3, issue 7): what the admin API and
/// `edge-router ssl DOMAIN` show.
public enum DomainCertificateStatus: String, Sendable, Hashable, Codable, CaseIterable {
    /// Ordering a first certificate; until one exists the domain's HTTPS is refused (`unrecognized_name`).
    case pending
    /// A valid certificate is served; renewal is scheduled.
    case active
    /// A valid certificate is served while a new one is being ordered.
    case renewing
    /// The last order failed; `lastError` says why, `nextRetry` when it is tried again. A certificate
    /// obtained earlier keeps serving.
    case failed
}

/// A snapshot of one managed domain, for the admin API, the CLI and metrics.
public struct DomainCertificateState: Sendable, Equatable, Codable {
    public var name: String
    public var status: DomainCertificateStatus
    /// The certificate being served for the name, when there is one.
    public var serialNumber: String?
    public var notBefore: Date?
    public var notAfter: Date?
    /// When renewal starts (a third of the lifetime left, minus a small random jitter).
    public var renewalDate: Date?
    public var lastError: String?
    public var nextRetry: Date?
    /// Orders failed in a row (resets on success); drives the backoff.
    public var consecutiveFailures: Int

    public init(
        name: String,
        status: DomainCertificateStatus,
        serialNumber: String? = nil,
        notBefore: Date? = nil,
        notAfter: Date? = nil,
        renewalDate: Date? = nil,
        lastError: String? = nil,
        nextRetry: Date? = nil,
        consecutiveFailures: Int = 0
    ) {
        self.name = name
        self.status = status
        self.serialNumber = serialNumber
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.renewalDate = renewalDate
        self.lastError = lastError
        self.nextRetry = nextRetry
        self.consecutiveFailures = consecutiveFailures
    }

    /// True while a certificate (stored earlier or just issued) is valid at `now`.
    public func hasValidCertificate(at now: Date) -> Bool {
        guard let notAfter else { return false }
        return notAfter > now
    }
}

/// When to renew and how long to wait after a failure. Pure, so it is tested with fixed dates.
public struct CertificateRenewalPolicy: Sendable, Equatable {
    /// Renew when this fraction of the lifetime is left (SPEC: a third).
    public var remainingLifetimeFraction: Double
    /// Up to this fraction of the lifetime earlier, at random, so many domains do not renew in the same second.
    public var jitterFraction: Double
    public var retryInitialDelay: Duration
    public var retryMaximumDelay: Duration

    public init(
        remainingLifetimeFraction: Double = 1.0 / 3.0,
        jitterFraction: Double = 0.02,
        retryInitialDelay: Duration = .seconds(5),
        retryMaximumDelay: Duration = .seconds(3600)
    ) {
        self.remainingLifetimeFraction = remainingLifetimeFraction
        self.jitterFraction = jitterFraction
        self.retryInitialDelay = retryInitialDelay
        self.retryMaximumDelay = retryMaximumDelay
    }

    /// `random` in 0..<1 picks the jitter (injected so tests are exact).
    public func renewalDate(notBefore: Date, notAfter: Date, random: Double) -> Date {
        let lifetime = max(0, notAfter.timeIntervalSince(notBefore))
        let jitter = lifetime * jitterFraction * min(max(random, 0), 1)
        return notAfter.addingTimeInterval(-(lifetime * remainingLifetimeFraction) - jitter)
    }

    /// The wait after `failures` failed orders in a row (1 → the initial delay), doubling, capped.
    public func retryDelay(afterFailures failures: Int) -> Duration {
        guard failures > 1 else { return retryInitialDelay }
        var delay = retryInitialDelay
        for _ in 1..<min(failures, 64) {
            delay = delay * 2
            if delay >= retryMaximumDelay { return retryMaximumDelay }
        }
        return delay
    }
}
