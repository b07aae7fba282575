internal import CNGHTTP2
import NIOCore

/// HTTP/2 error codes this proxy sends (RFC 9113 §7).
enum HTTP2ErrorCode: UInt32 {
    case noError = 0x0
    case protocolError = 0x1
    case internalError = 0x2
    case refusedStream = 0x7
    case cancel = 0x8
}

/// nghttp2 refused an operation: its error code and message.
struct HTTP2SessionError: Error, CustomStringConvertible {
    let code: Int
    let operation: String

    var description: String {
        "\(operation): \(String(cString: nghttp2_strerror(Int32(truncatingIfNeeded: code)))) (\(code))"
    }

    /// The client did not start with the HTTP/2 connection preface.
    var isBadPreface: Bool { code == Int(NGHTTP2_ERR_BAD_CLIENT_MAGIC.rawValue) }
}

/// What an HTTP/2 server session reports, as it parses what the client sent. Called from inside
/// `HTTP2ServerSession.receive(_:)` or `takeOutput(limit:)`: the delegate may submit (responses,
/// bodies, resets) but must not call `receive` or `takeOutput` from here.
protocol HTTP2ServerSessionDelegate: AnyObject {
    /// A complete request header block (HEADERS and any CONTINUATION).
    func http2RequestHeadReceived(streamID: Int32, head: HTTP2RequestHead, endStream: Bool)
    /// DATA payload; it counts against the flow-control windows until `consume` is called for it.
    func http2RequestBodyReceived(streamID: Int32, bytes: ByteBuffer)
    /// The client ended its side of the stream (after the body, or trailers, which are not forwarded).
    func http2RequestEnded(streamID: Int32)
    /// The stream is gone: both sides done, or reset (by the client or by this side).
    func http2StreamClosed(streamID: Int32, errorCode: UInt32)
    /// The stream's queued response body fell below `HTTP2ServerSession.responseBodyLowWater`.
    func http2ResponseBodyDrained(streamID: Int32)
}

/// One nghttp2 server session (one client connection), fed bytes by `receive` and emptied by
/// `takeOutput`, with no socket of its own. Owns the `nghttp2_session`, freed in deinit; callbacks
/// come back through `Unmanaged` user data to this object, which turns them into delegate calls with
/// Swift values. Request bodies are not window-updated automatically: the owner calls `consume` for
/// what it forwarded, so a slow instance slows the client. Response bodies are queued here per
/// stream and copied into DATA frames as the client's windows allow.
final class HTTP2ServerSession {
    struct Settings {
        var maximumConcurrentStreams: UInt32 = 100
        /// Per stream, for request bodies.
        var initialWindowSize: UInt32 = 65_535
        /// For the whole connection (raised from the protocol's 65 535 with a WINDOW_UPDATE).
        var connectionWindowSize: Int32 = 1 << 20
    }

    /// A stream's queued response body above this stops reading from its instance.
    static let responseBodyHighWater = 256 * 1024
    static let responseBodyLowWater = 64 * 1024

    unowned let delegate: any HTTP2ServerSessionDelegate
    /// Request heads and the frames for the client are written into its spares.
    private let recycler: ByteBufferRecycler
    /// Owned; created in init, freed in deinit.
    private var session: OpaquePointer?
    /// The request head being received. A header block arrives whole, with no frame of another stream
    /// in between (RFC 9113 §4.3), so there is at most one at a time and it needs no lookup per field.
    private var headInProgress: (streamID: Int32, head: HTTP2RequestHead)?
    /// The last head's field list, for the next head (one per stream otherwise).
    private var spareFields = SpareFieldList<HTTP2HeaderField>()
    /// Response bodies being sent, by stream.
    private var bodies = HTTP2StreamTable<OutgoingBody>()
    /// Inside `nghttp2_session_mem_recv`/`mem_send`, which must not be re-entered.
    private(set) var isBusy = false

    private final class OutgoingBody {
        var chunks = BodyChunks()
        var queued = 0
        var ended = false
        /// The data callback said "nothing yet": the stream waits for `resume_data`.
        var deferred = false
    }

    init(delegate: any HTTP2ServerSessionDelegate, settings: Settings = Settings(),
         recycler: ByteBufferRecycler) throws(HTTP2SessionError) {
        self.delegate = delegate
        self.recycler = recycler
        var callbacks: OpaquePointer?
        try Self.check(Int(nghttp2_session_callbacks_new(&callbacks)), "nghttp2_session_callbacks_new")
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameReceived)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunkReceived)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)

        var option: OpaquePointer?
        try Self.check(Int(nghttp2_option_new(&option)), "nghttp2_option_new")
        defer { nghttp2_option_del(option) }
        nghttp2_option_set_no_auto_window_update(option, 1)

        var created: OpaquePointer?
        try Self.check(
            Int(nghttp2_session_server_new2(&created, callbacks, Unmanaged.passUnretained(self).toOpaque(), option)),
            "nghttp2_session_server_new2"
        )
        session = created
        var entries = [
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: settings.maximumConcurrentStreams
            ),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: settings.initialWindowSize
            ),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                value: UInt32(HTTPFrontConfiguration.maximumHeaderBytes)
            ),
        ]
        try Self.check(
            Int(nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count)),
            "nghttp2_submit_settings"
        )
        try Self.check(
            Int(nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, settings.connectionWindowSize)),
            "nghttp2_session_set_local_window_size"
        )
    }

    deinit {
        nghttp2_session_del(session)
    }

    private static func check(_ result: Int, _ operation: String) throws(HTTP2SessionError) {
        guard result >= 0 else { throw HTTP2SessionError(code: result, operation: operation) }
    }

    // MARK: bytes in and out

    /// Parses what the client sent; delegate calls happen inside. A thrown error is fatal for the
    /// connection (bad preface, flooding, an internal failure); protocol errors nghttp2 can name are
    /// not thrown: it queues a GOAWAY and stops wanting to read.
    func receive(_ bytes: ByteBuffer) throws(HTTP2SessionError) {
        precondition(!isBusy, "HTTP2ServerSession.receive re-entered from a callback")
        isBusy = true
        defer { isBusy = false }
        let result = bytes.withUnsafeReadableBytes { raw in
            nghttp2_session_mem_recv(session, raw.bindMemory(to: UInt8.self).baseAddress, raw.count)
        }
        try Self.check(result, "nghttp2_session_mem_recv")
    }

    /// Frames ready to go to the client, up to about `limit` bytes; nil when there are none.
    func takeOutput(limit: Int) throws(HTTP2SessionError) -> ByteBuffer? {
        precondition(!isBusy, "HTTP2ServerSession.takeOutput re-entered from a callback")
        isBusy = true
        defer { isBusy = false }
        var output: ByteBuffer?
        while (output?.readableBytes ?? 0) < limit {
            var data: UnsafePointer<UInt8>?
            let count = nghttp2_session_mem_send(session, &data)
            try Self.check(count, "nghttp2_session_mem_send")
            guard count > 0, let data else { break }
            if output == nil { output = recycler.buffer(capacity: max(count, min(limit, 16 * 1024 + 9))) }
            output!.writeBytes(UnsafeRawBufferPointer(start: data, count: count))
        }
        return output
    }

    /// Neither side has anything more to say (after a GOAWAY, or once the client's went through).
    var isFinished: Bool { nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 }

    // MARK: responses

    /// Submits a response head; with `hasBody` its DATA frames come from `enqueueBody`/`finishBody`,
    /// else the HEADERS frame ends the stream.
    func submitResponse(streamID: Int32, head: HTTP2ResponseHead, hasBody: Bool) throws(HTTP2SessionError) {
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: readResponseBody)
        if hasBody { bodies[streamID] = OutgoingBody() }
        let result = withHeaderList(head) { list, count in
            hasBody
                ? nghttp2_submit_response(session, streamID, list, count, &provider)
                : nghttp2_submit_response(session, streamID, list, count, nil)
        }
        if result < 0 { bodies[streamID] = nil }
        try Self.check(Int(result), "nghttp2_submit_response")
    }

    /// A non-final (1xx) response head, e.g. `100 Continue`.
    func submitInformational(streamID: Int32, head: HTTP2ResponseHead) throws(HTTP2SessionError) {
        let result = withHeaderList(head) { list, count in
            nghttp2_submit_headers(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, nil, list, count, nil)
        }
        try Self.check(Int(result), "nghttp2_submit_headers")
    }

    private func withHeaderList<Result>(
        _ head: HTTP2ResponseHead, _ body: (UnsafePointer<nghttp2_nv>, Int) -> Result
    ) -> Result {
        head.block.withUnsafeReadableBytes { raw in
            // nghttp2 copies names and values on submit and never writes through these pointers (its
            // `nghttp2_nv` just has no `const`): read-only access spares a copy of the shared block.
            let base = UnsafeMutablePointer(mutating: raw.bindMemory(to: UInt8.self).baseAddress!)
            func entry(_ name: Range<Int>, _ value: Range<Int>) -> nghttp2_nv {
                nghttp2_nv(
                    name: base + name.lowerBound, value: base + value.lowerBound,
                    namelen: name.count, valuelen: value.count, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
                )
            }
            // The list is needed only for this call: on the stack, not the heap.
            return withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: head.fields.count + 1) { list in
                list.initializeElement(at: 0, to: entry(HTTP2ResponseHead.statusName, HTTP2ResponseHead.statusValue))
                for (index, field) in head.fields.enumerated() {
                    list.initializeElement(at: index + 1, to: entry(field.name, field.value))
                }
                return body(UnsafePointer(list.baseAddress!), list.count)
            }
        }
    }

    /// Queues response body bytes for a stream submitted with a body.
    func enqueueBody(streamID: Int32, _ bytes: ByteBuffer) {
        guard let body = bodies[streamID], !body.ended, bytes.readableBytes > 0 else { return }
        body.chunks.append(bytes)
        body.queued += bytes.readableBytes
        resumeIfDeferred(streamID, body)
    }

    /// The response body is complete: the last DATA frame carries END_STREAM.
    func finishBody(streamID: Int32) {
        guard let body = bodies[streamID] else { return }
        body.ended = true
        resumeIfDeferred(streamID, body)
    }

    func queuedBodyBytes(streamID: Int32) -> Int { bodies[streamID]?.queued ?? 0 }

    private func resumeIfDeferred(_ streamID: Int32, _ body: OutgoingBody) {
        guard body.deferred else { return }
        body.deferred = false
        nghttp2_session_resume_data(session, streamID)
    }

    /// Called by nghttp2 (inside `takeOutput`) for the next DATA payload of a stream.
    fileprivate func readBody(streamID: Int32, into buffer: UnsafeMutablePointer<UInt8>, capacity: Int,
                              flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let body = bodies[streamID] else {
            // Reset meanwhile: nothing more for this stream.
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        var written = 0
        while written < capacity, var chunk = body.chunks.first {
            let count = min(capacity - written, chunk.readableBytes)
            chunk.withUnsafeReadableBytes { raw in
                (buffer + written).update(from: raw.bindMemory(to: UInt8.self).baseAddress!, count: count)
            }
            chunk.moveReaderIndex(forwardBy: count)
            written += count
            if chunk.readableBytes == 0 {
                body.chunks.removeFirst()
            } else {
                body.chunks.replaceFirst(with: chunk)
            }
        }
        let before = body.queued
        body.queued -= written
        if body.chunks.isEmpty && body.ended {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            bodies[streamID] = nil
        } else if written == 0 {
            body.deferred = true
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        }
        if before >= Self.responseBodyLowWater && body.queued < Self.responseBodyLowWater {
            delegate.http2ResponseBodyDrained(streamID: streamID)
        }
        return written
    }

    // MARK: streams and the connection

    /// Ends a stream with RST_STREAM.
    func resetStream(streamID: Int32, code: HTTP2ErrorCode) {
        bodies[streamID] = nil
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, code.rawValue)
    }

    /// Request body bytes forwarded (or dropped): the client may send that much more.
    func consume(streamID: Int32, count: Int) {
        guard count > 0 else { return }
        if nghttp2_session_consume(session, streamID, count) != 0 {
            // The stream is gone; the connection window still needs the bytes back.
            nghttp2_session_consume_connection(session, count)
        }
    }

    /// GOAWAY with `code`; the session then wants nothing more once it is sent.
    func terminate(_ code: HTTP2ErrorCode) {
        nghttp2_session_terminate_session(session, code.rawValue)
    }

    /// The first half of a graceful shutdown (RFC 9113 §6.8): GOAWAY with the largest stream id, so
    /// the client stops opening streams while those already on their way are still served.
    func submitShutdownNotice() throws(HTTP2SessionError) {
        try Self.check(Int(nghttp2_submit_shutdown_notice(session)), "nghttp2_submit_shutdown_notice")
    }

    /// The second half: GOAWAY (NO_ERROR) naming the last stream passed to the delegate. Streams up to
    /// it finish; nghttp2 ignores new ones, and once none is left the session is finished.
    func submitFinalGoAway() throws(HTTP2SessionError) {
        let lastStreamID = nghttp2_session_get_last_proc_stream_id(session)
        try Self.check(
            Int(nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), lastStreamID, HTTP2ErrorCode.noError.rawValue, nil, 0)),
            "nghttp2_submit_goaway"
        )
    }

    // MARK: callbacks from nghttp2

    fileprivate func beginHeaders(streamID: Int32) {
        var fields: [HTTP2HeaderField] = []
        spareFields.lend(to: &fields)
        headInProgress = (streamID, HTTP2RequestHead(block: recycler.buffer(capacity: 256), fields: consume fields))
    }

    fileprivate func header(streamID: Int32, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
        // Trailer fields (no head in progress) are not kept.
        guard headInProgress?.streamID == streamID else { return }
        headInProgress!.head.append(name: name, value: value)
    }

    fileprivate func headersEnded(streamID: Int32, endStream: Bool) {
        if headInProgress?.streamID == streamID, var (_, head) = headInProgress.take() {
            delegate.http2RequestHeadReceived(streamID: streamID, head: head, endStream: endStream)
            // The delegate routed it and copied what it forwards: the block and the field list can take
            // the next head.
            recycler.recycle(head.block)
            spareFields.keep(&head.fields)
        } else if endStream {
            // Trailers: their fields are not forwarded (HTTP/1.1 instances get a plain end).
            delegate.http2RequestEnded(streamID: streamID)
        }
    }

    fileprivate func dataReceived(streamID: Int32, bytes: UnsafeBufferPointer<UInt8>) {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        delegate.http2RequestBodyReceived(streamID: streamID, bytes: buffer)
    }

    fileprivate func streamClosed(streamID: Int32, errorCode: UInt32) {
        if headInProgress?.streamID == streamID { headInProgress = nil }
        bodies[streamID] = nil
        delegate.http2StreamClosed(streamID: streamID, errorCode: errorCode)
    }

    /// The one way back from nghttp2's user data to the session. nghttp2 calls back only from inside the
    /// session's own calls into it, so the session is alive throughout: it is used without a retain and
    /// release per callback (five header callbacks a stream, and more).
    fileprivate static func with<Result>(
        _ userData: UnsafeMutableRawPointer?, _ body: (HTTP2ServerSession) -> Result
    ) -> Result {
        Unmanaged<HTTP2ServerSession>.fromOpaque(userData!)._withUnsafeGuaranteedRef(body)
    }
}

// The C callbacks: free functions that only unwrap the user data and forward Swift values.

private func onBeginHeaders(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
          frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
    else { return 0 }
    let streamID = frame.pointee.hd.stream_id
    HTTP2ServerSession.with(userData) { $0.beginHeaders(streamID: streamID) }
    return 0
}

private func onHeader(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
    _ name: UnsafePointer<UInt8>?, _ nameLength: Int,
    _ value: UnsafePointer<UInt8>?, _ valueLength: Int,
    _ flags: UInt8, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame, let name, let value else { return 0 }
    let streamID = frame.pointee.hd.stream_id
    HTTP2ServerSession.with(userData) {
        $0.header(
            streamID: streamID,
            name: UnsafeBufferPointer(start: name, count: nameLength),
            value: UnsafeBufferPointer(start: value, count: valueLength)
        )
    }
    return 0
}

private func onFrameReceived(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame else { return 0 }
    let header = frame.pointee.hd
    let endStream = header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
    switch UInt32(header.type) {
    case NGHTTP2_HEADERS.rawValue:
        HTTP2ServerSession.with(userData) { $0.headersEnded(streamID: header.stream_id, endStream: endStream) }
    case NGHTTP2_DATA.rawValue where endStream:
        HTTP2ServerSession.with(userData) { $0.delegate.http2RequestEnded(streamID: header.stream_id) }
    default:
        break
    }
    return 0
}

private func onDataChunkReceived(
    _ session: OpaquePointer?, _ flags: UInt8, _ streamID: Int32,
    _ data: UnsafePointer<UInt8>?, _ length: Int, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let data, length > 0 else { return 0 }
    HTTP2ServerSession.with(userData) {
        $0.dataReceived(streamID: streamID, bytes: UnsafeBufferPointer(start: data, count: length))
    }
    return 0
}

private func onStreamClose(
    _ session: OpaquePointer?, _ streamID: Int32, _ errorCode: UInt32, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    HTTP2ServerSession.with(userData) { $0.streamClosed(streamID: streamID, errorCode: errorCode) }
    return 0
}

private func readResponseBody(
    _ session: OpaquePointer?, _ streamID: Int32, _ buffer: UnsafeMutablePointer<UInt8>?, _ length: Int,
    _ flags: UnsafeMutablePointer<UInt32>?, _ source: UnsafeMutablePointer<nghttp2_data_source>?,
    _ userData: UnsafeMutableRawPointer?
) -> Int {
    guard let buffer, let flags else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
    return HTTP2ServerSession.with(userData) {
        $0.readBody(streamID: streamID, into: buffer, capacity: length, flags: flags)
    }
}

/// The chunks of a response body waiting to be framed, in order. Most responses are one chunk (head
/// and body come in one read from the instance), so the first is held inline and a ring is made only
/// when a second waits behind it: no allocation per stream for the common case (a `CircularBuffer`
/// allocates its storage, 16 slots, as it is made).
struct BodyChunks {
    /// Nil only when `rest` is empty too.
    private var head: ByteBuffer?
    private var rest: CircularBuffer<ByteBuffer>?

    var first: ByteBuffer? { head }
    var isEmpty: Bool { head == nil }

    mutating func append(_ chunk: ByteBuffer) {
        guard head != nil else {
            head = chunk
            return
        }
        if rest == nil { rest = CircularBuffer(initialCapacity: 4) }
        rest!.append(chunk)
    }

    /// The first chunk, partly taken.
    mutating func replaceFirst(with chunk: ByteBuffer) {
        precondition(head != nil, "no first chunk to replace")
        head = chunk
    }

    mutating func removeFirst() {
        head = rest?.popFirst()
    }
}
