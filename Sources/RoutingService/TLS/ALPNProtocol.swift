/// One ALPN protocol identifier (RFC 7301), e.g. `http/1.1`, `h2`, `acme-tls/1`.
public struct ALPNProtocol: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let name: String

    /// `name` must be 1–255 bytes (the wire format prefixes each identifier with a one-byte length).
    public init?(_ name: String) {
        guard (1...255).contains(name.utf8.count) else { return nil }
        self.name = name
    }

    public init(stringLiteral name: StaticString) {
        guard let valid = ALPNProtocol("\(name)") else { preconditionFailure("invalid ALPN identifier \(name)") }
        self = valid
    }

    public static let http1_1: ALPNProtocol = "http/1.1"
    public static let http2: ALPNProtocol = "h2"
    /// RFC 8737 TLS-ALPN-01 challenge responses.
    public static let acmeTLS1: ALPNProtocol = "acme-tls/1"

    public var description: String { name }

    /// The list in wire format: each identifier prefixed by its length, in preference order.
    static func wireFormat(_ protocols: [ALPNProtocol]) -> [UInt8] {
        var bytes: [UInt8] = []
        for proto in protocols {
            bytes.append(UInt8(proto.name.utf8.count))
            bytes.append(contentsOf: proto.name.utf8)
        }
        return bytes
    }

    /// Whether an ALPN extension body (a 2-byte list length, then length-prefixed identifiers) lists
    /// `proto`. A malformed body lists nothing.
    static func extensionOffers(_ proto: ALPNProtocol, _ body: UnsafeBufferPointer<UInt8>) -> Bool {
        guard body.count >= 2 else { return false }
        let listLength = Int(body[0]) << 8 | Int(body[1])
        guard listLength == body.count - 2 else { return false }
        let wanted = Array(proto.name.utf8)
        var offset = 2
        while offset < body.count {
            let length = Int(body[offset])
            offset += 1
            guard length > 0, offset + length <= body.count else { return false }
            if length == wanted.count, body[offset..<(offset + length)].elementsEqual(wanted) { return true }
            offset += length
        }
        return false
    }
}
