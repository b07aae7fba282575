import Foundation
import Testing
@testable import RoutingService

@Suite struct ConfigurationLoaderTests {
    /// The repository root, from this file's place in `Tests/RoutingServiceTests/Config/`.
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func load(_ yaml: String, inventory: (any CertificateInventory)? = nil) -> Result<
        LoadedConfiguration, ConfigurationError
    > {
        ConfigurationLoader.load(yaml: yaml, file: "test.yaml", inventory: inventory)
    }

    static func problems(_ yaml: String, inventory: (any CertificateInventory)? = nil) -> [ConfigurationProblem] {
        guard case .failure(let error) = load(yaml, inventory: inventory) else { return [] }
        return error.problems
    }

    @Test func layerFourTimeoutsAreRead() throws {
        let loaded = try Self.load("timeouts: { l4Idle: 90s, udpFlowIdle: 500ms }\n").get()
        #expect(loaded.configuration.timeouts.l4Idle == .seconds(90))
        #expect(loaded.configuration.timeouts.udpFlowIdle == .milliseconds(500))
        #expect(Self.problems("timeouts: { udpFlowIdle: soon }\n").contains { $0.key == "timeouts.udpFlowIdle" })
    }

    @Test func exampleConfigurationPasses() throws {
        let path = Self.repositoryRoot.appendingPathComponent("Configs/edge-router.example.yaml").path
        let loaded = try ConfigurationLoader.load(path: path).get()
        let configuration = loaded.configuration
        #expect(configuration.listen.https == ListenAddress(host: "0.0.0.0", port: 443))
        #expect(configuration.acme?.directoryURL == "https://acme-v02.api.letsencrypt.org/directory")
        #expect(configuration.acme?.caBundle == "/path/to/ca.pem")
        #expect(configuration.certificates.defaultName == "app.example.com")
        #expect(configuration.timeouts == TimeoutConfiguration())
        let app = try #require(configuration.service(named: "app"))
        #expect(
            app.ports == [
                ServicePort(port: 3000, transport: .tcp, http: true),
                ServicePort(port: 7000, transport: .tcp, http: false),
                ServicePort(port: 5353, transport: .udp, http: false),
            ]
        )
        #expect(app.instances.map(\.description) == ["10.0.0.11", "10.0.0.12", "10.0.0.13"])
        #expect(
            app.healthCheck == HealthCheckConfiguration(path: "/healthz", interval: .seconds(2), timeout: .seconds(1))
        )
        #expect(configuration.domains.map(\.ssl) == [.auto, .manual, nil])
        #expect(configuration.domains.map(\.redirectHTTP) == [true, true, false])
        #expect(configuration.publicPorts.map(\.transport) == [.tcp, .udp])
        // The example's wildcard is `ssl: manual`: with a store that lacks its certificate, that is reported.
        let withStore = ConfigurationLoader.load(
            path: path,
            inventory: StaticCertificateInventory(names: ["app.example.com"])
        )
        guard case .failure(let error) = withStore else {
            Issue.record("the missing wildcard certificate was not reported")
            return
        }
        #expect(error.problems.map(\.key) == ["domains[1].ssl"])
    }

    @Test func demoConfigurationPasses() throws {
        let path = Self.repositoryRoot.appendingPathComponent("Configs/demo.yaml").path
        let inventory = StaticCertificateInventory(names: ["app.demo.test", "*.demo.test"])
        let configuration = try ConfigurationLoader.load(path: path, inventory: inventory).get().configuration
        #expect(
            configuration.listen
                == ListenConfiguration(
                    https: ListenAddress(host: "127.0.0.1", port: 8443),
                    http: ListenAddress(host: "127.0.0.1", port: 8080)
                )
        )
        #expect(
            configuration.admin
                == AdminConfiguration(
                    listen: ListenAddress(host: "127.0.0.1", port: 9901),
                    tokenFile: "run/admin.token"
                )
        )
        #expect(
            configuration.certificates
                == CertificateStoreConfiguration(directory: "run/certs", defaultName: "app.demo.test")
        )
        #expect(configuration.acme == nil)
        #expect(configuration.services.count == 1)
        #expect(configuration.services[0].instances.map(\.host) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        #expect(configuration.services[0].healthCheck?.path == "/healthz")
        #expect(configuration.domains.map(\.name.value) == ["app.demo.test", "*.demo.test", "plain.demo.test"])
        #expect(configuration.domains.map(\.ssl) == [.manual, .manual, .off])
        #expect(configuration.domains.map(\.redirectHTTP) == [true, true, false])
    }

    @Test func sourceMapPointsAtTheLineOfEachKey() throws {
        let yaml = """
            services:
              - name: app
                ports:
                  - { port: 3000, http: true }
                  - port: 7000
                instances: ["[::1]:3001", app.internal]
            domains:
              - { name: a.example.com, service: app, port: 3000, ssl: off }
              - name: b.example.com
                service: app
                port: 7000
            """
        let loaded = try Self.load(yaml).get()
        let map = loaded.sourceMap
        #expect(map.line(of: "services") == 1)
        #expect(
            map.line(of: ConfigurationKeyPath.root.appending("services")[0].appending("ports")[1].appending("port"))
                == 5
        )
        #expect(map.line(of: ConfigurationKeyPath.root.appending("domains")[1].appending("port")) == 11)
        // A key left out falls back to its entry's line.
        #expect(map.line(of: ConfigurationKeyPath.root.appending("domains")[1].appending("ssl")) == 9)
        #expect(!map.contains(ConfigurationKeyPath.root.appending("domains")[1].appending("ssl")))
        #expect(loaded.path == "test.yaml")
        #expect(
            loaded.configuration.services[0].instances == [
                InstanceAddress(host: "::1", port: 3001), InstanceAddress(host: "app.internal"),
            ]
        )
        #expect(loaded.configuration.domains[1].ssl == nil, "a domain on a non-HTTP port defaults to passthrough")
    }

    @Test func keyPathsPrintAsWritten() {
        let path = ConfigurationKeyPath.root.appending("services")[0].appending("ports")[1].appending("port")
        #expect(path.description == "services[0].ports[1].port")
        #expect(ConfigurationKeyPath("listen.https").description == "listen.https")
        #expect(path.parent?.description == "services[0].ports[1]")
    }

    @Test func defaultsFollowTheSpecification() throws {
        let yaml = """
            acme: { directory: "https://acme.test/dir" }
            services:
              - { name: app, ports: [{ port: 3000, http: true }, { port: 9000 }], instances: [10.0.0.1] }
            domains:
              - { name: App.Example.com, service: app, port: 3000 }
              - { name: b.example.com, service: app, port: 3000, ssl: manual, redirectHTTP: false }
              - { name: c.example.com, service: app, port: 9000 }
            """
        let configuration = try Self.load(yaml).get().configuration
        #expect(configuration.services[0].ports[1] == ServicePort(port: 9000, transport: .tcp, http: false))
        #expect(configuration.domains[0].name.value == "app.example.com")
        #expect(configuration.domains[0].ssl == .auto)
        #expect(configuration.domains[0].redirectHTTP)
        #expect(configuration.domains[1].ssl == .manual)
        #expect(!configuration.domains[1].redirectHTTP)
        #expect(configuration.domains[2].ssl == nil)
        #expect(configuration.balancers.http == 2)
        #expect(configuration.listen == ListenConfiguration())
    }

    @Test func problemDescriptionIsFileLineKeyReason() {
        let problem = ConfigurationProblem(file: "Configs/x.yaml", line: 14, key: "domains[1].ssl", reason: "bad")
        #expect(problem.description == "Configs/x.yaml:14: domains[1].ssl: bad")
        let error = ConfigurationError(problems: [
            ConfigurationProblem(file: "f", line: 9, key: "b", reason: "r2"),
            ConfigurationProblem(file: "f", line: 2, key: "a", reason: "r1"),
        ])
        #expect(error.description == "f:2: a: r1\nf:9: b: r2")
    }

    @Test func sslOnPassthroughDomainGivesTheSpecifiedReason() {
        let problems = Self.problems(
            """
            services:
              - { name: app, ports: [{ port: 7000 }], instances: [10.0.0.1] }
            domains:
              - { name: db.example.com, service: app, port: 7000, ssl: off }
            """
        )
        #expect(
            problems.map(\.description) == [
                "test.yaml:4: domains[0].ssl: ssl applies only to domains on HTTP ports; port 7000 of service \"app\" is not http"
            ]
        )
    }

    @Test func reasonsExplainTheRule() {
        let wildcard = Self.problems(
            """
            acme: { directory: "https://acme.test/dir" }
            services: [{ name: app, ports: [{ port: 80, http: true }], instances: [] }]
            domains: [{ name: "*.example.com", service: app, port: 80, ssl: auto }]
            """
        )
        #expect(wildcard.count == 1)
        #expect(wildcard.first?.reason.contains("wildcard names cannot use HTTP-01") == true)

        let admin = Self.problems("admin: { listen: \"[2001:db8::1]:9901\" }")
        #expect(admin.map(\.key) == ["admin.listen"])
        #expect(admin.first?.reason.contains("the admin API must not be open without a token") == true)
        #expect(Self.problems("admin: { listen: \"[::1]:9901\" }").isEmpty)
        #expect(Self.problems("admin: { listen: \"0.0.0.0:9901\", tokenFile: t }").isEmpty)

        let typo = Self.problems("services: [{ name: app, prots: [], instances: [] }]")
        #expect(typo.map(\.key) == ["services[0].ports", "services[0].prots"])
        #expect(typo.last?.reason.contains("did you mean \"ports\"?") == true)
    }

    @Test func skippedEntriesKeepTheirFileIndexInLaterProblems() {
        // domains[0] cannot be read at all, so the decoded list starts at file entry 1; the problem about
        // the second written domain must still say domains[1] and its own line.
        let problems = Self.problems(
            """
            services: [{ name: app, ports: [{ port: 80, http: true }], instances: [] }]
            domains:
              - { name: a.example.com, service: app }
              - { name: b.example.com, service: nope, port: 80, ssl: off }
            """
        )
        #expect(problems.map { "\($0.line) \($0.key)" } == ["3 domains[0].port", "4 domains[1].service"])
    }

    @Test func badSSLValueStillChecksTheRestOfTheEntry() {
        let problems = Self.problems(
            """
            services: [{ name: app, ports: [{ port: 80, http: true }], instances: [] }]
            domains:
              - { name: "-a.example.com", service: app, port: 81, ssl: yes }
            """
        )
        #expect(Set(problems.map(\.key)) == ["domains[0].name", "domains[0].port", "domains[0].ssl"])
    }

    @Test func syntaxErrorsHaveALine() {
        let problems = Self.problems("listen:\n  https: [0.0.0.0:443\n")
        #expect(problems.count == 1)
        #expect(problems.first?.key == "(syntax)")
        #expect(problems.first?.line ?? 0 > 0)
    }

    @Test func unreadableFileIsAProblem() {
        let path = "/nonexistent-\(UUID().uuidString)/edge-router.yaml"
        guard case .failure(let error) = ConfigurationLoader.load(path: path) else {
            Issue.record("loaded a missing file")
            return
        }
        #expect(error.description == "\(path):0: (file): cannot read the file: no such file")
    }

    @Test func configurationBuiltInCodeIsValidatedWithoutLines() {
        // What the admin API does with a change: validate the new value, no file behind it.
        var configuration = GatewayConfiguration(
            services: [ServiceConfiguration(name: "app", ports: [ServicePort(port: 3000, http: true)], instances: [])]
        )
        configuration.domains = [
            DomainConfiguration(name: DomainName("a.example.com"), service: "app", port: 3000, ssl: .off),
            DomainConfiguration(name: DomainName("a.example.com"), service: "app", port: 3000, ssl: .manual),
        ]
        let validator = ConfigurationValidator(
            file: "<admin>",
            inventory: StaticCertificateInventory(names: [String]())
        )
        let problems = validator.validate(configuration)
        #expect(
            problems.map(\.description) == [
                "<admin>:0: domains[1].name: domain \"a.example.com\" is already mapped by domains[0]",
                "<admin>:0: domains[1].ssl: ssl: manual needs a certificate for \"a.example.com\" in certs/, and there is none; import one with `edge-router certs import`",
            ]
        )
    }

    @Test func staticInventoryCoversNamesLikeACertificate() {
        let inventory = StaticCertificateInventory(names: ["a.example.com", "*.example.org"])
        #expect(inventory.hasCertificate(covering: DomainName("A.example.com")))
        #expect(inventory.hasCertificate(covering: DomainName("www.example.org")))
        #expect(inventory.hasCertificate(covering: DomainName("*.example.org")))
        #expect(!inventory.hasCertificate(covering: DomainName("a.b.example.org")))
        #expect(!inventory.hasCertificate(covering: DomainName("example.org")))
        #expect(!inventory.hasCertificate(covering: DomainName("*.example.com")))
    }
}
