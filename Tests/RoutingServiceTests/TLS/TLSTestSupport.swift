import Foundation
import Logging
import NIOCore
import NIOEmbedded
import RoutingService
import Synchronization
import TestSupport


/// The tail of a test pipeline: keeps what reaches it (plaintext, events, errors) instead of
/// letting EmbeddedChannel throw the errors.
final class TLSEventRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    var handshakes: [TLSHandshakeCompletedEvent] = []
    var plaintext = ""
    var plaintextReads = 0
    var errors: [any Error] = []
    var eventsBeforeFirstPlaintext = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if plaintextReads == 0 { eventsBeforeFirstPlaintext = handshakes.count }
        plaintextReads += 1
        plaintext += String(buffer: unwrapInboundIn(data))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSHandshakeCompletedEvent { handshakes.append(event) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        errors.append(error)
    }

    var openSSLErrors: [OpenSSLError] { errors.compactMap { $0 as? OpenSSLError } }
}

/// Certificates for the in-memory tests: exact, wildcard and default names under one throwaway CA.
struct TLSTestCertificates {
    let authority: TestCertificateAuthority
    let app: OpenSSLServerContext
    let wildcard: OpenSSLServerContext
    let fallback: OpenSSLServerContext
    let caPEM: [UInt8]

    init() throws {
        authority = try TestCertificateAuthority()
        app = try Self.context(authority.issue(["app.example.com"]))
        wildcard = try Self.context(authority.issue(["*.example.com"]))
        fallback = try Self.context(authority.issue(["default.test"]))
        caPEM = Array(try Data(contentsOf: URL(fileURLWithPath: authority.caCertificatePath)))
    }

    func index(withDefault: Bool = true) throws -> TLSCertificateIndex {
        try TLSCertificateIndex(
            entries: [
                .init(names: [DomainName("app.example.com")], context: app),
                .init(names: [DomainName("*.example.com")], context: wildcard),
                .init(names: [DomainName("default.test")], context: fallback),
            ],
            defaultContext: withDefault ? fallback : nil
        )
    }

    static func context(_ leaf: TestCertificateAuthority.Leaf) throws -> OpenSSLServerContext {
        try OpenSSLServerContext(
            certificateChainPEM: String(contentsOfFile: leaf.chainPath, encoding: .utf8),
            privateKeyPEM: String(contentsOfFile: leaf.keyPath, encoding: .utf8)
        )
    }
}

/// A client and a server EmbeddedChannel on one loop, bytes passed between them by `interact()`:
/// real OpenSSL handshakes, no sockets (swift-nio-ssl's `interactInMemory`).
final class BackToBackTLS {
    let loop = EmbeddedEventLoop()
    let client: EmbeddedChannel
    let server: EmbeddedChannel
    let clientEvents = TLSEventRecorder()
    let serverEvents = TLSEventRecorder()
    let serverLogs = LogCapture()
    let clientLogs = LogCapture()
    /// Every ciphertext buffer the server wrote, in order.
    private(set) var serverWrites: [ByteBuffer] = []

    init(
        front: OpenSSLFrontContext,
        clientContext: OpenSSLClientContext,
        serverName: String?,
        resuming session: OpenSSLSession? = nil,
        serverConfiguration: TLSHandler.Configuration = .init()
    ) throws {
        client = EmbeddedChannel(loop: loop)
        server = EmbeddedChannel(loop: loop)
        try client.pipeline.syncOperations.addHandlers(
            TLSHandler(clientContext: clientContext, serverName: serverName, resuming: session, logger: clientLogs.logger),
            clientEvents
        )
        try server.pipeline.syncOperations.addTLSServerHandler(
            front: front, configuration: serverConfiguration, logger: serverLogs.logger
        )
        try server.pipeline.syncOperations.addHandler(serverEvents)
    }

    /// Activates the server end only; its peer appears as 127.0.0.1:5555 in log lines.
    func activateServer() throws {
        _ = server.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 5555))
    }

    /// Activates both ends (the client sends its ClientHello) and runs the handshake.
    func connect() throws {
        try activateServer()
        _ = client.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 443))
        try interact()
    }

    /// Moves bytes both ways until neither side has anything left to send.
    func interact() throws {
        var moved = true
        while moved {
            moved = false
            loop.run()
            if let bytes = try client.readOutbound(as: ByteBuffer.self) {
                moved = true
                if server.isActive { try server.writeInbound(bytes) }
            }
            if let bytes = try server.readOutbound(as: ByteBuffer.self) {
                moved = true
                serverWrites.append(bytes)
                if client.isActive { try client.writeInbound(bytes) }
            }
        }
    }

    func finish() throws {
        _ = try client.finish(acceptAlreadyClosed: true)
        _ = try server.finish(acceptAlreadyClosed: true)
    }
}
