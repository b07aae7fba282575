import Foundation
import NIOHTTP1
import RoutingService
import Testing
import TestSupport

/// The HTTPS front speaking HTTP/2 (ALPN `h2`): the whole gateway in this process with a certificate
/// from a throwaway CA, three Node.js instances, and the real clients `curl --http2`, `h2load` and
/// `openssl s_client`. Every client call is bounded in time and count.
@Suite(.serialized, .timeLimit(.minutes(3))) struct HTTP2IntegrationTests {
    /// `h2.test` and `other.h2.test` on the instances, `down.h2.test` on addresses where nothing listens;
    /// one certificate covers all of them.
    private func withGateway(_ body: (GatewayUnderTest, NodeInstances, Client) async throws -> Void) async throws {
        let store = try ManualCertificateStore(names: ["h2.test", "*.h2.test"])
        defer { store.remove() }
        let instances = try NodeInstances()
        defer { instances.stop() }
        let gateway = try await GatewayUnderTest { http, https, admin, token in
            """
            \(TestConfiguration.listenAndAdmin(http: http, https: https, admin: admin, token: token))
            certificates:
              directory: \(store.directory)
            timeouts:
              drain: 1s
              clientIdle: 2s
              upstreamResponseHead: 3s
            services:
              - name: app
                ports:
                  - { port: \(instances.port), http: true }
                instances: [127.0.0.2, 127.0.0.3, 127.0.0.4]
              - name: down
                ports:
                  - { port: \(instances.port), http: true }
                instances: [127.0.0.5, 127.0.0.6, 127.0.0.7]
            domains:
              - { name: h2.test, service: app, port: \(instances.port), ssl: manual }
              - { name: other.h2.test, service: app, port: \(instances.port), ssl: manual }
              - { name: down.h2.test, service: down, port: \(instances.port), ssl: manual }
            """
        }
        try await gateway.whileRunning { try await body(gateway, instances, Client(port: gateway.httpsPort, caPath: store.caPath)) }
    }

    struct Client {
        let port: Int
        let caPath: String

        struct Response {
            var version: String
            var status: Int
            var headers: String
            var body: String
        }

        /// One curl request to `https://HOST:PORT/PATH` with SNI `host`, bounded by `--max-time`.
        func curl(_ host: String, _ path: String, _ extra: [String] = [], http2: Bool = true) throws -> Response {
            let arguments = [
                "-s", "--max-time", "20", "--cacert", caPath, http2 ? "--http2" : "--http1.1",
                "--resolve", "\(host):\(port):127.0.0.1", "-D", "-", "-w", "\n%{http_version}",
                "https://\(host):\(port)\(path)",
            ] + extra
            let output = try Shell.run("curl", arguments).output
            guard let split = output.range(of: "\r\n\r\n") else { throw TestFailure("no response head in: \(output)") }
            let head = String(output[..<split.lowerBound])
            var rest = String(output[split.upperBound...])
            let version = rest.split(separator: "\n").last.map(String.init) ?? ""
            rest = String(rest.dropLast(version.count + 1))
            let statusLine = head.split(separator: "\r\n").first ?? ""
            let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
            return Response(version: version, status: status, headers: head, body: rest)
        }
    }

    /// 300,000 bytes (`a` to `z` over and over) in a new temporary file, which the caller removes.
    private static func writeBodyFile(_ prefix: String) throws -> (file: URL, payload: [UInt8]) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        let payload = (0..<300_000).map { UInt8(ascii: "a") + UInt8($0 % 26) }
        try Data(payload).write(to: file)
        return (file, payload)
    }

    private func inFlight(_ gateway: GatewayUnderTest) async throws -> Int {
        let status = try await gateway.admin.request(.GET, "/status")
        let counts = try #require(status.json?["counts"] as? [String: Any])
        return try #require(counts["requestsInFlight"] as? Int)
    }

    @Test func getOverHTTP2IsProxiedWithForwardingHeadersAndMappedBack() async throws {
        try await withGateway { _, _, client in
            let authority = "h2.test:\(client.port)"
            let response = try client.curl("h2.test", "/echo?x=1", ["-H", "x-end-to-end: kept", "-H", "x-forwarded-for: 10.0.0.9"])
            #expect(response.version == "2")
            #expect(response.status == 200)
            let lines = response.headers.lowercased().split(separator: "\r\n").map(String.init)
            #expect(lines.contains("via: 1.1 edge-router"))
            #expect(lines.contains("content-type: application/json"))
            #expect(!lines.contains { $0.hasPrefix("connection:") || $0.hasPrefix("keep-alive:") })
            let echo = try Curl.json(response.body)
            let headers = try #require(echo["headers"] as? [String: String])
            #expect(echo["url"] as? String == "/echo?x=1")
            #expect(echo["httpVersion"] as? String == "1.1")
            #expect(echo["method"] as? String == "GET")
            // curl's :authority carries the port.
            #expect(headers["host"] == authority)
            #expect(headers["x-forwarded-for"] == "10.0.0.9, 127.0.0.1")
            #expect(headers["x-forwarded-proto"] == "https")
            #expect(headers["x-forwarded-host"] == authority)
            #expect(headers["forwarded"] == "for=127.0.0.1;host=\"\(authority)\";proto=https")
            #expect(headers["via"] == "2 edge-router")
            #expect(headers["x-end-to-end"] == "kept")
        }
    }

    /// One connection, three streams: the forwarding headers of a stream without any of its own are made
    /// once per connection and Host and copied after; a stream that brings its own gets them extended.
    @Test func forwardingHeadersOnOneConnectionFollowEachStream() async throws {
        try await withGateway { _, _, client in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("h2-forwarding-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let url = "https://h2.test:\(client.port)/echo"
            // `--next` starts the options afresh: each transfer names them all (curl keeps the connection).
            let common = ["-s", "--max-time", "20", "-w", "%{num_connects} ", "--http2", "--cacert", client.caPath,
                          "--resolve", "h2.test:\(client.port):127.0.0.1"]
            let output = try Shell.run("curl", []
                + common + ["-o", "\(directory.path)/1", "\(url)?1", "--next"]
                + common + ["-H", "x-forwarded-for: 10.0.0.9", "-H", "via: 1.0 outer", "-o", "\(directory.path)/2", "\(url)?2", "--next"]
                + common + ["-o", "\(directory.path)/3", "\(url)?3"]).output
            #expect(output.split(separator: " ") == ["1", "0", "0"], "one connection for the three: \(output)")
            func headers(_ name: String) throws -> [String: String] {
                let body = try String(contentsOfFile: "\(directory.path)/\(name)", encoding: .utf8)
                return try #require(try Curl.json(body)["headers"] as? [String: String])
            }
            let authority = "h2.test:\(client.port)"
            for plain in ["1", "3"] {
                #expect(try headers(plain)["x-forwarded-for"] == "127.0.0.1")
                #expect(try headers(plain)["via"] == "2 edge-router")
                #expect(try headers(plain)["x-forwarded-host"] == authority)
            }
            #expect(try headers("2")["x-forwarded-for"] == "10.0.0.9, 127.0.0.1")
            #expect(try headers("2")["via"] == "1.0 outer, 2 edge-router")
            #expect(try headers("2")["forwarded"] == "for=127.0.0.1;host=\"\(authority)\";proto=https")
        }
    }

    @Test func postBodiesGoUpAndComeBackThroughFlowControl() async throws {
        try await withGateway { _, _, client in
            // Larger than the 64 KiB stream window: the client can only send it all if the window is
            // given back as the instance takes the bytes.
            let (file, payload) = try Self.writeBodyFile("h2-body")
            defer { try? FileManager.default.removeItem(at: file) }

            let upload = try client.curl("h2.test", "/upload", ["--data-binary", "@\(file.path)"])
            #expect(upload.version == "2")
            #expect(upload.status == 200)
            #expect(try Curl.json(upload.body)["bytes"] as? Int == 300_000)

            let mirrored = try client.curl("h2.test", "/mirror", ["--data-binary", "@\(file.path)"])
            #expect(mirrored.status == 200)
            #expect(mirrored.body.utf8.count == 300_000)
            #expect(mirrored.body == String(decoding: payload, as: UTF8.self))

            // Without a length (curl sends no content-length for stdin in chunked mode): chunked upstream.
            let small = try client.curl("h2.test", "/mirror", ["--data-binary", "hello over h2", "-H", "content-type: text/plain"])
            #expect(small.body == "hello over h2")
        }
    }

    @Test func manyConcurrentStreamsOnOneConnectionReachEveryInstance() async throws {
        try await withGateway { gateway, instances, client in
            let before = try instances.acceptedConnections()
            let output = try Shell.run("timeout", [
                "-s", "KILL", "60", "h2load", "-n", "2000", "-c", "2", "-m", "20", "-T", "20",
                "--connect-to", "127.0.0.1:\(client.port)", "https://h2.test:\(client.port)/echo",
            ], allowFailure: true).output
            #expect(output.contains("requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, 0 timeout"),
                    "\(output)")
            #expect(output.contains("status codes: 2000 2xx"), "\(output)")
            #expect(output.contains("Application protocol: h2"), "\(output)")
            let after = try instances.acceptedConnections()
            // Every instance took connections (and so requests) from the proxy.
            for (index, count) in after.enumerated() {
                #expect(count - before[index] > 1, "instance \(NodeInstances.ids[index]) got no traffic")
            }
            #expect(try await inFlight(gateway) == 0)
        }
    }

    /// Many requests at once over TLS, HTTP/1.1 keep-alive connections and HTTP/2 streams, with heads of
    /// every size from a few bytes to 3 KiB, and a 300 KB body up and back over HTTP/1.1 (records split
    /// across reads): each response is its own request's, byte for byte. The request path reuses its event
    /// loop's buffers (`ByteBufferRecycler`); a buffer handed out again while another request still held
    /// it would show here as a response naming the wrong request, or a garbled one.
    @Test func concurrentRequestsOverTLSEachGetTheirOwnResponse() async throws {
        try await withGateway { _, _, client in
            let (file, payload) = try Self.writeBodyFile("tls-mirror")
            defer { try? FileManager.default.removeItem(at: file) }
            let mirrored = try client.curl("h2.test", "/mirror", ["--data-binary", "@\(file.path)"], http2: false)
            #expect(mirrored.version == "1.1")
            #expect(mirrored.body == String(decoding: payload, as: UTF8.self))

            for http2 in [false, true] {
                let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-parallel-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: directory) }
                let count = 300
                func padding(_ id: Int) -> String { String(repeating: "p", count: id * 37 % 3000) }
                // One curl, many transfers in parallel (a config file: one url and output per request).
                let config = (1...count).map { id in
                    "url = \"https://h2.test:\(client.port)/echo?id=\(id)&pad=\(padding(id))\"\noutput = \"\(directory.path)/\(id).json\"\n"
                }.joined()
                let configPath = directory.appendingPathComponent("curl.config").path
                try config.write(toFile: configPath, atomically: true, encoding: .utf8)
                _ = try Shell.run("curl", [
                    "-s", "--max-time", "60", "--cacert", client.caPath, http2 ? "--http2" : "--http1.1",
                    "--resolve", "h2.test:\(client.port):127.0.0.1", "--parallel", "--parallel-max", "12",
                    "--config", configPath,
                ])
                for id in 1...count {
                    let body = (try? String(contentsOfFile: "\(directory.path)/\(id).json", encoding: .utf8)) ?? ""
                    #expect(body.contains("\"url\":\"/echo?id=\(id)&pad=\(padding(id))\""),
                            "\(http2 ? "HTTP/2" : "HTTP/1.1") response \(id): \(body.prefix(300))")
                    #expect(body.contains("\"httpVersion\":\"1.1\""))
                }
            }
        }
    }

    /// A client reading slower than the instance sends: the front stops writing while the client channel
    /// is not writable (its writability as its events left it), the stream stops reading its instance,
    /// and the body does not pile up in memory.
    @Test func aSlowReaderHoldsTheInstanceBackInBoundedMemory() async throws {
        try await withGateway { _, _, client in
            _ = try client.curl("h2.test", "/bytes?n=1000000", ["-o", "/dev/null"])
            let size = 192 << 20
            var download = ""
            let growth = try RSSSampler.growth {
                download = try Shell.run("curl", [
                    "-s", "--max-time", "60", "--cacert", client.caPath, "--http2", "--limit-rate", "48M",
                    "--resolve", "h2.test:\(client.port):127.0.0.1", "-o", "/dev/null", "-w", "%{size_download} %{http_version}",
                    "https://h2.test:\(client.port)/bytes?n=\(size)",
                ]).output
            }
            #expect(download == "\(size) 2")
            // About 1 MiB here; ≈ 50 MiB when the front writes on regardless (the client's flow-control
            // window then fills the channel's queue): the bound sits between, not at the 192 MiB body.
            #expect(growth < 16 << 20, "RSS grew by \(growth >> 20) MiB for a \(size >> 20) MiB body")
        }
    }

    @Test func hostRoutingElsewhereThanSNIGets421OnTheStream() async throws {
        try await withGateway { _, _, client in
            // SNI h2.test, :authority other.h2.test (curl turns a Host header into :authority).
            let response = try client.curl("h2.test", "/echo", ["-H", "Host: other.h2.test"])
            #expect(response.version == "2")
            #expect(response.status == 421)
            #expect(response.body.contains("other.h2.test"))
            // The same connection setup with a matching name still works.
            #expect(try client.curl("other.h2.test", "/echo").status == 200)
        }
    }

    @Test func everyInstanceDownGives502WithTheReason() async throws {
        try await withGateway { gateway, _, client in
            let response = try client.curl("down.h2.test", "/echo")
            #expect(response.version == "2")
            #expect(response.status == 502)
            #expect(response.body.contains("refused the connection"))
            #expect(response.body.contains("127.0.0."))
            #expect(try await inFlight(gateway) == 0)
        }
    }

    @Test func slowResponseHeadGives504OnItsStreamWhileOthersGoOn() async throws {
        try await withGateway { gateway, _, client in
            let started = Date()
            // Two streams on one connection: the slow one times out, the quick one is answered at once.
            let output = try Shell.run("curl", [
                "-s", "--max-time", "20", "--cacert", client.caPath, "--http2", "--parallel", "--parallel-immediate",
                "--resolve", "h2.test:\(client.port):127.0.0.1", "-w", "%{url} %{http_code} %{time_total}\n",
                "-o", "/dev/null", "https://h2.test:\(client.port)/slow?ms=6000",
                "-o", "/dev/null", "https://h2.test:\(client.port)/echo",
            ]).output
            let lines = output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            let slow = try #require(lines.first { $0.first?.contains("/slow") == true })
            let quick = try #require(lines.first { $0.first?.contains("/echo") == true })
            #expect(slow[1] == "504")
            #expect(quick[1] == "200")
            #expect((Double(quick[2]) ?? 99) < 2)
            #expect(Date().timeIntervalSince(started) < 7)
            let body = try client.curl("h2.test", "/slow?ms=6000")
            #expect(body.status == 504)
            #expect(body.body.contains("sent no response head within 3000 ms"))
            #expect(try await inFlight(gateway) == 0)
        }
    }

    @Test func http1ClientsStillGetHTTP1() async throws {
        try await withGateway { _, _, client in
            let response = try client.curl("h2.test", "/echo", http2: false)
            #expect(response.version == "1.1")
            #expect(response.status == 200)
            #expect(response.headers.hasPrefix("HTTP/1.1 200"))
            let headers = try #require(try Curl.json(response.body)["headers"] as? [String: String])
            #expect(headers["via"] == "1.1 edge-router")
        }
    }

    @Test func garbageAfterThePrefaceGetsGoAwayAndTheConnectionCloses() async throws {
        try await withGateway { _, _, client in
            var input = Data("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
            input.append(Data("this is not an HTTP/2 frame at all\r\n".utf8))
            let started = Date()
            // -quiet keeps reading after stdin ends: s_client exits only when the server closes.
            let result = try Shell.run("timeout", [
                "-s", "KILL", "10", "openssl", "s_client", "-quiet", "-alpn", "h2", "-servername", "h2.test",
                "-CAfile", client.caPath, "-connect", "127.0.0.1:\(client.port)",
            ], input: input, allowFailure: true)
            #expect(result.status != 137, "the connection stayed open (killed by timeout)")
            #expect(Date().timeIntervalSince(started) < 8)
            // A GOAWAY frame header: type 0x07, no flags, stream 0.
            let goAway = "\u{07}\u{00}\u{00}\u{00}\u{00}\u{00}"
            #expect(result.output.contains(goAway), "no GOAWAY in \(result.output.debugDescription)")
        }
    }

    @Test func clientGoingAwayMidRequestClosesTheInstanceConnectionAndReleasesCounts() async throws {
        try await withGateway { gateway, instances, client in
            _ = try? client.curl("h2.test", "/slow?ms=5000", ["--max-time", "1"])
            let deadline = Date().addingTimeInterval(5)
            var inFlightNow = try await inFlight(gateway)
            while inFlightNow != 0 && Date() < deadline {
                try await Task.sleep(for: .milliseconds(50))
                inFlightNow = try await inFlight(gateway)
            }
            #expect(inFlightNow == 0)
            // The instance saw its request's connection close (its response never completed).
            var active = 1
            while active != 0 && Date() < deadline {
                active = 0
                for host in NodeInstances.hosts {
                    let stats = try Curl.json(try Shell.run("curl", ["-s", "--max-time", "5", "http://\(host):\(instances.port)/stats"]).output)
                    // /stats counts itself as active.
                    active += (stats["active"] as? Int ?? 1) - 1
                }
                if active != 0 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(active == 0)
        }
    }

    /// Raw HTTP/2 frames for `openssl s_client`: the preface, an empty SETTINGS, and a GET as HEADERS
    /// (HPACK: static-table `:method GET`, `:scheme https`, literal `:path` and `:authority`).
    enum Frames {
        static func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) -> [UInt8] {
            let length = payload.count
            return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
                + withUnsafeBytes(of: stream.bigEndian, Array.init) + payload
        }

        static func start(path: String, authority: String) -> [UInt8] {
            var block: [UInt8] = [0x82, 0x87]
            block += [0x04, UInt8(path.utf8.count)] + Array(path.utf8)
            block += [0x01, UInt8(authority.utf8.count)] + Array(authority.utf8)
            return Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
                + frame(type: 0x4, flags: 0, stream: 0, payload: [])
                + frame(type: 0x1, flags: 0x5, stream: 1, payload: block)  // END_STREAM | END_HEADERS
        }

        static func reset(stream: UInt32) -> [UInt8] {
            frame(type: 0x3, flags: 0, stream: stream, payload: [0, 0, 0, 0x8])  // CANCEL
        }
    }

    private func activeRequestsAtInstances(_ instances: NodeInstances) throws -> Int {
        try NodeInstances.hosts.reduce(0) { total, host in
            let stats = try Curl.json(try Shell.run("curl", ["-s", "--max-time", "5", "http://\(host):\(instances.port)/stats"]).output)
            // /stats counts itself as active.
            return total + (stats["active"] as? Int ?? 1) - 1
        }
    }

    @Test func streamResetByTheClientClosesTheInstanceConnectionThenIdleConnectionGetsGoAway() async throws {
        try await withGateway { gateway, instances, client in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("h2-rst-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let start = directory.appendingPathComponent("start").path
            let reset = directory.appendingPathComponent("reset").path
            try Data(Frames.start(path: "/slow?ms=8000", authority: "h2.test")).write(to: URL(fileURLWithPath: start))
            try Data(Frames.reset(stream: 1)).write(to: URL(fileURLWithPath: reset))
            let output = directory.appendingPathComponent("out").path
            let closed = directory.appendingPathComponent("closed").path
            // The request, a pause, the reset, then silence: the 2 s client idle timeout ends it. `closed`
            // appears when s_client ends, i.e. when the gateway closed the connection.
            let session = try BackgroundProcess("sh", ["-c", """
                (cat \(start); sleep 1.5; cat \(reset); sleep 4) | (timeout -s KILL 8 openssl s_client -quiet \
                  -alpn h2 -servername h2.test -CAfile \(client.caPath) -connect 127.0.0.1:\(client.port) \
                  > \(output) 2>/dev/null; touch \(closed))
                """])
            defer { session.stop(grace: 1) }

            var deadline = Date().addingTimeInterval(5)
            while try await inFlight(gateway) != 1 && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
            #expect(try await inFlight(gateway) == 1)
            #expect(try activeRequestsAtInstances(instances) == 1)

            // After the reset: no request in flight, and the instance saw its connection close.
            deadline = Date().addingTimeInterval(5)
            while (try await inFlight(gateway) != 0 || (try activeRequestsAtInstances(instances)) != 0) && Date() < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await inFlight(gateway) == 0)
            #expect(try activeRequestsAtInstances(instances) == 0)

            // Idle for 2 s after the reset: GOAWAY (NO_ERROR) and the connection closes, so s_client ends
            // well before its input does.
            deadline = Date().addingTimeInterval(6)
            while !FileManager.default.fileExists(atPath: closed) && Date() < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(FileManager.default.fileExists(atPath: closed), "the idle connection stayed open")
            // The shell ends by itself once its input side is done (bounded by its sleeps).
            deadline = Date().addingTimeInterval(6)
            while session.process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: output)))
            let goAway: [UInt8] = [0x00, 0x00, 0x08, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00]
            #expect(bytes.indices.contains { bytes[$0...].starts(with: goAway) }, "no GOAWAY in \(bytes)")
        }
    }
}
