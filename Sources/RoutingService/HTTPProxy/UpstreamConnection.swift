import NIOCore

/// What the delegate wants done with the body of the response whose head it was just given.
enum UpstreamBodyDelivery {
    /// The bytes as they arrive (chunk framing included).
    case raw
    /// Chunk payloads only.
    case decoded
}

/// Receives what a leased upstream connection delivers. Everything runs on the connection's event
/// loop, which is also the client channel's loop.
protocol UpstreamConnectionDelegate: AnyObject {
    /// A 1xx other than 101, as received (head only).
    func upstreamInformational(_ connection: UpstreamConnection, head: ByteBuffer)
    /// A final (or 101) response head; `bytes` holds exactly the head, `head`'s offsets relative to
    /// its reader index; `framing` is the body's as it will be read (none for a response to HEAD).
    func upstreamResponseHead(
        _ connection: UpstreamConnection, head: HTTP1ResponseHead, bytes: ByteBuffer, framing: HTTP1BodyFraming
    ) -> UpstreamBodyDelivery
    func upstreamResponseBody(_ connection: UpstreamConnection, _ bytes: ByteBuffer)
    /// The response ended (for one delimited by close: the instance closed).
    func upstreamResponseEnd(_ connection: UpstreamConnection)
    /// Bytes after a `101`.
    func upstreamTunnelBytes(_ connection: UpstreamConnection, _ bytes: ByteBuffer)
    func upstreamReadComplete(_ connection: UpstreamConnection)
    func upstreamWritabilityChanged(_ connection: UpstreamConnection)
    /// The connection closed or failed before its response ended.
    func upstreamClosed(_ connection: UpstreamConnection, error: (any Error)?)
    /// Whether the upstream may read more now: false while the client cannot take more bytes.
    var upstreamMayRead: Bool { get }
}

/// The instance answered something that is not HTTP/1.x as this proxy reads it.
struct InvalidUpstreamResponseError: Error, CustomStringConvertible {
    let reason: String
    var description: String { "invalid response: \(reason)" }
}

/// One keep-alive HTTP/1.1 connection to an instance, owned by its pool when idle and by one
/// proxy exchange while leased. Requests go out as bytes the proxy wrote; responses come back parsed
/// in place by `UpstreamResponseHandler`.
final class UpstreamConnection {
    let channel: any Channel
    let instance: UpstreamInstance
    /// Strong (a weak reference would make every retain of the proxy handler take the slow path);
    /// cleared whenever the connection changes hands or closes, which ends the cycle.
    var delegate: (any UpstreamConnectionDelegate)?
    private(set) var isClosed = false
    /// Closes the connection once it has idled in its pool too long (armed by the pool on release,
    /// made then: a connection that is never pooled does without).
    private var idleTimer: DeadlineTimer?
    /// Cleared when the handler leaves the (closed) channel's pipeline.
    fileprivate var handler: UpstreamResponseHandler?

    init(channel: any Channel, instance: UpstreamInstance) {
        self.channel = channel
        self.instance = instance
        self.isWritable = channel.isWritable
    }

    deinit {
        idleTimer?.cancel()
    }

    /// Closes the connection after `timeout` unless leased again first (`disarmIdleTimer()`).
    func armIdleTimer(in timeout: TimeAmount, on timers: TimerQueue) {
        if idleTimer == nil {
            idleTimer = DeadlineTimer(queue: timers) { [unowned self] in self.close() }
        }
        idleTimer?.arm(in: timeout)
    }

    func disarmIdleTimer() {
        idleTimer?.disarm()
    }

    static func attach(to channel: any Channel, instance: UpstreamInstance) throws -> UpstreamConnection {
        let connection = UpstreamConnection(channel: channel, instance: instance)
        let handler = UpstreamResponseHandler(connection: connection)
        connection.handler = handler
        try channel.pipeline.syncOperations.addHandler(handler)
        return connection
    }

    /// The channel's writability as its last writability event left it: asked on every client read, and
    /// a stored flag costs none of the calls and reference counting that asking the channel does.
    private(set) var isWritable: Bool

    /// Whether the last response left the connection fit for another request (framed, not asked to close).
    var isReusable: Bool { handler?.isReusable ?? false }

    /// Tells the response parser about the request about to be written: a response to HEAD has no body.
    func requestStarted(isHead: Bool) {
        handler?.expectResponse(toHead: isHead)
    }

    /// Written from the handler's place in the pipeline: the bytes skip the hops from the tail.
    func write(_ bytes: ByteBuffer) {
        if let handler { handler.write(bytes) } else { channel.write(bytes, promise: nil) }
    }

    func flush() {
        if let handler { handler.flush() } else { channel.flush() }
    }

    func writeAndFlush(_ bytes: ByteBuffer) {
        if let handler { handler.writeAndFlush(bytes) } else { channel.writeAndFlush(bytes, promise: nil) }
    }

    /// Half-closes towards the instance (a tunnel whose client stopped sending).
    func closeOutput() { channel.close(mode: .output, promise: nil) }

    /// Reads again if a read was held back while the client was not writable.
    func resumeReading() { handler?.resumeReading() }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        idleTimer?.cancel()
        delegate = nil
        channel.close(promise: nil)
    }

    fileprivate func writabilityChanged(to writable: Bool) {
        isWritable = writable
        delegate?.upstreamWritabilityChanged(self)
    }

    fileprivate func closed(error: (any Error)?) {
        let wasClosed = isClosed
        isClosed = true
        idleTimer?.cancel()
        if !wasClosed || error != nil { delegate?.upstreamClosed(self, error: error) }
        delegate = nil
    }
}

/// The one handler of an instance connection: parses responses in place (head, then the body's
/// framing), hands them to the delegate, and after a `101` passes bytes through. Holds reads back
/// while the delegate's client is not writable.
private final class UpstreamResponseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case awaitingHead
        case body(HTTP1BodyProgress, UpstreamBodyDelivery)
        case tunnel
        /// The response ended; anything more before the next request is a protocol error.
        case idle
    }

    /// Larger response heads are refused.
    private static let maximumHeadBytes = 64 * 1024

    /// Strong: after the proxy lets go of a closing connection, its last events still need it. The
    /// cycle through the channel ends when the closed channel's pipeline drops its handlers.
    private let connection: UpstreamConnection
    private var context: ChannelHandlerContext?
    private var readPending = false
    private var state = State.idle
    private var responseToHead = false
    private var input: ByteBuffer?
    private var head = HTTP1ResponseHead()
    private(set) var isReusable = true

    init(connection: UpstreamConnection) {
        self.connection = connection
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        connection.handler = nil
    }

    func expectResponse(toHead: Bool) {
        responseToHead = toHead
        if case .idle = state { state = .awaitingHead }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard connection.delegate != nil else {
            // Bytes on an idle instance connection: it is out of step, so it cannot be reused.
            connection.close()
            return
        }
        if var pending = input {
            input = nil
            pending.writeBuffer(&bytes)
            bytes = pending
        }
        do {
            try process(&bytes)
        } catch {
            isReusable = false
            connection.closed(error: error)
            context.close(promise: nil)
            return
        }
        if bytes.readableBytes > 0 { input = bytes }
    }

    private func process(_ bytes: inout ByteBuffer) throws {
        while bytes.readableBytes > 0 {
            guard let delegate = connection.delegate else { return }
            switch state {
            case .idle:
                throw InvalidUpstreamResponseError(reason: "bytes after the end of a response")
            case .tunnel:
                delegate.upstreamTunnelBytes(connection, bytes.readSlice(length: bytes.readableBytes)!)
            case .awaitingHead:
                let end = try bytes.withUnsafeReadableBytes { raw throws(HTTP1ParseError) in
                    try HTTP1Bytes.headEnd(in: raw, from: 0)
                }
                guard let end else {
                    if bytes.readableBytes > Self.maximumHeadBytes {
                        throw InvalidUpstreamResponseError(reason: "response head larger than 64 KiB")
                    }
                    return
                }
                do {
                    try bytes.withUnsafeReadableBytes { raw throws(HTTP1ParseError) in
                        try HTTP1HeadParser.parseResponse(raw, length: end, into: &head)
                    }
                } catch {
                    throw InvalidUpstreamResponseError(reason: error.reason)
                }
                let headBytes = bytes.readSlice(length: end)!
                if head.status == 101 {
                    state = .tunnel
                    isReusable = false
                    _ = delegate.upstreamResponseHead(connection, head: head, bytes: headBytes, framing: .none)
                } else if head.status < 200 {
                    delegate.upstreamInformational(connection, head: headBytes)
                } else {
                    let framing = responseToHead ? .none : head.framing
                    if head.wantsClose || framing == .untilClose { isReusable = false }
                    let delivery = delegate.upstreamResponseHead(connection, head: head, bytes: headBytes, framing: framing)
                    let progress = HTTP1BodyProgress(framing)
                    if progress.isFinished {
                        finishResponse()
                    } else {
                        state = .body(progress, delivery)
                    }
                }
            case .body(var progress, let delivery):
                let consumed: Int
                switch delivery {
                case .raw:
                    consumed = try bytes.withUnsafeReadableBytes { raw throws(HTTP1ParseError) in try progress.consume(raw) }
                    if consumed > 0 { delegate.upstreamResponseBody(connection, bytes.readSlice(length: consumed)!) }
                case .decoded:
                    var payloads: [Range<Int>] = []
                    consumed = try bytes.withUnsafeReadableBytes { raw throws(HTTP1ParseError) in
                        try progress.consume(raw) { payloads.append($0) }
                    }
                    let base = bytes.readerIndex
                    for payload in payloads where !payload.isEmpty {
                        delegate.upstreamResponseBody(
                            connection, bytes.getSlice(at: base + payload.lowerBound, length: payload.count)!
                        )
                    }
                    bytes.moveReaderIndex(forwardBy: consumed)
                }
                if progress.isFinished {
                    finishResponse()
                } else {
                    state = .body(progress, delivery)
                }
            }
        }
    }

    private func finishResponse() {
        state = .idle
        connection.delegate?.upstreamResponseEnd(connection)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        connection.delegate?.upstreamReadComplete(connection)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection.writabilityChanged(to: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isReusable = false
        if case .body(let progress, _) = state, !progress.isFinished, progress.isDelimitedByClose {
            // The close is the end of this response.
            finishResponse()
        }
        connection.closed(error: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        isReusable = false
        connection.closed(error: error)
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if connection.delegate?.upstreamMayRead ?? true {
            context.read()
        } else {
            readPending = true
        }
    }

    func write(_ bytes: ByteBuffer) {
        if let context {
            context.write(wrapOutboundOut(bytes), promise: nil)
        } else {
            connection.channel.write(bytes, promise: nil)
        }
    }

    func flush() {
        if let context { context.flush() } else { connection.channel.flush() }
    }

    func writeAndFlush(_ bytes: ByteBuffer) {
        if let context {
            context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
        } else {
            connection.channel.writeAndFlush(bytes, promise: nil)
        }
    }

    func resumeReading() {
        guard readPending, let context else { return }
        readPending = false
        context.read()
    }
}
