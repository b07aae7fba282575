import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing
@testable import RoutingService

@Suite struct TimerQueueTests {
    private struct TimersDidNotFire: Error {}

    /// Keeps a real-loop test's fixture alive past its timers (which hold it unowned), even when a
    /// broken queue fires them late or out of order.
    private static func keep(_ fixture: Fixture, on loop: any EventLoop) {
        loop.assumeIsolated().scheduleTask(in: .seconds(6)) { withExtendedLifetime(fixture) {} }
    }

    /// Runs `arrange` on a fresh one-thread event loop with a fixture on it, and waits for the result it
    /// completes `done` with; fails after 5 s when the timers never complete it (no test can hang).
    private static func onARealLoop<Result: Sendable>(
        clock: TimerQueue.Clock = .eventLoop,
        _ arrange: @escaping @Sendable (any EventLoop, Fixture, EventLoopPromise<Result>) -> Void
    ) async throws -> Result {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let result = try await loop.flatSubmit { () -> EventLoopFuture<Result> in
            let done = loop.makePromise(of: Result.self)
            loop.scheduleTask(in: .seconds(5)) { done.fail(TimersDidNotFire()) }
            let fixture = Fixture(loop: loop, clock: clock)
            keep(fixture, on: loop)
            arrange(loop, fixture, done)
            return done.futureResult
        }.get()
        try await group.shutdownGracefully()
        return result
    }

    /// Timers on one queue that write their name to a log when they fire.
    private final class Fixture {
        let queue: TimerQueue
        private(set) var log: [String] = []
        private var timers: [String: DeadlineTimer] = [:]
        /// Runs after a timer's name is logged, if set for it.
        var onFire: [String: () -> Void] = [:]

        init(loop: any EventLoop, clock: TimerQueue.Clock = .eventLoop) {
            queue = TimerQueue(eventLoop: loop, clock: clock)
        }

        func timer(_ name: String) -> DeadlineTimer {
            if let timer = timers[name] { return timer }
            let timer = DeadlineTimer(queue: queue) { [unowned self] in
                self.log.append(name)
                self.onFire[name]?()
            }
            timers[name] = timer
            return timer
        }
    }

    @Test func aTimerFiresOnceAtItsDeadline() {
        let loop = EmbeddedEventLoop()
        let fixture = Fixture(loop: loop)
        fixture.timer("a").arm(in: .seconds(10))
        loop.advanceTime(by: .nanoseconds(TimeAmount.seconds(10).nanoseconds - 1))
        #expect(fixture.log.isEmpty)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(fixture.log == ["a"])
        #expect(!fixture.timer("a").isArmed)
        #expect(fixture.queue.queuedCount == 0)
        loop.advanceTime(by: .seconds(60))
        #expect(fixture.log == ["a"])
    }

    @Test func reArmingLaterOnlyStoresTheDeadlineAndDefersTheFiring() {
        let loop = EmbeddedEventLoop()
        let fixture = Fixture(loop: loop)
        let timer = fixture.timer("a")
        timer.arm(in: .seconds(10))
        let queuedAt = fixture.queue.queuedDeadline(of: timer)
        loop.advanceTime(by: .seconds(5))
        timer.arm(in: .seconds(10))  // due at 15 s
        // The heap entry did not move: a later deadline costs no heap operation.
        #expect(fixture.queue.queuedDeadline(of: timer) == queuedAt)
        loop.advanceTime(by: .seconds(5))  // 10 s: the entry comes up and moves to 15 s
        #expect(fixture.log.isEmpty)
        #expect(fixture.queue.queuedDeadline(of: timer) == queuedAt + .seconds(5))
        loop.advanceTime(by: .seconds(4))
        #expect(fixture.log.isEmpty)
        loop.advanceTime(by: .seconds(1))
        #expect(fixture.log == ["a"])
    }

    @Test func reArmingEarlierAdvancesTheFiring() {
        let loop = EmbeddedEventLoop()
        let fixture = Fixture(loop: loop)
        fixture.timer("late").arm(in: .seconds(30))
        fixture.timer("a").arm(in: .seconds(60))
        fixture.timer("a").arm(in: .seconds(2))
        loop.advanceTime(by: .seconds(2))
        #expect(fixture.log == ["a"])
        loop.advanceTime(by: .seconds(28))
        #expect(fixture.log == ["a", "late"])
    }

    @Test func disarmedAndCancelledTimersDoNotFire() {
        let loop = EmbeddedEventLoop()
        let fixture = Fixture(loop: loop)
        fixture.timer("disarmed").arm(in: .seconds(1))
        fixture.timer("disarmed").disarm()
        fixture.timer("cancelled").arm(in: .seconds(1))
        fixture.timer("cancelled").cancel()
        // Cancel leaves the queue at once; disarm leaves its entry until the deadline.
        #expect(fixture.queue.queuedCount == 1)
        loop.advanceTime(by: .seconds(5))
        #expect(fixture.log.isEmpty)
        #expect(fixture.queue.queuedCount == 0)
        fixture.timer("cancelled").arm(in: .seconds(1))  // usable again after cancel
        fixture.timer("disarmed").arm(in: .seconds(2))
        loop.advanceTime(by: .seconds(2))
        #expect(fixture.log == ["cancelled", "disarmed"])
    }

    @Test func aCancelledTimerKeepsNothingAlive() {
        let loop = EmbeddedEventLoop()
        let queue = TimerQueue(eventLoop: loop)
        final class Owner {
            var timer: DeadlineTimer?
        }
        weak var weakOwner: Owner?
        weak var weakTimer: DeadlineTimer?
        do {
            let owner = Owner()
            owner.timer = DeadlineTimer(queue: queue) { [unowned owner] in _ = owner }
            owner.timer?.arm(in: .seconds(60))
            weakOwner = owner
            weakTimer = owner.timer
            owner.timer?.cancel()
        }
        #expect(weakOwner == nil)
        #expect(weakTimer == nil)
        #expect(queue.queuedCount == 0)
    }

    @Test func manyTimersFireInDeadlineOrder() {
        let loop = EmbeddedEventLoop()
        let fixture = Fixture(loop: loop)
        var generator = SplitMix64(seed: 42)
        var expected: [(NIODeadline, String)] = []
        for index in 0..<300 {
            let name = "t\(index)"
            let first = TimeAmount.milliseconds(Int64(generator.next() % 10_000) + 1)
            fixture.timer(name).arm(in: first)
            // A third move later, a third earlier, a third stay.
            let final: TimeAmount = switch index % 3 {
            case 0: first + .milliseconds(Int64(generator.next() % 5_000) + 1)
            case 1: .milliseconds(Int64(generator.next() % UInt64(first.nanoseconds / 1_000_000)) + 1)
            default: first
            }
            fixture.timer(name).arm(in: final)
            expected.append((loop.now + final, name))
        }
        var fired: [(at: NIODeadline, name: String)] = []
        for (_, name) in expected {
            fixture.onFire[name] = { fired.append((loop.now, name)) }
        }
        loop.advanceTime(by: .seconds(20))
        // Each fired once, at its own deadline, in deadline order (ties in any order).
        #expect(fired.count == 300)
        #expect(Set(fired.map(\.name)).count == 300)
        let deadlines = Dictionary(uniqueKeysWithValues: expected.map { ($0.1, $0.0) })
        #expect(fired.allSatisfy { deadlines[$0.name] == $0.at })
        #expect(zip(fired, fired.dropFirst()).allSatisfy { $0.at <= $1.at })
        #expect(fixture.queue.queuedCount == 0)
    }

    @Test func actionsMayReArmAndCancelTimersDuringAFiring() {
        let loop = EmbeddedEventLoop()
        let fixture = Fixture(loop: loop)
        for name in ["a", "b", "c", "d"] { fixture.timer(name).arm(in: .seconds(1)) }
        fixture.timer("e").arm(in: .seconds(3))
        var aFirings = 0
        fixture.onFire["a"] = {
            aFirings += 1
            // Re-arm itself for now: runs again in the next tick, not in a loop within this one.
            if aFirings == 1 { fixture.timer("a").arm(in: .zero) }
        }
        // Whoever of b and c fires first cancels the other (both are due in the same tick); d is
        // disarmed and e moved earlier, into this second.
        fixture.onFire["b"] = {
            fixture.timer("c").cancel()
            fixture.timer("d").disarm()
            fixture.timer("e").arm(in: .milliseconds(500))
        }
        fixture.onFire["c"] = {
            fixture.timer("b").cancel()
            fixture.timer("d").disarm()
            fixture.timer("e").arm(in: .milliseconds(500))
        }
        loop.advanceTime(by: .seconds(1))
        #expect(fixture.log.filter { $0 == "b" || $0 == "c" }.count == 1)
        #expect(!fixture.log.contains("d"))
        #expect(aFirings == 2)
        loop.advanceTime(by: .milliseconds(499))
        #expect(!fixture.log.contains("e"))
        loop.advanceTime(by: .milliseconds(1))
        #expect(fixture.log.last == "e")
        loop.advanceTime(by: .seconds(10))
        #expect(fixture.log.count == 4)  // a twice, b or c, e
        #expect(fixture.queue.queuedCount == 0)
    }

    /// On a real loop held busy past several deadlines, the timers due together fire in deadline order,
    /// including one queued early and moved later.
    @Test func aLateFiringRunsTheDueTimersInDeadlineOrder() async throws {
        let order = try await Self.onARealLoop { (_, fixture, done: EventLoopPromise<[String]>) in
            fixture.timer("moved").arm(in: .milliseconds(20))
            fixture.timer("moved").arm(in: .milliseconds(150))
            fixture.timer("middle").arm(in: .milliseconds(100))
            fixture.timer("first").arm(in: .milliseconds(50))
            fixture.onFire["moved"] = { [unowned fixture] in
                done.succeed(fixture.log)
            }
            Thread.sleep(forTimeInterval: 0.3)  // the loop is busy past all three deadlines
        }
        #expect(order == ["first", "middle", "moved"])
    }

    /// On a real loop: fires near its deadline, and an earlier deadline replaces the callback already
    /// scheduled for a later one. With the system clock, timers are armed from the coarse clock, which
    /// may be a kernel tick (a few milliseconds) behind: they may fire that much early, never later.
    @Test(arguments: [TimerQueue.Clock.eventLoop, .system])
    func onARealLoopTimersFireNearTheirDeadlines(clock: TimerQueue.Clock) async throws {
        let tick: TimeAmount = clock == .system ? .milliseconds(10) : .zero
        let started = NIODeadline.now()
        let firings = try await Self.onARealLoop(clock: clock) { (_, fixture, done: EventLoopPromise<[String: NIODeadline]>) in
            var at: [String: NIODeadline] = [:]
            fixture.timer("late").arm(in: .milliseconds(400))
            fixture.timer("early").arm(in: .milliseconds(100))
            fixture.onFire["early"] = { at["early"] = .now() }
            fixture.onFire["late"] = {
                at["late"] = .now()
                done.succeed(at)
            }
        }
        let early = try #require(firings["early"]) - started
        let late = try #require(firings["late"]) - started
        #expect(early >= .milliseconds(100) - tick && early < .milliseconds(300))
        #expect(late >= .milliseconds(400) - tick && late < .milliseconds(700))
    }

    /// A timer whose action re-arms it for a deadline already past runs again in a later firing, after
    /// the other timers that were due with it (not over and over within one firing).
    @Test func aTimerReArmedForThePastByItsActionRunsAfterTheOthersDue() async throws {
        let order = try await Self.onARealLoop { (loop, fixture, done: EventLoopPromise<[String]>) in
            let past = loop.now
            var again = 3
            fixture.timer("a").arm(in: .milliseconds(20))
            fixture.timer("b").arm(in: .milliseconds(50))
            fixture.onFire["a"] = { [unowned fixture] in
                guard again > 0 else {
                    done.succeed(fixture.log)
                    return
                }
                again -= 1
                fixture.timer("a").arm(at: past)
            }
            Thread.sleep(forTimeInterval: 0.1)  // both due in the first firing
        }
        #expect(order == ["a", "b", "a", "a", "a"])
    }
}
