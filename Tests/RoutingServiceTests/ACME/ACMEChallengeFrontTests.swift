import Foundation
import NIOCore
import NIOEmbedded
import RoutingService
import Testing

/// The TLS front serves a TLS-ALPN-01 challenge certificate only to a ClientHello offering `acme-tls/1`.
@Suite("TLS-ALPN-01 on the TLS front")
struct ACMEChallengeFrontTests {
    let certificates: TLSTestCertificates
    let challenges = ACMEChallengeTable()
    let front: OpenSSLFrontContext

    init() throws {
        let certificates = try TLSTestCertificates()
        self.certificates = certificates
        let store = TLSContextStore(try certificates.index())
        let challenges = challenges
        front = try OpenSSLFrontContext(
            selectContext: { store.context(forServerName: $0) },
            selectChallengeContext: { challenges.tlsALPN01Context(forServerName: $0) }
        )
        challenges.addTLSALPN01(
            name: "app.example.com",
            context: try ACMECertificateBuilder.tlsALPN01Context(
                name: "app.example.com", keyAuthorization: "tok.thumb", key: try P256PrivateKey.generate()
            )
        )
        challenges.addTLSALPN01(
            name: "pending.example.org",
            context: try ACMECertificateBuilder.tlsALPN01Context(
                name: "pending.example.org", keyAuthorization: "tok2.thumb", key: try P256PrivateKey.generate()
            )
        )
    }

    func handshake(serverName: String, alpn: [ALPNProtocol]) throws -> (subject: String?, alpn: String?, failed: Bool) {
        let client = try OpenSSLClientContext(alpnProtocols: alpn, trustRoots: nil)
        let pair = try BackToBackTLS(front: front, clientContext: client, serverName: serverName)
        defer { try? pair.finish() }
        let clientHandler = try pair.client.pipeline.syncOperations.handler(type: TLSHandler.self)
        try pair.connect()
        return (clientHandler.peerCertificateSubject, pair.clientEvents.handshakes.first?.alpnProtocol,
                pair.clientEvents.handshakes.isEmpty)
    }

    @Test func acmeTLS1OfferGetsTheChallengeCertificate() throws {
        let result = try handshake(serverName: "app.example.com", alpn: [.acmeTLS1])
        // Only the challenge context speaks acme-tls/1: the real contexts offer http/1.1 alone.
        #expect(result.alpn == "acme-tls/1")
        #expect(result.subject == "/CN=app.example.com")
    }

    @Test func ordinaryClientsStillGetTheRealCertificate() throws {
        let result = try handshake(serverName: "app.example.com", alpn: [.http1_1])
        #expect(result.alpn == "http/1.1")
        #expect(result.subject == certificates.app.leafSubject)
    }

    @Test func aNameWithoutACertificateCanBeValidatedButNotServed() throws {
        let challenge = try handshake(serverName: "pending.example.org", alpn: [.acmeTLS1])
        #expect(challenge.alpn == "acme-tls/1" && challenge.subject == "/CN=pending.example.org")
        let ordinary = try handshake(serverName: "pending.example.org", alpn: [.http1_1])
        #expect(ordinary.failed, "no certificate for the name yet: refused")
    }

    @Test func acmeTLS1WithoutAPendingChallengeIsServedNormally() throws {
        challenges.removeTLSALPN01(name: "app.example.com")
        let result = try handshake(serverName: "app.example.com", alpn: [.acmeTLS1])
        #expect(result.alpn == nil)
        #expect(result.subject == certificates.app.leafSubject)
    }
}
