import NIOCore
import Testing
@testable import RoutingService

@Suite struct BodyChunksTests {
    private static func drain(_ chunks: inout BodyChunks) -> [String] {
        var taken: [String] = []
        while let first = chunks.first {
            taken.append(String(buffer: first))
            chunks.removeFirst()
        }
        return taken
    }

    @Test func chunksComeOutInTheOrderTheyWentIn() {
        var chunks = BodyChunks()
        #expect(chunks.isEmpty)
        for text in ["a", "bb", "ccc", "dddd", "eeeee", "ffffff"] { chunks.append(ByteBuffer(string: text)) }
        #expect(Self.drain(&chunks) == ["a", "bb", "ccc", "dddd", "eeeee", "ffffff"])
        #expect(chunks.isEmpty)
    }

    @Test func aPartlyTakenFirstChunkStaysFirst() {
        var chunks = BodyChunks()
        chunks.append(ByteBuffer(string: "hello"))
        chunks.append(ByteBuffer(string: "world"))
        var first = chunks.first!
        first.moveReaderIndex(forwardBy: 3)
        chunks.replaceFirst(with: first)
        #expect(Self.drain(&chunks) == ["lo", "world"])
    }

    @Test func appendingAfterDrainingStartsAgainWithTheNewChunk() {
        var chunks = BodyChunks()
        chunks.append(ByteBuffer(string: "one"))
        chunks.append(ByteBuffer(string: "two"))
        chunks.removeFirst()
        chunks.append(ByteBuffer(string: "three"))
        chunks.removeFirst()
        chunks.removeFirst()
        #expect(chunks.isEmpty)
        chunks.append(ByteBuffer(string: "four"))
        #expect(Self.drain(&chunks) == ["four"])
    }
}
