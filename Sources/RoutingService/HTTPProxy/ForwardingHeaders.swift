import NIOHTTP1

/// Who the proxied request came from, for the forwarding headers.
public struct ForwardingContext: Sendable {
    /// The client's IP address as text (no port); nil when unknown.
    public var clientAddress: String?
    /// `https` behind the TLS listener, `http` on the plain one.
    public var scheme: String

    public init(clientAddress: String?, scheme: String) {
        self.clientAddress = clientAddress
        self.scheme = scheme
    }
}

/// The request head sent upstream and what the proxy learned while building it.
public struct ForwardedRequest {
    public var head: HTTPRequestHead
    /// The client asked for a WebSocket upgrade, and `Upgrade`/`Connection` were kept for it.
    public var isWebSocketUpgrade: Bool
    /// The client wants the connection closed after this response.
    public var clientWantsClose: Bool
}

/// The response head sent to the client and how it is framed.
public struct ForwardedResponse {
    public var head: HTTPResponseHead
    /// The body is delimited by closing the connection (HTTP/1.0 client, unknown length).
    public var closeDelimited: Bool
    /// The instance asked to close its connection: it must not go back to the pool.
    public var upstreamWantsClose: Bool
}

/// Header rewriting for the reverse proxy (RFC 9110 §7.6): hop-by-hop headers removed, framing
/// rebuilt, `X-Forwarded-*`, `Forwarded` (RFC 7239) and `Via` added. Pure functions over heads.
public enum ForwardingHeaders {
    public static let viaValue = "1.1 edge-router"

    /// Hop-by-hop headers always removed (plus every header named in `Connection`).
    static let hopByHop: [(name: String, flag: ForwardingHeaderScan.Names)] = [
        ("connection", .connection), ("keep-alive", .keepAlive), ("proxy-connection", .proxyConnection),
        ("te", .te), ("trailer", .trailer), ("transfer-encoding", .transferEncoding), ("upgrade", .upgrade),
    ]

    public static func request(_ incoming: HTTPRequestHead, context: ForwardingContext) -> ForwardedRequest {
        var headers = incoming.headers
        // Room for the five headers added below: one allocation instead of growth steps.
        headers.reserveCapacity(headers.count + 6)
        let scan = ForwardingHeaderScan(headers)
        let connectionTokens = scan.connection
        let upgradeValue = scan.contains(.upgrade) ? headers.first(name: "upgrade") : nil
        let isWebSocketUpgrade =
            connectionTokens.contains("upgrade") && upgradeValue.map { tokens([$0]).contains("websocket") } == true
        let isChunked = scan.contains(.transferEncoding)
        let clientWantsClose =
            connectionTokens.contains("close")
            || (incoming.version.major == 1 && incoming.version.minor == 0 && !connectionTokens.contains("keep-alive"))

        removeHopByHop(from: &headers, present: scan.present, connectionTokens: connectionTokens)
        if isWebSocketUpgrade, let upgradeValue {
            headers.add(name: "Upgrade", value: upgradeValue)
            headers.add(name: "Connection", value: "Upgrade")
        }
        // The decoder has already removed the client's chunking; the request is re-chunked upstream.
        if isChunked { headers.add(name: "Transfer-Encoding", value: "chunked") }

        let client = context.clientAddress ?? "unknown"
        let previousForwardedFor = scan.contains(.xForwardedFor) ? headers["x-forwarded-for"].joined(separator: ", ") : ""
        set(
            "X-Forwarded-For", to: previousForwardedFor.isEmpty ? client : "\(previousForwardedFor), \(client)",
            in: &headers, present: scan.contains(.xForwardedFor)
        )
        set("X-Forwarded-Proto", to: context.scheme, in: &headers, present: scan.contains(.xForwardedProto))
        let host = scan.host
        if let host { set("X-Forwarded-Host", to: host, in: &headers, present: scan.contains(.xForwardedHost)) }

        var element = "for=\(forwardedNode(context.clientAddress))"
        if let host { element += ";host=\(forwardedValue(host))" }
        element += ";proto=\(context.scheme)"
        let previousForwarded = scan.contains(.forwarded) ? headers["forwarded"].joined(separator: ", ") : ""
        set(
            "Forwarded", to: previousForwarded.isEmpty ? element : "\(previousForwarded), \(element)",
            in: &headers, present: scan.contains(.forwarded)
        )
        appendVia(to: &headers, present: scan.contains(.via))

        var head = HTTPRequestHead(version: .http1_1, method: incoming.method, uri: incoming.uri, headers: headers)
        head.version = .http1_1
        return ForwardedRequest(head: head, isWebSocketUpgrade: isWebSocketUpgrade, clientWantsClose: clientWantsClose)
    }

    /// - Parameters:
    ///   - requestMethod: the client's method (a response to HEAD has no body whatever its headers say).
    ///   - clientVersion: the client's HTTP version (HTTP/1.0 clients cannot take chunked bodies).
    ///   - clientWantsClose: add `Connection: close` because the client connection ends after this response.
    public static func response(
        _ incoming: HTTPResponseHead,
        requestMethod: HTTPMethod,
        clientVersion: HTTPVersion,
        clientWantsClose: Bool
    ) -> ForwardedResponse {
        var headers = incoming.headers
        let scan = ForwardingHeaderScan(headers)
        let connectionTokens = scan.connection
        let upstreamWantsClose =
            connectionTokens.contains("close") || (incoming.version.major == 1 && incoming.version.minor == 0 && !connectionTokens.contains("keep-alive"))

        if incoming.status == .switchingProtocols {
            // The upgrade answer keeps Upgrade and Connection: the client needs them.
            appendVia(to: &headers, present: scan.contains(.via))
            return ForwardedResponse(
                head: HTTPResponseHead(version: .http1_1, status: incoming.status, headers: headers),
                closeDelimited: false,
                upstreamWantsClose: true
            )
        }

        let wasChunked = scan.contains(.transferEncoding)
        removeHopByHop(from: &headers, present: scan.present, connectionTokens: connectionTokens)
        appendVia(to: &headers, present: scan.contains(.via))

        let status = incoming.status.code
        let bodiless = requestMethod == .HEAD || (100..<200).contains(status) || status == 204 || status == 304
        var closeDelimited = false
        if !bodiless {
            if wasChunked && scan.contains(.contentLength) { headers.remove(name: "content-length") }
            if wasChunked || !scan.contains(.contentLength) {
                if clientVersion.major == 1 && clientVersion.minor == 0 {
                    closeDelimited = true
                } else {
                    headers.add(name: "Transfer-Encoding", value: "chunked")
                }
            }
        }
        if (100..<200).contains(status) {
            // Informational answers (100 Continue) pass as they are, without connection management.
        } else if clientWantsClose || closeDelimited {
            headers.add(name: "Connection", value: "close")
        } else if clientVersion.major == 1 && clientVersion.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        return ForwardedResponse(
            head: HTTPResponseHead(version: clientVersion, status: incoming.status, headers: headers),
            closeDelimited: closeDelimited,
            upstreamWantsClose: upstreamWantsClose
        )
    }

    /// Lower-cased, trimmed, comma-separated tokens of one or more header values.
    static func tokens(_ values: [String]) -> Set<String> {
        var result = Set<String>()
        for value in values {
            for token in value.split(separator: ",") {
                let trimmed = token.trimmingSpaces
                if !trimmed.isEmpty { result.insert(trimmed.lowercased()) }
            }
        }
        return result
    }

    /// Removes only what `present` (from a `ForwardingHeaderScan`) says is there: each removal is a scan.
    private static func removeHopByHop(
        from headers: inout HTTPHeaders,
        present: ForwardingHeaderScan.Names,
        connectionTokens: ConnectionTokens
    ) {
        for hop in hopByHop where present.contains(hop.flag) { headers.remove(name: hop.name) }
        for name in connectionTokens.others { headers.remove(name: name) }
    }

    /// `replaceOrAdd`, or a plain `add` (no scan) when the scan found no such header.
    private static func set(_ name: String, to value: String, in headers: inout HTTPHeaders, present: Bool) {
        if present {
            headers.replaceOrAdd(name: name, value: value)
        } else {
            headers.add(name: name, value: value)
        }
    }

    private static func appendVia(to headers: inout HTTPHeaders, present: Bool) {
        let previous = present ? headers["via"].joined(separator: ", ") : ""
        set("Via", to: previous.isEmpty ? viaValue : "\(previous), \(viaValue)", in: &headers, present: present)
    }

    /// RFC 9110 tchar, checked on bytes (a Character set lookup costs a grapheme break per character).
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// RFC 7239 node: IPv4 as a token, IPv6 bracketed and quoted, unknown as `unknown`.
    static func forwardedNode(_ address: String?) -> String {
        guard let address else { return "unknown" }
        return address.contains(":") ? "\"[\(address)]\"" : address
    }

    /// A token when every character is a tchar, else a quoted string.
    static func forwardedValue(_ value: String) -> String {
        if !value.isEmpty && value.utf8.allSatisfy(isTokenByte) { return value }
        var quoted = "\""
        for character in value {
            if character == "\\" || character == "\"" { quoted.append("\\") }
            quoted.append(character)
        }
        quoted.append("\"")
        return quoted
    }
}
