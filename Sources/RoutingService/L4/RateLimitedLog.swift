import NIOCore

/// Lets a repeated warning through at most once per `interval`, counting the ones held back,
/// so a flood (a full flow table, a stream of garbage) cannot flood the log as well.
struct RateLimitedLog {
    let interval: TimeAmount
    private var lastLogged: NIODeadline?
    private var suppressed = 0

    init(interval: TimeAmount = .seconds(1)) {
        self.interval = interval
    }

    /// nil when this occurrence must stay silent; otherwise how many were held back since the last one.
    mutating func occurrence(now: NIODeadline) -> Int? {
        if let lastLogged, now - lastLogged < interval {
            suppressed += 1
            return nil
        }
        lastLogged = now
        defer { suppressed = 0 }
        return suppressed
    }
}
