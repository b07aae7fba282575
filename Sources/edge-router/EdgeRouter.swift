import ArgumentParser
import RoutingService

@main
struct EdgeRouter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edge-router",
        abstract: "HTTPS edge routing gateway.",
        subcommands: [
            RunCommand.self, CheckCommand.self, ReloadCommand.self, Domains.self, SSLCommand.self, Instances.self,
            Certs.self,
        ]
    )
}
