import NIOCore
import NIOEmbedded
import Testing
@testable import RoutingService

@Suite struct DeadlineTimerTests {
    /// The timer and a count of how often its action ran.
    private final class Probe {
        var fired = 0
        var timer: DeadlineTimer!
        init(loop: EmbeddedEventLoop) {
            timer = DeadlineTimer(eventLoop: loop) { [unowned self] in self.fired += 1 }
        }
    }

    @Test func firesOnceAtTheDeadline() {
        let loop = EmbeddedEventLoop()
        let probe = Probe(loop: loop)
        probe.timer.arm(in: .seconds(10))
        loop.advanceTime(by: .seconds(9))
        #expect(probe.fired == 0)
        loop.advanceTime(by: .seconds(1))
        #expect(probe.fired == 1)
        #expect(!probe.timer.isArmed)
        loop.advanceTime(by: .seconds(60))
        #expect(probe.fired == 1)
    }

    @Test func aLaterDeadlineMovesTheFiringLater() {
        let loop = EmbeddedEventLoop()
        let probe = Probe(loop: loop)
        probe.timer.arm(in: .seconds(10))
        loop.advanceTime(by: .seconds(5))
        probe.timer.arm(in: .seconds(10))  // now due at 15 s
        loop.advanceTime(by: .seconds(9))  // 14 s: the first task ran at 10 s and re-armed itself
        #expect(probe.fired == 0)
        loop.advanceTime(by: .seconds(1))
        #expect(probe.fired == 1)
    }

    @Test func anEarlierDeadlineIsHonoured() {
        let loop = EmbeddedEventLoop()
        let probe = Probe(loop: loop)
        probe.timer.arm(in: .seconds(60))
        probe.timer.arm(in: .seconds(2))
        loop.advanceTime(by: .seconds(2))
        #expect(probe.fired == 1)
    }

    @Test func disarmedAndCancelledTimersDoNotFire() {
        let loop = EmbeddedEventLoop()
        let probe = Probe(loop: loop)
        probe.timer.arm(in: .seconds(1))
        probe.timer.disarm()
        loop.advanceTime(by: .seconds(5))
        #expect(probe.fired == 0)
        probe.timer.arm(in: .seconds(1))
        probe.timer.cancel()
        loop.advanceTime(by: .seconds(5))
        #expect(probe.fired == 0)
        probe.timer.arm(in: .seconds(1))  // usable again after cancel
        loop.advanceTime(by: .seconds(1))
        #expect(probe.fired == 1)
    }
}
