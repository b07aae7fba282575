import ArgumentParser
import Foundation
import RoutingService
import Yams

/// Where the admin API is and which token to present: from the configuration file (`admin.listen`,
/// `admin.tokenFile`), each overridable.
struct AdminOptions: ParsableArguments {
    @Option(help: "The configuration file: admin.listen and admin.tokenFile locate the admin API (certs: certificates.directory names the store).")
    var config: String = "Configs/edge-router.yaml"

    @Option(help: "The admin API address, host:port or http://host:port (overrides admin.listen).")
    var admin: String?

    @Option(name: .customLong("token-file"), help: "The admin token file (overrides admin.tokenFile).")
    var tokenFile: String?

    func client() throws -> AdminClient {
        switch try resolve() {
        case .configured(let client): return client
        case .noTokenFile:
            throw CommandFailure("no admin token: \(config) sets no admin.tokenFile (the admin API is then not started); pass --token-file FILE")
        }
    }

    enum Resolution {
        case configured(AdminClient)
        /// Neither the configuration nor `--token-file` names a token file: no admin API runs.
        case noTokenFile
    }

    /// The client, or `.noTokenFile` when no admin API can be running; throws on a bad address or an
    /// unreadable token file.
    func resolve() throws -> Resolution {
        let settings = try? Self.adminSettings(fromConfigAt: config)
        var address = admin ?? settings?.listen ?? "127.0.0.1:9901"
        if address.hasPrefix("http://") { address.removeFirst("http://".count) }
        while address.hasSuffix("/") { address.removeLast() }
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw CommandFailure("the admin address \(address) is not host:port")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "0.0.0.0" { host = "127.0.0.1" }
        guard let tokenPath = tokenFile ?? settings?.tokenFile else { return .noTokenFile }
        guard let data = FileManager.default.contents(atPath: tokenPath) else {
            throw CommandFailure("cannot read the admin token file \(tokenPath)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return .configured(AdminClient(host: host, port: port, token: token))
    }

    static func adminSettings(fromConfigAt path: String) throws -> (listen: String?, tokenFile: String?) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CommandFailure("cannot read the configuration file \(path)")
        }
        let admin = try Yams.compose(yaml: text)?["admin"]
        return (admin?["listen"]?.string, admin?["tokenFile"]?.string)
    }
}

/// Turns an admin API answer into output: the body's `problems` on stderr and exit 1 for errors.
enum AdminOutput {
    static func check(_ response: AdminClient.Response) throws -> [String: Any] {
        let object = response.json ?? [:]
        guard (200..<300).contains(response.status) else {
            var message = (object["error"] as? String) ?? "HTTP \(response.status): \(response.text)"
            if let problems = object["problems"] as? [String], !problems.isEmpty {
                message += ":\n" + problems.joined(separator: "\n")
            }
            if response.status == 409, let version = object["version"] as? String {
                message += " (current version \(version))"
            }
            throw CommandFailure(message)
        }
        return object
    }

    static func printChange(_ object: [String: Any]) {
        let version = object["version"] as? String ?? "?"
        let changes = object["changes"] as? String ?? ""
        print("version \(version): \(changes)")
    }

    static func table(_ rows: [[String]]) -> [String] {
        guard let first = rows.first else { return [] }
        let widths = (0..<first.count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
    }
}
