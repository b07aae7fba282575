/// One thing wrong with a configuration file, pinned to the line and key it is about.
/// Its description is the line `check` prints and the admin API returns: `FILE:LINE: KEY: reason`.
public struct ConfigurationProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file as the user named it (relative paths stay relative, so messages match what they typed).
    public var file: String
    /// 1-based line; 0 when the problem has no place in a file (e.g. the file cannot be read).
    public var line: Int
    /// The key path, such as `domains[2].ssl`, or a bracketed word (`(syntax)`, `(file)`) for the whole file.
    public var key: String
    public var reason: String

    public init(file: String, line: Int, key: String, reason: String) {
        self.file = file
        self.line = line
        self.key = key
        self.reason = reason
    }

    public var description: String { "\(file):\(line): \(key): \(reason)" }
}

/// Every problem found in one configuration, sorted by line: a configuration is refused whole, with all of them.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let problems: [ConfigurationProblem]

    public init(problems: [ConfigurationProblem]) {
        self.problems = problems.sortedByLine()
    }

    /// One problem per line, ready to print.
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

extension Array where Element == ConfigurationProblem {
    /// By line, then key; stable otherwise, so problems found in the same place keep the order they were found in.
    func sortedByLine() -> [ConfigurationProblem] {
        enumerated()
            .sorted { lhs, rhs in
                if lhs.element.line != rhs.element.line { return lhs.element.line < rhs.element.line }
                if lhs.element.key != rhs.element.key { return lhs.element.key < rhs.element.key }
                return lhs.offset < rhs.offset
            }
            .map(\.element)
    }
}
