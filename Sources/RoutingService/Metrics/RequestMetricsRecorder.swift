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
        counters.slot(for: Key(domain: domain, status: status)) {
            metrics.requestCountSlot(domain: domain, status: status)
        }.increment()
        guard let duration else { return }
        latencies.slot(for: domain) { metrics.latencySlot(domain: domain) }.record(nanoseconds: duration.nanoseconds)
    }
}

/// One loop's slots by label set, made on first use, with the last one used kept aside: consecutive
/// requests mostly share domain and status, and then no hashing is needed.
private struct SlotCache<Key: Hashable, Slot: AnyObject> {
    private var slots: [Key: Slot] = [:]
    private var last: (key: Key, slot: Slot)?

    mutating func slot(for key: Key, make: () -> Slot) -> Slot {
        if let last, last.key == key { return last.slot }
        let slot: Slot
        if let known = slots[key] {
            slot = known
        } else {
            slot = make()
            slots[key] = slot
        }
        last = (key, slot)
        return slot
    }
}
