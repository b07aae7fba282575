import NIOCore
import Testing
@testable import RoutingService

@Suite struct LeastBusyPolicyTests {
    final class Candidate {
        let name: String
        let inFlight: Int
        let up: Bool

        init(name: String, inFlight: Int, up: Bool = true) {
            self.name = name
            self.inFlight = inFlight
            self.up = up
        }
    }

    private func choose(_ candidates: [Candidate], seed: UInt64) -> String? {
        var generator = SplitMix64(seed: seed)
        let index = LeastBusyPolicy().choose(from: candidates, using: &generator, inFlight: \.inFlight, isAvailable: \.up)
        return index.map { candidates[$0].name }
    }

    @Test func picksTheFewestInFlight() {
        let candidates = [Candidate(name: "a", inFlight: 3), Candidate(name: "b", inFlight: 1), Candidate(name: "c", inFlight: 2)]
        for seed in 0..<50 { #expect(choose(candidates, seed: UInt64(seed)) == "b") }
    }

    @Test func breaksTiesAtRandomAndEvenly() {
        let candidates = [Candidate(name: "a", inFlight: 1), Candidate(name: "b", inFlight: 1), Candidate(name: "c", inFlight: 1),
                          Candidate(name: "d", inFlight: 5)]
        var counts: [String: Int] = [:]
        for seed in 0..<3000 { counts[choose(candidates, seed: UInt64(seed) &* 7919) ?? "-", default: 0] += 1 }
        #expect(counts["d"] == nil)
        for name in ["a", "b", "c"] {
            #expect((900...1100).contains(counts[name] ?? 0), "\(name) chosen \(counts[name] ?? 0) of 3000")
        }
    }

    @Test func skipsDownInstancesAndFallsBackWhenAllAreDown() {
        let candidates = [Candidate(name: "a", inFlight: 0, up: false), Candidate(name: "b", inFlight: 9)]
        #expect(choose(candidates, seed: 1) == "b")
        let allDown = [Candidate(name: "a", inFlight: 4, up: false), Candidate(name: "b", inFlight: 2, up: false)]
        #expect(choose(allDown, seed: 1) == "b")
        #expect(choose([], seed: 1) == nil)
    }

    @Test func balancerSkipsMarkedDownInstanceAndTheExcludedOne() {
        let balancer = HTTPBalancer(index: 0)
        let endpoints = (2...4).map { ListenAddress(host: "127.0.0.\($0)", port: 3000) }
        let instances = balancer.registry.instances(for: endpoints)
        var generator = SplitMix64(seed: 42)
        let now = NIODeadline.now()
        instances[0].markDown(until: now + .seconds(5))
        instances[1].requestStarted()
        #expect(balancer.pickInstance(from: instances, excluding: nil, now: now, using: &generator) === instances[2])
        #expect(balancer.pickInstance(from: instances, excluding: instances[2], now: now, using: &generator) === instances[1])
        // Marks expire on their own.
        #expect(instances[0].isAvailable(at: now + .seconds(6)))
        // The registry hands back the same objects for the same endpoints: counts survive a reload.
        #expect(balancer.registry.instances(for: [endpoints[1]])[0] === instances[1])
        #expect(balancer.registry.instances(for: [endpoints[1]])[0].inFlight == 1)
    }
}
