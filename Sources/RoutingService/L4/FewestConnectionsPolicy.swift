/// Picks the candidate with the fewest active sessions (open connections or flows), breaking
/// ties at random so equal instances share the load instead of the first one taking it all.
public struct FewestConnectionsPolicy: Sendable {
    public init() {}

    /// The index in `activeCounts` to use, nil when there is none.
    public func pick(activeCounts: [Int], using generator: inout some RandomNumberGenerator) -> Int? {
        guard let fewest = activeCounts.min() else { return nil }
        var seenTies = 0
        var chosen: Int?
        // Reservoir sampling over the tied minimums: one pass, each tie equally likely.
        for (index, count) in activeCounts.enumerated() where count == fewest {
            seenTies += 1
            if Int.random(in: 0..<seenTies, using: &generator) == 0 {
                chosen = index
            }
        }
        return chosen
    }

    public func pick(activeCounts: [Int]) -> Int? {
        var generator = SystemRandomNumberGenerator()
        return pick(activeCounts: activeCounts, using: &generator)
    }

    /// Picks among `instances` not yet in `excluded` (the ones that already failed this session)
    /// and counts the session on the chosen one at once, so concurrent picks see it.
    func acquire(from instances: [L4InstanceLoad], excluding excluded: Set<Int>) -> (index: Int, lease: L4Lease)? {
        let candidates = instances.indices.filter { !excluded.contains($0) }
        guard let picked = pick(activeCounts: candidates.map { instances[$0].activeCount }) else { return nil }
        let index = candidates[picked]
        return (index, instances[index].acquire())
    }
}
