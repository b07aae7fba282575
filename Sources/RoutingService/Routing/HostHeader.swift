/// The host part of a `Host` header value: `example.com:8443` → `example.com`, `[::1]:80` → `::1`.
/// Returns nil for a value that is not a plausible host (empty, or a bracket left open).
public enum HostHeader {
    public static func hostname(_ value: some StringProtocol) -> Substring? {
        let trimmed = Substring(value).trimmingSpaces
        guard !trimmed.isEmpty else { return nil }
        if trimmed.first == "[" {
            guard let close = trimmed.firstIndex(of: "]") else { return nil }
            let inside = trimmed[trimmed.index(after: trimmed.startIndex)..<close]
            return inside.isEmpty ? nil : inside
        }
        if let colon = trimmed.firstIndex(of: ":") {
            let name = trimmed[..<colon]
            return name.isEmpty ? nil : name
        }
        return trimmed
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result.removeFirst() }
        while let last = result.last, last == " " || last == "\t" { result.removeLast() }
        return result
    }
}
