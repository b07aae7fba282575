import RoutingService
import Testing

@Suite("ACME order state machine")
struct ACMEOrderStateMachineTests {
    let orderURL = "https://ca.test/order/1"
    let authzURL = "https://ca.test/authz/1"
    let finalizeURL = "https://ca.test/order/1/finalize"

    func order(_ status: ACMEOrderStatus, certificate: String? = nil, error: ACMEProblem? = nil) -> ACMEOrder {
        ACMEOrder(
            status: status, identifiers: [.dns("app.example.test")], authorizations: [authzURL],
            finalize: finalizeURL, certificate: certificate, error: error
        )
    }

    func authorization(_ status: ACMEAuthorizationStatus, challengeError: ACMEProblem? = nil) -> ACMEAuthorization {
        ACMEAuthorization(
            status: status, identifier: .dns("app.example.test"),
            challenges: [
                ACMEChallenge(type: "dns-01", url: "https://ca.test/chall/dns", status: .pending, token: "t0"),
                ACMEChallenge(type: "http-01", url: "https://ca.test/chall/http", status: .pending, token: "t1", error: challengeError),
                ACMEChallenge(type: "tls-alpn-01", url: "https://ca.test/chall/alpn", status: .pending, token: "t2"),
            ]
        )
    }

    @Test func happyPathFromNewOrderToDownload() {
        var machine = ACMEOrderStateMachine(names: ["app.example.test"], challengeType: .http01)
        #expect(machine.start() == .createOrder(names: ["app.example.test"]))
        #expect(machine.orderReceived(order(.pending), location: orderURL, retryAfter: nil) == .fetchAuthorization(url: authzURL))
        guard case .respondToChallenge(let url, let identifier, let challenge) =
            machine.authorizationReceived(authorization(.pending), retryAfter: nil)
        else { Issue.record("expected a challenge response"); return }
        #expect(url == authzURL && identifier == "app.example.test")
        #expect(challenge.type == "http-01" && challenge.token == "t1")
        let accepted = ACMEChallenge(type: "http-01", url: challenge.url, status: .processing, token: "t1")
        #expect(machine.challengeAccepted(accepted) == .pollAuthorization(url: authzURL, after: .milliseconds(50)))
        #expect(machine.authorizationReceived(authorization(.pending), retryAfter: nil) == .pollAuthorization(url: authzURL, after: .milliseconds(50)))
        #expect(machine.authorizationReceived(authorization(.pending), retryAfter: nil) == .pollAuthorization(url: authzURL, after: .milliseconds(75)))
        #expect(machine.authorizationReceived(authorization(.valid), retryAfter: nil) == .pollOrder(url: orderURL, after: .zero))
        #expect(machine.orderReceived(order(.ready), location: orderURL, retryAfter: nil) == .finalize(url: finalizeURL, names: ["app.example.test"]))
        #expect(machine.orderReceived(order(.processing), location: finalizeURL, retryAfter: nil) == .pollOrder(url: orderURL, after: .milliseconds(50)))
        #expect(machine.orderReceived(order(.valid, certificate: "https://ca.test/cert/1"), location: orderURL, retryAfter: nil)
            == .downloadCertificate(url: "https://ca.test/cert/1"))
        #expect(machine.certificateDownloaded() == .succeed)
        #expect(machine.isFinished)
    }

    @Test func picksTheConfiguredChallengeType() {
        var machine = ACMEOrderStateMachine(names: ["app.example.test"], challengeType: .tlsALPN01)
        _ = machine.start()
        _ = machine.orderReceived(order(.pending), location: orderURL, retryAfter: nil)
        guard case .respondToChallenge(_, _, let challenge) = machine.authorizationReceived(authorization(.pending), retryAfter: nil) else {
            Issue.record("expected a challenge response"); return
        }
        #expect(challenge.type == "tls-alpn-01" && challenge.token == "t2")
    }

    @Test func aMissingChallengeTypeFailsSayingWhatWasOffered() {
        var machine = ACMEOrderStateMachine(names: ["app.example.test"], challengeType: .tlsALPN01)
        _ = machine.start()
        _ = machine.orderReceived(order(.pending), location: orderURL, retryAfter: nil)
        let onlyDNS = ACMEAuthorization(
            status: .pending, identifier: .dns("app.example.test"),
            challenges: [ACMEChallenge(type: "dns-01", url: "u", status: .pending, token: "t")]
        )
        guard case .fail(let error) = machine.authorizationReceived(onlyDNS, retryAfter: nil) else {
            Issue.record("expected failure"); return
        }
        #expect(error.code == .challengeFailed)
        #expect(error.reason == "the CA offers no tls-alpn-01 challenge for app.example.test (offered: dns-01)")
    }

    @Test func anInvalidAuthorizationFailsWithTheCAsReason() {
        var machine = ACMEOrderStateMachine(names: ["app.example.test"], challengeType: .http01)
        _ = machine.start()
        _ = machine.orderReceived(order(.pending), location: orderURL, retryAfter: nil)
        _ = machine.authorizationReceived(authorization(.pending), retryAfter: nil)
        let problem = ACMEProblem(type: "urn:ietf:params:acme:error:connection", detail: "connection refused")
        guard case .fail(let error) = machine.authorizationReceived(authorization(.invalid, challengeError: problem), retryAfter: nil) else {
            Issue.record("expected failure"); return
        }
        #expect(error.code == .challengeFailed)
        #expect(error.problem == problem)
        #expect(error.reason == "http-01 validation of app.example.test failed: connection: connection refused")
        #expect(machine.isFinished)
    }

    @Test func retryAfterIsHonouredAndCapped() {
        var machine = ACMEOrderStateMachine(names: ["a.test"], challengeType: .http01)
        _ = machine.start()
        _ = machine.orderReceived(order(.pending), location: orderURL, retryAfter: nil)
        _ = machine.authorizationReceived(authorization(.pending), retryAfter: nil)
        #expect(machine.authorizationReceived(authorization(.pending), retryAfter: .seconds(3)) == .pollAuthorization(url: authzURL, after: .seconds(3)))
        #expect(machine.authorizationReceived(authorization(.pending), retryAfter: .seconds(3600)) == .pollAuthorization(url: authzURL, after: .seconds(30)))
    }

    @Test func pollingGrowsToItsCapAndGivesUp() {
        let policy = ACMEPollingPolicy(initialInterval: .milliseconds(100), multiplier: 2, maximumInterval: .milliseconds(500), maximumPolls: 5)
        var machine = ACMEOrderStateMachine(names: ["a.test"], challengeType: .http01, polling: policy)
        _ = machine.start()
        _ = machine.orderReceived(order(.pending), location: orderURL, retryAfter: nil)
        _ = machine.authorizationReceived(authorization(.pending), retryAfter: nil)
        var waits: [Duration] = []
        for _ in 0..<5 {
            guard case .pollAuthorization(_, let after) = machine.authorizationReceived(authorization(.pending), retryAfter: nil) else {
                Issue.record("expected a poll"); return
            }
            waits.append(after)
        }
        #expect(waits == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(500), .milliseconds(500)])
        guard case .fail(let error) = machine.authorizationReceived(authorization(.pending), retryAfter: nil) else {
            Issue.record("expected failure"); return
        }
        #expect(error.reason == "the CA did not validate app.example.test after 5 polls")
    }

    @Test func anOrderInvalidAfterFinalizeFails() {
        var machine = ACMEOrderStateMachine(names: ["a.test"], challengeType: .http01)
        _ = machine.start()
        #expect(machine.orderReceived(order(.ready), location: orderURL, retryAfter: nil) == .finalize(url: finalizeURL, names: ["a.test"]))
        let problem = ACMEProblem(type: "urn:ietf:params:acme:error:badCSR", detail: "bad key")
        guard case .fail(let error) = machine.orderReceived(order(.invalid, error: problem), location: finalizeURL, retryAfter: nil) else {
            Issue.record("expected failure"); return
        }
        #expect(error.reason == "the order became invalid: badCSR: bad key")
    }

    @Test func newOrderWithoutLocationAndRequestFailuresEndTheOrder() {
        var machine = ACMEOrderStateMachine(names: ["a.test"], challengeType: .http01)
        _ = machine.start()
        guard case .fail(let error) = machine.orderReceived(order(.pending), location: nil, retryAfter: nil) else {
            Issue.record("expected failure"); return
        }
        #expect(error.code == .unexpectedResponse)

        var other = ACMEOrderStateMachine(names: ["a.test"], challengeType: .http01)
        _ = other.start()
        let failure = ACMEError(.connectionFailed, "refused")
        #expect(other.requestFailed(failure) == .fail(failure))
        #expect(other.isFinished)
        // An event out of order is a failure, not a crash.
        guard case .fail = other.certificateDownloaded() else { Issue.record("expected failure"); return }
    }
}
