import Logging
import Synchronization

/// Keeps every log record in memory so tests can check that a line was written and what it said.
public final class LogCapture: Sendable {
    public struct Record: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
    }

    private let records = Mutex<[Record]>([])

    public init() {}

    public var all: [Record] { records.withLock { $0 } }

    /// Each record as `level: message`.
    public var messages: [String] { all.map { "\($0.level): \($0.message)" } }

    public var logger: Logger { logger(label: "test") }

    public func logger(label: String = "test") -> Logger {
        var logger = Logger(label: label) { _ in Handler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    /// Whether a record's `level: message` contains `text` and its metadata satisfies `predicate`.
    public func contains(_ text: String, where predicate: ([String: String]) -> Bool = { _ in true }) -> Bool {
        all.contains { "\($0.level): \($0.message)".contains(text) && predicate($0.metadata) }
    }

    fileprivate func append(_ record: Record) {
        records.withLock { $0.append(record) }
    }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            if let extra = event.metadata { merged.merge(extra) { $1 } }
            capture.append(Record(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
        }
    }
}
