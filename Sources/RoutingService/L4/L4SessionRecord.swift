import Logging
import NIOCore

/// Why an L4 session ended, as written in its log line.
public enum L4SessionEnd: String, Sendable, Equatable {
    case clientClosed = "client-closed"
    case upstreamClosed = "upstream-closed"
    case idleTimeout = "idle-timeout"
    case connectFailed = "connect-failed"
    case noInstance = "no-instance"
    case clientError = "client-error"
    case upstreamError = "upstream-error"
    case clientGone = "client-gone-while-connecting"
    case shutdown = "shutdown"
    /// Its route was removed by a reload, and the drain deadline passed.
    case drained = "drained"
}

/// What one L4 session (a TCP connection or a UDP flow) did, logged once when it ends.
/// Lives on the session's event loop: the client and upstream channels share it.
final class L4SessionRecord {
    let kind: TransportProtocol
    let client: String
    let listener: String
    let target: String
    var instance: String?
    var bytesFromClient = 0
    var bytesFromUpstream = 0
    var connectAttempts = 0
    private(set) var end: L4SessionEnd?
    private(set) var endDetail: String?
    private let started = NIODeadline.now()
    private var logged = false
    let logger: Logger

    init(kind: TransportProtocol, client: String, listener: String, target: String, logger: Logger) {
        self.kind = kind
        self.client = client
        self.listener = listener
        self.target = target
        self.logger = logger
    }

    /// The first reason recorded wins: later ones are consequences of it.
    func noteEnd(_ reason: L4SessionEnd, detail: String? = nil) {
        guard end == nil else { return }
        end = reason
        endDetail = detail
    }

    func logOnce(fallback: L4SessionEnd) {
        guard !logged else { return }
        logged = true
        noteEnd(fallback)
        let elapsed = NIODeadline.now() - started
        var metadata: Logger.Metadata = [
            "l4.protocol": "\(kind.rawValue)",
            "l4.client": "\(client)",
            "l4.listener": "\(listener)",
            "l4.target": "\(target)",
            "l4.instance": "\(instance ?? "-")",
            "l4.bytes_from_client": "\(bytesFromClient)",
            "l4.bytes_from_upstream": "\(bytesFromUpstream)",
            "l4.duration_ms": "\(elapsed.nanoseconds / 1_000_000)",
            "l4.end": "\(end?.rawValue ?? fallback.rawValue)",
        ]
        if connectAttempts > 1 { metadata["l4.connect_attempts"] = "\(connectAttempts)" }
        if let endDetail { metadata["l4.end_detail"] = "\(endDetail)" }
        switch end {
        case .connectFailed, .noInstance, .clientError, .upstreamError:
            logger.warning("L4 session ended", metadata: metadata)
        default:
            logger.info("L4 session ended", metadata: metadata)
        }
    }
}

extension Optional where Wrapped == SocketAddress {
    /// `127.0.0.1:5000`, `[::1]:5000`, or `unknown`: what log lines show for a peer.
    var logDescription: String {
        guard let address = self else { return "unknown" }
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return ListenAddress(host: ip, port: port).description
    }
}
