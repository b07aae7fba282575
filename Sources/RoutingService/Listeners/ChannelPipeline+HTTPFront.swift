import NIOCore

/// Limits of the HTTP front.
public enum HTTPFrontConfiguration {
    /// A request header section larger than this gets `431`.
    public static let maximumHeaderBytes = 32 * 1024
}

extension ChannelPipeline.SynchronousOperations {
    /// Adds the HTTP/1.x front: one handler that parses requests in place, proxies them and owns the
    /// client timeouts. In `.tls` mode call it after the TLS handler, which fires
    /// `TLSHandshakeCompletedEvent` before any plaintext; in `.plain` mode it serves the plain listener
    /// (ACME challenges, redirects, `ssl: off` domains).
    public func configureHTTPFront(mode: HTTPFrontMode, runtime: HTTPProxyRuntime) throws {
        try addHandler(HTTP1FrontHandler(mode: mode, runtime: runtime, loop: runtime.loopContext(for: eventLoop)))
    }
}

/// The same, for callers holding a channel (e.g. a child channel initializer).
public func configureHTTPFront(channel: any Channel, mode: HTTPFrontMode, runtime: HTTPProxyRuntime) throws {
    try channel.pipeline.syncOperations.configureHTTPFront(mode: mode, runtime: runtime)
}
