import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing
import TestSupport
@testable import RoutingService

/// A UDP test client bound on 127.0.0.1:0 that keeps every datagram it receives.
final class DatagramTestClient: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private let received = Mutex<[[UInt8]]>([])
    let channel: Mutex<(any Channel)?> = Mutex(nil)

    var replies: [[UInt8]] { received.withLock { $0 } }
    var textReplies: [String] { replies.map { String(decoding: $0, as: UTF8.self) } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        received.withLock { $0.append(Array(envelope.data.readableBytesView)) }
    }

    static func bind() async throws -> DatagramTestClient {
        let client = DatagramTestClient()
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(client) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        client.channel.withLock { $0 = channel }
        return client
    }

    func send(_ bytes: [UInt8], to address: SocketAddress) async throws {
        let channel = self.channel.withLock { $0 }!
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(bytes: bytes))).get()
    }

    func close() async {
        try? await channel.withLock { $0 }?.close()
    }
}

/// The UDP relay of the project balancer, in process on 127.0.0.1:0, in front of Node UDP echo
/// instances on 127.0.0.2–4.
@Suite(.serialized) final class L4UDPRelayTests {
    let instances: L4NodeInstances
    let registry = L4ConnectionRegistry()
    let logs = LogCapture()

    init() throws {
        instances = try L4NodeInstances(script: "l4-udp-echo.js")
    }

    deinit { instances.stop() }

    private func startListener(_ configuration: UDPProxyConfiguration = .init()) async throws -> (L4UDPListener, SocketAddress) {
        let service = instances.service(name: "dns")
        let port = PublicPortConfiguration(
            listen: ListenAddress(host: "127.0.0.1", port: 0), transport: .udp, service: "dns", port: instances.port
        )
        let listener = try L4ListenerFactory.makeListener(
            for: port, service: service, registry: registry, udp: configuration,
            group: MultiThreadedEventLoopGroup.singleton, logger: logs.logger(label: "l4")
        ) as! L4UDPListener
        try await listener.start()
        return (listener, listener.localAddress!)
    }

    @Test func hundredFlowsSpreadAcrossInstancesAndRepliesReachTheRightClient() async throws {
        // Flows that outlive the test however slow the machine (the default 30 s idle timeout expired some
        // flows mid-test when every suite ran in parallel on two cores).
        let (listener, address) = try await startListener(UDPProxyConfiguration(idleTimeout: .seconds(600)))
        var clients: [DatagramTestClient] = []
        for index in 0..<100 {
            let client = try await DatagramTestClient.bind()
            clients.append(client)
            try await client.send(Array("client-\(index)".utf8), to: address)
        }
        #expect(await eventually { clients.allSatisfy { $0.replies.count == 1 } })
        var perInstance: [String: Int] = [:]
        for (index, client) in clients.enumerated() {
            let reply = try #require(client.textReplies.first)
            // `ID:UPSTREAM-PORT:payload`: each client got its own payload back, not another's.
            #expect(reply.hasSuffix(":client-\(index)"), "client \(index) got \(reply)")
            perInstance[String(reply.prefix { $0 != ":" }), default: 0] += 1
        }
        #expect(perInstance.keys.sorted() == ["i2", "i3", "i4"])
        for (instance, count) in perInstance {
            #expect((31...36).contains(count), "\(instance) has \(count) of 100 flows: \(perInstance)")
        }
        #expect(listener.statistics.activeFlows == 100)
        let endpoints = L4NodeInstances.hosts.map { ListenAddress(host: $0, port: instances.port) }
        #expect(endpoints.map { registry.activeCount(for: $0, transport: .udp) }.reduce(0, +) == 100)

        // A second datagram from a client stays on its flow and its upstream socket.
        try await clients[7].send(Array("again".utf8), to: address)
        #expect(await eventually { clients[7].replies.count == 2 })
        let first = clients[7].textReplies[0].split(separator: ":").prefix(2)
        let second = clients[7].textReplies[1].split(separator: ":").prefix(2)
        #expect(first == second)
        #expect(listener.statistics.flowsStarted == 100)

        await listener.stop()
        #expect(await eventually { listener.statistics.activeFlows == 0 })
        #expect(endpoints.map { registry.activeCount(for: $0, transport: .udp) }.reduce(0, +) == 0)
        #expect(logs.all.filter { $0.message == "L4 session ended" && $0.metadata["l4.end"] == "shutdown" }.count == 100)
        for client in clients { await client.close() }
    }

    @Test func aFlowExpiresAfterItsIdleTimeout() async throws {
        let (listener, address) = try await startListener(UDPProxyConfiguration(idleTimeout: .milliseconds(300)))
        let client = try await DatagramTestClient.bind()
        try await client.send(Array("one".utf8), to: address)
        #expect(await eventually { client.replies.count == 1 })
        #expect(listener.statistics.activeFlows == 1)
        #expect(await eventually(within: .seconds(3)) { listener.statistics.activeFlows == 0 })
        let line = try #require(logs.all.first { $0.message == "L4 session ended" })
        #expect(line.metadata["l4.end"] == "idle-timeout")
        #expect(line.metadata["l4.protocol"] == "udp")
        #expect(line.metadata["l4.bytes_from_client"] == "3")

        // The next datagram starts a new flow with a new upstream socket.
        try await client.send(Array("two".utf8), to: address)
        #expect(await eventually { client.replies.count == 2 })
        let firstSocket = client.textReplies[0].split(separator: ":")[1]
        let secondSocket = client.textReplies[1].split(separator: ":")[1]
        #expect(firstSocket != secondSocket)
        #expect(listener.statistics.flowsStarted == 2)
        await client.close()
        await listener.stop()
    }

    @Test func aLargestDatagramRoundTrips() async throws {
        let (listener, address) = try await startListener()
        let client = try await DatagramTestClient.bind()
        let payload = (0..<UDPProxyConfiguration.maximumDatagramSize).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try await client.send(payload, to: address)
        #expect(await eventually { client.replies.count == 1 })
        #expect(client.replies.first == payload)
        await client.close()
        await listener.stop()
    }

    @Test func newFlowsBeyondTheLimitAreDroppedCountedAndLogged() async throws {
        let (listener, address) = try await startListener(UDPProxyConfiguration(maximumFlows: 3))
        var clients: [DatagramTestClient] = []
        for _ in 0..<5 {
            let client = try await DatagramTestClient.bind()
            clients.append(client)
            try await client.send(Array("hi".utf8), to: address)
        }
        #expect(await eventually { clients.filter { $0.replies.count == 1 }.count == 3 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(clients.filter { $0.replies.isEmpty }.count == 2)
        #expect(listener.statistics.flowsRefusedAtLimit == 2)
        // Rate-limited: one line for the burst.
        #expect(logs.all.filter { $0.message.contains("UDP flow limit reached") }.count == 1)
        for client in clients { await client.close() }
        await listener.stop()
    }
}
