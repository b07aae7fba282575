import ArgumentParser
import Foundation
import NIOHTTP1
import RoutingService

/// `edge-router reload`: asks the running gateway to reload its configuration file.
struct ReloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Reload the configuration file of the running gateway (validated whole; refused with every problem)."
    )

    @OptionGroup var options: AdminOptions

    func run() async throws {
        let object = try AdminOutput.check(try await options.client().request(.POST, "/config/reload"))
        AdminOutput.printChange(object)
    }
}

struct Domains: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "domains",
        abstract: "List, set or remove the domains of the running gateway (written back to its configuration file).",
        subcommands: [List.self, Set.self, Remove.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One line per domain.")
        @OptionGroup var options: AdminOptions

        func run() async throws {
            let object = try AdminOutput.check(try await options.client().request(.GET, "/domains"))
            let domains = object["domains"] as? [[String: Any]] ?? []
            var rows = [["NAME", "SERVICE", "PORT", "SSL", "REDIRECT"]]
            for domain in domains {
                let ssl = (domain["passthrough"] as? Bool == true) ? "passthrough" : (domain["ssl"] as? String ?? "-")
                rows.append([
                    domain["name"] as? String ?? "?", domain["service"] as? String ?? "?",
                    "\(domain["port"] as? Int ?? 0)", ssl, (domain["redirectHTTP"] as? Bool ?? false) ? "yes" : "no",
                ])
            }
            for line in AdminOutput.table(rows) { print(line) }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a domain, or replace it.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The domain name (exact, or \"*.example.com\").") var name: String
        @Option(help: "The service.") var service: String
        @Option(help: "The service port.") var port: Int
        @Option(help: "auto, manual or off (default auto on HTTP ports).") var ssl: String?
        @Option(name: .customLong("redirect-http"), help: "true or false.") var redirectHTTP: Bool?

        func run() async throws {
            var body: [String: Any] = ["service": service, "port": port]
            if let ssl { body["ssl"] = ssl }
            if let redirectHTTP { body["redirectHTTP"] = redirectHTTP }
            let path = "/domains/" + Paths.escape(name)
            AdminOutput.printChange(try AdminOutput.check(try await options.client().request(.PUT, path, json: body)))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a domain.")
        @OptionGroup var options: AdminOptions
        @Argument var name: String

        func run() async throws {
            let path = "/domains/" + Paths.escape(name)
            AdminOutput.printChange(try AdminOutput.check(try await options.client().request(.DELETE, path)))
        }
    }
}

/// `edge-router ssl DOMAIN [auto|manual|off]`: shows or sets a domain's SSL mode.
struct SSLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ssl",
        abstract: "Show a domain's SSL state, or set its mode (auto, manual, off) at once."
    )

    @OptionGroup var options: AdminOptions
    @Argument var domain: String
    @Argument(help: "auto, manual or off; without it, the current state is shown.") var mode: String?

    func run() async throws {
        let client = try options.client()
        let path = "/domains/" + Paths.escape(domain) + "/ssl"
        if let mode {
            guard SSLMode(rawValue: mode) != nil else { throw CommandFailure("the mode must be auto, manual or off, not \(mode)") }
            AdminOutput.printChange(try AdminOutput.check(try await client.request(.PUT, path, json: ["mode": mode])))
            return
        }
        let object = try AdminOutput.check(try await client.request(.GET, path))
        print("\(domain): ssl \(object["ssl"] as? String ?? "none (passthrough)"), redirectHTTP \(object["redirectHTTP"] as? Bool ?? false)")
        if let certificate = object["certificate"] as? [String: Any] {
            let names = (certificate["names"] as? [String] ?? []).joined(separator: ",")
            print("certificate \(names) (\(certificate["source"] as? String ?? "?")), expires \(certificate["expires"] as? String ?? "?"), folder \(certificate["folder"] as? String ?? "?")")
        } else {
            print("no certificate covers \(domain)")
        }
        if let automatic = object["automatic"] as? [String: Any] {
            var line = "automatic certificate: \(automatic["status"] as? String ?? "?")"
            if let renewal = automatic["renewalDate"] as? String { line += ", renews from \(renewal)" }
            if let error = automatic["lastError"] as? String { line += ", last error: \(error)" }
            if let retry = automatic["nextRetry"] as? String { line += ", next try \(retry)" }
            print(line)
        }
    }
}

struct Instances: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instances",
        abstract: "List, add or remove the instances of a service (written back to the configuration file)."
    )

    @OptionGroup var options: AdminOptions
    @Argument(help: "The service.") var service: String
    @Argument(help: "list, add or remove.") var action: String = "list"
    @Argument(help: "The instance address (add, remove).") var address: String?

    func run() async throws {
        let client = try options.client()
        let base = "/services/" + Paths.escape(service) + "/instances"
        switch action {
        case "list":
            let object = try AdminOutput.check(try await client.request(.GET, base))
            var rows = [["ADDRESS", "HEALTHY", "IN-FLIGHT"]]
            for instance in object["instances"] as? [[String: Any]] ?? [] {
                let ports = instance["ports"] as? [[String: Any]] ?? []
                let inFlight = ports.reduce(0) { $0 + ($1["inFlight"] as? Int ?? $1["activeSessions"] as? Int ?? 0) }
                rows.append([instance["address"] as? String ?? "?", (instance["healthy"] as? Bool ?? false) ? "yes" : "no", "\(inFlight)"])
            }
            for line in AdminOutput.table(rows) { print(line) }
        case "add", "remove":
            guard let address else { throw CommandFailure("\(action) needs an instance address, e.g. 10.0.0.14") }
            let response = action == "add"
                ? try await client.request(.POST, base, json: ["address": address])
                : try await client.request(.DELETE, base + "/" + Paths.escape(address))
            AdminOutput.printChange(try AdminOutput.check(response))
        default:
            throw CommandFailure("unknown action \(action): use list, add or remove")
        }
    }
}

enum Paths {
    static func escape(_ segment: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove("/")
        return segment.addingPercentEncoding(withAllowedCharacters: allowed) ?? segment
    }
}
