import NIOCore
import NIOPosix

/// One client's flow: its own connected datagram socket to the chosen instance, on the listener's
/// event loop. Replies are sent back to the client through the listener channel.
final class UDPFlow {
    private enum State {
        case connecting(queued: [ByteBuffer])
        case ready(any Channel)
        case closed
    }

    let client: SocketAddress
    let record: L4SessionRecord
    private let lease: L4Lease
    private let listenerChannel: any Channel
    private let maximumQueuedDatagrams: Int
    private let statistics: UDPProxyStatistics
    private var state = State.connecting(queued: [])
    /// Called on each reply, and once with the reason if the upstream socket fails.
    var onReply: (() -> Void)?
    var onFailure: ((L4SessionEnd, String) -> Void)?

    init(
        client: SocketAddress,
        lease: L4Lease,
        record: L4SessionRecord,
        listenerChannel: any Channel,
        maximumQueuedDatagrams: Int,
        statistics: UDPProxyStatistics
    ) {
        self.client = client
        self.lease = lease
        self.record = record
        self.listenerChannel = listenerChannel
        self.maximumQueuedDatagrams = maximumQueuedDatagrams
        self.statistics = statistics
        record.instance = "\(lease.load.endpoint)"
    }

    func start() {
        let eventLoop = listenerChannel.eventLoop
        let endpoint = lease.load.endpoint
        let boundSelf = NIOLoopBound(self, eventLoop: eventLoop)
        DatagramBootstrap(group: eventLoop)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPUpstreamHandler(flow: boundSelf.value))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .assumeIsolated()
            .whenComplete { result in
                self.upstreamConnectCompleted(result)
            }
    }

    private func upstreamConnectCompleted(_ result: Result<any Channel, any Error>) {
        switch (state, result) {
        case (.connecting(let queued), .success(let channel)):
            state = .ready(channel)
            for datagram in queued { channel.write(datagram, promise: nil) }
            channel.flush()
        case (.connecting, .failure(let error)):
            state = .closed
            onFailure?(.connectFailed, "\(error)")
        case (.closed, .success(let channel)):
            channel.close(promise: nil)
        case (.closed, .failure), (.ready, _):
            break
        }
    }

    func datagramFromClient(_ data: ByteBuffer) {
        record.bytesFromClient += data.readableBytes
        switch state {
        case .connecting(var queued):
            guard queued.count < maximumQueuedDatagrams else {
                statistics.dropped()
                return
            }
            queued.append(data)
            state = .connecting(queued: queued)
        case .ready(let channel):
            channel.writeAndFlush(data, promise: nil)
        case .closed:
            statistics.dropped()
        }
    }

    func replyFromUpstream(_ data: ByteBuffer) {
        record.bytesFromUpstream += data.readableBytes
        listenerChannel.writeAndFlush(AddressedEnvelope(remoteAddress: client, data: data), promise: nil)
        onReply?()
    }

    func upstreamFailed(_ error: any Error) {
        onFailure?(.upstreamError, "\(error)")
    }

    /// Ends the flow: closes its socket, un-counts it, and logs it with `reason`.
    func close(reason: L4SessionEnd) {
        if case .ready(let channel) = state { channel.close(promise: nil) }
        state = .closed
        onReply = nil
        onFailure = nil
        lease.release()
        record.noteEnd(reason)
        record.logOnce(fallback: reason)
    }
}

/// Inbound end of a flow's upstream socket: hands replies and errors to the flow.
final class UDPUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let flow: UDPFlow

    init(flow: UDPFlow) {
        self.flow = flow
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        flow.replyFromUpstream(unwrapInboundIn(data).data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A connected UDP socket reports an ICMP port unreachable as ECONNREFUSED on the next read.
        flow.upstreamFailed(error)
    }
}

@available(*, unavailable)
extension UDPFlow: Sendable {}

@available(*, unavailable)
extension UDPUpstreamHandler: Sendable {}
