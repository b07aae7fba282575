import Foundation
import NIOCore
import Testing
@testable import RoutingService

/// Heads through `HTTP1HeadParser` and `ForwardedHeadWriter`, read back as header lines.
private struct WrittenHead {
    let startLine: String
    let fields: [(name: String, value: String)]

    init(_ text: String) {
        var lines = text.components(separatedBy: "\r\n")
        startLine = lines.removeFirst()
        #expect(lines.suffix(2) == ["", ""], "the head ends with one blank line")
        fields = lines.dropLast(2).map { line in
            let colon = line.firstIndex(of: ":")!
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
    }

    func values(_ name: String) -> [String] { fields.filter { $0.name.lowercased() == name }.map(\.value) }
    func has(_ name: String) -> Bool { !values(name).isEmpty }
}

private func forwardRequest(_ text: String, client: String?, scheme: String = "https") throws -> (HTTP1RequestHead, WrittenHead) {
    var head = HTTP1RequestHead()
    let bytes = Array(text.utf8)
    var output = ByteBuffer()
    try bytes.withUnsafeBytes { raw in
        let end = try #require(try HTTP1Bytes.headEnd(in: raw, from: 0))
        try HTTP1HeadParser.parseRequest(raw, length: end, into: &head)
        ForwardedHeadWriter.writeRequest(head, bytes: raw, context: ForwardingContext(clientAddress: client, scheme: scheme), into: &output)
    }
    return (head, WrittenHead(String(buffer: output)))
}

private func forwardResponse(_ text: String, requestIsHead: Bool = false, clientMinorVersion: Int, closeAfter: Bool = false)
    throws -> (HTTP1ResponseHead, HTTP1ResponseRelay, WrittenHead)
{
    var head = HTTP1ResponseHead()
    let bytes = Array(text.utf8)
    var output = ByteBuffer()
    var relay = HTTP1ResponseRelay.none
    try bytes.withUnsafeBytes { raw in
        let end = try #require(try HTTP1Bytes.headEnd(in: raw, from: 0))
        try HTTP1HeadParser.parseResponse(raw, length: end, into: &head)
        // As the front does: the answer to a HEAD request has no body, whatever its head says.
        let framing = requestIsHead ? .none : head.framing
        relay = HTTP1ResponseRelay(framing: framing, clientMinorVersion: clientMinorVersion)
        let closeDelimited = clientMinorVersion == 0 && (framing == .chunked || framing == .untilClose)
        ForwardedHeadWriter.writeResponse(head, framing: framing, bytes: raw, relay: relay, clientMinorVersion: clientMinorVersion,
                                          closeAfter: closeAfter || closeDelimited, into: &output)
    }
    return (head, relay, WrittenHead(String(buffer: output)))
}

@Suite struct ForwardedHeadWriterTests {
    @Test func requestGetsForwardingHeadersAndLosesHopByHopOnes() throws {
        let (head, written) = try forwardRequest(
            "POST /x HTTP/1.1\r\nHost: app.test:8443\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"
                + "Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\n"
                + "X-Forwarded-For: 10.0.0.1\r\nForwarded: for=10.0.0.1\r\nVia: 1.0 other\r\nAccept: */*\r\n\r\n",
            client: "::1"
        )
        #expect(!head.isWebSocketUpgrade)
        #expect(written.startLine == "POST /x HTTP/1.1")
        for name in ["connection", "x-hop", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"] {
            #expect(!written.has(name), "\(name) kept")
        }
        #expect(written.values("transfer-encoding") == ["chunked"])  // the chunked body passes as it is, framed once
        #expect(written.values("x-forwarded-for") == ["10.0.0.1, ::1"])
        #expect(written.values("x-forwarded-proto") == ["https"])
        #expect(written.values("x-forwarded-host") == ["app.test:8443"])
        #expect(written.values("forwarded") == ["for=10.0.0.1, for=\"[::1]\";host=\"app.test:8443\";proto=https"])
        #expect(written.values("via") == ["1.0 other, 1.1 edge-router"])
        #expect(written.values("accept") == ["*/*"])
    }

    @Test func plainRequestGetsEachForwardingHeaderOnceAndClientValuesAreReplacedWhateverTheirCase() throws {
        let (_, plain) = try forwardRequest("GET / HTTP/1.1\r\nHost: app.test\r\n\r\n", client: "10.1.1.1")
        #expect(plain.fields.map(\.name) == ["Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "Via"])
        #expect(plain.values("forwarded") == ["for=10.1.1.1;host=app.test;proto=https"])

        let (_, replaced) = try forwardRequest(
            "GET / HTTP/1.1\r\nhost: app.test\r\nx-forwarded-proto: http\r\nX-FORWARDED-HOST: evil.test\r\nKEEP-ALIVE: timeout=1\r\n\r\n",
            client: "10.1.1.1"
        )
        #expect(replaced.values("x-forwarded-proto") == ["https"])
        #expect(replaced.values("x-forwarded-host") == ["app.test"])
        #expect(!replaced.has("keep-alive"))
    }

    @Test func headerLinesPassAsReceivedAndTheVersionBecomesOneOne() throws {
        let (head, written) = try forwardRequest(
            "GET /a%20b?c=d HTTP/1.0\r\nHost: a\r\nX-Odd-Case:  spaced value \r\nConnection: keep-alive\r\nCookie: a=1\r\n\r\n",
            client: nil, scheme: "http"
        )
        #expect(!head.wantsClose)
        #expect(written.startLine == "GET /a%20b?c=d HTTP/1.1")
        #expect(written.values("x-odd-case") == ["spaced value"])
        #expect(written.values("cookie") == ["a=1"])
        #expect(written.values("x-forwarded-for") == ["unknown"])
        #expect(written.values("forwarded") == ["for=unknown;host=a;proto=http"])
    }

    @Test func webSocketUpgradeKeepsUpgradeAndConnection() throws {
        let (head, written) = try forwardRequest(
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
            client: "1.2.3.4", scheme: "http"
        )
        #expect(head.isWebSocketUpgrade)
        #expect(written.values("upgrade") == ["websocket"])
        #expect(written.values("connection") == ["Upgrade"])
        #expect(written.values("sec-websocket-key") == ["k"])
        #expect(written.values("forwarded") == ["for=1.2.3.4;host=a;proto=http"])
    }

    @Test func http10ClientWithoutKeepAliveWantsClose() throws {
        let (head, _) = try forwardRequest("GET / HTTP/1.0\r\nHost: a\r\n\r\n", client: nil, scheme: "http")
        #expect(head.wantsClose)
        let (closing, _) = try forwardRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", client: nil)
        #expect(closing.wantsClose)
    }

    @Test func responseIsReframedForTheClient() throws {
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nContent-Type: text/plain\r\n\r\n"
        let (head, relay, written) = try forwardResponse(chunked, clientMinorVersion: 1)
        #expect(head.wantsClose)
        #expect(relay == .passThrough)
        #expect(written.startLine == "HTTP/1.1 200 OK")
        #expect(written.values("transfer-encoding") == ["chunked"])
        #expect(!written.has("x-hop"))
        #expect(!written.has("connection"))
        #expect(written.values("content-type") == ["text/plain"])
        #expect(written.values("via") == ["1.1 edge-router"])

        let (_, oldRelay, toOldClient) = try forwardResponse(chunked, clientMinorVersion: 0)
        #expect(oldRelay == .decodeChunks)
        #expect(toOldClient.startLine == "HTTP/1.0 200 OK")
        #expect(!toOldClient.has("transfer-encoding"))
        #expect(toOldClient.values("connection") == ["close"])

        let (sizedHead, sizedRelay, kept) = try forwardResponse(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\n\r\n", clientMinorVersion: 1, closeAfter: true
        )
        #expect(!sizedHead.wantsClose)
        #expect(sizedRelay == .passThrough)
        #expect(kept.values("content-length") == ["5"])
        #expect(kept.values("connection") == ["close"])
        #expect(!kept.has("keep-alive"))

        let (_, headRelay, toHead) = try forwardResponse(chunked, requestIsHead: true, clientMinorVersion: 1)
        #expect(headRelay == .none)
        #expect(!toHead.has("transfer-encoding"))

        let (_, closeRelay, unsized) = try forwardResponse("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", clientMinorVersion: 1)
        #expect(closeRelay == .encodeChunks)
        #expect(unsized.values("transfer-encoding") == ["chunked"])

        let (_, _, both) = try forwardResponse(
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n", clientMinorVersion: 1
        )
        #expect(!both.has("content-length"), "a Content-Length beside Transfer-Encoding is dropped")

        let (_, _, keepAlive10) = try forwardResponse("HTTP/1.1 204 No Content\r\n\r\n", clientMinorVersion: 0)
        #expect(keepAlive10.startLine == "HTTP/1.0 204 No Content")
        #expect(keepAlive10.values("connection") == ["keep-alive"])
    }

    @Test func upgradeAnswerKeepsItsConnectionHeaders() throws {
        let (_, _, written) = try forwardResponse(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
            clientMinorVersion: 1
        )
        #expect(written.values("upgrade") == ["websocket"])
        #expect(written.values("connection") == ["Upgrade"])
        #expect(written.values("via") == ["1.1 edge-router"])
    }

    @Test(arguments: [
        ("example.com", "example.com"),
        ("example.com:8443", "\"example.com:8443\""),
        ("a\"b\\c", "\"a\\\"b\\\\c\""),
        ("", "\"\""),
    ])
    func forwardedValuesAreTokensOrQuotedStringsWithEscapes(value: String, expected: String) {
        var buffer = ByteBuffer(string: ">")
        Array(value.utf8).withUnsafeBytes { ForwardedHeadWriter.writeForwardedValue($0, into: &buffer) }
        buffer.writeStaticString("<")
        #expect(String(buffer: buffer) == ">" + expected + "<")
    }

    /// The connection's forwarding headers are made once per Host and copied after; another Host (or
    /// none) makes them again.
    @Test func forwardingFieldsAreMadeOncePerHostAndCopiedAfter() {
        var cache = ForwardingFieldsCache()
        var made: [String?] = []
        func write(_ host: String?) -> String {
            var buffer = ByteBuffer(string: "head\r\n")
            cache.write(forHost: host, into: &buffer) { bytes in
                made.append(host)
                bytes.writeString("X-Forwarded-Host: \(host ?? "-")\r\n")
            }
            return String(buffer: buffer)
        }
        #expect(write("a.test") == "head\r\nX-Forwarded-Host: a.test\r\n")
        #expect(write("a.test") == "head\r\nX-Forwarded-Host: a.test\r\n")
        #expect(write("b.test") == "head\r\nX-Forwarded-Host: b.test\r\n")
        #expect(write(nil) == "head\r\nX-Forwarded-Host: -\r\n")
        #expect(write(nil) == "head\r\nX-Forwarded-Host: -\r\n")
        #expect(write("a.test") == "head\r\nX-Forwarded-Host: a.test\r\n")
        #expect(made == ["a.test", "b.test", nil, "a.test"])
    }
}
