import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP response from the ACME server, body read whole (ACME bodies are small; capped anyway).
public struct ACMEHTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders, body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// The transport the ACME client talks through; tests can replace it.
public protocol ACMETransport: Sendable {
    func send(method: HTTPMethod, url: String, contentType: String?, body: [UInt8]) async throws -> ACMEHTTPResponse
}

/// A minimal HTTPS/1.1 client on NIO and the project's OpenSSL client (no second TLS stack): one
/// connection per request, closed after the response. ACME makes a handful of requests per order, so
/// the handshake per request (a few ms on a LAN) is not worth a pool.
public final class ACMEHTTPClient: ACMETransport {
    private let group: any EventLoopGroup
    private let tls: OpenSSLClientContext
    private let timeout: TimeAmount
    private let logger: Logger
    static let maximumBodyBytes = 1 << 20

    public init(
        trustRoots: OpenSSLClientContext.TrustRoots,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        timeout: TimeAmount = .seconds(30),
        logger: Logger
    ) throws {
        self.group = group
        self.tls = try OpenSSLClientContext(alpnProtocols: [.http1_1], trustRoots: trustRoots)
        self.timeout = timeout
        self.logger = logger
    }

    public func send(method: HTTPMethod, url: String, contentType: String?, body: [UInt8]) async throws -> ACMEHTTPResponse {
        guard let components = URLComponents(string: url), components.scheme == "https",
            let host = components.host, !host.isEmpty
        else { throw ACMEError(.invalidURL, "ACME URL \(url) is not an https URL") }
        let port = components.port ?? 443
        var target = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        if let query = components.percentEncodedQuery { target += "?\(query)" }

        var headers = HTTPHeaders()
        headers.add(name: "Host", value: components.port.map { "\(host):\($0)" } ?? host)
        headers.add(name: "User-Agent", value: "edge-router-acme/1")
        headers.add(name: "Accept", value: "*/*")
        headers.add(name: "Connection", value: "close")
        if let contentType { headers.add(name: "Content-Type", value: contentType) }
        if method == .POST || !body.isEmpty { headers.add(name: "Content-Length", value: String(body.count)) }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: target, headers: headers)

        let loop = group.next()
        let promise = loop.makePromise(of: ACMEHTTPResponse.self)
        let tls = self.tls
        let logger = self.logger
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        // An IP literal host is checked against the certificate's IP SANs, without SNI.
                        try pipeline.addHandler(TLSHandler(clientContext: tls, serverName: host, logger: logger))
                        try pipeline.addHTTPClientHandlers()
                        try pipeline.addHandler(ACMEResponseCollector(promise: promise, limit: Self.maximumBodyBytes))
                    }
                }
                .connect(host: host, port: port)
                .get()
        } catch {
            promise.fail(error)
            throw ACMEError(.connectionFailed, "cannot connect to the ACME server at \(host):\(port): \(error)")
        }
        let timeoutTask = loop.scheduleTask(in: timeout) {
            promise.fail(ACMEError(.timedOut, "no response from \(url) within \(self.timeout)"))
            channel.close(promise: nil)
        }
        defer { timeoutTask.cancel() }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if !body.isEmpty {
            channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        do {
            // A cancelled order (shutdown, domain dropped) does not wait for the response.
            let response = try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                promise.fail(CancellationError())
            }
            channel.close(promise: nil)
            return response
        } catch is CancellationError {
            channel.close(promise: nil)
            throw CancellationError()
        } catch let error as ACMEError {
            channel.close(promise: nil)
            throw error
        } catch {
            channel.close(promise: nil)
            throw ACMEError(.connectionFailed, "\(method) \(url) failed: \(error)")
        }
    }
}

/// Collects one response; completes the promise at its end, or with the error / early close.
private final class ACMEResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<ACMEHTTPResponse>
    private let limit: Int
    private var head: HTTPResponseHead?
    private var body: [UInt8] = []

    init(promise: EventLoopPromise<ACMEHTTPResponse>, limit: Int) {
        self.promise = promise
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(let buffer):
            guard body.count + buffer.readableBytes <= limit else {
                promise.fail(ACMEError(.unexpectedResponse, "ACME response body larger than \(limit) bytes"))
                context.close(promise: nil)
                return
            }
            body += buffer.readableBytesView
        case .end:
            guard let head else { return }
            promise.succeed(ACMEHTTPResponse(status: Int(head.status.code), headers: head.headers, body: body))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ACMEError(.connectionFailed, "the ACME server closed the connection before the response ended"))
        context.fireChannelInactive()
    }
}
