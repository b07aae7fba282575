import NIOCore
import NIOPosix

/// Opens a raw byte channel to an instance on a given event loop. The proxy adds its HTTP client
/// handlers itself, so tests can hand back an `EmbeddedChannel` and see the exact bytes sent upstream.
public protocol UpstreamConnector: Sendable {
    /// The returned channel must live on `eventLoop`: the proxy relays between the client channel and
    /// it without hopping loops.
    func connect(to instance: UpstreamInstance, on eventLoop: any EventLoop, timeout: TimeAmount)
        -> EventLoopFuture<any Channel>
}

/// TCP connections with `TCP_NODELAY`, on the client channel's own event loop.
public struct SocketUpstreamConnector: UpstreamConnector {
    public init() {}

    public func connect(to instance: UpstreamInstance, on eventLoop: any EventLoop, timeout: TimeAmount)
        -> EventLoopFuture<any Channel>
    {
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        if let address = instance.socketAddress {
            return bootstrap.connect(to: address)
        }
        return bootstrap.connect(host: instance.endpoint.host, port: instance.endpoint.port)
    }
}
