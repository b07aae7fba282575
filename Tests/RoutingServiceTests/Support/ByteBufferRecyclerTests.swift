import NIOCore
import Testing
@testable import RoutingService

@Suite struct ByteBufferRecyclerTests {
    /// The start of a buffer's storage: equal for two buffers exactly when they share it.
    private static func storage(of buffer: ByteBuffer) -> UInt {
        buffer.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
    }

    /// A buffer of `capacity` with some bytes in it, recycled once its maker let go of it; returns its storage.
    private static func recycledSpare(_ recycler: ByteBufferRecycler, capacity: Int) -> UInt {
        var buffer = recycler.buffer(capacity: capacity)
        buffer.writeRepeatingByte(0x41, count: capacity / 2)
        recycler.recycle(buffer)
        return storage(of: buffer)
    }

    @Test func aSpareNothingElseHoldsIsHandedOutAgainCleared() {
        let recycler = ByteBufferRecycler()
        let spare = Self.recycledSpare(recycler, capacity: 600)

        let again = recycler.buffer(capacity: 600)
        #expect(Self.storage(of: again) == spare)
        #expect(again.readableBytes == 0)
        #expect(again.writableBytes >= 600)
        #expect(recycler.spareCount == 0)
    }

    @Test func aSpareStillHeldIsNeverWrittenInto() {
        let recycler = ByteBufferRecycler()
        var held = recycler.buffer(capacity: 100)
        held.writeString("still being written to the socket")
        recycler.recycle(held)

        var fresh = recycler.buffer(capacity: 100)
        fresh.writeString("the next request")
        #expect(Self.storage(of: fresh) != Self.storage(of: held))
        #expect(held.readableBytesView.elementsEqual("still being written to the socket".utf8))
        #expect(fresh.readableBytesView.elementsEqual("the next request".utf8))
    }

    @Test func smallRequestsGetSmallSparesOnlyAndLargeOnesLargeSpares() {
        let recycler = ByteBufferRecycler()
        let large = Self.recycledSpare(recycler, capacity: 16 * 1024)

        // A small buffer may be held by a slow connection (a partial head): it must not be a 16 KiB one.
        let small = recycler.buffer(capacity: 512)
        #expect(small.storageCapacity <= ByteBufferRecycler.smallCapacity)
        #expect(Self.storage(of: small) != large)

        let reused = recycler.buffer(capacity: 8 * 1024)
        #expect(Self.storage(of: reused) == large)
        #expect(reused.writableBytes >= 8 * 1024)
    }

    @Test func aSpareThatIsTooSmallGrowsInsteadOfOverflowing() {
        let recycler = ByteBufferRecycler()
        _ = Self.recycledSpare(recycler, capacity: 4096)
        var buffer = recycler.buffer(capacity: 20_000)
        #expect(buffer.writableBytes >= 20_000)
        buffer.writeRepeatingByte(0x42, count: 20_000)
        #expect(buffer.readableBytes == 20_000)
    }

    @Test func sparesGoOutOldestFirst() {
        let recycler = ByteBufferRecycler()
        // Recycled while the next is still held, so the two cannot share storage.
        var first = recycler.buffer(capacity: 300)
        var second = recycler.buffer(capacity: 300)
        first.writeString("first")
        second.writeString("second")
        recycler.recycle(first)
        recycler.recycle(second)
        let (firstStorage, secondStorage) = (Self.storage(of: first), Self.storage(of: second))
        first = ByteBuffer()
        second = ByteBuffer()

        #expect(Self.storage(of: recycler.buffer(capacity: 300)) == firstStorage)
        #expect(Self.storage(of: recycler.buffer(capacity: 300)) == secondStorage)
    }

    @Test func keepsABoundedNumberOfSparesAndNoneTooLarge() {
        let recycler = ByteBufferRecycler()
        let allocator = ByteBufferAllocator()
        for _ in 0..<(ByteBufferRecycler.smallSpareLimit + 5) { recycler.recycle(allocator.buffer(capacity: 256)) }
        #expect(recycler.spareCount == ByteBufferRecycler.smallSpareLimit)
        recycler.recycle(allocator.buffer(capacity: ByteBufferRecycler.largeCapacity * 2))
        #expect(recycler.spareCount == ByteBufferRecycler.smallSpareLimit)
        for _ in 0..<(ByteBufferRecycler.largeSpareLimit + 5) {
            recycler.recycle(allocator.buffer(capacity: ByteBufferRecycler.largeCapacity))
        }
        #expect(recycler.spareCount == ByteBufferRecycler.smallSpareLimit + ByteBufferRecycler.largeSpareLimit)
    }

    @Test func aConnectionsReceiveBuffersAfterTheFirstComeFromItsLoopsSpares() throws {
        let recycler = ByteBufferRecycler()
        var allocator = ReleasingRecvByteBufferAllocator(recycler: recycler)
        // The first read is the placeholder the channel's pool keeps: never a spare.
        let spare = Self.recycledSpare(recycler, capacity: 1024)
        #expect(allocator.buffer(allocator: ByteBufferAllocator()).capacity == ReleasingRecvByteBufferAllocator.placeholderCapacity)
        #expect(recycler.spareCount == 1)
        _ = allocator.record(actualReadBytes: ReleasingRecvByteBufferAllocator.placeholderCapacity)

        let read = allocator.buffer(allocator: ByteBufferAllocator())
        #expect(Self.storage(of: read) == spare)
        #expect(read.writableBytes >= allocator.nextReadCapacity)
    }
}
