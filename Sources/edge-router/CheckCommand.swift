import ArgumentParser
import Foundation
import RoutingService

/// `edge-router check`: validate a configuration file and list every problem, one per line, as
/// `FILE:LINE: KEY: reason` on stderr (exit 1), or print a one-line summary (exit 0).
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration file and list every problem in it."
    )

    @Option(name: .long, help: "The configuration file to check.")
    var config: String = "Configs/edge-router.yaml"

    func run() throws {
        switch ConfigurationLoader.loadCheckingCertificates(path: config) {
        case .success(let loaded):
            print(Self.summary(of: loaded))
        case .failure(let error):
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode.failure
        }
    }

    /// `Configs/demo.yaml: OK: 1 service, 3 instances, 3 domains, 0 public ports`
    static func summary(of loaded: LoadedConfiguration) -> String {
        let configuration = loaded.configuration
        let counts = [
            counted(configuration.services.count, "service"),
            counted(configuration.services.reduce(0) { $0 + $1.instances.count }, "instance"),
            counted(configuration.domains.count, "domain"),
            counted(configuration.publicPorts.count, "public port"),
        ]
        return "\(loaded.path): OK: \(counts.joined(separator: ", "))"
    }

    private static func counted(_ count: Int, _ noun: String) -> String {
        "\(count) \(noun)\(count == 1 ? "" : "s")"
    }
}
