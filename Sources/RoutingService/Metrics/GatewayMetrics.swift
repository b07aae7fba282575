import Metrics
import Prometheus
import Synchronization

/// Every metric of the gateway, its name and labels in one place (SPEC §5), recorded through
/// swift-metrics into a Prometheus registry that the admin listener renders at `/metrics`.
/// Values that already live elsewhere (in-flight counts, certificate expiry, health, UDP flows) are
/// not updated on the request path: `render()` reads them through the collectors when scraped.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    fileprivate let factory: PrometheusMetricsFactory
    private let collectors = Mutex<[@Sendable (GatewayMetrics) -> Void]>([])
    /// Handshake counters by (version, resumed): a handful of label sets, made once each, because making
    /// a counter per handshake costs a registry lock and label strings on every new connection. Found by
    /// a scan, not a dictionary: hashing the key cost more than comparing it with the two to four there are.
    private let handshakeCounters = Mutex<[(key: HandshakeCounterKey, counter: Metrics.Counter)]>([])
    /// Requests and upstream latencies: recorded on every request, so kept per event loop (see
    /// `LoopLocalRequestMetrics`) and not in the registry.
    private let requestMetrics = LoopLocalRequestMetrics()

    public init() {
        registry = PrometheusCollectorRegistry()
        factory = PrometheusMetricsFactory(registry: registry)
    }

    public enum Names {
        public static let requests = "edge_router_http_requests_total"
        public static let upstreamLatency = "edge_router_upstream_latency_seconds"
        public static let inFlight = "edge_router_upstream_in_flight"
        public static let instanceHealthy = "edge_router_upstream_healthy"
        public static let tlsHandshakes = "edge_router_tls_handshakes_total"
        public static let tlsHandshakeFailures = "edge_router_tls_handshake_failures_total"
        public static let certificateExpiry = "edge_router_certificate_expiry_timestamp_seconds"
        public static let reloads = "edge_router_config_reloads_total"
        public static let certificateState = "edge_router_certificate_state"
        public static let udpActiveFlows = "edge_router_udp_active_flows"
        public static let udpFlowsRefused = "edge_router_udp_flows_refused"
    }

    // MARK: Events (counters and histograms)

    /// A slot counting one domain's requests that ended with `status`, for the calling event loop,
    /// which keeps it (`RequestMetricsRecorder`): requests are counted per loop and summed when scraped.
    func requestCountSlot(domain: String, status: Int) -> RequestCountSlot {
        requestMetrics.requestCountSlot(domain: domain, status: status)
    }

    /// A slot for one domain's upstream latencies, for the calling event loop, which keeps it.
    func latencySlot(domain: String) -> LatencySlot {
        requestMetrics.latencySlot(domain: domain)
    }


    public func reloaded(outcome: String) {
        Metrics.Counter(label: Names.reloads, dimensions: [("outcome", outcome)], factory: factory).increment()
    }

    // MARK: State (gauges set when scraped)

    public func setGauge(_ name: String, _ value: Double, labels: [(String, String)]) {
        Metrics.Gauge(label: name, dimensions: labels, factory: factory).record(value)
    }

    /// `collector` runs at every scrape, before rendering, to set gauges from live state.
    public func addCollector(_ collector: @escaping @Sendable (GatewayMetrics) -> Void) {
        collectors.withLock { $0.append(collector) }
    }

    /// The Prometheus text exposition.
    public func render() -> String {
        for collector in collectors.withLock({ $0 }) { collector(self) }
        return registry.emitToString() + requestMetrics.render(requestsName: Names.requests, latencyName: Names.upstreamLatency)
    }
}

extension GatewayMetrics: TLSHandshakeObserver {
    public func handshakeCompleted(_ event: TLSHandshakeCompletedEvent) {
        let key = HandshakeCounterKey(version: event.protocolVersion, resumed: event.sessionReused)
        let counter = handshakeCounters.withLock { counters in
            if let known = counters.first(where: { $0.key == key }) { return known.counter }
            let counter = Metrics.Counter(
                label: Names.tlsHandshakes,
                dimensions: [("version", key.version), ("resumed", key.resumed ? "true" : "false")],
                factory: factory
            )
            counters.append((key, counter))
            return counter
        }
        counter.increment()
    }

    public func handshakeFailed(reason: TLSHandshakeFailure) {
        Metrics.Counter(label: Names.tlsHandshakeFailures, dimensions: [("reason", reason.rawValue)], factory: factory)
            .increment()
    }
}

/// The labels of `edge_router_tls_handshakes_total`.
private struct HandshakeCounterKey: Equatable, Sendable {
    var version: String
    var resumed: Bool
}
