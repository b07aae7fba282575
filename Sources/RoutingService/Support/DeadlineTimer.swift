import NIOCore

/// A timeout whose deadline moves on every request but almost never fires (header, idle and
/// response-head timeouts, pooled connections' idle timeout, the TLS handshake timeout).
///
/// It lives in its event loop's `TimerQueue`: arming it costs no NIO scheduled task. Moving the
/// deadline later only stores it (the queue finds the move when the old deadline comes up), so a
/// request costs a clock read; an earlier deadline or a first arm is a heap insert.
/// Loop-bound: every call, and the action, run on the queue's event loop.
final class DeadlineTimer {
    let queue: TimerQueue
    private let action: () -> Void
    /// When the action runs; nil while disarmed.
    private(set) var deadline: NIODeadline?
    /// The queue's: taken off the heap as due by the firing in progress; cleared by any arm, disarm or
    /// cancel before the action's turn, which then does not run.
    var isDue = false
    /// Beside `deadline`'s tag and `isDue` in the padding before the next word: a timer is then 56
    /// bytes, not 65 (a 64-byte heap chunk instead of 80), and most connections hold one or two.
    private var heapSlot = Int32(TimerQueue.notQueued)

    /// The queue's: this timer's slot in its heap, or `TimerQueue.notQueued`.
    var heapIndex: Int {
        get { Int(heapSlot) }
        set { heapSlot = Int32(newValue) }
    }

    /// - Parameter action: runs once the deadline passes while armed. It must not hold its owner
    ///   strongly (`[unowned self]`): the queue holds an armed timer, and so its action, until the
    ///   deadline. The owner must `cancel()` when it goes away, or the action would run without it.
    init(queue: TimerQueue, action: @escaping () -> Void) {
        self.queue = queue
        self.action = action
    }

    /// A timer with a queue of its own, for owners that have no loop's queue at hand (client-side TLS,
    /// tests): it works the same but pays a queue and its NIO callback per timer.
    convenience init(eventLoop: any EventLoop, action: @escaping () -> Void) {
        self.init(queue: TimerQueue(eventLoop: eventLoop), action: action)
    }

    var isArmed: Bool { deadline != nil }

    func arm(in timeout: TimeAmount) {
        arm(at: queue.armingNow + timeout)
    }

    func arm(at deadline: NIODeadline) {
        self.deadline = deadline
        isDue = false
        // An entry at or before the deadline will be moved to it when it comes up; only an earlier
        // deadline (or none queued) touches the heap.
        if heapIndex == TimerQueue.notQueued || deadline < queue.queuedDeadline(of: self) {
            queue.enqueue(self, at: deadline)
        }
    }

    /// The action will not run until the timer is armed again. The heap entry, if any, stays until its
    /// deadline (then is dropped): cheaper than removing it when the timer is likely re-armed soon.
    func disarm() {
        deadline = nil
        isDue = false
    }

    /// Disarms and leaves the queue at once: call when the owner goes away. The timer can be armed again.
    func cancel() {
        deadline = nil
        isDue = false
        queue.remove(self)
    }

    /// Called by the queue once the deadline has passed.
    func fire() {
        isDue = false
        deadline = nil
        action()
    }
}

@available(*, unavailable)
extension DeadlineTimer: Sendable {}
