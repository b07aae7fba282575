import Logging
import NIOCore

extension ChannelPipeline.SynchronousOperations {
    /// Adds a server `TLSHandler` starting on `front` (certificate chosen by SNI); handlers added
    /// after it see plaintext and a `TLSHandshakeCompletedEvent` first.
    public func addTLSServerHandler(
        front: OpenSSLFrontContext,
        configuration: TLSHandler.Configuration = TLSHandler.Configuration(),
        logger: Logger
    ) throws {
        try addHandler(TLSHandler(serverFront: front, configuration: configuration, logger: logger))
    }

    /// The same, with the listener's shared `settings`, the handler's timeouts in `timers`, its event
    /// loop's queue (the gateway's listeners: no NIO scheduled task per connection), and its buffers from
    /// the loop's `recycler`.
    func addTLSServerHandler(
        front: OpenSSLFrontContext,
        settings: TLSHandler.Settings,
        timers: TimerQueue,
        recycler: ByteBufferRecycler
    ) throws {
        try addHandler(TLSHandler(serverFront: front, settings: settings, timers: timers, recycler: recycler))
    }
}
