import Yams

/// A YAML error from Yams turned into a `ConfigurationProblem` with the line it happened on.
enum YAMLSyntaxProblem {
    static func problem(from error: any Error, yaml: String, file: String) -> ConfigurationProblem {
        let (line, reason) = lineAndReason(error, yaml: yaml)
        return ConfigurationProblem(
            file: file,
            line: line,
            key: "(syntax)",
            reason: reason + hint(line: line, yaml: yaml)
        )
    }

    private static func lineAndReason(_ error: any Error, yaml: String) -> (Int, String) {
        guard let error = error as? YamlError else { return (0, "cannot read the YAML: \(error)") }
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            var reason = "invalid YAML: \(problem)"
            if let context { reason += " (\(context.text) started at line \(context.mark.line))" }
            return (mark.line, reason)
        case .reader(let problem, let offset, _, _):
            let line = offset.map { characterOffset in yaml.prefix(characterOffset).count(where: \.isNewline) + 1 } ?? 0
            return (line, "cannot read the file as text: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { "\"\($0)\"" }.joined(separator: ", ")
            let first = context.mark
            let line = duplicates.first.map { secondOccurrence(of: $0, after: first, in: yaml) } ?? first.line
            return (line, "the key \(keys) is written twice in the same map (first at line \(first.line))")
        default:
            return (0, "invalid YAML: \(error)")
        }
    }

    /// Yams points at the first of two equal keys; the second is the one to remove. In block style it is the
    /// next line with the same key at the same column (the map ends before any sibling map begins).
    private static func secondOccurrence(of key: String, after mark: Mark, in yaml: String) -> Int {
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
        let column = mark.column - 1
        for index in mark.line..<lines.count {
            let rest = lines[index].dropFirst(column)
            guard lines[index].count > column, rest.hasPrefix(key) else { continue }
            if rest.dropFirst(key.count).trimmingWhitespace().hasPrefix(":") { return index + 1 }
        }
        return mark.line
    }

    /// `*` starts a YAML alias, so an unquoted wildcard domain is the most likely cause of a scan error.
    private static func hint(line: Int, yaml: String) -> String {
        guard line > 0 else { return "" }
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
        guard line <= lines.count else { return "" }
        let text = lines[line - 1]
        guard text.contains("*."), !text.contains("\"*."), !text.contains("'*.") else { return "" }
        return "; a wildcard name must be quoted, e.g. name: \"*.example.com\""
    }
}
