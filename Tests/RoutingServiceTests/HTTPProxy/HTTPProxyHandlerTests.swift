import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing
@testable import RoutingService

/// Hands out `EmbeddedChannel`s on the test's loop as upstream connections, or fails, as scripted.
final class FakeUpstreamConnector: UpstreamConnector, @unchecked Sendable {
    let loop: EmbeddedEventLoop
    private(set) var channels: [(endpoint: ListenAddress, channel: EmbeddedChannel)] = []
    /// Endpoints whose connection attempts fail as refused.
    var refusing: Set<ListenAddress> = []

    init(loop: EmbeddedEventLoop) { self.loop = loop }

    func connect(to instance: UpstreamInstance, on eventLoop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<any Channel> {
        if refusing.contains(instance.endpoint) {
            return loop.makeFailedFuture(IOError(errnoCode: ECONNREFUSED, reason: "connect"))
        }
        let channel = EmbeddedChannel(loop: loop)
        channels.append((instance.endpoint, channel))
        return channel.connect(to: try! SocketAddress(ipAddress: instance.endpoint.host, port: instance.endpoint.port))
            .map { channel }
    }
}

@Suite struct HTTPProxyHandlerTests {
    let loop = EmbeddedEventLoop()
    let connector: FakeUpstreamConnector
    let runtime: HTTPProxyRuntime
    let client: EmbeddedChannel

    init() throws {
        connector = FakeUpstreamConnector(loop: loop)
        let configuration = GatewayConfiguration(
            services: [
                ServiceConfiguration(
                    name: "app", ports: [ServicePort(port: 3000, http: true)],
                    instances: [InstanceAddress(host: "10.0.0.1"), InstanceAddress(host: "10.0.0.2")]
                ),
            ],
            domains: [
                DomainConfiguration(name: DomainName("secure.test"), service: "app", port: 3000, ssl: .manual),
                DomainConfiguration(name: DomainName("other.test"), service: "app", port: 3000, ssl: .manual),
            ]
        )
        runtime = HTTPProxyRuntime(configuration: configuration, eventLoopGroup: loop, connector: connector)
        client = EmbeddedChannel(loop: loop)
        try client.pipeline.syncOperations.configureHTTPFront(mode: .tls, runtime: runtime)
        try client.connect(to: SocketAddress(ipAddress: "192.0.2.7", port: 50000)).wait()
        client.pipeline.fireUserInboundEventTriggered(
            TLSHandshakeCompletedEvent(serverName: "secure.test", alpnProtocol: "http/1.1", protocolVersion: "TLSv1.3", sessionReused: false)
        )
    }

    private func send(_ text: String) throws {
        try client.writeInbound(ByteBuffer(string: text))
        loop.run()
    }

    private func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { text += String(buffer: buffer) }
        }
        return text
    }

    @Test func proxiesOverAPooledConnectionWithRewrittenHeaders() throws {
        try send("GET /a?b=1 HTTP/1.1\r\nHost: secure.test\r\nConnection: X-Drop\r\nX-Drop: 1\r\n\r\n")
        let (endpoint, upstream) = try #require(connector.channels.first)
        let request = try written(upstream)
        #expect(request.hasPrefix("GET /a?b=1 HTTP/1.1\r\n"))
        #expect(request.contains("X-Forwarded-For: 192.0.2.7\r\n"))
        #expect(request.contains("X-Forwarded-Proto: https\r\n"))
        #expect(request.contains("Forwarded: for=192.0.2.7;host=secure.test;proto=https\r\n"))
        #expect(request.contains("Via: 1.1 edge-router\r\n"))
        #expect(!request.contains("X-Drop"))
        #expect(runtime.inFlight(at: endpoint) == 1)

        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n\r\nhi"))
        loop.run()
        let response = try written(client)
        #expect(response == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nVia: 1.1 edge-router\r\n\r\nhi")
        #expect(runtime.inFlight == 0)

        // The connection went back to this loop's pool for that balancer and instance.
        #expect(upstream.isActive)
        #expect(runtime.loopContext(for: loop).idleConnectionCount == 1)
        let instance = try #require(runtime.balancers.compactMap { $0.registry.instance(for: endpoint) }.first {
            runtime.loopContext(for: loop).pool(for: $0).idleCount == 1
        })
        let pooled = try #require(runtime.loopContext(for: loop).pool(for: instance).leaseIdle())
        #expect(pooled.channel === upstream)
    }

    @Test func anIdleConnectionTheInstanceClosedIsNotLeasedAgain() throws {
        try send("GET / HTTP/1.1\r\nHost: secure.test\r\n\r\n")
        let (endpoint, upstream) = try #require(connector.channels.first)
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
        loop.run()
        #expect(runtime.loopContext(for: loop).idleConnectionCount == 1)

        try upstream.close().wait()
        loop.run()
        #expect(runtime.loopContext(for: loop).idleConnectionCount == 0)
        for balancer in runtime.balancers {
            if let instance = balancer.registry.instance(for: endpoint) {
                #expect(runtime.loopContext(for: loop).pool(for: instance).leaseIdle() == nil)
            }
        }
    }

    @Test func hostOtherThanSNIGets421WithoutTouchingAnInstance() throws {
        try send("GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")
        let response = try written(client)
        let body = "421 Misdirected Request: Host other.test does not route to the domain of SNI secure.test\n"
        #expect(response == "HTTP/1.1 421 Misdirected Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        #expect(connector.channels.isEmpty)
    }

    @Test func refusedConnectionIsRetriedOnTheOtherInstanceAndMarkedDown() throws {
        connector.refusing = [ListenAddress(host: "10.0.0.1", port: 3000), ListenAddress(host: "10.0.0.2", port: 3000)]
        try send("GET / HTTP/1.1\r\nHost: secure.test\r\n\r\n")
        let response = try written(client)
        #expect(response.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(response.contains("refused the connection"))
        #expect(runtime.inFlight == 0)
        for balancer in runtime.balancers {
            for instance in balancer.registry.all where instance.inFlight != 0 { Issue.record("\(instance) still counted") }
        }

        // One instance refusing: a GET goes to the other one, transparently.
        connector.refusing = [ListenAddress(host: "10.0.0.1", port: 3000)]
        for balancer in runtime.balancers { for instance in balancer.registry.all { instance.markUp() } }
        try send("GET /retry HTTP/1.1\r\nHost: secure.test\r\n\r\n")
        let (endpoint, upstream) = try #require(connector.channels.last)
        #expect(endpoint == ListenAddress(host: "10.0.0.2", port: 3000))
        #expect(try written(upstream).hasPrefix("GET /retry HTTP/1.1"))
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
        loop.run()
        #expect(try written(client).hasPrefix("HTTP/1.1 200 OK"))
        #expect(runtime.inFlight == 0)
    }

    @Test func instanceClosingBeforeAnswerToAPostGives502() throws {
        try send("POST /p HTTP/1.1\r\nHost: secure.test\r\nContent-Length: 3\r\n\r\nabc")
        let upstream = try #require(connector.channels.first?.channel)
        #expect(try written(upstream).hasSuffix("\r\n\r\nabc"))
        upstream.pipeline.fireChannelInactive()
        loop.run()
        let response = try written(client)
        #expect(response.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(response.contains("closed the connection before sending a response"))
        #expect(connector.channels.count == 1)  // a POST is not replayed
        #expect(runtime.inFlight == 0)
    }

    @Test func clientLeavingMidResponseReleasesTheInstance() throws {
        try send("GET /big HTTP/1.1\r\nHost: secure.test\r\n\r\n")
        let upstream = try #require(connector.channels.first?.channel)
        _ = try written(upstream)
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst part"))
        loop.run()
        #expect(runtime.inFlight == 1)
        client.pipeline.fireChannelInactive()
        loop.run()
        #expect(runtime.inFlight == 0)
        #expect(!upstream.isActive)  // a half-read response cannot go back to the pool
    }

    @Test func smugglingAttemptGets400AndClose() throws {
        try send("POST / HTTP/1.1\r\nHost: secure.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(try written(client).hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(connector.channels.isEmpty)
        #expect(!client.isActive)
    }

    @Test func chunkedRequestBodyPassesAsReceivedAndAPipelinedRequestWaitsForTheResponse() throws {
        try send("POST /c HTTP/1.1\r\nHost: secure.test\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab")
        try send("cd\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: secure.test\r\n\r\n")
        let upstream = try #require(connector.channels.first?.channel)
        let request = try written(upstream)
        #expect(request.hasPrefix("POST /c HTTP/1.1\r\n"))
        #expect(request.contains("Transfer-Encoding: chunked\r\n"))
        #expect(request.hasSuffix("\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"), "the chunked body goes on as it came, and nothing of the next request")

        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
        loop.run()
        #expect(try written(client).hasPrefix("HTTP/1.1 201 Created\r\n"))
        // The pipelined request went out once the first response ended (to either instance: ties are random).
        let next = try #require(connector.channels.last?.channel)
        #expect(try written(next).hasPrefix("GET /next HTTP/1.1\r\n"))
        try next.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"))
        loop.run()
        #expect(try written(client).hasSuffix("\r\n\r\nx"))
        #expect(runtime.inFlight == 0)
        #expect(client.isActive)
    }

    @Test func responseDelimitedByCloseIsChunkedForAnHTTP11Client() throws {
        try send("GET /stream HTTP/1.1\r\nHost: secure.test\r\n\r\n")
        let upstream = try #require(connector.channels.first?.channel)
        _ = try written(upstream)
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello "))
        try upstream.writeInbound(ByteBuffer(string: "world"))
        upstream.pipeline.fireChannelInactive()
        loop.run()
        let response = try written(client)
        #expect(response == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nVia: 1.1 edge-router\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n")
        #expect(client.isActive, "the client connection stays open: its response was framed")
        #expect(runtime.inFlight == 0)
    }

    @Test func chunkedResponseIsDecodedForAnHTTP10ClientAndEndedByClose() throws {
        try send("GET /old HTTP/1.0\r\nHost: secure.test\r\n\r\n")
        let upstream = try #require(connector.channels.first?.channel)
        #expect(try written(upstream).hasPrefix("GET /old HTTP/1.1\r\n"))
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"))
        loop.run()
        #expect(try written(client) == "HTTP/1.0 200 OK\r\nVia: 1.1 edge-router\r\nConnection: close\r\n\r\nabcde")
        #expect(!client.isActive)
        #expect(upstream.isActive, "the instance connection was framed, so it is pooled")
        #expect(runtime.loopContext(for: loop).idleConnectionCount == 1)
    }

    @Test func responseToHeadHasNoBodyWhateverItsLength() throws {
        try send("HEAD /h HTTP/1.1\r\nHost: secure.test\r\n\r\n")
        let upstream = try #require(connector.channels.first?.channel)
        _ = try written(upstream)
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"))
        loop.run()
        #expect(try written(client) == "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nVia: 1.1 edge-router\r\n\r\n")
        #expect(runtime.inFlight == 0)
        #expect(runtime.loopContext(for: loop).idleConnectionCount == 1)
    }

    @Test func garbageFromAnInstanceGives502AndItsConnectionIsDropped() throws {
        try send("POST /g HTTP/1.1\r\nHost: secure.test\r\nContent-Length: 1\r\n\r\nx")
        let upstream = try #require(connector.channels.first?.channel)
        _ = try written(upstream)
        try upstream.writeInbound(ByteBuffer(string: "SSH-2.0-OpenSSH\r\n\r\n"))
        loop.run()
        let response = try written(client)
        #expect(response.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(response.contains("invalid response"))
        #expect(!upstream.isActive)
        #expect(runtime.inFlight == 0)
    }

    @Test func slowHeadIsClosedAndHalfClosedClientGetsItsResponseFirst() throws {
        try send("GET /half HTTP/1.1\r\nHost: secure.test\r\n\r\n")
        client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        loop.run()
        #expect(client.isActive, "a half-closed client still gets the response in progress")
        let upstream = try #require(connector.channels.first?.channel)
        _ = try written(upstream)
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        loop.run()
        let response = try written(client)
        #expect(response.contains("Connection: close\r\n"))
        #expect(response.hasSuffix("ok"))
        #expect(!client.isActive)
    }

    @Test func clientHalfClosingInTheMiddleOfABodyIsNotLeftWaiting() throws {
        try send("POST /p HTTP/1.1\r\nHost: secure.test\r\nContent-Length: 10\r\n\r\nabc")
        let upstream = try #require(connector.channels.first?.channel)
        _ = try written(upstream)
        client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        loop.run()
        #expect(!client.isActive)
        #expect(!upstream.isActive, "the instance connection holding a truncated body is dropped")
        #expect(runtime.inFlight == 0)
    }

    // MARK: drain at shutdown

    private func drain() throws -> Int {
        let told = runtime.drainClientConnections()
        loop.run()
        return try told.wait()
    }

    @Test func drainClosesAnIdleKeepAliveConnectionAtOnce() throws {
        try send("GET /a HTTP/1.1\r\nHost: secure.test\r\n\r\n")
        let upstream = try #require(connector.channels.first?.channel)
        _ = try written(upstream)
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"))
        loop.run()
        #expect(try written(client).hasSuffix("\r\n\r\nhi"))
        #expect(client.isActive, "kept alive after its response")
        #expect(runtime.loopContext(for: loop).fronts.count == 1)

        #expect(try drain() == 1)
        #expect(!client.isActive)
        loop.run()
        #expect(runtime.loopContext(for: loop).fronts.count == 0)
    }

    @Test func drainDuringARequestAnswersWithConnectionCloseAndDoesNotStartThePipelinedOne() throws {
        try send("GET /slow HTTP/1.1\r\nHost: secure.test\r\n\r\nGET /next HTTP/1.1\r\nHost: secure.test\r\n\r\n")
        let upstream = try #require(connector.channels.first?.channel)
        #expect(try written(upstream).hasPrefix("GET /slow HTTP/1.1\r\n"))

        #expect(try drain() == 1)
        #expect(client.isActive, "the request in progress is not cut off")
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        loop.run()
        #expect(try written(client) == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nVia: 1.1 edge-router\r\nConnection: close\r\n\r\nok")
        #expect(!client.isActive)
        #expect(connector.channels.count == 1, "the pipelined request was not started")
        #expect(runtime.inFlight == 0)
    }

    @Test func drainTellsAnHTTP10KeepAliveClientToClose() throws {
        try send("GET /old HTTP/1.0\r\nHost: secure.test\r\nConnection: keep-alive\r\n\r\n")
        let upstream = try #require(connector.channels.first?.channel)
        _ = try written(upstream)
        #expect(try drain() == 1)
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        loop.run()
        let response = try written(client)
        #expect(response.hasPrefix("HTTP/1.0 200 OK\r\n"))
        #expect(response.contains("Connection: close\r\n"))
        #expect(!response.contains("keep-alive"))
        #expect(!client.isActive)
    }

    @Test func aHeadArrivingDuringTheDrainIsAnsweredAndTheConnectionCloses() throws {
        try send("GET /late HTTP/1.1\r\nHost: sec")
        #expect(try drain() == 1)
        #expect(client.isActive, "a request being received is not idle")
        try send("ure.test\r\n\r\n")
        let upstream = try #require(connector.channels.first?.channel)
        #expect(try written(upstream).hasPrefix("GET /late HTTP/1.1\r\n"))
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 204 No Content\r\n\r\n"))
        loop.run()
        #expect(try written(client).contains("Connection: close\r\n"))
        #expect(!client.isActive)
    }

    @Test func aConnectionStartingAfterTheDrainBeganIsToldAtOnce() throws {
        #expect(try drain() == 1)
        #expect(!client.isActive, "idle from the start")
        let late = EmbeddedChannel(loop: loop)
        try late.pipeline.syncOperations.configureHTTPFront(mode: .tls, runtime: runtime)
        try late.connect(to: SocketAddress(ipAddress: "192.0.2.8", port: 50001)).wait()
        loop.run()
        #expect(!late.isActive)
        #expect(try drain() == 0, "told once")
    }

    /// A stream holds its HTTP/2 front strongly (the front holds its streams): once the connection closes
    /// with a stream still waiting for its instance, the front must let its streams go and be freed.
    @Test func anHTTP2FrontClosedWithAStreamInFlightIsFreed() throws {
        weak var front: HTTP2FrontHandler?
        var upstream: EmbeddedChannel?
        do {
            let h2 = EmbeddedChannel(loop: loop)
            try h2.pipeline.syncOperations.configureHTTPFront(mode: .tls, runtime: runtime)
            try h2.connect(to: SocketAddress(ipAddress: "192.0.2.9", port: 50002)).wait()
            h2.pipeline.fireUserInboundEventTriggered(
                TLSHandshakeCompletedEvent(serverName: "secure.test", alpnProtocol: "h2", protocolVersion: "TLSv1.3", sessionReused: false)
            )
            front = try h2.pipeline.syncOperations.handler(type: HTTP2FrontHandler.self)
            #expect(front != nil)

            // The preface, empty SETTINGS, and HEADERS for stream 1 (END_STREAM | END_HEADERS): GET
            // https://secure.test/ in HPACK, the pseudo-headers from the static table, :authority literal.
            var request = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            request.writeBytes([0, 0, 0, 0x04, 0, 0, 0, 0, 0])
            let authority = Array("secure.test".utf8)
            let block: [UInt8] = [0x82, 0x87, 0x84, 0x41, UInt8(authority.count)] + authority
            request.writeBytes([0, 0, UInt8(block.count), 0x01, 0x05, 0, 0, 0, 1] + block)
            try h2.writeInbound(request)
            loop.run()
            upstream = try #require(connector.channels.first?.channel)
            #expect(try written(upstream!).hasPrefix("GET / HTTP/1.1\r\n"), "the stream reached an instance")

            // The client goes away before the instance answers.
            try h2.close().wait()
            loop.run()
        }
        #expect(front == nil, "the front (and its stream) outlived the connection")
        #expect(upstream?.isActive == false, "the abandoned stream's instance connection was closed")
    }

    /// When the instance gets a request's bytes on a pooled connection: with the client read that brought
    /// them, not later at the read-complete (a request without a body in one write-and-flush, a head and the
    /// body bytes of one read with one flush).
    @Test func aRequestLeavesForItsInstanceWithTheReadThatBroughtIt() throws {
        /// What the instance connections were given, and the one that got it.
        func sentUpstream() throws -> (text: String, channel: EmbeddedChannel?) {
            for (_, channel) in connector.channels {
                let text = try written(channel)
                if !text.isEmpty { return (text, channel) }
            }
            return ("", nil)
        }
        func answer(_ upstream: EmbeddedChannel) throws {
            try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
            loop.run()
            #expect(try written(client).hasPrefix("HTTP/1.1 200 OK\r\n"))
        }

        // Each HTTP balancer keeps its own pool per instance: requests until every pool has a connection,
        // so that the requests below are written as their head is read (ties are broken at random).
        let pools = runtime.balancers.count * 2
        for _ in 0..<200 where connector.channels.count < pools {
            try send("GET /warm HTTP/1.1\r\nHost: secure.test\r\n\r\n")
            try answer(try #require(try sentUpstream().channel))
        }
        try #require(connector.channels.count == pools)

        // Reads whose read-complete has not come yet (the client's read still going on).
        client.pipeline.fireChannelRead(ByteBuffer(string: "GET /second HTTP/1.1\r\nHost: secure.test\r\n\r\n"))
        let second = try sentUpstream()
        #expect(second.text.hasPrefix("GET /second HTTP/1.1\r\n") && second.text.hasSuffix("\r\n\r\n"))
        client.pipeline.fireChannelReadComplete()
        try answer(try #require(second.channel))

        client.pipeline.fireChannelRead(ByteBuffer(string: "POST /third HTTP/1.1\r\nHost: secure.test\r\nContent-Length: 4\r\n\r\nok"))
        let third = try sentUpstream()
        #expect(third.text.hasPrefix("POST /third HTTP/1.1\r\n") && third.text.hasSuffix("\r\n\r\nok"))
        client.pipeline.fireChannelRead(ByteBuffer(string: "ok"))
        #expect(try written(try #require(third.channel)) == "ok", "the body's second part waited")
        client.pipeline.fireChannelReadComplete()
        try answer(try #require(third.channel))
        #expect(connector.channels.count == pools, "a request took a new connection, not a pooled one")
        #expect(runtime.inFlight == 0)
    }
}
