import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin API listener (HTTP/1.1, JSON) on `admin.listen`. Each connection reads whole requests
/// (bounded), hands them to the `AdminRouter` and writes its answer; keep-alive is honoured.
public struct AdminServer: Sendable {
    public static let maximumBodyBytes = 4 << 20

    public let router: AdminRouter
    private let serverChannel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
    private let logger: Logger

    public var localAddress: SocketAddress? { serverChannel.channel.localAddress }

    public static func bind(
        host: String,
        port: Int,
        router: AdminRouter,
        group: any EventLoopGroup,
        logger: Logger
    ) async throws -> AdminServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                        wrappingChannelSynchronously: channel
                    )
                }
            }
        return AdminServer(router: router, serverChannel: channel, logger: logger)
    }

    /// Serves until the task is cancelled or `close()` is called.
    public func run() async {
        do {
            try await withThrowingDiscardingTaskGroup { group in
                try await serverChannel.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask { await serve(connection) }
                    }
                }
            }
        } catch {
            logger.debug("Admin API listener ended", metadata: ["error": "\(error)"])
        }
    }

    public func close() async {
        try? await serverChannel.channel.close()
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body: [UInt8] = []
                var tooLarge = false
                for try await part in inbound {
                    switch part {
                    case .head(let received):
                        head = received
                        body.removeAll(keepingCapacity: true)
                        tooLarge = false
                    case .body(let buffer):
                        if body.count + buffer.readableBytes > Self.maximumBodyBytes {
                            tooLarge = true
                        } else {
                            body += buffer.readableBytesView
                        }
                    case .end:
                        guard let request = head else { continue }
                        let response = tooLarge
                            ? AdminResponse.error(.payloadTooLarge, "the body is larger than \(Self.maximumBodyBytes) bytes")
                            : await router.handle(AdminRequest(method: request.method, uri: request.uri,
                                                               headers: request.headers, body: body))
                        let keepAlive = request.isKeepAlive && !tooLarge
                        try await write(response, keepAlive: keepAlive, to: outbound)
                        logger.debug("admin request", metadata: [
                            "method": "\(request.method.rawValue)", "uri": "\(request.uri)",
                            "status": "\(response.status.code)",
                        ])
                        if !keepAlive { return }
                        head = nil
                    }
                }
            }
        } catch {
            logger.debug("Admin API connection ended", metadata: ["error": "\(error)"])
        }
    }

    private func write(
        _ response: AdminResponse,
        keepAlive: Bool,
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        var headers = HTTPHeaders(response.headers)
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(response.body.count))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers)))
        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
        try await outbound.write(.end(nil))
    }
}
