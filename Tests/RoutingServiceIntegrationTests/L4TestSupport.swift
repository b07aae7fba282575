import Foundation
import NIOCore
import NIOPosix
import Synchronization
import TestSupport
@testable import RoutingService

/// Node.js instances of one test service on 127.0.0.2, .3 and .4, on the same port, stopped by PID.
final class L4NodeInstances: Sendable {
    static let hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    let processes: [BackgroundProcess]
    let port: Int

    /// Starts `script` with `HOST PORT ID extra…`: the first on port 0, the others on the port it got.
    init(script: String, extraArguments: [String] = [], hosts: [String] = L4NodeInstances.hosts) throws {
        var processes: [BackgroundProcess] = []
        var port = 0
        do {
            for (index, host) in hosts.enumerated() {
                let process = try BackgroundProcess("node", [Self.script(script), host, String(port), "i\(index + 2)"] + extraArguments)
                processes.append(process)
                port = try Self.waitForListening(process)
            }
        } catch {
            processes.forEach { $0.stop(grace: 1) }
            throw error
        }
        self.processes = processes
        self.port = port
    }

    static func script(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Node/\(name)").path
    }

    /// Waits for the `listening PORT` line a Node helper prints once it is ready.
    static func waitForListening(_ process: BackgroundProcess, timeout: Double = 10) throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = process.log.split(separator: "\n").first(where: { $0.hasPrefix("listening ") }),
               let port = Int(line.dropFirst("listening ".count)) {
                return port
            }
            guard process.process.isRunning else { break }
            usleep(20_000)
        }
        throw L4TestError("node helper did not start listening: \(process.log)")
    }

    func service(name: String, extraInstances: [InstanceAddress] = []) -> ServiceConfiguration {
        ServiceConfiguration(
            name: name,
            ports: [ServicePort(port: port, transport: .tcp), ServicePort(port: port, transport: .udp)],
            instances: Self.hosts.map { InstanceAddress(host: $0) } + extraInstances
        )
    }

    func stop() {
        processes.forEach { $0.stop(grace: 2) }
    }

    deinit { stop() }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
func eventually(within timeout: Duration = .seconds(5), _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try condition()
}

/// A TCP test client: collects what it receives and learns when the gateway closes the connection.
final class CollectingClientHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let received = Mutex<[UInt8]>([])
    private let inputClosed = Mutex(false)

    var bytes: [UInt8] { received.withLock { $0 } }
    var text: String { String(decoding: bytes, as: UTF8.self) }
    var sawInputClosed: Bool { inputClosed.withLock { $0 } }

    /// The first line, once there is one.
    var firstLine: String? {
        let text = self.text
        guard let newline = text.firstIndex(of: "\n") else { return nil }
        return String(text[..<newline])
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        received.withLock { $0 += buffer.readableBytesView }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed.withLock { $0 = true }
            context.close(promise: nil)
        }
    }

    static func connect(
        to address: SocketAddress,
        halfClosure: Bool = false
    ) async throws -> (channel: any Channel, handler: CollectingClientHandler) {
        let handler = CollectingClientHandler()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: halfClosure)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
            }
            .connect(to: address).get()
        return (channel, handler)
    }
}

/// Resident memory of this process, from `/proc/self/status`.
func residentMemoryBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
    else { return 0 }
    return kilobytes * 1024
}

extension SocketAddress {
    static func loopback(_ port: Int) -> SocketAddress {
        try! SocketAddress(ipAddress: "127.0.0.1", port: port)
    }
}

/// `Shell.run` on a Dispatch thread, so a long-running tool does not hold one of the few threads of
/// Swift's cooperative pool (the machine has two cores).
func runTool(_ tool: String, _ arguments: [String], input: Data? = nil) async throws -> (status: Int32, output: String) {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try Shell.run(tool, arguments, input: input, allowFailure: true) })
        }
    }
}

struct L4TestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
