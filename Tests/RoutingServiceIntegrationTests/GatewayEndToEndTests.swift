import Foundation
import Testing
import TestSupport

/// The real `edge-router run` binary with a config on loopback ports, certificates imported with
/// `edge-router certs import`, three Node.js HTTP instances, three Node.js TLS instances (passthrough)
/// and three TCP echo instances (public port), driven with curl, openssl s_client and raw sockets.
@Suite(.serialized, .timeLimit(.minutes(2))) final class GatewayEndToEndTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let binary = CheckCommandTests.binary.path
    static let nodeDirectory = repositoryRoot.appendingPathComponent("Tests/RoutingServiceIntegrationTests/Node").path

    let authority: TestCertificateAuthority
    let scratch: URL
    let http: NodeInstances
    var instances: [BackgroundProcess] = []
    let httpsPort: Int
    let plainPort: Int
    let publicPort: Int
    let tlsInstancePort: Int
    let echoInstancePort: Int

    init() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build first: swift build --build-tests")
        authority = try TestCertificateAuthority()
        scratch = authority.directory
        http = try NodeInstances()
        httpsPort = try FreePort.find(host: "127.0.0.1")
        plainPort = try FreePort.find(host: "127.0.0.1")
        publicPort = try FreePort.find(host: "127.0.0.1")
        tlsInstancePort = try FreePort.find(host: "127.0.0.2")
        echoInstancePort = try FreePort.find(host: "127.0.0.2")

        let database = try authority.issue(["db.e2e.test"])
        for (index, host) in NodeInstances.hosts.enumerated() {
            instances.append(try BackgroundProcess("node", [
                "\(Self.nodeDirectory)/l4-tls-server.js", host, String(tlsInstancePort), "tls\(index)",
                database.chainPath, database.keyPath,
            ]))
            instances.append(try BackgroundProcess("node", [
                "\(Self.nodeDirectory)/l4-tcp-echo.js", host, String(echoInstancePort), "echo\(index)",
            ]))
        }
        for host in NodeInstances.hosts {
            try Self.waitUntilListening(host: host, port: tlsInstancePort)
            try Self.waitUntilListening(host: host, port: echoInstancePort)
        }
    }

    deinit {
        for instance in instances { instance.stop(grace: 2) }
        http.stop()
    }

    static func waitUntilListening(host: String, port: Int, timeout: Double = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !RawSocket.canConnect(host: host, port: port) {
            guard Date() < deadline else { throw TestFailure("nothing listening on \(host):\(port)") }
            usleep(20_000)
        }
    }

    var certificateDirectory: String { scratch.appendingPathComponent("store").path }

    func configuration(extraDomain: String = "") -> String {
        """
        listen:
          https: 127.0.0.1:\(httpsPort)
          http: 127.0.0.1:\(plainPort)
        certificates:
          directory: \(certificateDirectory)
          default: app.e2e.test
        timeouts:
          drain: 2s
        services:
          - name: web
            ports:
              - { port: \(http.port), http: true }
            instances: [127.0.0.2, 127.0.0.3, 127.0.0.4]
          - name: db
            ports:
              - { port: \(tlsInstancePort) }
              - { port: \(echoInstancePort) }
            instances: [127.0.0.2, 127.0.0.3, 127.0.0.4]
        domains:
          - { name: app.e2e.test, service: web, port: \(http.port), ssl: manual }
          - { name: "*.e2e.test", service: web, port: \(http.port), ssl: manual }
          - { name: plain.e2e.test, service: web, port: \(http.port), ssl: off }
          - { name: db.e2e.test, service: db, port: \(tlsInstancePort) }
        \(extraDomain)
        publicPorts:
          - { listen: 127.0.0.1:\(publicPort), protocol: tcp, service: db, port: \(echoInstancePort) }
        """
    }

    func writeConfiguration(_ text: String) throws -> String {
        let path = scratch.appendingPathComponent("gateway.yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func importCertificate() throws {
        let leaf = try authority.issue(["app.e2e.test", "*.e2e.test"], file: "front")
        let imported = try Shell.run(Self.binary, [
            "certs", "import", "--directory", certificateDirectory, "--cert", leaf.chainPath, "--key", leaf.keyPath,
        ])
        #expect(imported.output.contains("app.e2e.test"))
    }

    func startGateway(config: String) throws -> BackgroundProcess {
        let gateway = try BackgroundProcess(Self.binary, ["run", "--config", config])
        let deadline = Date().addingTimeInterval(20)
        while !gateway.log.contains("edge-router running") {
            guard gateway.process.isRunning, Date() < deadline else {
                gateway.stop()
                throw TestFailure("gateway did not start: \(gateway.log)")
            }
            usleep(20_000)
        }
        return gateway
    }

    func curl(_ arguments: [String]) throws -> String {
        try Shell.run("curl", ["-s", "--max-time", "10", "--cacert", authority.caCertificatePath] + arguments,
                      allowFailure: true).output
    }

    func https(_ host: String, _ path: String, _ extra: [String] = []) throws -> String {
        try curl(["--resolve", "\(host):\(httpsPort):127.0.0.1", "https://\(host):\(httpsPort)\(path)"] + extra)
    }

    func sClient(serverName: String?, input: String = "", extra: [String] = []) throws -> String {
        var arguments = ["s_client", "-connect", "127.0.0.1:\(httpsPort)", "-CAfile", authority.caCertificatePath]
        arguments += serverName.map { ["-servername", $0] } ?? ["-noservername"]
        return try Shell.run("openssl", arguments + extra, input: Data(input.utf8), allowFailure: true).output
    }

    @Test func servesTerminatesPassesThroughAndRelaysThenStopsCleanly() throws {
        try importCertificate()
        let gateway = try startGateway(config: try writeConfiguration(configuration()))
        defer { gateway.stop() }

        // HTTPS terminated with the imported certificate, proxied as HTTP to an instance with forwarding headers.
        // HTTP/1.1 on purpose: `Connection` nominating a header only means something there (curl would
        // otherwise pick h2, where it is not sent and X-Secret is an ordinary header).
        let echo = try https(
            "app.e2e.test", "/echo?x=1", ["--http1.1", "-H", "Connection: keep-alive, X-Secret", "-H", "X-Secret: no"]
        )
        #expect(echo.contains("\"x-forwarded-proto\":\"https\""), "\(echo)")
        #expect(echo.contains("\"x-forwarded-host\":\"app.e2e.test:\(httpsPort)\""), "\(echo)")
        #expect(echo.contains("\"x-forwarded-for\":\"127.0.0.1\""), "\(echo)")
        #expect(echo.contains("proto=https"), "\(echo)")
        #expect(echo.contains("\"via\":\"1.1 edge-router\""), "\(echo)")
        #expect(!echo.contains("x-secret"), "a header named in Connection must not arrive: \(echo)")
        #expect(try https("api.e2e.test", "/echo").contains("\"url\":\"/echo\""), "wildcard domain")

        // A Host routing elsewhere than the SNI is misdirected.
        let misdirected = try https("app.e2e.test", "/echo", ["-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: plain.e2e.test"])
        #expect(misdirected == "421")

        // Certificates by SNI: exact, wildcard, none (default); unknown and ssl: off names refused.
        #expect(try sClient(serverName: "app.e2e.test").contains("subject=CN = app.e2e.test"))
        #expect(try sClient(serverName: "x.e2e.test").contains("Verify return code: 0 (ok)"))
        #expect(try sClient(serverName: nil).contains("subject=CN = app.e2e.test"))
        #expect(try sClient(serverName: "nobody.test").contains("unrecognized name"))
        #expect(try sClient(serverName: "plain.e2e.test").contains("unrecognized name"))

        // Plain listener: 308 to HTTPS keeping path and query, ssl: off proxied, unknown host 404.
        let redirect = try curl(["-i", "--resolve", "app.e2e.test:\(plainPort):127.0.0.1",
                                 "http://app.e2e.test:\(plainPort)/a/b?c=d"])
        #expect(redirect.hasPrefix("HTTP/1.1 308"), "\(redirect)")
        #expect(redirect.contains("https://app.e2e.test:\(httpsPort)/a/b?c=d"), "\(redirect)")
        let plain = try curl(["--resolve", "plain.e2e.test:\(plainPort):127.0.0.1", "http://plain.e2e.test:\(plainPort)/echo"])
        #expect(plain.contains("\"x-forwarded-proto\":\"http\""), "\(plain)")
        let unknown = try curl(["-o", "/dev/null", "-w", "%{http_code}", "--resolve", "who.test:\(plainPort):127.0.0.1",
                                "http://who.test:\(plainPort)/"])
        #expect(unknown == "404")

        // SNI passthrough: the instance's own certificate reaches the client, data round-trips.
        let passthrough = try sClient(serverName: "db.e2e.test", input: "ping\n", extra: ["-ign_eof"])
        #expect(passthrough.contains("subject=CN = db.e2e.test"), "\(passthrough)")
        #expect(passthrough.contains("Verify return code: 0 (ok)"))
        #expect(passthrough.contains("pong from tls"), "\(passthrough)")

        // Public TCP port relayed at layer 4.
        let socket = try RawSocket(host: "127.0.0.1", port: publicPort)
        try socket.send("hello\n")
        let relayed = String(decoding: socket.receive { String(decoding: $0, as: UTF8.self).contains("hello\n") }.bytes, as: UTF8.self)
        #expect(relayed.hasPrefix("instance=echo"), "\(relayed)")
        #expect(relayed.contains("hello\n"))

        // Garbage on the TLS port: closed with a log line; the listener keeps serving.
        let garbage = try RawSocket(host: "127.0.0.1", port: httpsPort)
        try garbage.send("GET / HTTP/1.1\r\nHost: app.e2e.test\r\n\r\n")
        #expect(garbage.receive().closed)
        #expect(try https("app.e2e.test", "/echo").contains("\"url\":\"/echo\""))

        // SIGTERM: stop accepting, drain (the public-port session above is still open, so the gateway
        // waits for it up to the 2 s drain deadline), exit 0.
        let stopping = Date()
        gateway.signal(SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while gateway.process.isRunning && Date() < deadline { usleep(20_000) }
        #expect(!gateway.process.isRunning)
        #expect(gateway.process.terminationStatus == 0, "\(gateway.log)")
        #expect(gateway.log.contains("edge-router stopped"))
        #expect(gateway.log.contains("Drain deadline reached"), "\(gateway.log)")
        #expect(gateway.log.contains("l4Sessions=1"), "\(gateway.log)")
        #expect(Date().timeIntervalSince(stopping) >= 1.5, "the open L4 session was waited for")
        withExtendedLifetime(socket) {}
        #expect(!RawSocket.canConnect(host: "127.0.0.1", port: httpsPort))
    }

    @Test func aSecondSignalExitsAtOnceInsteadOfWaitingForTheDrain() throws {
        try importCertificate()
        let gateway = try startGateway(config: try writeConfiguration(configuration()))
        defer { gateway.stop() }
        // An open L4 session makes the graceful drain wait (up to 2 s here).
        let socket = try RawSocket(host: "127.0.0.1", port: publicPort)
        try socket.send("hold\n")
        _ = socket.receive { String(decoding: $0, as: UTF8.self).contains("hold\n") }
        gateway.signal(SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while !gateway.log.contains("Shutting down"), Date() < deadline { usleep(10_000) }
        let second = Date()
        gateway.signal(SIGTERM)
        while gateway.process.isRunning && Date() < deadline { usleep(10_000) }
        #expect(!gateway.process.isRunning)
        #expect(Date().timeIntervalSince(second) < 1.0, "the second signal does not wait for the drain")
        #expect(gateway.process.terminationStatus == 1)
        #expect(gateway.log.contains("second signal, exiting now"), "\(gateway.log)")
        withExtendedLifetime(socket) {}
    }

    @Test func sigtermClosesIdleClientsAndLetsRequestsInFlightFinishWithConnectionClose() throws {
        try importCertificate()
        let gateway = try startGateway(config: try writeConfiguration(configuration()))
        defer { gateway.stop() }
        // Node/drain-client.js: an idle keep-alive connection and requests in flight (see ClientDrainTests).
        let client = try BackgroundProcess("node", [
            ClientDrainTests.clientScript, "http1", String(httpsPort), "app.e2e.test", authority.caCertificatePath, "1000",
        ])
        defer { client.stop(grace: 1) }
        var deadline = Date().addingTimeInterval(10)
        while !client.log.contains("READY ") && client.process.isRunning && Date() < deadline { usleep(10_000) }
        #expect(client.log.contains("READY "), "\(client.log)")
        let stopping = Date()
        gateway.signal(SIGTERM)
        deadline = Date().addingTimeInterval(10)
        while (gateway.process.isRunning || client.process.isRunning) && Date() < deadline { usleep(20_000) }
        #expect(gateway.process.terminationStatus == 0, "\(gateway.log)")
        #expect(!gateway.log.contains("Drain deadline reached"), "the requests finished before the 2 s deadline: \(gateway.log)")
        #expect(Date().timeIntervalSince(stopping) < 2.5)
        let line = try #require(client.log.split(separator: "\n").first { $0.hasPrefix("RESULT ") }, "\(client.log)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(line.dropFirst(7).utf8)) as? [String: [String: Any]])
        let idleClosedAt = try #require(result["idle"]?["endedAt"] as? Double)
        #expect(idleClosedAt - stopping.timeIntervalSince1970 * 1000 < 1000, "the idle connection was closed at once")
        for name in ["inflight11", "inflight10", "pipelined"] {
            let received = result[name]?["received"] as? String ?? ""
            #expect(received.contains(" 200 OK\r\n"), "\(name): \(received)")
            #expect(received.contains("\r\nConnection: close\r\n"), "\(name): \(received)")
            #expect(received.contains("\"url\":\"/slow?ms=1000\""), "\(name): the whole body arrived: \(received)")
            #expect(result[name]?["endedAt"] is Double, "\(name) was closed")
        }
    }

    @Test func refusesAnInvalidConfigurationBeforeBindingAnything() throws {
        let broken = configuration(extraDomain: "  - { name: bad..name, service: nowhere, port: 1 }")
        let config = try writeConfiguration(broken)
        let outcome = try Shell.run(Self.binary, ["run", "--config", config], allowFailure: true)
        #expect(outcome.status == 1)
        #expect(outcome.output.contains("refusing to start"))
        #expect(outcome.output.contains("\(config):24: domains[4].name"), "\(outcome.output)")
        #expect(outcome.output.contains("\(config):24: domains[4].service"), "\(outcome.output)")
        // ssl: manual domains without a certificate in the (empty) store are reported too.
        #expect(outcome.output.contains("domains[0].ssl: ssl: manual needs a certificate"), "\(outcome.output)")
        #expect(!RawSocket.canConnect(host: "127.0.0.1", port: httpsPort))
        #expect(!RawSocket.canConnect(host: "127.0.0.1", port: plainPort))
    }
}
