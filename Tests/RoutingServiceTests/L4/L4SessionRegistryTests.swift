import NIOCore
import NIOEmbedded
import Testing
@testable import RoutingService

/// Records the drain event a session gets just before it is closed.
private final class DrainEventRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var drained = false
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is L4DrainDeadlineEvent { drained = true }
        context.fireUserInboundEventTriggered(event)
    }
}

@Suite struct L4SessionRegistryTests {
    @Test func drainClosesOnlyTheSessionsOfTheGivenRoutesAfterTheDeadline() throws {
        let loop = EmbeddedEventLoop()
        let registry = L4SessionRegistry()
        let gone = EmbeddedChannel(loop: loop), kept = EmbeddedChannel(loop: loop), port = EmbeddedChannel(loop: loop)
        let recorder = DrainEventRecorder()
        try gone.pipeline.syncOperations.addHandler(recorder)
        for channel in [gone, kept, port] {
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }
        registry.register(gone, route: .passthrough(DomainName("gone.test")))
        registry.register(kept, route: .passthrough(DomainName("kept.test")))
        registry.register(port, route: .publicPort("tcp/127.0.0.1:7000"))
        #expect(registry.count == 3)

        let routes: Set<L4SessionRoute> = [.passthrough(DomainName("gone.test")), .publicPort("tcp/127.0.0.1:7000")]
        #expect(registry.drain(routes: routes, deadline: .seconds(2)) == 2)
        loop.advanceTime(by: .milliseconds(1900))
        #expect(gone.isActive && port.isActive, "open until the deadline")
        loop.advanceTime(by: .milliseconds(200))
        #expect(!gone.isActive && !port.isActive)
        #expect(recorder.drained, "the session is told why it closes")
        #expect(kept.isActive, "another route is not touched")
        #expect(registry.count == 1, "closed sessions leave the registry")
        #expect(registry.count(on: .passthrough(DomainName("kept.test"))) == 1)
        #expect(registry.drain(routes: [], deadline: .zero) == 0)
        _ = try kept.finish()
    }

    @Test func publicPortRouteIsKeyedLikeTheRunningListeners() {
        let port = PublicPortConfiguration(listen: ListenAddress(host: "127.0.0.1", port: 7000), transport: .tcp, service: "db", port: 5432)
        #expect(L4SessionRoute.forPublicPort(port) == .publicPort("tcp/127.0.0.1:7000"))
        #expect(GatewayRuntime.key(port) == "tcp/127.0.0.1:7000")
    }
}
