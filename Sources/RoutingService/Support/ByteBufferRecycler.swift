import NIOCore

/// One event loop's spent byte buffers, handed out again instead of new ones. Without it a keep-alive
/// request costs five fresh buffers (the TLS read, its plaintext, the forwarded head, the response head,
/// the response's records), two allocations and two frees each.
///
/// A buffer is recycled as soon as its maker hands it on (writes it, passes it down the pipeline), not
/// once it is free: `ByteBuffer` is copy-on-write, so `buffer(capacity:)` reuses a spare's storage only
/// when nothing else holds it any more (`clear(minimumCapacity:)`), and otherwise allocates as it would
/// have without the recycler. Spares go out oldest first, which gives the writes in flight time to end.
///
/// Two sizes, so that a buffer a connection holds on to (a partial request head, a partial record) is at
/// most `smallCapacity` when a small one was asked for: requests of up to `smallCapacity` bytes get small
/// spares only. Small buffers have room for at least `smallMinimumCapacity` bytes, so that any small spare
/// fits most requests for one without growing.
/// Only ever used on its event loop.
final class ByteBufferRecycler {
    /// Requests up to this size, and spares whose storage is this size or less, are small.
    static let smallCapacity = 2048
    static let smallMinimumCapacity = 1024
    /// Larger spares (after a large body, say) are not kept.
    static let largeCapacity = 32 * 1024
    /// Small spares kept: about as many as the requests in flight on a busy loop, since each holds its
    /// forwarded head until its response ends (at most 128 KiB).
    static let smallSpareLimit = 64
    /// Large spares kept (at most 512 KiB).
    static let largeSpareLimit = 16

    private var small = SpareRing(capacity: ByteBufferRecycler.smallSpareLimit)
    private var large = SpareRing(capacity: ByteBufferRecycler.largeSpareLimit)

    init() {}

    /// A cleared buffer with room for at least `capacity` bytes.
    func buffer(capacity: Int) -> ByteBuffer {
        if capacity <= Self.smallCapacity {
            return Self.reuse(from: &small, capacity: max(capacity, Self.smallMinimumCapacity))
        }
        return Self.reuse(from: &large, capacity: capacity)
    }

    /// Keeps `buffer`'s storage for a later `buffer(capacity:)`; the caller may go on reading it.
    /// `consuming`: where this is the caller's last use of its buffer, the ring takes the caller's
    /// reference instead of retaining its own while the caller releases.
    func recycle(_ buffer: consuming ByteBuffer) {
        let capacity = buffer.storageCapacity
        if capacity <= Self.smallCapacity {
            small.append(buffer)
        } else if capacity <= Self.largeCapacity {
            large.append(buffer)
        }
    }

    var spareCount: Int { small.count + large.count }

    private static func reuse(from spares: inout SpareRing, capacity: Int) -> ByteBuffer {
        guard var buffer = spares.popFirst() else { return allocator.buffer(capacity: capacity) }
        buffer.clear(minimumCapacity: capacity)
        return buffer
    }

    private static var allocator: ByteBufferAllocator { ByteBufferAllocator() }
}

@available(*, unavailable)
extension ByteBufferRecycler: Sendable {}

/// A fixed number of spares, oldest first. Unlike `CircularBuffer`, taking one moves it out of its slot:
/// no retain and release pair per take (the request path takes about five a request).
private struct SpareRing {
    private var slots: [ByteBuffer?]
    private var oldest = 0
    private(set) var count = 0

    init(capacity: Int) {
        slots = Array(repeating: nil, count: capacity)
    }

    /// Keeps `buffer` unless the ring is full.
    mutating func append(_ buffer: consuming ByteBuffer) {
        guard count < slots.count else { return }
        var slot = oldest + count
        if slot >= slots.count { slot -= slots.count }
        slots[slot] = buffer
        count += 1
    }

    mutating func popFirst() -> ByteBuffer? {
        guard count > 0 else { return nil }
        let spare = slots[oldest].take()
        oldest += 1
        if oldest == slots.count { oldest = 0 }
        count -= 1
        return spare
    }
}
