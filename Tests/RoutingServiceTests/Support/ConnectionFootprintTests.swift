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
@Suite struct ConnectionFootprintTests {
    /// glibc's `malloc_usable_size` (declared in `malloc.h`, which the Glibc module does not import).
    private static let mallocUsableSize = unsafeBitCast(
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_usable_size"),  // RTLD_DEFAULT
        to: (@convention(c) (UnsafeMutableRawPointer?) -> Int).self
    )

    private static func heapBytes(_ object: AnyObject) -> Int {
        mallocUsableSize(Unmanaged.passUnretained(object).toOpaque())
    }

    @Test func aDeadlineTimerFitsA64ByteChunk() {
        let timer = DeadlineTimer(queue: TimerQueue(eventLoop: EmbeddedEventLoop()), action: {})
        #expect(Self.heapBytes(timer) <= 56)
    }

    @Test func theTLSObjectsOfAServerConnectionFitTheirChunks() throws {
        let certificates = try TLSTestCertificates()
        let front = try OpenSSLFrontContext(store: TLSContextStore(try certificates.index()))
        let connection = try OpenSSLConnection.server(front: front)
        #expect(Self.heapBytes(connection) <= 72)
        #expect(Self.heapBytes(CiphertextBuffers(recycler: nil)) <= 72)
        let handler = try TLSHandler(serverFront: front, logger: Logger(label: "footprint"))
        #expect(Self.heapBytes(handler) <= 120)
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
        let front = HTTP1FrontHandler(mode: .tls, runtime: runtime, loop: runtime.loopContext(for: loop))
        #expect(Self.heapBytes(front) <= 312)
    }
}
