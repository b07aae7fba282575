import NIOHTTP1

/// Which of the headers the forwarding rules touch a head carries, found in one pass over it.
///
/// A typical request carries none of them (only `Host`), so with this scan it skips the dozen
/// whole-list scans of `remove(name:)`/`replaceOrAdd(name:value:)`/`contains(name:)` it would otherwise
/// make, each comparing every header name case-insensitively.
struct ForwardingHeaderScan {
    struct Names: OptionSet {
        let rawValue: UInt32

        static let connection = Names(rawValue: 1 << 0)
        static let keepAlive = Names(rawValue: 1 << 1)
        static let proxyConnection = Names(rawValue: 1 << 2)
        static let te = Names(rawValue: 1 << 3)
        static let trailer = Names(rawValue: 1 << 4)
        static let transferEncoding = Names(rawValue: 1 << 5)
        static let upgrade = Names(rawValue: 1 << 6)
        static let xForwardedFor = Names(rawValue: 1 << 7)
        static let xForwardedProto = Names(rawValue: 1 << 8)
        static let xForwardedHost = Names(rawValue: 1 << 9)
        static let forwarded = Names(rawValue: 1 << 10)
        static let via = Names(rawValue: 1 << 11)
        static let contentLength = Names(rawValue: 1 << 12)
        static let host = Names(rawValue: 1 << 13)

        /// Always removed when forwarding (RFC 9110 §7.6.1).
        static let hopByHop: Names = [.connection, .keepAlive, .proxyConnection, .te, .trailer, .transferEncoding, .upgrade]
    }

    /// The lower-case names, in the order of the flags above.
    private static let names: [(name: String, flag: Names)] = [
        ("connection", .connection), ("keep-alive", .keepAlive), ("proxy-connection", .proxyConnection),
        ("te", .te), ("trailer", .trailer), ("transfer-encoding", .transferEncoding), ("upgrade", .upgrade),
        ("x-forwarded-for", .xForwardedFor), ("x-forwarded-proto", .xForwardedProto),
        ("x-forwarded-host", .xForwardedHost), ("forwarded", .forwarded), ("via", .via),
        ("content-length", .contentLength), ("host", .host),
    ]

    private(set) var present: Names = []
    /// The first `Host` value, if any.
    private(set) var host: String?
    /// The tokens of every `Connection` header.
    private(set) var connection = ConnectionTokens()

    init(_ headers: HTTPHeaders) {
        for (name, value) in headers {
            guard let flag = Self.flag(forName: name) else { continue }
            if flag == .host && !present.contains(.host) { host = value }
            if flag == .connection { connection.add(value) }
            present.insert(flag)
        }
    }

    func contains(_ names: Names) -> Bool { !present.isDisjoint(with: names) }

    private static func flag(forName name: String) -> Names? {
        let count = name.utf8.count
        for candidate in names where candidate.name.utf8.count == count {
            if name.utf8.elementsEqual(candidate.name.utf8, by: { asciiLowercased($0) == $1 }) {
                return candidate.flag
            }
        }
        return nil
    }

    private static func asciiLowercased(_ byte: UInt8) -> UInt8 {
        (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) ? byte | 0x20 : byte
    }
}

/// The comma-separated tokens of `Connection` headers, compared case-insensitively. The three the proxy
/// acts on are flags; any other (a header the sender marks hop-by-hop) is kept lower-cased. The usual
/// values (`keep-alive`, `close`) allocate nothing, where a `Set<String>` of them would.
struct ConnectionTokens {
    private(set) var close = false
    private(set) var keepAlive = false
    private(set) var upgrade = false
    /// Lower-cased, in order of appearance.
    private(set) var others: [String] = []

    mutating func add(_ value: String) {
        for token in value.utf8.split(separator: UInt8(ascii: ",")) {
            let trimmed = token.drop(while: Self.isSpace).reversed().drop(while: Self.isSpace).reversed()
            guard !trimmed.isEmpty else { continue }
            if Self.equals(trimmed, "close") {
                close = true
            } else if Self.equals(trimmed, "keep-alive") {
                keepAlive = true
            } else if Self.equals(trimmed, "upgrade") {
                upgrade = true
            } else {
                let lowered = String(decoding: trimmed, as: UTF8.self).lowercased()
                if !others.contains(lowered) { others.append(lowered) }
            }
        }
    }

    func contains(_ token: String) -> Bool {
        switch token {
        case "close": return close
        case "keep-alive": return keepAlive
        case "upgrade": return upgrade
        default: return others.contains(token)
        }
    }

    private static func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    private static func equals<C: Collection<UInt8>>(_ bytes: C, _ lowercase: StaticString) -> Bool {
        let expected = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        return bytes.count == expected.count
            && zip(bytes, expected).allSatisfy { ($0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0) == $1 }
    }
}
