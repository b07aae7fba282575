/// Limits of the TCP relay of the project balancer.
public struct TCPRelayConfiguration: Sendable, Equatable {
    /// How long one upstream connect may take before the next instance is tried.
    public var connectTimeout: Duration
    /// A session with no byte in either direction for this long is closed.
    public var idleTimeout: Duration

    public init(connectTimeout: Duration = .seconds(3), idleTimeout: Duration = .seconds(300)) {
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }
}
