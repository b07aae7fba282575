import Foundation
import RoutingService
import TestSupport
import Testing

@Suite struct CertificateStoreTests {
    @Test func importThenLoadRoundTrip() throws {
        let fixture = try CertificateTestFixture()
        let store = fixture.store()
        let (chainPEM, keyPEM, _) = try fixture.issue(["app.example.com", "www.example.com"])

        let stored = try store.store(chainPEM: chainPEM, keyPEM: keyPEM, source: .acme)
        #expect(stored.folder == "app.example.com")
        #expect(stored.names == [DomainName("app.example.com"), DomainName("www.example.com")])
        #expect(stored.issuer == "CN=edge-router test CA")

        let folder = store.path(ofFolder: "app.example.com")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == ["cert.pem", "key.pem", "meta.json"])
        #expect(try fixture.mode(of: "\(folder)/key.pem") == 0o600)
        // cert.pem holds the leaf then the CA; key.pem the key.
        let written = try X509Certificate.parseChain(pem: CertificateTestFixture.read("\(folder)/cert.pem"))
        #expect(written.map(\.subject) == ["CN=app.example.com", "CN=edge-router test CA"])
        #expect(try PrivateKey(pem: CertificateTestFixture.read("\(folder)/key.pem")).matches(written[0]))

        let meta = try #require(
            try JSONSerialization.jsonObject(with: Data(CertificateTestFixture.read("\(folder)/meta.json"))) as? [String: Any]
        )
        #expect(meta["names"] as? [String] == ["app.example.com", "www.example.com"])
        #expect(meta["source"] as? String == "acme")
        #expect(meta["issuer"] as? String == "CN=edge-router test CA")
        #expect(meta["serial"] as? String == written[0].serialNumberHex)
        let iso = ISO8601DateFormatter()
        #expect((meta["notAfter"] as? String).flatMap(iso.date(from:)) == written[0].notAfter)
        #expect((meta["notBefore"] as? String).flatMap(iso.date(from:)) == written[0].notBefore)

        let report = store.loadAll()
        #expect(report.failures.isEmpty)
        #expect(report.warnings.isEmpty)
        #expect(report.certificates == [stored])
        #expect(report.certificates.first?.source == .acme)
    }

    @Test func folderWithOnlyThePEMFilesLoadsAsManual() throws {
        let fixture = try CertificateTestFixture()
        let (chainPEM, keyPEM, _) = try fixture.issue(["bare.example.com"])
        let folder = "\(fixture.directory)/hand-made"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try CertificateTestFixture.write(chainPEM, to: "\(folder)/cert.pem")
        try CertificateTestFixture.write(keyPEM, to: "\(folder)/key.pem")
        chmod("\(folder)/key.pem", 0o600)

        let report = fixture.store().loadAll()
        #expect(report.failures.isEmpty)
        #expect(report.warnings.isEmpty)
        let certificate = try #require(report.certificates.first)
        #expect(certificate.folder == "hand-made")
        #expect(certificate.source == .manual)
        #expect(certificate.names == [DomainName("bare.example.com")])
        #expect(certificate.issuer == "CN=edge-router test CA")
    }

    @Test func badFoldersAreReportedByNameWhileOthersLoad() throws {
        let fixture = try CertificateTestFixture()
        let store = fixture.store()
        for name in ["good.example.com", "corrupt.example.com", "mismatch.example.com", "nokey.example.com"] {
            let (chainPEM, keyPEM, _) = try fixture.issue([name])
            try store.store(chainPEM: chainPEM, keyPEM: keyPEM, source: .manual)
        }
        try CertificateTestFixture.write(Array("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n".utf8),
                                         to: store.path(ofFolder: "corrupt.example.com") + "/key.pem")
        let (_, strangerKey, _) = try fixture.issue(["stranger.example.com"])
        try CertificateTestFixture.write(strangerKey, to: store.path(ofFolder: "mismatch.example.com") + "/key.pem")
        try FileManager.default.removeItem(atPath: store.path(ofFolder: "nokey.example.com") + "/key.pem")
        // Plain files and hidden folders in the directory are not certificates.
        try CertificateTestFixture.write(Array("notes".utf8), to: "\(fixture.directory)/README.md")
        try FileManager.default.createDirectory(atPath: "\(fixture.directory)/.acme", withIntermediateDirectories: true)

        let report = store.loadAll()
        #expect(report.certificates.map(\.folder) == ["good.example.com"])
        let failures = Dictionary(uniqueKeysWithValues: report.failures.map { ($0.folder, $0.reason) })
        #expect(failures.count == 3)
        #expect(failures["corrupt.example.com"]?.code == .invalidPrivateKey)
        #expect(failures["mismatch.example.com"]?.code == .keyDoesNotMatchCertificate)
        #expect(failures["mismatch.example.com"]?.reason.contains("does not match") == true)
        #expect(failures["nokey.example.com"]?.code == .missingFile)
        #expect(failures["nokey.example.com"]?.reason == "key.pem is missing")
    }

    @Test func expiredCertificateIsReportedAndRefused() throws {
        let fixture = try CertificateTestFixture()
        let (chainPEM, keyPEM, _) = try fixture.issue(["old.example.com"], days: 10)
        try fixture.store().store(chainPEM: chainPEM, keyPEM: keyPEM, source: .manual)

        let later = fixture.store(now: { Date().addingTimeInterval(11 * 86_400) })
        let report = later.loadAll()
        #expect(report.certificates.isEmpty)
        let failure = try #require(report.failures.first)
        #expect(failure.folder == "old.example.com")
        #expect(failure.reason.code == .expired)
        #expect(failure.reason.reason.contains("expired on"))

        let error = try #require(throws: CertificateStoreError.self) {
            try later.store(chainPEM: chainPEM, keyPEM: keyPEM, source: .manual)
        }
        #expect(error.code == .expired)
    }

    @Test(arguments: [
        CertificateStore.Interruption.whileWritingKey, .beforeSwap, .betweenRenames,
    ])
    func interruptedReplacementKeepsThePreviousCertificate(_ interruption: CertificateStore.Interruption) throws {
        let fixture = try CertificateTestFixture()
        let store = fixture.store()
        let first = try fixture.issue(["app.example.com"])
        let previous = try store.store(chainPEM: first.chain, keyPEM: first.key, source: .manual)
        let second = try fixture.issue(["app.example.com"])

        let crash = try #require(throws: AtomicFileError.self) {
            try store._testOnly_store(chainPEM: second.chain, keyPEM: second.key, source: .acme, interruptedAt: interruption)
        }
        #expect(crash.isSimulatedCrash)

        // What a restart sees: the previous certificate, whole and matching its key.
        let report = store.loadAll()
        #expect(report.failures.isEmpty)
        #expect(report.certificates.map(\.serialNumber) == [previous.serialNumber])
        #expect(report.certificates == [previous])

        // The next store of the name recovers and leaves no leftovers.
        let third = try fixture.issue(["app.example.com"])
        let replaced = try store.store(chainPEM: third.chain, keyPEM: third.key, source: .manual)
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.directory) == ["app.example.com"])
        #expect(store.loadAll().certificates.map(\.serialNumber) == [replaced.serialNumber])
        #expect(replaced.serialNumber != previous.serialNumber)
    }

    @Test func secondImportOfTheSameNamesReplacesTheFirst() throws {
        let fixture = try CertificateTestFixture()
        let store = fixture.store()
        let first = try fixture.issue(["*.example.com"])
        let second = try fixture.issue(["*.example.com"])

        let old = try store.store(chainPEM: first.chain, keyPEM: first.key, source: .manual)
        let new = try store.store(chainPEM: second.chain, keyPEM: second.key, source: .selfSigned)
        #expect(old.folder == "_wildcard.example.com")
        #expect(new.folder == "_wildcard.example.com")
        #expect(old.serialNumber != new.serialNumber)

        let report = store.loadAll()
        #expect(report.certificates.map(\.serialNumber) == [new.serialNumber])
        #expect(report.certificates.first?.source == .selfSigned)
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.directory) == ["_wildcard.example.com"])
    }

    @Test func refusesBadPairsWithoutWriting() throws {
        let fixture = try CertificateTestFixture()
        let store = fixture.store()
        let app = try fixture.issue(["app.example.com"])
        let other = try fixture.issue(["other.example.com"])
        let caPEM = try CertificateTestFixture.read(fixture.authority.caCertificatePath)
        let leafPEM = try CertificateTestFixture.read(app.leaf.certificatePath)

        let cases: [(chain: [UInt8], key: [UInt8], code: CertificateStoreError.Code)] = [
            (app.chain, other.key, .keyDoesNotMatchCertificate),
            (caPEM + leafPEM, app.key, .chainNotLeafFirst),
            (leafPEM + caPEM + caPEM + leafPEM, app.key, .chainOutOfOrder),
            (app.key, app.key, .invalidCertificate),
            (app.chain, app.chain, .invalidPrivateKey),
        ]
        for (chain, key, code) in cases {
            let refusal = try #require(throws: CertificateStoreError.self) {
                try store.store(chainPEM: chain, keyPEM: key, source: .manual)
            }
            let reason = refusal.reason
            #expect(refusal.code == code, "\(reason)")
        }
        let written = (try? FileManager.default.contentsOfDirectory(atPath: fixture.directory)) ?? []
        #expect(written.isEmpty)
    }

    @Test func keyReadableByOthersIsAWarningNotAFailure() throws {
        let fixture = try CertificateTestFixture()
        let store = fixture.store()
        let (chainPEM, keyPEM, _) = try fixture.issue(["loose.example.com"])
        try store.store(chainPEM: chainPEM, keyPEM: keyPEM, source: .manual)
        chmod(store.path(ofFolder: "loose.example.com") + "/key.pem", 0o644)

        let report = store.loadAll()
        #expect(report.certificates.map(\.folder) == ["loose.example.com"])
        #expect(report.failures.isEmpty)
        let warning = try #require(report.warnings.first)
        #expect(warning.folder == "loose.example.com")
        #expect(warning.message.contains("mode 644"))
    }

    @Test func damagedMetadataFallsBackToManualWithAWarning() throws {
        let fixture = try CertificateTestFixture()
        let store = fixture.store()
        let (chainPEM, keyPEM, _) = try fixture.issue(["meta.example.com"])
        try store.store(chainPEM: chainPEM, keyPEM: keyPEM, source: .acme)
        try CertificateTestFixture.write(Array("{ not json".utf8), to: store.path(ofFolder: "meta.example.com") + "/meta.json")

        let report = store.loadAll()
        #expect(report.certificates.first?.source == .manual)
        #expect(report.warnings.first?.message.contains("meta.json cannot be read") == true)
    }

    @Test func coveringLookupAndRemove() throws {
        let fixture = try CertificateTestFixture()
        let store = fixture.store()
        let wildcard = try fixture.issue(["*.example.com"])
        let exact = try fixture.issue(["app.example.com"])
        try store.store(chainPEM: wildcard.chain, keyPEM: wildcard.key, source: .manual)
        try store.store(chainPEM: exact.chain, keyPEM: exact.key, source: .manual)

        #expect(store.certificate(covering: DomainName("app.example.com"))?.folder == "app.example.com")
        #expect(store.certificate(covering: DomainName("API.example.com"))?.folder == "_wildcard.example.com")
        #expect(store.certificate(covering: DomainName("*.example.com"))?.folder == "_wildcard.example.com")
        #expect(store.certificate(covering: DomainName("a.b.example.com")) == nil)
        #expect(store.certificate(covering: DomainName("example.com")) == nil)

        try store.remove(folder: "_wildcard.example.com")
        #expect(!store.hasCertificate(covering: DomainName("api.example.com")))
        #expect(store.hasCertificate(covering: DomainName("app.example.com")))
        let missing = try #require(throws: CertificateStoreError.self) { try store.remove(folder: "_wildcard.example.com") }
        #expect(missing.code == .notFound)
        let escape = try #require(throws: CertificateStoreError.self) { try store.remove(folder: "../etc") }
        #expect(escape.code == .invalidFolderName)
    }

    @Test func missingDirectoryIsAnEmptyStore() throws {
        let report = CertificateStore(directory: "/nonexistent-edge-router-certs-\(UUID().uuidString)").loadAll()
        #expect(report.certificates.isEmpty)
        #expect(report.failures.isEmpty)
    }
}
