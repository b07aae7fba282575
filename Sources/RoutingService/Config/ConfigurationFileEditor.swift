import Foundation
/// One change the admin API makes to the configuration.
public enum ConfigurationEdit: Sendable, Equatable {
    case setDomain(DomainConfiguration)
    case removeDomain(DomainName)
    case addInstance(service: String, InstanceAddress)
    case removeInstance(service: String, InstanceAddress)

    /// The change applied to the value. Throws `ConfigurationEditError` when it names something absent.
    public func applied(to configuration: GatewayConfiguration) throws(ConfigurationEditError) -> GatewayConfiguration {
        var result = configuration
        switch self {
        case .setDomain(let domain):
            if let index = result.domains.firstIndex(where: { $0.name == domain.name }) {
                result.domains[index] = domain
            } else {
                result.domains.append(domain)
            }
        case .removeDomain(let name):
            guard let index = result.domains.firstIndex(where: { $0.name == name }) else {
                throw .notFound("no domain \(name) in the configuration")
            }
            result.domains.remove(at: index)
        case .addInstance(let service, let instance):
            guard let index = result.services.firstIndex(where: { $0.name == service }) else {
                throw .notFound("no service \(service) in the configuration")
            }
            guard !result.services[index].instances.contains(instance) else {
                throw .conflict("service \(service) already has instance \(instance)")
            }
            result.services[index].instances.append(instance)
        case .removeInstance(let service, let instance):
            guard let index = result.services.firstIndex(where: { $0.name == service }) else {
                throw .notFound("no service \(service) in the configuration")
            }
            guard let position = result.services[index].instances.firstIndex(of: instance) else {
                throw .notFound("service \(service) has no instance \(instance)")
            }
            result.services[index].instances.remove(at: position)
        }
        return result
    }
}

public enum ConfigurationEditError: Error, Sendable, Equatable, CustomStringConvertible {
    case notFound(String)
    case conflict(String)

    public var description: String {
        switch self {
        case .notFound(let message), .conflict(let message): message
        }
    }
}

/// Applies a `ConfigurationEdit` to the text of the configuration file by touching only the lines it
/// concerns, so the rest of the file (comments, order, blank lines) stays as the operator wrote it:
/// a domain is one flow-style line of `domains:` (replaced, appended after the last one, or removed);
/// an instance is an entry of the service's `instances:` list, flow-style on one line or one `- addr`
/// line each. Returns nil when the file is not in one of those shapes; the caller then re-emits the
/// whole document (`ConfigurationEmitter`). The caller also checks that the edited text decodes to
/// the expected configuration, so a surprise in the file's shape can never write a wrong value.
public enum ConfigurationFileEditor {
    public static func edit(_ text: String, loaded: LoadedConfiguration, _ edit: ConfigurationEdit) -> String? {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let configuration = loaded.configuration
        let map = loaded.sourceMap
        func lineIndex(_ path: ConfigurationKeyPath) -> Int? {
            let line = map.line(of: path)
            return line >= 1 && line <= lines.count ? line - 1 : nil
        }

        switch edit {
        case .setDomain(let domain):
            let entry = ConfigurationEmitter.flowMap(domain)
            if let index = configuration.domains.firstIndex(where: { $0.name == domain.name }) {
                guard let at = lineIndex(map.path(ofEntry: index, in: "domains")),
                      let replaced = replacingFlowMap(in: lines[at], with: entry)
                else { return nil }
                lines[at] = replaced
            } else if let last = configuration.domains.indices.last {
                guard let at = lineIndex(map.path(ofEntry: last, in: "domains")),
                      let prefix = flowEntryPrefix(lines[at])
                else { return nil }
                lines.insert(prefix + entry, at: at + 1)
            } else if map.contains("domains") {
                guard let at = lineIndex("domains"), let key = emptyFlowList(lines[at], key: "domains") else { return nil }
                lines[at] = key
                lines.insert("  - " + entry, at: at + 1)
            } else {
                if lines.last == "" { lines.removeLast() }
                lines += ["domains:", "  - " + entry, ""]
            }

        case .removeDomain(let name):
            guard let index = configuration.domains.firstIndex(where: { $0.name == name }),
                  let at = lineIndex(map.path(ofEntry: index, in: "domains")),
                  flowEntryPrefix(lines[at]) != nil
            else { return nil }
            lines.remove(at: at)
            if configuration.domains.count == 1 {
                guard let keyLine = lineIndex("domains"), keyLine < at else { return nil }
                lines[keyLine] = withFlowList(lines[keyLine], key: "domains", items: [])
            }

        case .addInstance(let service, let instance):
            guard let serviceIndex = configuration.services.firstIndex(where: { $0.name == service }) else { return nil }
            let listPath = map.path(ofEntry: serviceIndex, in: "services").appending("instances")
            let instances = configuration.services[serviceIndex].instances
            guard let keyLine = lineIndex(listPath) else { return nil }
            if isFlowList(lines[keyLine], key: "instances") {
                lines[keyLine] = withFlowList(lines[keyLine], key: "instances", items: instances + [instance])
            } else {
                guard let last = instances.indices.last,
                      let at = lineIndex(map.path(ofEntry: last, in: listPath)),
                      let prefix = scalarEntryPrefix(lines[at])
                else { return nil }
                lines.insert(prefix + ConfigurationEmitter.scalar(instance.description), at: at + 1)
            }

        case .removeInstance(let service, let instance):
            guard let serviceIndex = configuration.services.firstIndex(where: { $0.name == service }) else { return nil }
            let listPath = map.path(ofEntry: serviceIndex, in: "services").appending("instances")
            let instances = configuration.services[serviceIndex].instances
            guard let position = instances.firstIndex(of: instance), let keyLine = lineIndex(listPath) else { return nil }
            if isFlowList(lines[keyLine], key: "instances") {
                var remaining = instances
                remaining.remove(at: position)
                lines[keyLine] = withFlowList(lines[keyLine], key: "instances", items: remaining)
            } else {
                guard let at = lineIndex(map.path(ofEntry: position, in: listPath)),
                      scalarEntryPrefix(lines[at]) != nil
                else { return nil }
                lines.remove(at: at)
                if instances.count == 1 {
                    lines[keyLine] = withFlowList(lines[keyLine], key: "instances", items: [])
                }
            }
        }
        return lines.joined(separator: "\n")
    }

    // MARK: line shapes

    /// `  - { … }  # comment` → `  - `; nil for any other shape (a block mapping, a multi-line flow map).
    static func flowEntryPrefix(_ line: String) -> String? {
        guard let dash = line.firstIndex(where: { $0 != " " }), line[dash] == "-" else { return nil }
        let afterDash = line[line.index(after: dash)...]
        guard let brace = afterDash.firstIndex(where: { $0 != " " }), afterDash[brace] == "{" else { return nil }
        guard closingBrace(in: line) != nil else { return nil }
        return String(line[..<brace])
    }

    /// `  - 10.0.0.1  # comment` → `  - `.
    static func scalarEntryPrefix(_ line: String) -> String? {
        guard let dash = line.firstIndex(where: { $0 != " " }), line[dash] == "-" else { return nil }
        let afterDash = line[line.index(after: dash)...]
        guard let start = afterDash.firstIndex(where: { $0 != " " }), !"{[".contains(afterDash[start]) else { return nil }
        return String(line[..<start])
    }

    /// Replaces the `{ … }` of a flow entry line, keeping its indentation and a trailing comment.
    static func replacingFlowMap(in line: String, with entry: String) -> String? {
        guard let prefix = flowEntryPrefix(line), let close = closingBrace(in: line) else { return nil }
        return prefix + entry + line[line.index(after: close)...]
    }

    /// The `}` closing the flow map that starts the entry, skipping quoted text; nil when it is not on this line.
    private static func closingBrace(in line: String) -> String.Index? {
        var depth = 0
        var quote: Character?
        var index = line.startIndex
        while index < line.endIndex {
            let character = line[index]
            if let open = quote {
                if character == "\\" && open == "\"" {
                    index = line.index(after: index)
                } else if character == open {
                    quote = nil
                }
            } else if character == "\"" || character == "'" {
                quote = character
            } else if character == "#" && depth == 0 {
                return nil
            } else if character == "{" {
                depth += 1
            } else if character == "}" {
                depth -= 1
                if depth == 0 { return index }
            }
            if index < line.endIndex { index = line.index(after: index) }
        }
        return nil
    }

    /// `    instances: [a, b]  # comment`
    static func isFlowList(_ line: String, key: String) -> Bool {
        guard let range = line.range(of: "\(key):") else { return false }
        let rest = line[range.upperBound...].drop { $0 == " " }
        guard rest.first == "[", let close = rest.firstIndex(of: "]") else { return false }
        let after = rest[rest.index(after: close)...].drop { $0 == " " }
        return after.isEmpty || after.first == "#"
    }

    /// The key line with its value replaced by a flow list of `items`, keeping indentation and a trailing comment.
    static func withFlowList(_ line: String, key: String, items: [InstanceAddress]) -> String {
        guard let range = line.range(of: "\(key):") else { return line }
        let rest = line[range.upperBound...]
        var comment = ""
        if isFlowList(line, key: key), let close = rest.firstIndex(of: "]") {
            comment = String(rest[rest.index(after: close)...])
        } else if let hash = rest.range(of: " #") {
            comment = String(rest[hash.lowerBound...])
        }
        return line[..<range.upperBound] + " " + ConfigurationEmitter.instanceList(items) + comment
    }

    /// `domains:` (a block list follows) → the same line, ready for entries below it; nil for other shapes.
    static func emptyFlowList(_ line: String, key: String) -> String? {
        guard let range = line.range(of: "\(key):") else { return nil }
        let rest = line[range.upperBound...].drop { $0 == " " }
        if rest.hasPrefix("[]") {
            let comment = rest.dropFirst(2)
            return String(line[..<range.upperBound]) + comment
        }
        return rest.isEmpty || rest.first == "#" ? line : nil
    }
}
