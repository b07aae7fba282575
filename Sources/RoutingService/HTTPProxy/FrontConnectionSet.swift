import NIOCore

/// How client connections drain once the gateway stops (the same for every connection).
public struct FrontDrainPolicy: Sendable {
    /// HTTP/2: the time between the shutdown notice (GOAWAY with the largest stream id) and the final
    /// GOAWAY naming the last stream processed, so streams the client sent meanwhile still count
    /// (RFC 9113 §6.8 asks for at least one round trip).
    public var http2FinalGoAwayDelay: TimeAmount

    public init(http2FinalGoAwayDelay: TimeAmount = .seconds(1)) {
        self.http2FinalGoAwayDelay = http2FinalGoAwayDelay
    }
}

/// A client connection's front (HTTP/1 or HTTP/2) that can be told to finish what it has and close.
protocol DrainableFrontConnection: AnyObject {
    /// Called on the connection's event loop, at most once per front.
    func startDraining(_ policy: FrontDrainPolicy)
}

/// The open client connection fronts of one event loop, kept by the loop itself (registered when a
/// front joins a pipeline, removed when it leaves), so the gateway can tell each one to drain without
/// any lock on the request path. Once draining started, a front that joins later (a connection whose
/// handshake was still running, an HTTP/1 front replaced by HTTP/2) is told at once.
final class FrontConnectionSet {
    private var fronts: [ObjectIdentifier: any DrainableFrontConnection] = [:]
    private(set) var drainPolicy: FrontDrainPolicy?

    var count: Int { fronts.count }

    func insert(_ front: any DrainableFrontConnection) {
        fronts[ObjectIdentifier(front)] = front
        if let drainPolicy { front.startDraining(drainPolicy) }
    }

    func remove(_ front: any DrainableFrontConnection) {
        fronts.removeValue(forKey: ObjectIdentifier(front))
    }

    /// Tells every front to drain; returns how many were told.
    @discardableResult
    func drainAll(_ policy: FrontDrainPolicy) -> Int {
        guard drainPolicy == nil else { return 0 }
        drainPolicy = policy
        // A front may close (and leave the set) while being told: iterate over a copy.
        let told = Array(fronts.values)
        for front in told { front.startDraining(policy) }
        return told.count
    }
}
