import Metrics
import NIOCore

/// Counts requests by domain and status and times them, for one event loop: the counters and timers
/// are looked up in the registry once per (domain, status) and kept here, so a request costs a
/// dictionary lookup and an atomic add, with no lock.
final class RequestMetricsRecorder {
    private struct Key: Hashable {
        var domain: String
        var status: Int
    }

    private let metrics: GatewayMetrics
    private var counters: [Key: Metrics.Counter] = [:]
    private var timers: [String: Metrics.Timer] = [:]
    private var lastCounter: (key: Key, counter: Metrics.Counter)?
    private var lastTimer: (domain: String, timer: Metrics.Timer)?

    init(metrics: GatewayMetrics) {
        self.metrics = metrics
    }

    /// `domain` is a configured domain name (or `-` for requests no domain took): never a raw Host
    /// header, which would let clients grow the label set without bound.
    func record(domain: String, status: Int, duration: TimeAmount?) {
        let key = Key(domain: domain, status: status)
        let counter: Metrics.Counter
        if let last = lastCounter, last.key == key {
            // Consecutive requests mostly share domain and status: no hashing then.
            counter = last.counter
        } else if let known = counters[key] {
            counter = known
        } else {
            counter = metrics.requestCounter(domain: domain, status: status)
            counters[key] = counter
        }
        lastCounter = (key, counter)
        counter.increment()
        guard let duration else { return }
        let timer: Metrics.Timer
        if let last = lastTimer, last.domain == domain {
            timer = last.timer
        } else if let known = timers[domain] {
            timer = known
        } else {
            timer = metrics.upstreamLatencyTimer(domain: domain)
            timers[domain] = timer
        }
        lastTimer = (domain, timer)
        timer.recordNanoseconds(duration.nanoseconds)
    }
}
