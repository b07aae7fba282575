import Foundation
import RoutingService
import TestSupport
import Testing

@Suite struct X509CertificateTests {
    @Test func parsesLeafFactsAndChainOrder() throws {
        let fixture = try CertificateTestFixture()
        let (chainPEM, _, leaf) = try fixture.issue(["app.example.com", "*.example.com", "127.0.0.1"])
        let chain = try X509Certificate.parseChain(pem: chainPEM)

        #expect(chain.count == 2)
        let certificate = chain[0]
        #expect(certificate.subjectAlternativeDNSNames == ["app.example.com", "*.example.com"])
        #expect(certificate.subjectAlternativeIPAddresses == ["127.0.0.1"])
        #expect(certificate.commonName == "app.example.com")
        #expect(certificate.subject == "CN=app.example.com")
        #expect(certificate.issuer == "CN=edge-router test CA")
        #expect(chain[1].subject == "CN=edge-router test CA")
        #expect(certificate.isIssued(by: chain[1]))
        #expect(!chain[1].isIssued(by: certificate))

        let serial = try Shell.run("openssl", ["x509", "-in", leaf.certificatePath, "-noout", "-serial"]).output
        #expect(serial.trimmingCharacters(in: .whitespacesAndNewlines) == "serial=\(certificate.serialNumberHex)")

        let lifetime = certificate.notAfter.timeIntervalSince(certificate.notBefore)
        #expect(abs(lifetime - 30 * 86_400) < 5)
        #expect(abs(certificate.notBefore.timeIntervalSinceNow) < 300)
        #expect(certificate.isValid(at: Date()))
        #expect(!certificate.isValid(at: Date().addingTimeInterval(31 * 86_400)))

        // The PEM given back parses to the same certificate.
        let reparsed = try X509Certificate.parseChain(pem: certificate.pem)
        #expect(reparsed.count == 1)
        #expect(reparsed[0].serialNumberHex == certificate.serialNumberHex)
        #expect(String(decoding: certificate.pem, as: UTF8.self).hasPrefix("-----BEGIN CERTIFICATE-----"))
    }

    @Test func datesMatchTheOpenSSLCommandLine() throws {
        let fixture = try CertificateTestFixture()
        let (chainPEM, _, leaf) = try fixture.issue(["dates.example.com"])
        let certificate = try X509Certificate.parseChain(pem: chainPEM)[0]
        let output = try Shell.run("openssl", ["x509", "-in", leaf.certificatePath, "-noout", "-enddate"]).output
        // notAfter=Dec 26 15:36:50 2026 GMT
        let text = output.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "notAfter=", with: "")
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "MMM d HH:mm:ss yyyy 'GMT'"
        let expected = try #require(formatter.date(from: text.replacingOccurrences(of: "  ", with: " ")))
        #expect(certificate.notAfter == expected)
    }

    @Test func wildcardOnlyCertificate() throws {
        let fixture = try CertificateTestFixture()
        let (chainPEM, _, _) = try fixture.issue(["*.wild.example.com"])
        let certificate = try X509Certificate.parseChain(pem: chainPEM)[0]
        #expect(certificate.subjectAlternativeDNSNames == ["*.wild.example.com"])
        #expect(certificate.commonName == "*.wild.example.com")
    }

    @Test func skipsOtherBlocksSuchAsAKey() throws {
        let fixture = try CertificateTestFixture()
        let (chainPEM, keyPEM, _) = try fixture.issue(["mixed.example.com"])
        let chain = try X509Certificate.parseChain(pem: keyPEM + chainPEM)
        #expect(chain.count == 2)
        #expect(chain[0].commonName == "mixed.example.com")
    }

    @Test func refusesPEMWithoutCertificate() throws {
        let fixture = try CertificateTestFixture()
        let (_, keyPEM, _) = try fixture.issue(["nocert.example.com"])
        for input in [keyPEM, Array("just some text\n".utf8), []] {
            let error = try #require(throws: X509Error.self) { try X509Certificate.parseChain(pem: input) }
            #expect(error.code == .noCertificateInPEM)
        }
    }

    @Test func refusesMalformedCertificateBlock() throws {
        let fixture = try CertificateTestFixture()
        let (chainPEM, _, leaf) = try fixture.issue(["broken.example.com"])
        let text = String(decoding: chainPEM, as: UTF8.self)

        // Damaged base64 inside the first block.
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[3] = String(repeating: "!", count: lines[3].count)
        let damaged = try #require(throws: X509Error.self) {
            try X509Certificate.parseChain(pem: Array(lines.joined(separator: "\n").utf8))
        }
        #expect(damaged.code == .malformedCertificatePEM)
        #expect(damaged.reason.contains("certificate 1"))

        // The second block cut short: an error, not a one-certificate chain.
        let leafText = try String(contentsOfFile: leaf.certificatePath, encoding: .utf8)
        let truncated = leafText + "-----BEGIN CERTIFICATE-----\nMIIB\n"
        let cut = try #require(throws: X509Error.self) { try X509Certificate.parseChain(pem: Array(truncated.utf8)) }
        #expect(cut.code == .malformedCertificatePEM)
    }
}
