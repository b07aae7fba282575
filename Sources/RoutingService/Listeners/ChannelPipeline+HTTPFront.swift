import NIOCore
import NIOHTTP1

/// Limits of the HTTP front.
public enum HTTPFrontConfiguration {
    /// A request header section larger than this gets `431`.
    public static let maximumHeaderBytes = 32 * 1024
}

extension ChannelPipeline.SynchronousOperations {
    /// Adds the HTTP front: client timeouts, the HTTP/1.1 codec (32 KiB header limit, strict framing),
    /// pipelining order (reading ahead while a response is pending), and the proxy handler. In `.tls`
    /// mode call it after the TLS handler, which fires `TLSHandshakeCompletedEvent` before any
    /// plaintext; in `.plain` mode it serves the plain listener (ACME challenges, redirects, `ssl: off`
    /// domains).
    public func configureHTTPFront(mode: HTTPFrontMode, runtime: HTTPProxyRuntime) throws {
        let timeouts = runtime.routes.snapshot.timeouts
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = HTTPFrontConfiguration.maximumHeaderBytes
        limits.maxHeaderFieldSize = HTTPFrontConfiguration.maximumHeaderBytes
        // The proxy writes the framing headers itself (it knows HEAD and 1.0 clients), so the encoder must not.
        var encoderConfiguration = HTTPResponseEncoder.Configuration()
        encoderConfiguration.automaticallySetFramingHeaders = false
        let clientTimeouts = ClientTimeoutHandler(
            headerTimeout: timeouts.requestHeader.timeAmount,
            idleTimeout: timeouts.clientIdle.timeAmount
        )
        try addHandlers([
            clientTimeouts,
            HTTPResponseEncoder(configuration: encoderConfiguration),
            // Bytes after an upgrade request are kept and handed to the WebSocket relay.
            ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: limits)),
            // Keeps read interest while a response is pending (no epoll_ctl pair per request).
            ReadAheadHandler(),
            HTTPServerPipelineHandler(),
            HTTPProxyHandler(mode: mode, runtime: runtime, clientTimeouts: clientTimeouts),
        ])
    }
}

/// The same, for callers holding a channel (e.g. a child channel initializer).
public func configureHTTPFront(channel: any Channel, mode: HTTPFrontMode, runtime: HTTPProxyRuntime) throws {
    try channel.pipeline.syncOperations.configureHTTPFront(mode: mode, runtime: runtime)
}
