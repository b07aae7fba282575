import NIOCore

/// Counts requests by domain and status and times them, for one event loop: its slots are made once
/// per (domain, status) and kept here, and only this loop writes them, so a request costs at most a
/// dictionary lookup and a few plain stores: no lock, no cache line shared with the other loops.
final class RequestMetricsRecorder {
    private struct Key: Hashable {
        var domain: String
        var status: Int
    }

    private let metrics: GatewayMetrics
    private var counters = SlotCache<Key, RequestCountSlot>()
    private var latencies = SlotCache<String, LatencySlot>()

    init(metrics: GatewayMetrics) {
        self.metrics = metrics
    }

    /// `domain` is a configured domain name (or `-` for requests no domain took): never a raw Host
    /// header, which would let clients grow the label set without bound.
    func record(domain: String, status: Int, duration: TimeAmount?) {
        counters.withSlot(for: Key(domain: domain, status: status)) {
            metrics.requestCountSlot(domain: domain, status: status)
        } use: { $0.increment() }
        guard let duration else { return }
        latencies.withSlot(for: domain) { metrics.latencySlot(domain: domain) } use: {
            $0.record(nanoseconds: duration.nanoseconds)
        }
    }
}

/// One loop's slots by label set, made on first use, with the last one used kept aside: consecutive
/// requests mostly share domain and status, and then no hashing is needed.
private struct SlotCache<Key: Hashable, Slot: AnyObject> {
    private var slots: [Key: Slot] = [:]
    /// Unretained: `slots` keeps every slot it makes for the cache's life. Used without a retain, since a
    /// slot's update is an atomic store, around which the optimiser keeps a retained slot's retain and
    /// release (two operations per slot per request).
    private var last: (key: Key, slot: Unmanaged<Slot>)?

    mutating func withSlot<Result>(for key: Key, make: () -> Slot, use: (Slot) -> Result) -> Result {
        if let last, last.key == key { return last.slot._withUnsafeGuaranteedRef(use) }
        let slot: Slot
        if let known = slots[key] {
            slot = known
        } else {
            slot = make()
            slots[key] = slot
        }
        last = (key, Unmanaged.passUnretained(slot))
        return use(slot)
    }
}
