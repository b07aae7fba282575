/// Where a value sits in the configuration file: `services[0].ports[1].port`.
public struct ConfigurationKeyPath: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    public enum Component: Sendable, Hashable {
        case key(String)
        case index(Int)
    }

    public private(set) var components: [Component]

    public static let root = ConfigurationKeyPath(components: [])

    public init(components: [Component]) {
        self.components = components
    }

    /// A dotted path of plain keys, such as `listen.https`.
    public init(stringLiteral value: String) {
        components = value.split(separator: ".").map { .key(String($0)) }
    }

    public func appending(_ key: String) -> ConfigurationKeyPath {
        ConfigurationKeyPath(components: components + [.key(key)])
    }

    public subscript(index: Int) -> ConfigurationKeyPath {
        ConfigurationKeyPath(components: components + [.index(index)])
    }

    public var parent: ConfigurationKeyPath? {
        components.isEmpty ? nil : ConfigurationKeyPath(components: components.dropLast())
    }

    public var description: String {
        var text = ""
        for component in components {
            switch component {
            case .key(let key):
                if !text.isEmpty { text += "." }
                text += key
            case .index(let index):
                text += "[\(index)]"
            }
        }
        return text
    }
}

/// Which line of the file each key path was read from, so a problem found after decoding
/// (a duplicate, a dangling reference) still points at the right line.
public struct ConfigurationSourceMap: Sendable, Equatable {
    private var lines: [ConfigurationKeyPath: Int] = [:]
    /// For lists where an unreadable entry was skipped: file index of each decoded entry.
    private var fileIndices: [ConfigurationKeyPath: [Int: Int]] = [:]

    public init() {}

    /// Decoded entry `decodedIndex` of the list at `list` was written as entry `fileIndex` of the file.
    public mutating func recordEntry(decodedIndex: Int, fileIndex: Int, in list: ConfigurationKeyPath) {
        guard decodedIndex != fileIndex else { return }  // identity is the default
        fileIndices[list, default: [:]][decodedIndex] = fileIndex
    }

    /// Where entry `index` of a decoded list came from in the file; `list` is itself a file path
    /// (`path(ofEntry: 1, in: path(ofEntry: 0, in: "services").appending("ports"))`).
    /// Without a record (no entry skipped, or a configuration built in code) the index is the same.
    public func path(ofEntry index: Int, in list: ConfigurationKeyPath) -> ConfigurationKeyPath {
        list[fileIndices[list]?[index] ?? index]
    }

    public mutating func record(_ path: ConfigurationKeyPath, line: Int) {
        if lines[path] == nil { lines[path] = line }
    }

    /// The line of `path`, or of its nearest recorded ancestor when the key itself was not written
    /// (a defaulted value is reported at the entry that left it out); 0 when nothing is known.
    public func line(of path: ConfigurationKeyPath) -> Int {
        var current: ConfigurationKeyPath? = path
        while let candidate = current {
            if let line = lines[candidate] { return line }
            current = candidate.parent
        }
        return 0
    }

    /// Whether the key was written in the file (rather than defaulted).
    public func contains(_ path: ConfigurationKeyPath) -> Bool {
        lines[path] != nil
    }
}
