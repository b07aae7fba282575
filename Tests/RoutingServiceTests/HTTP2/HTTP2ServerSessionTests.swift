import NIOCore
import Testing
@testable import RoutingService

/// The nghttp2 session wrapper on bytes alone: preface handling, GOAWAY on garbage, graceful shutdown.
@Suite struct HTTP2ServerSessionTests {
    private final class Recorder: HTTP2ServerSessionDelegate {
        var heads: [Int32] = []
        var paths: [Int32: String] = [:]
        var fields: [Int32: [String]] = [:]
        var ended: [Int32] = []
        func http2RequestHeadReceived(streamID: Int32, head: HTTP2RequestHead, endStream: Bool) {
            heads.append(streamID)
            paths[streamID] = head.pathText
            fields[streamID] = head.fields.map { "\(head.text($0.name)): \(head.text($0.value))" }
        }
        func http2RequestBodyReceived(streamID: Int32, bytes: ByteBuffer) {}
        func http2RequestEnded(streamID: Int32) { ended.append(streamID) }
        func http2StreamClosed(streamID: Int32, errorCode: UInt32) {}
        func http2ResponseBodyDrained(streamID: Int32) {}
    }

    private static let preface = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

    /// Frame types in `output`, walking the frame headers.
    private func frameTypes(_ output: ByteBuffer) -> [UInt8] {
        var bytes = output
        var types: [UInt8] = []
        while bytes.readableBytes >= 9 {
            let length = Int(bytes.getInteger(at: bytes.readerIndex, as: UInt16.self)!) << 8
                | Int(bytes.getInteger(at: bytes.readerIndex + 2, as: UInt8.self)!)
            types.append(bytes.getInteger(at: bytes.readerIndex + 3, as: UInt8.self)!)
            bytes.moveReaderIndex(forwardBy: min(bytes.readableBytes, 9 + length))
        }
        return types
    }

    @Test func startsWithSettingsAndAWindowUpdate() throws {
        let recorder = Recorder()
        let session = try HTTP2ServerSession(delegate: recorder, recycler: ByteBufferRecycler())
        let output = try #require(try session.takeOutput(limit: 65_536))
        // SETTINGS (4), then the connection window raised (WINDOW_UPDATE, 8).
        #expect(frameTypes(output) == [4, 8])
        #expect(!session.isFinished)
    }

    @Test func settingsLimitConcurrentStreamsAndHeaderListSize() throws {
        let session = try HTTP2ServerSession(delegate: Recorder(), recycler: ByteBufferRecycler())
        var output = try #require(try session.takeOutput(limit: 65_536))
        let length = Int(output.getInteger(at: output.readerIndex, as: UInt16.self)!) << 8
            | Int(output.getInteger(at: output.readerIndex + 2, as: UInt8.self)!)
        output.moveReaderIndex(forwardBy: 9)
        var settings: [UInt16: UInt32] = [:]
        for _ in 0..<(length / 6) {
            let id = output.readInteger(as: UInt16.self)!
            settings[id] = output.readInteger(as: UInt32.self)!
        }
        #expect(settings[0x3] == 100)  // SETTINGS_MAX_CONCURRENT_STREAMS
        #expect(settings[0x4] == 65_535)  // SETTINGS_INITIAL_WINDOW_SIZE
        #expect(settings[0x6] == UInt32(HTTPFrontConfiguration.maximumHeaderBytes))  // SETTINGS_MAX_HEADER_LIST_SIZE
    }

    @Test func somethingOtherThanThePrefaceIsRefused() throws {
        let session = try HTTP2ServerSession(delegate: Recorder(), recycler: ByteBufferRecycler())
        #expect {
            try session.receive(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        } throws: { error in
            (error as? HTTP2SessionError)?.isBadPreface == true
        }
    }

    @Test func garbageAfterThePrefaceEndsTheSessionWithGoAway() throws {
        let session = try HTTP2ServerSession(delegate: Recorder(), recycler: ByteBufferRecycler())
        _ = try session.takeOutput(limit: 65_536)
        var input = Self.preface
        input.writeString("this is not an HTTP/2 frame at all\r\n")
        try session.receive(input)
        let output = try #require(try session.takeOutput(limit: 65_536))
        #expect(frameTypes(output).contains(7))
        #expect(session.isFinished)
    }

    /// A GET on `stream` as one HEADERS frame (END_STREAM | END_HEADERS), HPACK as in the
    /// integration tests: indexed `:method GET` and `:scheme https`, literal `:path` and `:authority`.
    private func get(stream: UInt32) -> ByteBuffer {
        let block: [UInt8] = [0x82, 0x87, 0x04, 0x01, UInt8(ascii: "/"), 0x01, 0x06] + Array("a.test".utf8)
        return frame(type: 0x1, flags: 0x5, stream: stream, block)
    }

    /// A session past its own opening SETTINGS, the recorder it delivers to, and the client's opening
    /// (preface and an empty SETTINGS) for a test to add its frames to.
    private func openedSession() throws -> (Recorder, HTTP2ServerSession, ByteBuffer) {
        let recorder = Recorder()
        let session = try HTTP2ServerSession(delegate: recorder, recycler: ByteBufferRecycler())
        _ = try session.takeOutput(limit: 65_536)
        var opening = Self.preface
        opening.writeBytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  // empty SETTINGS
        return (recorder, session, opening)
    }

    private func frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> ByteBuffer {
        var frame = ByteBuffer()
        frame.writeInteger(UInt16(0))
        frame.writeInteger(UInt8(payload.count))
        frame.writeInteger(type)
        frame.writeInteger(flags)
        frame.writeInteger(stream)
        frame.writeBytes(payload)
        return frame
    }

    /// HPACK: a literal field (no indexing) whose name is the static table's entry `index`.
    private func literal(index: UInt8, _ value: String) -> [UInt8] {
        [index, UInt8(value.utf8.count)] + Array(value.utf8)
    }

    /// HPACK: a literal field (no indexing) with a new name.
    private func newName(_ name: String, _ value: String) -> [UInt8] {
        [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
    }

    /// A head split over HEADERS and CONTINUATION arrives whole; another stream's head after it is its own
    /// (its fields too: the session reuses the last head's field list); trailers later on the first stream
    /// end it and are not taken for a new head.
    @Test func headsArriveWholeAcrossContinuationAndTrailersAreNotAHead() throws {
        let (recorder, session, opening) = try openedSession()
        var input = opening
        // Stream 1: POST /one, its block cut after `:path` (HEADERS without END_HEADERS, then CONTINUATION).
        let first: [UInt8] = [0x83, 0x87] + literal(index: 0x04, "/one")
        input.writeImmutableBuffer(frame(type: 0x1, flags: 0x0, stream: 1, first))
        input.writeImmutableBuffer(
            frame(type: 0x9, flags: 0x4, stream: 1, literal(index: 0x01, "a.test") + newName("x-one", "1") + newName("x-two", "2"))
        )
        // Stream 3: GET /three, whole.
        let third: [UInt8] = [0x82, 0x87] + literal(index: 0x04, "/three") + literal(index: 0x01, "a.test") + newName("x-three", "3")
        input.writeImmutableBuffer(frame(type: 0x1, flags: 0x5, stream: 3, third))
        // Stream 1's trailers (END_STREAM | END_HEADERS): `x-t: 1`, a literal with a new name.
        let trailers: [UInt8] = [0x00, 3] + Array("x-t".utf8) + [1, UInt8(ascii: "1")]
        input.writeImmutableBuffer(frame(type: 0x1, flags: 0x5, stream: 1, trailers))
        try session.receive(input)

        #expect(recorder.heads == [1, 3])
        #expect(recorder.paths == [1: "/one", 3: "/three"])
        #expect(recorder.fields == [1: ["x-one: 1", "x-two: 2"], 3: ["x-three: 3"]])
        #expect(recorder.ended == [1])
    }

    /// The last-stream-id of each GOAWAY in `output`.
    private func goAwayLastStreamIDs(_ output: ByteBuffer) -> [UInt32] {
        var bytes = output
        var ids: [UInt32] = []
        while bytes.readableBytes >= 9 {
            let length = Int(bytes.getInteger(at: bytes.readerIndex, as: UInt16.self)!) << 8
                | Int(bytes.getInteger(at: bytes.readerIndex + 2, as: UInt8.self)!)
            if bytes.getInteger(at: bytes.readerIndex + 3, as: UInt8.self) == 7 {
                ids.append(bytes.getInteger(at: bytes.readerIndex + 9, as: UInt32.self)! & 0x7FFF_FFFF)
            }
            bytes.moveReaderIndex(forwardBy: min(bytes.readableBytes, 9 + length))
        }
        return ids
    }

    @Test func gracefulShutdownNoticeThenFinalGoAwayThenFinishedWhenTheStreamsAreDone() throws {
        let (recorder, session, opening) = try openedSession()
        var input = opening
        input.writeImmutableBuffer(get(stream: 1))
        try session.receive(input)
        #expect(recorder.heads == [1])

        try session.submitShutdownNotice()
        #expect(goAwayLastStreamIDs(try #require(try session.takeOutput(limit: 65_536))) == [0x7FFF_FFFF])
        #expect(!session.isFinished)
        // A stream the client opened before it saw the notice is still served.
        try session.receive(get(stream: 3))
        #expect(recorder.heads == [1, 3])

        try session.submitFinalGoAway()
        #expect(goAwayLastStreamIDs(try #require(try session.takeOutput(limit: 65_536))) == [3])
        // Past the final GOAWAY's last stream: ignored.
        try session.receive(get(stream: 5))
        #expect(recorder.heads == [1, 3])
        #expect(!session.isFinished, "streams 1 and 3 are still open")

        try session.submitResponse(streamID: 1, head: HTTP2ResponseHead(status: 204), hasBody: false)
        _ = try session.takeOutput(limit: 65_536)
        #expect(!session.isFinished, "stream 3 is still open")
        try session.submitResponse(streamID: 3, head: HTTP2ResponseHead(status: 204), hasBody: false)
        _ = try session.takeOutput(limit: 65_536)
        #expect(session.isFinished)
    }
}
