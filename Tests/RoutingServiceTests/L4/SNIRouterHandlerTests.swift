import Logging
import NIOCore
import NIOEmbedded
import Synchronization
import Testing
import TestSupport
@testable import RoutingService

/// Collects what the router re-fires, standing in for the TLS handler.
private final class InboundCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var received: [UInt8] = []
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytesView
    }
}

@Suite struct SNIRouterHandlerTests {
    private func makeChannel(
        capture: LogCapture,
        peekTimeout: Duration = .seconds(5),
        decide: @escaping SNIRouteDecision
    ) async throws -> (EmbeddedChannel, InboundCollector) {
        let collector = InboundCollector()
        let router = SNIRouterHandler(
            configuration: SNIRouterConfiguration(peekTimeout: peekTimeout),
            listenerName: "tls/test",
            logger: capture.logger(),
            decide: decide
        )
        let channel = EmbeddedChannel(handlers: [router, collector])
        try await channel.connect(to: SocketAddress(ipAddress: "192.0.2.1", port: 4433)).get()
        return (channel, collector)
    }

    private func write(_ bytes: some Sequence<UInt8>, to channel: EmbeddedChannel) throws {
        try channel.writeInbound(ByteBuffer(bytes: Array(bytes)))
    }

    @Test func terminateReFiresTheBufferedBytesUnchangedAndLeaves() async throws {
        let seen = Mutex<[ClientHelloParseResult]>([])
        let (channel, collector) = try await makeChannel(capture: LogCapture()) { result in
            seen.withLock { $0.append(result) }
            return .terminate
        }
        let hello = ClientHelloBytes(serverName: "app.test", alpn: ["http/1.1"]).records()
        // Split byte by byte for the first 40 bytes, then the rest: nothing passes until it is whole.
        for byte in hello.prefix(40) { try write([byte], to: channel) }
        #expect(collector.received.isEmpty)
        try write(hello.dropFirst(40), to: channel)
        #expect(collector.received == hello)
        #expect(seen.withLock { $0 } == [.clientHello(serverName: "app.test", alpn: ["http/1.1"])])
        #expect(throws: (any Error).self) { try channel.pipeline.syncOperations.handler(type: SNIRouterHandler.self) }
        // Later bytes flow straight through.
        try write([1, 2, 3], to: channel)
        #expect(collector.received == hello + [1, 2, 3])
        #expect(try channel.finish().isClean)
    }

    @Test func garbageIsPassedToTheDecisionWhichMayRejectIt() async throws {
        let capture = LogCapture()
        let (channel, collector) = try await makeChannel(capture: capture) { result in
            result == .notTLS ? .reject(reason: "not TLS") : .terminate
        }
        try write(Array("GET / HTTP/1.1\r\n\r\n".utf8), to: channel)
        #expect(!channel.isActive)
        #expect(collector.received.isEmpty)
        #expect(capture.contains("rejected before the handshake") { $0["sni.reason"] == "not TLS" })
    }

    @Test func malformedSNIReachesTheDecisionWithItsReason() async throws {
        let capture = LogCapture()
        let (channel, _) = try await makeChannel(capture: capture) { result in
            if case .malformed(let error) = result { return .reject(reason: error.reason) }
            return .terminate
        }
        try write(ClientHelloBytes(serverName: String(repeating: "x", count: 300)).records(), to: channel)
        #expect(!channel.isActive)
        #expect(capture.contains("rejected") { $0["sni.malformed"]?.contains("longer than 255") == true })
    }

    @Test func aClientThatNeverSendsIsClosedAfterThePeekTimeout() async throws {
        let capture = LogCapture()
        let (channel, _) = try await makeChannel(capture: capture, peekTimeout: .seconds(2)) { _ in .terminate }
        try write([22, 3, 1], to: channel)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1_999))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
        #expect(capture.contains("no complete ClientHello in time") { $0["sni.bytes_received"] == "3" })
    }
}
