import NIOCore
import Testing
@testable import RoutingService

/// The nghttp2 session wrapper on bytes alone: preface handling and GOAWAY on garbage.
@Suite struct HTTP2ServerSessionTests {
    private final class Recorder: HTTP2ServerSessionDelegate {
        var heads: [Int32] = []
        func http2RequestHeadReceived(streamID: Int32, head: HTTP2RequestHead, endStream: Bool) { heads.append(streamID) }
        func http2RequestBodyReceived(streamID: Int32, bytes: ByteBuffer) {}
        func http2RequestEnded(streamID: Int32) {}
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
        let session = try HTTP2ServerSession(delegate: recorder, allocator: ByteBufferAllocator())
        let output = try #require(try session.takeOutput(limit: 65_536))
        // SETTINGS (4), then the connection window raised (WINDOW_UPDATE, 8).
        #expect(frameTypes(output) == [4, 8])
        #expect(!session.isFinished)
    }

    @Test func settingsLimitConcurrentStreamsAndHeaderListSize() throws {
        let session = try HTTP2ServerSession(delegate: Recorder(), allocator: ByteBufferAllocator())
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
        let session = try HTTP2ServerSession(delegate: Recorder(), allocator: ByteBufferAllocator())
        #expect {
            try session.receive(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        } throws: { error in
            (error as? HTTP2SessionError)?.isBadPreface == true
        }
    }

    @Test func garbageAfterThePrefaceEndsTheSessionWithGoAway() throws {
        let session = try HTTP2ServerSession(delegate: Recorder(), allocator: ByteBufferAllocator())
        _ = try session.takeOutput(limit: 65_536)
        var input = Self.preface
        input.writeString("this is not an HTTP/2 frame at all\r\n")
        try session.receive(input)
        let output = try #require(try session.takeOutput(limit: 65_536))
        #expect(frameTypes(output).contains(7))
        #expect(session.isFinished)
    }
}
