import Glibc
import NIOCore

/// The timeouts of one event loop in one place, as nginx keeps one timer tree per worker: the
/// `DeadlineTimer`s of every connection on the loop sit in a binary min-heap, and the queue keeps a
/// single NIO scheduled callback, for the earliest of them. So arming a connection's timer costs no
/// NIO task, promise or closure: at most a heap insert (O(log n)), and a deadline moved later costs
/// only a store (the timer's heap entry stays where it was; when that entry comes up it is moved to
/// the timer's current deadline, as `DeadlineTimer` did with its own task before).
///
/// Loop-confined, no locks: every call, and every timer action, runs on `eventLoop`.
final class TimerQueue {
    let eventLoop: any EventLoop

    /// Where the queue reads the time.
    enum Clock {
        /// The monotonic clock, `NIODeadline.now()`: what a `MultiThreadedEventLoopGroup`'s loops tell
        /// time by. Read directly, an arm costs no call through the `EventLoop` existential (and its
        /// retain and release of the loop), which every request paid several times.
        case system
        /// `eventLoop.now`, for loops with a clock of their own (`EmbeddedEventLoop` in tests).
        case eventLoop
    }

    private let clock: Clock

    /// A timer's place in the heap, ordered by `deadline`: the deadline it was queued for, which is at
    /// or before the timer's own (equal unless the timer was moved later since).
    private struct Entry {
        var deadline: NIODeadline
        let timer: DeadlineTimer
    }

    /// `DeadlineTimer.heapIndex` of a timer not in the heap.
    static let notQueued = -1

    private var heap: [Entry] = []
    /// The timers found due by the current firing, whose actions are being run (kept for its capacity).
    private var due: [DeadlineTimer] = []
    private var isFiring = false
    /// The pending NIO callback, its time, and its generation: a callback replaced by an earlier one is
    /// cancelled, and one that runs anyway (already taken off NIO's heap in the same tick) is told apart
    /// by its generation and does nothing.
    private var tick: NIOScheduledCallback?
    private var tickDeadline = NIODeadline.distantFuture
    private var tickGeneration: UInt64 = 0

    init(eventLoop: any EventLoop, clock: Clock = .eventLoop) {
        self.eventLoop = eventLoop
        self.clock = clock
    }

    /// The current time by this queue's clock.
    var now: NIODeadline {
        switch clock {
        case .system: return .now()
        case .eventLoop: return eventLoop.now
        }
    }

    /// The time a timer is armed from. With the system clock it is the monotonic clock as of the kernel's
    /// last tick (`CLOCK_MONOTONIC_COARSE`: the same timeline, at most a tick, a few milliseconds, behind),
    /// which costs a fraction of a precise read, and a request arms several timers. Timeouts are seconds
    /// long, so one that fires a tick early is harmless; firing itself reads the precise clock (`now`), so
    /// a deadline is never seen as not yet due once NIO's callback for it has run.
    var armingNow: NIODeadline {
        switch clock {
        case .system:
            var time = timespec()
            clock_gettime(CLOCK_MONOTONIC_COARSE, &time)
            return NIODeadline.uptimeNanoseconds(UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec))
        case .eventLoop:
            return eventLoop.now
        }
    }

    /// Timers in the heap, including disarmed ones waiting for their queued deadline to be dropped.
    var queuedCount: Int { heap.count }

    /// The deadline `timer` is queued for. - Precondition: it is queued.
    func queuedDeadline(of timer: DeadlineTimer) -> NIODeadline {
        heap[timer.heapIndex].deadline
    }

    /// Queues `timer` for `deadline`, or moves it earlier to it.
    /// - Precondition: `timer` is not queued, or is queued for a later deadline.
    func enqueue(_ timer: DeadlineTimer, at deadline: NIODeadline) {
        if timer.heapIndex == Self.notQueued {
            timer.heapIndex = heap.count
            heap.append(Entry(deadline: deadline, timer: timer))
        } else {
            assert(deadline < heap[timer.heapIndex].deadline, "only an earlier deadline re-queues a timer")
            heap[timer.heapIndex].deadline = deadline
        }
        siftUp(timer.heapIndex)
        if timer.heapIndex == 0 { scheduleTick(at: deadline) }
    }

    /// Takes `timer` out of the heap (no-op when it is not in it). The NIO callback stays: when it
    /// runs it finds nothing due and waits for the next timer.
    func remove(_ timer: DeadlineTimer) {
        guard timer.heapIndex != Self.notQueued else { return }
        remove(at: timer.heapIndex)
    }

    // MARK: Firing

    private struct Tick: NIOScheduledCallbackHandler {
        let queue: TimerQueue
        let generation: UInt64

        func handleScheduledCallback(eventLoop: some EventLoop) {
            queue.tickFired(generation: generation)
        }
    }

    private func scheduleTick(at deadline: NIODeadline) {
        guard !isFiring, deadline < tickDeadline else { return }
        tick?.cancel()
        tickGeneration &+= 1
        tickDeadline = deadline
        // Throws only once the loop is shutting down, when no timeout matters any more.
        tick = try? eventLoop.assumeIsolatedUnsafeUnchecked()
            .scheduleCallback(at: deadline, handler: Tick(queue: self, generation: tickGeneration))
    }

    /// Runs the actions of every timer whose deadline has passed, in deadline order, then schedules the
    /// callback for the next one. The due timers are collected before any action runs, so an action may
    /// arm, disarm or cancel any timer (itself included): a timer it re-arms, even for now, runs in a
    /// later tick, and one it disarms or cancels before its turn does not run.
    private func tickFired(generation: UInt64) {
        guard generation == tickGeneration else { return }
        tick = nil
        tickDeadline = .distantFuture
        let now = self.now
        while let first = heap.first, first.deadline <= now {
            let timer = first.timer
            guard let deadline = timer.deadline else {
                remove(at: 0)  // disarmed since it was queued
                continue
            }
            if deadline > first.deadline {
                // Moved later since it was queued: its entry moves to the deadline (and comes up again in
                // this loop if that has passed too, in its order).
                heap[0].deadline = deadline
                siftDown(0)
            } else {
                remove(at: 0)
                timer.isDue = true
                due.append(timer)
            }
        }
        isFiring = true
        for timer in due where timer.isDue {
            timer.fire()
        }
        isFiring = false
        due.removeAll(keepingCapacity: true)
        if let first = heap.first { scheduleTick(at: first.deadline) }
    }

    // MARK: Heap

    private func remove(at index: Int) {
        heap[index].timer.heapIndex = Self.notQueued
        let last = heap.removeLast()
        guard index < heap.count else { return }
        heap[index] = last
        last.timer.heapIndex = index
        siftDown(index)
        siftUp(index)
    }

    private func siftUp(_ start: Int) {
        var index = start
        let entry = heap[index]
        while index > 0 {
            let parent = (index - 1) / 2
            guard entry.deadline < heap[parent].deadline else { break }
            heap[index] = heap[parent]
            heap[index].timer.heapIndex = index
            index = parent
        }
        if index != start {
            heap[index] = entry
            entry.timer.heapIndex = index
        }
    }

    private func siftDown(_ start: Int) {
        var index = start
        let entry = heap[index]
        let count = heap.count
        while true {
            let left = 2 * index + 1
            guard left < count else { break }
            let right = left + 1
            let child = right < count && heap[right].deadline < heap[left].deadline ? right : left
            guard heap[child].deadline < entry.deadline else { break }
            heap[index] = heap[child]
            heap[index].timer.heapIndex = index
            index = child
        }
        if index != start {
            heap[index] = entry
            entry.timer.heapIndex = index
        }
    }
}

@available(*, unavailable)
extension TimerQueue: Sendable {}
