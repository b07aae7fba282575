import Foundation
import RoutingService
import TestSupport
import Testing

/// Keys, JWS signatures, CSRs and TLS-ALPN-01 certificates, checked with the `openssl` CLI.
@Suite("ACME crypto")
final class ACMECryptoTests {
    let scratch: URL

    init() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("acme-crypto-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: scratch)
    }

    func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = scratch.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func es256SignatureVerifiesWithOpenSSL() throws {
        let key = try P256PrivateKey.generate()
        let message = Array("protected.payload".utf8)
        let signature = try key.signES256(message)
        #expect(signature.count == 64)
        let keyPath = try file("key.pem", key.pem)
        let publicPath = scratch.appendingPathComponent("pub.pem").path
        try Shell.run("openssl", ["pkey", "-in", keyPath, "-pubout", "-out", publicPath])
        let verify = try Shell.run("openssl", [
            "dgst", "-sha256", "-verify", publicPath, "-signature", try file("sig.der", Self.der(rawSignature: signature)),
            try file("message", message),
        ], allowFailure: true)
        #expect(verify.output.contains("Verified OK"), "\(verify.output)")
    }

    @Test func keyRoundTripsThroughPEMAndRefusesOtherKeys() throws {
        let key = try P256PrivateKey.generate()
        let again = try P256PrivateKey(pem: key.pem)
        #expect(again.publicX == key.publicX && again.publicY == key.publicY && key.publicX.count == 32)
        let rsaPath = scratch.appendingPathComponent("rsa.pem").path
        try Shell.run("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", rsaPath])
        let rsa = Array(try Data(contentsOf: URL(fileURLWithPath: rsaPath)))
        #expect(throws: OpenSSLError.self) { try P256PrivateKey(pem: rsa) }
        #expect(throws: OpenSSLError.self) { try P256PrivateKey(pem: Array("not a key".utf8)) }
    }

    @Test func sha256MatchesTheStandardVector() {
        let digest = SHA256Digest.hash(Array("abc".utf8))
        #expect(digest.map { String(format: "%02x", $0) }.joined()
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func jwkThumbprintAndKeyAuthorizationFollowRFC7638() throws {
        let signer = ACMEJWSSigner(key: try P256PrivateKey.generate())
        let jwk = signer.canonicalJWK
        #expect(jwk.hasPrefix(#"{"crv":"P-256","kty":"EC","x":""#) && !jwk.contains(" ") && !jwk.contains("="))
        let expected = Data(SHA256Digest.hash(Array(jwk.utf8))).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        #expect(signer.thumbprint == expected && signer.thumbprint.count == 43)
        #expect(signer.keyAuthorization(token: "tok") == "tok.\(expected)")
    }

    @Test func jwsBodyIsFlattenedWithTheRightHeader() throws {
        let signer = ACMEJWSSigner(key: try P256PrivateKey.generate())
        let body = try signer.sign(payload: nil, url: "https://ca.test/acct/1", nonce: "n0nce", key: .kid("https://ca.test/acct/1"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: String])
        #expect(json["payload"] == "")
        let protected = try #require(json["protected"])
        var base64 = protected.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        let headerData = try #require(Data(base64Encoded: base64))
        let header = try #require(try JSONSerialization.jsonObject(with: headerData) as? [String: String])
        #expect(header == ["alg": "ES256", "kid": "https://ca.test/acct/1", "nonce": "n0nce", "url": "https://ca.test/acct/1"])
        #expect(json["signature"]?.count == 86)  // 64 bytes in base64url
    }

    @Test func csrCarriesTheNamesAndVerifies() throws {
        let key = try P256PrivateKey.generate()
        let der = try ACMECertificateBuilder.certificateSigningRequestDER(names: ["app.example.test", "www.example.test"], key: key)
        let text = try Shell.run("openssl", ["req", "-inform", "DER", "-in", try file("csr.der", der), "-noout", "-text", "-verify"])
        #expect(text.output.contains("verify OK") || text.output.contains("Certificate request self-signature verify OK"), "\(text.output)")
        #expect(text.output.contains("DNS:app.example.test, DNS:www.example.test"), "\(text.output)")
        #expect(text.output.contains("CN = app.example.test") || text.output.contains("CN=app.example.test"), "\(text.output)")
        #expect(throws: OpenSSLError.self) { try ACMECertificateBuilder.certificateSigningRequestDER(names: [], key: key) }
    }

    @Test func tlsALPN01CertificateHasTheCriticalACMEIdentifier() throws {
        let keyAuthorization = "token.thumbprint"
        let pem = try ACMECertificateBuilder.tlsALPN01CertificatePEM(
            name: "app.example.test", keyAuthorization: keyAuthorization, key: try P256PrivateKey.generate()
        )
        let text = try Shell.run("openssl", ["x509", "-in", try file("alpn.pem", pem), "-noout", "-text"]).output
        #expect(text.contains("1.3.6.1.5.5.7.1.31: critical"), "\(text)")
        #expect(text.contains("DNS:app.example.test"), "\(text)")
        // The extension's value is the DER OCTET STRING of SHA-256(key authorization): 04 20 || digest.
        let digest = SHA256Digest.hash(Array(keyAuthorization.utf8))
        let hex = ([0x04, 0x20] + digest).map { String(format: "%02X", $0) }.joined()
        let extensionHex = try Shell.run("sh", ["-c", "openssl x509 -in \(scratch.path)/alpn.pem -outform DER | od -An -tx1 | tr -d ' \\n'"]).output.uppercased()
        #expect(extensionHex.contains(hex), "acmeIdentifier value (SHA-256 of the key authorization) not in the certificate")
    }

    /// `r || s` → DER `ECDSA-Sig-Value`, independently of the code under test.
    static func der(rawSignature raw: [UInt8]) -> [UInt8] {
        func integer(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
            var value = Array(bytes.drop { $0 == 0 })
            if value.isEmpty { value = [0] }
            if value[0] & 0x80 != 0 { value.insert(0, at: 0) }
            return [0x02, UInt8(value.count)] + value
        }
        let body = integer(raw[0..<32]) + integer(raw[32..<64])
        return [0x30, UInt8(body.count)] + body
    }
}
