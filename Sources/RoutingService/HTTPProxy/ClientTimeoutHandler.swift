import NIOCore

/// Outbound user events from the proxy handler to `ClientTimeoutHandler`, which sits below the
/// HTTP decoder and so cannot see request heads itself.
enum HTTPFrontTimeoutEvent: Sendable {
    case requestHeadReceived
    case responseCompleted
}

/// Closes a client connection that is too slow to send a request head (`timeouts.requestHeader`,
/// from its first byte, or from connecting) or that stays idle between requests (`timeouts.clientIdle`).
/// Placed before the request decoder, so it sees raw bytes.
final class ClientTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private enum State {
        case awaitingFirstByte
        case receivingHead
        case inRequest
    }

    private let headerTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private var state = State.awaitingFirstByte
    /// One timer for both timeouts: re-armed on every request, it is rarely rescheduled.
    private var timer: DeadlineTimer?
    private var started = false

    init(headerTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        timer = DeadlineTimer(eventLoop: context.eventLoop) { [unowned context] in context.close(promise: nil) }
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .awaitingFirstByte = state {
            state = .receivingHead
            schedule(headerTimeout, context: context)
        }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let event = event as? HTTPFrontTimeoutEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        handle(event)
        promise?.succeed()
    }

    /// The proxy handler calls this directly when it finds this handler in its pipeline (same channel,
    /// same loop): twice per request, an outbound event would cross every codec handler and a cast.
    /// A no-op once removed from the pipeline.
    func handle(_ event: HTTPFrontTimeoutEvent) {
        guard let timer else { return }
        switch event {
        case .requestHeadReceived:
            timer.disarm()
            state = .inRequest
        case .responseCompleted:
            state = .awaitingFirstByte
            timer.arm(in: idleTimeout)
        }
    }

    private func start(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        // A fresh connection gets the header timeout: a client that connects and says nothing is slow.
        schedule(headerTimeout, context: context)
    }

    private func schedule(_ timeout: TimeAmount, context: ChannelHandlerContext) {
        timer?.arm(in: timeout)
    }
}
