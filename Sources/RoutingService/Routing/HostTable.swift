/// Host name lookup shared by routing and certificate selection: an exact name first, then a
/// one-label wildcard (`*.example.com` matches `a.example.com`, not `a.b.example.com` nor `example.com`).
/// Immutable once built, so readers on any event loop need no lock.
public struct HostTable<Value: Sendable>: Sendable {
    private var exact: [String: Value] = [:]
    private var wildcards: [String: Value] = [:]

    public init() {}

    public var isEmpty: Bool { exact.isEmpty && wildcards.isEmpty }

    /// Adds `value` under `name`; returns false (and keeps the first) when the name is already present.
    @discardableResult
    public mutating func insert(_ value: Value, for name: DomainName) -> Bool {
        if let parent = name.wildcardParent {
            let key = String(parent)
            guard wildcards[key] == nil else { return false }
            wildcards[key] = value
        } else {
            guard exact[name.value] == nil else { return false }
            exact[name.value] = value
        }
        return true
    }

    /// `host` may carry a trailing dot or upper case; a port must already be stripped.
    public func lookup(_ host: some StringProtocol) -> Value? {
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        if let value = exact[name] { return value }
        guard let dot = name.firstIndex(of: "."), name.index(after: dot) < name.endIndex else { return nil }
        return wildcards[String(name[name.index(after: dot)...])]
    }
}
