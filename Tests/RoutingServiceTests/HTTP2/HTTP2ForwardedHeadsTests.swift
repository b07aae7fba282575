import NIOCore
import Testing
@testable import RoutingService

/// HTTP/2 request heads into HTTP/1.1 for the instances, HTTP/1.1 response heads back into HTTP/2.
@Suite struct HTTP2ForwardedHeadsTests {
    private func requestHead(_ fields: [(String, String)]) -> HTTP2RequestHead {
        var head = HTTP2RequestHead()
        for (name, value) in fields { head.append(name: Array(name.utf8), value: Array(value.utf8)) }
        return head
    }

    private func written(_ head: HTTP2RequestHead, endStream: Bool, client: String? = "192.0.2.7") -> String {
        var buffer = ByteBuffer()
        HTTP2ForwardedHeads.writeRequest(
            head, framing: HTTP2ForwardedHeads.bodyFraming(of: head, endStream: endStream),
            context: ForwardingContext(clientAddress: client, scheme: "https"), into: &buffer
        )
        return String(buffer: buffer)
    }

    @Test func getBecomesAnHTTP11HeadWithHostFromAuthorityAndForwardingHeaders() {
        let head = requestHead([
            (":method", "GET"), (":scheme", "https"), (":authority", "app.example.com"), (":path", "/a?b=1"),
            ("accept", "*/*"), ("user-agent", "curl/7.88"),
        ])
        #expect(head.hostText == "app.example.com")
        #expect(head.parsedMethod == .get)
        #expect(written(head, endStream: true) == """
            GET /a?b=1 HTTP/1.1\r
            Host: app.example.com\r
            accept: */*\r
            user-agent: curl/7.88\r
            X-Forwarded-For: 192.0.2.7\r
            X-Forwarded-Proto: https\r
            X-Forwarded-Host: app.example.com\r
            Forwarded: for=192.0.2.7;host=app.example.com;proto=https\r
            Via: 2 edge-router\r
            \r

            """)
    }

    @Test func connectionSpecificAndForwardingHeadersAreDroppedOrExtendedAndCookiesJoined() {
        let head = requestHead([
            (":method", "POST"), (":path", "/p"), (":authority", "a.test"), ("host", "ignored.test"),
            ("connection", "close"), ("keep-alive", "5"), ("proxy-connection", "x"), ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"), ("te", "trailers"), ("x-forwarded-proto", "http"), ("x-forwarded-host", "evil"),
            ("x-forwarded-for", "10.0.0.1"), ("forwarded", "for=10.0.0.1"), ("via", "1.1 cdn"),
            ("cookie", "a=1"), ("x-kept", "yes"), ("cookie", "b=2"),
        ])
        let text = written(head, endStream: false, client: "2001:db8::1")
        #expect(text == """
            POST /p HTTP/1.1\r
            Host: a.test\r
            x-kept: yes\r
            cookie: a=1; b=2\r
            Transfer-Encoding: chunked\r
            X-Forwarded-For: 10.0.0.1, 2001:db8::1\r
            X-Forwarded-Proto: https\r
            X-Forwarded-Host: a.test\r
            Forwarded: for=10.0.0.1, for="[2001:db8::1]";host=a.test;proto=https\r
            Via: 1.1 cdn, 2 edge-router\r
            \r

            """)
    }

    @Test func contentLengthIsTheOneValueAllCopiesAgreeOn() {
        func length(_ values: [String]) -> Int? {
            requestHead([(":method", "PUT"), (":path", "/"), ("host", "h.test")] + values.map { ("content-length", $0) })
                .contentLength
        }
        #expect(length([]) == nil)
        #expect(length(["12"]) == 12)
        #expect(length(["12", "12"]) == 12)
        #expect(length(["12", "13"]) == nil)
        #expect(length(["12", "012"]) == nil)  // the same number written differently: not the same field value
        #expect(length(["twelve"]) == nil)
    }

    @Test func bodyFramingFollowsContentLengthOrEndStream() {
        let withLength = requestHead([(":method", "PUT"), (":path", "/"), ("host", "h.test"), ("content-length", "12")])
        #expect(HTTP2ForwardedHeads.bodyFraming(of: withLength, endStream: false) == .length(12))
        #expect(HTTP2ForwardedHeads.bodyFraming(of: withLength, endStream: true) == .none)
        let text = written(withLength, endStream: false)
        #expect(text.hasPrefix("PUT / HTTP/1.1\r\nHost: h.test\r\nContent-Length: 12\r\nX-Forwarded-For:"))
        #expect(!text.contains("Transfer-Encoding"))

        let empty = requestHead([(":method", "POST"), (":path", "/"), (":authority", "h.test")])
        #expect(HTTP2ForwardedHeads.bodyFraming(of: empty, endStream: true) == .none)
        #expect(!written(empty, endStream: true).contains("Content-Length"))
        #expect(HTTP2ForwardedHeads.bodyFraming(of: empty, endStream: false) == .chunked)
    }

    @Test func oversizedHeadIsFlaggedNotStored() {
        var head = HTTP2RequestHead()
        head.append(name: Array(":method".utf8), value: Array("GET".utf8))
        head.append(name: Array("x-big".utf8), value: [UInt8](repeating: 0x61, count: HTTPFrontConfiguration.maximumHeaderBytes))
        #expect(head.isOversized)
        #expect(head.fields.isEmpty)
    }

    private func mapped(_ response: String) throws -> HTTP2ResponseHead {
        var parsed = HTTP1ResponseHead()
        let bytes = Array(response.utf8)
        try bytes.withUnsafeBytes { raw in try HTTP1HeadParser.parseResponse(raw, length: bytes.count, into: &parsed) }
        var spare = SpareFieldList<(name: Range<Int>, value: Range<Int>)>()
        return bytes.withUnsafeBytes { raw in
            HTTP2ForwardedHeads.response(parsed, bytes: raw, framing: parsed.framing, block: ByteBuffer(), fields: &spare)
        }
    }

    @Test func responseLosesHopByHopAndNominatedHeadersAndGainsVia() throws {
        let head = try mapped(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\n"
                + "Keep-Alive: timeout=5\r\nContent-Length: 5\r\nVia: 1.0 upstream\r\nSet-Cookie: a=1\r\n\r\n"
        )
        #expect(head.status == 200)
        let fields = head.textFields.map { "\($0.0): \($0.1)" }
        #expect(fields == [
            "content-type: text/plain", "content-length: 5", "set-cookie: a=1", "via: 1.0 upstream, 1.1 edge-router",
        ])
        #expect(head.block.getString(at: 0, length: 10) == ":status200")
    }

    @Test func chunkedResponseLosesItsFramingHeaders() throws {
        let head = try mapped("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Kept: 1\r\n\r\n")
        #expect(head.status == 201)
        #expect(head.textFields.map { "\($0.0): \($0.1)" } == ["x-kept: 1", "via: 1.1 edge-router"])
    }
}
