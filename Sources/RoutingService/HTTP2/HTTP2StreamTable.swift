/// The open streams of one HTTP/2 connection by stream id, looked up by every frame callback.
///
/// Open addressing on the id itself: a client's stream ids are odd and rise by two (RFC 9113 §5.1.1),
/// so `id >> 1` puts the streams open at once in neighbouring slots, with no hashing and no probing to
/// speak of. A `Dictionary` hashed each id with SipHash several times per stream. Linear probing,
/// with deletion by shifting the rest of a run back, so a lookup never meets a tombstone. Ids and
/// values are kept apart, so probing reads plain integers (no reference counting). The table is made
/// at the first insert and grows past half full.
struct HTTP2StreamTable<Value: AnyObject> {
    /// 0 marks a free slot: stream 0 is the connection, never a stream.
    private var ids: [Int32] = []
    private var slots: [Value?] = []
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// The values, in no particular order: a copy, so the caller may change the table meanwhile.
    var values: [Value] { slots.compactMap { $0 } }

    subscript(id: Int32) -> Value? {
        get {
            guard let index = index(of: id) else { return nil }
            return slots[index]
        }
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
        // Moved out, not copied: no retain and release of the value.
        let removed = slots[hole].take()
        let mask = ids.count - 1
        var next = hole
        while true {
            next = (next + 1) & mask
            let nextID = ids[next]
            if nextID == 0 { break }
            // The entry at `next` may fill the hole unless its home lies cyclically in (hole, next]:
            // then a lookup starting at its home reaches it without passing the hole.
            let home = Self.home(of: nextID, mask: mask)
            let homeIsBetween = hole < next ? (hole < home && home <= next) : (hole < home || home <= next)
            if !homeIsBetween {
                ids[hole] = nextID
                slots.swapAt(hole, next)
                hole = next
            }
        }
        ids[hole] = 0
        count -= 1
        return removed
    }

    mutating func removeAll() {
        ids = []
        slots = []
        count = 0
    }

    private static func home(of id: Int32, mask: Int) -> Int {
        Int(UInt32(bitPattern: id) >> 1) & mask
    }

    private func index(of id: Int32) -> Int? {
        guard id != 0, !ids.isEmpty else { return nil }
        let mask = ids.count - 1
        var index = Self.home(of: id, mask: mask)
        while true {
            let slotID = ids[index]
            if slotID == id { return index }
            if slotID == 0 { return nil }
            index = (index + 1) & mask
        }
    }

    /// `consuming`: the value moves into its slot, where a borrowed one would be retained to be stored
    /// and released by the caller.
    private mutating func insert(_ value: consuming Value, for id: Int32) {
        precondition(id != 0, "stream 0 is the connection")
        if let existing = index(of: id) {
            slots[existing] = value
            return
        }
        if (count + 1) * 2 > ids.count { grow() }
        let mask = ids.count - 1
        var index = Self.home(of: id, mask: mask)
        while ids[index] != 0 { index = (index + 1) & mask }
        ids[index] = id
        slots[index] = value
        count += 1
    }

    private mutating func grow() {
        let oldIDs = ids
        let oldSlots = slots
        let capacity = max(16, oldIDs.count * 2)
        ids = Array(repeating: 0, count: capacity)
        slots = Array(repeating: nil, count: capacity)
        count = 0
        for (id, value) in zip(oldIDs, oldSlots) where id != 0 { insert(value!, for: id) }
    }
}
