import Foundation
import NIOCore
import NIOHTTP1

/// One admin API request, read whole (bodies are small: a domain, a PEM pair, a config file).
public struct AdminRequest: Sendable {
    public var method: HTTPMethod
    /// The path without its query, split into percent-decoded segments: `/domains/a.test` → `["domains", "a.test"]`.
    public var segments: [String]
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(method: HTTPMethod, uri: String, headers: HTTPHeaders, body: [UInt8]) {
        self.method = method
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        self.segments = path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        self.headers = headers
        self.body = body
    }

    public var ifMatch: String? { headers.first(name: "if-match") }

    /// The body as a JSON object, or a 400 saying why not.
    func jsonObject() throws(AdminResponse) -> [String: Any] {
        guard !body.isEmpty else { throw AdminResponse.error(.badRequest, "the request needs a JSON object body") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw AdminResponse.error(.badRequest, "the body is not a JSON object")
        }
        return object
    }
}

/// An admin API answer: always JSON.
public struct AdminResponse: Error, Sendable {
    public var status: HTTPResponseStatus
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: HTTPResponseStatus, headers: [(String, String)] = [], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// `object` must be made of JSON types (dictionaries, arrays, strings, numbers, booleans, NSNull).
    public static func json(_ status: HTTPResponseStatus, _ object: Any, headers: [(String, String)] = []) -> AdminResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]))
            ?? Data("{}".utf8)
        return AdminResponse(status: status, headers: headers, body: Array(data) + [0x0A])
    }

    public static func error(_ status: HTTPResponseStatus, _ message: String, extra: [String: Any] = [:]) -> AdminResponse {
        var object = extra
        object["error"] = message
        return json(status, object)
    }
}
