import Testing
@testable import RoutingService

@Suite struct ConfigurationValueTests {
    @Test func wildcardDomainKnowsItsParent() {
        let name = DomainName("*.Example.COM")
        #expect(name.isWildcard)
        #expect(name.wildcardParent == "example.com")
        #expect(DomainName("app.example.com").wildcardParent == nil)
    }

    @Test func redirectDefaultsFollowSSLMode() {
        #expect(DomainConfiguration(name: DomainName("a.test"), service: "s", port: 1, ssl: .auto).redirectHTTP)
        #expect(!DomainConfiguration(name: DomainName("a.test"), service: "s", port: 1, ssl: .off).redirectHTTP)
        #expect(!DomainConfiguration(name: DomainName("a.test"), service: "s", port: 1, ssl: nil).redirectHTTP)
    }
}
