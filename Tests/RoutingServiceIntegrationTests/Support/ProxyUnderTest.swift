import Foundation
import Logging
import NIOCore
import NIOPosix
import RoutingService
import TestSupport

/// The gateway's HTTP front running in this process on 127.0.0.1:0 over plain HTTP, with two event
/// loops, in `.plain` mode or in `.tls` mode behind a stand-in that fires the TLS handshake event.
final class ProxyUnderTest: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let runtime: HTTPProxyRuntime
    let listener: ListeningSockets
    let port: Int

    init(
        configuration: GatewayConfiguration,
        mode: HTTPFrontMode = .plain,
        serverName: String? = nil,
        logLevel: Logger.Level = .warning
    ) async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var logger = Logger(label: "edge-router.test.http")
        logger.logLevel = logLevel
        runtime = HTTPProxyRuntime(configuration: configuration, eventLoopGroup: group, logger: logger)
        var beforeFront: (@Sendable (any Channel) throws -> Void)? = nil
        if mode == .tls {
            beforeFront = { channel in
                try channel.pipeline.syncOperations.addHandler(FakeTLSHandshakeHandler(serverName: serverName))
            }
        }
        listener = try await HTTPListener.bind(host: "127.0.0.1", port: 0, mode: mode, runtime: runtime, beforeFront: beforeFront)
        port = listener.localAddress!.port!
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func shutdown() async throws {
        try await listener.close()
        try await runtime.closeIdleConnections().get()
        try await group.shutdownGracefully()
    }

    /// The configuration the tests share: `app.test` (ssl off, proxied on the plain listener),
    /// `secure.test` and `other.test` (TLS, redirected from plain), `only-a.test` (just instance a),
    /// `down.test` (instances where nothing listens).
    static func configuration(instances: NodeInstances, timeouts: TimeoutConfiguration = .init()) -> GatewayConfiguration {
        let port = instances.port
        let all = NodeInstances.hosts.map { InstanceAddress(host: $0) }
        return GatewayConfiguration(
            timeouts: timeouts,
            services: [
                ServiceConfiguration(name: "app", ports: [ServicePort(port: port, http: true)], instances: all),
                ServiceConfiguration(name: "a-only", ports: [ServicePort(port: port, http: true)], instances: [all[0]]),
                ServiceConfiguration(
                    name: "down", ports: [ServicePort(port: port, http: true)],
                    instances: ["127.0.0.5", "127.0.0.6", "127.0.0.7"].map { InstanceAddress(host: $0) }
                ),
            ],
            domains: [
                DomainConfiguration(name: DomainName("app.test"), service: "app", port: port, ssl: .off),
                DomainConfiguration(name: DomainName("*.wild.test"), service: "app", port: port, ssl: .off),
                DomainConfiguration(name: DomainName("secure.test"), service: "app", port: port, ssl: .manual),
                DomainConfiguration(name: DomainName("other.test"), service: "app", port: port, ssl: .manual),
                DomainConfiguration(name: DomainName("only-a.test"), service: "a-only", port: port, ssl: .off),
                DomainConfiguration(name: DomainName("down.test"), service: "down", port: port, ssl: .off),
            ]
        )
    }
}

/// Stands in for the TLS handler over a plain socket: announces a finished handshake with a fixed SNI.
final class FakeTLSHandshakeHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let serverName: String?

    init(serverName: String?) { self.serverName = serverName }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        context.fireUserInboundEventTriggered(
            TLSHandshakeCompletedEvent(serverName: serverName, alpnProtocol: "http/1.1", protocolVersion: "TLSv1.3", sessionReused: false)
        )
    }
}

/// curl helpers: every call bounded by `--max-time`.
enum Curl {
    struct Response {
        var status: Int
        var headers: String
        var body: String
    }

    static func get(_ url: String, host: String?, headers: [String] = [], method: String? = nil) throws -> Response {
        var arguments = ["-s", "--max-time", "20", "-D", "-", url]
        if let host { arguments += ["-H", "Host: \(host)"] }
        for header in headers { arguments += ["-H", header] }
        if let method { arguments += ["-X", method] }
        let output = try Shell.run("curl", arguments).output
        guard let split = output.range(of: "\r\n\r\n") else { throw TestFailure("no response head in: \(output)") }
        let head = String(output[..<split.lowerBound])
        let statusLine = head.split(separator: "\r\n").first ?? ""
        let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
        return Response(status: status, headers: head, body: String(output[split.upperBound...]))
    }

    static func json(_ text: String) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw TestFailure("not a JSON object: \(text)")
        }
        return object
    }

    /// Runs `count` GETs through one curl process with up to `parallel` connections (kept alive)
    /// and returns how many answers came from each instance id.
    static func instanceCounts(url: String, host: String, count: Int, parallel: Int) throws -> [String: Int] {
        let arguments = [
            "-s", "--max-time", "110", "--parallel", "--parallel-immediate", "--parallel-max", String(parallel),
            "-H", "Host: \(host)", "\(url)/echo?n=[1-\(count)]",
        ]
        let output = try Shell.run("curl", arguments).output
        var counts: [String: Int] = [:]
        for id in NodeInstances.ids {
            counts[id] = output.components(separatedBy: "\"instance\":\"\(id)\"").count - 1
        }
        return counts
    }
}

enum ProcessMemory {
    /// Resident set size of this process in bytes, from /proc/self/status.
    static func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        return kilobytes * 1024
    }
}
