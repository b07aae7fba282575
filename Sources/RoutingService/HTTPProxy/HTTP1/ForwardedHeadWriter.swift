import NIOCore

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

/// How a response body goes to the client, given how the instance framed it and what the client speaks.
enum HTTP1ResponseRelay: Equatable {
    /// No body (HEAD, 1xx, 204, 304, or an empty one).
    case none
    /// The body's bytes as they came (fixed length; chunked to an HTTP/1.1 client; until close to HTTP/1.0).
    case passThrough
    /// Delimited by close upstream, chunked for an HTTP/1.1 client so its connection can stay open.
    case encodeChunks
    /// Chunked upstream, payload only for an HTTP/1.0 client (which cannot take chunked), ended by close.
    case decodeChunks

    init(framing: HTTP1BodyFraming, clientMinorVersion: Int) {
        switch framing {
        case .none, .length(0): self = .none
        case .length: self = .passThrough
        case .chunked: self = clientMinorVersion == 0 ? .decodeChunks : .passThrough
        case .untilClose: self = clientMinorVersion == 0 ? .passThrough : .encodeChunks
        }
    }
}

/// The forwarding headers a connection last wrote for a request that carried none of its own, and the
/// Host they were written for. On one connection they are then the same bytes request after request (the
/// client's address and the scheme do not change): made once, copied after.
struct ForwardingFieldsCache {
    private var host: String?
    private var bytes: ByteBuffer?

    /// Copies the kept bytes when they were made for `host`; else makes them with `make`, keeps them and
    /// copies them.
    mutating func write(forHost host: String?, into buffer: inout ByteBuffer, making make: (inout ByteBuffer) -> Void) {
        if let bytes, self.host == host {
            buffer.writeImmutableBuffer(bytes)
            return
        }
        var made = ByteBufferAllocator().buffer(capacity: 256)
        make(&made)
        self.host = host
        bytes = made
        buffer.writeImmutableBuffer(made)
    }
}

/// Writes the heads the proxy forwards (RFC 9110 §7.6): the received header lines copied as bytes,
/// minus the hop-by-hop ones; `X-Forwarded-For`/`-Proto`/`-Host`, `Forwarded` (RFC 7239) and `Via`
/// set or extended; framing headers rewritten for the next hop.
enum ForwardedHeadWriter {
    /// This hop in `Via` (RFC 9110 §7.6.3) when the message came to it over HTTP/1.1.
    static let viaFromHTTP11: StaticString = "1.1 edge-router"

    /// The header values a request carried that the forwarding headers extend or keep.
    struct RequestAppendix {
        var previousForwardedFor: [Range<Int>] = []
        var previousForwarded: [Range<Int>] = []
        var previousVia: [Range<Int>] = []
        var upgradeValue: Range<Int>?

        /// Nothing of the request goes into the forwarding headers but its Host: for one connection
        /// they are then the same bytes request after request.
        var dependsOnlyOnHost: Bool {
            previousForwardedFor.isEmpty && previousForwarded.isEmpty && previousVia.isEmpty && upgradeValue == nil
        }
    }

    /// The request head for the instance, in HTTP/1.1.
    static func writeRequest(
        _ head: HTTP1RequestHead,
        bytes: UnsafeRawBufferPointer,
        context: ForwardingContext,
        into buffer: inout ByteBuffer
    ) {
        let appendix = writeRequestLineAndFields(head, bytes: bytes, into: &buffer)
        writeAppendix(appendix, of: head, bytes: bytes, context: context, into: &buffer)
    }

    /// The request line (method and target as received, version 1.1) and the header lines that pass
    /// unchanged; returns what the forwarding headers need from the others.
    static func writeRequestLineAndFields(
        _ head: HTTP1RequestHead,
        bytes: UnsafeRawBufferPointer,
        into buffer: inout ByteBuffer
    ) -> RequestAppendix {
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[0..<(head.target.upperBound + 1)]))
        buffer.writeStaticString("HTTP/1.1\r\n")
        var appendix = RequestAppendix()
        copyFields(head.fields, bytes: bytes, headLength: head.length, into: &buffer) { field in
            switch field.kind {
            case .xForwardedFor: appendix.previousForwardedFor.append(field.value)
            case .forwarded: appendix.previousForwarded.append(field.value)
            case .via: appendix.previousVia.append(field.value)
            case .upgrade: if appendix.upgradeValue == nil { appendix.upgradeValue = field.value }
            default: break
            }
        }
        return appendix
    }

    /// The framing, upgrade and forwarding headers, and the blank line that ends the head.
    static func writeAppendix(
        _ appendix: RequestAppendix,
        of head: HTTP1RequestHead,
        bytes: UnsafeRawBufferPointer,
        context: ForwardingContext,
        into buffer: inout ByteBuffer
    ) {
        if head.isWebSocketUpgrade, let upgradeValue = appendix.upgradeValue {
            buffer.writeStaticString("Upgrade: ")
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[upgradeValue]))
            buffer.writeStaticString("\r\nConnection: Upgrade\r\n")
        }
        if head.framing == .chunked { buffer.writeStaticString("Transfer-Encoding: chunked\r\n") }
        writeForwardingFields(appendix, host: head.host, bytes: bytes, context: context, via: viaFromHTTP11, into: &buffer)
        buffer.writeStaticString("\r\n")
    }

    /// `X-Forwarded-For`, `-Proto`, `-Host`, `Forwarded` and `Via`, each extending the values the request
    /// carried (`appendix`, `host`: ranges in `bytes`); `via` is this hop as `Via` names it (the protocol
    /// the client spoke). Shared by the HTTP/1 and HTTP/2 fronts.
    static func writeForwardingFields(
        _ appendix: RequestAppendix,
        host: Range<Int>?,
        bytes: UnsafeRawBufferPointer,
        context: ForwardingContext,
        via: StaticString,
        into buffer: inout ByteBuffer
    ) {
        buffer.writeStaticString("X-Forwarded-For: ")
        writeList(appendix.previousForwardedFor, bytes: bytes, into: &buffer)
        buffer.writeString(context.clientAddress ?? "unknown")
        buffer.writeStaticString("\r\nX-Forwarded-Proto: ")
        buffer.writeString(context.scheme)
        buffer.writeStaticString("\r\n")
        if let host {
            buffer.writeStaticString("X-Forwarded-Host: ")
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[host]))
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("Forwarded: ")
        writeList(appendix.previousForwarded, bytes: bytes, into: &buffer)
        buffer.writeStaticString("for=")
        writeForwardedNode(context.clientAddress, into: &buffer)
        if let host {
            buffer.writeStaticString(";host=")
            writeForwardedValue(UnsafeRawBufferPointer(rebasing: bytes[host]), into: &buffer)
        }
        buffer.writeStaticString(";proto=")
        buffer.writeString(context.scheme)
        buffer.writeStaticString("\r\n")
        writeVia(appendix.previousVia, via: via, bytes: bytes, into: &buffer)
    }

    /// The response head for the client.
    /// - Parameters:
    ///   - framing: how the body arrives from the instance: the head's own framing, or none for the answer
    ///     to a HEAD request (given apart so the caller need not copy the head to change it).
    ///   - relay: how its body goes to the client (framing headers follow from it).
    ///   - clientMinorVersion: the client's HTTP/1.x (the status line speaks its version).
    ///   - closeAfter: the client connection ends after this response.
    static func writeResponse(
        _ head: HTTP1ResponseHead,
        framing: HTTP1BodyFraming,
        bytes: UnsafeRawBufferPointer,
        relay: HTTP1ResponseRelay,
        clientMinorVersion: Int,
        closeAfter: Bool,
        into buffer: inout ByteBuffer
    ) {
        buffer.writeStaticString(clientMinorVersion == 0 ? "HTTP/1.0" : "HTTP/1.1")
        // " 200 OK" as received.
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[8..<head.reason.upperBound]))
        buffer.writeStaticString("\r\n")

        var previousVia: [Range<Int>] = []
        if head.status == 101 {
            // The upgrade answer keeps Upgrade and Connection: the client needs them.
            copyFields(head.fields, bytes: bytes, headLength: head.length, into: &buffer, keepHopByHop: true) { field in
                if field.kind == .via { previousVia.append(field.value) }
            }
            writeVia(previousVia, via: viaFromHTTP11, bytes: bytes, into: &buffer)
            buffer.writeStaticString("\r\n")
            return
        }

        // A body whose framing changes loses its Content-Length (also one sent beside Transfer-Encoding).
        let dropContentLength = framing == .chunked || framing == .untilClose
        copyFields(head.fields, bytes: bytes, headLength: head.length, into: &buffer, dropContentLength: dropContentLength) { field in
            if field.kind == .via { previousVia.append(field.value) }
        }
        writeVia(previousVia, via: viaFromHTTP11, bytes: bytes, into: &buffer)
        if relay == .encodeChunks || (relay == .passThrough && framing == .chunked) {
            buffer.writeStaticString("Transfer-Encoding: chunked\r\n")
        }
        if (100..<200).contains(head.status) {
            // Informational answers carry no connection management.
        } else if closeAfter {
            buffer.writeStaticString("Connection: close\r\n")
        } else if clientMinorVersion == 0 {
            buffer.writeStaticString("Connection: keep-alive\r\n")
        }
        buffer.writeStaticString("\r\n")
    }

    // MARK: pieces

    /// Copies the header lines that pass unchanged, runs of adjacent ones in one copy; `visit` sees
    /// every field (to collect the values of the headers rewritten after).
    private static func copyFields(
        _ fields: [HTTP1HeaderField],
        bytes: UnsafeRawBufferPointer,
        headLength: Int,
        into buffer: inout ByteBuffer,
        keepHopByHop: Bool = false,
        dropContentLength: Bool = false,
        visit: (HTTP1HeaderField) -> Void
    ) {
        // A field's line runs from its name to the next field's name (the last one to the blank line).
        var runStart: Int?
        for (index, field) in fields.enumerated() {
            visit(field)
            let kept: Bool
            switch field.kind {
            case .xForwardedFor, .xForwardedProto, .xForwardedHost, .forwarded, .via:
                kept = false
            case .contentLength:
                kept = !dropContentLength
            case .other, .host:
                kept = true
            default:
                kept = keepHopByHop || !field.kind.isHopByHop
            }
            if kept {
                if runStart == nil { runStart = field.name.lowerBound }
            } else if let start = runStart {
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[start..<field.name.lowerBound]))
                runStart = nil
            }
            if index == fields.count - 1, let start = runStart {
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[start..<(headLength - 2)]))
            }
        }
    }

    /// Earlier values of a list header, each followed by ", ".
    private static func writeList(_ values: [Range<Int>], bytes: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        for value in values where !value.isEmpty {
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[value]))
            buffer.writeStaticString(", ")
        }
    }

    /// `Via`: the earlier values, then this hop (`via`).
    private static func writeVia(
        _ previous: [Range<Int>], via: StaticString, bytes: UnsafeRawBufferPointer, into buffer: inout ByteBuffer
    ) {
        buffer.writeStaticString("Via: ")
        writeList(previous, bytes: bytes, into: &buffer)
        buffer.writeStaticString(via)
        buffer.writeStaticString("\r\n")
    }

    /// RFC 7239 node: IPv4 as a token, IPv6 bracketed and quoted, unknown as `unknown`.
    static func writeForwardedNode(_ address: String?, into buffer: inout ByteBuffer) {
        guard let address else {
            buffer.writeStaticString("unknown")
            return
        }
        if address.utf8.contains(HTTP1Bytes.colon) {
            buffer.writeStaticString("\"[")
            buffer.writeString(address)
            buffer.writeStaticString("]\"")
        } else {
            buffer.writeString(address)
        }
    }

    /// A token when every byte is a tchar, else a quoted string.
    static func writeForwardedValue(_ value: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        if !value.isEmpty && value.allSatisfy(HTTP1Bytes.isToken) {
            buffer.writeBytes(value)
            return
        }
        // One write for the quoted string (at most every byte escaped, plus the quotes): a write per byte
        // checked capacity and uniqueness per byte.
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 2 * value.count + 2) { target in
            var at = 0
            target[at] = UInt8(ascii: "\"")
            at += 1
            for byte in value {
                if byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\"") {
                    target[at] = UInt8(ascii: "\\")
                    at += 1
                }
                target[at] = byte
                at += 1
            }
            target[at] = UInt8(ascii: "\"")
            return at + 1
        }
    }
}
