import Foundation
import RoutingService
import Testing
import TestSupport

/// The HTTP front end to end: real Node.js instances on 127.0.0.2–4, the proxy in this process,
/// curl and raw sockets as clients. Serialized: the streaming test measures this process's memory.
@Suite(.serialized) struct HTTPProxyIntegrationTests {
    /// Starts instances and a proxy, runs `body`, and always stops both.
    private func withProxy(
        timeouts: TimeoutConfiguration = .init(),
        mode: HTTPFrontMode = .plain,
        serverName: String? = nil,
        _ body: (ProxyUnderTest, NodeInstances) async throws -> Void
    ) async throws {
        let instances = try NodeInstances()
        defer { instances.stop() }
        let proxy = try await ProxyUnderTest(
            configuration: ProxyUnderTest.configuration(instances: instances, timeouts: timeouts),
            mode: mode,
            serverName: serverName
        )
        do {
            try await body(proxy, instances)
        } catch {
            try? await proxy.shutdown()
            throw error
        }
        try await proxy.shutdown()
    }

    @Test func forwardsRequestWithForwardingHeadersAndWithoutHopByHopHeaders() async throws {
        try await withProxy { proxy, _ in
            let response = try Curl.get(
                "\(proxy.url)/echo?x=1", host: "app.test",
                headers: [
                    "Connection: keep-alive, X-Secret-Hop", "X-Secret-Hop: must not arrive", "Keep-Alive: timeout=5",
                    "Proxy-Connection: keep-alive", "TE: trailers", "X-Forwarded-For: 10.0.0.9",
                    "Forwarded: for=10.0.0.9", "X-End-To-End: kept",
                ]
            )
            #expect(response.status == 200)
            #expect(response.headers.lowercased().contains("via: 1.1 edge-router"))
            let echo = try Curl.json(response.body)
            let headers = try #require(echo["headers"] as? [String: String])
            #expect(echo["url"] as? String == "/echo?x=1")
            #expect(echo["httpVersion"] as? String == "1.1")
            #expect(headers["host"] == "app.test")
            #expect(headers["x-forwarded-for"] == "10.0.0.9, 127.0.0.1")
            #expect(headers["x-forwarded-proto"] == "http")
            #expect(headers["x-forwarded-host"] == "app.test")
            #expect(headers["forwarded"] == "for=10.0.0.9, for=127.0.0.1;host=app.test;proto=http")
            #expect(headers["via"] == "1.1 edge-router")
            #expect(headers["x-end-to-end"] == "kept")
            for hopByHop in ["x-secret-hop", "keep-alive", "proxy-connection", "te", "upgrade", "trailer"] {
                #expect(headers[hopByHop] == nil, "\(hopByHop) arrived at the instance")
            }
            // Node reports the connection header it got: the proxy's own keep-alive, nothing of the client's.
            #expect(headers["connection"] == nil || headers["connection"] == "keep-alive")

            let wildcard = try Curl.get("\(proxy.url)/echo", host: "x.wild.test")
            #expect(wildcard.status == 200)
        }
    }

    @Test func tlsModeProxiesWhenHostMatchesSNIAndAnswers421Otherwise() async throws {
        try await withProxy(mode: .tls, serverName: "secure.test") { proxy, _ in
            let matching = try Curl.get("\(proxy.url)/echo", host: "secure.test")
            #expect(matching.status == 200)
            let headers = try #require(try Curl.json(matching.body)["headers"] as? [String: String])
            #expect(headers["x-forwarded-proto"] == "https")
            #expect(headers["forwarded"] == "for=127.0.0.1;host=secure.test;proto=https")

            let misdirected = try Curl.get("\(proxy.url)/echo", host: "other.test")
            #expect(misdirected.status == 421)
            #expect(misdirected.body.contains("other.test"))
            // ssl: off domains are not served over TLS.
            #expect(try Curl.get("\(proxy.url)/echo", host: "app.test").status == 421)
        }
    }

    @Test func plainListenerRedirectsKnowsNoChallengesAndRejectsUnknownHosts() async throws {
        try await withProxy { proxy, _ in
            let redirect = try Curl.get("\(proxy.url)/some/path?q=1&b=two", host: "secure.test")
            #expect(redirect.status == 308)
            #expect(redirect.headers.contains("Location: https://secure.test/some/path?q=1&b=two"))

            let unknown = try Curl.get("\(proxy.url)/", host: "nobody.example")
            #expect(unknown.status == 404)
            #expect(unknown.body == "404 Not Found: no route for host nobody.example\n")

            let challenge = try Curl.get("\(proxy.url)/.well-known/acme-challenge/token123", host: "secure.test")
            #expect(challenge.status == 404)
            #expect(challenge.body == "no challenge\n")
        }
    }

    @Test func everyInstanceDownGives502SayingWhich() async throws {
        try await withProxy { proxy, _ in
            let response = try Curl.get("\(proxy.url)/echo", host: "down.test")
            #expect(response.status == 502)
            #expect(response.body.contains("refused the connection"))
            #expect(response.body.contains("127.0.0."))
            #expect(proxy.runtime.inFlight == 0)
        }
    }

    @Test func slowResponseHeadGives504() async throws {
        var timeouts = TimeoutConfiguration()
        timeouts.upstreamResponseHead = .milliseconds(700)
        try await withProxy(timeouts: timeouts) { proxy, _ in
            let started = Date()
            let response = try Curl.get("\(proxy.url)/slow?ms=3000", host: "app.test")
            #expect(response.status == 504)
            #expect(response.body.contains("sent no response head within 700 ms"))
            #expect(Date().timeIntervalSince(started) < 2.5)
            #expect(proxy.runtime.inFlight == 0)
        }
    }

    @Test func leastBusyAvoidsTheInstanceHoldingRequests() async throws {
        try await withProxy { proxy, instances in
            // 30 slow requests held on instance a (through a domain whose only instance is a: the
            // in-flight counters are per endpoint, so they weigh on a for every domain).
            let holders = Task.detached {
                try Shell.run("curl", [
                    "-s", "--max-time", "30", "--parallel", "--parallel-immediate", "--parallel-max", "30",
                    "-H", "Host: only-a.test", "\(proxy.url)/slow?ms=4000&n=[1-30]",
                ])
            }
            let deadline = Date().addingTimeInterval(10)
            while proxy.runtime.inFlight(at: .init(host: "127.0.0.2", port: instances.port)) < 30 && Date() < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(proxy.runtime.inFlight(at: .init(host: "127.0.0.2", port: instances.port)) == 30)

            let counts = try Curl.instanceCounts(url: proxy.url, host: "app.test", count: 60, parallel: 4)
            #expect(counts["a"] == 0)
            #expect((counts["b"] ?? 0) + (counts["c"] ?? 0) == 60)
            #expect((counts["b"] ?? 0) > 10 && (counts["c"] ?? 0) > 10)
            _ = try await holders.value
            #expect(proxy.runtime.inFlight == 0)
        }
    }

    @Test func threeThousandRequestsSpreadEvenlyOverBothBalancers() async throws {
        try await withProxy { proxy, _ in
            // Two at a time: both balancers stay busy, and the instances stay "equal". (With deeper
            // concurrency least-busy rightly favours whichever Node process the shared CPU serves faster.)
            let counts = try Curl.instanceCounts(url: proxy.url, host: "app.test", count: 3000, parallel: 2)
            print("3000 requests per instance: \(counts.sorted { $0.key < $1.key }), per balancer: \(proxy.runtime.balancers.map(\.requestsHandled))")
            #expect(counts.values.reduce(0, +) == 3000)
            for (id, count) in counts {
                #expect(abs(count - 1000) <= 100, "instance \(id) got \(count) of 3000")
            }
            let perBalancer = proxy.runtime.balancers.map(\.requestsHandled)
            #expect(perBalancer.count == 2)
            #expect(perBalancer.allSatisfy { $0 > 300 }, "balancer shares: \(perBalancer)")
            #expect(proxy.runtime.inFlight == 0)
        }
    }

    @Test func keepAliveReusesUpstreamConnections() async throws {
        try await withProxy { proxy, instances in
            let before = try instances.acceptedConnections()
            let counts = try Curl.instanceCounts(url: proxy.url, host: "app.test", count: 1000, parallel: 10)
            #expect(counts.values.reduce(0, +) == 1000)
            let after = try instances.acceptedConnections()
            // Each /stats question adds one connection per instance.
            let opened = zip(after, before).map { $0 - $1 - 1 }.reduce(0, +)
            print("upstream connections opened for 1000 requests over 10 client connections: \(opened)")
            // 2 event loops × 2 balancers × 3 instances = 12 pools; a few more under concurrency.
            #expect(opened <= 40)
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrderAndExpectContinuePassesThrough() async throws {
        try await withProxy { proxy, _ in
            let socket = try RawSocket(host: "127.0.0.1", port: proxy.port)
            try socket.send(
                "GET /slow?ms=300&first HTTP/1.1\r\nHost: app.test\r\n\r\n"
                    + "GET /echo?second HTTP/1.1\r\nHost: app.test\r\n\r\n"
                    + "GET /echo?third HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
            )
            let text = String(decoding: socket.receive().bytes, as: UTF8.self)
            let first = try #require(text.range(of: "first"))
            let second = try #require(text.range(of: "second"))
            let third = try #require(text.range(of: "third"))
            #expect(first.lowerBound < second.lowerBound && second.lowerBound < third.lowerBound)
            #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 4)

            let output = try Shell.run("curl", [
                "-s", "--max-time", "10", "-D", "-", "-H", "Host: app.test", "-H", "Expect: 100-continue",
                "--data-binary", "hello", "\(proxy.url)/upload",
            ]).output
            #expect(output.hasPrefix("HTTP/1.1 100 Continue\r\n"))
            #expect(output.contains("HTTP/1.1 200 OK"))
            #expect(output.hasSuffix("\"bytes\":5}"))
        }
    }

    @Test func webSocketEchoRoundTrip() async throws {
        try await withProxy { proxy, _ in
            let socket = try RawSocket(host: "127.0.0.1", port: proxy.port)
            try socket.send(
                "GET /chat HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            let head = socket.receiveHead()
            #expect(head.hasPrefix("HTTP/1.1 101"))
            #expect(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
            let payload = Array("hello through the gateway".utf8)
            let mask: [UInt8] = [1, 2, 3, 4]
            var frame: [UInt8] = [0x81, 0x80 | UInt8(payload.count)] + mask
            frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
            try socket.send(frame)
            let reply = socket.receive { $0.count >= 2 && $0.count >= 2 + Int($0[1] & 0x7f) }
            let text = String(decoding: reply.bytes.dropFirst(2), as: UTF8.self)
            #expect(reply.bytes.first == 0x81)
            #expect(text.hasSuffix(":hello through the gateway"))
        }
    }

    @Test func malformedRequestsGetTheRightStatusAndNoSmuggling() async throws {
        var timeouts = TimeoutConfiguration()
        timeouts.requestHeader = .seconds(1)
        try await withProxy(timeouts: timeouts) { proxy, _ in
            func exchange(_ request: String) throws -> (head: String, closed: Bool) {
                let socket = try RawSocket(host: "127.0.0.1", port: proxy.port, receiveTimeout: 5)
                try socket.send(request)
                let result = socket.receive()
                return (String(decoding: result.bytes, as: UTF8.self), result.closed)
            }
            let badLine = try exchange("GET / HTTP/1.1 extra garbage\r\nHost: app.test\r\n\r\n")
            #expect(badLine.head.hasPrefix("HTTP/1.1 400"))
            #expect(badLine.closed)

            let huge = String(repeating: "x", count: 33 * 1024)
            let tooLarge = try exchange("GET /echo HTTP/1.1\r\nHost: app.test\r\nX-Big: \(huge)\r\n\r\n")
            #expect(tooLarge.head.hasPrefix("HTTP/1.1 431"))

            let both = try exchange(
                "POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "0\r\n\r\nGET /echo HTTP/1.1\r\nHost: app.test\r\n\r\n"
            )
            #expect(both.head.hasPrefix("HTTP/1.1 400"))
            #expect(both.closed)
            #expect(!both.head.contains("\"instance\""), "the smuggled request reached an instance")

            let twoLengths = try exchange(
                "POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
            )
            #expect(twoLengths.head.hasPrefix("HTTP/1.1 400"))
            #expect(twoLengths.closed)

            let badChunk = try exchange(
                "POST /upload HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
            )
            #expect(badChunk.head.contains("400"))
            #expect(badChunk.closed)

            let started = Date()
            let slow = try RawSocket(host: "127.0.0.1", port: proxy.port, receiveTimeout: 5)
            try slow.send("GET /echo HTTP/1.1\r\nHost: app.te")
            let stalled = slow.receive()
            #expect(stalled.closed)
            #expect(Date().timeIntervalSince(started) < 3)

            // Polled, not slept on: a loaded machine may take a while to tear the connections down.
            #expect(await eventually { proxy.runtime.inFlight == 0 })
        }
    }

    @Test func clientLeavingMidResponseLeavesNothingInFlight() async throws {
        try await withProxy { proxy, instances in
            let socket = try RawSocket(host: "127.0.0.1", port: proxy.port)
            try socket.send("GET /bytes?n=200000000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
            _ = socket.receive { $0.count > 1_000_000 }
            #expect(proxy.runtime.inFlight == 1)
            let slow = try RawSocket(host: "127.0.0.1", port: proxy.port)
            try slow.send("GET /slow?ms=5000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
            #expect(await eventually { proxy.runtime.inFlight == 2 })
            _ = consume socket
            _ = consume slow
            let deadline = Date().addingTimeInterval(3)
            while proxy.runtime.inFlight != 0 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(proxy.runtime.inFlight == 0)
            for index in 0..<3 {
                #expect(proxy.runtime.inFlight(at: .init(host: NodeInstances.hosts[index], port: instances.port)) == 0)
            }
        }
    }

    @Test func streamsOneGibibyteEachWayInBoundedMemory() async throws {
        try await withProxy { proxy, _ in
            try warmUp(proxy)
            let gibibyte = 1 << 30
            var uploadSeconds = 0.0, downloadSeconds = 0.0
            let growth = try RSSSampler.growth {
                let started = Date()
                let upload = try Shell.run("sh", [
                    "-c",
                    "head -c \(gibibyte) /dev/zero | curl -s --max-time 100 -T - -H 'Host: app.test' \(proxy.url)/upload",
                ]).output
                uploadSeconds = Date().timeIntervalSince(started)
                #expect(try Curl.json(upload)["bytes"] as? Int == gibibyte)

                let downloadStarted = Date()
                let download = try Shell.run("curl", [
                    "-s", "--max-time", "100", "-o", "/dev/null", "-w", "%{size_download}",
                    "-H", "Host: app.test", "\(proxy.url)/bytes?n=\(gibibyte)",
                ]).output
                downloadSeconds = Date().timeIntervalSince(downloadStarted)
                #expect(Int(download) == gibibyte)
            }
            print("1 GiB upload \(String(format: "%.1f", uploadSeconds)) s, download \(String(format: "%.1f", downloadSeconds)) s; RSS grew by \(growth >> 20) MiB")
            #expect(growth < 64 << 20, "RSS grew by \(growth >> 20) MiB")
            #expect(proxy.runtime.inFlight == 0)
        }
    }

    /// A client reading slower than the instance sends: the proxy stops reading the instance while the
    /// client cannot take more (the front's writability as its events left it), so the body does not
    /// pile up in memory.
    @Test func aSlowReaderHoldsTheInstanceBackInBoundedMemory() async throws {
        try await withProxy { proxy, _ in
            try warmUp(proxy)
            let size = 192 << 20
            var download = ""
            let growth = try RSSSampler.growth {
                download = try Shell.run("curl", [
                    "-s", "--max-time", "60", "--limit-rate", "48M", "-o", "/dev/null", "-w", "%{size_download}",
                    "-H", "Host: app.test", "\(proxy.url)/bytes?n=\(size)",
                ]).output
            }
            #expect(Int(download) == size)
            #expect(growth < 64 << 20, "RSS grew by \(growth >> 20) MiB for a \(size >> 20) MiB body")
            #expect(proxy.runtime.inFlight == 0)
        }
    }

    /// An instance reading slower than the client sends: the proxy stops reading the client while the
    /// instance connection cannot take more (its writability as its events left it), so the body does
    /// not pile up in memory.
    @Test func aSlowInstanceHoldsTheClientBackInBoundedMemory() async throws {
        try await withProxy { proxy, _ in
            try warmUp(proxy)
            let size = 192 << 20
            var upload = ""
            let growth = try RSSSampler.growth {
                upload = try Shell.run("sh", [
                    "-c",
                    "head -c \(size) /dev/zero | curl -s --max-time 60 -T - -H 'Host: app.test' '\(proxy.url)/upload?rate=50000000'",
                ]).output
            }
            #expect(try Curl.json(upload)["bytes"] as? Int == size)
            #expect(growth < 64 << 20, "RSS grew by \(growth >> 20) MiB for a \(size >> 20) MiB body")
            #expect(proxy.runtime.inFlight == 0)
        }
    }
}

/// Warms the proxy's pools and allocator up with a 10 MB body, so the memory tests' baseline is a warm process.
private func warmUp(_ proxy: ProxyUnderTest) throws {
    _ = try Curl.get("\(proxy.url)/bytes?n=10000000", host: "app.test")
}

/// Samples VmRSS every 50 ms on its own thread until stopped; returns the peak.
final class RSSSampler: @unchecked Sendable {
    private let lock = NSLock()
    private var peak = 0
    private var running = true

    init() {
        let sampler = self
        Thread.detachNewThread { sampler.run() }
    }

    private func run() {
        while lock.withLock({ running }) {
            let now = ProcessMemory.residentBytes()
            lock.withLock { peak = max(peak, now) }
            usleep(50_000)
        }
    }

    func stop() -> Int {
        lock.withLock {
            running = false
            return peak
        }
    }

    /// How far the process's RSS rose above its level before `work`, at its peak while `work` ran.
    static func growth(during work: () throws -> Void) rethrows -> Int {
        let before = ProcessMemory.residentBytes()
        let sampler = RSSSampler()
        try work()
        return sampler.stop() - before
    }
}
