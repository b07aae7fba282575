import COpenSSL
import Foundation
import NIOCore
@testable import RoutingService
import TestSupport
import Testing

/// What the shared server settings (`OpenSSLServerSettings`) make OpenSSL do during a handshake.
@Suite("OpenSSL server settings")
struct OpenSSLServerSettingsTests {
    let authority: TestCertificateAuthority

    init() throws {
        authority = try TestCertificateAuthority()
    }

    /// A certificate file holding the leaf alone is sent as it is. Without `SSL_MODE_NO_AUTO_CHAIN` OpenSSL
    /// would complete the chain from the certificate context's store at every full handshake. The gateway's
    /// stores are empty, so nothing would be added but the work would be done; here the CA is put in the
    /// store so that a built chain would show, as a server flight one certificate longer.
    @Test func aLoneLeafIsSentAloneEvenWhenTheStoreCouldCompleteItsChain() throws {
        let leaf = try authority.issue(["leaf.example.org"])
        let caPEM = Array(try Data(contentsOf: URL(fileURLWithPath: authority.caCertificatePath)))
        let ca = try X509Certificate.parseChain(pem: caPEM)[0]
        let caBytes = withExtendedLifetime(ca) { Int(i2d_X509(ca.x509, nil)) }

        func serverFlightBytes(caInStore: Bool) throws -> Int {
            let context = try OpenSSLServerContext(
                certificateChainPEM: String(contentsOfFile: leaf.certificatePath, encoding: .utf8),
                privateKeyPEM: String(contentsOfFile: leaf.keyPath, encoding: .utf8)
            )
            if caInStore {
                try PEMReader.addCertificates(caPEM, to: try #require(SSL_CTX_get_cert_store(context.context)))
            }
            let front = try OpenSSLFrontContext(
                store: TLSContextStore(
                    try TLSCertificateIndex(
                        entries: [.init(names: [DomainName("leaf.example.org")], context: context)],
                        defaultContext: context
                    )
                )
            )
            let server = try OpenSSLConnection.server(front: front)
            let client = try OpenSSLConnection.client(
                context: OpenSSLClientContext(trustRoots: nil), serverName: "leaf.example.org"
            )
            _ = client.handshake()
            server.feed(try #require(client.takeCiphertext()))
            guard case .wantsMoreInput = server.handshake() else {
                Issue.record("the server did not answer the ClientHello")
                return 0
            }
            return try #require(server.takeCiphertext()).readableBytes
        }

        let alone = try serverFlightBytes(caInStore: false)
        let withCAInStore = try serverFlightBytes(caInStore: true)
        // The flights differ only by the signature's DER length (a few bytes); a built chain adds the CA.
        #expect(abs(withCAInStore - alone) < caBytes / 2, "\(alone) → \(withCAInStore) bytes; the CA is \(caBytes)")
    }
}
