import Foundation
import RoutingService
import Testing
import TestSupport

/// The real `edge-router run` binary with automatic certificates from Pebble, toggled with the CLI
/// (`edge-router ssl DOMAIN auto|off`) while it runs: no restart, other domains unaffected.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ACMEGatewayToggleTests {
    static let binary = CheckCommandTests.binary.path

    /// A gateway configuration with an `acme` section pointing at `pebble`; returns its path and token file.
    static func writeConfiguration(
        pebble: PebbleServer, http: Int, https: Int, admin: Int, appPort: Int, domains: [String: String]
    ) throws -> (config: String, token: String) {
        let directory = pebble.directory.appendingPathComponent("gateway")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let token = directory.appendingPathComponent("admin.token").path
        try "test-token-\(UUID().uuidString)\n".write(toFile: token, atomically: true, encoding: .utf8)
        let config = directory.appendingPathComponent("gateway.yaml").path
        let domainLines = domains.sorted { $0.key < $1.key }.map { name, ssl in
            "  - { name: \(name), service: app, port: \(appPort), ssl: \(ssl) }"
        }.joined(separator: "\n")
        try """
        # ACME test
        \(TestConfiguration.listenAndAdmin(http: http, https: https, admin: admin, token: token))
        certificates:
          directory: \(directory.appendingPathComponent("certs").path)
        acme:
          directory: \(pebble.directoryURL)
          caBundle: \(pebble.listenerCAPath)
        services:
          - name: app
            ports:
              - { port: \(appPort), http: true }
            instances: [127.0.0.2, 127.0.0.3, 127.0.0.4]
        domains:
        \(domainLines)

        """.write(toFile: config, atomically: true, encoding: .utf8)
        return (config, token)
    }

    /// While no certificate can be had (Pebble validates on ports where nothing of ours listens), the
    /// domain is `failed` with the reason, its HTTPS is refused cleanly and its HTTP is served, not
    /// redirected to a refusal.
    @Test func aDomainWithoutItsCertificateYetIsServedOverHTTPAndShowsWhy() async throws {
        let instances = try NodeInstances()
        defer { instances.stop() }
        let ports = try freePorts(5)
        let (http, https, admin) = (ports[0], ports[1], ports[2])
        let pebble = try await PebbleServer(httpPort: ports[3], tlsPort: ports[4])
        defer { pebble.stop() }
        let (config, _) = try Self.writeConfiguration(
            pebble: pebble, http: http, https: https, admin: admin, appPort: instances.port,
            domains: ["stuck.acme.test": "auto"]
        )
        let gateway = try BackgroundProcess(Self.binary, ["run", "--config", config])
        defer { gateway.stop() }

        var shown = ""
        #expect(await eventually(within: .seconds(30)) {
            shown = (try? Shell.run(Self.binary, ["ssl", "stuck.acme.test", "--config", config], allowFailure: true).output) ?? ""
            return shown.contains("automatic certificate: failed")
        }, "\(shown)\n\(gateway.log)")
        #expect(shown.contains("last error:"), "\(shown)")
        #expect(shown.contains("next try"), "\(shown)")
        let refused = try ServedCertificate.fetch(port: https, serverName: "stuck.acme.test", rootPath: pebble.issuingRootPath)
        #expect(refused.refused)
        let status = try Shell.run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                                            "--resolve", "stuck.acme.test:\(http):127.0.0.1", "http://stuck.acme.test:\(http)/echo"],
                                   allowFailure: true).output
        #expect(status == "200", "HTTP still works while there is no certificate")
    }

    @Test func togglingADomainThroughTheCLIServesAndWithdrawsItsCertificateWithoutARestart() async throws {
        let instances = try NodeInstances()
        defer { instances.stop() }
        let ports = try freePorts(3)
        let (http, https, admin) = (ports[0], ports[1], ports[2])
        let pebble = try await PebbleServer(httpPort: http, tlsPort: https)
        defer { pebble.stop() }
        let (config, token) = try Self.writeConfiguration(
            pebble: pebble, http: http, https: https, admin: admin, appPort: instances.port,
            domains: ["keep.acme.test": "auto", "toggle.acme.test": "off"]
        )

        let launched = Date()
        let gateway = try BackgroundProcess(Self.binary, ["run", "--config", config])
        defer { gateway.stop() }
        let root = pebble.issuingRootPath
        func served(_ name: String) throws -> ServedCertificate {
            try ServedCertificate.fetch(port: https, serverName: name, rootPath: root)
        }
        func cli(_ arguments: [String]) throws -> (status: Int32, output: String) {
            try Shell.run(Self.binary, arguments + ["--config", config], allowFailure: true)
        }
        func plainGET(_ name: String) throws -> String {
            try Shell.run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                                   "--resolve", "\(name):\(http):127.0.0.1", "http://\(name):\(http)/echo"],
                          allowFailure: true).output
        }

        // At start: keep.acme.test is ordered and served; toggle.acme.test is plain HTTP only.
        #expect(await eventually(within: .seconds(30)) { (try? served("keep.acme.test"))?.verified == true }, "\(gateway.log)")
        print("process start → ACME certificate served after \(String(format: "%.2f", Date().timeIntervalSince(launched))) s")
        let keptSerial = try served("keep.acme.test").serial
        #expect(try served("toggle.acme.test").refused)
        #expect(try plainGET("toggle.acme.test") == "200")

        // To auto through the CLI: the Pebble certificate is served without a restart.
        let pid = gateway.pid
        let started = Date()
        let toAuto = try cli(["ssl", "toggle.acme.test", "auto"])
        #expect(toAuto.status == 0, "\(toAuto.output)")
        #expect(await eventually(within: .seconds(30)) { (try? served("toggle.acme.test"))?.verified == true }, "\(gateway.log)")
        print("toggle to auto → new certificate served after \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        #expect(gateway.pid == pid && gateway.process.isRunning)
        let shown = try cli(["ssl", "toggle.acme.test"])
        #expect(shown.output.contains("ssl auto"), "\(shown.output)")
        #expect(shown.output.contains("automatic certificate: active"), "\(shown.output)")
        #expect(try plainGET("toggle.acme.test") == "308", "with a certificate, HTTP redirects to HTTPS")

        // To off: plain HTTP served, HTTPS refused for it.
        let toOff = try cli(["ssl", "toggle.acme.test", "off"])
        #expect(toOff.status == 0, "\(toOff.output)")
        #expect(try served("toggle.acme.test").refused)
        #expect(try plainGET("toggle.acme.test") == "200")

        // The other domain was never disturbed and kept its certificate.
        let kept = try served("keep.acme.test")
        #expect(kept.verified)
        #expect(kept.serial == keptSerial)

        // Metrics show the state of every automatic certificate and the reloads.
        let metrics = try Shell.run("curl", ["-s", "-H", "Authorization: Bearer \(try String(contentsOfFile: token, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))",
                                             "http://127.0.0.1:\(admin)/metrics"]).output
        #expect(metrics.contains("edge_router_certificate_state{domain=\"keep.acme.test\",state=\"active\"} 1"), "\(metrics)")
        #expect(metrics.contains("edge_router_config_reloads_total{outcome=\"applied\"} 2"), "\(metrics)")
        #expect(metrics.contains("edge_router_certificate_expiry_timestamp_seconds"), "\(metrics)")
        #expect(metrics.contains("edge_router_tls_handshakes_total{version=\"TLSv1.3\""), "\(metrics)")
        #expect(metrics.contains("edge_router_http_requests_total{domain=\"toggle.acme.test\",status=\"200\"} 2"), "\(metrics)")
        #expect(metrics.contains("edge_router_http_requests_total{domain=\"-\",status=\"308\"} 1"), "\(metrics)")
        #expect(metrics.contains("edge_router_upstream_latency_seconds_count{domain=\"toggle.acme.test\"} 2"), "\(metrics)")
        #expect(metrics.contains("edge_router_upstream_in_flight{"), "\(metrics)")
        #expect(metrics.contains("edge_router_tls_handshake_failures_total{reason=\"unrecognized_name\"}"), "\(metrics)")
    }
}
