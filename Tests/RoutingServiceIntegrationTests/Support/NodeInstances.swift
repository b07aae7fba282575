import Foundation
import TestSupport

/// Three Node.js echo instances (`Node/echo-server.js`) on 127.0.0.2, .3 and .4, same port.
/// Stopped by PID in `stop()` (and, as a fallback, when the processes are released).
final class NodeInstances: @unchecked Sendable {
    static let hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    static let ids = ["a", "b", "c"]
    let port: Int
    private var processes: [BackgroundProcess] = []

    static var scriptPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Node/echo-server.js").path
    }

    init() throws {
        port = try FreePort.find(host: Self.hosts[0])
        for (host, id) in zip(Self.hosts, Self.ids) {
            processes.append(try BackgroundProcess("node", [Self.scriptPath, host, String(port), id]))
        }
        let deadline = Date().addingTimeInterval(10)
        for host in Self.hosts {
            while !RawSocket.canConnect(host: host, port: port) {
                guard Date() < deadline else {
                    let logs = processes.map(\.log).joined(separator: "\n")
                    stop()
                    throw TestFailure("instances did not start listening on port \(port): \(logs)")
                }
                usleep(20_000)
            }
        }
    }

    func endpoint(_ index: Int) -> String { "\(Self.hosts[index]):\(port)" }

    /// TCP connections each instance has accepted so far (asked directly, which itself adds one).
    func acceptedConnections() throws -> [Int] {
        try Self.hosts.map { host in
            let output = try Shell.run("curl", ["-s", "--max-time", "5", "http://\(host):\(port)/stats"]).output
            guard let data = output.data(using: .utf8),
                  let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let connections = json["connections"] as? Int
            else { throw TestFailure("bad /stats answer: \(output)") }
            return connections
        }
    }

    func stop() {
        for process in processes { process.stop(grace: 2) }
        processes.removeAll()
    }

    deinit { stop() }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
