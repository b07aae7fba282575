import NIOCore
import NIOHTTP1

/// Keeps the client socket registered for reads while the one request in flight waits for its response.
///
/// `HTTPServerPipelineHandler` withholds `read()` from the end of a request until the end of its
/// response, so NIO drops the socket's read interest after every request and adds it back after every
/// response: two `epoll_ctl` calls per request on a keep-alive connection whose client never pipelines.
/// Placed just below it (between the request decoder and `HTTPServerPipelineHandler`), this handler
/// asks for that read itself when exactly one complete request is waiting for its response and nothing
/// of a next request has arrived. What the client sends meanwhile is buffered by
/// `HTTPServerPipelineHandler` and delivered in order, as before; as soon as any part of a second
/// request arrives this handler stops reading ahead, so ordering and backpressure stay
/// `HTTPServerPipelineHandler`'s and the extra buffering is at most one read.
/// Never reads ahead after an upgrade request: bytes after it are not HTTP and must wait for the relay.
final class ReadAheadHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Requests whose end arrived, minus responses whose end was written (−1 while an early answer,
    /// sent before its request ended, waits for that end).
    private var requestsAwaitingResponse = 0
    /// A request head arrived and its end has not.
    private var requestInProgress = false
    /// The last request asked for a protocol upgrade (WebSocket).
    private var upgradeRequested = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            requestInProgress = true
            upgradeRequested = head.headers.contains(name: "upgrade")
        case .body:
            break
        case .end:
            requestInProgress = false
            requestsAwaitingResponse += 1
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
        // NIO asks for the next read only after this event; `HTTPServerPipelineHandler` would swallow
        // that one now, so ask below it instead (a second read() while one is pending is a no-op).
        if requestsAwaitingResponse == 1, !requestInProgress, !upgradeRequested, context.channel.isActive {
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { requestsAwaitingResponse -= 1 }
        context.write(data, promise: promise)
    }
}

@available(*, unavailable)
extension ReadAheadHandler: Sendable {}
