import RoutingService
import Testing

@Suite struct HealthTrackerTests {
    @Test func goesDownAfterFallFailuresInARowAndUpAfterRiseSuccesses() {
        var tracker = HealthTracker(fall: 2, rise: 2)
        #expect(tracker.checkFailed() == nil)
        #expect(tracker.checkSucceeded() == nil, "a success resets the failure count")
        #expect(tracker.checkFailed() == nil)
        #expect(tracker.checkFailed() == .wentDown)
        #expect(!tracker.isHealthy)
        #expect(tracker.checkFailed() == nil, "already down: no second transition")
        #expect(tracker.checkSucceeded() == nil)
        #expect(tracker.checkFailed() == nil)
        #expect(tracker.checkSucceeded() == nil)
        #expect(tracker.checkSucceeded() == .cameUp)
        #expect(tracker.isHealthy)
    }
}
