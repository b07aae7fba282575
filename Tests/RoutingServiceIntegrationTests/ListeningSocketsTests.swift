import Foundation
import NIOCore
import NIOPosix
import RoutingService
import Synchronization
import Testing

/// One listening socket per event loop on the same address: connections are served on the loop that
/// accepted them, on every loop, and a port someone else holds is still refused.
@Suite struct ListeningSocketsTests {
    /// Records the event loop each accepted connection was initialised on, and closes it.
    final class AcceptedLoops: Sendable {
        private let loops = Mutex<[ObjectIdentifier]>([])
        var seen: [ObjectIdentifier] { loops.withLock { $0 } }

        func bind(group: MultiThreadedEventLoopGroup, port: Int) async throws -> ListeningSockets {
            try await ListeningSockets.bind(group: group, host: "127.0.0.1", port: port) { bootstrap in
                bootstrap.childChannelInitializer { channel in
                    self.loops.withLock { $0.append(ObjectIdentifier(channel.eventLoop)) }
                    return channel.close()
                }
            }
        }
    }

    @Test func everyLoopAcceptsOnTheSamePort() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let accepted = AcceptedLoops()
        let sockets = try await accepted.bind(group: group, port: 0)
        #expect(sockets.channels.count == 2)
        let port = try #require(sockets.localAddress?.port)
        #expect(port != 0)
        #expect(sockets.channels.allSatisfy { $0.localAddress?.port == port })
        #expect(Set(sockets.channels.map { ObjectIdentifier($0.eventLoop) }).count == 2, "one socket on each loop")

        // The kernel picks a socket by the connection's addresses: 40 connections from 40 source ports
        // all landing on one socket of two has a chance of 2^-39.
        for _ in 0..<40 { #expect(RawSocket.canConnect(host: "127.0.0.1", port: port)) }
        #expect(await eventually { accepted.seen.count == 40 })
        let loops = Set(sockets.channels.map { ObjectIdentifier($0.eventLoop) })
        #expect(Set(accepted.seen) == loops, "connections were initialised on both loops")

        try await sockets.close()
        #expect(!RawSocket.canConnect(host: "127.0.0.1", port: port), "closing stops every socket")
        try await group.shutdownGracefully()
    }

    @Test func aPortAnotherGatewayHoldsIsRefusedEvenWithReusePort() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let first = try await AcceptedLoops().bind(group: group, port: 0)
        let port = try #require(first.localAddress?.port)
        // The first holder set SO_REUSEPORT too, so only the probe without it can notice.
        await #expect(throws: (any Error).self) {
            _ = try await AcceptedLoops().bind(group: group, port: port)
        }
        #expect(RawSocket.canConnect(host: "127.0.0.1", port: port), "the first holder still listens")
        try await first.close()
        try await group.shutdownGracefully()
    }
}
