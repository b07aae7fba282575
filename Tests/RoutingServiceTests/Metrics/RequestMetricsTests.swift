import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import RoutingService

/// Requests and upstream latencies are recorded per event loop and summed when `/metrics` is scraped.
@Suite("Request metrics per event loop")
struct RequestMetricsTests {
    @Test func countsFromEveryLoopAreSummedByDomainAndStatus() {
        let metrics = GatewayMetrics()
        let firstLoop = RequestMetricsRecorder(metrics: metrics)
        let secondLoop = RequestMetricsRecorder(metrics: metrics)
        firstLoop.record(domain: "a.test", status: 200, duration: nil)
        firstLoop.record(domain: "a.test", status: 200, duration: nil)
        firstLoop.record(domain: "a.test", status: 502, duration: nil)
        firstLoop.record(domain: "a.test", status: 200, duration: nil)  // back to a label set it already has
        secondLoop.record(domain: "a.test", status: 200, duration: nil)
        secondLoop.record(domain: "-", status: 404, duration: nil)

        let text = metrics.render()
        #expect(text.contains("# TYPE edge_router_http_requests_total counter\n"))
        #expect(text.contains("edge_router_http_requests_total{domain=\"a.test\",status=\"200\"} 4\n"), "\(text)")
        #expect(text.contains("edge_router_http_requests_total{domain=\"a.test\",status=\"502\"} 1\n"), "\(text)")
        #expect(text.contains("edge_router_http_requests_total{domain=\"-\",status=\"404\"} 1\n"), "\(text)")
        // One line per label set, however many loops counted it.
        #expect(text.components(separatedBy: "status=\"200\"}").count == 2, "\(text)")
        // Local answers have no upstream latency.
        #expect(!text.contains("edge_router_upstream_latency_seconds_count{domain=\"-\"}"), "\(text)")
    }

    @Test func latencyBucketsAreCumulativeWithSumAndCountOverEveryLoop() {
        let metrics = GatewayMetrics()
        let firstLoop = RequestMetricsRecorder(metrics: metrics)
        let secondLoop = RequestMetricsRecorder(metrics: metrics)
        firstLoop.record(domain: "a.test", status: 200, duration: .microseconds(500))  // le 0.001
        firstLoop.record(domain: "a.test", status: 200, duration: .milliseconds(1))  // le 0.001 (bounds are inclusive)
        secondLoop.record(domain: "a.test", status: 200, duration: .milliseconds(7))  // le 0.01
        secondLoop.record(domain: "a.test", status: 200, duration: .seconds(60))  // above every bound

        let text = metrics.render()
        let name = "edge_router_upstream_latency_seconds"
        #expect(text.contains("# TYPE \(name) histogram\n"))
        #expect(text.contains("\(name)_bucket{domain=\"a.test\",le=\"0.001\"} 2\n"), "\(text)")
        #expect(text.contains("\(name)_bucket{domain=\"a.test\",le=\"0.005\"} 2\n"), "\(text)")
        #expect(text.contains("\(name)_bucket{domain=\"a.test\",le=\"0.01\"} 3\n"), "\(text)")
        #expect(text.contains("\(name)_bucket{domain=\"a.test\",le=\"30.0\"} 3\n"), "\(text)")
        #expect(text.contains("\(name)_bucket{domain=\"a.test\",le=\"+Inf\"} 4\n"), "\(text)")
        #expect(text.contains("\(name)_count{domain=\"a.test\"} 4\n"), "\(text)")
        #expect(text.contains("\(name)_sum{domain=\"a.test\"} 60.0085\n"), "\(text)")
    }

    @Test func slotsWrittenOnTwoEventLoopsAreAllCounted() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let metrics = GatewayMetrics()
        let perLoop = 20_000
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for _ in 0..<2 {
                let loop = group.next()
                tasks.addTask {
                    try await loop.submit {
                        let recorder = RequestMetricsRecorder(metrics: metrics)
                        for _ in 0..<perLoop { recorder.record(domain: "a.test", status: 200, duration: .milliseconds(3)) }
                    }.get()
                }
            }
            try await tasks.waitForAll()
        }
        let text = metrics.render()
        #expect(text.contains("edge_router_http_requests_total{domain=\"a.test\",status=\"200\"} \(2 * perLoop)\n"), "\(text)")
        #expect(text.contains("edge_router_upstream_latency_seconds_count{domain=\"a.test\"} \(2 * perLoop)\n"), "\(text)")
        try await group.shutdownGracefully()
    }

    @Test func labelValuesAreEscaped() {
        let metrics = GatewayMetrics()
        RequestMetricsRecorder(metrics: metrics).record(domain: "odd\"name\\", status: 200, duration: nil)
        #expect(metrics.render().contains(#"edge_router_http_requests_total{domain="odd\"name\\",status="200"} 1"#))
    }
}
