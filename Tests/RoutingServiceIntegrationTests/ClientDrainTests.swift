import Foundation
import RoutingService
import Testing
import TestSupport

/// Graceful stop as clients see it: the whole gateway in this process (stopped through its drain
/// path), three Node.js instances, and `Node/drain-client.js` holding TLS connections in known states
/// (idle keep-alive, request in flight over HTTP/1.1 and 1.0, pipelined requests, HTTP/2 streams
/// driven with raw frames) and recording what the gateway does to each once the drain starts.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ClientDrainTests {
    static let clientScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Node/drain-client.js").path

    private func withGateway(drain: String, _ body: (GatewayUnderTest, String) async throws -> Void) async throws {
        let store = try ManualCertificateStore(names: ["drain.test"])
        defer { store.remove() }
        let instances = try NodeInstances()
        defer { instances.stop() }
        let gateway = try await GatewayUnderTest { http, https, admin, token in
            """
            \(TestConfiguration.listenAndAdmin(http: http, https: https, admin: admin, token: token))
            certificates:
              directory: \(store.directory)
            timeouts:
              drain: \(drain)
              upstreamResponseHead: 20s
            services:
              - name: app
                ports:
                  - { port: \(instances.port), http: true }
                instances: [127.0.0.2, 127.0.0.3, 127.0.0.4]
            domains:
              - { name: drain.test, service: app, port: \(instances.port), ssl: manual }
            """
        }
        try await gateway.whileRunning { try await body(gateway, store.caPath) }
    }

    struct Run {
        /// What `drain-client.js` printed after `RESULT`.
        var result: [String: Any]
        /// Wall-clock milliseconds since 1970 when the gateway was told to stop.
        var drainStartedAt: Double
        /// How long the gateway's `run()` took to return once stopping.
        var stopTook: Duration

        func connection(_ name: String) throws -> [String: Any] {
            try #require(result[name] as? [String: Any], "no connection \(name) in \(result)")
        }

        /// Milliseconds from the start of the drain until the gateway closed `name` (nil: still open).
        func closedAfter(_ name: String) throws -> Double? {
            (try connection(name)["endedAt"] as? Double).map { $0 - drainStartedAt }
        }
    }

    /// Starts the client, waits until its connections are in place, stops the gateway (the drain
    /// starts right after its listeners close), and waits for the client's report.
    private func drive(_ mode: String, gateway: GatewayUnderTest, caPath: String, slowMilliseconds: Int,
                       waitForResult: Bool = true) async throws -> Run {
        let client = try BackgroundProcess("node", [
            Self.clientScript, mode, String(gateway.httpsPort), "drain.test", caPath, String(slowMilliseconds),
        ])
        defer { client.stop(grace: 1) }
        var deadline = Date().addingTimeInterval(10)
        while !client.log.contains("READY ") {
            guard client.process.isRunning, Date() < deadline else { throw TestFailure("client not ready: \(client.log)") }
            try await Task.sleep(for: .milliseconds(10))
        }
        let drainStartedAt = Date().timeIntervalSince1970 * 1000
        let stopping = Task {
            let started = ContinuousClock.now
            await gateway.stop()
            return started.duration(to: .now)
        }
        deadline = Date().addingTimeInterval(20)
        while waitForResult && !client.log.contains("RESULT ") {
            guard Date() < deadline else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let stopTook = await stopping.value
        guard waitForResult else { return Run(result: [:], drainStartedAt: drainStartedAt, stopTook: stopTook) }
        let line = try #require(client.log.split(separator: "\n").first { $0.hasPrefix("RESULT ") }, "no result: \(client.log)")
        let object = try JSONSerialization.jsonObject(with: Data(line.dropFirst("RESULT ".count).utf8))
        return Run(result: try #require(object as? [String: Any]), drainStartedAt: drainStartedAt, stopTook: stopTook)
    }

    /// The HTTP/1 responses in `text`: head (lowercased) and body, framed by Content-Length.
    private func responses(in text: String) -> [(head: String, body: String)] {
        var rest = Substring(text)
        var found: [(String, String)] = []
        while let split = rest.range(of: "\r\n\r\n") {
            let head = rest[..<split.lowerBound].lowercased()
            let length = head.split(separator: "\r\n")
                .first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            let body = rest[split.upperBound...].prefix(length)
            found.append((head, String(body)))
            rest = rest[split.upperBound...].dropFirst(body.count)
        }
        return found
    }

    private func url(ofEcho body: String) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["url"] as? String
    }

    @Test func http1IdleConnectionsCloseAndRequestsInFlightFinishWithConnectionClose() async throws {
        try await withGateway(drain: "10s") { gateway, caPath in
            // Slow enough that the requests are still in flight when the drain starts, even on a busy machine.
            let run = try await drive("http1", gateway: gateway, caPath: caPath, slowMilliseconds: 2500)

            // The idle keep-alive connection: closed by the gateway at once, after its one answer.
            let idleClosed = try #require(try run.closedAfter("idle"), "the idle connection stayed open")
            #expect(idleClosed < 2000, "closed \(idleClosed) ms after the drain started")
            let idle = responses(in: try run.connection("idle")["received"] as? String ?? "")
            #expect(idle.count == 1)
            #expect(idle.first.map { url(ofEcho: $0.body) } == "/echo")

            // Requests in flight (HTTP/1.1 and HTTP/1.0 keep-alive): complete, told to close, closed.
            for (name, version) in [("inflight11", "http/1.1"), ("inflight10", "http/1.0")] {
                let received = try run.connection(name)["received"] as? String ?? ""
                let answers = responses(in: received)
                #expect(answers.count == 1, "\(name): \(received)")
                let answer = try #require(answers.first)
                #expect(answer.head.hasPrefix("\(version) 200"), "\(name): \(answer.head)")
                #expect(answer.head.contains("\r\nconnection: close"), "\(name): \(answer.head)")
                #expect(url(ofEcho: answer.body) == "/slow?ms=2500", "\(name): the whole body arrived")
                let closed = try #require(try run.closedAfter(name), "\(name) stayed open")
                #expect(closed < 7000)
            }

            // Pipelined: the request in progress is answered with Connection: close; the one sent
            // behind it is not started (the client retries it elsewhere), and the connection closes.
            let pipelined = try run.connection("pipelined")["received"] as? String ?? ""
            let answers = responses(in: pipelined)
            #expect(answers.count == 1, "\(pipelined)")
            #expect(answers.first?.head.contains("\r\nconnection: close") == true)
            #expect(answers.first.map { url(ofEcho: $0.body) } == "/slow?ms=2500")
            #expect(!pipelined.contains("/echo?second"))
            #expect(try run.closedAfter("pipelined") != nil)

            // The gateway stopped once those were done (after about 2.5 s), well before its 10 s deadline.
            #expect(run.stopTook < .seconds(7), "stop took \(run.stopTook)")
        }
    }

    @Test func http2GetsShutdownNoticeThenFinalGoAwayAndFinishesItsStreams() async throws {
        try await withGateway(drain: "10s") { gateway, caPath in
            let run = try await drive("http2", gateway: gateway, caPath: caPath, slowMilliseconds: 3000)
            #expect(run.result["alpn"] == nil, "h2 was not negotiated: \(run.result)")
            let goAways = try #require(run.result["goAways"] as? [[String: Any]])
            #expect(goAways.count == 2, "\(goAways)")
            let notice = try #require(goAways.first)
            let final = try #require(goAways.dropFirst().first)
            // RFC 9113 §6.8: first 2^31-1, then the last stream actually processed, both NO_ERROR.
            #expect(notice["lastStreamID"] as? Int == Int(Int32.max))
            #expect(notice["code"] as? Int == 0)
            #expect(final["lastStreamID"] as? Int == 3, "stream 3, opened after the notice, is still served")
            #expect(final["code"] as? Int == 0)
            if let first = notice["at"] as? Double, let second = final["at"] as? Double {
                #expect(second - first >= 800, "the final GOAWAY came \(second - first) ms after the notice")
                #expect(first - run.drainStartedAt < 2000, "the notice came \(first - run.drainStartedAt) ms into the drain")
            }

            let streams = try #require(run.result["streams"] as? [String: [String: Any]])
            // In flight when the drain began: completes with its whole body.
            let inFlight = try #require(streams["1"])
            #expect(inFlight["status200"] as? Bool == true)
            #expect(inFlight["ended"] as? Bool == true)
            #expect(url(ofEcho: inFlight["body"] as? String ?? "") == "/slow?ms=3000")
            // Opened between the notice and the final GOAWAY: served.
            let between = try #require(streams["3"])
            #expect(between["status200"] as? Bool == true)
            #expect(url(ofEcho: between["body"] as? String ?? "") == "/echo?between")
            // Opened after the final GOAWAY: not processed, no answer.
            let after = try #require(streams["5"])
            #expect(after["status200"] is NSNull, "\(after)")
            #expect(after["body"] as? String == "")

            // The connection closes once its last stream is done (after about 3 s), and the gateway
            // stops then, well before its 10 s deadline.
            let closed = try #require(try run.closedAfter("connection"), "the HTTP/2 connection stayed open")
            #expect(closed < 7000, "closed \(closed) ms after the drain started")
            #expect(run.stopTook < .seconds(7), "stop took \(run.stopTook)")
        }
    }

    @Test func theDrainDeadlineBoundsTheStopWhenRequestsOutlastIt() async throws {
        try await withGateway(drain: "1s") { gateway, caPath in
            // Requests that need 8 s: the gateway stops at its 1 s deadline anyway.
            let run = try await drive("http1", gateway: gateway, caPath: caPath, slowMilliseconds: 8000, waitForResult: false)
            #expect(run.stopTook >= .milliseconds(900), "stop took \(run.stopTook): the drain did not wait")
            #expect(run.stopTook < .milliseconds(2500), "stop took \(run.stopTook)")
        }
    }
}
