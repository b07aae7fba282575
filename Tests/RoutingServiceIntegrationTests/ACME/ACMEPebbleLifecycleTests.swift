import Foundation
import Logging
import RoutingService
import Synchronization
import Testing

/// Renewal, failure and recovery, badNonce and restart against a real Pebble.
@Suite("ACME lifecycle against Pebble", .serialized)
struct ACMEPebbleLifecycleTests {
    /// Renewal starts when 90 % of the lifetime is left (the default is a third) so that Pebble's real
    /// 89-second certificates renew about 9 s after issuance.
    static let fastRenewal = CertificateRenewalPolicy(
        remainingLifetimeFraction: 0.9, jitterFraction: 0.01,
        retryInitialDelay: .milliseconds(300), retryMaximumDelay: .seconds(2)
    )

    @Test func renewsBeforeExpiryWithoutAFailedHandshake() async throws {
        let ports = try freePorts(2)
        let pebble = try await PebbleServer(httpPort: ports[0], tlsPort: ports[1], validityPeriod: 90)
        defer { pebble.stop() }
        let gateway = try ACMEGatewayUnderTest()
        try await gateway.bindPlain(port: ports[0])
        try await gateway.bindTLS(port: ports[1])
        let name = "renew.example.test"
        let manager = CertificateManager(
            configuration: ACMEGatewayUnderTest.configuration(domains: [(name, .auto)], pebble: pebble),
            store: gateway.store, contexts: gateway.contexts, issuer: try gateway.makeIssuer(pebble: pebble),
            settings: .init(renewal: Self.fastRenewal), logger: gateway.logger
        )
        try await withRunning(manager) {
            #expect(await eventually(within: .seconds(20)) { manager.state(for: name)?.status == .active })
            let first = try #require(manager.state(for: name))
            let firstNotAfter = try #require(first.notAfter)
            let renewal = try #require(first.renewalDate)
            #expect(renewal < firstNotAfter.addingTimeInterval(-70), "renewal at 90 % of 89 s left: \(renewal) vs \(firstNotAfter)")

            var handshakes = 0
            var newSerial: String?
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                let served = try ServedCertificate.fetch(port: ports[1], serverName: name, rootPath: pebble.issuingRootPath)
                handshakes += 1
                #expect(served.verified, "handshake \(handshakes) failed during renewal: \(served.output)")
                if let serial = served.serial, serial.uppercased() != first.serialNumber?.uppercased() {
                    newSerial = serial
                    break
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            let renewed = try #require(newSerial, "no new certificate served within 30 s")
            #expect(Date() < firstNotAfter, "the new certificate was served before the old one expired")
            let state = try #require(manager.state(for: name))
            #expect(state.status == .active)
            #expect(state.serialNumber?.uppercased() == renewed.uppercased())
            print("ACME renewal: new serial \(renewed) served \(String(format: "%.1f", firstNotAfter.timeIntervalSinceNow)) s before the old expired, \(handshakes) handshakes, none failed")
        }
        try await gateway.shutdown()
    }

    @Test func failureBacksOffKeepsTheOldCertificateAndRecovers() async throws {
        let ports = try freePorts(3)
        let (httpPort, tlsPort, servingPort) = (ports[0], ports[1], ports[2])
        let pebble = try await PebbleServer(httpPort: httpPort, tlsPort: tlsPort, validityPeriod: 90)
        defer { pebble.stop() }
        let gateway = try ACMEGatewayUnderTest()
        try await gateway.bindPlain(port: httpPort)
        try await gateway.bindTLS(port: tlsPort)
        try await gateway.bindTLS(port: servingPort)
        let name = "flaky.example.test"
        let manager = CertificateManager(
            configuration: ACMEGatewayUnderTest.configuration(domains: [(name, .auto)], pebble: pebble),
            store: gateway.store, contexts: gateway.contexts, issuer: try gateway.makeIssuer(pebble: pebble),
            settings: .init(renewal: Self.fastRenewal), logger: gateway.logger
        )
        try await withRunning(manager) {
            #expect(await eventually(within: .seconds(20)) { manager.state(for: name)?.status == .active })
            let oldNotAfter = try #require(manager.state(for: name)?.notAfter)

            // Pebble can no longer reach either challenge: nothing listens on its httpPort or tlsPort.
            try await gateway.unbind(port: httpPort)
            try await gateway.unbind(port: tlsPort)
            #expect(await eventually(within: .seconds(25)) { (manager.state(for: name)?.consecutiveFailures ?? 0) >= 3 })
            let failed = try #require(manager.state(for: name))
            #expect(failed.status == .failed || failed.status == .renewing)
            // The certificate held while the orders fail. Usually the first one; but Pebble reuses a valid
            // authorization in 1 % of new orders even with PEBBLE_AUTHZREUSE=0 (its test is
            // `rand.Intn(100) > percent`), so one renewal may have succeeded without a challenge before
            // the failures began.
            let heldSerial = try #require(failed.serialNumber)
            let reason = try #require(failed.lastError)
            #expect(reason.contains("http-01") && reason.contains("tls-alpn-01"), "\(reason)")
            #expect(reason.lowercased().contains("connect"), "the reason names the connection failure: \(reason)")
            #expect(failed.nextRetry != nil)
            #expect(Self.fastRenewal.retryDelay(afterFailures: 3) == .milliseconds(1200))

            // The previous certificate keeps serving meanwhile.
            let during = try ServedCertificate.fetch(port: servingPort, serverName: name, rootPath: pebble.issuingRootPath)
            #expect(during.verified, "\(during.output)")
            #expect(during.serial?.uppercased() == heldSerial.uppercased())

            // Fixed: the listeners are back where Pebble validates.
            try await gateway.bindPlain(port: httpPort)
            try await gateway.bindTLS(port: tlsPort)
            #expect(await eventually(within: .seconds(20)) {
                manager.state(for: name)?.status == .active && manager.state(for: name)?.serialNumber != heldSerial
            }, "\(String(describing: manager.state(for: name)))")
            let recovered = try #require(manager.state(for: name))
            #expect(recovered.lastError == nil && recovered.nextRetry == nil && recovered.consecutiveFailures == 0)
            let after = try ServedCertificate.fetch(port: servingPort, serverName: name, rootPath: pebble.issuingRootPath)
            #expect(after.verified && after.serial?.uppercased() == recovered.serialNumber?.uppercased())
            #expect(Date() < oldNotAfter)
        }
        try await gateway.shutdown()
    }

    @Test func http01FailingFallsBackToTLSALPN01() async throws {
        let ports = try freePorts(2)
        let pebble = try await PebbleServer(httpPort: ports[0], tlsPort: ports[1])
        defer { pebble.stop() }
        let gateway = try ACMEGatewayUnderTest()
        try await gateway.bindTLS(port: ports[1])  // nothing on Pebble's httpPort
        let name = "fallback.example.test"
        let manager = CertificateManager(
            configuration: ACMEGatewayUnderTest.configuration(domains: [(name, .auto)], pebble: pebble),
            store: gateway.store, contexts: gateway.contexts, issuer: try gateway.makeIssuer(pebble: pebble),
            logger: gateway.logger
        )
        try await withRunning(manager) {
            #expect(await eventually(within: .seconds(20)) { manager.state(for: name)?.status == .active },
                    "\(String(describing: manager.state(for: name)))")
            #expect(manager.state(for: name)?.consecutiveFailures == 0)
            let served = try ServedCertificate.fetch(port: ports[1], serverName: name, rootPath: pebble.issuingRootPath)
            #expect(served.verified, "\(served.output)")
        }
        try await gateway.shutdown()
    }

    @Test func badNonceIsRetriedTransparently() async throws {
        let ports = try freePorts(2)
        let pebble = try await PebbleServer(httpPort: ports[0], tlsPort: ports[1], nonceRejectPercent: 30)
        defer { pebble.stop() }
        let gateway = try ACMEGatewayUnderTest()
        try await gateway.bindPlain(port: ports[0])
        try await gateway.bindTLS(port: ports[1])
        let issuer = try gateway.makeIssuer(pebble: pebble)
        let names = ["n1.example.test", "n2.example.test", "n3.example.test"]
        let manager = CertificateManager(
            configuration: ACMEGatewayUnderTest.configuration(domains: names.map { ($0, .auto) }, pebble: pebble),
            store: gateway.store, contexts: gateway.contexts, issuer: issuer, logger: gateway.logger
        )
        try await withRunning(manager) {
            #expect(await eventually(within: .seconds(20)) { manager.states().allSatisfy { $0.status == .active } },
                    "\(manager.states())")
            #expect(manager.states().allSatisfy { $0.consecutiveFailures == 0 }, "no order failed: \(manager.states())")
        }
        let retries = await issuer.client.badNonceRetryCount
        let requests = await issuer.client.requestCount
        print("ACME badNonce: \(retries) retries over \(requests) requests")
        #expect(retries > 0)
        try await gateway.shutdown()
    }

    @Test func restartKeepsAValidCertificateWithoutANewOrder() async throws {
        let ports = try freePorts(2)
        let pebble = try await PebbleServer(httpPort: ports[0], tlsPort: ports[1])
        defer { pebble.stop() }
        let first = try ACMEGatewayUnderTest()
        try await first.bindPlain(port: ports[0])
        try await first.bindTLS(port: ports[1])
        let name = "restart.example.test"
        let configuration = ACMEGatewayUnderTest.configuration(domains: [(name, .auto)], pebble: pebble)
        let before = CertificateManager(
            configuration: configuration, store: first.store, contexts: first.contexts,
            issuer: try first.makeIssuer(pebble: pebble), logger: first.logger
        )
        try await withRunning(before) {
            #expect(await eventually(within: .seconds(20)) { before.state(for: name)?.status == .active })
        }
        let serial = try #require(before.state(for: name)?.serialNumber)
        let accountKey = try #require(FileManager.default.contents(atPath: "\(first.storeDirectory)/.acme/account.key"))
        let keyMode = try FileManager.default.attributesOfItem(atPath: "\(first.storeDirectory)/.acme/account.key")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        try await first.unbind(port: ports[0])
        try await first.unbind(port: ports[1])

        // A new process: same store, fresh TLS front loaded from it.
        let second = try ACMEGatewayUnderTest(storeDirectory: first.storeDirectory)
        second.contexts.replace(CertificateContexts.load(store: second.store, defaultName: nil, logger: second.logger).index)
        try await second.bindPlain(port: ports[0])
        try await second.bindTLS(port: ports[1])
        let counting = CountingIssuer(try second.makeIssuer(pebble: pebble))
        let after = CertificateManager(
            configuration: configuration, store: second.store, contexts: second.contexts, issuer: counting,
            logger: second.logger
        )
        #expect(after.state(for: name)?.status == .active)
        #expect(after.state(for: name)?.serialNumber == serial)
        try await withRunning(after) {
            try await Task.sleep(for: .seconds(1))
        }
        #expect(counting.orders == 0)
        let served = try ServedCertificate.fetch(port: ports[1], serverName: name, rootPath: pebble.issuingRootPath)
        #expect(served.verified && served.serial?.uppercased() == serial.uppercased(), "\(served.output)")
        #expect(FileManager.default.contents(atPath: "\(first.storeDirectory)/.acme/account.key") == accountKey)
        try await second.shutdown()
        try await first.shutdown()
    }
}
