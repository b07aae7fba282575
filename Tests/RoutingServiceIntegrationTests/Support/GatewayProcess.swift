import Foundation
import NIOHTTP1
import RoutingService
import TestSupport

/// The built `edge-router run` binary, its configuration file (and admin token) in a temporary
/// directory. `start()` waits for the admin API to answer; `stop()` ends the process by PID; `kill9()`
/// ends it without a chance to clean up. The management CLI is run against it with `cli(_:)`.
final class GatewayProcess: @unchecked Sendable {
    static let binary = CheckCommandTests.binary.path

    struct Ports {
        var http: Int
        var https: Int
        var admin: Int
        var tokenFile: String
        var directory: String
    }

    let directory: URL
    let configPath: String
    let token = "cli-token-\(UUID().uuidString)"
    let ports: Ports
    private(set) var process: BackgroundProcess?

    init(yaml: (Ports) -> String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("edge-router-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let tokenFile = directory.appendingPathComponent("admin.token").path
        try Data((token + "\n").utf8).write(to: URL(fileURLWithPath: tokenFile))
        ports = Ports(
            http: try FreePort.find(host: "127.0.0.1"),
            https: try FreePort.find(host: "127.0.0.1"),
            admin: try FreePort.find(host: "127.0.0.1"),
            tokenFile: tokenFile,
            directory: directory.path
        )
        configPath = directory.appendingPathComponent("edge-router.yaml").path
        try AtomicFile.write(Array(yaml(ports).utf8), to: configPath)
    }

    var admin: AdminClient { AdminClient(host: "127.0.0.1", port: ports.admin, token: token) }
    var plainURL: String { "http://127.0.0.1:\(ports.http)" }
    var fileText: String { (try? String(contentsOfFile: configPath, encoding: .utf8)) ?? "" }
    var log: String { process?.log ?? "" }

    /// Starts the binary (`--no-watch` unless `watch`) and waits until its admin API answers.
    func start(watch: Bool = false) async throws {
        var arguments = ["run", "--config", configPath, "--log-level", "info"]
        if !watch { arguments.append("--no-watch") }
        let process = try BackgroundProcess(Self.binary, arguments)
        self.process = process
        let deadline = Date().addingTimeInterval(15)
        while (try? await admin.request(.GET, "/health"))?.status != 200 {
            guard process.process.isRunning, Date() < deadline else {
                throw TestFailure("the gateway did not start: \(process.log)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func kill9() {
        guard let process else { return }
        process.signal(SIGKILL)
        process.process.waitUntilExit()
        self.process = nil
    }

    func stop() {
        process?.stop(grace: 5)
        process = nil
    }

    /// Stops the process and removes the directory.
    func remove() {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Runs the CLI with `arguments` plus `--config` (unless `withConfig` is false), from the directory.
    func cli(_ arguments: [String], withConfig: Bool = true) throws -> CertsCommandTests.Result {
        try CertsCommandTests.run(Self.binary, arguments + (withConfig ? ["--config", configPath] : []), in: directory.path)
    }

    func get(host: String, path: String = "/echo") throws -> Curl.Response {
        try Curl.get(plainURL + path, host: host)
    }
}
