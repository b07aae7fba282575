/// Picks the candidate with the fewest requests in flight; ties are broken uniformly at random
/// (reservoir sampling, one pass, no allocation). Candidates that are not available (marked down)
/// are skipped; when none is available it falls back to all of them, since a passive mark can be
/// stale and trying beats refusing.
public struct LeastBusyPolicy: Sendable {
    public init() {}

    /// Candidates are objects (instances, balancers), each looked at through a guaranteed reference, not
    /// retained: their in-flight counts are atomics, and the optimiser keeps a retained object's retain and
    /// release around every atomic load (two operations per candidate per request). The collection keeps
    /// them alive meanwhile.
    public func choose<C: Collection, R: RandomNumberGenerator>(
        from candidates: C,
        using generator: inout R,
        inFlight: (C.Element) -> Int,
        isAvailable: (C.Element) -> Bool = { _ in true }
    ) -> C.Index? where C.Element: AnyObject {
        choose(from: candidates, using: &generator, inFlight: inFlight, filter: isAvailable)
            ?? choose(from: candidates, using: &generator, inFlight: inFlight, filter: { _ in true })
    }

    private func choose<C: Collection, R: RandomNumberGenerator>(
        from candidates: C,
        using generator: inout R,
        inFlight: (C.Element) -> Int,
        filter: (C.Element) -> Bool
    ) -> C.Index? where C.Element: AnyObject {
        var best: C.Index?
        var bestLoad = Int.max
        var ties = 0
        var index = candidates.startIndex
        while index != candidates.endIndex {
            Unmanaged.passUnretained(candidates[index])._withUnsafeGuaranteedRef { candidate in
                guard filter(candidate) else { return }
                let load = inFlight(candidate)
                if load < bestLoad {
                    best = index
                    bestLoad = load
                    ties = 1
                } else if load == bestLoad {
                    ties += 1
                    if UInt64.random(in: 0..<UInt64(ties), using: &generator) == 0 { best = index }
                }
            }
            candidates.formIndex(after: &index)
        }
        return best
    }
}

/// A small, fast, non-cryptographic generator (SplitMix64) for tie-breaking on the request path,
/// where the system generator's syscall would cost more than the choice is worth.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
