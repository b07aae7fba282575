import NIOCore

/// How a request body received over HTTP/2 (DATA frames) is framed towards an HTTP/1.1 instance.
enum HTTP2RequestBodyFraming: Equatable {
    /// The HEADERS frame ended the stream.
    case none
    /// The client declared a `content-length`: DATA payloads go on as they are.
    case length(Int)
    /// No length: DATA payloads go as chunks, the end as the last chunk.
    case chunked
}

/// Turns HTTP/2 request heads into the HTTP/1.1 heads the instances get, and HTTP/1.1 response heads
/// into HTTP/2 ones (RFC 9113 §8.2.2, RFC 9110 §7.6): connection-specific headers removed both ways,
/// the forwarding headers written the way `ForwardedHeadWriter` writes them for HTTP/1 clients.
enum HTTP2ForwardedHeads {
    /// The request's received-protocol in `Via` (RFC 9110 §7.6.3): the client spoke HTTP/2.
    static let requestVia: StaticString = "2 edge-router"
    /// The response came from the instance over HTTP/1.1.
    static let responseVia = ForwardedHeadWriter.viaFromHTTP11
    /// The name of the Host line, as bytes (a static string's bytes live as long as the program).
    private static var hostName: UnsafeRawBufferPointer {
        let name: StaticString = "Host"
        return UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
    }

    static func bodyFraming(of head: HTTP2RequestHead, endStream: Bool) -> HTTP2RequestBodyFraming {
        if endStream { return .none }
        if let length = head.contentLength { return .length(length) }
        return .chunked
    }

    /// The HTTP/1.1 request head: `METHOD PATH HTTP/1.1`, `Host` from `:authority` (else `host`), the
    /// other headers minus connection-specific ones, cookies joined into one header (RFC 9113 §8.2.3),
    /// framing for the body, then `X-Forwarded-For`/`-Proto`/`-Host`, `Forwarded` and `Via`.
    static func writeRequest(
        _ head: HTTP2RequestHead,
        framing: HTTP2RequestBodyFraming,
        context: ForwardingContext,
        into buffer: inout ByteBuffer
    ) {
        head.block.withUnsafeReadableBytes { raw in
            let appendix = writeRequestLineAndFields(head, framing: framing, bytes: raw, into: &buffer)
            writeForwarding(appendix, of: head, bytes: raw, context: context, into: &buffer)
        }
    }

    /// The request line, `Host`, the fields that pass and the framing; returns the earlier forwarding
    /// values the request carried. `bytes` is `head.block`'s readable bytes.
    static func writeRequestLineAndFields(
        _ head: HTTP2RequestHead,
        framing: HTTP2RequestBodyFraming,
        bytes raw: UnsafeRawBufferPointer,
        into buffer: inout ByteBuffer
    ) -> ForwardedHeadWriter.RequestAppendix {
        var appendix = ForwardedHeadWriter.RequestAppendix()
        var cookies: [Range<Int>] = []
        func write(_ range: Range<Int>) { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[range])) }
        /// `name: value\r\n` in one write (four writes would check capacity and uniqueness four times).
        func writeField(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: name.count + value.count + 4) { target in
                var at = 0
                func put(_ bytes: UnsafeRawBufferPointer) {
                    UnsafeMutableRawBufferPointer(rebasing: target[at..<(at + bytes.count)]).copyMemory(from: bytes)
                    at += bytes.count
                }
                put(name)
                target[at] = UInt8(ascii: ":")
                target[at + 1] = UInt8(ascii: " ")
                at += 2
                put(value)
                target[at] = UInt8(ascii: "\r")
                target[at + 1] = UInt8(ascii: "\n")
                return at + 2
            }
        }
        if let method = head.method { write(method) }
        buffer.writeStaticString(" ")
        if let path = head.path { write(path) } else { buffer.writeStaticString("/") }
        buffer.writeStaticString(" HTTP/1.1\r\n")
        if let hostRange = head.authority ?? head.host {
            writeField(Self.hostName, UnsafeRawBufferPointer(rebasing: raw[hostRange]))
        }
        for field in head.fields {
            if field.isCookie {
                cookies.append(field.value)
                continue
            }
            switch field.kind {
            case .xForwardedFor: appendix.previousForwardedFor.append(field.value)
            case .forwarded: appendix.previousForwarded.append(field.value)
            case .via: appendix.previousVia.append(field.value)
            case .host, .xForwardedProto, .xForwardedHost, .contentLength:
                break  // written below from what this proxy knows
            case .connection, .keepAlive, .proxyConnection, .te, .trailer, .transferEncoding, .upgrade,
                 .connectionNominated:
                break  // connection-specific: not in HTTP/2 (nghttp2 refuses them), never forwarded
            case .other:
                writeField(UnsafeRawBufferPointer(rebasing: raw[field.name]), UnsafeRawBufferPointer(rebasing: raw[field.value]))
            }
        }
        if !cookies.isEmpty {
            buffer.writeStaticString("cookie: ")
            for (index, cookie) in cookies.enumerated() {
                if index > 0 { buffer.writeStaticString("; ") }
                write(cookie)
            }
            buffer.writeStaticString("\r\n")
        }
        switch framing {
        case .none:
            if let length = head.contentLength { buffer.writeString("Content-Length: \(length)\r\n") }
        case .length(let length):
            buffer.writeString("Content-Length: \(length)\r\n")
        case .chunked:
            buffer.writeStaticString("Transfer-Encoding: chunked\r\n")
        }
        return appendix
    }

    /// The forwarding headers (as `ForwardedHeadWriter` writes them for HTTP/1 clients, `Via` naming
    /// HTTP/2) and the blank line that ends the head. `bytes` is `head.block`'s readable bytes.
    static func writeForwarding(
        _ appendix: ForwardedHeadWriter.RequestAppendix,
        of head: HTTP2RequestHead,
        bytes raw: UnsafeRawBufferPointer,
        context: ForwardingContext,
        into buffer: inout ByteBuffer
    ) {
        ForwardedHeadWriter.writeForwardingFields(
            appendix, host: head.authority ?? head.host, bytes: raw, context: context, via: requestVia, into: &buffer
        )
        buffer.writeStaticString("\r\n")
    }

    /// The HTTP/2 response head for an instance's HTTP/1.1 response: names lower-cased, hop-by-hop and
    /// `Connection`-nominated headers dropped, `content-length` kept only for a body of known length,
    /// `via` extended. Its field list is the one `spare` lends.
    static func response(
        _ head: HTTP1ResponseHead,
        bytes: UnsafeRawBufferPointer,
        framing: HTTP1BodyFraming,
        block: consuming ByteBuffer,
        fields spare: inout SpareFieldList<(name: Range<Int>, value: Range<Int>)>
    ) -> HTTP2ResponseHead {
        var response = HTTP2ResponseHead(status: head.status, block: consume block)
        spare.lend(to: &response.fields)
        response.fields.reserveCapacity(head.fields.count + 1)
        var previousVia: [Range<Int>] = []
        let keepContentLength: Bool
        switch framing {
        case .length, .none: keepContentLength = true
        case .chunked, .untilClose: keepContentLength = false
        }
        for field in head.fields {
            switch field.kind {
            case .via:
                if !field.value.isEmpty { previousVia.append(field.value) }
                continue
            case .contentLength where !keepContentLength:
                continue
            case .connection, .keepAlive, .proxyConnection, .te, .trailer, .transferEncoding, .upgrade,
                 .connectionNominated:
                continue
            default:
                break
            }
            response.append(
                lowercasing: UnsafeRawBufferPointer(rebasing: bytes[field.name]),
                value: UnsafeRawBufferPointer(rebasing: bytes[field.value])
            )
        }
        response.append(name: "via") { block in
            for range in previousVia {
                block.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[range]))
                block.writeStaticString(", ")
            }
            block.writeStaticString(responseVia)
        }
        return response
    }

    /// A response the proxy writes itself (421, 404, 400, 502, 504 …).
    static func localResponse(status: Int, bodyLength: Int, allocator: ByteBufferAllocator) -> HTTP2ResponseHead {
        var response = HTTP2ResponseHead(status: status, allocator: allocator)
        response.append(name: "content-type", value: "text/plain; charset=utf-8")
        response.append(name: "content-length", value: String(bodyLength))
        return response
    }
}
