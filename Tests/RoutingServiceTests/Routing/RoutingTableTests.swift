import Testing
@testable import RoutingService

@Suite struct RoutingTableTests {
    static let configuration = GatewayConfiguration(
        listen: ListenConfiguration(https: ListenAddress(host: "0.0.0.0", port: 8443)),
        services: [
            ServiceConfiguration(
                name: "app",
                ports: [ServicePort(port: 3000, http: true), ServicePort(port: 7000)],
                instances: [InstanceAddress(host: "10.0.0.1"), InstanceAddress(host: "10.0.0.2", port: 3999)]
            ),
        ],
        domains: [
            DomainConfiguration(name: DomainName("app.example.com"), service: "app", port: 3000, ssl: .auto),
            DomainConfiguration(name: DomainName("*.example.com"), service: "app", port: 3000, ssl: .manual),
            DomainConfiguration(name: DomainName("plain.example.org"), service: "app", port: 3000, ssl: .off),
            DomainConfiguration(name: DomainName("db.example.org"), service: "app", port: 7000, ssl: nil),
        ]
    )
    let table = RoutingTable(configuration: configuration)

    private func decide(_ mode: HTTPFrontMode, sni: String?, host: String?, uri: String = "/") -> RequestDisposition {
        RequestRouter.disposition(table: table, mode: mode, serverName: sni, host: host, uri: uri)
    }

    @Test func exactBeatsWildcardAndWildcardIsOneLabel() throws {
        #expect(table.route(forHost: "app.example.com")?.domain == DomainName("app.example.com"))
        #expect(table.route(forHost: "APP.Example.com.")?.domain == DomainName("app.example.com"))
        #expect(table.route(forHost: "x.example.com")?.domain == DomainName("*.example.com"))
        #expect(table.route(forHost: "a.b.example.com") == nil)
        #expect(table.route(forHost: "example.com") == nil)
        let route = try #require(table.route(forHost: "app.example.com"))
        #expect(route.upstream.endpoints == [ListenAddress(host: "10.0.0.1", port: 3000), ListenAddress(host: "10.0.0.2", port: 3999)])
        // Domains on the same service port share one upstream group.
        #expect(table.route(forHost: "x.example.com")?.upstream.id == route.upstream.id)
        #expect(table.route(forHost: "db.example.org")?.isHTTP == false)
    }

    @Test func hostHeaderLosesItsPort() {
        #expect(HostHeader.hostname("app.example.com:8443") == "app.example.com")
        #expect(HostHeader.hostname("[::1]:80") == "::1")
        #expect(HostHeader.hostname(" app ") == "app")
        #expect(HostHeader.hostname("") == nil)
        #expect(HostHeader.hostname("[::1") == nil)
        #expect(HostHeader.hostname("\t app.example.com:443 \t") == "app.example.com")
        #expect(HostHeader.hostname("app.example.com") == "app.example.com")
        #expect(HostHeader.hostname(" \t ") == nil)
        #expect(HostHeader.hostname(":8443") == nil)
        #expect(HostHeader.hostname("[]:80") == nil)
        #expect(HostHeader.hostname("[2001:db8::1]") == "2001:db8::1")
        // A port is cut at the first colon; only a bracketed address keeps its colons.
        #expect(HostHeader.hostname("a:b:c") == "a")
        // Non-ASCII bytes pass through whole (the route lookup then finds no such host).
        #expect(HostHeader.hostname(" bücher.example:80") == "bücher.example")
        // A substring of a larger value: indices stay those of the value.
        let line = "Host: app.example.com:8443"
        #expect(HostHeader.hostname(line.dropFirst(5)) == "app.example.com")
    }

    @Test func tlsRequestMustRouteToTheSNIDomain() {
        guard case .proxy(let route) = decide(.tls, sni: "app.example.com", host: "app.example.com:8443") else {
            Issue.record("expected proxy")
            return
        }
        #expect(route.domain == DomainName("app.example.com"))
        // Same wildcard entry: fine. Different entry: 421.
        if case .proxy = decide(.tls, sni: "a.example.com", host: "b.example.com") {} else { Issue.record("wildcard peers") }
        if case .misdirected = decide(.tls, sni: "app.example.com", host: "x.example.com") {} else { Issue.record("421 expected") }
        if case .misdirected = decide(.tls, sni: "app.example.com", host: "unknown.test") {} else { Issue.record("421 expected") }
        // No SNI: routed by Host alone.
        if case .proxy = decide(.tls, sni: nil, host: "x.example.com") {} else { Issue.record("Host routing") }
        if case .unknownHost = decide(.tls, sni: nil, host: "unknown.test") {} else { Issue.record("404 expected") }
        // ssl: off and passthrough domains are not served behind TLS termination.
        if case .misdirected = decide(.tls, sni: nil, host: "plain.example.org") {} else { Issue.record("421 for ssl off") }
        if case .missingHost = decide(.tls, sni: "app.example.com", host: nil) {} else { Issue.record("400 expected") }
    }

    @Test func plainListenerRedirectsProxiesAndReservesACME() {
        if case .redirect(let location) = decide(.plain, sni: nil, host: "app.example.com", uri: "/a/b?c=1&d") {
            #expect(location == "https://app.example.com:8443/a/b?c=1&d")
        } else {
            Issue.record("308 expected")
        }
        if case .redirect(let location) = decide(.plain, sni: nil, host: "x.example.com", uri: "http://x.example.com/p?q") {
            #expect(location == "https://x.example.com:8443/p?q")
        } else {
            Issue.record("308 expected for absolute form")
        }
        if case .proxy = decide(.plain, sni: nil, host: "plain.example.org") {} else { Issue.record("ssl off proxied") }
        if case .unknownHost = decide(.plain, sni: nil, host: "db.example.org") {} else { Issue.record("not HTTP: 404") }
        if case .unknownHost = decide(.plain, sni: nil, host: "nowhere.test") {} else { Issue.record("404 expected") }
        if case .acmeChallenge(let token) = decide(.plain, sni: nil, host: "nowhere.test", uri: "/.well-known/acme-challenge/abc") {
            #expect(token == "abc")
        } else {
            Issue.record("ACME path reserved")
        }
    }

    @Test func storeCacheRefreshesOnlyAfterAReplace() {
        final class Box: Sendable { let value: Int; init(_ value: Int) { self.value = value } }
        let store = RoutingTableStore(Box(1))
        var cache = RoutingTableStore<Box>.Cache()
        let first = cache.current(from: store)
        #expect(first.value == 1)
        #expect(cache.current(from: store) === first)
        store.replace(with: Box(2))
        #expect(cache.current(from: store).value == 2)
    }
}
