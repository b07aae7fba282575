import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 client for the admin API (loopback, no TLS): one request per connection. Used by
/// the CLI's management commands and the tests.
public struct AdminClient: Sendable {
    public let host: String
    public let port: Int
    public let token: String?

    public init(host: String, port: Int, token: String?) {
        self.host = host
        self.port = port
        self.token = token
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var body: [UInt8]

        public var text: String { String(decoding: body, as: UTF8.self) }

        public var json: [String: Any]? {
            try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
        }
    }

    public var address: String { ListenAddress(host: host, port: port).description }

    public func send(
        _ method: HTTPMethod,
        _ path: String,
        body: [UInt8]? = nil,
        headers extra: [(String, String)] = []
    ) async throws(AdminClientError) -> Response {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(3))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                            wrappingChannelSynchronously: channel
                        )
                    }
                }
        } catch {
            throw AdminClientError.notRunning(address, "\(error)")
        }
        do {
            return try await channel.executeThenClose { inbound, outbound in
                var headers = HTTPHeaders(extra)
                headers.add(name: "Host", value: address)
                headers.add(name: "Connection", value: "close")
                headers.add(name: "Content-Length", value: String(body?.count ?? 0))
                if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
                var parts: [HTTPClientRequestPart] = [
                    .head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)),
                ]
                if let body { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                parts.append(.end(nil))
                // One write, and its failure does not end the exchange: the server answers once it has the
                // whole request and then closes (`Connection: close`), possibly before the write reports
                // back, so the answer may be here although the write saw the channel close.
                var writeError: (any Error)?
                do {
                    try await outbound.write(contentsOf: parts)
                } catch {
                    writeError = error
                }
                var response = Response(status: 0, headers: [:], body: [])
                for try await part in inbound {
                    switch part {
                    case .head(let head):
                        response.status = Int(head.status.code)
                        response.headers = head.headers
                    case .body(let buffer):
                        response.body += buffer.readableBytesView
                    case .end:
                        return response
                    }
                }
                if let writeError { throw writeError }
                throw AdminClientError.truncated(address)
            }
        } catch let error as AdminClientError {
            throw error
        } catch {
            throw AdminClientError.exchangeFailed(address, "\(error)")
        }
    }

    /// Like `send`, but a 401 becomes `AdminClientError.tokenRefused`.
    public func request(
        _ method: HTTPMethod,
        _ path: String,
        json: [String: Any]? = nil,
        body: [UInt8]? = nil,
        ifMatch: String? = nil
    ) async throws(AdminClientError) -> Response {
        var payload = body
        var headers: [(String, String)] = []
        if let json {
            payload = (try? JSONSerialization.data(withJSONObject: json)).map(Array.init)
            headers.append(("Content-Type", "application/json"))
        }
        if let ifMatch { headers.append(("If-Match", ifMatch)) }
        let response = try await send(method, path, body: payload, headers: headers)
        if response.status == 401 { throw AdminClientError.tokenRefused(address) }
        return response
    }
}

public enum AdminClientError: Error, CustomStringConvertible {
    case notRunning(String, String)
    case tokenRefused(String)
    case truncated(String)
    case exchangeFailed(String, String)

    public var description: String {
        switch self {
        case .notRunning(let address, let reason):
            "edge-router is not running at \(address) (\(reason)); start it with `edge-router run`, or check admin.listen and admin.tokenFile (without a token file the admin API does not start)"
        case .tokenRefused(let address):
            "the admin token was refused by \(address); check admin.tokenFile or --token-file"
        case .exchangeFailed(let address, let reason):
            "the admin API at \(address) failed during the request (\(reason))"
        case .truncated(let address):
            "the admin API at \(address) closed the connection before a whole response"
        }
    }
}
