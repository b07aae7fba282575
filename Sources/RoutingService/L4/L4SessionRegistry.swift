import NIOCore
import Synchronization

/// The route an L4 session came by, so a reload can tell which sessions lost theirs.
public enum L4SessionRoute: Hashable, Sendable, CustomStringConvertible {
    /// A TLS-listener connection passed through for this configured domain (exact or wildcard).
    case passthrough(DomainName)
    /// A connection accepted on a public TCP port, by its key (`tcp/127.0.0.1:7000`).
    case publicPort(String)

    /// The route of the sessions accepted on `port`: keyed like the running public listeners.
    public static func forPublicPort(_ port: PublicPortConfiguration) -> L4SessionRoute {
        .publicPort("\(port.transport.rawValue)/\(port.listen)")
    }

    public var description: String {
        switch self {
        case .passthrough(let domain): "passthrough \(domain)"
        case .publicPort(let key): "public port \(key)"
        }
    }
}

/// Fired on a session's client channel when its drain deadline has come, just before it is closed, so
/// the session's log line says why it ended.
public struct L4DrainDeadlineEvent: Sendable {}

/// Where a relay registers its session, and under which route.
public struct L4SessionTag: Sendable {
    public let registry: L4SessionRegistry
    public let route: L4SessionRoute

    public init(registry: L4SessionRegistry, route: L4SessionRoute) {
        self.registry = registry
        self.route = route
    }
}

/// The open TCP sessions of the project balancer (public ports and SNI passthrough), with the route
/// each came by. A session is registered once, when its relay starts, and removed when its client
/// connection closes: the byte relay never touches this. A reload asks it for the sessions whose route
/// went away and gives them a drain deadline, as `LongLivedConnectionRegistry` does for WebSockets.
public final class L4SessionRegistry: Sendable {
    private struct Entry: Sendable {
        let channel: any Channel
        let route: L4SessionRoute
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    public init() {}

    public func register(_ channel: any Channel, route: L4SessionRoute) {
        let key = ObjectIdentifier(channel)
        entries.withLock { $0[key] = Entry(channel: channel, route: route) }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.entries.withLock { $0.removeValue(forKey: key) }
        }
    }

    public var count: Int { entries.withLock { $0.count } }

    /// Sessions open now on `route`.
    public func count(on route: L4SessionRoute) -> Int {
        entries.withLock { table in table.values.filter { $0.route == route }.count }
    }

    /// Closes, after `deadline`, every session on one of `routes` that is still open then. Returns how
    /// many were given the deadline. Sessions on other routes are not touched.
    @discardableResult
    public func drain(routes: Set<L4SessionRoute>, deadline: Duration) -> Int {
        guard !routes.isEmpty else { return 0 }
        let affected = entries.withLock { table in table.values.filter { routes.contains($0.route) } }
        for entry in affected {
            let channel = entry.channel
            channel.eventLoop.scheduleTask(in: deadline.timeAmount) {
                guard channel.isActive else { return }
                channel.pipeline.fireUserInboundEventTriggered(L4DrainDeadlineEvent())
                channel.close(promise: nil)
            }
        }
        return affected.count
    }
}
