import NIOCore
import Testing
@testable import RoutingService

@Suite struct ReleasingRecvByteBufferAllocatorTests {
    /// What NIO's socket channel does per read: takes a buffer from its pool, reads into it, records the size.
    private static func read(
        _ bytes: Int,
        pool: inout NIOPooledRecvBufferAllocator
    ) -> ByteBuffer {
        let (buffer, _) = pool.buffer(allocator: ByteBufferAllocator()) { buffer in
            buffer.writeRepeatingByte(0x16, count: min(bytes, buffer.writableBytes))
        }
        pool.record(actualReadBytes: buffer.readableBytes)
        return buffer
    }

    private static func address(of buffer: ByteBuffer) -> UInt {
        buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
    }

    @Test func thePoolKeepsOnlyAPlaceholderAndNeverReadsIntoItAgain() {
        var pool = NIOPooledRecvBufferAllocator(capacity: 1, recvAllocator: ReleasingRecvByteBufferAllocator())
        // The pool keeps the first buffer's storage alive, so no fresh allocation can get its address.
        let kept: UInt = {
            let first = Self.read(517, pool: &pool)
            #expect(first.capacity == ReleasingRecvByteBufferAllocator.placeholderCapacity)
            #expect(first.readableBytes == ReleasingRecvByteBufferAllocator.placeholderCapacity)
            return Self.address(of: first)
        }()

        // The rest of the ClientHello, then requests: fresh buffers of the adaptive size. With
        // `AdaptiveRecvByteBufferAllocator` the pool would grow its kept buffer and read into it again
        // (the same address each time), and an idle connection would hold it.
        for size in [501, 300, 1024, 40] {
            let buffer = Self.read(size, pool: &pool)
            #expect(buffer.capacity >= 512)  // adaptive: 1024 at first, 512 after two small reads
            #expect(Self.address(of: buffer) != kept)
        }
        #expect(pool.count == 1)
    }

    @Test func laterReadsAreSizedAdaptively() {
        var allocator = ReleasingRecvByteBufferAllocator(minimum: 64, initial: 1024, maximum: 65536)
        #expect(allocator.nextBufferSize() == nil)
        #expect(allocator.buffer(allocator: ByteBufferAllocator()).capacity == ReleasingRecvByteBufferAllocator.placeholderCapacity)
        let mayGrowAfter16 = allocator.record(actualReadBytes: 16)
        #expect(mayGrowAfter16)
        #expect(allocator.nextReadCapacity == 1024)
        let mayGrowAfter1024 = allocator.record(actualReadBytes: 1024)
        #expect(mayGrowAfter1024)  // a full read: the next one is larger
        #expect(allocator.nextReadCapacity == 2048)
        #expect(allocator.buffer(allocator: ByteBufferAllocator()).capacity >= 2048)
        // Two small reads: it shrinks back; the pool is still told "may grow" (never reuse).
        let mayGrowAfterSmall = allocator.record(actualReadBytes: 10)
        let mayGrowAfterSecondSmall = allocator.record(actualReadBytes: 10)
        #expect(mayGrowAfterSmall && mayGrowAfterSecondSmall)
        #expect(allocator.nextReadCapacity == 1024)
    }

    @Test func laterReadsAreSizedAsNIOsAdaptiveAllocatorSizesThem() {
        var generator = SplitMix64(seed: 7)
        for (minimum, initial, maximum) in [(64, 1024, 65536), (100, 3000, 40000), (32, 64, 128), (512, 512, 1 << 20)] {
            var releasing = ReleasingRecvByteBufferAllocator(minimum: minimum, initial: initial, maximum: maximum)
            var adaptive = AdaptiveRecvByteBufferAllocator(minimum: minimum, initial: initial, maximum: maximum)
            _ = releasing.record(actualReadBytes: ReleasingRecvByteBufferAllocator.placeholderCapacity)
            #expect(releasing.nextReadCapacity == adaptive.nextBufferSize())
            for _ in 0..<2_000 {
                // Full reads, small ones and everything between, so the size climbs to the maximum and falls back.
                let capacity = releasing.nextReadCapacity
                let read: Int
                switch generator.next() % 4 {
                case 0: read = capacity
                case 1: read = Int(generator.next() % UInt64(capacity / 2 + 1))
                default: read = Int(generator.next() % UInt64(capacity + 1))
                }
                _ = releasing.record(actualReadBytes: read)
                _ = adaptive.record(actualReadBytes: read)
                #expect(releasing.nextReadCapacity == adaptive.nextBufferSize(), "after a read of \(read)")
            }
        }
    }

    /// NIO keeps the allocator as an `any RecvByteBufferAllocator`: up to three words are stored inline,
    /// a larger value goes into a heap box that every connection would hold.
    @Test func fitsInlineInNIOsExistentialSoNoConnectionHoldsABoxForIt() {
        #expect(MemoryLayout<ReleasingRecvByteBufferAllocator>.size <= 3 * MemoryLayout<Int>.size)
    }

    @Test func installSetsOneReadPerEventWhichTheAllocatorNeeds() throws {
        let channel = EmbeddedChannelWithOptions()
        try ReleasingRecvByteBufferAllocator.install(on: channel)
        #expect(channel.maxMessagesPerRead == 1)
        #expect(channel.recvAllocator is ReleasingRecvByteBufferAllocator)
    }
}

/// Records the options set on it (EmbeddedChannel's own options ignore these two).
private final class EmbeddedChannelWithOptions: NIOSynchronousChannelOptions {
    var maxMessagesPerRead: UInt?
    var recvAllocator: (any RecvByteBufferAllocator)?

    func setOption<Option: ChannelOption>(_ option: Option, value: Option.Value) throws {
        if let value = value as? UInt, option is ChannelOptions.Types.MaxMessagesPerReadOption {
            maxMessagesPerRead = value
        } else if option is ChannelOptions.Types.RecvAllocatorOption {
            recvAllocator = value as? any RecvByteBufferAllocator
        }
    }

    func getOption<Option: ChannelOption>(_ option: Option) throws -> Option.Value {
        throw ChannelError.operationUnsupported
    }
}
