import Testing
@testable import RoutingService

@Suite struct AddressSyntaxTests {
    @Test func splitsListenAddresses() throws {
        #expect(try AddressSyntax.splitListenAddress("0.0.0.0:443").get() == ListenAddress(host: "0.0.0.0", port: 443))
        #expect(try AddressSyntax.splitListenAddress("[::1]:8443").get() == ListenAddress(host: "::1", port: 8443))
        #expect(
            try AddressSyntax.splitListenAddress("localhost:80").get() == ListenAddress(host: "localhost", port: 80)
        )
        for bad in ["0.0.0.0", "::1:443", "[::1]", "[::1:443", ":443", "host:", "host:http", "host:-1"] {
            #expect(throws: AddressSyntax.SplitFailure.self, "\(bad)") {
                try AddressSyntax.splitListenAddress(bad).get()
            }
        }
    }

    @Test func splitsInstanceAddresses() throws {
        #expect(try AddressSyntax.splitInstanceAddress("10.0.0.1").get() == InstanceAddress(host: "10.0.0.1"))
        #expect(
            try AddressSyntax.splitInstanceAddress("10.0.0.1:81").get() == InstanceAddress(host: "10.0.0.1", port: 81)
        )
        #expect(try AddressSyntax.splitInstanceAddress("fd00::1").get() == InstanceAddress(host: "fd00::1"))
        #expect(try AddressSyntax.splitInstanceAddress("[fd00::1]").get() == InstanceAddress(host: "fd00::1"))
        #expect(
            try AddressSyntax.splitInstanceAddress("[fd00::1]:81").get() == InstanceAddress(host: "fd00::1", port: 81)
        )
        #expect(
            try AddressSyntax.splitInstanceAddress("api.internal:81").get()
                == InstanceAddress(host: "api.internal", port: 81)
        )
        for bad in ["[fd00::1", "[fd00::1]81", "host:x", "host:"] {
            #expect(throws: AddressSyntax.SplitFailure.self, "\(bad)") {
                try AddressSyntax.splitInstanceAddress(bad).get()
            }
        }
    }

    @Test func checksHosts() {
        for good in ["10.0.0.1", "::1", "fd00::1", "app", "app-1.internal", "web_1", "a.b.c"] {
            #expect(AddressSyntax.hostProblem(good) == nil, "\(good)")
        }
        for bad in [
            "", "10.0.0.256", "1.2.3", "fe80::1::2", "-app", "app-", "a..b", "a b", "ünï.test",
            String(repeating: "a", count: 64),
        ] {
            #expect(AddressSyntax.hostProblem(bad) != nil, "\(bad)")
        }
    }

    @Test func checksDomainNames() {
        for good in ["app.example.com", "*.example.com", "a-b.example.com", "localhost", "xn--bcher-kva.example"] {
            #expect(DomainName(good).syntaxProblem == nil, "\(good)")
        }
        let tooLong = (0..<4).map { _ in String(repeating: "a", count: 63) }.joined(separator: ".") + ".com"
        for bad in [
            "", "*.com", "*", "a.*.example.com", "*a.example.com", "**.example.com", "-a.example.com", "a-.example.com",
            "a_b.example.com", "example.com.", ".example.com", "10.0.0.1", "a.123", tooLong,
        ] {
            #expect(DomainName(bad).syntaxProblem != nil, "\(bad)")
        }
    }

    @Test func overlapAndLoopback() {
        let any = ListenAddress(host: "0.0.0.0", port: 80)
        #expect(any.overlaps(ListenAddress(host: "127.0.0.1", port: 80)))
        #expect(ListenAddress(host: "::", port: 80).overlaps(ListenAddress(host: "127.0.0.1", port: 80)))
        #expect(!any.overlaps(ListenAddress(host: "0.0.0.0", port: 81)))
        #expect(!ListenAddress(host: "127.0.0.1", port: 80).overlaps(ListenAddress(host: "127.0.0.2", port: 80)))
        #expect(ListenAddress(host: "127.8.9.10", port: 1).isLoopback)
        #expect(ListenAddress(host: "::1", port: 1).isLoopback)
        #expect(!ListenAddress(host: "128.0.0.1", port: 1).isLoopback)
        #expect(!any.isLoopback)
    }

    @Test func suggestsCloseKeys() {
        #expect(KeySuggestion.closest(to: "healthcheck", among: ConfigurationKeys.service) == "healthCheck")
        #expect(KeySuggestion.closest(to: "instanses", among: ConfigurationKeys.service) == "instances")
        #expect(KeySuggestion.closest(to: "redirect", among: ConfigurationKeys.domain) == nil)
        #expect(KeySuggestion.closest(to: "zzz", among: ConfigurationKeys.root) == nil)
    }
}
