import Testing
@testable import RoutingService

private func parseRequest(_ text: String) throws -> HTTP1RequestHead? {
    var head = HTTP1RequestHead()
    let bytes = Array(text.utf8)
    return try bytes.withUnsafeBytes { raw throws -> HTTP1RequestHead? in
        guard let end = try HTTP1Bytes.headEnd(in: raw, from: 0) else { return nil }
        try HTTP1HeadParser.parseRequest(raw, length: end, into: &head)
        return head
    }
}

private func parseResponse(_ text: String) throws -> HTTP1ResponseHead {
    var head = HTTP1ResponseHead()
    let bytes = Array(text.utf8)
    try bytes.withUnsafeBytes { raw throws in
        guard let end = try HTTP1Bytes.headEnd(in: raw, from: 0) else { throw HTTP1ParseError.malformed("incomplete") }
        try HTTP1HeadParser.parseResponse(raw, length: end, into: &head)
    }
    return head
}

private func refusal(_ text: String) -> HTTP1ParseError? {
    do {
        _ = try parseRequest(text)
        return nil
    } catch {
        return error as? HTTP1ParseError
    }
}

@Suite struct HTTP1HeadParserTests {
    /// Every connection's front holds a request head, and its field list is kept from request to request.
    @Test func headsAreStoredCompactly() {
        #expect(MemoryLayout<HTTP1HeaderField>.stride <= 20)
        #expect(MemoryLayout<HTTP1RequestHead>.size <= 64)
    }

    @Test func aHeadAsLargeAsAcceptedKeepsItsOffsets() throws {
        let filler = String(repeating: "a", count: HTTPFrontConfiguration.maximumHeaderBytes - 200)
        let text = "GET /path HTTP/1.1\r\nHost: example.org\r\nX-Filler: \(filler)\r\nX-Last: end\r\n\r\n"
        let head = try #require(try parseRequest(text))
        let bytes = Array(text.utf8)
        #expect(head.length == bytes.count)
        let last = try #require(head.fields.last)
        #expect(String(decoding: bytes[last.name], as: UTF8.self) == "X-Last")
        #expect(String(decoding: bytes[last.value], as: UTF8.self) == "end")
        #expect(head.fields[1].value.count == filler.count)
        #expect(String(decoding: bytes[try #require(head.host)], as: UTF8.self) == "example.org")
        #expect(String(decoding: bytes[head.target], as: UTF8.self) == "/path")
    }

    @Test func parsesARequestInPlace() throws {
        let text = "POST /upload?x=1 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 12\r\nX-Other:value\r\n\r\nbody"
        let head = try #require(try parseRequest(text))
        let bytes = Array(text.utf8)
        #expect(head.method == .post)
        #expect(String(decoding: bytes[head.target], as: UTF8.self) == "/upload?x=1")
        #expect(String(decoding: bytes[head.host!], as: UTF8.self) == "app.test")
        #expect(head.framing == .length(12))
        #expect(head.length == text.utf8.count - 4)
        #expect(head.fields.map(\.kind) == [.host, .contentLength, .other])
        #expect(String(decoding: bytes[head.fields[2].value], as: UTF8.self) == "value")
        #expect(!head.wantsClose)
    }

    @Test func anIncompleteHeadWaitsForMoreBytes() throws {
        #expect(try parseRequest("GET / HTTP/1.1\r\nHost: a\r\n") == nil)
        #expect(try parseRequest("GET / HTTP/1.1\r\nHost: a\r\n\r") == nil)
    }

    @Test(arguments: [
        ("GET / HTTP/1.1 extra garbage\r\nHost: a\r\n\r\n", 400),
        ("GET / HTTP/1.1\nHost: a\r\n\r\n", 400),  // bare line feed
        ("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400),
        ("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),  // whitespace before the colon
        ("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\u{01}b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405),
    ])
    func refusesWhatTwoParsersCouldReadDifferently(request: String, status: Int) {
        let error = refusal(request)
        #expect(error?.status == status, "\(request.debugDescription): \(String(describing: error))")
        #expect(error?.reason.isEmpty == false)
    }

    @Test func readsConnectionOptionsAndTheHeadersTheyNominate() throws {
        let head = try #require(try parseRequest(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Hop\r\nx-hop: 1\r\nUpgrade: websocket\r\n\r\n"
        ))
        #expect(head.wantsClose)
        #expect(head.fields.map(\.kind) == [.host, .connection, .connectionNominated, .upgrade])
        #expect(!head.isWebSocketUpgrade, "Upgrade without Connection: upgrade is not an upgrade request")

        let upgrade = try #require(try parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n"))
        #expect(upgrade.isWebSocketUpgrade)
        let old = try #require(try parseRequest("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"))
        #expect(!old.wantsClose)
        #expect(old.host == nil)
        let chunked = try #require(try parseRequest("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"))
        #expect(chunked.framing == .chunked)
        #expect(chunked.method == .put)
    }

    @Test func parsesResponsesAndTheirFraming() throws {
        let sized = try parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        #expect(sized.status == 200)
        #expect(sized.framing == .length(2))
        #expect(!sized.wantsClose)
        #expect(try parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").framing == .chunked)
        #expect(try parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").framing == .untilClose)
        #expect(try parseResponse("HTTP/1.1 200 OK\r\n\r\n").framing == .untilClose)
        #expect(try parseResponse("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n").framing == .none)
        #expect(try parseResponse("HTTP/1.1 304 Not Modified\r\n\r\n").framing == .none)
        #expect(try parseResponse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").framing == .none)
        #expect(try parseResponse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").wantsClose)
        #expect(try parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n").framing == .length(3))
        #expect(throws: HTTP1ParseError.self) { try parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n") }
        #expect(throws: HTTP1ParseError.self) { try parseResponse("HTTP/1.1 20 OK\r\n\r\n") }
        #expect(throws: HTTP1ParseError.self) { try parseResponse("ICY 200 OK\r\n\r\n") }
    }
}

@Suite struct ChunkedBodyScannerTests {
    /// Feeds `body` in pieces of `step` bytes; returns the bytes taken, the payload, and whether it ended.
    private func scan(_ body: String, step: Int) throws -> (taken: Int, payload: String, finished: Bool) {
        var progress = HTTP1BodyProgress(.chunked)
        let bytes = Array(body.utf8)
        var taken = 0
        var payload: [UInt8] = []
        var offset = 0
        while offset < bytes.count && !progress.isFinished {
            let piece = Array(bytes[offset..<min(bytes.count, offset + step)])
            let count = try piece.withUnsafeBytes { raw throws in
                try progress.consume(raw) { payload += piece[$0] }
            }
            taken += count
            offset += piece.count
        }
        return (taken, String(decoding: payload, as: UTF8.self), progress.isFinished)
    }

    @Test(arguments: [1, 2, 5, 1000])
    func findsTheEndWhateverTheReadsAndLeavesTheNextRequest(step: Int) throws {
        let body = "5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
        let result = try scan(body + "GET / HTTP/1.1\r\n", step: step)
        #expect(result.finished)
        #expect(result.taken == body.utf8.count)
        #expect(result.payload == "hello0123456789")
    }

    @Test(arguments: [
        "zz\r\nhello\r\n0\r\n\r\n",
        "5\r\nhelloXX0\r\n\r\n",
        "5\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        "1000000000000000\r\n",
        "0\r\nbad trailer\u{01}\r\n\r\n",
    ])
    func refusesMalformedChunking(body: String) {
        #expect(throws: HTTP1ParseError.self) { try scan(body, step: 3) }
    }

    @Test func fixedLengthAndCloseDelimitedBodies() throws {
        var sized = HTTP1BodyProgress(.length(3))
        let taken = try Array("abcdef".utf8).withUnsafeBytes { raw throws in try sized.consume(raw) }
        #expect(taken == 3)
        #expect(sized.isFinished)
        var untilClose = HTTP1BodyProgress(.untilClose)
        #expect(try Array("abc".utf8).withUnsafeBytes { raw throws in try untilClose.consume(raw) } == 3)
        #expect(!untilClose.isFinished)
        #expect(untilClose.isDelimitedByClose)
        #expect(HTTP1BodyProgress(.none).isFinished)
    }
}
