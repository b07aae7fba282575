import Glibc
import Logging
import NIOCore
import NIOEmbedded
import Testing
@testable import RoutingService

/// What each connection's own objects take on the heap, idle or not (the benchmark's idle mode holds
/// 9,900 of them): the heap chunk each object gets, as `malloc_usable_size` reports it (a chunk of
/// N bytes holds N − 8). A member added or a layout that pads more moves an object into a larger chunk
/// and fails here, where the benchmark would show it only as noise-level kilobytes.
///
/// One object's chunk can be 16 bytes larger than its size needs: glibc hands out a whole free chunk
/// when splitting it would leave less than its 32-byte minimum, so what one allocation gets depends on
/// the heap's state (a CI run saw 136 for a handler that needs 120). The smallest chunk among many
/// objects alive at once is the one its size needs.
@Suite struct ConnectionFootprintTests {
    /// glibc's `malloc_usable_size` (declared in `malloc.h`, which the Glibc module does not import).
    private static let mallocUsableSize = unsafeBitCast(
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_usable_size"),  // RTLD_DEFAULT
        to: (@convention(c) (UnsafeMutableRawPointer?) -> Int).self
    )

    private static func heapBytes(_ make: () throws -> AnyObject) rethrows -> Int {
        // Kept alive together so that each one is a fresh allocation, not the previous one's chunk again.
        let objects = try (0..<32).map { _ in try make() }
        return objects.map { mallocUsableSize(Unmanaged.passUnretained($0).toOpaque()) }.min()!
    }

    @Test func aDeadlineTimerFitsA64ByteChunk() {
        let queue = TimerQueue(eventLoop: EmbeddedEventLoop())
        #expect(Self.heapBytes { DeadlineTimer(queue: queue, action: {}) } <= 56)
    }

    @Test func theTLSObjectsOfAServerConnectionFitTheirChunks() throws {
        let certificates = try TLSTestCertificates()
        let front = try OpenSSLFrontContext(store: TLSContextStore(try certificates.index()))
        let connectionBytes = try Self.heapBytes { try OpenSSLConnection.server(front: front) }
        #expect(connectionBytes <= 72)
        #expect(Self.heapBytes { CiphertextBuffers(recycler: nil) } <= 72)
        let logger = Logger(label: "footprint")
        let handlerBytes = try Self.heapBytes { try TLSHandler(serverFront: front, logger: logger) }
        #expect(handlerBytes <= 120)
    }

    @Test func theHTTP1FrontFitsA320ByteChunk() throws {
        let loop = EmbeddedEventLoop()
        let configuration = GatewayConfiguration(
            services: [
                ServiceConfiguration(
                    name: "app", ports: [ServicePort(port: 3000, http: true)], instances: [InstanceAddress(host: "10.0.0.1")]
                ),
            ],
            domains: [DomainConfiguration(name: DomainName("secure.test"), service: "app", port: 3000, ssl: .manual)]
        )
        let runtime = HTTPProxyRuntime(configuration: configuration, eventLoopGroup: loop, connector: SocketUpstreamConnector())
        let context = runtime.loopContext(for: loop)
        #expect(Self.heapBytes { HTTP1FrontHandler(mode: .tls, runtime: runtime, loop: context) } <= 312)
    }
}
