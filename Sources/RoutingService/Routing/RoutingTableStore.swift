import Synchronization

/// Holds the current routing snapshot and swaps it on reload. Requests keep the snapshot they
/// started with. Readers check a generation number (one atomic load) and only take the lock when
/// a reload happened since they last looked, so the request path takes no lock.
public final class RoutingTableStore<Snapshot: Sendable & AnyObject>: Sendable {
    private let current: Mutex<Snapshot>
    private let generationCounter: Atomic<UInt64>

    public init(_ initial: Snapshot) {
        self.current = Mutex(initial)
        self.generationCounter = Atomic(1)
    }

    public var generation: UInt64 { generationCounter.load(ordering: .acquiring) }

    public var snapshot: Snapshot { current.withLock { $0 } }

    public func replace(with snapshot: Snapshot) {
        current.withLock { $0 = snapshot }
        generationCounter.add(1, ordering: .releasing)
    }

    /// A per-connection (or per-event-loop) cache of the snapshot: refreshed only when the generation moved.
    public struct Cache {
        private var cachedGeneration: UInt64 = 0
        private var cached: Snapshot?

        public init() {}

        public mutating func current(from store: RoutingTableStore) -> Snapshot {
            let generation = store.generation
            if let cached, generation == cachedGeneration { return cached }
            // Read the generation before the snapshot: a concurrent swap makes us refresh again next time.
            let fresh = store.snapshot
            cached = fresh
            cachedGeneration = generation
            return fresh
        }
    }
}
