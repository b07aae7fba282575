import Foundation
import RoutingService
import TestSupport
import Testing

@Suite("OpenSSL contexts and the certificate index")
struct OpenSSLContextTests {
    let authority: TestCertificateAuthority

    init() throws {
        authority = try TestCertificateAuthority()
    }

    private func pem(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8)
    }

    @Test func buildsFromAChainAndKey() throws {
        let leaf = try authority.issue(["app.example.com"])
        let context = try OpenSSLServerContext(
            certificateChainPEM: Array(try pem(leaf.chainPath).utf8),
            privateKeyPEM: Array(try pem(leaf.keyPath).utf8),
            alpnProtocols: [.http2, .http1_1]
        )
        #expect(context.leafSubject == "/CN=app.example.com")
        #expect(context.alpnProtocols == [.http2, .http1_1])
    }

    @Test func refusesAKeyOfAnotherCertificate() throws {
        let app = try authority.issue(["app.example.com"])
        let other = try authority.issue(["other.example.com"])
        #expect {
            try OpenSSLServerContext(certificateChainPEM: try pem(app.chainPath), privateKeyPEM: try pem(other.keyPath))
        } throws: { ($0 as? OpenSSLError)?.code == .privateKeyMismatch }
    }

    @Test func refusesTextWithoutACertificate() throws {
        let leaf = try authority.issue(["app.example.com"])
        let error = try #require(throws: OpenSSLError.self) {
            try OpenSSLServerContext(certificateChainPEM: "not a certificate", privateKeyPEM: try pem(leaf.keyPath))
        }
        #expect(error.code == .invalidCertificateChain)
        #expect(error.description.contains("no certificate in the PEM"))
    }

    @Test func refusesACorruptCertificateBlock() throws {
        let leaf = try authority.issue(["app.example.com"])
        let corrupt = "-----BEGIN CERTIFICATE-----\nAAAA!!!!\n-----END CERTIFICATE-----\n"
        let error = try #require(throws: OpenSSLError.self) {
            try OpenSSLServerContext(certificateChainPEM: corrupt, privateKeyPEM: try pem(leaf.keyPath))
        }
        #expect(error.code == .invalidCertificateChain)
        #expect(error.description.contains("bad base64 decode"), "\(error)")
    }

    @Test func refusesAMissingKey() throws {
        let leaf = try authority.issue(["app.example.com"])
        let error = try #require(throws: OpenSSLError.self) {
            try OpenSSLServerContext(certificateChainPEM: try pem(leaf.chainPath), privateKeyPEM: "")
        }
        #expect(error.code == .invalidPrivateKey)
    }

    @Test func indexLooksUpExactThenWildcardThenDefault() throws {
        let exact = try TLSTestCertificates.context(authority.issue(["app.example.com"]))
        let wildcard = try TLSTestCertificates.context(authority.issue(["*.example.com"]))
        let fallback = try TLSTestCertificates.context(authority.issue(["default.test"]))
        let index = try TLSCertificateIndex(
            entries: [
                .init(names: [DomainName("app.example.com")], context: exact),
                .init(names: [DomainName("*.example.com")], context: wildcard),
            ],
            defaultContext: fallback
        )
        #expect(index.context(forServerName: "app.example.com") === exact)
        #expect(index.context(forServerName: "APP.example.com.") === exact)
        #expect(index.context(forServerName: "shop.example.com") === wildcard)
        #expect(index.context(forServerName: "a.b.example.com") == nil)
        #expect(index.context(forServerName: "example.com") == nil)
        #expect(index.context(forServerName: nil) === fallback)
        #expect(TLSCertificateIndex.empty.context(forServerName: nil) == nil)
    }

    @Test func indexRefusesTwoCertificatesForOneName() throws {
        let one = try TLSTestCertificates.context(authority.issue(["app.example.com"]))
        #expect(throws: TLSCertificateIndexError.duplicateName(DomainName("app.example.com"))) {
            try TLSCertificateIndex(entries: [
                .init(names: [DomainName("app.example.com")], context: one),
                .init(names: [DomainName("App.Example.com")], context: one),
            ])
        }
    }
}
