import Testing
@testable import RoutingService

/// A seeded generator so tie-breaking is checked deterministically.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct FewestConnectionsPolicyTests {
    @Test func picksTheFewest() {
        var generator = SplitMix64(state: 1)
        let policy = FewestConnectionsPolicy()
        #expect(policy.pick(activeCounts: [5, 2, 9], using: &generator) == 1)
        #expect(policy.pick(activeCounts: [0], using: &generator) == 0)
        #expect(policy.pick(activeCounts: [], using: &generator) == nil)
    }

    @Test func tiesAreBrokenAtRandomNotAlwaysTheFirst() {
        var generator = SplitMix64(state: 42)
        let policy = FewestConnectionsPolicy()
        var picks = [0, 0, 0, 0]
        for _ in 0..<3_000 {
            picks[policy.pick(activeCounts: [1, 3, 1, 1], using: &generator)!] += 1
        }
        #expect(picks[1] == 0)
        for index in [0, 2, 3] {
            #expect((800...1_200).contains(picks[index]), "tie \(index) picked \(picks[index]) times of 3000")
        }
    }

    @Test func acquireCountsAtOnceSoConcurrentPicksSpread() {
        let registry = L4ConnectionRegistry()
        let service = ServiceConfiguration(
            name: "db",
            ports: [ServicePort(port: 7000)],
            instances: [InstanceAddress(host: "10.0.0.1"), InstanceAddress(host: "10.0.0.2")]
        )
        let target = registry.target(service: service, port: 7000, transport: .tcp)
        let policy = FewestConnectionsPolicy()
        var leases: [L4Lease] = []
        for _ in 0..<10 {
            leases.append(policy.acquire(from: target.instances, excluding: [])!.lease)
        }
        #expect(target.instances.map(\.activeCount) == [5, 5])
        // Excluded instances (failed connects) are not picked even when they are the least busy.
        leases.append(policy.acquire(from: target.instances, excluding: [1])!.lease)
        #expect(target.instances.map(\.activeCount) == [6, 5])
        #expect(policy.acquire(from: target.instances, excluding: [0, 1]) == nil)
        leases[0].release()
        leases[0].release()  // idempotent
        #expect(target.instances.map(\.activeCount).reduce(0, +) == 10)
        leases.removeAll()  // dropped leases release themselves
        #expect(target.instances.map(\.activeCount) == [0, 0])
    }

    @Test func countersAreSharedPerEndpointAcrossTargets() {
        let registry = L4ConnectionRegistry()
        let old = ServiceConfiguration(name: "db", ports: [], instances: [InstanceAddress(host: "10.0.0.1")])
        let reloaded = ServiceConfiguration(
            name: "db", ports: [], instances: [InstanceAddress(host: "10.0.0.1"), InstanceAddress(host: "10.0.0.2")]
        )
        let lease = registry.target(service: old, port: 7000, transport: .tcp).instances[0].acquire()
        let newTarget = registry.target(service: reloaded, port: 7000, transport: .tcp)
        #expect(newTarget.instances.map(\.activeCount) == [1, 0], "a reload sees the connections still open")
        #expect(registry.activeCount(for: ListenAddress(host: "10.0.0.1", port: 7000), transport: .udp) == 0)
        lease.release()
        #expect(newTarget.instances[0].activeCount == 0)
    }
}
