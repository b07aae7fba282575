import NIOCore

/// Failures `TLSHandler` detects itself (OpenSSL's own come as `OpenSSLError`).
public struct TLSHandlerError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Base: Hashable, Sendable {
        case handshakeTimedOut(TimeAmount)
        case tooMuchBufferedPlaintext(limit: Int)
        case closedDuringHandshake
    }

    private let base: Base

    /// The peer did not complete its handshake in time.
    public static func handshakeTimedOut(after timeout: TimeAmount) -> TLSHandlerError {
        TLSHandlerError(base: .handshakeTimedOut(timeout))
    }

    /// A write would hold more plaintext than allowed while waiting for the handshake or a flush.
    public static func tooMuchBufferedPlaintext(limit: Int) -> TLSHandlerError {
        TLSHandlerError(base: .tooMuchBufferedPlaintext(limit: limit))
    }

    /// The channel closed before the handshake completed; writes waiting for it fail with this.
    public static let closedDuringHandshake = TLSHandlerError(base: .closedDuringHandshake)

    public var description: String {
        switch base {
        case .handshakeTimedOut(let timeout):
            "TLS handshake timed out after \(timeout.nanoseconds / 1_000_000)ms"
        case .tooMuchBufferedPlaintext(let limit):
            "more than \(limit) bytes of plaintext waiting to be encrypted"
        case .closedDuringHandshake:
            "channel closed before the TLS handshake completed"
        }
    }
}
