import NIOCore
import Testing
@testable import RoutingService

@Suite struct UDPSessionTableTests {
    private let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func aFlowPerClientAndItsDatagramsReuseIt() {
        var table = UDPSessionTable<String, Int>(maximumFlows: 10, idleTimeout: .seconds(30))
        guard case .admit = table.datagramReceived(from: "a:1", now: start) else { Issue.record("not admitted"); return }
        table.insert(1, for: "a:1", now: start)
        guard case .existing(let flow) = table.datagramReceived(from: "a:1", now: start) else {
            Issue.record("flow not found"); return
        }
        #expect(flow == 1)
        guard case .admit = table.datagramReceived(from: "a:2", now: start) else {
            Issue.record("another port of the same host is another flow"); return
        }
        #expect(table.count == 1)
    }

    @Test func flowsExpireAfterTheIdleTimeoutAndActivityKeepsThemAlive() {
        var table = UDPSessionTable<String, Int>(maximumFlows: 10, idleTimeout: .seconds(30))
        table.insert(1, for: "quiet", now: start)
        table.insert(2, for: "chatty", now: start)
        table.insert(3, for: "replied-to", now: start)
        _ = table.datagramReceived(from: "chatty", now: start + .seconds(20))
        table.activity(on: "replied-to", now: start + .seconds(25))
        #expect(table.expire(now: start + .seconds(29)).isEmpty)
        #expect(table.expire(now: start + .seconds(30)).map(\.flow) == [1])
        #expect(table.expire(now: start + .seconds(50)).map(\.flow) == [2])
        #expect(table.expire(now: start + .seconds(55)).map(\.flow) == [3])
        #expect(table.count == 0)
    }

    @Test func theFlowLimitRefusesNewClientsButNotExistingOnes() {
        var table = UDPSessionTable<String, Int>(maximumFlows: 2, idleTimeout: .seconds(1))
        table.insert(1, for: "a", now: start)
        table.insert(2, for: "b", now: start)
        guard case .full = table.datagramReceived(from: "c", now: start) else { Issue.record("not full"); return }
        guard case .existing = table.datagramReceived(from: "a", now: start) else { Issue.record("a lost"); return }
        #expect(table.remove("b") == 2)
        guard case .admit = table.datagramReceived(from: "c", now: start) else { Issue.record("no room"); return }
        #expect(table.removeAll() == [1])
    }

    @Test func rateLimitedLogLetsOneThroughPerInterval() {
        var log = RateLimitedLog(interval: .seconds(1))
        #expect(log.occurrence(now: start) == 0)
        #expect(log.occurrence(now: start + .milliseconds(10)) == nil)
        #expect(log.occurrence(now: start + .milliseconds(900)) == nil)
        #expect(log.occurrence(now: start + .milliseconds(1_000)) == 2)
        #expect(log.occurrence(now: start + .milliseconds(1_500)) == nil)
    }
}
