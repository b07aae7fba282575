import NIOCore

/// One half of a matched pair gluing a client channel to its upstream channel (the swift-nio-examples
/// connect-proxy idea). Both channels live on the same event loop, so the partners call each other
/// directly. Each side reads only while the other side can take the bytes (backpressure both ways),
/// passes a FIN through as an output shutdown of the other side (half-close), and closes its partner
/// when it closes. Inbound events are not forwarded: nothing after the glue sees the relayed stream.
final class GlueHandler {
    enum Side {
        case client
        case upstream
    }

    private let side: Side
    private let record: L4SessionRecord
    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var inputClosed = false
    private var outputClosed = false

    private init(side: Side, record: L4SessionRecord) {
        self.side = side
        self.record = record
    }

    static func matchedPair(record: L4SessionRecord) -> (client: GlueHandler, upstream: GlueHandler) {
        let client = GlueHandler(side: .client, record: record)
        let upstream = GlueHandler(side: .upstream, record: record)
        client.partner = upstream
        upstream.partner = client
        return (client, upstream)
    }

    private var endWhenThisSideCloses: L4SessionEnd {
        side == .client ? .clientClosed : .upstreamClosed
    }

    // MARK: Calls from the partner

    private func partnerWrite(_ data: ByteBuffer) {
        context?.write(NIOAny(data), promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    /// The partner's peer sent a FIN: send ours once every byte already relayed has been written.
    private func partnerInputClosed() {
        guard let context, !outputClosed else { return }
        outputClosed = true
        // An empty write completes after every write queued before it; only then shut the output,
        // since shutting it while the input is already closed escalates to a full close.
        let flushed = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(NIOAny(ByteBuffer()), promise: flushed)
        flushed.futureResult.assumeIsolated().whenComplete { _ in
            if self.inputClosed {
                self.context?.close(promise: nil)
            } else {
                self.context?.close(mode: .output, promise: nil)
            }
        }
    }

    private func partnerClosed() {
        context?.close(promise: nil)
    }

    private func partnerWritabilityChanged() {
        if pendingRead, partner?.isWritable ?? false {
            pendingRead = false
            context?.read()
        }
    }

    private var isWritable: Bool {
        context?.channel.isWritable ?? false
    }
}

extension GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        switch side {
        case .client: record.bytesFromClient += bytes.readableBytes
        case .upstream: record.bytesFromUpstream += bytes.readableBytes
        }
        partner?.partnerWrite(bytes)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        record.noteEnd(endWhenThisSideCloses)
        partner?.partnerClosed()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            // The side that half-closes first is the one that ended the session.
            record.noteEnd(endWhenThisSideCloses)
            partner?.partnerInputClosed()
            if outputClosed { context.close(promise: nil) }
        } else if event is L4DrainDeadlineEvent {
            record.noteEnd(.drained)
            context.close(promise: nil)
        } else if event is IdleStateHandler.IdleStateEvent {
            record.noteEnd(.idleTimeout)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        record.noteEnd(side == .client ? .clientError : .upstreamError, detail: "\(error)")
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        partner?.partnerWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if partner?.isWritable ?? false {
            context.read()
        } else {
            pendingRead = true
        }
    }
}

@available(*, unavailable)
extension GlueHandler: Sendable {}
