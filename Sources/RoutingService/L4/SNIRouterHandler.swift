import Logging
import NIOCore

/// What to do with a connection on the TLS listener once its ClientHello has been peeked at.
public enum SNIRoute: Sendable {
    /// Terminate TLS here: the router leaves the pipeline and re-fires the buffered bytes, unchanged,
    /// to the handlers after it (the TLS handler). Also the way to answer garbage with a TLS alert.
    case terminate
    /// SNI passthrough: relay the whole stream, ClientHello included, to the least-busy instance.
    /// `domain` is the configured domain that matched (the session is drained when a reload removes it).
    case passthrough(L4UpstreamTarget, domain: DomainName? = nil)
    /// Close the connection, logging `reason`.
    case reject(reason: String)
}

/// Chooses the route from the peek's outcome: `.clientHello`, `.malformed` or `.notTLS`, never
/// `.needMoreData`. Called on the channel's event loop; it should only look things up.
public typealias SNIRouteDecision = @Sendable (ClientHelloParseResult) -> SNIRoute

public struct SNIRouterConfiguration: Sendable {
    /// A client that has not sent a complete ClientHello after this long is closed.
    public var peekTimeout: Duration
    /// A ClientHello longer than this is malformed.
    public var maximumClientHelloSize: Int
    /// Timeouts of the passthrough relay.
    public var relay: TCPRelayConfiguration

    public init(
        peekTimeout: Duration = .seconds(10),
        maximumClientHelloSize: Int = 16_384,
        relay: TCPRelayConfiguration = .init()
    ) {
        self.peekTimeout = peekTimeout
        self.maximumClientHelloSize = maximumClientHelloSize
        self.relay = relay
    }
}

/// First handler of a TLS listener connection: buffers the inbound bytes without consuming them
/// until the ClientHello is parsed (or the peek times out), asks `decide` for a route, then either
/// steps aside for the TLS handler, hands the connection to the TCP relay, or closes it.
public final class SNIRouterHandler {
    private enum State {
        case peeking
        case routed
    }

    private let configuration: SNIRouterConfiguration
    private let listenerName: String
    private let logger: Logger
    private let decide: SNIRouteDecision
    private let sessions: L4SessionRegistry?
    private let addTerminationHandlers: ((ChannelPipeline.SynchronousOperations) throws -> Void)?
    private var parser: ClientHelloParser
    private var state = State.peeking
    private var buffered: ByteBuffer?
    private var peekTimer: Scheduled<Void>?
    private var client = "unknown"

    /// - Parameter addTerminationHandlers: called on `.terminate` before the buffered bytes are re-fired,
    ///   to add the TLS handler (and what follows it) after the router, if they are not there already.
    public init(
        configuration: SNIRouterConfiguration = .init(),
        listenerName: String,
        logger: Logger,
        addTerminationHandlers: ((ChannelPipeline.SynchronousOperations) throws -> Void)? = nil,
        sessions: L4SessionRegistry? = nil,
        decide: @escaping SNIRouteDecision
    ) {
        self.sessions = sessions
        self.configuration = configuration
        self.listenerName = listenerName
        self.logger = logger
        self.addTerminationHandlers = addTerminationHandlers
        self.decide = decide
        self.parser = ClientHelloParser(maximumHandshakeSize: configuration.maximumClientHelloSize)
    }

    private func startPeekTimer(context: ChannelHandlerContext) {
        guard peekTimer == nil, state == .peeking, context.channel.isActive else { return }
        client = context.channel.remoteAddress.logDescription
        peekTimer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(configuration.peekTimeout)) {
            guard self.state == .peeking else { return }
            self.state = .routed
            self.logger.warning(
                "TLS connection closed: no complete ClientHello in time",
                metadata: self.metadata([
                    "sni.peek_timeout_ms": "\(TimeAmount(self.configuration.peekTimeout).nanoseconds / 1_000_000)",
                    "sni.bytes_received": "\(self.buffered?.readableBytes ?? 0)",
                ])
            )
            context.close(promise: nil)
        }
    }

    private func metadata(_ extra: Logger.Metadata = [:]) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["sni.client": "\(client)", "sni.listener": "\(listenerName)"]
        metadata.merge(extra) { $1 }
        return metadata
    }

    private func route(_ result: ClientHelloParseResult, context: ChannelHandlerContext) {
        state = .routed
        peekTimer?.cancel()
        peekTimer = nil
        let route = decide(result)
        var outcome: Logger.Metadata = [:]
        switch result {
        case .clientHello(let serverName, let alpn):
            outcome["sni.server_name"] = "\(serverName ?? "-")"
            if !alpn.isEmpty { outcome["sni.alpn"] = "\(alpn.joined(separator: ","))" }
        case .malformed(let error):
            outcome["sni.malformed"] = "\(error.reason)"
        case .notTLS:
            outcome["sni.malformed"] = "not a TLS handshake record"
        case .needMoreData:
            preconditionFailure("routed before the ClientHello was complete")
        }
        switch route {
        case .terminate:
            if case .clientHello = result {} else {
                logger.info("Bad ClientHello handed to the TLS handler to answer", metadata: metadata(outcome))
            }
            terminate(context: context)
        case .passthrough(let target, let domain):
            passthrough(to: target, domain: domain, context: context)
        case .reject(let reason):
            outcome["sni.reason"] = "\(reason)"
            logger.warning("TLS connection rejected before the handshake", metadata: metadata(outcome))
            context.close(promise: nil)
        }
    }

    private func terminate(context: ChannelHandlerContext) {
        do {
            try addTerminationHandlers?(context.pipeline.syncOperations)
        } catch {
            logger.error("Could not set up TLS termination", metadata: metadata(["sni.error": "\(error)"]))
            context.close(promise: nil)
            return
        }
        // `removeHandler(context:removalToken:)` re-fires the buffered bytes on the way out.
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func passthrough(to target: L4UpstreamTarget, domain: DomainName?, context: ChannelHandlerContext) {
        let record = L4SessionRecord(
            kind: .tcp,
            client: client,
            listener: listenerName,
            target: target.name,
            logger: logger
        )
        let relay = TCPRelayConnectHandler(
            target: target,
            configuration: configuration.relay,
            record: record,
            session: sessions.flatMap { registry in domain.map { L4SessionTag(registry: registry, route: .passthrough($0)) } },
            initialBytes: buffered
        )
        buffered = nil
        do {
            try context.pipeline.syncOperations.addHandler(relay, position: .after(self))
        } catch {
            logger.error("Could not start the passthrough relay", metadata: metadata(["sni.error": "\(error)"]))
            context.close(promise: nil)
            return
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

extension SNIRouterHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    public func handlerAdded(context: ChannelHandlerContext) {
        startPeekTimer(context: context)
    }

    public func channelActive(context: ChannelHandlerContext) {
        startPeekTimer(context: context)
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state == .peeking else {
            // Routed but not yet out of the pipeline (a read in the same batch): keep it in order.
            var bytes = unwrapInboundIn(data)
            if buffered == nil { buffered = bytes } else { buffered!.writeBuffer(&bytes) }
            return
        }
        var bytes = unwrapInboundIn(data)
        let result = parser.feed(bytes)
        if buffered == nil { buffered = bytes } else { buffered!.writeBuffer(&bytes) }
        if result != .needMoreData {
            route(result, context: context)
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if state == .routed { context.fireChannelReadComplete() }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if state == .peeking {
            state = .routed
            peekTimer?.cancel()
            peekTimer = nil
            logger.info(
                "TLS connection closed by the client before a complete ClientHello",
                metadata: metadata(["sni.bytes_received": "\(buffered?.readableBytes ?? 0)"])
            )
        }
        context.fireChannelInactive()
    }

    public func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        peekTimer?.cancel()
        peekTimer = nil
        if let buffered, buffered.readableBytes > 0 {
            self.buffered = nil
            context.fireChannelRead(wrapInboundOut(buffered))
            context.fireChannelReadComplete()
        }
        context.leavePipeline(removalToken: removalToken)
    }
}

@available(*, unavailable)
extension SNIRouterHandler: Sendable {}
