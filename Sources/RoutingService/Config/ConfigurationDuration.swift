/// Durations as the configuration file writes them: a whole number and a unit, `500ms`, `2s`, `1m`, `1h`.
public enum ConfigurationDuration {
    /// The units, longest suffix first so `ms` is not read as `m`.
    private static let units: [(suffix: String, milliseconds: Int64)] = [
        ("ms", 1),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
    ]

    /// nil for anything else: no unit, an unknown unit, a sign, a fraction, spaces, or a value too large.
    public static func parse(_ text: String) -> Duration? {
        for unit in units where text.hasSuffix(unit.suffix) {
            let digits = text.dropLast(unit.suffix.count)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                let count = Int64(digits)
            else { return nil }
            let (milliseconds, overflow) = count.multipliedReportingOverflow(by: unit.milliseconds)
            guard !overflow, milliseconds <= maximumMilliseconds else { return nil }
            return .milliseconds(milliseconds)
        }
        return nil
    }

    /// The shortest text `parse` reads back as `duration` (whole milliseconds; finer parts are dropped).
    public static func format(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1_000 + duration.components.attoseconds / 1_000_000_000_000_000
        for unit in units.reversed() where milliseconds % unit.milliseconds == 0 && milliseconds != 0 {
            return "\(milliseconds / unit.milliseconds)\(unit.suffix)"
        }
        return "\(milliseconds)ms"
    }

    /// About 292 years: anything longer is a typo, and every duration then fits in Int64 nanoseconds (NIO `TimeAmount`).
    private static let maximumMilliseconds: Int64 = Int64.max / 1_000_000
}
