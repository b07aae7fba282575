import TestSupport
import NIOCore
import NIOEmbedded
import RoutingService
import Testing

/// Real OpenSSL handshakes between a client and a server `TLSHandler` on back-to-back EmbeddedChannels.
@Suite("TLSHandler in memory")
struct TLSHandlerInMemoryTests {
    let certificates: TLSTestCertificates
    let store: TLSContextStore
    let front: OpenSSLFrontContext
    let clientContext: OpenSSLClientContext

    init() throws {
        certificates = try TLSTestCertificates()
        store = TLSContextStore(try certificates.index())
        front = try OpenSSLFrontContext(store: store)
        clientContext = try OpenSSLClientContext(trustRoots: .pem(certificates.caPEM))
    }

    private func connected(_ serverName: String?) throws -> BackToBackTLS {
        let pair = try BackToBackTLS(front: front, clientContext: clientContext, serverName: serverName)
        try pair.connect()
        return pair
    }

    private func clientHandler(_ pair: BackToBackTLS) throws -> TLSHandler {
        try pair.client.pipeline.syncOperations.handler(type: TLSHandler.self)
    }

    @Test func exactNameGetsItsCertificate() throws {
        let pair = try connected("app.example.com")
        #expect(try clientHandler(pair).peerCertificateSubject == "/CN=app.example.com")
        let event = try #require(pair.serverEvents.handshakes.first)
        #expect(event.serverName == "app.example.com")
        #expect(event.alpnProtocol == "http/1.1")
        #expect(event.protocolVersion == "TLSv1.3")
        #expect(event.sessionReused == false)
        #expect(pair.clientEvents.handshakes.first?.alpnProtocol == "http/1.1")
        try pair.finish()
    }

    @Test func wildcardCoversOneLabel() throws {
        let pair = try connected("Shop.Example.com")
        #expect(try clientHandler(pair).peerCertificateSubject == "/CN=*.example.com")
        #expect(pair.serverEvents.handshakes.first?.serverName == "shop.example.com")
        try pair.finish()
    }

    @Test func noServerNameGetsTheDefault() throws {
        let pair = try connected(nil)
        #expect(try clientHandler(pair).peerCertificateSubject == "/CN=default.test")
        #expect(pair.serverEvents.handshakes.first?.serverName == nil)
        try pair.finish()
    }

    @Test func unknownServerNameIsRefusedWithUnrecognizedName() throws {
        let pair = try connected("nothing.other.org")
        #expect(pair.serverEvents.handshakes.isEmpty)
        #expect(pair.clientEvents.handshakes.isEmpty)
        let clientError = try #require(pair.clientEvents.openSSLErrors.first)
        #expect(clientError.reasons.contains { $0.contains("unrecognized name") }, "\(clientError)")
        let serverError = try #require(pair.serverEvents.openSSLErrors.first)
        #expect(serverError.code == .unrecognizedServerName)
        #expect(!pair.server.isActive)
        #expect(!pair.client.isActive)
        #expect(pair.serverLogs.contains("TLS handshake refused from 127.0.0.1:5555: no certificate for nothing.other.org"))
        try pair.finish()
    }

    @Test func noServerNameAndNoDefaultIsRefused() throws {
        store.replace(try certificates.index(withDefault: false))
        let pair = try connected(nil)
        #expect(pair.serverEvents.openSSLErrors.first?.code == .unrecognizedServerName)
        #expect(pair.clientEvents.openSSLErrors.first?.reasons.contains { $0.contains("unrecognized name") } == true)
        #expect(pair.serverLogs.contains("no SNI and no default certificate"))
        try pair.finish()
    }

    @Test func dataRoundTripsBothWays() throws {
        let pair = try connected("app.example.com")
        try pair.client.writeAndFlush(ByteBuffer(string: "ping from client")).wait()
        try pair.interact()
        #expect(pair.serverEvents.plaintext == "ping from client")
        #expect(pair.serverEvents.eventsBeforeFirstPlaintext == 1)

        let large = String(repeating: "x", count: 100_000)
        pair.server.write(ByteBuffer(string: "pong "), promise: nil)
        try pair.server.writeAndFlush(ByteBuffer(string: large)).wait()
        try pair.interact()
        #expect(pair.clientEvents.plaintext == "pong " + large)
        try pair.finish()
    }

    /// The server reads records ahead (one BIO read takes whatever ciphertext is there): records that
    /// arrive together, and records cut anywhere across reads, must all come out whole and in order.
    @Test func recordsArrivingTogetherOrCutAnywhereAreAllDecrypted() throws {
        let pair = try connected("app.example.com")
        var ciphertext = ByteBuffer()
        for part in ["first record", "second", "third and last record"] {
            try pair.client.writeAndFlush(ByteBuffer(string: part)).wait()
            while var bytes = try pair.client.readOutbound(as: ByteBuffer.self) { ciphertext.writeBuffer(&bytes) }
        }

        // All three in one read.
        try pair.server.writeInbound(ciphertext)
        pair.loop.run()
        #expect(pair.serverEvents.plaintext == "first recordsecondthird and last record")

        // The same bytes again, cut inside a header, inside a body, and across a record boundary.
        for part in ["one", "two", "three"] {
            try pair.client.writeAndFlush(ByteBuffer(string: part)).wait()
        }
        var again = ByteBuffer()
        while var bytes = try pair.client.readOutbound(as: ByteBuffer.self) { again.writeBuffer(&bytes) }
        for length in [2, 9, 30] {
            try pair.server.writeInbound(again.readSlice(length: length)!)
            pair.loop.run()
        }
        try pair.server.writeInbound(again)
        pair.loop.run()
        #expect(pair.serverEvents.plaintext == "first recordsecondthird and last recordonetwothree")
        try pair.finish()
    }

    @Test func writesBeforeTheHandshakeAreSentAfterIt() throws {
        let pair = try BackToBackTLS(front: front, clientContext: clientContext, serverName: "app.example.com")
        try pair.activateServer()
        _ = pair.client.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 443))
        let written = pair.client.writeAndFlush(ByteBuffer(string: "early"))
        var sent = false
        written.assumeIsolated().whenComplete { _ in sent = true }
        #expect(!sent)
        try pair.interact()
        try written.wait()
        #expect(pair.serverEvents.plaintext == "early")
        try pair.finish()
    }

    @Test func flushEncryptsHeadAndBodyIntoOneWrite() throws {
        let pair = try connected("app.example.com")
        let writesBefore = pair.serverWrites.count
        pair.server.write(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"), promise: nil)
        pair.server.write(ByteBuffer(string: "hello"), promise: nil)
        pair.server.flush()
        try pair.interact()
        #expect(pair.serverWrites.count == writesBefore + 1)
        // One record: the client decrypts head and body in a single read.
        #expect(pair.clientEvents.plaintextReads == 1)
        #expect(pair.clientEvents.plaintext.hasSuffix("\r\n\r\nhello"))
        try pair.finish()
    }

    @Test func closeSendsCloseNotifyAndThePeerAnswers() throws {
        let pair = try connected("app.example.com")
        let closed = pair.client.close()
        try pair.interact()
        try closed.wait()
        #expect(!pair.client.isActive)
        #expect(!pair.server.isActive)
        #expect(pair.serverLogs.contains("sent close_notify"))
        #expect(pair.serverEvents.errors.isEmpty)
        try pair.finish()
    }

    @Test func sessionIsResumedAfterTheSNISwitch() throws {
        let first = try connected("app.example.com")
        // TLS 1.3 tickets come after the handshake: let the client read them.
        try first.server.writeAndFlush(ByteBuffer(string: "hi")).wait()
        try first.interact()
        let session = try #require(try clientHandler(first).session)
        #expect(session.isResumable)
        try first.finish()

        let second = try BackToBackTLS(
            front: front, clientContext: clientContext, serverName: "app.example.com", resuming: session
        )
        try second.connect()
        #expect(second.serverEvents.handshakes.first?.sessionReused == true)
        #expect(second.clientEvents.handshakes.first?.sessionReused == true)
        #expect(second.serverEvents.handshakes.first?.alpnProtocol == "http/1.1")
        try second.finish()
    }

    @Test func replacingTheIndexKeepsOpenConnectionsAndServesNewOnes() throws {
        let open = try connected("app.example.com")
        store.replace(try TLSCertificateIndex(entries: [.init(names: [DomainName("app.example.com")], context: certificates.wildcard)]))
        try open.client.writeAndFlush(ByteBuffer(string: "still here")).wait()
        try open.interact()
        #expect(open.serverEvents.plaintext == "still here")

        let fresh = try connected("app.example.com")
        #expect(try clientHandler(fresh).peerCertificateSubject == "/CN=*.example.com")
        let refused = try connected("shop.example.com")
        #expect(refused.serverEvents.openSSLErrors.first?.code == .unrecognizedServerName)
        try open.finish()
        try fresh.finish()
        try refused.finish()
    }

    @Test func clientRejectsACertificateForAnotherName() throws {
        // The server's default certificate is for default.test; a verifying client asked for app.other.org.
        store.replace(try TLSCertificateIndex(entries: [.init(names: [DomainName("app.other.org")], context: certificates.fallback)]))
        let pair = try connected("app.other.org")
        let clientError = try #require(pair.clientEvents.openSSLErrors.first)
        #expect(clientError.code == .handshakeFailed)
        #expect(clientError.reasons.contains("certificate verify failed"), "\(clientError)")
        #expect(!pair.server.isActive)
        try pair.finish()
    }

    @Test func plainHTTPRequestFailsTheHandshakeWithALogLine() throws {
        let pair = try BackToBackTLS(front: front, clientContext: clientContext, serverName: nil)
        try pair.activateServer()
        try pair.server.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n"))
        pair.loop.run()
        #expect(!pair.server.isActive)
        #expect(pair.serverEvents.openSSLErrors.first?.code == .handshakeFailed)
        #expect(pair.serverLogs.contains("TLS handshake failed from 127.0.0.1:5555: http request"), "\(pair.serverLogs.messages)")
        try pair.finish()
    }

    @Test func randomBytesGetAnAlertThenClose() throws {
        let pair = try BackToBackTLS(front: front, clientContext: clientContext, serverName: nil)
        try pair.activateServer()
        // A handshake record header with a nonsense body.
        try pair.server.writeInbound(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x00, 0x08, 1, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef]))
        pair.loop.run()
        let alert = try #require(try pair.server.readOutbound(as: ByteBuffer.self))
        #expect(alert.getInteger(at: alert.readerIndex, as: UInt8.self) == 0x15)  // alert record
        #expect(!pair.server.isActive)
        #expect(pair.serverLogs.contains("TLS handshake failed from 127.0.0.1:5555"))
        try pair.finish()
    }

    @Test func silentClientIsClosedAfterTheHandshakeTimeout() throws {
        let pair = try BackToBackTLS(
            front: front, clientContext: clientContext, serverName: nil,
            serverConfiguration: .init(handshakeTimeout: .milliseconds(300))
        )
        try pair.activateServer()
        pair.loop.advanceTime(by: .milliseconds(299))
        #expect(pair.server.isActive)
        pair.loop.advanceTime(by: .milliseconds(1))
        #expect(!pair.server.isActive)
        #expect(pair.serverLogs.contains("TLS handshake from 127.0.0.1:5555 timed out after 300ms"))
        #expect(pair.serverEvents.errors.first as? TLSHandlerError == .handshakeTimedOut(after: .milliseconds(300)))
        try pair.finish()
    }

    @Test func clientStallingMidClientHelloIsClosedAfterTheHandshakeTimeout() throws {
        let pair = try BackToBackTLS(
            front: front, clientContext: clientContext, serverName: "app.example.com",
            serverConfiguration: .init(handshakeTimeout: .milliseconds(300))
        )
        try pair.activateServer()
        _ = pair.client.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 443))
        let hello = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        let half = hello.getSlice(at: hello.readerIndex, length: hello.readableBytes / 2)!
        try pair.server.writeInbound(half)
        #expect(try pair.server.readOutbound(as: ByteBuffer.self) == nil)
        pair.loop.advanceTime(by: .milliseconds(300))
        #expect(!pair.server.isActive)
        #expect(pair.serverLogs.contains("timed out after 300ms"))
        try pair.finish()
    }

    @Test func bufferedPlaintextIsBounded() throws {
        let pair = try BackToBackTLS(
            front: front, clientContext: clientContext, serverName: "app.example.com",
            serverConfiguration: .init(maximumBufferedPlaintextBytes: 10)
        )
        try pair.activateServer()
        let accepted = pair.server.write(ByteBuffer(string: "0123456789"))
        let refused = pair.server.write(ByteBuffer(string: "!"))
        #expect(throws: TLSHandlerError.tooMuchBufferedPlaintext(limit: 10)) { try refused.wait() }
        var acceptedDone = false
        accepted.assumeIsolated().whenComplete { _ in acceptedDone = true }
        #expect(!acceptedDone)
        try pair.finish()
    }
}
