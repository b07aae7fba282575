/// Turns a stream of check results for one instance into up/down transitions, so a single lost
/// probe does not flap an instance out (HAProxy's `fall`/`rise`).
public struct HealthTracker: Sendable, Equatable {
    public enum Transition: Sendable, Equatable {
        case wentDown
        case cameUp
    }

    public let fall: Int
    public let rise: Int
    public private(set) var isHealthy = true
    private var consecutiveFailures = 0
    private var consecutiveSuccesses = 0

    public init(fall: Int = 2, rise: Int = 1) {
        precondition(fall >= 1 && rise >= 1)
        self.fall = fall
        self.rise = rise
    }

    public mutating func checkSucceeded() -> Transition? {
        consecutiveFailures = 0
        consecutiveSuccesses += 1
        guard !isHealthy, consecutiveSuccesses >= rise else { return nil }
        isHealthy = true
        return .cameUp
    }

    public mutating func checkFailed() -> Transition? {
        consecutiveSuccesses = 0
        consecutiveFailures += 1
        guard isHealthy, consecutiveFailures >= fall else { return nil }
        isHealthy = false
        return .wentDown
    }
}
