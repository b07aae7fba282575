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

    init(metrics: GatewayMetrics) {
        self.metrics = metrics
    }

    /// `domain` is a configured domain name (or `-` for requests no domain took): never a raw Host
    /// header, which would let clients grow the label set without bound.
    func record(domain: String, status: Int, duration: TimeAmount?) {
        let key = Key(domain: domain, status: status)
        if let counter = counters[key] {
            counter.increment()
        } else {
            let counter = metrics.requestCounter(domain: domain, status: status)
            counters[key] = counter
            counter.increment()
        }
        guard let duration else { return }
        if let timer = timers[domain] {
            timer.recordNanoseconds(duration.nanoseconds)
        } else {
            let timer = metrics.upstreamLatencyTimer(domain: domain)
            timers[domain] = timer
            timer.recordNanoseconds(duration.nanoseconds)
        }
    }
}
