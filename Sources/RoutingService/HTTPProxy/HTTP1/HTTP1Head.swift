/// The header names the proxy acts on. Every other header is forwarded as the bytes it arrived as.
enum HTTP1HeaderName: UInt8 {
    case other
    case host
    case connection
    case contentLength
    case transferEncoding
    case upgrade
    case keepAlive
    case proxyConnection
    case te
    case trailer
    case xForwardedFor
    case xForwardedProto
    case xForwardedHost
    case forwarded
    case via
    /// A header named in `Connection` (hop-by-hop by declaration, RFC 9110 §7.6.1).
    case connectionNominated

    /// Removed when forwarding, whichever way.
    var isHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .proxyConnection, .te, .trailer, .transferEncoding, .upgrade,
             .connectionNominated:
            return true
        default:
            return false
        }
    }

    /// Classifies a lower- or mixed-case name by its length first, so most names cost one switch.
    static func classify(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTP1HeaderName {
        switch range.count {
        case 2: return HTTP1Bytes.equalsLowercased(bytes, range, "te") ? .te : .other
        case 3: return HTTP1Bytes.equalsLowercased(bytes, range, "via") ? .via : .other
        case 4: return HTTP1Bytes.equalsLowercased(bytes, range, "host") ? .host : .other
        case 7:
            if HTTP1Bytes.equalsLowercased(bytes, range, "upgrade") { return .upgrade }
            return HTTP1Bytes.equalsLowercased(bytes, range, "trailer") ? .trailer : .other
        case 9: return HTTP1Bytes.equalsLowercased(bytes, range, "forwarded") ? .forwarded : .other
        case 10:
            if HTTP1Bytes.equalsLowercased(bytes, range, "connection") { return .connection }
            return HTTP1Bytes.equalsLowercased(bytes, range, "keep-alive") ? .keepAlive : .other
        case 14: return HTTP1Bytes.equalsLowercased(bytes, range, "content-length") ? .contentLength : .other
        case 15: return HTTP1Bytes.equalsLowercased(bytes, range, "x-forwarded-for") ? .xForwardedFor : .other
        case 16:
            if HTTP1Bytes.equalsLowercased(bytes, range, "x-forwarded-host") { return .xForwardedHost }
            return HTTP1Bytes.equalsLowercased(bytes, range, "proxy-connection") ? .proxyConnection : .other
        case 17:
            if HTTP1Bytes.equalsLowercased(bytes, range, "x-forwarded-proto") { return .xForwardedProto }
            return HTTP1Bytes.equalsLowercased(bytes, range, "transfer-encoding") ? .transferEncoding : .other
        default: return .other
        }
    }
}

/// One header line of a head, as offsets into the head's bytes (value trimmed of surrounding whitespace).
struct HTTP1HeaderField {
    @HeadOffsets var name: Range<Int>
    @HeadOffsets var value: Range<Int>
    var kind: HTTP1HeaderName
}

/// A range of a head's bytes, stored as two `UInt32`s instead of two `Int`s: a head is at most
/// `HTTPFrontConfiguration.maximumHeaderBytes` (an instance's at most 64 KiB), so the offsets fit, and
/// the heads (kept per connection, their field lists reused request after request) take half the memory:
/// 20 bytes a field instead of 40, and the request head 40 bytes less in every connection's front.
@propertyWrapper
struct HeadOffsets {
    private var start: UInt32
    private var end: UInt32

    init(wrappedValue range: Range<Int>) {
        start = UInt32(range.lowerBound)
        end = UInt32(range.upperBound)
    }

    var wrappedValue: Range<Int> {
        get { Int(start)..<Int(end) }
        set { self = HeadOffsets(wrappedValue: newValue) }
    }
}

/// What the `Connection` headers of a head say, beside the names they nominate.
struct HTTP1ConnectionOptions {
    var close = false
    var keepAlive = false
    var upgrade = false
}

/// How a message body is delimited on the wire (RFC 9112 §6).
enum HTTP1BodyFraming: Equatable {
    case none
    case length(Int)
    case chunked
    /// Read until the sender closes (responses only).
    case untilClose
}

/// Request methods the proxy treats specially; the method's bytes are forwarded as they came.
enum HTTP1Method: Equatable {
    case get, head, post, put, delete, options, trace, connect, other

    /// RFC 9110 §9.2.2.
    var isIdempotent: Bool {
        switch self {
        case .get, .head, .options, .trace, .put, .delete: return true
        case .post, .connect, .other: return false
        }
    }
}

/// A parsed request head: offsets into its bytes, plus what the proxy needs to decide about it.
///
/// Stored compactly (offsets as `HeadOffsets`, the widest members first so little is padding): every
/// HTTP/1 connection's front holds one, idle or not.
struct HTTP1RequestHead {
    var fields: [HTTP1HeaderField] = []
    var framing = HTTP1BodyFraming.none
    @HeadOffsets var methodRange = 0..<0
    @HeadOffsets var target = 0..<0
    private var hostOffsets: HeadOffsets?
    private var lengthStorage: UInt32 = 0
    private var minorVersionStorage: UInt8 = 1
    var method = HTTP1Method.other
    var connection = HTTP1ConnectionOptions()
    /// `Upgrade` names `websocket` and `Connection` names `upgrade`.
    var isWebSocketUpgrade = false

    var host: Range<Int>? {
        get { hostOffsets?.wrappedValue }
        set { hostOffsets = newValue.map { HeadOffsets(wrappedValue: $0) } }
    }

    /// The `x` of `HTTP/1.x`.
    var minorVersion: Int {
        get { Int(minorVersionStorage) }
        set { minorVersionStorage = UInt8(newValue) }
    }

    /// Bytes from the request line to the blank line, both included.
    var length: Int {
        get { Int(lengthStorage) }
        set { lengthStorage = UInt32(newValue) }
    }

    /// The client wants the connection closed after the response.
    var wantsClose: Bool { connection.close || (minorVersion == 0 && !connection.keepAlive) }

    /// Empties the head for the next request, keeping the fields' storage.
    mutating func reset() {
        method = .other
        methodRange = 0..<0
        target = 0..<0
        minorVersion = 1
        length = 0
        fields.removeAll(keepingCapacity: true)
        host = nil
        framing = .none
        connection = HTTP1ConnectionOptions()
        isWebSocketUpgrade = false
    }
}

/// A parsed response head.
struct HTTP1ResponseHead {
    var status = 0
    /// The reason phrase (may be empty).
    var reason = 0..<0
    var minorVersion = 1
    var length = 0
    var fields: [HTTP1HeaderField] = []
    var framing = HTTP1BodyFraming.none
    var connection = HTTP1ConnectionOptions()
    /// The instance's connection ends after this response.
    var wantsClose: Bool { connection.close || (minorVersion == 0 && !connection.keepAlive) }

    mutating func reset() {
        status = 0
        reason = 0..<0
        minorVersion = 1
        length = 0
        fields.removeAll(keepingCapacity: true)
        framing = .none
        connection = HTTP1ConnectionOptions()
    }
}

/// Why a head or a chunked body was refused, and what the peer is told.
struct HTTP1ParseError: Error, Equatable, CustomStringConvertible {
    enum Kind: Equatable {
        /// 400
        case malformed
        /// 431
        case headTooLarge
        /// 501: a transfer coding other than chunked.
        case unsupportedTransferCoding
        /// 505
        case unsupportedVersion
        /// 405: CONNECT is not proxied.
        case methodNotAllowed
    }

    var kind: Kind
    var reason: String

    static func malformed(_ reason: String) -> HTTP1ParseError { HTTP1ParseError(kind: .malformed, reason: reason) }

    var status: Int {
        switch kind {
        case .malformed: return 400
        case .headTooLarge: return 431
        case .unsupportedTransferCoding: return 501
        case .unsupportedVersion: return 505
        case .methodNotAllowed: return 405
        }
    }

    var description: String { reason }
}

/// Byte-level helpers shared by the head and body parsers.
enum HTTP1Bytes {
    // Computed, not `static let`: a stored static costs a lazy-initialisation check per use.
    static var cr: UInt8 { 13 }
    static var lf: UInt8 { 10 }
    static var space: UInt8 { 32 }
    static var tab: UInt8 { 9 }
    static var colon: UInt8 { 58 }
    static var comma: UInt8 { 44 }

    /// RFC 9110 tchar, as two bitmasks over the 128 ASCII bytes: a table in a `static let` would cost
    /// a lazy-initialisation check per byte.
    @inline(__always)
    static func isToken(_ byte: UInt8) -> Bool {
        let low: UInt64 = 0x03FF_6CFA_0000_0000
        let high: UInt64 = 0x57FF_FFFF_C7FF_FFFE
        if byte < 64 { return low & (1 << UInt64(byte)) != 0 }
        if byte < 128 { return high & (1 << UInt64(byte - 64)) != 0 }
        return false
    }

    /// field-vchar, SP and HTAB (obs-text allowed, as RFC 9110 §5.5 does).
    @inline(__always)
    static func isFieldValueByte(_ byte: UInt8) -> Bool { byte >= 0x20 ? byte != 0x7F : byte == tab }

    @inline(__always)
    static func lowercased(_ byte: UInt8) -> UInt8 {
        byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
    }

    /// Case-insensitive comparison with a lower-case ASCII literal.
    static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString) -> Bool {
        guard range.count == literal.utf8CodeUnitCount else { return false }
        let expected = literal.utf8Start
        var index = 0
        for position in range {
            if lowercased(bytes[position]) != expected[index] { return false }
            index += 1
        }
        return true
    }

    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ first: Range<Int>, _ second: Range<Int>) -> Bool {
        guard first.count == second.count else { return false }
        var other = second.lowerBound
        for position in first {
            if lowercased(bytes[position]) != lowercased(bytes[other]) { return false }
            other += 1
        }
        return true
    }

    /// Calls `body` with each comma-separated element of a list value, trimmed; empty elements skipped.
    static func forEachListElement(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var start = range.lowerBound
        while start < range.upperBound {
            var end = start
            while end < range.upperBound && bytes[end] != comma { end += 1 }
            var lower = start
            var upper = end
            while lower < upper && (bytes[lower] == space || bytes[lower] == tab) { lower += 1 }
            while upper > lower && (bytes[upper - 1] == space || bytes[upper - 1] == tab) { upper -= 1 }
            if lower < upper { body(lower..<upper) }
            start = end + 1
        }
    }

    /// The end of a head (the index after its blank line) in `bytes`, searching from `start`; nil when
    /// the blank line has not arrived. A line feed without its carriage return is refused.
    static func headEnd(in bytes: UnsafeRawBufferPointer, from start: Int) throws(HTTP1ParseError) -> Int? {
        var index = start
        let count = bytes.count
        while index < count {
            guard let base = bytes.baseAddress,
                  let found = memchr(base + index, Int32(lf), count - index)
            else { return nil }
            let position = base.distance(to: UnsafeRawPointer(found))
            guard position > 0, bytes[position - 1] == cr else {
                throw .malformed("a line ends with a bare line feed")
            }
            if position >= 3 && bytes[position - 2] == lf && bytes[position - 3] == cr { return position + 1 }
            index = position + 1
        }
        return nil
    }

    /// Leading empty lines a client may send between requests (RFC 9112 §2.2): how many bytes to skip.
    static func leadingEmptyLines(in bytes: UnsafeRawBufferPointer) -> Int {
        var index = 0
        while index < bytes.count && (bytes[index] == cr || bytes[index] == lf) { index += 1 }
        return index
    }

    /// A non-negative decimal with no sign, no spaces inside, and no overflow.
    static func decimal(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty, range.count <= 18 else { return nil }
        var value = 0
        for position in range {
            let digit = bytes[position] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            value = value * 10 + Int(digit)
        }
        return value
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
