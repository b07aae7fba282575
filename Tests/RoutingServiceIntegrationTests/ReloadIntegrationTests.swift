import Foundation
import NIOHTTP1
import RoutingService
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Reload, admin API and write-back against the real gateway in this process, with Node instances.
@Suite("Reload and admin API", .serialized, .timeLimit(.minutes(2)))
struct ReloadIntegrationTests {
    let instances: NodeInstances

    init() throws {
        instances = try NodeInstances()
    }

    func withGateway(
        drain: String = "1s",
        extraDomains: [String] = [],
        options: Gateway.Options = .init(watchInterval: .milliseconds(100)),
        _ body: (GatewayUnderTest) async throws -> Void
    ) async throws {
        let gateway = try await GatewayUnderTest(
            options: options,
            yaml: GatewayUnderTest.standardYAML(instances: instances, drain: drain, extraDomains: extraDomains)
        )
        do {
            try await body(gateway)
        } catch {
            await gateway.stop()
            instances.stop()
            throw error
        }
        await gateway.stop()
        instances.stop()
    }

    func get(_ gateway: GatewayUnderTest, host: String, path: String = "/echo") throws -> Curl.Response {
        try Curl.get(gateway.plainURL + path, host: host)
    }

    // MARK: admin API

    @Test func adminNeedsTheBearerToken() async throws {
        try await withGateway { gateway in
            let anonymous = AdminClient(host: "127.0.0.1", port: gateway.adminPort, token: nil)
            #expect(try await anonymous.send(.GET, "/status").status == 401)
            let wrong = AdminClient(host: "127.0.0.1", port: gateway.adminPort, token: gateway.token + "x")
            #expect(try await wrong.send(.GET, "/status").status == 401)
            await #expect(throws: AdminClientError.self) { try await wrong.request(.GET, "/health") }
            let status = try await gateway.admin.request(.GET, "/status")
            #expect(status.status == 200)
            #expect((status.json?["version"] as? String)?.hasPrefix("1-") == true)
        }
    }

    @Test func staleVersionGets409AndInvalidChangesGet400WithProblems() async throws {
        try await withGateway { gateway in
            let admin = gateway.admin
            let version = try #require(try await admin.request(.GET, "/status").json?["version"] as? String)
            let body: [String: Any] = ["service": "app", "port": instances.port, "ssl": "off"]
            let stale = try await admin.request(.PUT, "/domains/new.test", json: body, ifMatch: "0-00000000")
            #expect(stale.status == 409)
            #expect(stale.json?["version"] as? String == version)
            let fresh = try await admin.request(.PUT, "/domains/new.test", json: body, ifMatch: version)
            #expect(fresh.status == 200, "\(fresh.text)")
            // The old version is stale now.
            let again = try await admin.request(.DELETE, "/domains/new.test", ifMatch: version)
            #expect(again.status == 409)

            let invalid = try await admin.request(.PUT, "/domains/bad.test", json: ["service": "nope", "port": 1, "ssl": "off"])
            #expect(invalid.status == 400)
            let problems = invalid.json?["problems"] as? [String] ?? []
            #expect(problems.contains { $0.contains("domains[2].service") && $0.contains("nope") }, "\(problems)")
            let broken = try await admin.request(.PUT, "/config", body: Array("listen: [\n".utf8))
            #expect(broken.status == 400)
            #expect((broken.json?["problems"] as? [String])?.isEmpty == false)
            #expect(try get(gateway, host: "stable.test").status == 200)
            #expect(try get(gateway, host: "bad.test").status == 404)
        }
    }

    @Test func aDomainAddedThroughTheAPIRoutesAtOnceAndIsInTheFile() async throws {
        try await withGateway { gateway in
            #expect(try get(gateway, host: "added.test").status == 404)
            let response = try await gateway.admin.request(
                .PUT, "/domains/added.test", json: ["service": "app", "port": instances.port, "ssl": "off"]
            )
            #expect(response.status == 200, "\(response.text)")
            #expect(response.json?["changes"] as? String == "+1 domain (added.test)")
            let routed = try get(gateway, host: "added.test")
            #expect(routed.status == 200)
            #expect(routed.body.contains("\"instance\""))
            let text = gateway.fileText
            #expect(text.contains("- { name: added.test, service: app, port: \(instances.port), ssl: off }"))
            #expect(text.contains("# Reload test configuration: this comment must survive write-backs."))
            #expect(text.contains("# never changes"))
            // A restart reads the same configuration.
            let reread = try ConfigurationLoader.load(path: gateway.configPath).get()
            #expect(reread.configuration.domains.contains { $0.name == DomainName("added.test") })

            let instancesResponse = try await gateway.admin.request(.DELETE, "/services/app/instances/127.0.0.4")
            #expect(instancesResponse.status == 200, "\(instancesResponse.text)")
            #expect(gateway.fileText.contains("instances: [127.0.0.2, 127.0.0.3]"))
            let listed = try await gateway.admin.request(.GET, "/services/app/instances")
            #expect((listed.json?["instances"] as? [Any])?.count == 2)
        }
    }

    @Test func aCrashDuringWriteBackLeavesTheOldFileAndRollsBack() async throws {
        let options = Gateway.Options(watchFile: false, writeFile: { text, path in
            try AtomicFile._testOnly_writeCrashingBeforeRename(Array(text.utf8), to: path)
        })
        try await withGateway(options: options) { gateway in
            let before = gateway.fileText
            let response = try await gateway.admin.request(
                .PUT, "/domains/crash.test", json: ["service": "app", "port": instances.port, "ssl": "off"]
            )
            #expect(response.status == 500)
            #expect(gateway.fileText == before)
            #expect(throws: Never.self) { try ConfigurationLoader.load(path: gateway.configPath).get() }
            #expect(try get(gateway, host: "crash.test").status == 404, "the change is rolled back")
            #expect(try get(gateway, host: "stable.test").status == 200)
        }
    }

    // MARK: reload semantics

    @Test func leastBusyStateSurvivesReload() async throws {
        try await withGateway { gateway in
            // A service with instance a only, so long requests pile up on a's counters.
            var text = gateway.fileText.replacingOccurrences(
                of: "  - name: tcp\n",
                with: "  - name: pin\n    ports:\n      - { port: \(instances.port), http: true }\n    instances: [127.0.0.2]\n  - name: tcp\n"
            ).replacingOccurrences(
                of: "# never changes", with: "# never changes\n  - { name: pin.test, service: pin, port: \(instances.port), ssl: off }"
            )
            try gateway.writeConfig(text)
            #expect(try await applied(gateway.gateway.reload()))
            let slow = try (0..<6).map { _ in
                try BackgroundProcess("curl", ["-s", "--max-time", "20", "-H", "Host: pin.test", gateway.plainURL + "/slow?ms=5000"])
            }
            defer { for process in slow { process.stop(grace: 1) } }
            let runtime = try #require(gateway.gateway.reloader).runtime
            let endpointA = ListenAddress(host: "127.0.0.2", port: instances.port)
            let deadline = Date().addingTimeInterval(5)
            while runtime.proxy.inFlight(at: endpointA) < 6 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(runtime.proxy.inFlight(at: endpointA) == 6)

            text = text.replacingOccurrences(of: "# never changes", with: "# never changes\n  - { name: extra.test, service: app, port: \(instances.port), ssl: off }")
            try gateway.writeConfig(text)
            #expect(try await applied(gateway.gateway.reload()))
            #expect(runtime.proxy.inFlight(at: endpointA) == 6, "in-flight counts kept across the reload")
            for _ in 0..<20 {
                let response = try get(gateway, host: "stable.test")
                #expect(response.status == 200)
                #expect(!response.body.contains("\"instance\":\"a\""), "the busy instance is avoided")
            }
        }
    }

    @Test func publicPortsAreBoundAndReleasedByReload() async throws {
        try await withGateway { gateway in
            let port = try FreePort.find(host: "127.0.0.1")
            let original = gateway.fileText
            try gateway.writeConfig(original + "publicPorts:\n  - { listen: 127.0.0.1:\(port), protocol: tcp, service: tcp, port: \(instances.port) }\n")
            #expect(try await applied(gateway.gateway.reload()))
            let socket = try RawSocket(host: "127.0.0.1", port: port)
            try socket.send("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let answer = String(decoding: socket.receive().bytes, as: UTF8.self)
            #expect(answer.contains("\"instance\":\"a\""), "\(answer)")

            try gateway.writeConfig(original)
            #expect(try await applied(gateway.gateway.reload()))
            #expect(canBind(port: port), "the released port can be bound by someone else")
        }
    }

    @Test func brokenConfigurationsAreRefusedWhileTrafficFlows() async throws {
        try await withGateway(options: .init(watchFile: false)) { gateway in
            let good = gateway.fileText
            let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("RoutingServiceTests/Fixtures/configs/broken")
            let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }.sorted()
            #expect(files.count >= 20)
            for file in files {
                let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                try gateway.writeConfig(text)
                guard case .refused(let error) = await gateway.gateway.reload() else {
                    Issue.record("\(file) was not refused")
                    continue
                }
                let found = Set(error.problems.map { "\($0.line) \($0.key)" })
                for line in text.split(separator: "\n") where line.hasPrefix("# expect: ") {
                    let expected = String(line.dropFirst("# expect: ".count))
                    #expect(found.contains(expected), "\(file): missing \(expected) in \(found)")
                }
                #expect(try get(gateway, host: "stable.test").status == 200, "\(file): traffic stopped")
            }
            try gateway.writeConfig(good)
            let status = try await gateway.admin.request(.GET, "/status")
            #expect((status.json?["version"] as? String)?.hasPrefix("1-") == true, "nothing was applied")
        }
    }

    @Test func webSocketsSurviveReloadsUnlessTheirRouteGoes() async throws {
        try await withGateway(drain: "1s", extraDomains: ["{ name: gone.test, service: app, port: \(instances.port), ssl: off }"]) { gateway in
            let stable = try WebSocketClient(port: gateway.httpPort, host: "stable.test")
            let doomed = try WebSocketClient(port: gateway.httpPort, host: "gone.test")
            #expect(stable.echo("hello")?.hasSuffix(":hello") == true)
            for index in 0..<10 {
                let response = index % 2 == 0
                    ? try await gateway.admin.request(.PUT, "/domains/x.test", json: ["service": "app", "port": instances.port, "ssl": "off"])
                    : try await gateway.admin.request(.DELETE, "/domains/x.test")
                #expect(response.status == 200)
                #expect(stable.echo("after \(index)")?.hasSuffix(":after \(index)") == true)
            }
            #expect(try await gateway.admin.request(.DELETE, "/domains/gone.test").status == 200)
            let removedAt = Date()
            #expect(doomed.echo("still here")?.hasSuffix(":still here") == true, "open until the drain deadline")
            #expect(doomed.waitForClose(timeout: 4))
            let closedAfter = Date().timeIntervalSince(removedAt)
            #expect(closedAfter >= 0.8 && closedAfter < 4, "closed after the 1s drain deadline, took \(closedAfter)")
            #expect(stable.echo("last")?.hasSuffix(":last") == true)
        }
    }

    // MARK: helpers

    func applied(_ outcome: ReloadOutcome?) async throws -> Bool {
        switch outcome {
        case .applied: return true
        case .refused(let error): throw TestFailure("refused: \(error)")
        default: return false
        }
    }

    func canBind(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        // SO_REUSEADDR, as any server sets: a connection in TIME_WAIT does not hold the port, a listener does.
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in(host: "127.0.0.1", port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return bound == 0 && listen(fd, 1) == 0
    }
}
