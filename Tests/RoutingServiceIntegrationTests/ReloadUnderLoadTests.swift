import Foundation
import NIOHTTP1
import RoutingService
import TestSupport
import Testing

/// The built `edge-router run` binary under 64 keep-alive connections (wrk, 20 s) while its
/// configuration is changed 50 times, in turn by SIGHUP, a file write (watcher) and the admin API,
/// adding and removing domains and instances: no failed request and no connection error.
@Suite("Reload under load", .serialized, .timeLimit(.minutes(2)))
struct ReloadUnderLoadTests {
    static let binary = CheckCommandTests.binary.path

    struct Model {
        var domains: Set<String> = []
        var withFourth = true

        func yaml(port: Int, http: Int, https: Int, admin: Int, token: String) -> String {
            let instances = withFourth ? "[127.0.0.2, 127.0.0.3, 127.0.0.4]" : "[127.0.0.2, 127.0.0.3]"
            let extra = domains.sorted().map { "  - { name: \($0), service: app, port: \(port), ssl: off }" }
            return """
                # Load test configuration (comments survive API write-backs).
                \(TestConfiguration.listenAndAdmin(http: http, https: https, admin: admin, token: token))
                services:
                  - name: app
                    ports:
                      - { port: \(port), http: true }
                    instances: \(instances)
                domains:
                  - { name: stable.test, service: app, port: \(port), ssl: off }
                \(extra.joined(separator: "\n"))

                """
        }
    }

    @Test func fiftyReloadsUnderLoadFailNoRequest() async throws {
        let instances = try NodeInstances()
        defer { instances.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edge-router-load-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let token = UUID().uuidString
        let tokenPath = directory.appendingPathComponent("admin.token").path
        try Data(token.utf8).write(to: URL(fileURLWithPath: tokenPath))
        let (http, https, adminPort) = (try FreePort.find(host: "127.0.0.1"), try FreePort.find(host: "127.0.0.1"), try FreePort.find(host: "127.0.0.1"))
        let configPath = directory.appendingPathComponent("edge-router.yaml").path
        var model = Model()
        func write() throws {
            try AtomicFile.write(Array(model.yaml(port: instances.port, http: http, https: https, admin: adminPort, token: tokenPath).utf8), to: configPath)
        }
        try write()

        let gateway = try BackgroundProcess(Self.binary, ["run", "--config", configPath, "--log-level", "info"])
        defer { gateway.stop(grace: 5) }
        let admin = AdminClient(host: "127.0.0.1", port: adminPort, token: token)
        let started = Date()
        while (try? await admin.request(.GET, "/health"))?.status != 200 {
            guard Date().timeIntervalSince(started) < 10 else { throw TestFailure("gateway did not start: \(gateway.log)") }
            try await Task.sleep(for: .milliseconds(50))
        }

        let wrk = try BackgroundProcess("wrk", [
            "-t2", "-c64", "-d20s", "--timeout", "5s", "-H", "Host: stable.test", "http://127.0.0.1:\(http)/echo",
        ])
        defer { wrk.stop(grace: 1) }
        try await Task.sleep(for: .seconds(1))

        var expectedVersion = 1
        var triggers: [String: Int] = [:]
        for step in 0..<50 {
            let trigger = ["sighup", "file", "api"][step % 3]
            triggers[trigger, default: 0] += 1
            let toggleInstance = step % 2 == 0
            let domain = "d\(step % 5).test"
            if toggleInstance { model.withFourth.toggle() } else if model.domains.contains(domain) {
                model.domains.remove(domain)
            } else {
                model.domains.insert(domain)
            }
            switch trigger {
            case "sighup":
                try write()
                gateway.signal(SIGHUP)
            case "file":
                try write()
            default:
                let response: AdminClient.Response
                if toggleInstance {
                    response = model.withFourth
                        ? try await admin.request(.POST, "/services/app/instances", json: ["address": "127.0.0.4"])
                        : try await admin.request(.DELETE, "/services/app/instances/127.0.0.4")
                } else if model.domains.contains(domain) {
                    response = try await admin.request(.PUT, "/domains/\(domain)", json: ["service": "app", "port": instances.port, "ssl": "off"])
                } else {
                    response = try await admin.request(.DELETE, "/domains/\(domain)")
                }
                #expect((200..<300).contains(response.status), "step \(step): \(response.text)")
            }
            expectedVersion += 1
            let deadline = Date().addingTimeInterval(3)
            var version = 0
            while Date() < deadline {
                let text = (try await admin.request(.GET, "/status").json?["version"] as? String) ?? ""
                version = Int(text.split(separator: "-").first ?? "") ?? 0
                if version >= expectedVersion { break }
                try await Task.sleep(for: .milliseconds(25))
            }
            #expect(version == expectedVersion, "step \(step) (\(trigger)) not applied")
            try await Task.sleep(for: .milliseconds(200))
        }

        let deadline = Date().addingTimeInterval(30)
        while wrk.process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        let report = wrk.log
        let requests = Int(report.firstMatch(of: /(\d+) requests in/)?.1 ?? "0") ?? 0
        #expect(requests > 1000, "\(report)")
        #expect(!report.contains("Socket errors"), "connection errors under reload: \(report)")
        #expect(!report.contains("Non-2xx"), "failed requests under reload: \(report)")
        let log = gateway.log
        for trigger in ["sighup", "file", "api"] {
            #expect(log.contains("trigger=\(trigger)"), "no reload by \(trigger)")
        }
        #expect(!log.contains("Configuration refused"))
        print("reload under load: \(requests) requests, 50 reloads \(triggers), 0 errors")
    }
}
