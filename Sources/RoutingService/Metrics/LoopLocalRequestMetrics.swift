import Synchronization

/// How many requests of one domain ended with one status, as one event loop counted them.
///
/// Why not a swift-prometheus counter: one counter per label set is shared by every loop, so each
/// request moved its cache line between the cores. Only its own loop writes this slot (single-writer
/// relaxed atomics: plain loads and stores), and a scrape sums the loops' slots.
final class RequestCountSlot: Sendable {
    let domain: String
    let status: Int
    private let count = Atomic<Int>(0)

    init(domain: String, status: Int) {
        self.domain = domain
        self.status = status
    }

    /// Only from the slot's own loop.
    func increment() {
        count.store(count.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    var value: Int { count.load(ordering: .relaxed) }
}

/// The upstream latencies of one domain's requests, as one event loop recorded them.
///
/// Why not a swift-prometheus histogram: it takes a lock per observation, shared by every loop; this
/// is written by its own loop only and summed over the loops when scraped.
final class LatencySlot: Sendable {
    /// The upper bounds of the buckets (Prometheus `le`), as before with swift-prometheus.
    static let bounds: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
    ]
    private static let boundNanosecondsTable: [Int64] = bounds.map { bound in
        let (seconds, attoseconds) = bound.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
    /// The bounds in nanoseconds, held by each slot: reading the `static let` on every request went
    /// through `swift_once` each time.
    private let boundNanoseconds = LatencySlot.boundNanosecondsTable

    let domain: String
    /// Observations per bucket, not cumulative: the first bound each is at or below; the last slot
    /// holds those above every bound.
    private let buckets: InlineArray<15, Atomic<Int>> = InlineArray { _ in Atomic(0) }
    private let sumNanoseconds = Atomic<Int64>(0)

    init(domain: String) {
        self.domain = domain
    }

    /// Only from the slot's own loop.
    func record(nanoseconds: Int64) {
        var index = 0
        while index < boundNanoseconds.count && nanoseconds > boundNanoseconds[index] { index += 1 }
        buckets[index].store(buckets[index].load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        sumNanoseconds.store(sumNanoseconds.load(ordering: .relaxed) &+ nanoseconds, ordering: .relaxed)
    }

    /// Observations per bucket (as recorded, not cumulative; the last is above every bound) and their sum.
    var snapshot: (buckets: [Int], sumNanoseconds: Int64) {
        var counts: [Int] = []
        counts.reserveCapacity(buckets.count)
        for index in buckets.indices { counts.append(buckets[index].load(ordering: .relaxed)) }
        return (counts, sumNanoseconds.load(ordering: .relaxed))
    }
}

/// Every loop's request slots, registered as the loops make them, and their Prometheus text.
final class LoopLocalRequestMetrics: Sendable {
    private let requestCounts = Mutex<[RequestCountSlot]>([])
    private let latencies = Mutex<[LatencySlot]>([])

    /// A new slot for the calling loop (which keeps it: a loop asks once per label set).
    func requestCountSlot(domain: String, status: Int) -> RequestCountSlot {
        let slot = RequestCountSlot(domain: domain, status: status)
        requestCounts.withLock { $0.append(slot) }
        return slot
    }

    func latencySlot(domain: String) -> LatencySlot {
        let slot = LatencySlot(domain: domain)
        latencies.withLock { $0.append(slot) }
        return slot
    }

    /// The loops' slots summed by label set, in the Prometheus text format (as swift-prometheus
    /// writes its own metrics).
    func render(requestsName: String, latencyName: String) -> String {
        var text = ""
        var counts: [String: Int] = [:]
        var order: [String] = []
        for slot in requestCounts.withLock({ $0 }) {
            let labels = "domain=\"\(Self.escaped(slot.domain))\",status=\"\(slot.status)\""
            if counts[labels] == nil { order.append(labels) }
            counts[labels, default: 0] += slot.value
        }
        if !order.isEmpty {
            text += "# TYPE \(requestsName) counter\n"
            for labels in order { text += "\(requestsName){\(labels)} \(counts[labels]!)\n" }
        }

        var histograms: [String: (buckets: [Int], sum: Int64)] = [:]
        var domains: [String] = []
        for slot in latencies.withLock({ $0 }) {
            let (buckets, sum) = slot.snapshot
            if let known = histograms[slot.domain] {
                histograms[slot.domain] = (zip(known.buckets, buckets).map(+), known.sum + sum)
            } else {
                histograms[slot.domain] = (buckets, sum)
                domains.append(slot.domain)
            }
        }
        if !domains.isEmpty {
            text += "# TYPE \(latencyName) histogram\n"
            for domain in domains {
                let (buckets, sum) = histograms[domain]!
                let label = "domain=\"\(Self.escaped(domain))\""
                var cumulative = 0
                for (bound, count) in zip(LatencySlot.bounds, buckets) {
                    cumulative += count
                    text += "\(latencyName)_bucket{\(label),le=\"\(Self.seconds(bound))\"} \(cumulative)\n"
                }
                cumulative += buckets[LatencySlot.bounds.count]
                text += "\(latencyName)_bucket{\(label),le=\"+Inf\"} \(cumulative)\n"
                text += "\(latencyName)_sum{\(label)} \(Double(sum) / 1_000_000_000)\n"
                text += "\(latencyName)_count{\(label)} \(cumulative)\n"
            }
        }
        return text
    }

    private static func seconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return "\(Double(seconds) + Double(attoseconds) / 1e18)"
    }

    /// Label values as the exposition format wants them (backslash, quote and newline escaped).
    private static func escaped(_ value: String) -> String {
        guard value.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return value }
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
