import NIOCore
import NIOHTTP1

/// One HTTP/2 stream on its way through a balancer to an instance: the request head and body go out
/// as HTTP/1.1 on a pooled connection (body consumed from the flow-control windows only once the
/// instance connection took it), the response comes back into the session (head, then a body the
/// session sends as the client's windows allow). Connection failures before a response are retried
/// once like HTTP/1 requests, else answered 502/504 on the stream; a reset by the client closes the
/// instance connection. In-flight counts are released exactly once (`ProxyExchange`).
final class HTTP2StreamProxy {
    private enum State {
        /// Answered by the proxy itself (or the answer went out): request body bytes are dropped.
        case local
        case proxying(ProxyExchange)
        case done
    }

    let streamID: Int32
    /// A response to HEAD has no DATA, also when the proxy answers itself.
    let isHeadRequest: Bool
    /// The front owns its streams. Strong: the front drops them all when it leaves its pipeline
    /// (`handlerRemoved`), which ends the cycle, and an `unowned` reference cost an atomic check and a
    /// retain at each use, fifteen times a stream.
    private let front: HTTP2FrontHandler
    private var state = State.done
    private var framing = HTTP2RequestBodyFraming.none
    /// Body received before the instance connection was ready (bounded by the stream's window).
    private var bufferedBody: [ByteBuffer] = []
    /// Bytes written to the instance connection and not yet given back to the client's windows
    /// (given back while the connection is writable).
    private var unconsumed = 0
    private var needsFlush = false
    /// When the instance must have sent a response head (set once the request end is forwarded);
    /// the front's one timer watches every stream's.
    private(set) var responseHeadDeadline: NIODeadline?

    init(streamID: Int32, isHeadRequest: Bool, front: HTTP2FrontHandler) {
        self.streamID = streamID
        self.isHeadRequest = isHeadRequest
        self.front = front
    }

    private var session: HTTP2ServerSession { front.session }
    private var runtime: HTTPProxyRuntime { front.runtime }

    // MARK: request

    func startProxying(_ exchange: ProxyExchange, framing: HTTP2RequestBodyFraming) {
        self.framing = framing
        state = .proxying(exchange)
        connect(exchange)
    }

    func requestBodyReceived(_ bytes: ByteBuffer) {
        guard case .proxying(let exchange) = state, !exchange.requestEndForwarded else {
            session.consume(streamID: streamID, count: bytes.readableBytes)
            return
        }
        guard let connection = exchange.connection else {
            bufferedBody.append(bytes)
            return
        }
        writeBody(bytes, to: connection, exchange: exchange)
        giveBackWindowIfWritable(connection)
    }

    func requestEnded() {
        guard case .proxying(let exchange) = state, !exchange.requestEnded else { return }
        exchange.requestEnded = true
        if let connection = exchange.connection { forwardRequestEnd(to: connection, exchange: exchange) }
    }

    private func writeBody(_ bytes: ByteBuffer, to connection: UpstreamConnection, exchange: ProxyExchange) {
        exchange.bodyPartsForwarded += 1
        unconsumed += bytes.readableBytes
        if framing == .chunked {
            var size = ByteBuffer()
            size.writeString(String(bytes.readableBytes, radix: 16))
            size.writeStaticString("\r\n")
            connection.write(size)
            connection.write(bytes)
            connection.write(Self.crlf)
        } else {
            connection.write(bytes)
        }
        flushUpstreamLater()
    }

    private func forwardRequestEnd(to connection: UpstreamConnection, exchange: ProxyExchange) {
        if framing == .chunked { connection.write(Self.lastChunk) }
        flushUpstreamLater()
        requestEndForwarded(exchange)
    }

    private func requestEndForwarded(_ exchange: ProxyExchange) {
        exchange.requestEndForwarded = true
        if !exchange.responseHeadReceived {
            let deadline = NIODeadline.now() + exchange.routes.upstreamTimeouts.responseHead
            responseHeadDeadline = deadline
            front.watchResponseHead(until: deadline)
        }
    }

    /// Upstream writes are flushed once the client's read is done (`HTTP2FrontHandler.channelReadComplete`).
    private func flushUpstreamLater() {
        guard !needsFlush else { return }
        needsFlush = true
        front.upstreamFlushNeeded(by: self)
    }

    func flushUpstreamIfNeeded() {
        guard needsFlush else { return }
        needsFlush = false
        if case .proxying(let exchange) = state { exchange.connection?.flush() }
    }

    /// Request body bytes that will not be forwarded go back to the client's windows (the connection's
    /// window would otherwise shrink for good).
    private func dropPendingBody() {
        let count = unconsumed + bufferedBody.reduce(0) { $0 + $1.readableBytes }
        unconsumed = 0
        bufferedBody.removeAll()
        session.consume(streamID: streamID, count: count)
    }

    /// Flow control: what the instance connection accepted may be sent again by the client.
    private func giveBackWindowIfWritable(_ connection: UpstreamConnection) {
        guard unconsumed > 0, connection.isWritable else { return }
        session.consume(streamID: streamID, count: unconsumed)
        unconsumed = 0
    }

    // MARK: instance connection

    private func connect(_ exchange: ProxyExchange) {
        let pool = front.loop.pool(for: exchange.instance)
        if let connection = pool.leaseIdle() {
            attach(connection, to: exchange)
            return
        }
        pool.connectNew(
            for: exchange,
            runtime: runtime,
            stillWanted: {
                if case .proxying(let current) = self.state, current === exchange { return true }
                return false  // the stream ended meanwhile
            },
            ready: { connection in
                self.attach(connection, to: exchange)
                self.flushUpstreamIfNeeded()
                self.front.scheduleOutput()
            },
            failed: { failure in
                self.attemptFailed(exchange, failure)
                self.front.scheduleOutput()
            }
        )
    }

    private func attach(_ connection: UpstreamConnection, to exchange: ProxyExchange) {
        exchange.connection = connection
        connection.delegate = self
        connection.requestStarted(isHead: exchange.method == .head)
        if exchange.requestEnded && bufferedBody.isEmpty && framing != .chunked {
            // A whole request without a body (most are): nothing of it can follow to share a flush, and
            // the stream need not wait in the front's list of connections to flush. No body, so no window
            // to give back.
            connection.writeAndFlush(exchange.forwardedHead)
            requestEndForwarded(exchange)
            return
        }
        connection.write(exchange.forwardedHead)
        flushUpstreamLater()
        if !bufferedBody.isEmpty {
            let body = bufferedBody
            bufferedBody.removeAll()
            for part in body { writeBody(part, to: connection, exchange: exchange) }
        }
        if exchange.requestEnded { forwardRequestEnd(to: connection, exchange: exchange) }
        giveBackWindowIfWritable(connection)
    }

    /// Called by the front once `responseHeadDeadline` passed.
    func responseHeadTimedOut() {
        responseHeadDeadline = nil
        guard case .proxying(let exchange) = state, exchange.requestEndForwarded, !exchange.responseHeadReceived else { return }
        attemptFailed(exchange, .responseHeadTimedOut(exchange.routes.timeouts.upstreamResponseHead))
    }

    /// An attempt failed before a response head: retry once elsewhere when the request allows it,
    /// else answer 502/504 on the stream saying which instance and why.
    private func attemptFailed(_ exchange: ProxyExchange, _ failure: UpstreamFailure) {
        responseHeadDeadline = nil
        exchange.connection?.close()
        exchange.connection = nil
        if exchange.moveToAnotherInstance(after: failure, using: &front.loop.random) {
            connect(exchange)
            return
        }
        let message = failure.message(instance: exchange.instance)
        exchange.releaseCounts()
        exchange.responseStatus = Int(failure.status.code)
        record(exchange, note: message)
        // Whatever the client sent or still sends for this stream is dropped (and given back to its windows).
        dropPendingBody()
        sendLocalResponse(status: failure.status, message: message, headOnly: exchange.method == .head)
    }

    /// The client reset the stream or the connection went away: drop the instance connection, keep
    /// counts exact. Every stream ends through here, so `note` is built only when there is an exchange
    /// left to record.
    func abandon(note: @autoclosure () -> String) {
        responseHeadDeadline = nil
        guard case .proxying(let exchange) = state else {
            state = .done
            return
        }
        state = .done
        exchange.connection?.close()
        exchange.connection = nil
        exchange.releaseCounts()
        if exchange.responseStatus == 0 { exchange.responseStatus = 499 }
        record(exchange, note: note())
    }

    func streamClosed(errorCode: UInt32) {
        dropPendingBody()
        abandon(note: "client reset the stream (\(HTTP2ErrorCode(rawValue: errorCode).map { "\($0)" } ?? String(errorCode)))")
        responseHeadDeadline = nil
    }

    func clientBecameWritable() {
        if case .proxying(let exchange) = state { exchange.connection?.resumeReading() }
    }

    func responseBodyDrained() {
        if case .proxying(let exchange) = state { exchange.connection?.resumeReading() }
    }

    // MARK: local answers

    /// Answers the stream from the proxy (421, 404, 400, 431, 405, 502) with a one-line reason.
    func respondLocally(status: HTTPResponseStatus, message: String, domain: String?) {
        front.loop.requestMetrics?.record(domain: "-", status: Int(status.code), duration: nil)
        let body = "\(status.code) \(status.reasonPhrase): \(message)\n"
        if runtime.accessLog.isEnabled {
            runtime.accessLog.record(
                AccessLogEntry(client: front.forwarding.clientAddress, domain: domain, method: "-", path: "-",
                               status: Int(status.code), bytes: body.utf8.count, instance: nil, balancer: nil,
                               start: .now(), note: message)
            )
        }
        sendLocalResponse(status: status, message: message, headOnly: isHeadRequest)
    }

    private func sendLocalResponse(status: HTTPResponseStatus, message: String, headOnly: Bool) {
        state = .local
        let body = ByteBuffer(string: "\(status.code) \(status.reasonPhrase): \(message)\n")
        let head = HTTP2ForwardedHeads.localResponse(
            status: Int(status.code), bodyLength: body.readableBytes, allocator: ByteBufferAllocator()
        )
        do {
            try session.submitResponse(streamID: streamID, head: head, hasBody: !headOnly)
            session.enqueueBody(streamID: streamID, body)
            session.finishBody(streamID: streamID)
        } catch {
            session.resetStream(streamID: streamID, code: .internalError)
        }
    }

    // MARK: access log and metrics

    private func record(_ exchange: ProxyExchange, note: String?) {
        exchange.record(note: note, client: { front.forwarding.clientAddress }, metrics: front.loop.requestMetrics,
                        accessLog: runtime.accessLog)
    }

    private static let lastChunk = ByteBuffer(staticString: "0\r\n\r\n")
    private static let crlf = ByteBuffer(staticString: "\r\n")
}

// MARK: instance connection events

extension HTTP2StreamProxy: UpstreamConnectionDelegate {
    private func current(_ connection: UpstreamConnection) -> ProxyExchange? {
        guard case .proxying(let exchange) = state, exchange.connection === connection else {
            connection.close()
            return nil
        }
        return exchange
    }

    func upstreamInformational(_ connection: UpstreamConnection, head: ByteBuffer) {
        guard current(connection) != nil else { return }
        // "HTTP/1.1 100 …": the status digits follow the version.
        guard let digits = head.getString(at: head.readerIndex + 9, length: 3), let status = Int(digits),
              (100..<200).contains(status), status != 101
        else { return }
        try? session.submitInformational(streamID: streamID, head: HTTP2ResponseHead(status: status))
    }

    func upstreamResponseHead(
        _ connection: UpstreamConnection, head: HTTP1ResponseHead, bytes: ByteBuffer, framing: HTTP1BodyFraming
    ) -> UpstreamBodyDelivery {
        guard let exchange = current(connection) else { return .raw }
        responseHeadDeadline = nil
        if head.status == 101 {
            // Nothing asked for an upgrade: an HTTP/2 stream cannot become a tunnel this way.
            attemptFailed(exchange, .closedBeforeResponse(UnexpectedUpgradeError()))
            return .raw
        }
        exchange.instance.markUp()
        exchange.responseHeadReceived = true
        exchange.responseStatus = head.status
        let recycler = front.loop.recycler
        let response = bytes.withUnsafeReadableBytes { raw in
            HTTP2ForwardedHeads.response(
                head, bytes: raw, framing: framing, block: recycler.buffer(capacity: 256),
                fields: &front.spareResponseFields
            )
        }
        let hasBody: Bool
        switch framing {
        case .none, .length(0): hasBody = false
        default: hasBody = exchange.method != .head
        }
        var refusal: HTTP2SessionError?
        do {
            try session.submitResponse(streamID: streamID, head: response, hasBody: hasBody)
        } catch {
            refusal = error
        }
        // nghttp2 copied the fields on submit: the block and the field list serve the next response.
        recycler.recycle(response.block)
        var fields = (consume response).fields
        front.spareResponseFields.keep(&fields)
        if let refusal {
            session.resetStream(streamID: streamID, code: .internalError)
            abandon(note: "response head refused by HTTP/2: \(refusal)")
        }
        return framing == .chunked ? .decoded : .raw
    }

    func upstreamResponseBody(_ connection: UpstreamConnection, _ bytes: ByteBuffer) {
        guard let exchange = current(connection) else { return }
        exchange.responseBytes += bytes.readableBytes
        session.enqueueBody(streamID: streamID, bytes)
    }

    func upstreamResponseEnd(_ connection: UpstreamConnection) {
        guard let exchange = current(connection) else { return }
        responseHeadDeadline = nil
        session.finishBody(streamID: streamID)
        state = .done
        exchange.releaseCounts()
        exchange.connection = nil
        connection.delegate = nil
        if exchange.requestEndForwarded && connection.isReusable && !exchange.instance.isRetired {
            front.loop.pool(for: exchange.instance).release(connection, idleTimeout: exchange.routes.upstreamTimeouts.idle)
        } else {
            // An answer before the whole request went out leaves the connection mid-request.
            connection.close()
        }
        record(exchange, note: nil)
        // Kept for a retry until now.
        front.loop.recycler.recycle(exchange.forwardedHead)
        // A body the client is still sending is no longer wanted.
        dropPendingBody()
        // The connection has left this stream: its read-complete goes to the pool, so schedule it now.
        front.scheduleOutput()
    }

    func upstreamTunnelBytes(_ connection: UpstreamConnection, _ bytes: ByteBuffer) {
        connection.close()
    }

    func upstreamReadComplete(_ connection: UpstreamConnection) {
        front.scheduleOutput()
    }

    func upstreamWritabilityChanged(_ connection: UpstreamConnection) {
        guard case .proxying(let exchange) = state, exchange.connection === connection else { return }
        giveBackWindowIfWritable(connection)
        front.scheduleOutput()
    }

    func upstreamClosed(_ connection: UpstreamConnection, error: (any Error)?) {
        guard case .proxying(let exchange) = state, exchange.connection === connection else { return }
        if !exchange.responseHeadReceived {
            attemptFailed(exchange, .closedBeforeResponse(error))
        } else {
            // Mid-body: the stream ends with a reset, the connection and the other streams go on.
            exchange.connection = nil
            session.resetStream(streamID: streamID, code: .internalError)
            abandon(note: "instance closed the connection mid-response")
        }
        front.scheduleOutput()
    }

    var upstreamMayRead: Bool {
        front.clientIsWritable && session.queuedBodyBytes(streamID: streamID) < HTTP2ServerSession.responseBodyHighWater
    }
}
