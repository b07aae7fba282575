import NIOCore
import NIOHTTP1

/// Receives what a leased upstream connection delivers. Everything runs on the connection's event
/// loop, which is also the client channel's loop.
protocol UpstreamConnectionDelegate: AnyObject {
    func upstream(_ connection: UpstreamConnection, received part: HTTPClientResponsePart)
    func upstreamReadComplete(_ connection: UpstreamConnection)
    func upstreamWritabilityChanged(_ connection: UpstreamConnection)
    func upstreamClosed(_ connection: UpstreamConnection, error: (any Error)?)
    /// Whether the upstream may read more now: false while the client cannot take more bytes.
    var upstreamMayRead: Bool { get }
}

/// One keep-alive HTTP/1.1 connection to an instance, owned by its pool when idle and by one
/// proxy exchange while leased.
final class UpstreamConnection {
    let channel: any Channel
    let instance: UpstreamInstance
    weak var delegate: (any UpstreamConnectionDelegate)?
    private(set) var isClosed = false
    /// Requests sent on this connection (1 on a fresh one): a reused connection may have been closed
    /// by the instance meanwhile, which is why a failure there is retried.
    var requestCount = 0
    /// Closes the connection once it has idled in its pool too long (armed by the pool on release).
    private(set) lazy var idleTimer = DeadlineTimer(eventLoop: channel.eventLoop) { [unowned self] in self.close() }
    fileprivate var handler: UpstreamConnectionHandler?

    init(channel: any Channel, instance: UpstreamInstance) {
        self.channel = channel
        self.instance = instance
    }

    /// Adds the HTTP client codec and the bridge handler. Framing headers are set by the proxy itself
    /// (`ForwardingHeaders`), so the encoder must not add its own.
    static func attach(to channel: any Channel, instance: UpstreamInstance) throws -> UpstreamConnection {
        let connection = UpstreamConnection(channel: channel, instance: instance)
        let handler = UpstreamConnectionHandler(connection: connection)
        connection.handler = handler
        var encoderConfiguration = HTTPRequestEncoder.Configuration()
        encoderConfiguration.automaticallySetFramingHeaders = false
        let decoder = HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .forward)
        try channel.pipeline.syncOperations.addHandlers([
            HTTPRequestEncoder(configuration: encoderConfiguration),
            ByteToMessageHandler(decoder),
            handler,
        ])
        return connection
    }

    var isWritable: Bool { channel.isWritable }

    func write(_ part: HTTPClientRequestPart) {
        channel.write(part, promise: nil)
    }

    func flush() { channel.flush() }

    /// Reads again if a read was held back while the client was not writable.
    func resumeReading() { handler?.resumeReading() }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        idleTimer.cancel()
        delegate = nil
        channel.close(promise: nil)
    }

    fileprivate func closed(error: (any Error)?) {
        let wasClosed = isClosed
        isClosed = true
        idleTimer.cancel()
        if !wasClosed || error != nil { delegate?.upstreamClosed(self, error: error) }
        delegate = nil
    }

    /// Takes the bridge and the encoder out (after a `101`); the decoder goes with `removeHTTPDecoder()`
    /// once a handler for raw bytes is in place.
    func removeHTTPHandlers() throws {
        let pipeline = channel.pipeline.syncOperations
        if let handler { _ = pipeline.removeHandler(context: try pipeline.context(handler: handler)) }
        handler = nil
        delegate = nil
        isClosed = true  // no longer an HTTP connection: never pooled again
        _ = pipeline.removeHandler(context: try pipeline.context(handlerType: HTTPRequestEncoder.self))
    }

    /// Removes the response decoder; bytes it had buffered go on to the next handler.
    func removeHTTPDecoder() throws {
        let pipeline = channel.pipeline.syncOperations
        _ = pipeline.removeHandler(
            context: try pipeline.context(handlerType: ByteToMessageHandler<HTTPResponseDecoder>.self)
        )
    }
}

/// The bridge inside the upstream channel: hands responses to the delegate and holds reads back
/// while the delegate's client is not writable.
private final class UpstreamConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private unowned let connection: UpstreamConnection
    private var context: ChannelHandlerContext?
    private var readPending = false

    init(connection: UpstreamConnection) {
        self.connection = connection
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        guard let delegate = connection.delegate else {
            // Bytes from an idle instance connection: it is out of step, so it cannot be reused.
            connection.close()
            return
        }
        delegate.upstream(connection, received: part)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        connection.delegate?.upstreamReadComplete(connection)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection.delegate?.upstreamWritabilityChanged(connection)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.closed(error: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
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

    func resumeReading() {
        guard readPending, let context else { return }
        readPending = false
        context.read()
    }
}
