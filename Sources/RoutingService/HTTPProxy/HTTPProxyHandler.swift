import NIOCore
import NIOHTTP1

/// The HTTP front of one client connection: routes each request (SNI and Host checked against the
/// routing table), answers locally (redirects, 404, 421, ACME, errors) or proxies it through one of
/// the balancers to an instance, streaming both bodies with backpressure, and relays bytes after a
/// WebSocket `101`. Requests arrive one at a time (`HTTPServerPipelineHandler` orders pipelined ones).
final class HTTPProxyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Waiting for the next request head.
        case idle
        /// Answered locally; dropping the rest of the request body.
        case discardingBody
        case proxying(ProxyExchange)
        /// The connection is closing, or has been handed to a byte relay.
        case closed
    }

    private let mode: HTTPFrontMode
    private let runtime: HTTPProxyRuntime
    private var loop: ProxyEventLoopContext!
    private var context: ChannelHandlerContext?
    private var state = State.idle
    private var serverName: String?
    private var clientAddress: String?
    /// The current request's client wants the connection closed after the response.
    private var closeAfterResponse = false
    private var pendingRead = false
    private var upstreamNeedsFlush = false
    /// The current exchange's instance must send a response head before this fires (armed once the
    /// request end is forwarded). One timer per connection, re-armed per request.
    private var responseHeadTimer: DeadlineTimer?
    /// The connection's timeouts, told directly of request heads and completed responses (nil when
    /// the pipeline has none: then they go as outbound events).
    private var clientTimeouts: ClientTimeoutHandler?

    /// `clientTimeouts`: the connection's timeout handler in the same pipeline, handed over directly
    /// (looking it up per connection walks the pipeline with a dynamic cast per handler).
    init(mode: HTTPFrontMode, runtime: HTTPProxyRuntime, clientTimeouts: ClientTimeoutHandler? = nil) {
        self.mode = mode
        self.runtime = runtime
        self.clientTimeouts = clientTimeouts
    }

    // MARK: client channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        loop = runtime.loopContext(for: context.eventLoop)
        responseHeadTimer = DeadlineTimer(eventLoop: context.eventLoop) { [unowned self] in
            self.responseHeadTimedOut()
        }
        if clientTimeouts == nil {
            clientTimeouts = try? context.pipeline.syncOperations.handler(type: ClientTimeoutHandler.self)
        }
        clientAddress = context.channel.remoteAddress?.ipAddress
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        responseHeadTimer?.cancel()
        clientTimeouts = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if clientAddress == nil { clientAddress = context.channel.remoteAddress?.ipAddress }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let handshake = event as? TLSHandshakeCompletedEvent {
            serverName = handshake.serverName
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (state, part) {
        case (.idle, .head(let head)):
            tellTimeouts(.requestHeadReceived, context: context)
            requestHeadReceived(head, context: context)
        case (.proxying(let exchange), .body), (.proxying(let exchange), .end):
            if case .end = part { exchange.requestEnded = true }
            if let connection = exchange.connection {
                forward(part, of: exchange, on: connection, context: context)
                upstreamNeedsFlush = true
            } else {
                exchange.bufferedBody.append(part)
            }
        case (.discardingBody, .end):
            prepareForNextRequest(context: context)
            resumeReadingIfIdle(context: context)
        case (.discardingBody, .body), (.closed, _):
            break
        case (.idle, _), (.discardingBody, .head), (.proxying, .head):
            // HTTPServerPipelineHandler delivers one request at a time: this cannot happen.
            assertionFailure("unexpected \(part) in \(state)")
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if upstreamNeedsFlush, case .proxying(let exchange) = state {
            exchange.connection?.flush()
        }
        upstreamNeedsFlush = false
        context.fireChannelReadComplete()
    }

    /// Backpressure towards the client: read only while the instance connection can take more.
    func read(context: ChannelHandlerContext) {
        if case .proxying(let exchange) = state, !(exchange.connection?.isWritable ?? false) {
            pendingRead = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .proxying(let exchange) = state {
            exchange.connection?.resumeReading()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        responseHeadTimer?.cancel()
        if case .proxying(let exchange) = state {
            abandon(exchange, note: "client closed the connection")
        }
        state = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let parserError = error as? HTTPParserError
        var responseStarted = false
        switch state {
        case .proxying(let exchange):
            responseStarted = exchange.responseHeadReceived
            abandon(exchange, note: "client sent a malformed request: \(error)")
        case .discardingBody:
            responseStarted = true
        case .idle, .closed:
            break
        }
        state = .closed
        guard let parserError, !responseStarted else {
            context.close(promise: nil)
            return
        }
        // The request cannot be trusted past this point (no smuggling): answer and close.
        let status = parserError.responseStatus
        let reason = parserError.clientReason
        writeLocalResponse(status: status, body: "\(status.code) \(status.reasonPhrase): \(reason)\n", close: true, headOnly: false, context: context)
        loop?.requestMetrics?.record(domain: "-", status: Int(status.code), duration: nil)
        runtime.accessLog.record(
            AccessLogEntry(client: clientAddress, domain: nil, method: "-", path: "-", status: Int(status.code),
                           bytes: 0, instance: nil, balancer: nil, start: .now(), note: reason)
        )
    }

    // MARK: routing

    private func requestHeadReceived(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        closeAfterResponse = !head.isKeepAlive
        let routes = loop.routes(from: runtime.routes)
        let host = head.headers.first(name: "host")
        let disposition = RequestRouter.disposition(
            table: routes.table,
            mode: mode,
            serverName: serverName,
            host: host,
            uri: head.uri,
            canServeTLS: runtime.canServeTLS
        )
        switch disposition {
        case .proxy(let route):
            startProxying(head, route: route, routes: routes, context: context)
        case .redirect(let location):
            respondLocally(to: head, status: .permanentRedirect, body: "Redirecting to \(location)\n",
                           headers: [("Location", location)], domain: host, context: context)
        case .acmeChallenge(let token):
            if let keyAuthorization = runtime.acmeResponder.keyAuthorization(forToken: token, host: host) {
                respondLocally(to: head, status: .ok, body: keyAuthorization, domain: host, context: context)
            } else {
                respondLocally(to: head, status: .notFound, body: "no challenge\n", domain: host, context: context)
            }
        case .misdirected(let reason):
            respondLocally(to: head, status: .misdirectedRequest, body: "421 Misdirected Request: \(reason)\n",
                           domain: host, context: context)
        case .unknownHost(let name):
            respondLocally(to: head, status: .notFound, body: "404 Not Found: no route for host \(name)\n",
                           domain: host, context: context)
        case .missingHost:
            respondLocally(to: head, status: .badRequest, body: "400 Bad Request: missing or empty Host header\n",
                           domain: nil, context: context)
        }
    }

    // MARK: proxying

    private func startProxying(_ head: HTTPRequestHead, route: DomainRoute, routes: ProxyRoutes, context: ChannelHandlerContext) {
        let balancer = runtime.balancers.leastBusy(using: &loop.random)
        let candidates = routes.instances(balancer: balancer, group: route.upstream)
        guard let instance = balancer.pickInstance(from: candidates, excluding: nil, now: .now(), using: &loop.random) else {
            let message = "service \(route.upstream.service) has no instances for port \(route.upstream.port)"
            respondLocally(to: head, status: .badGateway, body: "502 Bad Gateway: \(message)\n",
                           domain: route.domain.value, note: message, context: context)
            return
        }
        let forwarded = ForwardingHeaders.request(
            head,
            context: ForwardingContext(clientAddress: clientAddress, scheme: mode.scheme)
        )
        let exchange = ProxyExchange(
            clientHead: head,
            forwarded: forwarded,
            route: route,
            routes: routes,
            balancer: balancer,
            instance: instance
        )
        state = .proxying(exchange)
        connect(exchange, context: context)
    }

    private func connect(_ exchange: ProxyExchange, context: ChannelHandlerContext) {
        let pool = loop.pool(for: exchange.instance)
        if let connection = pool.leaseIdle() {
            attach(connection, to: exchange, context: context)
            return
        }
        let timeout = exchange.routes.timeouts.upstreamConnect.timeAmount
        let idleTimeout = exchange.routes.timeouts.upstreamIdle.timeAmount
        let instance = exchange.instance
        pool.connect(using: runtime.connector, timeout: timeout).assumeIsolated().whenComplete { result in
            let isCurrent: Bool
            if case .proxying(let current) = self.state, current === exchange, exchange.instance === instance {
                isCurrent = true
            } else {
                isCurrent = false
            }
            switch result {
            case .success(let connection):
                if isCurrent {
                    self.attach(connection, to: exchange, context: context)
                } else {
                    // The client left meanwhile; the fresh connection is clean, so keep it.
                    pool.release(connection, idleTimeout: idleTimeout)
                }
            case .failure(let error):
                let failure: UpstreamFailure
                if let channelError = error as? ChannelError, case .connectTimeout = channelError {
                    failure = .connectTimedOut(timeout)
                } else {
                    failure = .refused(error)
                }
                instance.markDown(until: .now() + self.runtime.markDownDuration)
                if isCurrent { self.attemptFailed(exchange, failure, context: context) }
            }
        }
    }

    private func attach(_ connection: UpstreamConnection, to exchange: ProxyExchange, context: ChannelHandlerContext) {
        exchange.connection = connection
        connection.delegate = self
        connection.requestCount += 1
        connection.write(.head(exchange.forwarded.head))
        while let part = exchange.bufferedBody.popFirst() {
            forward(part, of: exchange, on: connection, context: context)
        }
        connection.flush()
        if pendingRead && connection.isWritable {
            pendingRead = false
            context.read()
        }
    }

    private func forward(_ part: HTTPServerRequestPart, of exchange: ProxyExchange, on connection: UpstreamConnection, context: ChannelHandlerContext) {
        switch part {
        case .head:
            preconditionFailure("a request head is never forwarded as a body part")
        case .body(let buffer):
            exchange.bodyPartsForwarded += 1
            connection.write(.body(.byteBuffer(buffer)))
        case .end(let trailers):
            connection.write(.end(exchange.forwarded.head.headers.contains(name: "transfer-encoding") ? trailers : nil))
            exchange.requestEndForwarded = true
            if !exchange.responseHeadReceived { startResponseHeadTimer(exchange, context: context) }
        }
    }

    private func startResponseHeadTimer(_ exchange: ProxyExchange, context: ChannelHandlerContext) {
        responseHeadTimer?.arm(in: exchange.routes.timeouts.upstreamResponseHead.timeAmount)
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

        var retryable = exchange.isReplayable
        if case .responseHeadTimedOut = failure { retryable = false }
        if retryable {
            let candidates = exchange.routes.instances(balancer: exchange.balancer, group: exchange.route.upstream)
            if let next = exchange.balancer.pickInstance(
                from: candidates, excluding: exchange.instance, now: .now(), using: &loop.random
            ) {
                exchange.moveTo(next)
                connect(exchange, context: context)
                return
            }
        }

        let message = failure.message(instance: exchange.instance)
        let status = failure.status
        exchange.releaseCounts()
        exchange.responseStatus = Int(status.code)
        record(exchange, note: message)
        // State first: ending the response may hand us the next pipelined request at once.
        if exchange.requestEnded && !closeAfterResponse {
            prepareForNextRequest(context: context)
        } else {
            state = .discardingBody
        }
        writeLocalResponse(
            status: status,
            body: "\(status.code) \(status.reasonPhrase): \(message)\n",
            close: closeAfterResponse,
            headOnly: exchange.clientHead.method == .HEAD,
            context: context
        )
        resumeReadingIfIdle(context: context)
    }

    /// The client went away or sent garbage mid-exchange: drop the instance connection, keep counts exact.
    private func abandon(_ exchange: ProxyExchange, note: String) {
        exchange.connection?.close()
        exchange.connection = nil
        exchange.releaseCounts()
        if exchange.responseStatus == 0 { exchange.responseStatus = 499 }
        record(exchange, note: note)
    }

    private func responseFinished(_ exchange: ProxyExchange, trailers: HTTPHeaders?, context: ChannelHandlerContext) {
        exchange.releaseCounts()
        if let connection = exchange.connection {
            exchange.connection = nil
            connection.delegate = nil
            let reusable = exchange.requestEndForwarded && !(exchange.response?.upstreamWantsClose ?? true)
            if reusable && !exchange.instance.isRetired {
                loop.pool(for: exchange.instance).release(connection, idleTimeout: exchange.routes.timeouts.upstreamIdle.timeAmount)
            } else {
                connection.close()
            }
        }
        record(exchange, note: nil)
        let chunked = exchange.response?.head.headers.contains(name: "transfer-encoding") ?? false
        // A response that ends before its request (an early answer) leaves the request body unframed: close.
        let close = closeAfterResponse || (exchange.response?.closeDelimited ?? true) || !exchange.requestEnded
        // State first: ending the response may hand us the next pipelined request at once.
        if close {
            state = .closed
        } else {
            prepareForNextRequest(context: context)
        }
        endResponse(trailers: chunked ? trailers : nil, close: close, context: context)
        resumeReadingIfIdle(context: context)
    }

    private func record(_ exchange: ProxyExchange, note: String?) {
        loop.requestMetrics?.record(
            domain: exchange.route.domain.value, status: exchange.responseStatus, duration: .now() - exchange.start
        )
        runtime.accessLog.record(
            AccessLogEntry(
                client: clientAddress,
                domain: exchange.route.domain.value,
                method: exchange.clientHead.method.rawValue,
                path: exchange.clientHead.uri,
                status: exchange.responseStatus,
                bytes: exchange.responseBytes,
                instance: exchange.instance.endpoint.description,
                balancer: exchange.balancer.index,
                start: exchange.start,
                note: note
            )
        )
    }

    // MARK: WebSocket

    /// A `101` answered a WebSocket upgrade: pass it on. The pipelines change once the decoder has
    /// delivered the end of that response (`switchToByteRelay`).
    private func upgradeAccepted(_ exchange: ProxyExchange, response head: HTTPResponseHead, context: ChannelHandlerContext) {
        let response = ForwardingHeaders.response(
            head, requestMethod: exchange.clientHead.method, clientVersion: exchange.clientHead.version, clientWantsClose: false
        )
        exchange.response = response
        exchange.responseStatus = 101
        context.writeAndFlush(wrapOutboundOut(.head(response.head)), promise: nil)
    }

    /// After a `101` the connection is no longer HTTP: both pipelines lose their HTTP handlers and a
    /// byte relay joins the client and the instance. The exchange counts as finished here.
    private func switchToByteRelay(_ exchange: ProxyExchange, connection: UpstreamConnection, context: ChannelHandlerContext) {
        exchange.connection = nil
        exchange.releaseCounts()
        record(exchange, note: nil)
        state = .closed

        let clientPipeline = context.pipeline.syncOperations
        let clientChannel = context.channel
        do {
            let (clientRelay, upstreamRelay) = ByteRelayHandler.matchedPair()
            // Typed HTTP handlers go first so that no raw byte meets them; the decoders go last, and
            // hand whatever bytes they had buffered to the relays.
            try connection.removeHTTPHandlers()
            try clientPipeline.removeHandler(context: clientPipeline.context(handlerType: HTTPServerPipelineHandler.self))
            try clientPipeline.removeHandler(context: clientPipeline.context(handlerType: ReadAheadHandler.self))
            try clientPipeline.removeHandler(context: clientPipeline.context(handlerType: HTTPResponseEncoder.self))
            if let timeouts = try? clientPipeline.context(handlerType: ClientTimeoutHandler.self) {
                try clientPipeline.removeHandler(context: timeouts)
            }
            try clientPipeline.addHandler(clientRelay)
            try connection.channel.pipeline.syncOperations.addHandler(upstreamRelay)
            try clientPipeline.removeHandler(context: context)
            try connection.removeHTTPDecoder()
            try clientPipeline.removeHandler(context: clientPipeline.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self))
            clientChannel.read()
            connection.channel.read()
            runtime.longLivedConnections.register(
                clientChannel, domain: exchange.route.domain, upstream: exchange.instance.endpoint
            )
        } catch {
            connection.close()
            clientChannel.close(promise: nil)
        }
    }

    // MARK: local responses

    private func respondLocally(
        to head: HTTPRequestHead,
        status: HTTPResponseStatus,
        body: String,
        headers: [(String, String)] = [],
        domain: String?,
        note: String? = nil,
        context: ChannelHandlerContext
    ) {
        loop.requestMetrics?.record(domain: "-", status: Int(status.code), duration: nil)
        runtime.accessLog.record(
            AccessLogEntry(client: clientAddress, domain: domain, method: head.method.rawValue, path: head.uri,
                           status: Int(status.code), bytes: body.utf8.count, instance: nil, balancer: nil,
                           start: .now(), note: note)
        )
        state = .discardingBody
        writeLocalResponse(status: status, body: body, headers: headers, close: closeAfterResponse,
                           headOnly: head.method == .HEAD, context: context)
    }

    private func writeLocalResponse(
        status: HTTPResponseStatus,
        body: String,
        headers extra: [(String, String)] = [],
        close: Bool,
        headOnly: Bool,
        context: ChannelHandlerContext
    ) {
        let buffer = context.channel.allocator.buffer(string: body)
        var headers = HTTPHeaders(extra)
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(buffer.readableBytes))
        if close { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !headOnly { context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil) }
        if close { state = .closed }
        endResponse(trailers: nil, close: close, context: context)
    }

    private func endResponse(trailers: HTTPHeaders?, close: Bool, context: ChannelHandlerContext) {
        guard close else {
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// Both the request and its response are done: ready for the next request on this connection.
    /// Called before the response end is written, because `HTTPServerPipelineHandler` delivers a
    /// pipelined request from inside that write.
    private func prepareForNextRequest(context: ChannelHandlerContext) {
        state = .idle
        tellTimeouts(.responseCompleted, context: context)
    }

    private func tellTimeouts(_ event: HTTPFrontTimeoutEvent, context: ChannelHandlerContext) {
        if let clientTimeouts {
            clientTimeouts.handle(event)
        } else {
            context.triggerUserOutboundEvent(event, promise: nil)
        }
    }

    private func resumeReadingIfIdle(context: ChannelHandlerContext) {
        guard case .idle = state, pendingRead else { return }
        pendingRead = false
        context.read()
    }
}

// MARK: instance connection events

extension HTTPProxyHandler: UpstreamConnectionDelegate {
    func upstream(_ connection: UpstreamConnection, received part: HTTPClientResponsePart) {
        guard case .proxying(let exchange) = state, exchange.connection === connection, let context else {
            connection.close()
            return
        }
        switch part {
        case .head(let head) where head.status == .switchingProtocols:
            responseHeadTimer?.disarm()
            guard exchange.forwarded.isWebSocketUpgrade else {
                attemptFailed(exchange, .closedBeforeResponse(UnexpectedUpgradeError()), context: context)
                return
            }
            upgradeAccepted(exchange, response: head, context: context)
        case .head(let head) where head.status.code < 200:
            // 100 Continue and other informational answers pass through as they are.
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: head.status, headers: head.headers))), promise: nil)
        case .head(let head):
            responseHeadTimer?.disarm()
            exchange.instance.markUp()
            let response = ForwardingHeaders.response(
                head,
                requestMethod: exchange.clientHead.method,
                clientVersion: exchange.clientHead.version,
                clientWantsClose: closeAfterResponse
            )
            exchange.response = response
            exchange.responseStatus = Int(head.status.code)
            context.write(wrapOutboundOut(.head(response.head)), promise: nil)
        case .body(let buffer):
            exchange.responseBytes += buffer.readableBytes
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end where exchange.responseStatus == 101:
            switchToByteRelay(exchange, connection: connection, context: context)
        case .end(let trailers):
            responseFinished(exchange, trailers: trailers, context: context)
        }
    }

    func upstreamReadComplete(_ connection: UpstreamConnection) {
        context?.flush()
    }

    func upstreamWritabilityChanged(_ connection: UpstreamConnection) {
        guard connection.isWritable, pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    func upstreamClosed(_ connection: UpstreamConnection, error: (any Error)?) {
        guard case .proxying(let exchange) = state, exchange.connection === connection, let context else { return }
        if !exchange.responseHeadReceived {
            attemptFailed(exchange, .closedBeforeResponse(error), context: context)
        } else {
            // Mid-body: the client cannot be told any more than by closing its connection too.
            exchange.connection = nil
            abandon(exchange, note: "instance closed the connection mid-response")
            state = .closed
            context.close(promise: nil)
        }
    }

    var upstreamMayRead: Bool { context?.channel.isWritable ?? true }
}

struct UnexpectedUpgradeError: Error, CustomStringConvertible {
    var description: String { "answered 101 to a request that asked for no upgrade" }
}

@available(*, unavailable)
extension HTTPProxyHandler: Sendable {}
