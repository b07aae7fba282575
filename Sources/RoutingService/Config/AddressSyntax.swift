#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reading and checking the address forms of the configuration: `host:port` listeners, instance addresses
/// (`10.0.0.11`, `[::1]:3000`, `app-1.internal`), and the host part on its own.
enum AddressSyntax {
    /// Why an address could not even be split into host and port; the validator checks the parts afterwards.
    struct SplitFailure: Error {
        let reason: String
    }

    /// `host:port`, IPv6 in brackets. The port must be written; its range is the validator's business.
    static func splitListenAddress(_ text: String) -> Result<ListenAddress, SplitFailure> {
        let example = "expected host:port such as 0.0.0.0:443 or [::]:443"
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                return .failure(SplitFailure(reason: "\(example); the \"[\" of \"\(text)\" is never closed"))
            }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else {
                return .failure(SplitFailure(reason: "\(example); \"\(text)\" has no port"))
            }
            return port(rest.dropFirst(), in: text).map { ListenAddress(host: host, port: $0) }
        }
        guard let colon = text.lastIndex(of: ":") else {
            return .failure(SplitFailure(reason: "\(example); \"\(text)\" has no port"))
        }
        let host = String(text[..<colon])
        if host.contains(":") {
            return .failure(SplitFailure(reason: "an IPv6 address must be written in brackets, e.g. [::1]:443"))
        }
        if host.isEmpty {
            return .failure(
                SplitFailure(reason: "\(example); \"\(text)\" has no host (use 0.0.0.0 for every interface)")
            )
        }
        return port(text[text.index(after: colon)...], in: text).map { ListenAddress(host: host, port: $0) }
    }

    /// An IPv4 or IPv6 address or a hostname, optionally with `:port` (`[v6]:port` for IPv6).
    static func splitInstanceAddress(_ text: String) -> Result<InstanceAddress, SplitFailure> {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                return .failure(SplitFailure(reason: "the \"[\" of \"\(text)\" is never closed"))
            }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return .success(InstanceAddress(host: host)) }
            guard rest.hasPrefix(":") else {
                return .failure(SplitFailure(reason: "expected \"]:port\" after the IPv6 address in \"\(text)\""))
            }
            return port(rest.dropFirst(), in: text).map { InstanceAddress(host: host, port: $0) }
        }
        let colons = text.count(where: { $0 == ":" })
        if colons > 1 { return .success(InstanceAddress(host: text)) }  // a bare IPv6 address, no port
        guard colons == 1, let colon = text.firstIndex(of: ":") else { return .success(InstanceAddress(host: text)) }
        return port(text[text.index(after: colon)...], in: text).map {
            InstanceAddress(host: String(text[..<colon]), port: $0)
        }
    }

    private static func port(_ digits: Substring, in text: String) -> Result<Int, SplitFailure> {
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(digits) else {
            return .failure(SplitFailure(reason: "the port of \"\(text)\" is not a number from 1 to 65535"))
        }
        return .success(port)
    }

    static func isValidPort(_ port: Int) -> Bool {
        (1...65535).contains(port)
    }

    static func isIPv4(_ text: String) -> Bool {
        guard text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) else { return false }
        return parses(text, family: AF_INET)
    }

    static func isIPv6(_ text: String) -> Bool {
        text.contains(":") && parses(text, family: AF_INET6)
    }

    /// `inet_pton` into raw bytes: in a release build `in_addr()`/`in6_addr()` resolve to NIO's CNIOLinux
    /// copies, which MemberImportVisibility then refuses without an import of that internal module.
    private static func parses(_ text: String, family: Int32) -> Bool {
        var storage: (UInt64, UInt64) = (0, 0)  // 16 bytes: room for an IPv6 address
        return withUnsafeMutableBytes(of: &storage) { inet_pton(family, text, $0.baseAddress) == 1 }
    }

    /// Why `host` is not an IPv4 address, IPv6 address or hostname, or nil when it is one.
    /// Hostnames may carry `_` (container and compose service names do); an all-digit dotted name
    /// is taken for a mistyped IPv4 address.
    static func hostProblem(_ host: String) -> String? {
        if host.isEmpty { return "the host is empty" }
        if isIPv4(host) || isIPv6(host) { return nil }
        if host.contains(":") { return "\"\(host)\" is not a valid IPv6 address" }
        if host.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) {
            return "\"\(host)\" is not a valid IPv4 address"
        }
        return hostnameProblem(host, allowing: "_")
    }

    /// Label rules shared by hostnames and domain names: letters, digits, `-` (plus `extra`),
    /// no `-` at either end of a label, labels of 1–63 characters, 253 characters in all.
    static func hostnameProblem(_ name: String, allowing extra: Character? = nil) -> String? {
        guard name.count <= 253 else { return "\"\(name)\" is longer than 253 characters" }
        if name.hasSuffix(".") { return "\"\(name)\" ends with a dot; write the name without it" }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            if label.isEmpty { return "\"\(name)\" has an empty label (two dots in a row or a leading dot)" }
            if label.count > 63 { return "the label \"\(label)\" of \"\(name)\" is longer than 63 characters" }
            if let bad = label.first(where: { !(isLetterOrDigit($0) || $0 == "-" || $0 == extra) }) {
                return "\"\(name)\" contains \"\(bad)\"; only letters, digits and \"-\" are allowed in a name"
            }
            if label.hasPrefix("-") || label.hasSuffix("-") {
                let place = label == name ? "" : " of \"\(name)\""
                return "the label \"\(label)\"\(place) starts or ends with \"-\""
            }
        }
        return nil
    }

    private static func isLetterOrDigit(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber)
    }

    /// The `0.0.0.0` / `::` forms that bind every interface, and so collide with any host on the same port.
    static func isWildcardHost(_ host: String) -> Bool {
        host == "0.0.0.0" || host == "::"
    }
}
