import NIOCore

/// A timeout whose deadline moves on every request but almost never fires (header, idle and
/// response-head timeouts, pooled connections' idle timeout).
///
/// Moving the deadline only stores it: a scheduled task exists at most once, and when it runs before
/// the current deadline it re-arms itself for it. So a request costs a clock read instead of a
/// `scheduleTask` and a `cancel` (a timer-heap insert and removal and a closure allocation each).
/// Loop-bound: every call, and the action, run on `eventLoop`.
final class DeadlineTimer {
    private let eventLoop: any EventLoop
    private let action: () -> Void
    /// When the action runs; nil while disarmed.
    private var deadline: NIODeadline?
    private var scheduled: Scheduled<Void>?
    private var scheduledFor = NIODeadline.distantFuture

    /// - Parameter action: runs once the deadline passes while armed. It must not hold its owner
    ///   strongly (`[unowned self]`), or owner and timer keep each other alive until `cancel()`; and
    ///   the owner must `cancel()` when it goes away (the pending task outlives it otherwise).
    init(eventLoop: any EventLoop, action: @escaping () -> Void) {
        self.eventLoop = eventLoop
        self.action = action
    }

    var isArmed: Bool { deadline != nil }

    func arm(in timeout: TimeAmount) {
        arm(at: eventLoop.now + timeout)
    }

    func arm(at deadline: NIODeadline) {
        self.deadline = deadline
        // A pending task at or before the deadline will re-arm itself; only an earlier deadline reschedules.
        if scheduled == nil || deadline < scheduledFor {
            schedule(at: deadline)
        }
    }

    /// The action will not run until the timer is armed again (the pending task, if any, stays and
    /// finds nothing to do).
    func disarm() {
        deadline = nil
    }

    /// Disarms and drops the pending task: call when the owner goes away.
    func cancel() {
        deadline = nil
        scheduled?.cancel()
        scheduled = nil
        scheduledFor = .distantFuture
    }

    private func schedule(at time: NIODeadline) {
        scheduled?.cancel()
        scheduledFor = time
        // Strong: a weak reference would give the timer a side table, and then every retain of it (one
        // per request) takes the runtime's slow path. The pending task keeps the timer alive until it
        // runs or `cancel()` drops it; owners cancel in their teardown and deinit.
        scheduled = eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: time) { self.fired() }
    }

    private func fired() {
        scheduled = nil
        scheduledFor = .distantFuture
        guard let deadline else { return }
        if deadline > eventLoop.now {
            schedule(at: deadline)
        } else {
            self.deadline = nil
            action()
        }
    }
}

@available(*, unavailable)
extension DeadlineTimer: Sendable {}
