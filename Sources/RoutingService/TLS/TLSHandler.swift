import Logging
import NIOCore

/// TLS over a byte channel: ciphertext below, plaintext above, OpenSSL (through `OpenSSLConnection`)
/// doing the work in memory. Server side the certificate is chosen by SNI (`OpenSSLFrontContext`).
///
/// - Fires `TLSHandshakeCompletedEvent` inbound once the handshake is done, before any plaintext.
/// - Holds writes until the handshake completes; each flush encrypts every flushed write at once
///   (small writes coalesced into one record) and writes the ciphertext in one go.
/// - Closes a peer that does not finish its handshake within `handshakeTimeout`, with a log line.
/// - On close sends `close_notify`; answers the peer's `close_notify` and closes.
/// - Bad input: OpenSSL's alert is flushed, the error fired, the channel closed, a log line says why.
public final class TLSHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    public struct Configuration: Sendable {
        /// From channel active to handshake complete.
        public var handshakeTimeout: TimeAmount
        /// How long a close waits for our `close_notify` (or alert) to be written before closing anyway.
        public var closeTimeout: TimeAmount
        /// Plaintext held while waiting for the handshake or a flush; a write beyond it fails.
        public var maximumBufferedPlaintextBytes: Int
        /// Told about each handshake's outcome (metrics).
        public var observer: (any TLSHandshakeObserver)?

        public init(
            handshakeTimeout: TimeAmount = .seconds(10),
            closeTimeout: TimeAmount = .seconds(3),
            maximumBufferedPlaintextBytes: Int = 1 << 20
        ) {
            self.handshakeTimeout = handshakeTimeout
            self.closeTimeout = closeTimeout
            self.maximumBufferedPlaintextBytes = maximumBufferedPlaintextBytes
        }

        /// With the gateway's `timeouts.handshake`.
        public init(handshakeTimeout: Duration) {
            self.init(handshakeTimeout: TimeAmount(handshakeTimeout))
        }
    }

    /// What the connections of one listener share, held once instead of copied into each handler: the
    /// configuration (its observer an existential) and the logger (its handler one too) are ≈ 120 bytes
    /// that every idle connection would hold.
    public final class Settings: Sendable {
        let configuration: Configuration
        let logger: Logger

        public init(configuration: Configuration = Configuration(), logger: Logger) {
            self.configuration = configuration
            self.logger = logger
        }
    }

    private enum TimerPurpose {
        case handshake
        case close
    }

    private struct PendingWrite {
        var plaintext: ByteBuffer
        var promise: EventLoopPromise<Void>?
    }

    /// The writes waiting for the handshake or a flush. Its storage is made by the first write, not with
    /// the handler: a connection that has not written yet (an idle one) holds none, and once made it is
    /// kept, so a keep-alive connection does not allocate it per request.
    private struct PendingWrites {
        private var queue: MarkedCircularBuffer<PendingWrite>?

        var isEmpty: Bool { queue?.isEmpty ?? true }
        var hasMark: Bool { queue?.hasMark ?? false }

        mutating func append(_ write: PendingWrite) {
            if queue == nil { queue = MarkedCircularBuffer(initialCapacity: 4) }
            queue!.append(write)
        }

        mutating func mark() { queue?.mark() }

        mutating func popFirst() -> PendingWrite? { queue?.popFirst() }
    }

    /// Small writes are copied together up to this size so head and body share a record.
    private static let coalescingLimit = 16 * 1024

    // The one-byte members are declared last, together, so that little of the handler (one per
    // connection) is padding.
    private let connection: OpenSSLConnection
    private let settings: Settings
    private var configuration: Configuration { settings.configuration }
    private var logger: Logger { settings.logger }
    private var pendingWrites = PendingWrites()
    private var pendingPlaintextBytes = 0
    /// The loop's timer queue, given by the listener; nil: the timer gets a queue of its own.
    private let timers: TimerQueue?
    /// The loop's spare buffers, given by the listener: plaintext is decrypted into them, and the
    /// buffers read from the socket and the records written to it go back to them.
    private let recycler: ByteBufferRecycler?
    /// The handshake timeout from activation to the handshake's end, then none (an idle connection
    /// holds no timer), then the close timeout once a close waits for its last flush: never both.
    private var timer: DeadlineTimer?
    private var closePromise: EventLoopPromise<Void>?
    private var stateMachine = TLSHandlerStateMachine()
    private var timerPurpose = TimerPurpose.handshake
    private var closeMode: CloseMode = .all
    private var closeIssued = false
    private var deliveredPlaintextThisRead = false

    /// A server handler: the handshake starts on `front`, whose SNI callback picks the certificate.
    public convenience init(
        serverFront front: OpenSSLFrontContext,
        configuration: Configuration = Configuration(),
        logger: Logger
    ) throws(OpenSSLError) {
        self.init(
            connection: try .server(front: front),
            settings: Settings(configuration: configuration, logger: logger),
            timers: nil
        )
    }

    /// A server handler whose timeouts wait in `timers`, its event loop's queue, and whose buffers come
    /// from the loop's `recycler`.
    convenience init(
        serverFront front: OpenSSLFrontContext,
        settings: Settings,
        timers: TimerQueue,
        recycler: ByteBufferRecycler
    ) throws(OpenSSLError) {
        self.init(
            connection: try .server(front: front, recycler: recycler),
            settings: settings,
            timers: timers,
            recycler: recycler
        )
    }

    /// A client handler: sends `serverName` as SNI (checked against the certificate when `context` verifies).
    public convenience init(
        clientContext context: OpenSSLClientContext,
        serverName: String?,
        resuming session: OpenSSLSession? = nil,
        configuration: Configuration = Configuration(),
        logger: Logger
    ) throws(OpenSSLError) {
        self.init(
            connection: try .client(context: context, serverName: serverName, resuming: session),
            settings: Settings(configuration: configuration, logger: logger),
            timers: nil
        )
    }

    init(
        connection: OpenSSLConnection,
        settings: Settings,
        timers: TimerQueue?,
        recycler: ByteBufferRecycler? = nil
    ) {
        self.connection = connection
        self.settings = settings
        self.timers = timers
        self.recycler = recycler
    }

    deinit {
        timer?.cancel()
    }

    // MARK: Facts (event loop only)

    /// The subject of the peer's certificate (`/CN=…`), once the handshake is done.
    public var peerCertificateSubject: String? { connection.peerCertificateSubject }

    /// The session to resume on a later client connection.
    public var session: OpenSSLSession? { connection.session }

    // MARK: Lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { activate(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        failPendingWrites(ChannelError.ioOnClosedChannel)
    }

    public func channelActive(context: ChannelHandlerContext) {
        activate(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        if case .failPendingWrites(let duringHandshake) = stateMachine.channelInactive() {
            if duringHandshake {
                logger.debug("TLS peer \(peer(context)) closed the connection before completing the handshake")
                failPendingWrites(TLSHandlerError.closedDuringHandshake)
            } else {
                failPendingWrites(ChannelError.ioOnClosedChannel)
            }
        }
        if let closePromise {
            self.closePromise = nil
            closePromise.succeed()
        }
        context.fireChannelInactive()
    }

    private func activate(context: ChannelHandlerContext) {
        guard stateMachine.channelActive() == .beginHandshake else { return }
        startTimer(.handshake, in: configuration.handshakeTimeout, context: context)
        if connection.role == .client { continueHandshake(context: context) }
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let ciphertext = unwrapInboundIn(data)
        switch stateMachine.ciphertextReceived() {
        case .discard:
            return
        case .continueHandshake:
            connection.feed(ciphertext)
            continueHandshake(context: context)
        case .decrypt:
            connection.feed(ciphertext)
            decrypt(context: context)
        }
        // Not while OpenSSL waits for the rest of a record: the next read is appended to what it holds.
        if let recycler, connection.isCiphertextInputDrained { recycler.recycle(ciphertext) }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        // Nothing reached the handlers above (handshake bytes, a partial record): they may be waiting
        // for data before asking to read, so ask on their behalf or the connection stalls.
        let askForMore = !deliveredPlaintextThisRead
            && (stateMachine.state == .handshaking || stateMachine.state == .active)
        deliveredPlaintextThisRead = false
        context.fireChannelReadComplete()
        if askForMore { context.read() }
    }

    private func continueHandshake(context: ChannelHandlerContext) {
        switch connection.handshake() {
        case .wantsMoreInput:
            writeCiphertext(context: context)
        case .failed(let error):
            handshakeFailed(context: context, error: error)
        case .complete:
            writeCiphertext(context: context)
            guard stateMachine.handshakeCompleted() == .announceAndDrainPending else { return }
            cancelTimer()
            let event = TLSHandshakeCompletedEvent(
                serverName: connection.serverName,
                alpnProtocol: connection.negotiatedALPN,
                protocolVersion: connection.protocolVersion,
                sessionReused: connection.sessionReused
            )
            logger.debug(
                "TLS handshake completed with \(peer(context))",
                metadata: [
                    "tls.sni": "\(event.serverName ?? "-")", "tls.alpn": "\(event.alpnProtocol ?? "-")",
                    "tls.version": "\(event.protocolVersion)", "tls.resumed": "\(event.sessionReused)",
                ]
            )
            configuration.observer?.handshakeCompleted(event)
            context.fireUserInboundEventTriggered(event)
            if pendingWrites.hasMark, stateMachine.flush() == .encryptFlushedWrites {
                encryptFlushedWrites(context: context)
            }
            // Application data may have arrived with the handshake's last flight.
            if stateMachine.state == .active { decrypt(context: context) }
        }
    }

    private func decrypt(context: ChannelHandlerContext) {
        // NIO's default allocator, as the connection's ciphertext buffers use (`context.channel.allocator`
        // costs retains per read). The handler that reads the plaintext recycles it once done with it.
        let capacity = connection.plaintextCapacityForNextRead
        var plaintext = recycler?.buffer(capacity: capacity) ?? ByteBufferAllocator().buffer(capacity: capacity)
        let result = connection.read(into: &plaintext)
        if plaintext.readableBytes > 0 {
            deliveredPlaintextThisRead = true
            context.fireChannelRead(wrapInboundOut(plaintext))
        } else {
            // Only part of a record so far: the buffer was not needed.
            recycler?.recycle(plaintext)
        }
        switch result {
        case .wantsMoreInput:
            // Reading can produce output too (a TLS 1.3 key update answer).
            writeCiphertext(context: context)
        case .closeNotifyReceived:
            guard stateMachine.closeNotifyReceived() == .answerAndClose else { return }
            logger.debug("TLS peer \(peer(context)) sent close_notify")
            failPendingWrites(ChannelError.ioOnClosedChannel)
            _ = connection.shutdown()
            flushThenClose(context: context, mode: .all, promise: nil)
        case .failed(let error):
            guard stateMachine.readFailed() == .sendAlertAndClose else { return }
            logger.info("TLS connection from \(peer(context)) failed: \(error.reason)", metadata: ["tls.error": "\(error)"])
            context.fireErrorCaught(error)
            failPendingWrites(error)
            flushThenClose(context: context, mode: .all, promise: nil)
        }
    }

    private func handshakeFailed(context: ChannelHandlerContext, error: OpenSSLError) {
        guard stateMachine.handshakeFailed() == .sendAlertAndClose else { return }
        cancelTimer()
        let verb = error.code == .unrecognizedServerName ? "refused" : "failed"
        configuration.observer?.handshakeFailed(reason: error.code == .unrecognizedServerName ? .unrecognizedName : .protocolError)
        logger.info("TLS handshake \(verb) from \(peer(context)): \(error.reason)", metadata: ["tls.error": "\(error)"])
        context.fireErrorCaught(error)
        failPendingWrites(error)
        flushThenClose(context: context, mode: .all, promise: nil)
    }

    private func handshakeTimedOut(context: ChannelHandlerContext) {
        guard stateMachine.handshakeTimedOut() == .closeForTimeout else { return }
        let error = TLSHandlerError.handshakeTimedOut(after: configuration.handshakeTimeout)
        configuration.observer?.handshakeFailed(reason: .timeout)
        logger.info("TLS handshake from \(peer(context)) timed out after \(configuration.handshakeTimeout.nanoseconds / 1_000_000)ms")
        context.fireErrorCaught(error)
        failPendingWrites(error)
        context.close(promise: nil)
    }

    // MARK: Outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let plaintext = unwrapOutboundIn(data)
        switch stateMachine.write() {
        case .fail:
            promise?.fail(ChannelError.ioOnClosedChannel)
        case .buffer:
            let limit = configuration.maximumBufferedPlaintextBytes
            guard pendingPlaintextBytes + plaintext.readableBytes <= limit else {
                promise?.fail(TLSHandlerError.tooMuchBufferedPlaintext(limit: limit))
                return
            }
            pendingPlaintextBytes += plaintext.readableBytes
            pendingWrites.append(PendingWrite(plaintext: plaintext, promise: promise))
        }
    }

    public func flush(context: ChannelHandlerContext) {
        if !pendingWrites.isEmpty { pendingWrites.mark() }
        switch stateMachine.flush() {
        case .encryptFlushedWrites: encryptFlushedWrites(context: context)
        case .waitForHandshake, .none: break
        }
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode != .input else {
            context.close(mode: mode, promise: promise)
            return
        }
        switch stateMachine.closeRequested() {
        case .closeNow:
            cancelTimer()
            failPendingWrites(ChannelError.ioOnClosedChannel)
            context.close(mode: mode, promise: promise)
        case .joinPendingClose:
            joinClose(promise)
        case .sendCloseNotifyAndClose:
            failPendingWrites(ChannelError.ioOnClosedChannel)
            if case .failed(let error) = connection.shutdown() {
                logger.debug("TLS shutdown with \(peer(context)) failed: \(error)")
            }
            flushThenClose(context: context, mode: mode, promise: promise)
        }
    }

    /// Encrypts every write up to the flush mark (small ones copied together so they share records)
    /// and writes the ciphertext once; the writes' promises complete with that one write.
    private func encryptFlushedWrites(context: ChannelHandlerContext) {
        var promises: [EventLoopPromise<Void>] = []
        var coalesced: ByteBuffer?
        var failure: OpenSSLError?

        func encrypt(_ plaintext: ByteBuffer) {
            guard failure == nil else { return }
            if case .failed(let error) = connection.write(plaintext) { failure = error }
        }

        // A lone small write is encrypted as it is; a copy buffer is made only once a second one joins it.
        var single: ByteBuffer?
        while pendingWrites.hasMark, let write = pendingWrites.popFirst() {
            pendingPlaintextBytes -= write.plaintext.readableBytes
            if let promise = write.promise { promises.append(promise) }
            if write.plaintext.readableBytes >= Self.coalescingLimit {
                if let pending = single.take() { encrypt(pending) }
                if let pending = coalesced.take() { encrypt(pending) }
                encrypt(write.plaintext)
            } else if coalesced == nil && single == nil {
                single = write.plaintext
            } else {
                var plaintext = write.plaintext
                if coalesced == nil {
                    coalesced = context.channel.allocator.buffer(capacity: Self.coalescingLimit)
                    if var first = single.take() { coalesced!.writeBuffer(&first) }
                }
                coalesced!.writeBuffer(&plaintext)
                if coalesced!.readableBytes >= Self.coalescingLimit, let pending = coalesced.take() { encrypt(pending) }
            }
        }
        if let pending = single.take() { encrypt(pending) }
        if let pending = coalesced.take() { encrypt(pending) }

        if let failure {
            promises.forEach { $0.fail(failure) }
            logger.info("TLS write to \(peer(context)) failed: \(failure.reason)", metadata: ["tls.error": "\(failure)"])
            context.fireErrorCaught(failure)
            if stateMachine.readFailed() == .sendAlertAndClose {
                flushThenClose(context: context, mode: .all, promise: nil)
            }
            return
        }
        writeCiphertext(context: context, promise: Self.combine(promises, on: context.eventLoop))
    }

    /// Writes and flushes whatever ciphertext OpenSSL produced.
    private func writeCiphertext(context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil) {
        guard let ciphertext = connection.takeCiphertext() else {
            promise?.succeed()
            return
        }
        context.writeAndFlush(wrapOutboundOut(ciphertext), promise: promise)
        recycler?.recycle(ciphertext)
    }

    /// Flushes the last ciphertext (`close_notify` or an alert), then closes once it is written, or
    /// after `closeTimeout` when the peer does not read.
    private func flushThenClose(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        closeMode = mode
        joinClose(promise)
        guard let ciphertext = connection.takeCiphertext() else {
            finishClose(context: context)
            return
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(ciphertext), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in self.finishClose(context: context) }
        if !closeIssued {
            startTimer(.close, in: configuration.closeTimeout, context: context)
        }
    }

    private func finishClose(context: ChannelHandlerContext) {
        guard !closeIssued else { return }
        closeIssued = true
        cancelTimer()
        let promise = closePromise
        closePromise = nil
        context.close(mode: closeMode, promise: promise)
    }

    private func joinClose(_ promise: EventLoopPromise<Void>?) {
        guard let promise else { return }
        if let closePromise {
            closePromise.futureResult.cascade(to: promise)
        } else {
            closePromise = promise
        }
    }

    // MARK: Helpers

    /// The error is made only when a write waits: boxing it as `any Error` is an allocation, and every
    /// connection passes here two or three times on its way out with nothing pending.
    private func failPendingWrites(_ error: @autoclosure () -> any Error) {
        guard !pendingWrites.isEmpty else { return }
        let error = error()
        while let write = pendingWrites.popFirst() {
            write.promise?.fail(error)
        }
        pendingPlaintextBytes = 0
    }

    private func startTimer(_ purpose: TimerPurpose, in timeout: TimeAmount, context: ChannelHandlerContext) {
        timerPurpose = purpose
        if timer == nil {
            // Unowned: the queue holds the timer until its deadline; the handler cancels it when removed.
            let fired: () -> Void = { [unowned self, unowned context] in self.timerFired(context: context) }
            timer = if let timers { DeadlineTimer(queue: timers, action: fired) }
                else { DeadlineTimer(eventLoop: context.eventLoop, action: fired) }
        }
        timer?.arm(in: timeout)
    }

    private func timerFired(context: ChannelHandlerContext) {
        switch timerPurpose {
        case .handshake: handshakeTimedOut(context: context)
        case .close: finishClose(context: context)
        }
    }

    /// Takes the timer out of the queue and drops it.
    private func cancelTimer() {
        timer?.cancel()
        timer = nil
    }

    /// The loop is asked for only when promises must be combined: reading it costs retains per flush.
    private static func combine(_ promises: [EventLoopPromise<Void>], on eventLoop: @autoclosure () -> any EventLoop)
        -> EventLoopPromise<Void>?
    {
        guard promises.count > 1 else { return promises.first }
        let combined = eventLoop().makePromise(of: Void.self)
        for promise in promises { combined.futureResult.cascade(to: promise) }
        return combined
    }

    /// The remote end for log lines, worked out only when a line is written (messages are autoclosures):
    /// formatting it for every connection cost a string and a metadata dictionary per handshake.
    private func peer(_ context: ChannelHandlerContext) -> String {
        Self.describe(context.channel.remoteAddress)
    }

    /// `127.0.0.1:5555` / `[::1]:5555` for log lines.
    private static func describe(_ address: SocketAddress?) -> String {
        guard let address else { return "unknown peer" }
        guard let ip = address.ipAddress else { return "\(address)" }
        let port = address.port.map(String.init) ?? "?"
        if case .v6 = address { return "[\(ip)]:\(port)" }
        return "\(ip):\(port)"
    }
}

@available(*, unavailable)
extension TLSHandler: Sendable {}
