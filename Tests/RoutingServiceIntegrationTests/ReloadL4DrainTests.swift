import Foundation
import NIOHTTP1
import RoutingService
import TestSupport
import Testing

/// L4 sessions on a route a reload removes get the drain deadline (`timeouts.drain`), then are closed:
/// an SNI-passthrough connection on a removed domain, and the sessions of a removed public TCP port
/// (whose listener is released at once). Sessions on routes that stay are not touched. The gateway
/// runs in this process; the instance is a Node TCP echo server on 127.0.0.2.
@Suite("Reload drains L4 sessions on removed routes", .serialized, .timeLimit(.minutes(2)))
struct ReloadL4DrainTests {
    struct Setup {
        let gateway: GatewayUnderTest
        let echoPort: Int
        let keptPort: Int
        let removedPort: Int
    }

    func withGateway(_ body: (Setup) async throws -> Void) async throws {
        let echo = try L4NodeInstances(script: "l4-tcp-echo.js", hosts: ["127.0.0.2"])
        defer { echo.stop() }
        let keptPort = try FreePort.find(host: "127.0.0.1")
        let removedPort = try FreePort.find(host: "127.0.0.1")
        let gateway = try await GatewayUnderTest(options: .init(watchFile: false)) { http, https, admin, token in
            """
            \(TestConfiguration.listenAndAdmin(http: http, https: https, admin: admin, token: token))
            timeouts:
              drain: 1s
            services:
              - name: echo
                ports:
                  - { port: \(echo.port) }
                instances: [127.0.0.2]
            domains:
              - { name: keep.db.test, service: echo, port: \(echo.port) }
              - { name: gone.db.test, service: echo, port: \(echo.port) }
            publicPorts:
              - { listen: 127.0.0.1:\(keptPort), protocol: tcp, service: echo, port: \(echo.port) }
              - { listen: 127.0.0.1:\(removedPort), protocol: tcp, service: echo, port: \(echo.port) }

            """
        }
        try await gateway.whileRunning { try await body(Setup(gateway: gateway, echoPort: echo.port, keptPort: keptPort, removedPort: removedPort)) }
    }

    /// A relayed session to the echo instance: greeted with `instance=…`, then every byte comes back.
    final class EchoSession {
        let socket: RawSocket

        init(port: Int, serverName: String? = nil) throws {
            socket = try RawSocket(host: "127.0.0.1", port: port, receiveTimeout: 0.3)
            var expected = Array("instance=i2\n".utf8)
            if let serverName {
                let hello = ClientHelloBytes(serverName: serverName).records()
                try socket.send(hello)
                expected += hello
            }
            let greeting = Self.collect(socket, count: expected.count, timeout: 5)
            guard greeting == expected else {
                throw TestFailure("no relayed greeting on port \(port): \(String(decoding: greeting, as: UTF8.self))")
            }
        }

        static func collect(_ socket: RawSocket, count: Int, timeout: Double) -> [UInt8] {
            var bytes: [UInt8] = []
            let deadline = Date().addingTimeInterval(timeout)
            while bytes.count < count && Date() < deadline {
                let result = socket.receive { $0.count >= count }
                bytes += result.bytes
                if result.closed { break }
            }
            return bytes
        }

        func echoes(_ text: String) -> Bool {
            guard (try? socket.send(text)) != nil else { return false }
            return Self.collect(socket, count: text.utf8.count, timeout: 3) == Array(text.utf8)
        }

        /// Whether the gateway closes the session within `timeout` seconds.
        func waitForClose(timeout: Double) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if socket.receive().closed { return true }
            }
            return false
        }
    }

    @Test func passthroughSessionOnARemovedDomainClosesAfterTheDrainDeadline() async throws {
        try await withGateway { setup in
            let gateway = setup.gateway
            let runtime = try #require(gateway.gateway.reloader).runtime
            let kept = try EchoSession(port: gateway.httpsPort, serverName: "keep.db.test")
            let doomed = try EchoSession(port: gateway.httpsPort, serverName: "gone.db.test")
            #expect(runtime.l4Sessions.count(on: .passthrough(DomainName("gone.db.test"))) == 1)
            #expect(runtime.l4Sessions.count(on: .passthrough(DomainName("keep.db.test"))) == 1)

            // A change elsewhere (a new domain) drains nothing.
            let added = try await gateway.admin.request(.PUT, "/domains/other.db.test", json: ["service": "echo", "port": setup.echoPort])
            #expect(added.status == 200, "\(added.text)")
            try await Task.sleep(for: .milliseconds(1300))
            #expect(doomed.echoes("still routed"))

            // Timed from before the request: the drain deadline starts while it is applied, and a
            // loaded machine may take a while to deliver the answer.
            let removedAt = Date()
            let removed = try await gateway.admin.request(.DELETE, "/domains/gone.db.test")
            #expect(removed.status == 200, "\(removed.text)")
            #expect(doomed.echoes("open until the deadline"))
            #expect(doomed.waitForClose(timeout: 4))
            let closedAfter = Date().timeIntervalSince(removedAt)
            #expect(closedAfter >= 0.95 && closedAfter < 4, "closed after the 1s drain deadline, took \(closedAfter)")
            #expect(kept.echoes("untouched"), "the session on the domain that stayed goes on")
            // The registry forgets a session when its channel's close completes, just after the client sees it.
            #expect(await eventually { runtime.l4Sessions.count(on: .passthrough(DomainName("gone.db.test"))) == 0 })
        }
    }

    @Test func sessionsOfARemovedPublicPortCloseAfterTheDrainDeadline() async throws {
        try await withGateway { setup in
            let gateway = setup.gateway
            let runtime = try #require(gateway.gateway.reloader).runtime
            let kept = try EchoSession(port: setup.keptPort)
            let doomed = try (0..<3).map { _ in try EchoSession(port: setup.removedPort) }
            let passthrough = try EchoSession(port: gateway.httpsPort, serverName: "keep.db.test")
            #expect(runtime.l4Sessions.count == 5)

            let without = gateway.fileText.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.contains("127.0.0.1:\(setup.removedPort)") }.joined(separator: "\n")
            try gateway.writeConfig(without)
            guard case .applied = await gateway.gateway.reload() else { throw TestFailure("reload not applied") }
            let removedAt = Date()
            #expect(!RawSocket.canConnect(host: "127.0.0.1", port: setup.removedPort), "the listener is released at once")
            for session in doomed { #expect(session.echoes("open until the deadline")) }
            for session in doomed { #expect(session.waitForClose(timeout: 4)) }
            let closedAfter = Date().timeIntervalSince(removedAt)
            #expect(closedAfter >= 0.95 && closedAfter < 4, "closed after the 1s drain deadline, took \(closedAfter)")
            #expect(kept.echoes("kept port untouched"))
            #expect(passthrough.echoes("passthrough untouched"))
            #expect(await eventually { runtime.l4Sessions.count == 2 })
        }
    }
}
