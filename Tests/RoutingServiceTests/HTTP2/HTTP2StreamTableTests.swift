import Testing
@testable import RoutingService

@Suite struct HTTP2StreamTableTests {
    private final class Box {
        let id: Int32
        init(_ id: Int32) { self.id = id }
    }

    /// Random inserts, replacements, removals and lookups, checked at every step against a Dictionary.
    /// Ids are drawn from a small range and from ids 32 or 64 apart, so runs collide, wrap around the
    /// end of the table, and removals have to shift entries back.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func behavesAsADictionary(seed: UInt64) {
        var generator = SplitMix64(seed: seed)
        var table = HTTP2StreamTable<Box>()
        var model: [Int32: Box] = [:]
        for step in 0..<20_000 {
            let id: Int32 = switch generator.next() % 3 {
            case 0: Int32(generator.next() % 64) * 2 + 1
            case 1: Int32(generator.next() % 8) * 64 + 1
            default: Int32(generator.next() % 8) * 32 + 31
            }
            switch generator.next() % 5 {
            case 0, 1:
                let box = Box(id)
                table[id] = box
                model[id] = box
            case 2:
                #expect(table.removeValue(forKey: id) === model.removeValue(forKey: id), "step \(step)")
            case 3:
                table[id] = nil
                model[id] = nil
            default:
                #expect(table[id] === model[id], "step \(step)")
            }
            #expect(table.count == model.count)
            if step % 500 == 0 {
                for (key, value) in model { #expect(table[key] === value, "step \(step), id \(key)") }
                #expect(Set(table.values.map { ObjectIdentifier($0) }) == Set(model.values.map { ObjectIdentifier($0) }))
            }
        }
        table.removeAll()
        #expect(table.isEmpty && table[1] == nil)
    }

    @Test func streamZeroIsNeverFound() {
        var table = HTTP2StreamTable<Box>()
        table[1] = Box(1)
        #expect(table[0] == nil)
        #expect(table.removeValue(forKey: 0) == nil)
        #expect(table.count == 1)
    }
}
