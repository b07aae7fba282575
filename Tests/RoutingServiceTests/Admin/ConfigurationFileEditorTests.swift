import Testing
@testable import RoutingService

@Suite struct ConfigurationFileEditorTests {
    static let text = """
        # Top comment: kept.
        listen:
          https: 127.0.0.1:8443   # the TLS listener
          http: 127.0.0.1:8080
        services:
          - name: app
            ports:
              - { port: 3000, http: true }
            instances: [127.0.0.2, 127.0.0.3]   # two for now
          - name: db
            ports:
              - { port: 5432 }
            instances:
              - 127.0.0.5   # primary
              - 127.0.0.6
        # The domains, one per line.
        domains:
          - { name: a.test, service: app, port: 3000, ssl: off }   # first
          - { name: "*.wild.test", service: app, port: 3000, ssl: off }
        # Trailing comment: kept.

        """

    static func loaded(_ text: String = text) throws -> LoadedConfiguration {
        try ConfigurationLoader.load(yaml: text, file: "test.yaml").get()
    }

    /// Edits, checks that the text decodes to the edited value and keeps every comment.
    func edited(_ edit: ConfigurationEdit, from text: String = text) throws -> String {
        let loaded = try Self.loaded(text)
        let result = try #require(ConfigurationFileEditor.edit(text, loaded: loaded, edit))
        let reread = try Self.loaded(result)
        #expect(reread.configuration == (try edit.applied(to: loaded.configuration)))
        for comment in ["# Top comment: kept.", "# the TLS listener", "# The domains, one per line.", "# Trailing comment: kept.", "# primary"] {
            #expect(result.contains(comment), "lost \(comment)")
        }
        return result
    }

    @Test func replacesADomainLineKeepingItsComment() throws {
        let result = try edited(.setDomain(DomainConfiguration(name: DomainName("a.test"), service: "app", port: 3000, ssl: .off, redirectHTTP: false)))
        #expect(result.contains("  - { name: a.test, service: app, port: 3000, ssl: off }   # first"))
        let changed = try edited(.setDomain(DomainConfiguration(name: DomainName("*.wild.test"), service: "db", port: 5432, ssl: nil)))
        #expect(changed.contains("  - { name: \"*.wild.test\", service: db, port: 5432 }\n"))
    }

    @Test func appendsANewDomainAfterTheLastOne() throws {
        let result = try edited(.setDomain(DomainConfiguration(name: DomainName("new.test"), service: "app", port: 3000, ssl: .off)))
        #expect(result.contains("ssl: off }\n  - { name: new.test, service: app, port: 3000, ssl: off }\n# Trailing comment: kept."))
    }

    @Test func removesADomainLineAndTheLastOneLeavesAnEmptyList() throws {
        let once = try edited(.removeDomain(DomainName("a.test")))
        #expect(!once.contains("a.test,"))
        let twice = try edited(.removeDomain(DomainName("*.wild.test")), from: once)
        #expect(twice.contains("domains: []"))
        let again = try edited(.setDomain(DomainConfiguration(name: DomainName("back.test"), service: "app", port: 3000, ssl: .off)), from: twice)
        #expect(again.contains("domains:\n  - { name: back.test"))
    }

    @Test func editsFlowAndBlockInstanceLists() throws {
        let added = try edited(.addInstance(service: "app", InstanceAddress(host: "127.0.0.4", port: 3001)))
        #expect(added.contains("    instances: [127.0.0.2, 127.0.0.3, \"127.0.0.4:3001\"]   # two for now")
            || added.contains("    instances: [127.0.0.2, 127.0.0.3, 127.0.0.4:3001]   # two for now"))
        let removed = try edited(.removeInstance(service: "app", InstanceAddress(host: "127.0.0.2")))
        #expect(removed.contains("    instances: [127.0.0.3]   # two for now"))
        let block = try edited(.addInstance(service: "db", InstanceAddress(host: "127.0.0.7")))
        #expect(block.contains("      - 127.0.0.6\n      - 127.0.0.7\n"))
        let blockRemoved = try edited(.removeInstance(service: "db", InstanceAddress(host: "127.0.0.6")))
        #expect(!blockRemoved.contains("127.0.0.6"))
    }

    @Test func aBlockStyleDomainIsNotEditedInPlace() throws {
        let text = """
            services:
              - name: app
                ports: [{ port: 3000, http: true }]
                instances: [127.0.0.2]
            domains:
              - name: a.test
                service: app
                port: 3000
                ssl: off

            """
        let loaded = try Self.loaded(text)
        #expect(ConfigurationFileEditor.edit(text, loaded: loaded, .removeDomain(DomainName("a.test"))) == nil)
    }

    @Test func theEmitterRoundTrips() throws {
        let configuration = try Self.loaded().configuration
        let emitted = ConfigurationEmitter.yaml(configuration)
        #expect(try Self.loaded(emitted).configuration == configuration)
    }

    @Test func editsNamingAbsentThingsFail() {
        let configuration = GatewayConfiguration()
        #expect(throws: ConfigurationEditError.notFound("no domain x.test in the configuration")) {
            try ConfigurationEdit.removeDomain(DomainName("x.test")).applied(to: configuration)
        }
    }

    @Test func tokensCompareInConstantTimeAndExactly() {
        #expect(AdminToken.constantTimeEqual(Array("secret".utf8), Array("secret".utf8)))
        #expect(!AdminToken.constantTimeEqual(Array("secret".utf8), Array("secreT".utf8)))
        #expect(!AdminToken.constantTimeEqual(Array("secret".utf8), Array("secret2".utf8)))
        #expect(!AdminToken.constantTimeEqual([], Array("a".utf8)))
    }
}
