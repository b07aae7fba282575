import Logging
import NIOCore
import NIOPosix

/// First handler of a relayed client connection: picks the least-busy instance, connects to it on the
/// client's own event loop (trying the next least-busy one when a connect is refused or times out),
/// then replaces itself with a `GlueHandler` pair and an idle timer. Until then it holds the client's
/// reads and keeps whatever bytes it is handed (a peeked ClientHello) to send upstream first.
final class TCPRelayConnectHandler {
    private enum State {
        case idle
        case connecting
        case relaying
        case closed
    }

    private let target: L4UpstreamTarget
    private let configuration: TCPRelayConfiguration
    private let record: L4SessionRecord
    private let session: L4SessionTag?
    private let policy = FewestConnectionsPolicy()
    private var state = State.idle
    private var pendingBytes: ByteBuffer?
    private var clientInputClosed = false
    private var failedInstances: Set<Int> = []
    private var lastConnectError: (any Error)?
    private var upstreamChannel: (any Channel)?

    init(
        target: L4UpstreamTarget,
        configuration: TCPRelayConfiguration,
        record: L4SessionRecord,
        session: L4SessionTag? = nil,
        initialBytes: ByteBuffer? = nil
    ) {
        self.target = target
        self.session = session
        self.configuration = configuration
        self.record = record
        self.pendingBytes = initialBytes
    }

    private func startIfActive(context: ChannelHandlerContext) {
        guard state == .idle, context.channel.isActive else { return }
        state = .connecting
        // A client's FIN must reach the instance as a FIN, not end the whole session.
        try? context.channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: true)
        // Once per session, so a reload that removes its route can give it the drain deadline.
        if let session { session.registry.register(context.channel, route: session.route) }
        // Logged once, whatever way the session ends.
        context.channel.closeFuture.assumeIsolated().whenComplete { _ in
            self.clientChannelClosed()
        }
        connectNext(context: context)
    }

    private func clientChannelClosed() {
        switch state {
        case .connecting, .idle:
            state = .closed
            record.noteEnd(.clientGone)
            record.logOnce(fallback: .clientGone)
        case .relaying:
            // The glue closes the upstream; the session is logged once that is closed too.
            if let upstreamChannel {
                upstreamChannel.closeFuture.assumeIsolated().whenComplete { _ in
                    self.record.logOnce(fallback: .clientClosed)
                }
            } else {
                record.logOnce(fallback: .clientClosed)
            }
        case .closed:
            record.logOnce(fallback: .clientClosed)
        }
    }

    private func connectNext(context: ChannelHandlerContext) {
        guard state == .connecting else { return }
        guard let (index, lease) = policy.acquire(from: target.instances, excluding: failedInstances) else {
            giveUp(context: context)
            return
        }
        let endpoint = target.instances[index].endpoint
        record.connectAttempts += 1
        let connect = ClientBootstrap(group: context.eventLoop)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.autoRead, value: false)
            .connect(host: endpoint.host, port: endpoint.port)
        connect.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let upstream):
                self.upstreamConnected(upstream, lease: lease, endpoint: endpoint, context: context)
            case .failure(let error):
                lease.release()
                self.failedInstances.insert(index)
                self.lastConnectError = error
                self.record.logger.debug(
                    "L4 upstream connect failed, trying the next instance",
                    metadata: ["l4.instance": "\(endpoint)", "l4.error": "\(error)"]
                )
                self.connectNext(context: context)
            }
        }
    }

    private func giveUp(context: ChannelHandlerContext) {
        state = .closed
        if target.instances.isEmpty {
            record.noteEnd(.noInstance, detail: "\(target.name) has no instances")
        } else {
            let reason = lastConnectError.map { "\($0)" } ?? "unknown error"
            record.noteEnd(
                .connectFailed,
                detail: "all \(target.instances.count) instances of \(target.name) failed; last: \(reason)"
            )
        }
        context.close(promise: nil)
    }

    private func upstreamConnected(
        _ upstream: any Channel,
        lease: L4Lease,
        endpoint: ListenAddress,
        context: ChannelHandlerContext
    ) {
        upstream.closeFuture.whenComplete { _ in lease.release() }
        guard state == .connecting else {
            upstream.close(promise: nil)
            return
        }
        record.instance = "\(endpoint)"
        let glue = GlueHandler.matchedPair(record: record)
        do {
            try upstream.pipeline.syncOperations.addHandler(glue.upstream)
            try context.pipeline.syncOperations.addHandlers(
                [IdleStateHandler(allTimeout: TimeAmount(configuration.idleTimeout)), glue.client],
                position: .after(self)
            )
        } catch {
            record.noteEnd(.upstreamError, detail: "pipeline setup failed: \(error)")
            upstream.close(promise: nil)
            context.close(promise: nil)
            return
        }
        state = .relaying
        upstreamChannel = upstream
        if let pendingBytes, pendingBytes.readableBytes > 0 {
            record.bytesFromClient += pendingBytes.readableBytes
            upstream.writeAndFlush(pendingBytes, promise: nil)
        }
        pendingBytes = nil
        if clientInputClosed {
            // The client sent its FIN while we were connecting: pass it on now.
            upstream.close(mode: .output, promise: nil)
        }
        try? upstream.syncOptions?.setOption(.autoRead, value: true)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        context.channel.read()
    }
}

extension TCPRelayConnectHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func handlerAdded(context: ChannelHandlerContext) {
        startIfActive(context: context)
    }

    func channelActive(context: ChannelHandlerContext) {
        startIfActive(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Reads are held while connecting, but one may already have been in flight.
        var bytes = unwrapInboundIn(data)
        if pendingBytes == nil {
            pendingBytes = bytes
        } else {
            pendingBytes!.writeBuffer(&bytes)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            clientInputClosed = true
            record.noteEnd(.clientClosed)
        } else if event is L4DrainDeadlineEvent {
            record.noteEnd(.drained)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        record.noteEnd(.clientError, detail: "\(error)")
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {}

    func read(context: ChannelHandlerContext) {
        // Nothing is read from the client until there is somewhere to send it.
    }
}

@available(*, unavailable)
extension TCPRelayConnectHandler: Sendable {}
