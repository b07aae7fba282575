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
///   the handlers are done with it (one allocation per read: what OpenSSL's released buffers cost nginx).
///
/// Only correct with `maxMessagesPerRead` 1 on the channel (`install(on:)` sets both): the pool keeps up
/// to `maxMessagesPerRead` buffers, and with room for more than one it would keep the fresh ones too.
struct ReleasingRecvByteBufferAllocator: RecvByteBufferAllocator {
    /// The capacity of the buffer the channel's pool keeps (it is read into once, first).
    static let placeholderCapacity = 16

    /// Sizes every read after the first (the adaptive rule: grow after a full read, shrink after two small ones).
    private var sizing: AdaptiveRecvByteBufferAllocator
    private var hasRead = false

    init(minimum: Int = 64, initial: Int = 1024, maximum: Int = 65536) {
        sizing = AdaptiveRecvByteBufferAllocator(minimum: minimum, initial: initial, maximum: maximum)
    }

    /// Sets this allocator and `maxMessagesPerRead` 1 (which it needs) on a channel.
    static func install(on options: some NIOSynchronousChannelOptions) throws {
        try options.setOption(.maxMessagesPerRead, value: 1)
        try options.setOption(.recvAllocator, value: ReleasingRecvByteBufferAllocator())
    }

    /// The size the next read after the first gets.
    var nextReadCapacity: Int { sizing.nextBufferSize() ?? sizing.initial }

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(capacity: hasRead ? nextReadCapacity : Self.placeholderCapacity)
    }

    /// No hint: with one, the pool would grow its kept buffer to it and reuse it.
    func nextBufferSize() -> Int? { nil }

    mutating func record(actualReadBytes: Int) -> Bool {
        hasRead = true
        _ = sizing.record(actualReadBytes: actualReadBytes)
        // "May grow": the pool then allocates a fresh buffer instead of reusing the one it keeps.
        return true
    }
}
