import Foundation
import Logging
import NIOCore
import RoutingService
import Testing
import TestSupport

/// Active health checks against real Node.js instances: an instance whose `/healthz` starts failing
/// (it still accepts connections) leaves selection within seconds and comes back when it recovers.
@Suite(.timeLimit(.minutes(1))) struct HealthCheckIntegrationTests {
    @Test func failingInstanceLeavesSelectionAndComesBack() async throws {
        let instances = try NodeInstances()
        defer { instances.stop() }
        var configuration = ProxyUnderTest.configuration(instances: instances)
        configuration.services[0].healthCheck = HealthCheckConfiguration(
            path: "/healthz", interval: .milliseconds(200), timeout: .milliseconds(500)
        )
        let proxy = try await ProxyUnderTest(configuration: configuration)
        let logs = LogCapture()
        let checks = HealthCheckService(configuration: configuration, runtime: proxy.runtime, logger: logs.logger)
        let running = Task { try await checks.run() }
        defer { running.cancel() }

        let sick = try Shell.run("curl", ["-s", "-X", "POST", "http://\(instances.endpoint(0))/sick"]).output
        #expect(sick.contains("\"sick\":true"))
        let endpoint = ListenAddress(host: NodeInstances.hosts[0], port: instances.port)
        #expect(await eventually(within: .seconds(5)) {
            proxy.runtime.balancers.allSatisfy { $0.registry.instance(for: endpoint)?.isHealthy == false }
        })
        // The service takes the instance out of selection, then logs: the line may follow the flag by a moment.
        #expect(await eventually(within: .seconds(2)) {
            logs.contains("failed its health checks") { $0["reason"]?.contains("503") == true }
        })

        // Out of selection: no request reaches it.
        var answeredBy: [String: Int] = [:]
        for _ in 0..<30 {
            let body = try Shell.run("curl", ["-s", "-H", "Host: app.test", "\(proxy.url)/echo"]).output
            let id = body.components(separatedBy: "\"instance\":\"").dropFirst().first?.prefix(1).description ?? "?"
            answeredBy[id, default: 0] += 1
        }
        #expect(Set(answeredBy.keys).isSubset(of: ["b", "c"]), "\(answeredBy)")
        #expect(answeredBy.values.reduce(0, +) == 30, "\(answeredBy)")

        _ = try Shell.run("curl", ["-s", "-X", "POST", "http://\(instances.endpoint(0))/well"])
        #expect(await eventually(within: .seconds(5)) {
            proxy.runtime.balancers.allSatisfy { $0.registry.instance(for: endpoint)?.isHealthy == true }
        })
        #expect(await eventually(within: .seconds(2)) { logs.contains("passes its health checks again") })
        running.cancel()
        try await proxy.shutdown()
    }
}
