import Foundation

extension GatewayRuntime {
    /// The gauges read from live state at each scrape: nothing on the request path writes them.
    public func registerMetricCollectors() {
        metrics.addCollector { [weak self] metrics in
            guard let self else { return }
            for balancer in proxy.balancers {
                for instance in balancer.registry.all {
                    let labels = [("instance", instance.endpoint.description), ("balancer", String(balancer.index))]
                    metrics.setGauge(GatewayMetrics.Names.inFlight, Double(instance.inFlight), labels: labels)
                    metrics.setGauge(GatewayMetrics.Names.instanceHealthy, instance.isHealthy ? 1 : 0, labels: labels)
                }
            }
            for certificate in loadedCertificates {
                metrics.setGauge(
                    GatewayMetrics.Names.certificateExpiry,
                    certificate.notAfter.timeIntervalSince1970,
                    labels: [("folder", certificate.folder), ("names", certificate.names.map(\.value).joined(separator: ","))]
                )
            }
            for state in certificateManager?.states() ?? [] {
                for status in DomainCertificateStatus.allCases {
                    metrics.setGauge(
                        GatewayMetrics.Names.certificateState, state.status == status ? 1 : 0,
                        labels: [("domain", state.name), ("state", status.rawValue)]
                    )
                }
                if let notAfter = state.notAfter {
                    metrics.setGauge(
                        GatewayMetrics.Names.certificateExpiry, notAfter.timeIntervalSince1970,
                        labels: [("folder", "acme"), ("names", state.name)]
                    )
                }
            }
            for case let listener as L4UDPListener in publicListeners {
                let labels = [("listen", listener.configuration.listen.description)]
                metrics.setGauge(GatewayMetrics.Names.udpFlowsRefused,
                                 Double(listener.statistics.flowsRefusedAtLimit), labels: labels)
                metrics.setGauge(GatewayMetrics.Names.udpActiveFlows, Double(listener.statistics.activeFlows), labels: labels)
            }
        }
    }
}
