import Foundation
import RoutingService
import Testing

@Suite("Certificate renewal policy")
struct CertificateRenewalPolicyTests {
    let notBefore = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func renewsWithAThirdOfTheLifetimeLeftMinusJitter() {
        let policy = CertificateRenewalPolicy()
        let notAfter = notBefore.addingTimeInterval(90 * 86_400)
        #expect(policy.renewalDate(notBefore: notBefore, notAfter: notAfter, random: 0) == notAfter.addingTimeInterval(-30 * 86_400))
        let latest = policy.renewalDate(notBefore: notBefore, notAfter: notAfter, random: 0.999_999)
        let jitter = notAfter.addingTimeInterval(-30 * 86_400).timeIntervalSince(latest)
        #expect(jitter > 0 && jitter <= 0.02 * 90 * 86_400, "jitter \(jitter) s")
    }

    @Test func backoffDoublesUpToAnHour() {
        let policy = CertificateRenewalPolicy(retryInitialDelay: .seconds(5))
        #expect(policy.retryDelay(afterFailures: 1) == .seconds(5))
        #expect(policy.retryDelay(afterFailures: 2) == .seconds(10))
        #expect(policy.retryDelay(afterFailures: 5) == .seconds(80))
        #expect(policy.retryDelay(afterFailures: 11) == .seconds(3600))
        #expect(policy.retryDelay(afterFailures: 10_000) == .seconds(3600))
    }
}
