import NIOCore

/// Why bytes that claim to be a TLS ClientHello were refused.
public struct ClientHelloParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public let reason: String

    init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}

/// What the ClientHello peek found.
public enum ClientHelloParseResult: Sendable, Equatable {
    /// The ClientHello is not complete yet.
    case needMoreData
    /// A complete, well-formed ClientHello; `serverName` is lower-cased, nil when it has no SNI.
    case clientHello(serverName: String?, alpn: [String])
    /// TLS records, but not a valid ClientHello (or a bigger one than allowed).
    case malformed(ClientHelloParseError)
    /// The first byte is not a TLS handshake record: plain HTTP, garbage, another protocol.
    case notTLS
}

/// A small, strict, incremental parser of the TLS record layer up to the first ClientHello, for SNI
/// routing before (or instead of) terminating TLS. Feed it the bytes as they arrive: it keeps only
/// the handshake bytes it needs (bounded by `maximumHandshakeSize`), so a ClientHello split over many
/// TCP segments or TLS records costs linear time. Once it returns something other than
/// `.needMoreData`, that result is final.
public struct ClientHelloParser: Sendable {
    /// TLS record fragments are at most 2^14 bytes (RFC 8446 §5.1).
    static let maximumRecordSize = 16_384
    private static let recordHeaderSize = 5
    private static let handshakeRecordType: UInt8 = 22
    private static let clientHelloType: UInt8 = 1

    public let maximumHandshakeSize: Int
    private var pending: [UInt8] = []
    private var handshake: [UInt8] = []
    private var sawRecord = false
    private var final: ClientHelloParseResult?

    public init(maximumHandshakeSize: Int = 16_384) {
        self.maximumHandshakeSize = maximumHandshakeSize
    }

    public mutating func feed(_ bytes: ByteBuffer) -> ClientHelloParseResult {
        feed(bytes.readableBytesView)
    }

    public mutating func feed(_ bytes: some Collection<UInt8>) -> ClientHelloParseResult {
        if let final { return final }
        pending.append(contentsOf: bytes)
        let result = parseRecords()
        if result != .needMoreData { final = result }
        return result
    }

    private mutating func parseRecords() -> ClientHelloParseResult {
        var offset = 0
        defer { pending.removeFirst(offset) }
        while true {
            if !sawRecord, pending.count > offset, pending[offset] != Self.handshakeRecordType {
                return .notTLS
            }
            guard pending.count - offset >= Self.recordHeaderSize else { return .needMoreData }
            let type = pending[offset]
            let major = pending[offset + 1]
            let length = Int(pending[offset + 3]) << 8 | Int(pending[offset + 4])
            guard type == Self.handshakeRecordType else {
                return .malformed(.init("record of content type \(type) before the ClientHello was complete"))
            }
            guard major == 3 else {
                return sawRecord ? .malformed(.init("record version \(major).x is not TLS")) : .notTLS
            }
            guard length > 0 else { return .malformed(.init("empty handshake record")) }
            guard length <= Self.maximumRecordSize else {
                return .malformed(.init("record of \(length) bytes is longer than 16384"))
            }
            sawRecord = true
            let start = offset + Self.recordHeaderSize
            guard pending.count - start >= length else {
                // Refuse a wrong or oversized handshake header as soon as it shows, not after 16 KiB.
                guard handshake.count < 4 else { return .needMoreData }  // checked when it was complete
                let header = handshake + pending[start...].prefix(min(length, 4 - handshake.count))
                return header.count == 4 ? (checkHeader(header) ?? .needMoreData) : .needMoreData
            }
            handshake.append(contentsOf: pending[start..<start + length])
            offset = start + length
            if let result = parseHandshake() { return result }
        }
    }

    /// nil while the ClientHello message is still incomplete.
    /// The handshake message header (type and 24-bit length): nil when acceptable.
    private func checkHeader(_ header: [UInt8]) -> ClientHelloParseResult? {
        guard header[0] == Self.clientHelloType else {
            return .malformed(.init("first handshake message is of type \(header[0]), not ClientHello"))
        }
        let length = Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        guard length <= maximumHandshakeSize else {
            return .malformed(.init("ClientHello of \(length) bytes is over the \(maximumHandshakeSize)-byte limit"))
        }
        return nil
    }

    private func parseHandshake() -> ClientHelloParseResult? {
        guard handshake.count >= 4 else { return nil }
        if let refused = checkHeader(Array(handshake.prefix(4))) { return refused }
        let length = Int(handshake[1]) << 16 | Int(handshake[2]) << 8 | Int(handshake[3])
        guard handshake.count >= 4 + length else {
            return nil
        }
        do {
            var reader = ByteReader(handshake[4..<4 + length])
            let hello = try ClientHelloBody(parsing: &reader)
            return .clientHello(serverName: hello.serverName, alpn: hello.alpn)
        } catch {
            return .malformed(error)
        }
    }
}

/// Bounds-checked big-endian reads over a slice; every short read is a parse error.
private struct ByteReader {
    private var bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
    }

    var isEmpty: Bool { bytes.isEmpty }
    var remaining: Int { bytes.count }

    mutating func readInteger(_ size: Int, _ field: String) throws(ClientHelloParseError) -> Int {
        guard bytes.count >= size else { throw .init("truncated \(field)") }
        var value = 0
        for byte in bytes.prefix(size) { value = value << 8 | Int(byte) }
        bytes.removeFirst(size)
        return value
    }

    mutating func readBytes(_ count: Int, _ field: String) throws(ClientHelloParseError) -> ArraySlice<UInt8> {
        guard bytes.count >= count else { throw .init("\(field) runs past its enclosing length") }
        defer { bytes.removeFirst(count) }
        return bytes.prefix(count)
    }

    /// A vector with a `lengthSize`-byte length prefix, as a reader of its own.
    mutating func readVector(lengthSize: Int, _ field: String) throws(ClientHelloParseError) -> ByteReader {
        let length = try readInteger(lengthSize, "\(field) length")
        return ByteReader(try readBytes(length, field))
    }
}

/// The fields of a ClientHello body (RFC 8446 §4.1.2) that routing needs, with its shape checked.
private struct ClientHelloBody {
    private static let serverNameExtension = 0
    private static let alpnExtension = 16
    private static let maximumHostNameLength = 255

    var serverName: String?
    var alpn: [String] = []

    init(parsing reader: inout ByteReader) throws(ClientHelloParseError) {
        let version = try reader.readInteger(2, "legacy_version")
        guard version >> 8 == 3 else { throw .init("ClientHello version 0x\(String(version, radix: 16)) is not TLS") }
        _ = try reader.readBytes(32, "random")
        let sessionID = try reader.readVector(lengthSize: 1, "legacy_session_id")
        guard sessionID.remaining <= 32 else { throw .init("legacy_session_id longer than 32 bytes") }
        var cipherSuites = try reader.readVector(lengthSize: 2, "cipher_suites")
        try Self.checkCipherSuites(&cipherSuites)
        let compression = try reader.readVector(lengthSize: 1, "legacy_compression_methods")
        guard !compression.isEmpty else { throw .init("no compression methods") }
        guard !reader.isEmpty else { return }  // no extensions at all: valid, without SNI
        var extensions = try reader.readVector(lengthSize: 2, "extensions")
        guard reader.isEmpty else { throw .init("bytes after the extensions") }
        var seen: Set<Int> = []
        while !extensions.isEmpty {
            let type = try extensions.readInteger(2, "extension type")
            var body = try extensions.readVector(lengthSize: 2, "extension \(type)")
            guard seen.insert(type).inserted else { throw .init("extension \(type) appears twice") }
            switch type {
            case Self.serverNameExtension:
                serverName = try Self.parseServerName(&body)
            case Self.alpnExtension:
                alpn = try Self.parseALPN(&body)
            default:
                continue
            }
        }
    }

    private static func checkCipherSuites(_ suites: inout ByteReader) throws(ClientHelloParseError) {
        var count = 0
        while !suites.isEmpty {
            _ = try suites.readInteger(2, "cipher suite (odd cipher_suites length)")
            count += 1
        }
        if count == 0 { throw .init("no cipher suites") }
    }

    /// RFC 6066 §3: a list holding one host_name (type 0): ASCII letters, digits, hyphens and dots,
    /// no empty label, no trailing dot, at most 255 bytes.
    private static func parseServerName(_ body: inout ByteReader) throws(ClientHelloParseError) -> String {
        var list = try body.readVector(lengthSize: 2, "server_name_list")
        guard body.isEmpty else { throw .init("bytes after the server_name_list") }
        guard !list.isEmpty else { throw .init("empty server_name_list") }
        var hostName: String?
        while !list.isEmpty {
            let nameType = try list.readInteger(1, "server name type")
            guard nameType == 0 else { throw .init("server name type \(nameType) is not host_name (0)") }
            let length = try list.readInteger(2, "host_name length")
            guard length > 0 else { throw .init("empty host_name") }
            guard length <= maximumHostNameLength else {
                throw .init("host_name of \(length) bytes is longer than \(maximumHostNameLength)")
            }
            let name = try list.readBytes(length, "host_name")
            guard hostName == nil else { throw .init("more than one host_name") }
            hostName = try validatedHostName(name)
        }
        return hostName!
    }

    private static func validatedHostName(_ name: ArraySlice<UInt8>) throws(ClientHelloParseError) -> String {
        var labelLength = 0
        for byte in name {
            switch byte {
            case UInt8(ascii: "."):
                guard labelLength > 0 else { throw .init("host_name has an empty label") }
                labelLength = 0
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
                labelLength += 1
                guard labelLength <= 63 else { throw .init("host_name has a label longer than 63 bytes") }
            default:
                throw .init("host_name has the byte 0x\(String(byte, radix: 16)), not allowed in a host name")
            }
        }
        guard labelLength > 0 else { throw .init("host_name ends with a dot or an empty label") }
        return String(decoding: name, as: UTF8.self).lowercased()
    }

    private static func parseALPN(_ body: inout ByteReader) throws(ClientHelloParseError) -> [String] {
        var list = try body.readVector(lengthSize: 2, "ALPN protocol_name_list")
        guard body.isEmpty else { throw .init("bytes after the ALPN protocol_name_list") }
        guard !list.isEmpty else { throw .init("empty ALPN protocol_name_list") }
        var protocols: [String] = []
        while !list.isEmpty {
            let length = try list.readInteger(1, "ALPN protocol name length")
            guard length > 0 else { throw .init("empty ALPN protocol name") }
            protocols.append(String(decoding: try list.readBytes(length, "ALPN protocol name"), as: UTF8.self))
        }
        return protocols
    }
}
