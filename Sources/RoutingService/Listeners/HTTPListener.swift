import NIOCore
import NIOPosix

/// A minimal TCP listener whose connections get the HTTP front. The plain listener uses it as is;
/// the TLS listener puts its TLS handler first through `beforeFront`.
public enum HTTPListener {
    public static func bind(
        host: String,
        port: Int,
        mode: HTTPFrontMode,
        runtime: HTTPProxyRuntime,
        beforeFront: (@Sendable (any Channel) throws -> Void)? = nil
    ) async throws -> ListeningSockets {
        try await ListeningSockets.bind(group: runtime.eventLoopGroup, host: host, port: port) { bootstrap in
            bootstrap
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try beforeFront?(channel)
                        try channel.pipeline.syncOperations.configureHTTPFront(mode: mode, runtime: runtime)
                    }
                }
        }
    }
}
