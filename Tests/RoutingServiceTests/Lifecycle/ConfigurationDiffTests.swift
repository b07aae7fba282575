import Testing
@testable import RoutingService

@Suite struct ConfigurationDiffTests {
    static func base() -> GatewayConfiguration {
        GatewayConfiguration(
            services: [
                ServiceConfiguration(
                    name: "app", ports: [ServicePort(port: 3000, http: true), ServicePort(port: 7000)],
                    instances: [InstanceAddress(host: "10.0.0.1"), InstanceAddress(host: "10.0.0.2")]
                ),
                ServiceConfiguration(name: "db", ports: [ServicePort(port: 5432)], instances: [InstanceAddress(host: "10.0.1.1")]),
            ],
            domains: [
                DomainConfiguration(name: DomainName("a.test"), service: "app", port: 3000, ssl: .manual),
                DomainConfiguration(name: DomainName("b.test"), service: "app", port: 3000, ssl: .off),
            ],
            publicPorts: [
                PublicPortConfiguration(listen: ListenAddress(host: "127.0.0.1", port: 7000), transport: .tcp, service: "app", port: 7000),
            ]
        )
    }

    @Test func identicalConfigurationsHaveNoDiff() {
        let diff = ConfigurationDiff.between(Self.base(), Self.base())
        #expect(diff.isEmpty)
        #expect(diff.summary == "no change")
    }

    @Test func domainsAddedRemovedAndChanged() {
        var new = Self.base()
        new.domains.remove(at: 1)
        new.domains[0].ssl = .off
        new.domains[0].redirectHTTP = false
        new.domains.append(DomainConfiguration(name: DomainName("c.test"), service: "app", port: 3000, ssl: .auto))
        let diff = ConfigurationDiff.between(Self.base(), new)
        #expect(diff.domainsAdded == [DomainName("c.test")])
        #expect(diff.domainsRemoved == [DomainName("b.test")])
        #expect(diff.domainsChanged == [DomainName("a.test")])
        #expect(diff.domainsToDrain == [DomainName("a.test"), DomainName("b.test")])
        #expect(diff.summary == "+1 domain (c.test), -1 domain (b.test), ~1 domain (a.test)")
        #expect(diff.needsRestart.isEmpty)
    }

    @Test func instancesAndServices() {
        var new = Self.base()
        new.services[0].instances = [InstanceAddress(host: "10.0.0.2"), InstanceAddress(host: "10.0.0.3")]
        new.services.remove(at: 1)
        new.services.append(ServiceConfiguration(name: "web", ports: [ServicePort(port: 80, http: true)], instances: []))
        let diff = ConfigurationDiff.between(Self.base(), new)
        #expect(diff.instancesAdded == ["app": [InstanceAddress(host: "10.0.0.3")]])
        #expect(diff.instancesRemoved == ["app": [InstanceAddress(host: "10.0.0.1")]])
        #expect(diff.servicesAdded == ["web"])
        #expect(diff.servicesRemoved == ["db"])
        #expect(diff.servicesChanged.isEmpty)
        #expect(diff.domainsChanged.isEmpty, "instances alone do not change a domain's route")
    }

    @Test func servicePortsChangeTheDomainsOnThem() {
        var new = Self.base()
        new.services[0].ports[0].http = false
        let diff = ConfigurationDiff.between(Self.base(), new)
        #expect(diff.servicesChanged == ["app"])
        #expect(Set(diff.domainsChanged) == [DomainName("a.test"), DomainName("b.test")])
    }

    @Test func publicPortsAddedRemovedRetargeted() {
        var new = Self.base()
        new.publicPorts[0].service = "db"
        new.publicPorts[0].port = 5432
        new.publicPorts.append(PublicPortConfiguration(listen: ListenAddress(host: "127.0.0.1", port: 7001), transport: .udp, service: "app", port: 7000))
        var diff = ConfigurationDiff.between(Self.base(), new)
        #expect(diff.publicPortsRetargeted.map(\.listen.port) == [7000])
        #expect(diff.publicPortsAdded.map(\.listen.port) == [7001])
        #expect(diff.publicPortsRemoved.isEmpty)

        new.publicPorts.remove(at: 0)
        diff = ConfigurationDiff.between(Self.base(), new)
        #expect(diff.publicPortsRemoved.map(\.listen.port) == [7000])
        #expect(diff.summary.contains("-1 public port (tcp/127.0.0.1:7000)"))
    }

    @Test func listenersAndBalancersNeedARestart() {
        var new = Self.base()
        new.listen.https = ListenAddress(host: "0.0.0.0", port: 8443)
        new.admin.listen = ListenAddress(host: "127.0.0.1", port: 9902)
        new.balancers.http = 3
        let diff = ConfigurationDiff.between(Self.base(), new)
        #expect(diff.needsRestart.map(\.key) == ["listen.https", "admin.listen", "balancers.http"])
        #expect(!diff.isEmpty)
    }

    @Test func certificatesTimeoutsAndTokenFile() {
        var new = Self.base()
        new.certificates.defaultName = "a.test"
        new.timeouts.drain = .seconds(1)
        new.admin.tokenFile = "other.token"
        let diff = ConfigurationDiff.between(Self.base(), new)
        #expect(diff.certificatesChanged && diff.timeoutsChanged && diff.adminTokenFileChanged)
        #expect(diff.summary == "certificates settings, timeouts, admin token file")
    }

    @Test func versionsMatchIfMatchValues() {
        let version = ConfigurationVersion(number: 3, text: "x")
        #expect(version.description.hasPrefix("3-"))
        #expect(version.hash.count == 8)
        #expect(version.matches(version.description))
        #expect(version.matches("\"\(version)\""))
        #expect(version.matches("*"))
        #expect(!version.matches("2-\(version.hash)"))
        #expect(ConfigurationVersion(number: 3, text: "y") != version)
    }
}
