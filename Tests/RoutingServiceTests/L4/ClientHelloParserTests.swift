import Foundation
import NIOCore
import NIOPosix
import Testing
import TestSupport
@testable import RoutingService

@Suite struct ClientHelloParserTests {
    private func parse(_ bytes: [UInt8], maximum: Int = 16_384) -> ClientHelloParseResult {
        var parser = ClientHelloParser(maximumHandshakeSize: maximum)
        return parser.feed(bytes)
    }

    private func malformedReason(_ result: ClientHelloParseResult) -> String? {
        if case .malformed(let error) = result { return error.reason }
        return nil
    }

    @Test func extractsServerNameAndALPN() {
        let hello = ClientHelloBytes(serverName: "DB.Example.test", alpn: ["h2", "http/1.1"]).records()
        #expect(parse(hello) == .clientHello(serverName: "db.example.test", alpn: ["h2", "http/1.1"]))
    }

    @Test func helloWithoutSNIHasNoServerName() {
        #expect(parse(ClientHelloBytes(serverName: nil).records()) == .clientHello(serverName: nil, alpn: []))
    }

    @Test func helloSplitInTwoAtEveryByteBoundaryGivesTheSameResult() {
        let hello = ClientHelloBytes(serverName: "db.test", alpn: ["h2"]).records()
        let expected = ClientHelloParseResult.clientHello(serverName: "db.test", alpn: ["h2"])
        for cut in 1..<hello.count {
            var parser = ClientHelloParser()
            #expect(parser.feed(hello[..<cut]) == .needMoreData, "cut at \(cut)")
            #expect(parser.feed(hello[cut...]) == expected, "cut at \(cut)")
        }
    }

    @Test func helloFedOneByteAtATime() {
        let hello = ClientHelloBytes(serverName: "db.test").records()
        var parser = ClientHelloParser()
        for byte in hello.dropLast() {
            #expect(parser.feed([byte]) == .needMoreData)
        }
        #expect(parser.feed([hello.last!]) == .clientHello(serverName: "db.test", alpn: []))
    }

    @Test func helloSpreadOverOneByteRecords() {
        let records = ClientHelloBytes(serverName: "db.test").records(recordSize: 1)
        #expect(parse(records) == .clientHello(serverName: "db.test", alpn: []))
    }

    @Test func garbageAndPlainHTTPAreNotTLS() {
        #expect(parse(Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8)) == .notTLS)
        #expect(parse([0x00, 0xFF, 0x13]) == .notTLS)
        #expect(parse([22, 0x7F, 0x01, 0x00, 0x10]) == .notTLS, "handshake type byte but no TLS version")
        var parser = ClientHelloParser()
        #expect(parser.feed([0x47]) == .notTLS, "one byte is enough to tell")
    }

    @Test func wrongHandshakeTypeIsMalformed() {
        var message = ClientHelloBytes(serverName: "db.test").handshakeMessage
        message[0] = 2  // ServerHello
        let record: [UInt8] = [22, 3, 1] + ClientHelloBytes.u16(message.count) + message
        #expect(malformedReason(parse(record))?.contains("not ClientHello") == true)
    }

    @Test func nonHandshakeRecordInTheMiddleIsMalformed() {
        let records = ClientHelloBytes(serverName: "db.test").records(recordSize: 10)
        // The first record whole (5 + 10 bytes), then an application-data record.
        let bent = Array(records.prefix(15)) + [23, 3, 3, 0, 1, 0]
        #expect(malformedReason(parse(bent))?.contains("content type 23") == true)
    }

    @Test func oversizedHandshakeIsRefusedFromItsHeader() {
        var hello = ClientHelloBytes(serverName: "db.test")
        hello.extensions.append((21, Array(repeating: 0, count: 20_000)))  // padding
        let records = hello.records()
        // Refused as soon as the length is known, before 20 KB arrive.
        #expect(malformedReason(parse(Array(records.prefix(20))))?.contains("over the 16384-byte limit") == true)
        #expect(malformedReason(parse(records, maximum: 1_000))?.contains("limit") == true)
    }

    @Test func malformedServerNameExtensions() {
        func helloWith(sniBody: [UInt8]) -> [UInt8] {
            var hello = ClientHelloBytes()
            hello.extensions = [(0, sniBody)]
            return hello.records()
        }
        var other = ClientHelloBytes()
        other.addServerName("db.test", nameType: 1)
        #expect(malformedReason(parse(other.records()))?.contains("not host_name") == true)

        let longName = String(repeating: "a.", count: 128) + "test"  // 260 bytes
        #expect(malformedReason(parse(ClientHelloBytes(serverName: longName).records()))?.contains("longer than 255") == true)
        let longLabel = String(repeating: "a", count: 64) + ".test"
        #expect(malformedReason(parse(ClientHelloBytes(serverName: longLabel).records()))?.contains("63") == true)
        #expect(malformedReason(parse(ClientHelloBytes(serverName: "db..test").records()))?.contains("empty label") == true)
        #expect(malformedReason(parse(ClientHelloBytes(serverName: "db.test.").records()))?.contains("ends with") == true)
        #expect(malformedReason(parse(ClientHelloBytes(serverName: "db test").records()))?.contains("0x20") == true)
        #expect(malformedReason(parse(ClientHelloBytes(serverName: "db\u{0}.test").records()))?.contains("0x0") == true)

        // The list length claims more than the extension holds.
        #expect(malformedReason(parse(helloWith(sniBody: [0, 50, 0, 0, 4] + Array("a.te".utf8)))) != nil)
        // The host_name length runs past the list.
        #expect(malformedReason(parse(helloWith(sniBody: [0, 7, 0, 0, 9] + Array("a.te".utf8))))?.contains("past") == true)
        // Bytes after the list.
        #expect(malformedReason(parse(helloWith(sniBody: [0, 7, 0, 0, 4] + Array("a.te".utf8) + [1]))) != nil)
        // Empty list and two names.
        #expect(malformedReason(parse(helloWith(sniBody: [0, 0])))?.contains("empty server_name_list") == true)
        let twice: [UInt8] = [0, 0, 1, UInt8(ascii: "a"), 0, 0, 1, UInt8(ascii: "b")]
        #expect(malformedReason(parse(helloWith(sniBody: [0, 8] + twice)))?.contains("more than one") == true)
    }

    @Test func duplicateExtensionAndBadVectorsAreMalformed() {
        var hello = ClientHelloBytes(serverName: "db.test")
        hello.addServerName("db.test")
        #expect(malformedReason(parse(hello.records()))?.contains("twice") == true)

        var odd = ClientHelloBytes(serverName: "db.test")
        odd.sessionID = Array(repeating: 1, count: 33)
        #expect(malformedReason(parse(odd.records()))?.contains("session_id") == true)

        var noSuites = ClientHelloBytes(serverName: "db.test")
        noSuites.cipherSuites = []
        #expect(malformedReason(parse(noSuites.records()))?.contains("no cipher suites") == true)

        var emptyALPN = ClientHelloBytes(serverName: "db.test")
        emptyALPN.addALPN([""])
        #expect(malformedReason(parse(emptyALPN.records()))?.contains("empty ALPN") == true)
    }

    @Test func zeroLengthAndOverlongRecordsAreMalformed() {
        #expect(malformedReason(parse([22, 3, 1, 0, 0])) == "empty handshake record")
        #expect(malformedReason(parse([22, 3, 1, 0x40, 0x01]))?.contains("longer than 16384") == true)
    }

    @Test func resultIsFinalOnceKnown() {
        var parser = ClientHelloParser()
        #expect(parser.feed(Array("garbage".utf8)) == .notTLS)
        #expect(parser.feed(ClientHelloBytes(serverName: "db.test").records()) == .notTLS)
    }

    /// A ClientHello from the real `openssl s_client`, captured over loopback at test time.
    @Test func parsesARealOpenSSLClientHelloSplitAnywhere() async throws {
        let capture = try await ClientHelloCapture.fromOpenSSL(serverName: "real.example.test", alpn: "h2,http/1.1")
        let expected = ClientHelloParseResult.clientHello(serverName: "real.example.test", alpn: ["h2", "http/1.1"])
        #expect(parse(capture) == expected)
        for cut in stride(from: 1, to: capture.count, by: 1) {
            var parser = ClientHelloParser()
            _ = parser.feed(capture[..<cut])
            #expect(parser.feed(capture[cut...]) == expected, "cut at \(cut)")
        }
        var truncated = capture
        truncated.removeLast()
        #expect(parse(truncated) == .needMoreData)
    }
}

/// Accepts one connection on 127.0.0.1 and keeps the first bytes `openssl s_client` sends.
enum ClientHelloCapture {
    static func fromOpenSSL(serverName: String, alpn: String) async throws -> [UInt8] {
        let group = MultiThreadedEventLoopGroup.singleton
        let collector = ByteCollector(eventLoop: group.next())
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = try BackgroundProcess("openssl", [
            "s_client", "-connect", "127.0.0.1:\(server.localAddress!.port!)",
            "-servername", serverName, "-alpn", alpn,
        ])
        defer {
            client.stop(grace: 1)
            server.close(promise: nil)
        }
        return try await collector.completeHello.futureResult.get()
    }

    final class ByteCollector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let completeHello: EventLoopPromise<[UInt8]>
        private var bytes: [UInt8] = []
        private var parser = ClientHelloParser()

        init(eventLoop: any EventLoop) {
            completeHello = eventLoop.makePromise()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            bytes += buffer.readableBytesView
            if parser.feed(buffer) != .needMoreData {
                completeHello.succeed(bytes)
                context.close(promise: nil)
            }
        }
    }
}
