import Logging
import NIOCore
import NIOHTTP1

/// The HTTP/2 front of one client connection that negotiated ALPN `h2`: bytes in and out of an
/// nghttp2 server session (SETTINGS, flow control, HPACK, GOAWAY on protocol errors), each stream
/// routed like an HTTP/1 request (SNI and `:authority`/`host` checked against the routing table) and
/// either answered locally or proxied by an `HTTP2StreamProxy` through the balancers to an instance
/// over pooled HTTP/1.1 connections. Owns the connection's idle timeout, and its drain at shutdown
/// (`startDraining`: shutdown notice, final GOAWAY, close once the streams are done).
///
/// It takes the place of `HTTP1FrontHandler` in the pipeline when the TLS handshake picks `h2`
/// (`replace(_:context:runtime:handshake:)`), so HTTP/1 connections pay nothing for it.
final class HTTP2FrontHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Frames are taken from the session in pieces of about this size, flushed one by one while the
    /// channel stays writable.
    private static let outputPieceBytes = 64 * 1024

    let runtime: HTTPProxyRuntime
    /// The event loop's proxy state (a constant: see `HTTP1FrontHandler.loop`).
    let loop: ProxyEventLoopContext
    private(set) var context: ChannelHandlerContext?
    private(set) var session: HTTP2ServerSession!
    private(set) var forwarding = ForwardingContext(clientAddress: nil, scheme: HTTPFrontMode.tls.scheme)
    private var serverName: String?
    private var streams = HTTP2StreamTable<HTTP2StreamProxy>()
    /// Streams that wrote to their instance connection during the client's current read: flushed when the
    /// read is done, instead of asking every open stream (sixteen or more) after every read.
    private var streamsToFlush: [HTTP2StreamProxy] = []
    private let idleTimeout: TimeAmount
    private var idleTimer: DeadlineTimer?
    /// One timer for every stream's response-head deadline (a timer per stream would schedule a task
    /// per request); it fires at the earliest one.
    private var responseHeadTimer: DeadlineTimer?
    private var nextResponseHeadDeadline: NIODeadline?
    private var pendingRead = false
    private var isClosing = false
    private var outputScheduled = false
    /// The gateway is stopping: the shutdown notice went out; this sends the final GOAWAY.
    private var finalGoAwayTimer: DeadlineTimer?
    /// The last proxied stream's Host and route under the snapshot that gave it: the streams of one
    /// connection ask for the same host again and again (as on HTTP/1 keep-alive connections).
    private var lastRoute: RouteMemo?
    /// The forwarding headers last written for a request that carried none of its own, by Host.
    private var forwardingCache = ForwardingFieldsCache()
    /// The last response head's field list, for the next one (an allocation per stream otherwise):
    /// `HTTP2ForwardedHeads.response` borrows it, the stream gives it back after the submit.
    var spareResponseFields = SpareFieldList<(name: Range<Int>, value: Range<Int>)>()

    init(runtime: HTTPProxyRuntime, loop: ProxyEventLoopContext, serverName: String?) {
        self.runtime = runtime
        self.loop = loop
        self.serverName = serverName
        self.idleTimeout = runtime.routes.snapshot.timeouts.clientIdle.timeAmount
    }

    deinit {
        idleTimer?.cancel()
        responseHeadTimer?.cancel()
        finalGoAwayTimer?.cancel()
    }

    /// Puts an HTTP/2 front in place of `handler` (called from its handshake event, before any
    /// plaintext arrives): one pipeline change, only for connections that negotiated `h2`.
    static func replace(
        _ handler: some RemovableChannelHandler, context: ChannelHandlerContext, runtime: HTTPProxyRuntime,
        loop: ProxyEventLoopContext, handshake: TLSHandshakeCompletedEvent
    ) {
        let front = HTTP2FrontHandler(runtime: runtime, loop: loop, serverName: handshake.serverName)
        do {
            try context.pipeline.syncOperations.addHandler(front, position: .after(handler))
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(handshake)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    // MARK: client channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        clientIsWritable = context.channel.isWritable
        forwarding.clientAddress = context.channel.remoteAddress?.ipAddress
        idleTimer = DeadlineTimer(queue: loop.timers) { [unowned self] in self.idleTimedOut() }
        responseHeadTimer = DeadlineTimer(queue: loop.timers) { [unowned self] in self.responseHeadDeadlinePassed() }
        do {
            session = try HTTP2ServerSession(delegate: self, recycler: loop.recycler)
        } catch {
            runtime.logger.error("HTTP/2 session could not start", metadata: ["error": "\(error)"])
            isClosing = true
            context.close(promise: nil)
            return
        }
        idleTimer?.arm(in: idleTimeout)
        // The server's SETTINGS go first (RFC 9113 §3.4).
        sendOutput()
        loop.fronts.insert(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        loop.fronts.remove(self)
        idleTimer?.cancel()
        responseHeadTimer?.cancel()
        finalGoAwayTimer?.cancel()
        abandonAllStreams(note: "client connection left the HTTP/2 front")
        self.context = nil
        clientIsWritable = false
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let handshake = event as? TLSHandshakeCompletedEvent {
            serverName = handshake.serverName
        } else if let event = event as? ChannelEvent, event == .inputClosed {
            // HTTP/2 has no half-close of the connection: a client that stops sending is done.
            abandonAllStreams(note: "client closed the connection")
            isClosing = true
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isClosing, let session else { return }
        let bytes = unwrapInboundIn(data)
        // nghttp2 copies what it keeps: the plaintext (from the TLS handler's recycler) is free after this.
        defer { loop.recycler.recycle(bytes) }
        do {
            try session.receive(bytes)
        } catch {
            if error.isBadPreface {
                // Not HTTP/2 at all: nothing to say in its framing.
                runtime.logger.debug("HTTP/2 client sent no connection preface", metadata: ["client": "\(forwarding.clientAddress ?? "-")"])
                isClosing = true
                context.close(promise: nil)
                return
            }
            runtime.logger.debug("HTTP/2 session failed", metadata: ["error": "\(error)"])
            session.terminate(.protocolError)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        for stream in streamsToFlush { stream.flushUpstreamIfNeeded() }
        streamsToFlush.removeAll(keepingCapacity: true)
        sendOutput()
        context.fireChannelReadComplete()
    }

    /// Reads from the client only while it can take what the reads produce.
    func read(context: ChannelHandlerContext) {
        guard clientIsWritable else {
            pendingRead = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        clientIsWritable = context.channel.isWritable
        if clientIsWritable {
            sendOutput()
            for stream in streams.values { stream.clientBecameWritable() }
            if pendingRead && clientIsWritable {
                pendingRead = false
                context.read()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        responseHeadTimer?.cancel()
        finalGoAwayTimer?.cancel()
        isClosing = true
        abandonAllStreams(note: "client closed the connection")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        abandonAllStreams(note: "client connection failed: \(error)")
        isClosing = true
        context.close(promise: nil)
    }

    // MARK: output

    /// Writes what the session has for the client and flushes; closes once the session is finished
    /// (a GOAWAY went out). Does nothing when called from inside a session callback: the caller
    /// that entered the session sends afterwards.
    func sendOutput() {
        guard let context, let session, !session.isBusy, !isClosing else { return }
        do {
            while let output = try session.takeOutput(limit: Self.outputPieceBytes) {
                context.writeAndFlush(wrapOutboundOut(output), promise: nil)
                loop.recycler.recycle(output)
                if output.readableBytes < Self.outputPieceBytes || !clientIsWritable { break }
            }
        } catch {
            runtime.logger.debug("HTTP/2 session failed", metadata: ["error": "\(error)"])
            abandonAllStreams(note: "HTTP/2 session failed: \(error)")
            isClosing = true
            context.close(promise: nil)
            return
        }
        if session.isFinished {
            isClosing = true
            abandonAllStreams(note: "HTTP/2 connection ended")
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    func upstreamFlushNeeded(by stream: HTTP2StreamProxy) {
        streamsToFlush.append(stream)
    }

    /// Sends the session's output once the event loop has handled every event ready in this round.
    /// Instance connections' reads (other channels) call this: the responses of all the streams that
    /// completed in one round then go out as one TLS write instead of one write per stream.
    func scheduleOutput() {
        guard !outputScheduled, let context else { return }
        outputScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.outputScheduled = false
            self.sendOutput()
        }
    }

    private func idleTimedOut() {
        guard streams.isEmpty, let session else { return }
        session.terminate(.noError)
        sendOutput()
    }

    private func abandonAllStreams(note: String) {
        let open = streams.values
        streams.removeAll()
        // The list holds streams too: emptied with the rest, or a stream would keep the front alive.
        streamsToFlush.removeAll()
        for stream in open { stream.abandon(note: note) }
    }

    // MARK: routing

    private func route(_ head: HTTP2RequestHead, endStream: Bool, stream: HTTP2StreamProxy) {
        if head.isOversized {
            stream.respondLocally(
                status: .requestHeaderFieldsTooLarge,
                message: "the request header section is larger than \(HTTPFrontConfiguration.maximumHeaderBytes / 1024) KiB",
                domain: nil
            )
            return
        }
        let method = head.parsedMethod
        if method == .connect {
            stream.respondLocally(status: .methodNotAllowed, message: "CONNECT is not proxied", domain: nil)
            return
        }
        let routes = loop.routes(from: runtime.routes)
        let host = head.hostText
        if let last = lastRoute, let host, last.matches(routes: routes, host: host) {
            startProxying(head, endStream: endStream, method: method, route: last.route, routes: routes, host: host, stream: stream)
            return
        }
        let disposition = RequestRouter.disposition(
            table: routes.table, mode: .tls, serverName: serverName, host: host, uri: "", canServeTLS: runtime.canServeTLS
        )
        switch disposition {
        case .proxy(let route):
            if let host { lastRoute = RouteMemo(routes: routes, host: host, route: route) }
            startProxying(head, endStream: endStream, method: method, route: route, routes: routes, host: host, stream: stream)
        case .misdirected(let reason):
            stream.respondLocally(status: .misdirectedRequest, message: reason, domain: host)
        case .unknownHost(let name):
            stream.respondLocally(status: .notFound, message: "no route for host \(name)", domain: host)
        case .missingHost:
            stream.respondLocally(status: .badRequest, message: "missing or empty :authority and host", domain: nil)
        case .redirect, .acmeChallenge:
            // Plain-listener answers; the TLS front never gets them.
            stream.respondLocally(status: .notFound, message: "no route for host \(host ?? "-")", domain: host)
        }
    }

    private func startProxying(
        _ head: HTTP2RequestHead, endStream: Bool, method: HTTP1Method, route: DomainRoute, routes: ProxyRoutes,
        host: String?, stream: HTTP2StreamProxy
    ) {
        let balancer = runtime.balancers.leastBusy(using: &loop.random)
        let candidates = routes.instances(balancer: balancer, group: route.upstream)
        let now = NIODeadline.now()
        guard let instance = balancer.pickInstance(from: candidates, excluding: nil, now: now, using: &loop.random) else {
            stream.respondLocally(
                status: .badGateway,
                message: "service \(route.upstream.service) has no instances for port \(route.upstream.port)",
                domain: route.domain.value
            )
            return
        }
        let framing = HTTP2ForwardedHeads.bodyFraming(of: head, endStream: endStream)
        var forwarded = loop.recycler.buffer(capacity: head.block.readableBytes + 320)
        head.block.withUnsafeReadableBytes { raw in
            let appendix = HTTP2ForwardedHeads.writeRequestLineAndFields(head, framing: framing, bytes: raw, into: &forwarded)
            guard appendix.dependsOnlyOnHost else {
                HTTP2ForwardedHeads.writeForwarding(appendix, of: head, bytes: raw, context: forwarding, into: &forwarded)
                return
            }
            forwardingCache.write(forHost: host, into: &forwarded) { bytes in
                HTTP2ForwardedHeads.writeForwarding(appendix, of: head, bytes: raw, context: forwarding, into: &bytes)
            }
        }
        var request = HTTP1RequestHead()
        request.method = method
        let exchange = ProxyExchange(
            request: request,
            forwardedHead: forwarded,
            logLine: runtime.accessLog.isEnabled ? (head.methodText, head.pathText) : nil,
            route: route,
            routes: routes,
            balancer: balancer,
            instance: instance,
            start: now
        )
        exchange.requestEnded = endStream
        stream.startProxying(exchange, framing: framing)
    }

    // MARK: for the streams

    /// A stream waits for its response head until `deadline`.
    func watchResponseHead(until deadline: NIODeadline) {
        if let next = nextResponseHeadDeadline, next <= deadline { return }
        nextResponseHeadDeadline = deadline
        responseHeadTimer?.arm(at: deadline)
    }

    private func responseHeadDeadlinePassed() {
        nextResponseHeadDeadline = nil
        let now = NIODeadline.now()
        var next: NIODeadline?
        for stream in streams.values {
            guard let deadline = stream.responseHeadDeadline else { continue }
            if deadline <= now {
                stream.responseHeadTimedOut()
            } else if next.map({ deadline < $0 }) ?? true {
                next = deadline
            }
        }
        if let next { watchResponseHead(until: next) }
        sendOutput()
    }

    func streamReadyForIdleCheck() {
        if streams.isEmpty { idleTimer?.arm(in: idleTimeout) }
    }

    /// The client channel's writability as its last writability event left it (false once the handler
    /// is gone): asked on every read and stream read, where asking the channel costs calls and retains.
    /// NIO reports the change from inside the write that crosses the mark, so the flag never lags.
    private(set) var clientIsWritable = false
}

// MARK: drain at shutdown

extension HTTP2FrontHandler: DrainableFrontConnection {
    /// Graceful GOAWAY (RFC 9113 §6.8): a shutdown notice now, the final GOAWAY with the last stream
    /// processed after `policy.http2FinalGoAwayDelay` (streams the client opened meanwhile are served);
    /// streams in flight finish, and the connection closes once none is left (`sendOutput` sees the
    /// session finished).
    func startDraining(_ policy: FrontDrainPolicy) {
        guard finalGoAwayTimer == nil, !isClosing, context != nil, let session else { return }
        do {
            try session.submitShutdownNotice()
        } catch {
            runtime.logger.debug("HTTP/2 shutdown notice refused", metadata: ["error": "\(error)"])
        }
        let timer = DeadlineTimer(queue: loop.timers) { [unowned self] in self.sendFinalGoAway() }
        finalGoAwayTimer = timer
        timer.arm(in: policy.http2FinalGoAwayDelay)
        sendOutput()
    }

    private func sendFinalGoAway() {
        guard !isClosing, let session else { return }
        do {
            try session.submitFinalGoAway()
        } catch {
            runtime.logger.debug("HTTP/2 GOAWAY refused", metadata: ["error": "\(error)"])
            session.terminate(.noError)
        }
        sendOutput()
    }
}

extension HTTP2FrontHandler: HTTP2ServerSessionDelegate {
    func http2RequestHeadReceived(streamID: Int32, head: HTTP2RequestHead, endStream: Bool) {
        guard !isClosing else { return }
        idleTimer?.disarm()
        let stream = HTTP2StreamProxy(streamID: streamID, isHeadRequest: head.parsedMethod == .head, front: self)
        streams[streamID] = stream
        route(head, endStream: endStream, stream: stream)
    }

    func http2RequestBodyReceived(streamID: Int32, bytes: ByteBuffer) {
        guard let stream = streams[streamID] else {
            session.consume(streamID: streamID, count: bytes.readableBytes)
            return
        }
        stream.requestBodyReceived(bytes)
    }

    func http2RequestEnded(streamID: Int32) {
        streams[streamID]?.requestEnded()
    }

    func http2StreamClosed(streamID: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        stream.streamClosed(errorCode: errorCode)
        streamReadyForIdleCheck()
    }

    func http2ResponseBodyDrained(streamID: Int32) {
        streams[streamID]?.responseBodyDrained()
    }
}

@available(*, unavailable)
extension HTTP2FrontHandler: Sendable {}
