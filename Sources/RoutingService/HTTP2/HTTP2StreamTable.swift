/// The open streams of one HTTP/2 connection by stream id, looked up by every frame callback.
///
/// Open addressing on the id itself: a client's stream ids are odd and rise by two (RFC 9113 §5.1.1),
/// so `id >> 1` puts the streams open at once in neighbouring slots, with no hashing and no probing to
/// speak of. A `Dictionary` hashed each id with SipHash several times per stream. Linear probing,
/// with deletion by shifting the rest of a run back, so a lookup never meets a tombstone. The table
/// is made at the first insert and grows past half full.
struct HTTP2StreamTable<Value: AnyObject> {
    private struct Slot {
        /// 0 marks a free slot: stream 0 is the connection, never a stream.
        var id: Int32
        var value: Value?
    }

    private var slots: [Slot] = []
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// The values, in no particular order: a copy, so the caller may change the table meanwhile.
    var values: [Value] { slots.compactMap { $0.id == 0 ? nil : $0.value } }

    subscript(id: Int32) -> Value? {
        get { index(of: id).map { slots[$0].value } ?? nil }
        set {
            if let newValue {
                insert(newValue, for: id)
            } else {
                removeValue(forKey: id)
            }
        }
    }

    @discardableResult
    mutating func removeValue(forKey id: Int32) -> Value? {
        guard var hole = index(of: id) else { return nil }
        let removed = slots[hole].value
        let mask = slots.count - 1
        var next = hole
        while true {
            next = (next + 1) & mask
            let nextID = slots[next].id
            if nextID == 0 { break }
            // The entry at `next` may fill the hole unless its home lies cyclically in (hole, next]:
            // then a lookup starting at its home reaches it without passing the hole.
            let home = Self.home(of: nextID, mask: mask)
            let homeIsBetween = hole < next ? (hole < home && home <= next) : (hole < home || home <= next)
            if !homeIsBetween {
                slots[hole] = slots[next]
                hole = next
            }
        }
        slots[hole] = Slot(id: 0, value: nil)
        count -= 1
        return removed
    }

    mutating func removeAll() {
        slots = []
        count = 0
    }

    private static func home(of id: Int32, mask: Int) -> Int {
        Int(UInt32(bitPattern: id) >> 1) & mask
    }

    private func index(of id: Int32) -> Int? {
        guard id != 0, !slots.isEmpty else { return nil }
        let mask = slots.count - 1
        var index = Self.home(of: id, mask: mask)
        while true {
            let slotID = slots[index].id
            if slotID == id { return index }
            if slotID == 0 { return nil }
            index = (index + 1) & mask
        }
    }

    private mutating func insert(_ value: Value, for id: Int32) {
        precondition(id != 0, "stream 0 is the connection")
        if let existing = index(of: id) {
            slots[existing].value = value
            return
        }
        if (count + 1) * 2 > slots.count { grow() }
        let mask = slots.count - 1
        var index = Self.home(of: id, mask: mask)
        while slots[index].id != 0 { index = (index + 1) & mask }
        slots[index] = Slot(id: id, value: value)
        count += 1
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: Slot(id: 0, value: nil), count: max(16, old.count * 2))
        count = 0
        for slot in old where slot.id != 0 { insert(slot.value!, for: slot.id) }
    }
}
