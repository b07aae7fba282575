import NIOCore
import Synchronization

/// The client connections that outlive a request (upgraded to a byte relay, such as WebSockets), with
/// the domain and instance they were routed to. Registered once per connection at the upgrade and
/// removed when it closes, so the request path never touches it. A reload asks it for the connections
/// whose route went away and gives them a drain deadline.
public final class LongLivedConnectionRegistry: Sendable {
    public struct Entry: Sendable {
        public let channel: any Channel
        public let domain: DomainName
        public let upstream: ListenAddress
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    public init() {}

    public func register(_ channel: any Channel, domain: DomainName, upstream: ListenAddress) {
        let key = ObjectIdentifier(channel)
        entries.withLock { $0[key] = Entry(channel: channel, domain: domain, upstream: upstream) }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.entries.withLock { $0.removeValue(forKey: key) }
        }
    }

    public var count: Int { entries.withLock { $0.count } }

    /// Closes, after `deadline`, every connection on one of `domains` or to one of `upstreams` that is
    /// still open then. Returns how many were given the deadline.
    @discardableResult
    public func drain(domains: Set<DomainName>, upstreams: Set<ListenAddress>, deadline: Duration) -> Int {
        let affected = entries.withLock { table in
            table.values.filter { domains.contains($0.domain) || upstreams.contains($0.upstream) }
        }
        for entry in affected {
            let channel = entry.channel
            channel.eventLoop.scheduleTask(in: deadline.timeAmount) {
                channel.close(promise: nil)
            }
        }
        return affected.count
    }
}
