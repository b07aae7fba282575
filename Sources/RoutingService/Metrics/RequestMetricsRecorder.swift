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
    private var counters: [Key: RequestCountSlot] = [:]
    private var latencies: [String: LatencySlot] = [:]
    private var lastCounter: (key: Key, counter: RequestCountSlot)?
    private var lastLatency: (domain: String, slot: LatencySlot)?

    init(metrics: GatewayMetrics) {
        self.metrics = metrics
    }

    /// `domain` is a configured domain name (or `-` for requests no domain took): never a raw Host
    /// header, which would let clients grow the label set without bound.
    func record(domain: String, status: Int, duration: TimeAmount?) {
        let key = Key(domain: domain, status: status)
        let counter: RequestCountSlot
        if let last = lastCounter, last.key == key {
            // Consecutive requests mostly share domain and status: no hashing then.
            counter = last.counter
        } else {
            if let known = counters[key] {
                counter = known
            } else {
                counter = metrics.requestCountSlot(domain: domain, status: status)
                counters[key] = counter
            }
            lastCounter = (key, counter)
        }
        counter.increment()
        guard let duration else { return }
        let latency: LatencySlot
        if let last = lastLatency, last.domain == domain {
            latency = last.slot
        } else {
            if let known = latencies[domain] {
                latency = known
            } else {
                latency = metrics.latencySlot(domain: domain)
                latencies[domain] = latency
            }
            lastLatency = (domain, latency)
        }
        latency.record(nanoseconds: duration.nanoseconds)
    }
}
