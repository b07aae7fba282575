import NIOCore
import NIOHTTP1

/// The HTTP/1.x front of one client connection, working on the connection's bytes: finds each request
/// head and parses it in place, routes it (SNI and Host checked against the routing table), answers
/// locally (redirects, 404, 421, ACME, errors) or proxies it through one of the balancers to an
/// instance, forwarding the header lines it does not change and the body as the bytes that came,
/// with backpressure both ways; answers pipelined requests in order; relays bytes after a WebSocket
/// `101`. It also owns the connection's client timeouts (slow head, idle between requests), and its
/// drain at shutdown (`startDraining`).
final class HTTP1FrontHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        /// Waiting for (the rest of) the next request head.
        case awaitingHead
        /// Answered locally; dropping the rest of the request body.
        case discardingBody(HTTP1BodyProgress)
        case proxying(ProxyExchange)
        /// After a `101`: bytes both ways.
        case tunnel(UpstreamConnection)
        /// The connection is closing.
        case closed
    }

    // Members are ordered so that little is padding (each connection holds one handler): the small
    // ones fill the gaps after `state` and after the request head.
    private let runtime: HTTPProxyRuntime
    private let headerTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    /// The event loop's proxy state. A constant, given at creation: read many times per request, and a
    /// `var` would be retained and released around each use.
    private let loop: ProxyEventLoopContext
    private var context: ChannelHandlerContext?
    private var state = State.awaitingHead
    /// `headSearchOffset`'s storage (it stays below the head size limit plus one read).
    private var headSearchOffsetStorage: UInt32 = 0
    private var serverName: String?
    private var forwarding: ForwardingContext
    /// Bytes received and not yet handled: a partial head, or what a pipelining client sent ahead.
    private var input: ByteBuffer?
    /// Parsed in place; its field storage is reused request after request.
    private var request = HTTP1RequestHead()
    /// The current request's client wants the connection closed after the response.
    private var closeAfterResponse = false
    /// The client half-closed: finish the response in progress, then close.
    private var clientInputClosed = false
    /// The gateway is stopping: the response in progress is the last one (it says `Connection: close`).
    private var draining = false
    private var pendingRead = false
    private var upstreamNeedsFlush = false
    /// Response bytes were written to the client and not flushed yet (flushed when the instance's read ends).
    private var clientNeedsFlush = false
    /// The client channel's writability as its last writability event left it (asked on every instance read).
    private var clientIsWritable = true
    private var processing = false
    private let mode: HTTPFrontMode
    /// The last proxied request's Host and route, under the routing snapshot that gave it: a keep-alive
    /// connection asks for the same host again and again, and the answer cannot change without a new
    /// snapshot (TLS mode only: on the plain listener the answer also depends on the path and on
    /// whether a certificate exists yet).
    private var lastRoute: RouteMemo?
    /// The response head, and body bytes that came in the same read, not yet written: one write per
    /// read instead of one per part (the TLS handler then encrypts it without copying it together).
    private var pendingResponse: ByteBuffer?
    /// The forwarding headers last appended for a request that carried none of its own, by Host.
    private var forwardingCache = ForwardingFieldsCache()
    /// The slow-head and idle timeouts (one timer: exactly one of them applies at any time).
    private var clientTimer: DeadlineTimer?
    /// The current exchange's instance must send a response head before this fires (armed once the
    /// request end is forwarded). One timer per connection, re-armed per request.
    private var responseHeadTimer: DeadlineTimer?

    /// How far `input` was already searched for the end of a head.
    private var headSearchOffset: Int {
        get { Int(headSearchOffsetStorage) }
        set { headSearchOffsetStorage = UInt32(newValue) }
    }

    init(mode: HTTPFrontMode, runtime: HTTPProxyRuntime, loop: ProxyEventLoopContext) {
        self.mode = mode
        self.runtime = runtime
        self.loop = loop
        let timeouts = runtime.routes.snapshot.timeouts
        self.headerTimeout = timeouts.requestHeader.timeAmount
        self.idleTimeout = timeouts.clientIdle.timeAmount
        self.forwarding = ForwardingContext(clientAddress: nil, scheme: mode.scheme)
    }

    deinit {
        responseHeadTimer?.cancel()
        clientTimer?.cancel()
    }

    // MARK: client channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        clientIsWritable = context.channel.isWritable
        clientTimer = DeadlineTimer(queue: loop.timers) { [unowned context] in context.close(promise: nil) }
        if context.channel.isActive { connectionStarted(context: context) }
        loop.fronts.insert(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        loop.fronts.remove(self)
        self.context = nil
        responseHeadTimer?.cancel()
        clientTimer?.cancel()
    }

    func channelActive(context: ChannelHandlerContext) {
        connectionStarted(context: context)
        context.fireChannelActive()
        // Told to drain before it was even active (accepted as the listener closed).
        if draining { closeIfIdle(context: context) }
    }

    private func connectionStarted(context: ChannelHandlerContext) {
        guard forwarding.clientAddress == nil else { return }
        forwarding.clientAddress = context.channel.remoteAddress?.ipAddress
        // A fresh connection gets the header timeout: a client that connects and says nothing is slow.
        clientTimer?.arm(in: headerTimeout)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let handshake = event as? TLSHandshakeCompletedEvent {
            if handshake.alpnProtocol == ALPNProtocol.http2.description {
                // The client speaks HTTP/2: its front takes this handler's place for the connection.
                return HTTP2FrontHandler.replace(self, context: context, runtime: runtime, loop: loop, handshake: handshake)
            }
            serverName = handshake.serverName
        } else if let event = event as? ChannelEvent, event == .inputClosed {
            clientHalfClosed(context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if case .tunnel(let connection) = state {
            connection.write(bytes)
            upstreamNeedsFlush = true
            return
        }
        if var pending = input {
            input = nil  // `pending` alone holds the storage: appending does not copy it
            pending.writeBuffer(&bytes)
            input = pending
        } else {
            input = bytes
            if case .awaitingHead = state {
                // The first byte of a head starts its timeout (the idle one ends).
                clientTimer?.arm(in: headerTimeout)
            }
        }
        processInput(context: context)
        // TLS mode: the plaintext came from the loop's recycler. (On the plain listener `bytes` is NIO's
        // receive buffer, which the channel reuses itself once nothing else holds it.)
        if mode == .tls && input == nil { loop.recycler.recycle(bytes) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushUpstreamIfNeeded()
        context.fireChannelReadComplete()
    }

    /// Backpressure towards the client: read only while the instance connection can take more, and
    /// while no next request waits behind the one in progress.
    func read(context: ChannelHandlerContext) {
        switch state {
        case .proxying(let exchange):
            let waitingBehind = exchange.requestEnded && (input?.readableBytes ?? 0) > 0
            if waitingBehind || !(exchange.connection?.isWritable ?? false) {
                pendingRead = true
                return
            }
        case .tunnel(let connection):
            if !connection.isWritable {
                pendingRead = true
                return
            }
        case .awaitingHead, .discardingBody, .closed:
            break
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        clientIsWritable = context.channel.isWritable
        if clientIsWritable {
            switch state {
            case .proxying(let exchange): exchange.connection?.resumeReading()
            case .tunnel(let connection): connection.resumeReading()
            default: break
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        responseHeadTimer?.cancel()
        clientTimer?.cancel()
        switch state {
        case .proxying(let exchange):
            abandon(exchange, note: "client closed the connection")
        case .tunnel(let connection):
            connection.close()
        default:
            break
        }
        state = .closed
        input = nil
        pendingResponse = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .proxying(let exchange) = state { abandon(exchange, note: "client connection failed: \(error)") }
        if case .tunnel(let connection) = state { connection.close() }
        state = .closed
        context.close(promise: nil)
    }

    private func clientHalfClosed(context: ChannelHandlerContext) {
        clientInputClosed = true
        switch state {
        case .tunnel(let connection):
            flushUpstreamIfNeeded()
            connection.closeOutput()
        case .proxying(let exchange) where !exchange.requestEnded:
            // The body can never be completed: the instance would wait for it forever.
            abandon(exchange, note: "client stopped sending in the middle of the request body")
            state = .closed
            context.close(promise: nil)
        case .proxying:
            // The response in progress still goes out; the connection closes after it.
            break
        case .awaitingHead, .discardingBody, .closed:
            state = .closed
            context.close(promise: nil)
        }
    }

    // MARK: input

    /// Handles what `input` holds as far as the state allows; re-entered calls (a local answer that
    /// finishes a request while this runs) just let the loop go on.
    private func processInput(context: ChannelHandlerContext) {
        guard !processing else { return }
        processing = true
        defer {
            processing = false
            flushUpstreamIfNeeded()
        }
        while var bytes = input, bytes.readableBytes > 0 {
            switch state {
            case .awaitingHead:
                guard let ready = findHead(in: &bytes, context: context) else { return }
                input = bytes
                guard ready else { return }
                headReceived(context: context)
            case .proxying(let exchange) where !exchange.requestEnded:
                guard let body = takeBody(from: &bytes, progress: &exchange.requestBody, context: context) else { return }
                input = bytes
                if exchange.requestBody.isFinished { exchange.requestEnded = true }
                if let connection = exchange.connection {
                    if body.readableBytes > 0 {
                        exchange.bodyPartsForwarded += 1
                        connection.write(body)
                        upstreamNeedsFlush = true
                    }
                    if exchange.requestEnded { requestEndForwarded(exchange) }
                } else if body.readableBytes > 0 {
                    exchange.bufferedBody.append(body)
                }
            case .discardingBody(var progress):
                guard takeBody(from: &bytes, progress: &progress, context: context) != nil else { return }
                input = bytes
                if progress.isFinished {
                    prepareForNextRequest()
                } else {
                    state = .discardingBody(progress)
                }
            case .proxying, .tunnel, .closed:
                // A pipelined request waits until the response in progress ends.
                return
            }
            if input?.readableBytes == 0 { input = nil }
        }
        input = nil
    }

    /// Looks for a complete head at the start of `bytes`: true when `request` holds it (its bytes still
    /// in `bytes`), false when more must arrive, nil when the client was refused.
    private func findHead(in bytes: inout ByteBuffer, context: ChannelHandlerContext) -> Bool? {
        do throws(HTTP1ParseError) {
            if headSearchOffset == 0 {
                let blank = bytes.withUnsafeReadableBytes { HTTP1Bytes.leadingEmptyLines(in: $0) }
                bytes.moveReaderIndex(forwardBy: blank)
                if bytes.readableBytes == 0 { return false }
            }
            let searchFrom = max(0, headSearchOffset - 3)
            let end = try bytes.withUnsafeReadableBytes { raw throws(HTTP1ParseError) in
                try HTTP1Bytes.headEnd(in: raw, from: searchFrom)
            }
            guard let end else {
                headSearchOffset = bytes.readableBytes
                if bytes.readableBytes > HTTPFrontConfiguration.maximumHeaderBytes {
                    throw HTTP1ParseError(
                        kind: .headTooLarge,
                        reason: "the request header section is larger than \(HTTPFrontConfiguration.maximumHeaderBytes / 1024) KiB"
                    )
                }
                return false
            }
            headSearchOffset = 0
            guard end <= HTTPFrontConfiguration.maximumHeaderBytes else {
                throw HTTP1ParseError(
                    kind: .headTooLarge,
                    reason: "the request header section is larger than \(HTTPFrontConfiguration.maximumHeaderBytes / 1024) KiB"
                )
            }
            try bytes.withUnsafeReadableBytes { raw throws(HTTP1ParseError) in
                try HTTP1HeadParser.parseRequest(raw, length: end, into: &request)
            }
            return true
        } catch {
            refuse(error, context: context)
            return nil
        }
    }

    /// The next piece of a request body from `bytes` (possibly empty); nil when the body is malformed
    /// (the client was refused).
    private func takeBody(from bytes: inout ByteBuffer, progress: inout HTTP1BodyProgress, context: ChannelHandlerContext) -> ByteBuffer? {
        do throws(HTTP1ParseError) {
            let count = try bytes.withUnsafeReadableBytes { raw throws(HTTP1ParseError) in try progress.consume(raw) }
            return bytes.readSlice(length: count)!
        } catch {
            refuse(error, context: context)
            return nil
        }
    }

    /// A request the proxy cannot trust past this point (no smuggling): answer and close.
    private func refuse(_ error: HTTP1ParseError, context: ChannelHandlerContext) {
        var responseStarted = false
        switch state {
        case .proxying(let exchange):
            responseStarted = exchange.responseHeadReceived
            abandon(exchange, note: "client sent a malformed request: \(error.reason)")
        case .discardingBody:
            responseStarted = true
        case .awaitingHead, .tunnel, .closed:
            break
        }
        state = .closed
        input = nil
        guard !responseStarted else {
            context.close(promise: nil)
            return
        }
        let status = HTTPResponseStatus(statusCode: error.status)
        writeLocalResponse(status: status, body: "\(status.code) \(status.reasonPhrase): \(error.reason)\n", close: true,
                           headOnly: false, context: context)
        loop.requestMetrics?.record(domain: "-", status: error.status, duration: nil)
        runtime.accessLog.record(
            AccessLogEntry(client: forwarding.clientAddress, domain: nil, method: "-", path: "-", status: error.status,
                           bytes: 0, instance: nil, balancer: nil, start: .now(), note: error.reason)
        )
    }

    // MARK: routing

    /// `request` holds a complete head whose bytes start `input`.
    private func headReceived(context: ChannelHandlerContext) {
        clientTimer?.disarm()
        closeAfterResponse = request.wantsClose || draining
        let routes = loop.routes(from: runtime.routes)
        let head = input!
        let (host, target) = head.withUnsafeReadableBytes { raw in
            (
                request.host.map { String(decoding: UnsafeRawBufferPointer(rebasing: raw[$0]), as: UTF8.self) },
                // Only the plain listener routes by path (ACME challenges, redirects).
                mode == .plain ? String(decoding: UnsafeRawBufferPointer(rebasing: raw[request.target]), as: UTF8.self) : ""
            )
        }
        if mode == .tls, let last = lastRoute, let host, last.matches(routes: routes, host: host) {
            startProxying(route: last.route, routes: routes, host: host, context: context)
            return
        }
        let disposition = RequestRouter.disposition(
            table: routes.table,
            mode: mode,
            serverName: serverName,
            host: host,
            uri: target,
            canServeTLS: runtime.canServeTLS
        )
        switch disposition {
        case .proxy(let route):
            if mode == .tls, let host { lastRoute = RouteMemo(routes: routes, host: host, route: route) }
            startProxying(route: route, routes: routes, host: host, context: context)
        case .redirect(let location):
            respondLocally(status: .permanentRedirect, body: "Redirecting to \(location)\n",
                           headers: [("Location", location)], domain: host, context: context)
        case .acmeChallenge(let token):
            if let keyAuthorization = runtime.acmeResponder.keyAuthorization(forToken: token, host: host) {
                respondLocally(status: .ok, body: keyAuthorization, domain: host, context: context)
            } else {
                respondLocally(status: .notFound, body: "no challenge\n", domain: host, context: context)
            }
        case .misdirected(let reason):
            respondLocally(status: .misdirectedRequest, body: "421 Misdirected Request: \(reason)\n",
                           domain: host, context: context)
        case .unknownHost(let name):
            respondLocally(status: .notFound, body: "404 Not Found: no route for host \(name)\n",
                           domain: host, context: context)
        case .missingHost:
            respondLocally(status: .badRequest, body: "400 Bad Request: missing or empty Host header\n",
                           domain: nil, context: context)
        }
    }

    /// Method and target as text for the access log, only when it writes them.
    private func logLine() -> (method: String, target: String)? {
        guard runtime.accessLog.isEnabled, let head = input else { return nil }
        return head.withUnsafeReadableBytes { raw in
            (
                String(decoding: UnsafeRawBufferPointer(rebasing: raw[request.methodRange]), as: UTF8.self),
                String(decoding: UnsafeRawBufferPointer(rebasing: raw[request.target]), as: UTF8.self)
            )
        }
    }

    // MARK: proxying

    private func startProxying(route: DomainRoute, routes: ProxyRoutes, host: String?, context: ChannelHandlerContext) {
        let balancer = runtime.balancers.leastBusy(using: &loop.random)
        let candidates = routes.instances(balancer: balancer, group: route.upstream)
        let now = NIODeadline.now()
        guard let instance = balancer.pickInstance(from: candidates, excluding: nil, now: now, using: &loop.random) else {
            let message = "service \(route.upstream.service) has no instances for port \(route.upstream.port)"
            respondLocally(status: .badGateway, body: "502 Bad Gateway: \(message)\n",
                           domain: route.domain.value, note: message, context: context)
            return
        }
        var head = input!
        // One copy for the whole function: the closures below would otherwise copy the stored head (and
        // retain its field list) at each use.
        let request = self.request
        var forwarded = loop.recycler.buffer(capacity: request.length + 256)
        head.withUnsafeReadableBytes { raw in
            let appendix = ForwardedHeadWriter.writeRequestLineAndFields(request, bytes: raw, into: &forwarded)
            guard appendix.dependsOnlyOnHost, request.framing != .chunked, !request.isWebSocketUpgrade else {
                ForwardedHeadWriter.writeAppendix(appendix, of: request, bytes: raw, context: forwarding, into: &forwarded)
                return
            }
            forwardingCache.write(forHost: host, into: &forwarded) { bytes in
                ForwardedHeadWriter.writeAppendix(appendix, of: request, bytes: raw, context: forwarding, into: &bytes)
            }
        }
        let exchange = ProxyExchange(
            request: request,
            forwardedHead: forwarded,
            logLine: logLine(),
            route: route,
            routes: routes,
            balancer: balancer,
            instance: instance,
            start: now
        )
        head.moveReaderIndex(forwardBy: request.length)
        input = head
        state = .proxying(exchange)
        connect(exchange, context: context)
    }

    private func connect(_ exchange: ProxyExchange, context: ChannelHandlerContext) {
        let pool = loop.pool(for: exchange.instance)
        if let connection = pool.leaseIdle() {
            attach(connection, to: exchange, context: context)
            return
        }
        pool.connectNew(
            for: exchange,
            runtime: runtime,
            stillWanted: {
                if case .proxying(let current) = self.state, current === exchange { return true }
                return false  // the client left meanwhile
            },
            ready: { connection in
                self.attach(connection, to: exchange, context: context)
                self.flushUpstreamIfNeeded()
            },
            failed: { failure in self.attemptFailed(exchange, failure, context: context) }
        )
    }

    private func attach(_ connection: UpstreamConnection, to exchange: ProxyExchange, context: ChannelHandlerContext) {
        exchange.connection = connection
        connection.delegate = self
        connection.requestStarted(isHead: exchange.method == .head)
        if exchange.requestEnded && exchange.bufferedBody.isEmpty {
            // A whole request without a body (most are): nothing of it can follow to share a flush, and one
            // pass down the instance's pipeline instead of two.
            connection.writeAndFlush(exchange.forwardedHead)
            requestEndForwarded(exchange)
        } else {
            connection.write(exchange.forwardedHead)
            for body in exchange.bufferedBody {
                exchange.bodyPartsForwarded += 1
                connection.write(body)
            }
            exchange.bufferedBody.removeAll()
            if exchange.requestEnded { requestEndForwarded(exchange) }
            upstreamNeedsFlush = true
        }
        if pendingRead && connection.isWritable {
            pendingRead = false
            context.read()
        }
    }

    private func requestEndForwarded(_ exchange: ProxyExchange) {
        exchange.requestEndForwarded = true
        guard !exchange.responseHeadReceived, context != nil else { return }
        if responseHeadTimer == nil {
            // Made on first use: a connection that never proxies (idle, local answers) does without.
            responseHeadTimer = DeadlineTimer(queue: loop.timers) { [unowned self] in
                self.responseHeadTimedOut()
            }
        }
        responseHeadTimer?.arm(in: exchange.routes.upstreamTimeouts.responseHead)
    }

    private func flushUpstreamIfNeeded() {
        guard upstreamNeedsFlush else { return }
        upstreamNeedsFlush = false
        switch state {
        case .proxying(let exchange): exchange.connection?.flush()
        case .tunnel(let connection): connection.flush()
        default: break
        }
    }

    private func responseHeadTimedOut() {
        // Armed for the exchange in progress; anything else means the timer outlived its exchange.
        guard case .proxying(let exchange) = state, exchange.requestEndForwarded, !exchange.responseHeadReceived,
              let context
        else { return }
        attemptFailed(exchange, .responseHeadTimedOut(exchange.routes.timeouts.upstreamResponseHead), context: context)
    }

    /// An attempt at an instance failed before a response head: retry once elsewhere when the request
    /// allows it, else answer 502/504 saying which instance and why.
    private func attemptFailed(_ exchange: ProxyExchange, _ failure: UpstreamFailure, context: ChannelHandlerContext) {
        responseHeadTimer?.disarm()
        exchange.connection?.close()
        exchange.connection = nil

        if exchange.moveToAnotherInstance(after: failure, using: &loop.random) {
            connect(exchange, context: context)
            return
        }

        let message = failure.message(instance: exchange.instance)
        let status = failure.status
        exchange.releaseCounts()
        exchange.responseStatus = Int(status.code)
        record(exchange, note: message)
        if exchange.requestEnded && !closeAfterResponse {
            state = .awaitingHead
        } else {
            state = .discardingBody(exchange.requestBody)
        }
        writeLocalResponse(
            status: status,
            body: "\(status.code) \(status.reasonPhrase): \(message)\n",
            close: closeAfterResponse,
            headOnly: exchange.method == .head,
            context: context
        )
        requestCompleted(context: context)
    }

    /// The client went away or sent garbage mid-exchange: drop the instance connection, keep counts exact.
    private func abandon(_ exchange: ProxyExchange, note: String) {
        responseHeadTimer?.disarm()
        exchange.connection?.close()
        exchange.connection = nil
        exchange.releaseCounts()
        if exchange.responseStatus == 0 { exchange.responseStatus = 499 }
        record(exchange, note: note)
    }

    private func responseFinished(_ exchange: ProxyExchange, context: ChannelHandlerContext) {
        exchange.releaseCounts()
        if exchange.responseRelay == .encodeChunks {
            writePendingResponse(context: context)
            context.write(wrapOutboundOut(Self.lastChunk), promise: nil)
        }
        if let connection = exchange.connection {
            exchange.connection = nil
            connection.delegate = nil
            if exchange.requestEndForwarded && connection.isReusable && !exchange.instance.isRetired {
                loop.pool(for: exchange.instance).release(connection, idleTimeout: exchange.routes.upstreamTimeouts.idle)
            } else {
                connection.close()
            }
        }
        record(exchange, note: nil)
        // Kept for a retry until now.
        loop.recycler.recycle(exchange.forwardedHead)
        // A response that ends before its request (an early answer) leaves the request body unframed: close.
        let close = closeAfterResponse || exchange.responseCloseDelimited || !exchange.requestEnded || clientInputClosed
        clientNeedsFlush = false  // both ways below flush
        if close {
            writePendingResponse(context: context)
            state = .closed
            closeAfterFlush(context: context)
        } else {
            flushResponse(context: context)
            state = .awaitingHead
            requestCompleted(context: context)
        }
    }

    private func record(_ exchange: ProxyExchange, note: String?) {
        exchange.record(note: note, client: { forwarding.clientAddress }, metrics: loop.requestMetrics,
                        accessLog: runtime.accessLog)
    }

    // MARK: WebSocket

    /// A `101` answered a WebSocket upgrade: pass it on, and from here relay bytes both ways.
    private func upgradeAccepted(_ exchange: ProxyExchange, connection: UpstreamConnection, head: HTTP1ResponseHead,
                                 bytes: ByteBuffer, context: ChannelHandlerContext) {
        var response = context.channel.allocator.buffer(capacity: bytes.readableBytes + 32)
        bytes.withUnsafeReadableBytes { raw in
            ForwardedHeadWriter.writeResponse(head, framing: .none, bytes: raw, relay: .none, clientMinorVersion: 1,
                                              closeAfter: false, into: &response)
        }
        exchange.responseHeadReceived = true
        exchange.responseStatus = 101
        exchange.connection = nil
        exchange.releaseCounts()
        record(exchange, note: nil)
        state = .tunnel(connection)
        context.writeAndFlush(wrapOutboundOut(response), promise: nil)
        runtime.longLivedConnections.register(context.channel, domain: exchange.route.domain, upstream: exchange.instance.endpoint)
        // A tunnel has no request boundary to stop at: the drain deadline bounds it, not the drain.
        loop.fronts.remove(self)
        // What the client sent after its upgrade request goes on now.
        if let early = input, early.readableBytes > 0 {
            connection.write(early)
            upstreamNeedsFlush = true
        }
        input = nil
        if pendingRead && connection.isWritable {
            pendingRead = false
            context.read()
        }
    }

    // MARK: local responses

    private func respondLocally(
        status: HTTPResponseStatus,
        body: String,
        headers: [(String, String)] = [],
        domain: String?,
        note: String? = nil,
        context: ChannelHandlerContext
    ) {
        loop.requestMetrics?.record(domain: "-", status: Int(status.code), duration: nil)
        if runtime.accessLog.isEnabled {
            let line = logLine()
            runtime.accessLog.record(
                AccessLogEntry(client: forwarding.clientAddress, domain: domain, method: line?.method ?? "-",
                               path: line?.target ?? "-", status: Int(status.code), bytes: body.utf8.count,
                               instance: nil, balancer: nil, start: .now(), note: note)
            )
        }
        let headOnly = request.method == .head
        input?.moveReaderIndex(forwardBy: request.length)
        state = .discardingBody(HTTP1BodyProgress(request.framing))
        writeLocalResponse(status: status, body: body, headers: headers, close: closeAfterResponse,
                           headOnly: headOnly, context: context)
        if case .discardingBody(let progress) = state, progress.isFinished { state = .awaitingHead }
        requestCompleted(context: context)
    }

    private func writeLocalResponse(
        status: HTTPResponseStatus,
        body: String,
        headers extra: [(String, String)] = [],
        close: Bool,
        headOnly: Bool,
        context: ChannelHandlerContext
    ) {
        var buffer = context.channel.allocator.buffer(capacity: 160 + body.utf8.count)
        buffer.writeString("HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\n")
        for (name, value) in extra { buffer.writeString("\(name): \(value)\r\n") }
        buffer.writeString("Content-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n")
        if close { buffer.writeStaticString("Connection: close\r\n") }
        buffer.writeStaticString("\r\n")
        if !headOnly { buffer.writeString(body) }
        context.write(wrapOutboundOut(buffer), promise: nil)
        if close {
            state = .closed
            closeAfterFlush(context: context)
        } else {
            context.flush()
        }
    }

    private func closeAfterFlush(context: ChannelHandlerContext) {
        input = nil
        guard mode == .plain else {
            // The TLS handler encrypts and writes what is flushed at once, and its close waits for its
            // `close_notify` to be written after that: no promise needed per connection.
            context.flush()
            context.close(promise: nil)
            return
        }
        // A socket channel's close drops writes still queued: close once the last one is written.
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// A request ended with its response (or the response went out while its body is being dropped):
    /// the idle timeout runs, and a request the client sent ahead is handled now.
    private func requestCompleted(context: ChannelHandlerContext) {
        switch state {
        case .awaitingHead:
            clientTimer?.arm(in: idleTimeout)
            if draining {
                // A response that went out before the drain began; requests sent ahead are not started.
                state = .closed
                closeAfterFlush(context: context)
                return
            }
            if clientInputClosed && (input?.readableBytes ?? 0) == 0 {
                state = .closed
                context.close(promise: nil)
                return
            }
        case .discardingBody, .proxying, .tunnel, .closed:
            break
        }
        if input != nil && !processing { processInput(context: context) }
        resumeReadingIfIdle(context: context)
    }

    private func prepareForNextRequest() {
        if draining, let context {
            state = .closed
            closeAfterFlush(context: context)
            return
        }
        state = .awaitingHead
        clientTimer?.arm(in: idleTimeout)
    }

    private func resumeReadingIfIdle(context: ChannelHandlerContext) {
        guard pendingRead else { return }
        switch state {
        case .awaitingHead, .discardingBody:
            pendingRead = false
            context.read()
        case .proxying, .tunnel, .closed:
            break
        }
    }

    private static let lastChunk: ByteBuffer = ByteBuffer(staticString: "0\r\n\r\n")
    private static let crlf: ByteBuffer = ByteBuffer(staticString: "\r\n")
}

// MARK: drain at shutdown

extension HTTP1FrontHandler: DrainableFrontConnection {
    /// An idle keep-alive connection closes now (with `close_notify` on TLS); a request in progress
    /// finishes with `Connection: close` (also for HTTP/1.0 clients) and the connection closes after
    /// its response. Requests the client pipelined behind it are not started: the response told the
    /// client to retry them on a new connection (RFC 9112 §9.3.1, §9.6). A partial head still being
    /// received is answered the same way once complete. WebSocket tunnels are not in the drain.
    func startDraining(_ policy: FrontDrainPolicy) {
        guard !draining, let context else { return }
        draining = true
        switch state {
        case .awaitingHead where (input?.readableBytes ?? 0) == 0:
            closeIfIdle(context: context)
        case .awaitingHead, .discardingBody, .proxying:
            // A response head not yet written says `Connection: close`; one already written did not,
            // but the connection closes after its response all the same.
            closeAfterResponse = true
        case .tunnel, .closed:
            break
        }
    }

    /// Closes once the last response is written (a slow reader may still have some of it queued);
    /// a channel not active yet closes when it becomes active.
    private func closeIfIdle(context: ChannelHandlerContext) {
        guard case .awaitingHead = state, (input?.readableBytes ?? 0) == 0, context.channel.isActive else { return }
        state = .closed
        clientTimer?.cancel()
        closeAfterFlush(context: context)
    }
}

// MARK: instance connection events

extension HTTP1FrontHandler: UpstreamConnectionDelegate {
    private func current(_ connection: UpstreamConnection) -> (ProxyExchange, ChannelHandlerContext)? {
        guard case .proxying(let exchange) = state, exchange.connection === connection, let context else {
            connection.close()
            return nil
        }
        return (exchange, context)
    }

    func upstreamInformational(_ connection: UpstreamConnection, head: ByteBuffer) {
        guard let (exchange, context) = current(connection) else { return }
        // 100 Continue and other informational answers pass as they are; HTTP/1.0 clients get none.
        if exchange.clientMinorVersion == 1 { context.writeAndFlush(wrapOutboundOut(head), promise: nil) }
    }

    func upstreamResponseHead(
        _ connection: UpstreamConnection, head: HTTP1ResponseHead, bytes: ByteBuffer, framing: HTTP1BodyFraming
    ) -> UpstreamBodyDelivery {
        guard let (exchange, context) = current(connection) else { return .raw }
        responseHeadTimer?.disarm()
        if head.status == 101 {
            guard exchange.isWebSocketUpgrade else {
                attemptFailed(exchange, .closedBeforeResponse(UnexpectedUpgradeError()), context: context)
                return .raw
            }
            upgradeAccepted(exchange, connection: connection, head: head, bytes: bytes, context: context)
            return .raw
        }
        exchange.instance.markUp()
        let relay = HTTP1ResponseRelay(framing: framing, clientMinorVersion: exchange.clientMinorVersion)
        exchange.responseRelay = relay
        exchange.responseHeadReceived = true
        exchange.responseStatus = head.status
        exchange.responseCloseDelimited = exchange.clientMinorVersion == 0 && (framing == .chunked || framing == .untilClose)
        var bodyRoom = 0
        if case .length(let length) = framing, length <= Self.maximumCoalescedBodyBytes { bodyRoom = length }
        var response = loop.recycler.buffer(capacity: bytes.readableBytes + 64 + bodyRoom)
        bytes.withUnsafeReadableBytes { raw in
            ForwardedHeadWriter.writeResponse(
                head, framing: framing, bytes: raw, relay: relay, clientMinorVersion: exchange.clientMinorVersion,
                closeAfter: closeAfterResponse || exchange.responseCloseDelimited || clientInputClosed, into: &response
            )
        }
        pendingResponse = response
        return relay == .decodeChunks ? .decoded : .raw
    }

    func upstreamResponseBody(_ connection: UpstreamConnection, _ bytes: ByteBuffer) {
        guard let (exchange, context) = current(connection) else { return }
        exchange.responseBytes += bytes.readableBytes
        if exchange.responseRelay == .encodeChunks {
            writePendingResponse(context: context)
            var size = context.channel.allocator.buffer(capacity: 18)
            size.writeString(String(bytes.readableBytes, radix: 16))
            size.writeStaticString("\r\n")
            context.write(wrapOutboundOut(size), promise: nil)
            context.write(wrapOutboundOut(bytes), promise: nil)
            context.write(wrapOutboundOut(Self.crlf), promise: nil)
        } else if pendingResponse != nil && bytes.readableBytes <= Self.maximumCoalescedBodyBytes {
            var body = bytes
            pendingResponse!.writeBuffer(&body)
        } else {
            writePendingResponse(context: context)
            context.write(wrapOutboundOut(bytes), promise: nil)
        }
        clientNeedsFlush = true
    }

    /// Small bodies are copied behind their head; larger ones are written as they are.
    private static let maximumCoalescedBodyBytes = 4096

    private func writePendingResponse(context: ChannelHandlerContext) {
        guard let response = pendingResponse else { return }
        pendingResponse = nil
        context.write(wrapOutboundOut(response), promise: nil)
        loop.recycler.recycle(response)
    }

    /// Writes the pending response, if any, and flushes: one pass down the pipeline for both when there is one.
    private func flushResponse(context: ChannelHandlerContext) {
        guard let response = pendingResponse else {
            context.flush()
            return
        }
        pendingResponse = nil
        context.writeAndFlush(wrapOutboundOut(response), promise: nil)
        loop.recycler.recycle(response)
    }

    func upstreamResponseEnd(_ connection: UpstreamConnection) {
        guard let (exchange, context) = current(connection) else { return }
        responseFinished(exchange, context: context)
    }

    func upstreamTunnelBytes(_ connection: UpstreamConnection, _ bytes: ByteBuffer) {
        guard case .tunnel(let current) = state, current === connection, let context else {
            connection.close()
            return
        }
        context.write(wrapOutboundOut(bytes), promise: nil)
        clientNeedsFlush = true
    }

    func upstreamReadComplete(_ connection: UpstreamConnection) {
        // A response that ended in this read was flushed as it ended: nothing to do then.
        guard clientNeedsFlush || pendingResponse != nil, let context else { return }
        clientNeedsFlush = false
        flushResponse(context: context)
    }

    func upstreamWritabilityChanged(_ connection: UpstreamConnection) {
        guard connection.isWritable, pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    func upstreamClosed(_ connection: UpstreamConnection, error: (any Error)?) {
        guard let context else { return }
        if case .tunnel(let current) = state, current === connection {
            state = .closed
            closeAfterFlush(context: context)
            return
        }
        guard case .proxying(let exchange) = state, exchange.connection === connection else { return }
        if !exchange.responseHeadReceived {
            attemptFailed(exchange, .closedBeforeResponse(error), context: context)
        } else {
            // Mid-body: the client cannot be told any more than by closing its connection too.
            exchange.connection = nil
            abandon(exchange, note: "instance closed the connection mid-response")
            state = .closed
            writePendingResponse(context: context)
            closeAfterFlush(context: context)
        }
    }

    var upstreamMayRead: Bool { clientIsWritable }
}

struct UnexpectedUpgradeError: Error, CustomStringConvertible {
    var description: String { "answered 101 to a request that asked for no upgrade" }
}

@available(*, unavailable)
extension HTTP1FrontHandler: Sendable {}
