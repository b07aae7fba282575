/// A head's field list kept for the next head of its connection, so that a head does not allocate its
/// list: handed back emptied with its capacity, and dropped once it grew past `limit` fields (a rare
/// large head should not stay with the connection).
struct SpareFieldList<Field> {
    static var limit: Int { 64 }

    private var list: [Field] = []

    /// Swaps the spare (an empty list, with room once one was kept) into `fields`, an empty list.
    mutating func lend(to fields: inout [Field]) {
        swap(&fields, &list)
    }

    /// Takes `fields` back for the next head, emptied, unless it grew past `limit`.
    mutating func keep(_ fields: inout [Field]) {
        guard fields.capacity <= Self.limit else { return }
        fields.removeAll(keepingCapacity: true)
        swap(&list, &fields)
    }
}
