import Foundation
import RoutingService
import TestSupport
import Testing

@Suite struct PrivateKeyTests {
    @Test func ecKeyMatchesItsCertificateOnly() throws {
        let fixture = try CertificateTestFixture()
        let (chainPEM, keyPEM, _) = try fixture.issue(["key.example.com"])
        let (otherChainPEM, _, _) = try fixture.issue(["other.example.com"])
        let key = try PrivateKey(pem: keyPEM)
        let chain = try X509Certificate.parseChain(pem: chainPEM)
        let other = try X509Certificate.parseChain(pem: otherChainPEM)

        #expect(key.algorithm == .ec)
        #expect(key.bits == 256)
        #expect(key.matches(chain[0]))
        #expect(!key.matches(chain[1]))
        #expect(!key.matches(other[0]))
        #expect(String(decoding: key.pem, as: UTF8.self).hasPrefix("-----BEGIN PRIVATE KEY-----"))
        #expect(try PrivateKey(pem: key.pem).matches(chain[0]))
    }

    @Test func rsaKeyInTraditionalForm() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Shell.run("openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(directory)/rsa.key",
            "-out", "\(directory)/rsa.pem", "-days", "2", "-subj", "/CN=rsa.example.com",
        ])
        try Shell.run("openssl", ["pkey", "-in", "\(directory)/rsa.key", "-traditional", "-out", "\(directory)/rsa-traditional.key"])
        let keyPEM = try CertificateTestFixture.read("\(directory)/rsa-traditional.key")
        #expect(String(decoding: keyPEM, as: UTF8.self).hasPrefix("-----BEGIN RSA PRIVATE KEY-----"))

        let key = try PrivateKey(pem: keyPEM)
        #expect(key.algorithm == .rsa)
        #expect(key.bits == 2048)
        #expect(key.matches(try X509Certificate.parseChain(pem: CertificateTestFixture.read("\(directory)/rsa.pem"))[0]))
    }

    @Test func refusesEncryptedKeyWithoutPrompting() throws {
        let fixture = try CertificateTestFixture()
        let (_, _, leaf) = try fixture.issue(["secret.example.com"])
        let encryptedPath = leaf.keyPath + ".enc"
        try Shell.run("openssl", ["pkey", "-in", leaf.keyPath, "-aes256", "-passout", "pass:secret", "-out", encryptedPath])
        let error = try #require(throws: X509Error.self) {
            try PrivateKey(pem: CertificateTestFixture.read(encryptedPath))
        }
        #expect(error.code == .encryptedPrivateKey)
        #expect(error.reason.contains("encrypted"))
    }

    @Test func refusesMissingOrDamagedKey() throws {
        let fixture = try CertificateTestFixture()
        let (chainPEM, keyPEM, _) = try fixture.issue(["damaged.example.com"])

        let missing = try #require(throws: X509Error.self) { try PrivateKey(pem: chainPEM) }
        #expect(missing.code == .noPrivateKeyInPEM)

        // Drop the second base64 line: the DER inside no longer holds together.
        var lines = String(decoding: keyPEM, as: UTF8.self).split(separator: "\n").map(String.init)
        #expect(lines.count >= 4)
        lines.remove(at: 2)
        let damaged = try #require(throws: X509Error.self) { try PrivateKey(pem: Array(lines.joined(separator: "\n").utf8)) }
        #expect(damaged.code == .malformedPrivateKeyPEM)
    }

    @Test func refusesUnsupportedKeyType() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Shell.run("openssl", ["genpkey", "-algorithm", "ed25519", "-out", "\(directory)/ed.key"])
        let error = try #require(throws: X509Error.self) {
            try PrivateKey(pem: CertificateTestFixture.read("\(directory)/ed.key"))
        }
        #expect(error.code == .unsupportedKeyType)
        #expect(error.reason.contains("ED25519"))
    }

    private func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("edge-router-key-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
