import NIOCore

/// Receive buffers for client connections that leave an idle connection holding (almost) none, as
/// OpenSSL's `SSL_MODE_RELEASE_BUFFERS` does for nginx's record buffers.
///
/// Why: a NIO socket channel keeps in its pool (`NIOPooledRecvBufferAllocator`) the first receive
/// buffer it allocates, for the channel's whole life; it grows that buffer to the allocator's size hint
/// (`nextBufferSize()`) and never shrinks it. With `AdaptiveRecvByteBufferAllocator` every idle
/// connection held a 1 KiB buffer (more after a large read). Here:
/// - the first buffer, the one the pool keeps, is a `placeholderCapacity` one: the connection's
///   first read (the start of a ClientHello or request) is that short, the rest comes with the next read;
/// - no size hint is given, so the pool never grows the kept buffer;
/// - every read reports that the next may grow, so the pool never reuses the kept buffer: each later
///   read gets a fresh buffer sized as `AdaptiveRecvByteBufferAllocator` would size it, freed as soon as
///   the handlers are done with it (one allocation per read: what OpenSSL's released buffers cost nginx),
///   or, given the event loop's `ByteBufferRecycler`, a spare of it that the TLS handler gave back.
///
/// Only correct with `maxMessagesPerRead` 1 on the channel (`install(on:)` sets both): the pool keeps up
/// to `maxMessagesPerRead` buffers, and with room for more than one it would keep the fresh ones too.
///
/// `@unchecked Sendable`: the recycler is its event loop's, and NIO calls a channel's receive allocator
/// only on the channel's loop. (A `LoopConfined` would check that in debug builds, but its event loop
/// reference made every idle connection 40 bytes larger.)
struct ReleasingRecvByteBufferAllocator: RecvByteBufferAllocator, @unchecked Sendable {
    /// The capacity of the buffer the channel's pool keeps (it is read into once, first).
    static let placeholderCapacity = 16

    private let recycler: ByteBufferRecycler?
    /// The adaptive sizes are powers of two, kept as their exponents: NIO holds the allocator as an
    /// `any RecvByteBufferAllocator`, which stores a value of up to three words inline and puts a
    /// larger one in a heap box, one per connection (`AdaptiveRecvByteBufferAllocator` alone is larger).
    private let minimumExponent: UInt8
    private let maximumExponent: UInt8
    private var nextExponent: UInt8
    private var decreaseNow = false
    private var hasRead = false

    /// Sizes every read after the first as `AdaptiveRecvByteBufferAllocator(minimum:initial:maximum:)`
    /// would: the bounds rounded to powers of two (minimum and initial down, maximum up); twice the
    /// size after a full read, half after two reads that fit in half.
    init(
        minimum: Int = 64, initial: Int = 1024, maximum: Int = 65536,
        recycler: ByteBufferRecycler? = nil
    ) {
        precondition(minimum >= 1 && initial >= minimum && maximum >= initial && maximum <= 1 << 30)
        func exponentRoundingDown(_ value: Int) -> UInt8 { UInt8(Int.bitWidth - 1 - value.leadingZeroBitCount) }
        func exponentRoundingUp(_ value: Int) -> UInt8 {
            value <= 1 ? 0 : UInt8(Int.bitWidth - (value - 1).leadingZeroBitCount)
        }
        minimumExponent = exponentRoundingDown(minimum)
        nextExponent = exponentRoundingDown(initial)
        maximumExponent = exponentRoundingUp(maximum)
        self.recycler = recycler
    }

    /// Sets this allocator (its reads from `recycler`, the channel's event loop's) and
    /// `maxMessagesPerRead` 1 (which it needs) on a channel.
    static func install(
        on options: some NIOSynchronousChannelOptions, recycler: ByteBufferRecycler? = nil
    ) throws {
        try options.setOption(.maxMessagesPerRead, value: 1)
        try options.setOption(.recvAllocator, value: ReleasingRecvByteBufferAllocator(recycler: recycler))
    }

    /// The size the next read after the first gets.
    var nextReadCapacity: Int { 1 << nextExponent }

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        guard hasRead else { return allocator.buffer(capacity: Self.placeholderCapacity) }
        return recycler?.buffer(capacity: nextReadCapacity) ?? allocator.buffer(capacity: nextReadCapacity)
    }

    /// No hint: with one, the pool would grow its kept buffer to it and reuse it.
    func nextBufferSize() -> Int? { nil }

    mutating func record(actualReadBytes: Int) -> Bool {
        hasRead = true
        let next = nextReadCapacity
        if actualReadBytes <= next >> 1 && nextExponent > minimumExponent {
            if decreaseNow { nextExponent -= 1 }
            decreaseNow.toggle()
        } else {
            if actualReadBytes >= next && nextExponent < maximumExponent { nextExponent += 1 }
            decreaseNow = false
        }
        // "May grow": the pool then allocates a fresh buffer instead of reusing the one it keeps.
        return true
    }
}
