import NIOCore

/// Idle keep-alive connections to one instance for one balancer on one event loop. Touched only on
/// that loop, so it needs no lock. Connections are reused last-in first-out so that the warmest stay
/// in use and the rest time out.
final class UpstreamConnectionPool: UpstreamConnectionDelegate {
    let instance: UpstreamInstance
    /// The loop's timer queue, where idle connections' timeouts wait.
    let timers: TimerQueue
    var eventLoop: any EventLoop { timers.eventLoop }
    private var idle: [UpstreamConnection] = []
    static let maximumIdle = 256

    init(instance: UpstreamInstance, timers: TimerQueue) {
        self.instance = instance
        self.timers = timers
    }

    var idleCount: Int { idle.count }

    /// An open idle connection, or nil when a new one must be made.
    func leaseIdle() -> UpstreamConnection? {
        while let connection = idle.popLast() {
            connection.disarmIdleTimer()
            // `isClosed` alone: a channel that goes inactive tells its handler, which marks the connection
            // closed (asking the channel too cost a retain, a release and an atomic load per request).
            if !connection.isClosed {
                connection.delegate = nil
                return connection
            }
        }
        return nil
    }

    func connect(using connector: any UpstreamConnector, timeout: TimeAmount) -> EventLoopFuture<UpstreamConnection> {
        let instance = self.instance
        return connector.connect(to: instance, on: eventLoop, timeout: timeout).flatMapThrowing { channel in
            try UpstreamConnection.attach(to: channel, instance: instance)
        }
    }

    /// Connects a new connection for `exchange` (when no idle one was there). Once it is ready or has
    /// failed, `stillWanted` says whether the exchange still waits for this instance; a ready connection
    /// nobody wants any more joins the pool. A failed connect marks the instance down and reaches
    /// `failed` (when still wanted) as the failure the client is told of. Runs on the pool's loop.
    func connectNew(
        for exchange: ProxyExchange,
        runtime: HTTPProxyRuntime,
        stillWanted: @escaping () -> Bool,
        ready: @escaping (UpstreamConnection) -> Void,
        failed: @escaping (UpstreamFailure) -> Void
    ) {
        let timeout = exchange.routes.upstreamTimeouts.connect
        let idleTimeout = exchange.routes.upstreamTimeouts.idle
        let markDownDuration = runtime.markDownDuration
        let instance = self.instance
        connect(using: runtime.connector, timeout: timeout).assumeIsolated().whenComplete { result in
            let wanted = stillWanted() && exchange.instance === instance
            switch result {
            case .success(let connection):
                if wanted {
                    ready(connection)
                } else {
                    self.release(connection, idleTimeout: idleTimeout)
                }
            case .failure(let error):
                instance.markDown(until: .now() + markDownDuration)
                guard wanted else { return }
                if let channelError = error as? ChannelError, case .connectTimeout = channelError {
                    failed(.connectTimedOut(timeout))
                } else {
                    failed(.refused(error))
                }
            }
        }
    }

    /// Takes back a connection whose last exchange completed cleanly; it is closed after `idleTimeout`.
    func release(_ connection: UpstreamConnection, idleTimeout: TimeAmount) {
        guard !connection.isClosed, idle.count < Self.maximumIdle, !instance.isRetired else {
            connection.close()
            return
        }
        connection.delegate = self
        connection.armIdleTimer(in: idleTimeout, on: timers)
        idle.append(connection)
        // A read held back while the client was slow must resume, or a close would go unnoticed.
        connection.resumeReading()
    }

    func closeAll() {
        let connections = idle
        idle.removeAll()
        for connection in connections { connection.close() }
    }

    // MARK: idle connections' events

    // An idle connection must stay silent: its handler refuses any byte ("after the end of a
    // response") and closes, which arrives here as `upstreamClosed`.
    func upstreamInformational(_ connection: UpstreamConnection, head: ByteBuffer) {}
    func upstreamResponseHead(
        _ connection: UpstreamConnection, head: HTTP1ResponseHead, bytes: ByteBuffer, framing: HTTP1BodyFraming
    ) -> UpstreamBodyDelivery { .raw }
    func upstreamResponseBody(_ connection: UpstreamConnection, _ bytes: ByteBuffer) {}
    func upstreamResponseEnd(_ connection: UpstreamConnection) {}
    func upstreamTunnelBytes(_ connection: UpstreamConnection, _ bytes: ByteBuffer) {}
    func upstreamReadComplete(_ connection: UpstreamConnection) {}
    func upstreamWritabilityChanged(_ connection: UpstreamConnection) {}

    func upstreamClosed(_ connection: UpstreamConnection, error: (any Error)?) {
        remove(connection)
    }

    var upstreamMayRead: Bool { true }

    private func remove(_ connection: UpstreamConnection) {
        idle.removeAll { $0 === connection }
    }
}
