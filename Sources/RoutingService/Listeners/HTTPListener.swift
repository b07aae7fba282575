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
    ) async throws -> any Channel {
        try await ServerBootstrap(group: runtime.eventLoopGroup)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try beforeFront?(channel)
                    try channel.pipeline.syncOperations.configureHTTPFront(mode: mode, runtime: runtime)
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}
