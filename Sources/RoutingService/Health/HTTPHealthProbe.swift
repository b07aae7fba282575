import NIOCore
import NIOPosix

/// One active HTTP check: connect, `GET path`, read the status line. 2xx and 3xx are healthy;
/// anything else, a refused or reset connection, or no status line within `timeout` is not.
public struct HTTPHealthProbe: Sendable {
    public enum Outcome: Sendable, Equatable {
        case healthy(status: Int)
        case unhealthy(reason: String)

        public var isHealthy: Bool {
            if case .healthy = self { return true }
            return false
        }
    }

    public var endpoint: ListenAddress
    public var path: String
    public var timeout: Duration

    public init(endpoint: ListenAddress, path: String, timeout: Duration) {
        self.endpoint = endpoint
        self.path = path
        self.timeout = timeout
    }

    public func run(on group: any EventLoopGroup) async -> Outcome {
        let loop = group.next()
        let statusPromise = loop.makePromise(of: Int.self)
        let request = "GET \(path) HTTP/1.1\r\nHost: \(endpoint)\r\nUser-Agent: edge-router-health\r\nConnection: close\r\n\r\n"
        let timeAmount = TimeAmount(timeout)
        do {
            let channel = try await ClientBootstrap(group: loop)
                .connectTimeout(timeAmount)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(StatusLineReader(promise: statusPromise))
                    }
                }
                .connect(host: endpoint.host, port: endpoint.port)
                .get()
            let timer = channel.eventLoop.scheduleTask(in: timeAmount) {
                statusPromise.fail(HealthProbeError("no answer within \(timeout)"))
            }
            channel.writeAndFlush(ByteBuffer(string: request), promise: nil)
            defer {
                timer.cancel()
                channel.close(promise: nil)
            }
            let status = try await statusPromise.futureResult.get()
            return (200..<400).contains(status)
                ? .healthy(status: status) : .unhealthy(reason: "GET \(path) answered \(status)")
        } catch let error as HealthProbeError {
            return .unhealthy(reason: error.description)
        } catch {
            statusPromise.fail(error)
            return .unhealthy(reason: "\(error)")
        }
    }
}

struct HealthProbeError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads bytes until the end of the HTTP status line and completes the promise with its code.
private final class StatusLineReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let promise: EventLoopPromise<Int>
    private var received = ByteBuffer()

    init(promise: EventLoopPromise<Int>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
        guard let lineEnd = received.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if received.readableBytes > 1024 { promise.fail(HealthProbeError("no HTTP status line")) }
            return
        }
        let line = String(decoding: received.readableBytesView[..<lineEnd], as: UTF8.self)
        let parts = line.split(separator: " ", maxSplits: 2)
        if parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) {
            promise.succeed(status)
        } else {
            promise.fail(HealthProbeError("not an HTTP response: \(line.prefix(60))"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(HealthProbeError("connection closed before a status line"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
