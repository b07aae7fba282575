import Foundation
import Yams

/// Finds `certificates.directory` in a configuration file, reading that key only (default `certs`), so the
/// `certs` commands work before the full configuration loader is wired in. Relative paths are resolved
/// against the current directory.
enum CertificateDirectoryLocator {
    static func directory(fromConfigAt path: String) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CommandFailure("cannot read the configuration file \(path) (pass --config FILE or --directory DIR)")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw CommandFailure("\(path) is not valid YAML: \(error)")
        }
        guard let node = root?["certificates"]?["directory"] else { return absolute("certs") }
        guard let directory = node.string, !directory.isEmpty else {
            throw CommandFailure("\(path): certificates.directory must be a path")
        }
        return absolute(directory)
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}

/// A command's failure, printed as `Error: <message>`; the process exits 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
