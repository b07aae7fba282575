import Foundation
import NIOHTTP1
import RoutingService
import Synchronization
import TestSupport
import Testing

/// A real crash during write-back: the built binary takes domain changes through the admin API one
/// after another, and is `kill -9`ed at a random moment. Each round, the configuration file must be
/// exactly the state after the last acknowledged change or after the one in flight (old or new, never
/// a mix), must load, and a restart must serve what it says. A leftover temporary file is hidden and
/// never read as the configuration.
@Suite("Write-back survives kill -9", .serialized, .timeLimit(.minutes(3)))
struct WriteBackCrashTests {
    enum Change: Sendable {
        case add(String)
        case remove(String)
    }

    /// Round `round`'s changes: add a domain, add another, remove the one before, and so on.
    static func change(_ step: Int, round: Int) -> Change {
        step % 3 == 2 ? .remove("r\(round)-\(step - 1).test") : .add("r\(round)-\(step).test")
    }

    static func domains(after steps: Int, round: Int, from start: Set<String>) -> Set<String> {
        var domains = start
        for step in 0..<steps {
            switch change(step, round: round) {
            case .add(let name): domains.insert(name)
            case .remove(let name): domains.remove(name)
            }
        }
        return domains
    }

    static func domainNames(inFile path: String) throws -> Set<String> {
        let loaded = try ConfigurationLoader.load(path: path).get()
        return Set(loaded.configuration.domains.map(\.name.value))
    }

    @Test func killedDuringWriteBackLeavesOldOrNewAndRestartsOnIt() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: GatewayProcess.binary), "build first: swift build --build-tests")
        let instances = try NodeInstances()
        defer { instances.stop() }
        let gateway = try GatewayProcess(yaml: ManagementCLITests.yaml(instances: instances))
        defer { gateway.remove() }

        var caughtInFlight = 0
        var leftovers = 0
        let rounds = 6
        for round in 0..<rounds {
            let before = try Self.domainNames(inFile: gateway.configPath)
            try await gateway.start()
            // The restart serves the file it finds: the last round's survivors route, the GET shows the text.
            let running = try await gateway.admin.request(.GET, "/config")
            #expect(running.json?["yaml"] as? String == gateway.fileText, "round \(round): the restart runs the file")
            for name in before.sorted().suffix(2) {
                #expect(try gateway.get(host: name).status == 200, "round \(round): \(name) routes after restart")
            }

            let acknowledged = Atomic<Int>(0)
            let admin = gateway.admin
            let port = instances.port
            let changes = Task {
                for step in 0..<10_000 {
                    let response: AdminClient.Response
                    do {
                        switch Self.change(step, round: round) {
                        case .add(let name):
                            response = try await admin.request(.PUT, "/domains/\(name)", json: ["service": "app", "port": port, "ssl": "off"])
                        case .remove(let name):
                            response = try await admin.request(.DELETE, "/domains/\(name)")
                        }
                    } catch {
                        return  // killed
                    }
                    guard response.status == 200 else {
                        Issue.record("round \(round) step \(step): \(response.status) \(response.text)")
                        return
                    }
                    acknowledged.store(step + 1, ordering: .sequentiallyConsistent)
                }
            }
            // The kill falls at a random point after the first acknowledged change, not at a fixed time
            // after the start: on a loaded CI machine the first write-back (with its fsyncs) can take longer
            // than any fixed head start, and a kill before it proves nothing.
            let firstAcknowledged = ContinuousClock.now + .seconds(20)
            while acknowledged.load(ordering: .sequentiallyConsistent) == 0, ContinuousClock.now < firstAcknowledged {
                try await Task.sleep(for: .milliseconds(5))
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...550)))
            gateway.kill9()
            await changes.value
            let acked = acknowledged.load(ordering: .sequentiallyConsistent)
            #expect(acked > 0, "round \(round): some changes went through before the kill")

            // Old or new: the state after the acknowledged changes, or after the one in flight.
            let found = try Self.domainNames(inFile: gateway.configPath)
            let old = Self.domains(after: acked, round: round, from: before)
            let new = Self.domains(after: acked + 1, round: round, from: before)
            #expect(found == old || found == new, "round \(round): after \(acked) acknowledged changes the file has \(found.sorted())")
            if found == new && old != new { caughtInFlight += 1 }
            #expect(gateway.fileText.contains("# CLI test configuration: this comment must survive write-backs."))

            let names = try FileManager.default.contentsOfDirectory(atPath: gateway.directory.path)
            let temporary = names.filter { $0.contains(".tmp-") }
            #expect(temporary.allSatisfy { $0.hasPrefix(".edge-router.yaml.tmp-") }, "\(temporary)")
            leftovers += temporary.count
        }
        // One more restart on the last file.
        try await gateway.start()
        let final = try Self.domainNames(inFile: gateway.configPath)
        let listed = try await gateway.admin.request(.GET, "/domains")
        let served = Set((listed.json?["domains"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
        #expect(served == final)
        print("write-back crash: \(rounds) rounds, \(caughtInFlight) killed after the write but before the answer, \(leftovers) temporary files left behind (hidden, never loaded)")
    }
}
