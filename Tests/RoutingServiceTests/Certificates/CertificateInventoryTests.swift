import Foundation
import RoutingService
import Testing

@Suite struct CertificateInventoryTests {
    @Test func exactNamesAndOneLabelWildcards() {
        let inventory = CertificateInventorySnapshot(names: [DomainName("app.example.com"), DomainName("*.shop.example.com")])
        #expect(inventory.hasCertificate(covering: DomainName("app.example.com")))
        #expect(inventory.hasCertificate(covering: DomainName("APP.example.com")))
        #expect(!inventory.hasCertificate(covering: DomainName("www.example.com")))
        #expect(inventory.hasCertificate(covering: DomainName("eu.shop.example.com")))
        #expect(inventory.hasCertificate(covering: DomainName("*.shop.example.com")))
        #expect(!inventory.hasCertificate(covering: DomainName("shop.example.com")))
        #expect(!inventory.hasCertificate(covering: DomainName("a.eu.shop.example.com")))
        #expect(!inventory.hasCertificate(covering: DomainName("*.example.com")))
    }

    @Test func expiryDescriptions() {
        let now = Date(timeIntervalSince1970: 1_800_000_000) // 2027-01-15T08:00:00Z
        func certificate(expiringIn seconds: TimeInterval) -> StoredCertificate {
            StoredCertificate(
                folder: "f", names: [DomainName("f.example.com")], source: .manual, notBefore: now,
                notAfter: now.addingTimeInterval(seconds), issuer: "CN=x", serialNumber: "01", chainPEM: [], keyPEM: []
            )
        }
        #expect(certificate(expiringIn: 30 * 86_400 + 60).expiryDescription(now: now) == "2027-02-14 (in 30 days)")
        #expect(certificate(expiringIn: 86_400 + 1).expiryDescription(now: now) == "2027-01-16 (in 1 day)")
        #expect(certificate(expiringIn: 3600).expiryDescription(now: now) == "2027-01-15 (today)")
        #expect(certificate(expiringIn: -86_400).expiryDescription(now: now) == "2027-01-14 (EXPIRED)")
        #expect(certificate(expiringIn: 3600).covers(DomainName("f.example.com")))
    }

    @Test func folderNames() throws {
        #expect(try CertificateFolderName.forName(DomainName("App.Example.com")) == "app.example.com")
        #expect(try CertificateFolderName.forName(DomainName("*.example.com")) == "_wildcard.example.com")
        #expect(try CertificateFolderName.forName(DomainName("127.0.0.1")) == "127.0.0.1")
        for bad in ["../x", ".hidden", "a/b", ""] {
            #expect(throws: CertificateStoreError.self) { try CertificateFolderName.forName(DomainName(bad)) }
        }
    }
}
