import Foundation
import Synchronization
import Logging
import NIOCore
import NIOPosix
import Testing
import TestSupport
@testable import RoutingService

/// The TCP relay of the project balancer, in process on 127.0.0.1:0, in front of Node echo instances
/// on 127.0.0.2–4.
@Suite(.serialized) final class L4TCPRelayTests {
    let instances: L4NodeInstances
    let registry = L4ConnectionRegistry()
    let logs = LogCapture()

    init() throws {
        instances = try L4NodeInstances(script: "l4-tcp-echo.js")
    }

    deinit { instances.stop() }

    private func startListener(
        service: ServiceConfiguration,
        relay: TCPRelayConfiguration = .init()
    ) async throws -> (L4TCPListener, SocketAddress) {
        let port = PublicPortConfiguration(
            listen: ListenAddress(host: "127.0.0.1", port: 0), transport: .tcp, service: service.name, port: instances.port
        )
        let listener = try L4ListenerFactory.makeListener(
            for: port, service: service, registry: registry, tcp: relay,
            group: MultiThreadedEventLoopGroup.singleton, logger: logs.logger(label: "l4")
        ) as! L4TCPListener
        try await listener.start()
        return (listener, listener.localAddress!)
    }

    private func openConnections(_ count: Int, to address: SocketAddress) async throws -> [(any Channel, CollectingClientHandler)] {
        try await withThrowingTaskGroup(of: (any Channel, CollectingClientHandler).self) { group in
            for _ in 0..<count {
                group.addTask { try await CollectingClientHandler.connect(to: address) }
            }
            var all: [(any Channel, CollectingClientHandler)] = []
            for try await connection in group { all.append(connection) }
            return all
        }
    }

    private func instanceCounts(_ connections: [(any Channel, CollectingClientHandler)]) async -> [String: Int] {
        _ = await eventually(within: .seconds(10)) { connections.allSatisfy { $0.1.firstLine != nil } }
        var counts: [String: Int] = [:]
        for (_, handler) in connections { counts[handler.firstLine ?? "none", default: 0] += 1 }
        return counts
    }

    private var endpoints: [ListenAddress] {
        L4NodeInstances.hosts.map { ListenAddress(host: $0, port: instances.port) }
    }

    @Test func connectionsGoToTheInstanceWithFewestOpenConnections() async throws {
        // 100 long-held connections on 127.0.0.2 through a port that only knows that instance…
        let onlyFirst = ServiceConfiguration(name: "echo", ports: [], instances: [InstanceAddress(host: "127.0.0.2")])
        let (pinned, pinnedAddress) = try await startListener(service: onlyFirst)
        let held = try await openConnections(100, to: pinnedAddress)
        #expect(await instanceCounts(held) == ["instance=i2": 100])

        // …steer 200 concurrent new connections through a port with all three to the other two.
        let (spread, spreadAddress) = try await startListener(service: instances.service(name: "echo"))
        let fresh = try await openConnections(200, to: spreadAddress)
        let counts = await instanceCounts(fresh)
        #expect(counts.values.reduce(0, +) == 200)
        #expect(counts["instance=i2", default: 0] <= 3, "\(counts)")
        #expect((96...104).contains(counts["instance=i3", default: 0]), "\(counts)")
        #expect((96...104).contains(counts["instance=i4", default: 0]), "\(counts)")
        #expect(registry.activeCount(for: endpoints[0], transport: .tcp) == 100)

        // Counts are exact: closing every client brings every instance back to zero.
        for (channel, _) in held + fresh { channel.close(promise: nil) }
        #expect(await eventually { self.endpoints.allSatisfy { self.registry.activeCount(for: $0, transport: .tcp) == 0 } })
        #expect(await eventually { self.logs.all.filter { $0.message == "L4 session ended" }.count == 300 })
        let line = try #require(logs.all.first { $0.message == "L4 session ended" })
        #expect(line.metadata["l4.end"] == "client-closed")
        // The `instance=iN\n` greeting, and `bye 0\n` if the instance answered the FIN before the reset.
        #expect(["12", "18"].contains(line.metadata["l4.bytes_from_upstream"]), "\(line.metadata)")
        #expect(line.metadata["l4.client"]?.hasPrefix("127.0.0.1:") == true)
        await pinned.stop()
        await spread.stop()
    }

    @Test func relays256MiBWithBoundedMemory() async throws {
        let (listener, address) = try await startListener(service: instances.service(name: "echo"))
        // Warm up (allocator pools, first connections) before taking the idle reading.
        _ = try await runTool("node", [L4NodeInstances.script("l4-bulk-client.js"), "127.0.0.1", "\(address.port!)", "\(4 << 20)"])
        let idle = residentMemoryBytes()
        let peak = PeakSampler()
        let sampling = Task { await peak.sample() }
        let total = 256 << 20
        let started = Date()
        let result = try await runTool("node", [L4NodeInstances.script("l4-bulk-client.js"), "127.0.0.1", "\(address.port!)", "\(total)"])
        sampling.cancel()
        _ = await sampling.value
        #expect(result.output.contains("ok \(total) \(total)"), "\(result.output)")
        let growth = peak.value - idle
        #expect(growth < 64 << 20, "RSS grew by \(growth >> 20) MiB over idle \(idle >> 20) MiB")
        #expect(await eventually {
            self.logs.all.contains { $0.message == "L4 session ended" && $0.metadata["l4.bytes_from_client"] == "\(total)" }
        }, "the session's log line counts every byte (took \(Date().timeIntervalSince(started)) s)")
        await listener.stop()
    }

    @Test func halfCloseReachesTheInstanceAndTheReplyStillComesBack() async throws {
        let (listener, address) = try await startListener(service: instances.service(name: "echo"))
        let (channel, handler) = try await CollectingClientHandler.connect(to: address, halfClosure: true)
        try await channel.writeAndFlush(ByteBuffer(string: "hello")).get()
        try await channel.close(mode: .output).get()
        try await channel.closeFuture.get()
        // Greeting, echo, then the instance's answer to our FIN: it saw the FIN and could still write,
        // and the relay passed its own FIN back (the connection ended without us closing it).
        #expect(handler.text.hasSuffix("\nhellobye 5\n"), "\(handler.text)")
        #expect(handler.text.hasPrefix("instance=i"))
        #expect(await eventually {
            self.logs.all.contains {
                $0.message == "L4 session ended" && $0.metadata["l4.end"] == "client-closed"
                    && $0.metadata["l4.bytes_from_client"] == "5"
            }
        })
        await listener.stop()
    }

    @Test func anInstanceThatRefusesConnectionsIsSkipped() async throws {
        // 127.0.0.5 has nothing listening: every connect to it is refused.
        let refusing = InstanceAddress(host: "127.0.0.5")
        let (listener, address) = try await startListener(
            service: instances.service(name: "echo", extraInstances: [refusing])
        )
        let connections = try await openConnections(30, to: address)
        let counts = await instanceCounts(connections)
        #expect(counts.values.reduce(0, +) == 30 && counts["none"] == nil, "\(counts)")
        #expect(logs.contains("L4 upstream connect failed") { $0["l4.instance"] == "127.0.0.5:\(self.instances.port)" })
        #expect(registry.activeCount(for: refusing.endpoint(forServicePort: instances.port), transport: .tcp) == 0)
        for (channel, _) in connections { channel.close(promise: nil) }
        await listener.stop()
    }

    @Test func whenEveryInstanceRefusesTheClientIsClosedWithAReason() async throws {
        let deadService = ServiceConfiguration(
            name: "dead", ports: [], instances: [InstanceAddress(host: "127.0.0.5"), InstanceAddress(host: "127.0.0.6")]
        )
        let (listener, address) = try await startListener(service: deadService)
        let (channel, handler) = try await CollectingClientHandler.connect(to: address)
        try await channel.closeFuture.get()
        #expect(handler.bytes.isEmpty)
        #expect(await eventually {
            self.logs.contains("L4 session ended") {
                $0["l4.end"] == "connect-failed" && $0["l4.end_detail"]?.contains("all 2 instances of dead") == true
                    && $0["l4.connect_attempts"] == "2"
            }
        })
        await listener.stop()
    }

    @Test func anIdleSessionIsClosedAfterTheIdleTimeout() async throws {
        let (listener, address) = try await startListener(
            service: instances.service(name: "echo"),
            relay: TCPRelayConfiguration(connectTimeout: .seconds(1), idleTimeout: .milliseconds(300))
        )
        let (channel, handler) = try await CollectingClientHandler.connect(to: address)
        let started = Date()
        try await channel.closeFuture.get()
        #expect(Date().timeIntervalSince(started) < 3)
        #expect(handler.text.hasPrefix("instance=i"))
        #expect(await eventually { self.logs.contains("L4 session ended") { $0["l4.end"] == "idle-timeout" } })
        await listener.stop()
    }
}

/// Samples this process's RSS every 50 ms and keeps the peak.
final class PeakSampler: Sendable {
    private let peak = Mutex(0)
    var value: Int { peak.withLock { $0 } }

    func sample() async {
        while !Task.isCancelled {
            let now = residentMemoryBytes()
            peak.withLock { $0 = max($0, now) }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}
