import NIOCore

/// The UDP flows of one public port: one per client address and port, ended after an idle timeout,
/// at most `maximumFlows` at once. Pure bookkeeping: the caller passes the time in, so tests drive it
/// without sockets or sleeping.
public struct UDPSessionTable<Key: Hashable, Flow> {
    public enum Lookup {
        /// A datagram for a flow that exists; its idle timer was reset.
        case existing(Flow)
        /// No flow yet and there is room: the caller makes one and `insert`s it.
        case admit
        /// No flow yet and the table is full: the datagram is dropped.
        case full
    }

    private struct Entry {
        var flow: Flow
        var lastActivity: NIODeadline
    }

    public let maximumFlows: Int
    public let idleTimeout: TimeAmount
    private var entries: [Key: Entry] = [:]

    public init(maximumFlows: Int, idleTimeout: TimeAmount) {
        precondition(maximumFlows > 0, "a UDP session table needs room for at least one flow")
        self.maximumFlows = maximumFlows
        self.idleTimeout = idleTimeout
    }

    public var count: Int { entries.count }

    public mutating func datagramReceived(from key: Key, now: NIODeadline) -> Lookup {
        if entries[key] != nil {
            entries[key]!.lastActivity = now
            return .existing(entries[key]!.flow)
        }
        return entries.count < maximumFlows ? .admit : .full
    }

    /// Adds the flow made after `.admit`.
    public mutating func insert(_ flow: Flow, for key: Key, now: NIODeadline) {
        precondition(entries[key] != nil || entries.count < maximumFlows, "insert without .admit")
        entries[key] = Entry(flow: flow, lastActivity: now)
    }

    /// A reply from the instance also keeps the flow alive.
    public mutating func activity(on key: Key, now: NIODeadline) {
        entries[key]?.lastActivity = now
    }

    public func flow(for key: Key) -> Flow? {
        entries[key]?.flow
    }

    /// Removes and returns the flows idle for at least `idleTimeout` at `now`.
    public mutating func expire(now: NIODeadline) -> [(key: Key, flow: Flow)] {
        let expired = entries.filter { now - $0.value.lastActivity >= idleTimeout }
        for key in expired.keys { entries[key] = nil }
        return expired.map { ($0.key, $0.value.flow) }
    }

    @discardableResult
    public mutating func remove(_ key: Key) -> Flow? {
        entries.removeValue(forKey: key)?.flow
    }

    public mutating func removeAll() -> [Flow] {
        defer { entries.removeAll() }
        return entries.values.map(\.flow)
    }
}
