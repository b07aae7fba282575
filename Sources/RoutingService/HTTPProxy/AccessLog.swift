import Logging
import NIOCore

/// One access-log line per request, as structured swift-log metadata.
struct AccessLogEntry {
    var client: String?
    var domain: String?
    var method: String
    var path: String
    var status: Int
    var bytes: Int
    var instance: String?
    var balancer: Int?
    var start: NIODeadline
    /// Why the request ended without a normal response (client abort, upstream error), if it did.
    var note: String?
}

final class AccessLog: Sendable {
    let logger: Logger
    /// Whether request lines are written at all (the log level lets `info` through). Read once: a
    /// logger's level is fixed for its life, and reading it through the handler copied the handler
    /// (its label, stream and metadata retained and released) twice per request.
    let isEnabled: Bool

    init(logger: Logger) {
        self.logger = logger
        self.isEnabled = logger.logLevel <= .info
    }

    /// The entry is built only when the line will be written: with the log level above `info` a request
    /// pays one level check, not the strings (instance address, method) an entry holds.
    func record(_ makeEntry: @autoclosure () -> AccessLogEntry) {
        guard isEnabled else { return }
        let entry = makeEntry()
        let end = NIODeadline.now()
        var metadata: Logger.Metadata = [
            "client": .string(entry.client ?? "-"),
            "domain": .string(entry.domain ?? "-"),
            "method": .string(entry.method),
            "path": .string(entry.path),
            "status": .stringConvertible(entry.status),
            "bytes": .stringConvertible(entry.bytes),
            "instance": .string(entry.instance ?? "-"),
            "balancer": .string(entry.balancer.map(String.init) ?? "-"),
            "duration_ms": .stringConvertible(Double((end - entry.start).nanoseconds) / 1_000_000),
        ]
        if let note = entry.note { metadata["note"] = .string(note) }
        logger.info("request", metadata: metadata)
    }
}
