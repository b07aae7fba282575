import NIOCore
@testable import RoutingService
import Testing

/// A server connection starts on the default certificate's context: a handshake for that certificate
/// is not switched, one for another name is, and tickets open whichever context issued them, also
/// after the certificates are rebuilt.
@Suite("OpenSSL starting context")
struct OpenSSLStartingContextTests {
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

    /// Runs a handshake between two connections by passing ciphertext back and forth, then lets the
    /// client read what the server sent after it (TLS 1.3 tickets).
    private func handshake(serverName: String?, resuming session: OpenSSLSession? = nil) throws -> (server: OpenSSLConnection, client: OpenSSLConnection) {
        let server = try OpenSSLConnection.server(front: front)
        let client = try OpenSSLConnection.client(context: clientContext, serverName: serverName, resuming: session)
        var serverDone = false
        var clientDone = false
        for _ in 0..<10 where !(serverDone && clientDone) {
            if case .complete = client.handshake() { clientDone = true }
            if let bytes = client.takeCiphertext() { server.feed(bytes) }
            switch server.handshake() {
            case .complete: serverDone = true
            case .failed(let error): throw error
            case .wantsMoreInput: break
            }
            if let bytes = server.takeCiphertext() { client.feed(bytes) }
        }
        #expect(serverDone && clientDone)
        _ = server.write(ByteBuffer(string: "hi"))
        if let bytes = server.takeCiphertext() { client.feed(bytes) }
        var plaintext = ByteBuffer()
        _ = client.read(into: &plaintext)
        #expect(String(buffer: plaintext) == "hi")
        return (server, client)
    }

    @Test func theDefaultCertificatesNameIsNotSwitched() throws {
        let pair = try handshake(serverName: "default.test")
        #expect(pair.client.peerCertificateSubject == "/CN=default.test")
        #expect(pair.server.contextSwitches == 0)

        let noName = try handshake(serverName: nil)
        #expect(noName.client.peerCertificateSubject == "/CN=default.test")
        #expect(noName.server.contextSwitches == 0)
    }

    @Test func anotherNameIsSwitchedOnce() throws {
        let pair = try handshake(serverName: "app.example.com")
        #expect(pair.client.peerCertificateSubject == "/CN=app.example.com")
        #expect(pair.server.contextSwitches == 1)
        #expect(pair.server.serverContext === certificates.app)
    }

    @Test func withoutADefaultTheFrontContextIsTheStart() throws {
        store.replace(try certificates.index(withDefault: false))
        let pair = try handshake(serverName: "app.example.com")
        #expect(pair.client.peerCertificateSubject == "/CN=app.example.com")
        #expect(pair.server.contextSwitches == 1)
        #expect(throws: OpenSSLError.self) { try handshake(serverName: nil) }
    }

    @Test(arguments: ["default.test", "app.example.com"])
    func aTicketResumesAfterTheCertificatesAreRebuilt(serverName: String) throws {
        let first = try handshake(serverName: serverName)
        let session = try #require(first.client.session)
        #expect(session.isResumable)

        // New SSL_CTX objects for every certificate (a reload): the ticket was sealed on the old
        // default context, and opens on the new one.
        store.replace(try TLSTestCertificates(authority: certificates.authority).index())
        let second = try handshake(serverName: serverName, resuming: session)
        #expect(second.server.sessionReused)
        #expect(second.client.sessionReused)
    }
}
