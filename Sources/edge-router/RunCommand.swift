import ArgumentParser
import Foundation
import Logging
import RoutingService
import ServiceLifecycle
import UnixSignals

/// `edge-router run`: validate the configuration (refusing it, before binding anything, with every
/// problem listed), then serve until SIGTERM/SIGINT; a second signal exits at once.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Start the gateway."
    )

    @Option(name: .long, help: "The configuration file.")
    var config: String = "Configs/edge-router.yaml"

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Flag(name: .customLong("no-watch"), help: "Do not reload when the configuration file changes (SIGHUP and the admin API still do).")
    var noWatch = false

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "edge-router")

        let loaded: LoadedConfiguration
        switch ConfigurationLoader.loadCheckingCertificates(path: config) {
        case .success(let value):
            loaded = value
        case .failure(let error):
            FileHandle.standardError.write(Data(("edge-router: refusing to start, the configuration has problems:\n"
                + error.description + "\n").utf8))
            throw ExitCode.failure
        }

        let immediateExit = SecondSignalExit(signals: [SIGTERM, SIGINT])
        let gateway = Gateway(loaded: loaded, options: .init(watchFile: !noWatch), logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: gateway), .init(service: SIGHUPReloadService(gateway: gateway))],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        withExtendedLifetime(immediateExit) {}
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// SIGHUP reloads the configuration file (validated whole; a refused one is logged with every problem).
struct SIGHUPReloadService: Service {
    let gateway: Gateway

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            await gateway.reload(trigger: .signal)
        }
    }
}

/// The first SIGTERM/SIGINT starts a graceful drain (ServiceLifecycle); a second one means the
/// operator does not want to wait: exit at once.
final class SecondSignalExit {
    private let sources: [any DispatchSourceSignal]

    init(signals: [Int32]) {
        let counter = SignalCounter()
        sources = signals.map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if counter.increment() >= 2 {
                    FileHandle.standardError.write(Data("edge-router: second signal, exiting now\n".utf8))
                    exit(1)
                }
            }
            source.resume()
            return source
        }
    }
}

private final class SignalCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        count += 1
        return count
    }
}
