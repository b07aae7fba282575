import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
import TestSupport
@testable import RoutingService

/// SNI passthrough: the SNI router in front of the TCP relay, on 127.0.0.1:0, with Node TLS servers on
/// 127.0.0.2–4 holding their own certificate for `db.test`. The gateway is given only their addresses.
@Suite(.serialized) final class L4PassthroughTests {
    let authority: TestCertificateAuthority
    let instances: L4NodeInstances
    let registry = L4ConnectionRegistry()
    let logs = LogCapture()
    let gateway: any Channel

    init() async throws {
        authority = try TestCertificateAuthority()
        let leaf = try authority.issue(["db.test"])
        instances = try L4NodeInstances(script: "l4-tls-server.js", extraArguments: [leaf.chainPath, leaf.keyPath])
        let target = registry.target(service: instances.service(name: "db"), port: instances.port, transport: .tcp)
        let logger = logs.logger(label: "tls-listener")
        // What the lead's TLS listener will do: passthrough for the non-HTTP domain, refuse the rest.
        let decide: SNIRouteDecision = { result in
            switch result {
            case .clientHello(serverName: "db.test", _): .passthrough(target)
            case .clientHello(let name, _): .reject(reason: "unknown server name \(name ?? "(none)")")
            case .malformed(let error): .reject(reason: "malformed ClientHello: \(error)")
            case .notTLS: .reject(reason: "not TLS")
            case .needMoreData: .reject(reason: "unreachable")
            }
        }
        gateway = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(SNIRouterHandler(
                        // Long enough for a loaded machine to deliver a hello dribbled over a few hundred
                        // writes, short enough for the silent-client check to wait for.
                        configuration: SNIRouterConfiguration(peekTimeout: .seconds(2)),
                        listenerName: "tls/test",
                        logger: logger,
                        decide: decide
                    ))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    deinit {
        instances.stop()
        gateway.close(promise: nil)
    }

    private var gatewayPort: Int { gateway.localAddress!.port! }

    private func sClient(port: Int) async throws -> String {
        try await runTool("openssl", [
            "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "db.test",
            "-CAfile", authority.caCertificatePath, "-verify_return_error", "-ign_eof",
        ], input: Data("ping\n".utf8)).output
    }

    private func expectPassedThrough(_ output: String) {
        #expect(output.contains("subject=CN = db.test") || output.contains("subject=CN=db.test"), "\(output)")
        #expect(output.contains("Verify return code: 0 (ok)"), "\(output)")
        #expect(output.contains("pong from i"), "\(output)")
    }

    @Test func theInstancesCertificateArrivesAndDataRoundTrips() async throws {
        expectPassedThrough(try await sClient(port: gatewayPort))
        #expect(await eventually {
            self.logs.contains("L4 session ended") {
                $0["l4.listener"] == "tls/test" && $0["l4.target"] == "db:\(self.instances.port)/tcp"
                    && Int($0["l4.bytes_from_upstream"] ?? "0")! > 500
            }
        })
    }

    @Test func aClientHelloSplitByteByByteStillPassesThrough() async throws {
        let dribbler = try BackgroundProcess("node", [L4NodeInstances.script("l4-dribble-proxy.js"), "\(gatewayPort)", "2000"])
        defer { dribbler.stop(grace: 1) }
        let port = try L4NodeInstances.waitForListening(dribbler)
        expectPassedThrough(try await sClient(port: port))
    }

    private func sendAndExpectClosed(_ bytes: [UInt8]) async throws -> Bool {
        let (channel, handler) = try await CollectingClientHandler.connect(to: .loopback(gatewayPort))
        // The gateway may refuse (and close) before the last byte arrives, so a failed write is expected.
        if !bytes.isEmpty { try? await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get() }
        let closed = await eventually(within: .seconds(10)) { !channel.isActive }
        #expect(handler.bytes.isEmpty, "nothing is answered to a refused connection")
        return closed
    }

    @Test func badInputEndsCleanlyWithALogLineAndTheListenerKeepsServing() async throws {
        var badName = ClientHelloBytes()
        badName.addServerName("db.test", nameType: 7)
        #expect(try await sendAndExpectClosed(badName.records()))
        #expect(await eventually(within: .seconds(5)) { logs.contains("rejected before the handshake") { $0["sni.malformed"]?.contains("type 7") == true } })

        let oversized = ClientHelloBytes(serverName: String(repeating: "a", count: 40) + "." + String(repeating: "b.", count: 120) + "test")
        #expect(try await sendAndExpectClosed(oversized.records()))
        #expect(await eventually(within: .seconds(5)) { logs.contains("rejected before the handshake") { $0["sni.malformed"]?.contains("longer than 255") == true } })

        var huge = ClientHelloBytes(serverName: "db.test")
        huge.extensions.append((21, Array(repeating: 0, count: 40_000)))
        #expect(try await sendAndExpectClosed(huge.records()))
        #expect(await eventually(within: .seconds(5)) { logs.contains("rejected before the handshake") { $0["sni.malformed"]?.contains("limit") == true } })

        #expect(try await sendAndExpectClosed(Array("\u{0}\u{1}garbage\r\n\r\n".utf8)))
        #expect(await eventually(within: .seconds(5)) { logs.contains("rejected before the handshake") { $0["sni.reason"] == "not TLS" } })

        // A well-formed hello split over three writes (inside the record header, then inside the
        // handshake), for a name nobody serves. Three, not one per byte: each awaited write hops between
        // the test's task and the event loop, and on a loaded machine a few hundred of them can outlast the
        // peek deadline (byte by byte is `aClientHelloSplitByteByByteStillPassesThrough`'s, and every split
        // point ClientHelloParserTests').
        let (channel, _) = try await CollectingClientHandler.connect(to: .loopback(gatewayPort))
        let hello = ClientHelloBytes(serverName: "other.test").records()
        for piece in [hello[..<3], hello[3..<40], hello[40...]] {
            try? await channel.writeAndFlush(ByteBuffer(bytes: piece)).get()
        }
        #expect(await eventually(within: .seconds(10)) { !channel.isActive })
        #expect(await eventually(within: .seconds(5)) { logs.contains("rejected before the handshake") { $0["sni.server_name"] == "other.test" } })

        // A client that opens and never sends is closed after the peek timeout (2 s here), not before.
        let started = Date()
        #expect(try await sendAndExpectClosed([]))
        let closedAfter = Date().timeIntervalSince(started)
        #expect(closedAfter >= 1.9 && closedAfter < 6, "closed after \(closedAfter) s")
        #expect(await eventually(within: .seconds(5)) { logs.contains("no complete ClientHello in time") })

        // The listener still serves.
        expectPassedThrough(try await sClient(port: gatewayPort))
    }
}
