/// Parses HTTP/1.x heads in place (RFC 9112), strictly: whatever could let two parsers disagree on
/// where a message ends (bare line feeds, whitespace before a colon, folded lines, conflicting or
/// malformed framing headers) is refused rather than guessed at.
///
/// The result is offsets into the bytes parsed, so the proxy can forward every header it does not
/// change as the bytes it received, without building strings.
enum HTTP1HeadParser {
    /// Parses a complete request head: `bytes` starts at the request line and holds at least `length`
    /// bytes (the value `HTTP1Bytes.headEnd` returned).
    static func parseRequest(_ bytes: UnsafeRawBufferPointer, length: Int, into head: inout HTTP1RequestHead) throws(HTTP1ParseError) {
        head.reset()
        head.length = length
        var index = 0

        // method SP request-target SP HTTP-version CRLF
        while index < length && HTTP1Bytes.isToken(bytes[index]) { index += 1 }
        guard index > 0, index < length, bytes[index] == HTTP1Bytes.space else {
            throw .malformed("malformed request line")
        }
        head.methodRange = 0..<index
        head.method = method(bytes, head.methodRange)
        index += 1
        let targetStart = index
        while index < length && bytes[index] > HTTP1Bytes.space && bytes[index] < 0x7F { index += 1 }
        guard index > targetStart, index < length, bytes[index] == HTTP1Bytes.space else {
            throw .malformed("invalid request target")
        }
        head.target = targetStart..<index
        index += 1
        head.minorVersion = try version(bytes, at: index, limit: length)
        index += 8
        guard index + 1 < length, bytes[index] == HTTP1Bytes.cr, bytes[index + 1] == HTTP1Bytes.lf else {
            throw .malformed("malformed request line")
        }
        index += 2
        if head.method == .connect { throw HTTP1ParseError(kind: .methodNotAllowed, reason: "CONNECT is not supported") }

        try parseFields(bytes, from: index, length: length, into: &head.fields)
        try interpretRequestFields(bytes, &head)
    }

    /// Parses a complete response head.
    static func parseResponse(_ bytes: UnsafeRawBufferPointer, length: Int, into head: inout HTTP1ResponseHead) throws(HTTP1ParseError) {
        head.reset()
        head.length = length
        // HTTP-version SP 3DIGIT SP [reason-phrase] CRLF
        head.minorVersion = try version(bytes, at: 0, limit: length)
        var index = 8
        guard index + 4 < length, bytes[index] == HTTP1Bytes.space,
              let status = HTTP1Bytes.decimal(bytes, (index + 1)..<(index + 4)), status >= 100
        else { throw .malformed("malformed status line") }
        head.status = status
        index += 4
        var reasonStart = index
        if bytes[index] == HTTP1Bytes.space {
            index += 1
            reasonStart = index
            while index < length && bytes[index] != HTTP1Bytes.cr {
                guard HTTP1Bytes.isFieldValueByte(bytes[index]) else { throw .malformed("malformed status line") }
                index += 1
            }
        }
        guard index + 1 < length, bytes[index] == HTTP1Bytes.cr, bytes[index + 1] == HTTP1Bytes.lf else {
            throw .malformed("malformed status line")
        }
        head.reason = reasonStart..<index
        index += 2

        try parseFields(bytes, from: index, length: length, into: &head.fields)
        try interpretResponseFields(bytes, &head)
    }

    // MARK: pieces

    /// The method named by `bytes[range]` (also used for HTTP/2's `:method`).
    static func method(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTP1Method {
        // Methods are case-sensitive (RFC 9110 §9.1).
        func equals(_ literal: StaticString) -> Bool {
            guard range.count == literal.utf8CodeUnitCount else { return false }
            return memcmp(bytes.baseAddress! + range.lowerBound, literal.utf8Start, range.count) == 0
        }
        switch range.count {
        case 3: return equals("GET") ? .get : equals("PUT") ? .put : .other
        case 4: return equals("HEAD") ? .head : equals("POST") ? .post : .other
        case 5: return equals("TRACE") ? .trace : .other
        case 6: return equals("DELETE") ? .delete : .other
        case 7: return equals("OPTIONS") ? .options : equals("CONNECT") ? .connect : .other
        default: return .other
        }
    }

    /// `HTTP/1.0` or `HTTP/1.1` at `index`: the minor version.
    private static func version(_ bytes: UnsafeRawBufferPointer, at index: Int, limit: Int) throws(HTTP1ParseError) -> Int {
        guard index + 8 <= limit,
              memcmp(bytes.baseAddress! + index, "HTTP/", 5) == 0,
              bytes[index + 6] == UInt8(ascii: ".")
        else { throw .malformed("invalid HTTP version") }
        let major = bytes[index + 5] &- UInt8(ascii: "0")
        let minor = bytes[index + 7] &- UInt8(ascii: "0")
        guard major < 10, minor < 10 else { throw .malformed("invalid HTTP version") }
        guard major == 1, minor <= 1 else {
            throw HTTP1ParseError(kind: .unsupportedVersion, reason: "HTTP/\(major).\(minor) is not supported")
        }
        return Int(minor)
    }

    /// field-name ":" OWS field-value OWS CRLF, until the blank line.
    private static func parseFields(
        _ bytes: UnsafeRawBufferPointer, from start: Int, length: Int, into fields: inout [HTTP1HeaderField]
    ) throws(HTTP1ParseError) {
        // A head's list is kept from one message to the next; made with room for a usual head, it is one
        // allocation per connection instead of one for each time it grows.
        if fields.capacity == 0 { fields.reserveCapacity(Self.usualFieldCount) }
        var index = start
        while index + 1 < length {
            if bytes[index] == HTTP1Bytes.cr {
                guard bytes[index + 1] == HTTP1Bytes.lf, index + 2 == length else {
                    throw .malformed("malformed header section")
                }
                return
            }
            let nameStart = index
            while index < length && HTTP1Bytes.isToken(bytes[index]) { index += 1 }
            guard index > nameStart else {
                if bytes[nameStart] == HTTP1Bytes.space || bytes[nameStart] == HTTP1Bytes.tab {
                    throw .malformed("obsolete line folding in a header")
                }
                throw .malformed("invalid character in a header name")
            }
            guard index < length, bytes[index] == HTTP1Bytes.colon else {
                throw .malformed("invalid character in a header name (or whitespace before its colon)")
            }
            let name = nameStart..<index
            index += 1
            while index < length && (bytes[index] == HTTP1Bytes.space || bytes[index] == HTTP1Bytes.tab) { index += 1 }
            let valueStart = index
            while index < length && bytes[index] != HTTP1Bytes.cr {
                guard HTTP1Bytes.isFieldValueByte(bytes[index]) else {
                    throw .malformed("invalid character in the value of a header")
                }
                index += 1
            }
            guard index + 1 < length, bytes[index + 1] == HTTP1Bytes.lf else {
                throw .malformed("malformed header section")
            }
            var valueEnd = index
            while valueEnd > valueStart && (bytes[valueEnd - 1] == HTTP1Bytes.space || bytes[valueEnd - 1] == HTTP1Bytes.tab) {
                valueEnd -= 1
            }
            fields.append(HTTP1HeaderField(name: name, value: valueStart..<valueEnd, kind: HTTP1HeaderName.classify(bytes, name)))
            index += 2
        }
        throw .malformed("malformed header section")
    }

    private static let usualFieldCount = 12

    /// Reads `Connection`; marks the headers it nominates.
    private static func interpretConnection(
        _ bytes: UnsafeRawBufferPointer, _ fields: inout [HTTP1HeaderField], hasConnection: Bool
    ) -> HTTP1ConnectionOptions {
        var options = HTTP1ConnectionOptions()
        guard hasConnection else { return options }
        var nominated: [Range<Int>] = []
        for field in fields where field.kind == .connection {
            HTTP1Bytes.forEachListElement(bytes, field.value) { token in
                if HTTP1Bytes.equalsLowercased(bytes, token, "close") {
                    options.close = true
                } else if HTTP1Bytes.equalsLowercased(bytes, token, "keep-alive") {
                    options.keepAlive = true
                } else if HTTP1Bytes.equalsLowercased(bytes, token, "upgrade") {
                    options.upgrade = true
                } else {
                    nominated.append(token)
                }
            }
        }
        if !nominated.isEmpty {
            for index in fields.indices where fields[index].kind == .other || fields[index].kind == .xForwardedFor
                || fields[index].kind == .forwarded || fields[index].kind == .via
                || fields[index].kind == .xForwardedHost || fields[index].kind == .xForwardedProto
            {
                let name = fields[index].name
                if nominated.contains(where: { HTTP1Bytes.equalsIgnoringCase(bytes, $0, name) }) {
                    fields[index].kind = .connectionNominated
                }
            }
        }
        return options
    }

    private static func interpretRequestFields(_ bytes: UnsafeRawBufferPointer, _ head: inout HTTP1RequestHead) throws(HTTP1ParseError) {
        var contentLength: Int?
        var transferEncoding: Range<Int>?
        var hasConnection = false
        var upgrade: Range<Int>?
        for field in head.fields {
            switch field.kind {
            case .host:
                guard head.host == nil else { throw .malformed("more than one Host header") }
                head.host = field.value
            case .contentLength:
                guard contentLength == nil else { throw .malformed("more than one Content-Length header") }
                guard let value = HTTP1Bytes.decimal(bytes, field.value) else { throw .malformed("invalid Content-Length") }
                contentLength = value
            case .transferEncoding:
                guard transferEncoding == nil else { throw .malformed("more than one Transfer-Encoding header") }
                transferEncoding = field.value
            case .connection:
                hasConnection = true
            case .upgrade:
                upgrade = field.value
            default:
                break
            }
        }
        head.connection = interpretConnection(bytes, &head.fields, hasConnection: hasConnection)

        if let transferEncoding {
            guard contentLength == nil else {
                throw .malformed("conflicting message framing (Content-Length with Transfer-Encoding)")
            }
            guard head.minorVersion == 1 else { throw .malformed("Transfer-Encoding in an HTTP/1.0 request") }
            guard HTTP1Bytes.equalsLowercased(bytes, transferEncoding, "chunked") else {
                throw HTTP1ParseError(kind: .unsupportedTransferCoding, reason: "only the chunked transfer coding is supported")
            }
            head.framing = .chunked
        } else if let contentLength, contentLength > 0 {
            head.framing = .length(contentLength)
        }

        if head.connection.upgrade, let upgrade {
            var websocket = false
            HTTP1Bytes.forEachListElement(bytes, upgrade) { token in
                if HTTP1Bytes.equalsLowercased(bytes, token, "websocket") { websocket = true }
            }
            head.isWebSocketUpgrade = websocket
        }
    }

    private static func interpretResponseFields(_ bytes: UnsafeRawBufferPointer, _ head: inout HTTP1ResponseHead) throws(HTTP1ParseError) {
        var contentLength: Int?
        var chunked = false
        var hasTransferEncoding = false
        var hasConnection = false
        for field in head.fields {
            switch field.kind {
            case .contentLength:
                guard let value = HTTP1Bytes.decimal(bytes, field.value) else { throw .malformed("invalid Content-Length") }
                if let contentLength, contentLength != value { throw .malformed("conflicting Content-Length headers") }
                contentLength = value
            case .transferEncoding:
                hasTransferEncoding = true
                // Chunked must be the final coding; anything after it leaves the body delimited by close.
                chunked = false
                HTTP1Bytes.forEachListElement(bytes, field.value) { token in
                    chunked = HTTP1Bytes.equalsLowercased(bytes, token, "chunked")
                }
            case .connection:
                hasConnection = true
            default:
                break
            }
        }
        head.connection = interpretConnection(bytes, &head.fields, hasConnection: hasConnection)
        if hasTransferEncoding {
            head.framing = chunked ? .chunked : .untilClose
        } else if let contentLength {
            head.framing = contentLength > 0 ? .length(contentLength) : .none
        } else {
            head.framing = .untilClose
        }
        // Bodiless statuses are settled by the caller, which knows the request method.
        if (100..<200).contains(head.status) || head.status == 204 || head.status == 304 { head.framing = .none }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
