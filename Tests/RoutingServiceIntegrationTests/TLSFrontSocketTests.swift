import Foundation
import Logging
import NIOCore
import NIOPosix
import RoutingService
import Synchronization
import TestSupport
import Testing

/// The TLS front over real sockets, driven by `openssl s_client` and NIO clients.
@Suite("TLS front over sockets", .serialized)
struct TLSFrontSocketTests {
    let authority: TestCertificateAuthority
    let store: TLSContextStore
    let front: OpenSSLFrontContext

    init() throws {
        let authority = try TestCertificateAuthority()
        self.authority = authority
        func context(_ names: [String], leafAlone: Bool = false) throws -> OpenSSLServerContext {
            let leaf = try authority.issue(names)
            return try OpenSSLServerContext(
                certificateChainPEM: String(contentsOfFile: leafAlone ? leaf.certificatePath : leaf.chainPath, encoding: .utf8),
                privateKeyPEM: String(contentsOfFile: leaf.keyPath, encoding: .utf8)
            )
        }
        let fallback = try context(["default.test"])
        let store = TLSContextStore(
            try TLSCertificateIndex(
                entries: [
                    .init(names: [DomainName("app.example.com")], context: context(["app.example.com"])),
                    .init(names: [DomainName("*.example.com")], context: context(["*.example.com"])),
                    .init(names: [DomainName("default.test")], context: fallback),
                    .init(names: [DomainName("leaf.example.org")], context: context(["leaf.example.org"], leafAlone: true)),
                ],
                defaultContext: fallback
            )
        )
        self.store = store
        front = try OpenSSLFrontContext(store: store)
    }

    // MARK: Certificates by SNI

    @Test func exactWildcardAndNoSNIGetTheirCertificates() async throws {
        try await withEchoServer { server in
            let exact = try sClient(server.port, ["-servername", "app.example.com", "-brief"])
            #expect(exact.contains("Peer certificate: CN = app.example.com"), "\(exact)")
            #expect(exact.contains("Verification: OK"))

            let wildcard = try sClient(server.port, ["-servername", "shop.example.com", "-brief"])
            #expect(wildcard.contains("Peer certificate: CN = *.example.com"), "\(wildcard)")

            let noSNI = try sClient(server.port, ["-noservername", "-brief"])
            #expect(noSNI.contains("Peer certificate: CN = default.test"), "\(noSNI)")
        }
    }

    /// What is sent is the certificate file's chain as it is: the leaf and the CA from a chain file, the leaf
    /// alone from a file holding only it (nothing added from a certificate store).
    @Test func theChainSentIsTheCertificateFiles() async throws {
        try await withEchoServer { server in
            let chain = try sClient(server.port, ["-servername", "app.example.com", "-showcerts"])
            #expect(Self.certificatesSent(in: chain) == 2, "\(chain)")
            #expect(chain.contains("Verify return code: 0 (ok)"), "\(chain)")

            let leafAlone = try sClient(server.port, ["-servername", "leaf.example.org", "-showcerts"])
            #expect(Self.certificatesSent(in: leafAlone) == 1, "\(leafAlone)")
            #expect(leafAlone.contains("Verify return code: 0 (ok)"), "\(leafAlone)")
        }
    }

    private static func certificatesSent(in output: String) -> Int {
        output.components(separatedBy: "-----BEGIN CERTIFICATE-----").count - 1
    }

    @Test func unknownNameGetsUnrecognizedNameAlert() async throws {
        try await withEchoServer { server in
            let output = try sClient(server.port, ["-servername", "unknown.other.org", "-brief"])
            #expect(output.contains("unrecognized name"), "\(output)")
            #expect(output.contains("alert number 112"), "\(output)")
            #expect(server.logs.contains("TLS handshake refused from 127.0.0.1:"))
            #expect(server.logs.contains("no certificate for unknown.other.org"))
        }
    }

    // MARK: Versions, ALPN, resumption

    @Test func tls11IsRefusedAndTls12And13AreNegotiated() async throws {
        try await withEchoServer { server in
            // SECLEVEL=0 lets this client offer TLS 1.1 at all, so the refusal is the server's.
            let old = try sClient(server.port, ["-servername", "app.example.com", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
            #expect(old.contains("alert protocol version") && old.contains("alert number 70"), "\(old)")
            #expect(old.contains("Cipher is (NONE)"), "\(old)")
            #expect(server.logs.contains("unsupported protocol"), "\(server.logs.messages)")

            let tls13 = try sClient(server.port, ["-servername", "app.example.com", "-tls1_3", "-brief"])
            #expect(tls13.contains("Protocol version: TLSv1.3"), "\(tls13)")
            let tls12 = try sClient(server.port, ["-servername", "app.example.com", "-tls1_2", "-brief"])
            #expect(tls12.contains("Protocol version: TLSv1.2"), "\(tls12)")
            #expect(tls12.contains("Ciphersuite: ECDHE-ECDSA-"), "\(tls12)")
        }
    }

    @Test func alpnHTTP11IsAnswered() async throws {
        try await withEchoServer { server in
            let output = try sClient(server.port, ["-servername", "app.example.com", "-alpn", "h2,http/1.1"])
            #expect(output.contains("ALPN protocol: http/1.1"), "\(output)")
            #expect(output.contains("hello bye"), "echoed plaintext: \(output)")
        }
    }

    @Test(arguments: ["-tls1_3", "-tls1_2"])
    func sessionIsResumed(version: String) async throws {
        try await withEchoServer { server in
            let session = authority.directory.appendingPathComponent("session\(version).pem").path
            let first = try sClient(server.port, ["-servername", "shop.example.com", version, "-sess_out", session])
            #expect(first.contains("New, TLSv1."), "\(first)")
            let second = try sClient(server.port, ["-servername", "shop.example.com", version, "-sess_in", session])
            #expect(second.contains("Reused, TLSv1."), "\(second)")
        }
    }

    /// TLS 1.3: one ticket per handshake, full or resumed (OpenSSL's default after a full one is two). A client
    /// that spends each ticket on one connection still resumes every next one with the ticket it just got.
    @Test func tls13IssuesOneTicketPerHandshakeAndResumptionGoesOn() async throws {
        try await withEchoServer { server in
            let sessions = (1...2).map { authority.directory.appendingPathComponent("chain-\($0).pem").path }
            let first = try sClient(server.port, ["-servername", "shop.example.com", "-tls1_3", "-sess_out", sessions[0]])
            #expect(first.contains("New, TLSv1.3"), "\(first)")
            #expect(Self.ticketsArrived(in: first) == 1, "\(first)")

            let second = try sClient(
                server.port,
                ["-servername", "shop.example.com", "-tls1_3", "-sess_in", sessions[0], "-sess_out", sessions[1]]
            )
            #expect(second.contains("Reused, TLSv1.3"), "\(second)")
            #expect(Self.ticketsArrived(in: second) == 1, "\(second)")

            let third = try sClient(server.port, ["-servername", "shop.example.com", "-tls1_3", "-sess_in", sessions[1]])
            #expect(third.contains("Reused, TLSv1.3"), "\(third)")
        }
    }

    private static func ticketsArrived(in output: String) -> Int {
        output.components(separatedBy: "Post-Handshake New Session Ticket arrived").count - 1
    }

    // MARK: Bad input and slow clients

    @Test func garbageAndPlainHTTPAreClosedWithALogLine() async throws {
        try await withEchoServer { server in
            let group = server.group
            let random = try await Self.sendAndWaitForClose(Array((0..<512).map { _ in UInt8.random(in: 0...255) }), to: server.port, group: group)
            #expect(random < .seconds(2))
            let http = try await Self.sendAndWaitForClose(Array("GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n".utf8), to: server.port, group: group)
            #expect(http < .seconds(2))
            #expect(server.logs.messages.filter { $0.contains("TLS handshake failed from 127.0.0.1:") }.count >= 2, "\(server.logs.messages)")
            #expect(server.logs.contains("http request"))

            let after = try sClient(server.port, ["-servername", "app.example.com", "-brief"])
            #expect(after.contains("Peer certificate: CN = app.example.com"), "listener still serving: \(after)")
        }
    }

    @Test func silentClientIsClosedAfterTheHandshakeTimeout() async throws {
        try await withEchoServer(handshakeTimeout: .milliseconds(300)) { server in
            let elapsed = try await Self.sendAndWaitForClose([], to: server.port, group: server.group)
            #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(3), "closed after \(elapsed)")
            #expect(server.logs.contains("timed out after 300ms"), "\(server.logs.messages)")
        }
    }

    @Test func stalledHandshakesDoNotStopANormalClient() async throws {
        try await withEchoServer(handshakeTimeout: .seconds(20)) { server in
            let hello = try Self.clientHello(serverName: "app.example.com")
            let half = Array(hello.prefix(hello.count / 2))
            var stalled: [any Channel] = []
            defer { for channel in stalled { channel.close(promise: nil) } }
            // 500, each open at both ends in this process: with more, Foundation's `Process.run` (which
            // `sClient` uses) lists /proc/self/fd into a 32 KiB buffer it then reads past (AddressSanitizer
            // reports it; a clean-clone CI run crashed on it with 1000).
            for _ in 0..<500 {
                let channel = try await ClientBootstrap(group: server.group)
                    .connect(host: "127.0.0.1", port: server.port).get()
                channel.writeAndFlush(ByteBuffer(bytes: half), promise: nil)
                stalled.append(channel)
            }
            let clock = ContinuousClock()
            let start = clock.now
            let output = try sClient(server.port, ["-servername", "app.example.com", "-brief"])
            #expect(output.contains("Peer certificate: CN = app.example.com"), "\(output)")
            #expect(clock.now - start < .seconds(5))
            #expect(stalled.allSatisfy { $0.isActive }, "the stalled ones are still waiting, not refused")
            for channel in stalled { try await channel.close() }
            stalled = []
        }
    }

    // MARK: Helpers

    struct EchoServer {
        let group: MultiThreadedEventLoopGroup
        let port: Int
        let logs: LogCapture
    }

    private func withEchoServer(
        handshakeTimeout: TimeAmount = .seconds(5),
        _ body: (EchoServer) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let logs = LogCapture()
        let front = self.front
        let logger = logs.logger
        let configuration = TLSHandler.Configuration(handshakeTimeout: handshakeTimeout)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 2048)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addTLSServerHandler(
                        front: front, configuration: configuration, logger: logger
                    )
                    try channel.pipeline.syncOperations.addHandler(EchoUntilByeHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        do {
            try await body(EchoServer(group: group, port: channel.localAddress!.port!, logs: logs))
        } catch {
            try? await channel.close()
            try? await group.shutdownGracefully()
            throw error
        }
        try await channel.close()
        try await group.shutdownGracefully()
    }

    /// Runs `openssl s_client` against the server, sending `hello bye` (the echo server closes on "bye").
    private func sClient(_ port: Int, _ arguments: [String]) throws -> String {
        let base = ["10", "openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-CAfile", authority.caCertificatePath,
                    "-verify_return_error", "-ign_eof"]
        return try Shell.run("timeout", base + arguments, input: Data("hello bye\n".utf8), allowFailure: true).output
    }

    /// Connects, sends `bytes`, and returns how long the server took to close the connection.
    private static func sendAndWaitForClose(_ bytes: [UInt8], to port: Int, group: any EventLoopGroup) async throws -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
        if !bytes.isEmpty { try await channel.writeAndFlush(ByteBuffer(bytes: bytes)) }
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
        try await channel.closeFuture.get()
        timeout.cancel()
        return clock.now - start
    }

    /// A real ClientHello from our own client code.
    private static func clientHello(serverName: String) throws -> [UInt8] {
        let connection = try OpenSSLConnection.client(
            context: OpenSSLClientContext(trustRoots: nil), serverName: serverName
        )
        _ = connection.handshake()
        let hello = try #require(connection.takeCiphertext())
        return Array(hello.readableBytesView)
    }
}

/// Echoes plaintext back; closes (sending close_notify) after a chunk containing "bye".
private final class EchoUntilByeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        let bye = String(buffer: bytes).contains("bye")
        let written = context.writeAndFlush(data)
        if bye {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The TLS handler has logged it and is closing the channel.
    }
}

/// Log lines captured for assertions (thread-safe: handlers log from event loop threads).
