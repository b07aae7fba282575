import Foundation
import Logging
import NIOCore
import NIOPosix
import RoutingService
import TestSupport

/// The whole gateway in this process, from a configuration file in a temporary directory, with its
/// admin API and file watcher. Stopped by cancelling its task (the graceful-shutdown path).
final class GatewayUnderTest: @unchecked Sendable {
    let directory: URL
    let configPath: String
    let token = "test-token-\(UUID().uuidString)"
    let httpPort: Int
    let httpsPort: Int
    let adminPort: Int
    let gateway: Gateway
    private let task: Task<Void, any Error>

    /// `body(httpPort, httpsPort, adminPort, tokenPath)` returns the YAML text.
    init(
        options: Gateway.Options = .init(watchInterval: .milliseconds(100)),
        yaml body: (Int, Int, Int, String) -> String
    ) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("edge-router-reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let tokenPath = directory.appendingPathComponent("admin.token").path
        try Data((token + "\n").utf8).write(to: URL(fileURLWithPath: tokenPath))
        httpPort = try FreePort.find(host: "127.0.0.1")
        httpsPort = try FreePort.find(host: "127.0.0.1")
        adminPort = try FreePort.find(host: "127.0.0.1")
        configPath = directory.appendingPathComponent("edge-router.yaml").path
        let text = body(httpPort, httpsPort, adminPort, tokenPath)
        try Data(text.utf8).write(to: URL(fileURLWithPath: configPath))
        let loaded = try ConfigurationLoader.loadCheckingCertificates(path: configPath).get()
        var logger = Logger(label: "edge-router.test.gateway")
        logger.logLevel = .warning
        let gateway = Gateway(loaded: loaded, options: options, logger: logger)
        self.gateway = gateway
        task = Task { try await gateway.run() }
        let deadline = Date().addingTimeInterval(10)
        while gateway.boundAddresses == nil {
            guard Date() < deadline else { throw TestFailure("the gateway did not start") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    var admin: AdminClient { AdminClient(host: "127.0.0.1", port: adminPort, token: token) }
    var plainURL: String { "http://127.0.0.1:\(httpPort)" }

    var fileText: String { (try? String(contentsOfFile: configPath, encoding: .utf8)) ?? "" }

    func writeConfig(_ text: String) throws {
        try AtomicFile.write(Array(text.utf8), to: configPath)
    }

    /// Runs `body`, then stops the gateway, also when `body` throws.
    func whileRunning(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            await stop()
            throw error
        }
        await stop()
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
        try? FileManager.default.removeItem(at: directory)
    }

    /// The configuration the reload tests start from: `stable.test` on all three instances (kept by
    /// every reload), `app` service with the instances, optional extra lines appended under `domains:`.
    static func standardYAML(instances: NodeInstances, drain: String = "1s", extraDomains: [String] = [], instanceList: String? = nil)
        -> (Int, Int, Int, String) -> String
    {
        { http, https, admin, token in
            """
            # Reload test configuration: this comment must survive write-backs.
            \(TestConfiguration.listenAndAdmin(http: http, https: https, admin: admin, token: token))
            timeouts:
              drain: \(drain)
            balancers:
              http: 2
            services:
              - name: app
                ports:
                  - { port: \(instances.port), http: true }
                instances: \(instanceList ?? "[127.0.0.2, 127.0.0.3, 127.0.0.4]")
              - name: tcp
                ports:
                  - { port: \(instances.port) }
                instances: [127.0.0.2]
            domains:
              - { name: stable.test, service: app, port: \(instances.port), ssl: off }   # never changes
            \(extraDomains.map { "  - \($0)" }.joined(separator: "\n"))
            """
        }
    }
}
