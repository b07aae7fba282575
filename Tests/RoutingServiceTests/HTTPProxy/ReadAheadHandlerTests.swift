import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import RoutingService

/// Counts the `read()` calls that reach the socket side.
private final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Any
    var reads = 0

    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

/// Stands in for `HTTPServerPipelineHandler` while a response is pending: swallows every `read()`.
private final class ReadSwallower: ChannelOutboundHandler {
    typealias OutboundIn = Any

    func read(context: ChannelHandlerContext) {}
}

@Suite struct ReadAheadHandlerTests {
    private let channel = EmbeddedChannel()
    private let counter = ReadCounter()

    init() throws {
        try channel.pipeline.syncOperations.addHandlers([counter, ReadAheadHandler(), ReadSwallower()])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        counter.reads = 0  // the read autoRead asks for on activation
    }

    private func receive(_ parts: HTTPServerRequestPart...) {
        // One socket read: its parts, then one read-complete (writeInbound would add one per part).
        for part in parts { channel.pipeline.fireChannelRead(NIOAny(part)) }
        channel.pipeline.fireChannelReadComplete()
    }

    private func request(_ headers: HTTPHeaders = ["Host": "a.example"]) -> HTTPServerRequestPart {
        .head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: headers))
    }

    @Test func readsAheadWhileTheOneRequestWaitsForItsResponse() throws {
        receive(request(), .end(nil))
        #expect(counter.reads == 1)
        channel.pipeline.fireChannelReadComplete()  // e.g. a TLS record with no plaintext
        #expect(counter.reads == 2)
    }

    @Test func stopsReadingAheadOnceTheClientPipelines() throws {
        receive(request(), .end(nil))
        #expect(counter.reads == 1)
        receive(request())  // the next request's head: from here HTTPServerPipelineHandler holds reads
        #expect(counter.reads == 1)
        receive(.end(nil))
        #expect(counter.reads == 1)
    }

    @Test func leavesReadsToThePipelineHandlerOnceTheResponseEnded() throws {
        receive(request(), .end(nil))
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        channel.pipeline.fireChannelReadComplete()
        #expect(counter.reads == 1)
    }

    @Test func anEarlyAnswerBeforeTheRequestEndsIsNotCountedTwice() throws {
        receive(request())
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))  // answered before the body ended
        receive(.end(nil))
        #expect(counter.reads == 0)
    }

    @Test func neverReadsAheadAfterAnUpgradeRequest() throws {
        receive(request(["Host": "a.example", "Connection": "Upgrade", "Upgrade": "websocket"]), .end(nil))
        #expect(counter.reads == 0)
    }
}
