/// Builds TLS ClientHello records byte by byte, so tests can make well-formed ones and bend
/// exactly one field at a time (lengths, name types, sizes) to make malformed ones.
public struct ClientHelloBytes: Sendable {
    /// Raw extensions (type, body) in order; `serverName`/`alpn` helpers append to it.
    public var extensions: [(type: UInt16, body: [UInt8])] = []
    public var cipherSuites: [UInt16] = [0x1301, 0x1302, 0xC02B]
    public var sessionID: [UInt8] = Array(repeating: 7, count: 32)

    public init() {}

    public init(serverName: String?, alpn: [String] = []) {
        if let serverName { addServerName(serverName) }
        if !alpn.isEmpty { addALPN(alpn) }
        // A supported_versions extension so the hello looks like a TLS 1.3 one.
        extensions.append((43, [4, 0x03, 0x04, 0x03, 0x03]))
    }

    public mutating func addServerName(_ name: String, nameType: UInt8 = 0) {
        let host = Array(name.utf8)
        let entry = [nameType] + Self.u16(host.count) + host
        extensions.append((0, Self.u16(entry.count) + entry))
    }

    public mutating func addALPN(_ protocols: [String]) {
        let list = protocols.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
        extensions.append((16, Self.u16(list.count) + list))
    }

    /// The handshake message: type 1, 24-bit length, body.
    public var handshakeMessage: [UInt8] {
        var body: [UInt8] = [0x03, 0x03] + Array(repeating: 0x42, count: 32)
        body += [UInt8(sessionID.count)] + sessionID
        let suites = cipherSuites.flatMap { Self.u16(Int($0)) }
        body += Self.u16(suites.count) + suites
        body += [1, 0]
        let extensionBytes = extensions.flatMap { Self.u16(Int($0.type)) + Self.u16($0.body.count) + $0.body }
        body += Self.u16(extensionBytes.count) + extensionBytes
        return [1] + Self.u24(body.count) + body
    }

    /// The message in one handshake record, or split into records of at most `recordSize` bytes.
    public func records(recordSize: Int = 16_384) -> [UInt8] {
        let message = handshakeMessage
        var out: [UInt8] = []
        var start = 0
        while start < message.count {
            let end = min(start + recordSize, message.count)
            out += [22, 3, 1] + Self.u16(end - start) + message[start..<end]
            start = end
        }
        return out
    }

    public static func u16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
    public static func u24(_ value: Int) -> [UInt8] {
        [UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }
}
