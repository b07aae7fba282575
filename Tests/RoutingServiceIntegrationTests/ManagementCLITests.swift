import Foundation
import NIOHTTP1
import RoutingService
import TestSupport
import Testing

/// The management CLI (`domains`, `ssl`, `instances`, `certs`, `reload`) run as the built binary against
/// the built binary's `run`, with Node instances on 127.0.0.2–4: output, exit code, and the effect
/// (traffic through the gateway, the configuration file after the change).
@Suite("Management CLI", .serialized, .timeLimit(.minutes(3)))
struct ManagementCLITests {
    static func yaml(instances: NodeInstances) -> (GatewayProcess.Ports) -> String {
        { ports in
            """
            # CLI test configuration: this comment must survive write-backs.
            \(TestConfiguration.listenAndAdmin(http: ports.http, https: ports.https, admin: ports.admin, token: ports.tokenFile))
            certificates:
              directory: \(ports.directory)/certs
            timeouts:
              drain: 1s
            services:
              - name: app
                ports:
                  - { port: \(instances.port), http: true }
                instances: [127.0.0.2, 127.0.0.3]
            domains:
              - { name: stable.test, service: app, port: \(instances.port), ssl: off }   # never changes
              - { name: secure.test, service: app, port: \(instances.port), ssl: off }

            """
        }
    }

    /// A running gateway with its instances, stopped (both) whatever the body does.
    func withGateway(_ body: (GatewayProcess, NodeInstances) async throws -> Void) async throws {
        #expect(FileManager.default.isExecutableFile(atPath: GatewayProcess.binary), "build first: swift build --build-tests")
        let instances = try NodeInstances()
        defer { instances.stop() }
        let gateway = try GatewayProcess(yaml: Self.yaml(instances: instances))
        defer { gateway.remove() }
        try await gateway.start()
        try await body(gateway, instances)
    }

    func lines(_ text: String) -> [String] { text.split(separator: "\n").map(String.init) }

    @Test func domainsListSetRemove() async throws {
        try await withGateway { gateway, instances in
            let listed = try gateway.cli(["domains", "list"])
            #expect(listed.status == 0, "\(listed.standardError)")
            #expect(lines(listed.standardOutput).first?.hasPrefix("NAME") == true)
            #expect(lines(listed.standardOutput).contains { $0.hasPrefix("stable.test") && $0.contains("app") && $0.contains("off") })

            #expect(try gateway.get(host: "new.test").status == 404)
            let set = try gateway.cli(["domains", "set", "new.test", "--service", "app", "--port", "\(instances.port)", "--ssl", "off"])
            #expect(set.status == 0, "\(set.standardError)")
            #expect(set.standardOutput.hasPrefix("version 2-"), "\(set.standardOutput)")
            #expect(set.standardOutput.hasSuffix(": +1 domain (new.test)\n"), "\(set.standardOutput)")
            let routed = try gateway.get(host: "new.test")
            #expect(routed.status == 200)
            #expect(routed.body.contains("\"instance\""))
            #expect(gateway.fileText.contains("  - { name: new.test, service: app, port: \(instances.port), ssl: off }"))
            #expect(gateway.fileText.contains("# CLI test configuration: this comment must survive write-backs."))
            #expect(try ConfigurationLoader.load(path: gateway.configPath).get().configuration.domains.count == 3)
            #expect(try gateway.cli(["domains", "list"]).standardOutput.contains("new.test"))

            let removed = try gateway.cli(["domains", "remove", "new.test"])
            #expect(removed.status == 0, "\(removed.standardError)")
            #expect(removed.standardOutput.hasSuffix(": -1 domain (new.test)\n"), "\(removed.standardOutput)")
            #expect(try gateway.get(host: "new.test").status == 404)
            #expect(!gateway.fileText.contains("new.test"))
            #expect(try gateway.get(host: "stable.test").status == 200)

            let missing = try gateway.cli(["domains", "remove", "never.test"])
            #expect(missing.status != 0)
            #expect(missing.standardError.contains("never.test"), "\(missing.standardError)")
        }
    }

    /// `certs import` through the API is served at once; `ssl secure.test manual` then needs no restart;
    /// `ssl secure.test` shows the state; `ssl … off` goes back to plain HTTP.
    @Test func sslModesAndCertificatesThroughTheAPI() async throws {
        try await withGateway { gateway, _ in
            let authority = try TestCertificateAuthority()
            defer { try? FileManager.default.removeItem(at: authority.directory) }
            let leaf = try authority.issue(["secure.test"])

            // manual without a certificate: refused with the problem, nothing changes.
            let early = try gateway.cli(["ssl", "secure.test", "manual"])
            #expect(early.status != 0)
            #expect(early.standardError.contains("\(gateway.configPath):"), "\(early.standardError)")
            #expect(early.standardError.contains("ssl: manual needs a certificate"), "\(early.standardError)")

            let imported = try gateway.cli(["certs", "import", "--cert", leaf.chainPath, "--key", leaf.keyPath])
            #expect(imported.status == 0, "\(imported.standardError)")
            let importLines = lines(imported.standardOutput)
            #expect(importLines.first == "stored secure.test in folder secure.test via the admin API of the running gateway at 127.0.0.1:\(gateway.ports.admin)", "\(imported.standardOutput)")
            #expect(importLines.last == "served at once: the gateway swapped it into its TLS front")
            #expect(FileManager.default.fileExists(atPath: gateway.ports.directory + "/certs/secure.test/cert.pem"))

            let listed = try gateway.cli(["certs", "list"])
            #expect(listed.status == 0, "\(listed.standardError)")
            let listLines = lines(listed.standardOutput)
            #expect(listLines.first == "certificates via the admin API of the running gateway at 127.0.0.1:\(gateway.ports.admin)")
            #expect(listLines.count == 3, "\(listed.standardOutput)")
            #expect(listLines.last?.hasPrefix("secure.test") == true)
            #expect(listLines.last?.contains("manual  CN=edge-router test CA") == true, "\(listed.standardOutput)")

            let manual = try gateway.cli(["ssl", "secure.test", "manual"])
            #expect(manual.status == 0, "\(manual.standardError)")
            #expect(manual.standardOutput.contains("~1 domain (secure.test)"), "\(manual.standardOutput)")
            #expect(gateway.fileText.contains("- { name: secure.test, service: app, port:"))
            #expect(gateway.fileText.contains("ssl: manual"))

            let shown = try gateway.cli(["ssl", "secure.test"])
            #expect(shown.status == 0, "\(shown.standardError)")
            #expect(lines(shown.standardOutput).first == "secure.test: ssl manual, redirectHTTP true")
            #expect(shown.standardOutput.contains("certificate secure.test (manual)"), "\(shown.standardOutput)")

            // Served at once, with the imported certificate (verified against the test CA), no restart.
            let https = try Shell.run("curl", [
                "-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                "--resolve", "secure.test:\(gateway.ports.https):127.0.0.1", "--cacert", authority.caCertificatePath,
                "https://secure.test:\(gateway.ports.https)/echo",
            ], allowFailure: true)
            #expect(https.output == "200", "\(https)")
            #expect(try gateway.get(host: "secure.test").status == 308, "plain HTTP now redirects")

            // A replacement imported through the CLI is swapped into the TLS front by the import itself
            // (no configuration change follows): the very next handshake shows the new issuer.
            let second = try TestCertificateAuthority(commonName: "edge-router second CA")
            defer { try? FileManager.default.removeItem(at: second.directory) }
            let replacement = try second.issue(["secure.test"])
            let replaced = try gateway.cli(["certs", "import", "--cert", replacement.chainPath, "--key", replacement.keyPath])
            #expect(replaced.status == 0, "\(replaced.standardError)")
            func handshake(trusting authority: TestCertificateAuthority) throws -> String {
                try Shell.run("curl", [
                    "-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                    "--resolve", "secure.test:\(gateway.ports.https):127.0.0.1", "--cacert", authority.caCertificatePath,
                    "https://secure.test:\(gateway.ports.https)/echo",
                ], allowFailure: true).output
            }
            #expect(try handshake(trusting: second) == "200", "the imported certificate is served at once")
            #expect(try handshake(trusting: authority) != "200", "the old one is not served any more")

            let off = try gateway.cli(["ssl", "secure.test", "off"])
            #expect(off.status == 0, "\(off.standardError)")
            #expect(try gateway.get(host: "secure.test").status == 200)
            #expect(lines(try gateway.cli(["ssl", "secure.test"]).standardOutput).first == "secure.test: ssl off, redirectHTTP false")
            let bad = try gateway.cli(["ssl", "secure.test", "sometimes"])
            #expect(bad.status != 0)
            #expect(bad.standardError.contains("the mode must be auto, manual or off, not sometimes"))
        }
    }

    @Test func instancesListAddRemove() async throws {
        try await withGateway { gateway, instances in
            let listed = try gateway.cli(["instances", "app", "list"])
            #expect(listed.status == 0, "\(listed.standardError)")
            let rows = lines(listed.standardOutput)
            #expect(rows.count == 3, "\(listed.standardOutput)")
            #expect(rows.dropFirst().map { $0.split(separator: " ").first.map(String.init) } == ["127.0.0.2", "127.0.0.3"])

            let added = try gateway.cli(["instances", "app", "add", "127.0.0.4"])
            #expect(added.status == 0, "\(added.standardError)")
            #expect(added.standardOutput.contains("+1 instance (app: 127.0.0.4)"), "\(added.standardOutput)")
            #expect(gateway.fileText.contains("instances: [127.0.0.2, 127.0.0.3, 127.0.0.4]"))
            let counts = try Curl.instanceCounts(url: gateway.plainURL, host: "stable.test", count: 60, parallel: 4)
            #expect((counts["c"] ?? 0) > 0, "the added instance takes requests at once: \(counts)")

            let removed = try gateway.cli(["instances", "app", "remove", "127.0.0.2"])
            #expect(removed.status == 0, "\(removed.standardError)")
            #expect(removed.standardOutput.contains("-1 instance (app: 127.0.0.2)"), "\(removed.standardOutput)")
            #expect(gateway.fileText.contains("instances: [127.0.0.3, 127.0.0.4]"))
            let after = try Curl.instanceCounts(url: gateway.plainURL, host: "stable.test", count: 40, parallel: 4)
            #expect(after["a"] == 0 && (after["b"] ?? 0) + (after["c"] ?? 0) == 40, "\(after)")
            #expect(lines(try gateway.cli(["instances", "app", "list"]).standardOutput).count == 3)

            let unknown = try gateway.cli(["instances", "nope", "add", "127.0.0.9"])
            #expect(unknown.status != 0)
            #expect(unknown.standardError.contains("nope"), "\(unknown.standardError)")
            _ = instances
        }
    }

    @Test func reloadAppliesTheFileAndRefusesABrokenOne() async throws {
        try await withGateway { gateway, instances in
            let good = gateway.fileText
            try AtomicFile.write(Array((good + "  - { name: hand.test, service: app, port: \(instances.port), ssl: off }\n").utf8), to: gateway.configPath)
            #expect(try gateway.get(host: "hand.test").status == 404, "the gateway runs with --no-watch")
            let reloaded = try gateway.cli(["reload"])
            #expect(reloaded.status == 0, "\(reloaded.standardError)")
            #expect(reloaded.standardOutput.hasPrefix("version 2-"), "\(reloaded.standardOutput)")
            #expect(reloaded.standardOutput.hasSuffix(": +1 domain (hand.test)\n"))
            #expect(try gateway.get(host: "hand.test").status == 200)

            // A domain on an unknown service and a bad port: refused with both problems, FILE:LINE: KEY: reason.
            let broken = good + "  - { name: broken.test, service: ghost, port: \(instances.port), ssl: off }\n"
                + "  - { name: worse.test, service: app, port: 70000, ssl: off }\n"
            try AtomicFile.write(Array(broken.utf8), to: gateway.configPath)
            let refused = try gateway.cli(["reload"])
            #expect(refused.status != 0)
            let problems = lines(refused.standardError).filter { $0.hasPrefix(gateway.configPath + ":") }
            #expect(problems.count >= 2, "\(refused.standardError)")
            #expect(problems.contains { $0.hasPrefix("\(gateway.configPath):20: domains[2].service: ") && $0.contains("ghost") }, "\(problems)")
            #expect(problems.contains { $0.hasPrefix("\(gateway.configPath):21: domains[3].port: ") }, "\(problems)")
            for problem in problems {
                let parts = problem.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
                #expect(parts.count == 4 && Int(parts[1]) != nil, "\(problem)")
            }
            #expect(try gateway.get(host: "stable.test").status == 200, "traffic still flows on the running configuration")
            #expect(try gateway.get(host: "hand.test").status == 200)
            #expect(try gateway.get(host: "broken.test").status == 404)
        }
    }

    @Test func errorsNameTheCause() async throws {
        try await withGateway { gateway, instances in
            // An invalid change through the API: the FILE:LINE problem list, non-zero exit, nothing changed.
            let invalid = try gateway.cli(["domains", "set", "bad.test", "--service", "nope", "--port", "\(instances.port)"])
            #expect(invalid.status != 0)
            #expect(invalid.standardError.contains("\(gateway.configPath):20: domains[2].service: "), "\(invalid.standardError)")
            #expect(invalid.standardError.contains("nope"))
            #expect(!gateway.fileText.contains("bad.test"))

            let wrongToken = gateway.directory.appendingPathComponent("wrong.token").path
            try Data("not-the-token\n".utf8).write(to: URL(fileURLWithPath: wrongToken))
            for arguments in [["domains", "list"], ["reload"], ["instances", "app", "list"], ["ssl", "stable.test"], ["certs", "list"]] {
                let refused = try gateway.cli(arguments + ["--token-file", wrongToken])
                #expect(refused.status != 0, "\(arguments)")
                #expect(refused.standardError.contains("the admin token was refused by 127.0.0.1:\(gateway.ports.admin)"), "\(arguments): \(refused.standardError)")
            }

            let nowhere = try FreePort.find(host: "127.0.0.1")
            for arguments in [["domains", "list"], ["reload"], ["instances", "app", "add", "127.0.0.4"], ["ssl", "stable.test", "off"]] {
                let down = try gateway.cli(arguments + ["--admin", "127.0.0.1:\(nowhere)"])
                #expect(down.status != 0, "\(arguments)")
                #expect(down.standardError.contains("edge-router is not running at 127.0.0.1:\(nowhere)"), "\(arguments): \(down.standardError)")
            }
            // `certs` falls back to the store itself when no gateway answers, and says so.
            let direct = try gateway.cli(["certs", "list", "--admin", "127.0.0.1:\(nowhere)"])
            #expect(direct.status == 0, "\(direct.standardError)")
            #expect(lines(direct.standardOutput).first == "certificates directly in the certificate store \(gateway.ports.directory)/certs (no gateway answers at 127.0.0.1:\(nowhere))")
            let explicit = try gateway.cli(["certs", "list", "--directory", "elsewhere"])
            #expect(lines(explicit.standardOutput).first == "certificates directly in the certificate store \(gateway.ports.directory)/elsewhere (--directory given)")

            gateway.stop()
            let stopped = try gateway.cli(["domains", "list"])
            #expect(stopped.status != 0)
            #expect(stopped.standardError.contains("edge-router is not running at 127.0.0.1:\(gateway.ports.admin)"), "\(stopped.standardError)")
        }
    }
}
