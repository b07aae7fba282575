import Foundation
import Logging
import RoutingService
import Testing

/// ACME against a real Pebble on loopback: issuance over both challenge types, hot swap into the TLS
/// front, renewal, failure with backoff, badNonce, restart.
@Suite("ACME against Pebble", .serialized)
struct ACMEPebbleTests {
    @Test func issuesOverHTTP01ForThreeDomainsAndTLSALPN01ForOne() async throws {
        let ports = try freePorts(2)
        let (httpPort, tlsPort) = (ports[0], ports[1])
        let pebble = try await PebbleServer(httpPort: httpPort, tlsPort: tlsPort)
        defer { pebble.stop() }
        let gateway = try ACMEGatewayUnderTest()
        try await gateway.bindPlain(port: httpPort)
        try await gateway.bindTLS(port: tlsPort)
        let issuer = try gateway.makeIssuer(pebble: pebble)

        let httpNames = ["a.example.test", "b.example.test", "c.example.test"]
        let http01 = CertificateManager(
            configuration: ACMEGatewayUnderTest.configuration(domains: [], pebble: pebble),
            store: gateway.store, contexts: gateway.contexts, issuer: issuer,
            settings: .init(challengeTypes: [.http01]), logger: gateway.logger
        )
        let tlsALPN01 = CertificateManager(
            configuration: ACMEGatewayUnderTest.configuration(domains: [], pebble: pebble),
            store: gateway.store, contexts: gateway.contexts, issuer: issuer,
            settings: .init(challengeTypes: [.tlsALPN01]), logger: gateway.logger
        )
        try await withRunning(http01) {
            try await withRunning(tlsALPN01) {
                // Before: HTTPS for the names is refused cleanly.
                #expect(try ServedCertificate.fetch(port: tlsPort, serverName: httpNames[0], rootPath: pebble.issuingRootPath).refused)

                let started = ContinuousClock.now
                http01.apply(ACMEGatewayUnderTest.configuration(domains: httpNames.map { ($0, .auto) }, pebble: pebble))
                tlsALPN01.apply(ACMEGatewayUnderTest.configuration(domains: [("alpn.example.test", .auto)], pebble: pebble))
                let allNames = httpNames + ["alpn.example.test"]
                let served = await eventually(within: .seconds(20)) {
                    allNames.allSatisfy { http01.hasServableCertificate(for: $0) }
                }
                let elapsed = ContinuousClock.now - started
                print("ACME bench: toggle to auto → 4 certificates served (3 HTTP-01, 1 TLS-ALPN-01): \(elapsed)")
                #expect(served, "states: \(http01.states()) \(tlsALPN01.states())")

                for name in allNames {
                    let certificate = try ServedCertificate.fetch(port: tlsPort, serverName: name, rootPath: pebble.issuingRootPath)
                    #expect(certificate.verified, "\(name): \(certificate.output)")
                }
                #expect(http01.states().map(\.status) == [.active, .active, .active])
                #expect(tlsALPN01.states().map(\.status) == [.active])
                #expect(gateway.store.loadAll().certificates.filter { $0.source == .acme }.count == 4)
                #expect(gateway.challenges.isEmpty, "challenge answers withdrawn after the orders")
            }
        }
        try await gateway.shutdown()
    }

    @Test func togglingOneDomainToAutoServesItsCertificateQuickly() async throws {
        let ports = try freePorts(2)
        let pebble = try await PebbleServer(httpPort: ports[0], tlsPort: ports[1])
        defer { pebble.stop() }
        let gateway = try ACMEGatewayUnderTest()
        try await gateway.bindPlain(port: ports[0])
        try await gateway.bindTLS(port: ports[1])
        let manager = CertificateManager(
            configuration: ACMEGatewayUnderTest.configuration(domains: [("app.example.test", .off)], pebble: pebble),
            store: gateway.store, contexts: gateway.contexts, issuer: try gateway.makeIssuer(pebble: pebble),
            logger: gateway.logger
        )
        try await withRunning(manager) {
            #expect(manager.states().isEmpty)
            let started = ContinuousClock.now
            manager.apply(ACMEGatewayUnderTest.configuration(domains: [("app.example.test", .auto)], pebble: pebble))
            #expect(manager.state(for: "app.example.test")?.status == .pending)
            #expect(!manager.hasServableCertificate(for: "app.example.test"))
            let served = await eventually(within: .seconds(20)) { manager.hasServableCertificate(for: "app.example.test") }
            let elapsed = ContinuousClock.now - started
            print("ACME bench: toggle to auto → certificate served (first account registration included): \(elapsed)")
            #expect(served)
            let certificate = try ServedCertificate.fetch(port: ports[1], serverName: "app.example.test", rootPath: pebble.issuingRootPath)
            #expect(certificate.verified, "\(certificate.output)")

            // Away from auto: no longer managed; the stored certificate stays (ssl: manual may serve it).
            manager.apply(ACMEGatewayUnderTest.configuration(domains: [("app.example.test", .off)], pebble: pebble))
            #expect(manager.states().isEmpty)
        }
        try await gateway.shutdown()
    }
}
