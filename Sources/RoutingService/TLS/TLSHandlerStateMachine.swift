/// The decisions of `TLSHandler`, with no channel and no OpenSSL: each event returns what to do.
/// Pending writes, the connection and the timers live in the handler, which carries the actions out.
struct TLSHandlerStateMachine {
    enum State: Equatable {
        /// Added to a channel that is not active yet.
        case idle
        case handshaking
        case active
        /// Our `close_notify` (or a failure's alert) is on its way; the socket closes once it is written.
        case closing
        case closed
    }

    private(set) var state: State = .idle

    // MARK: Channel lifecycle

    enum ActivationAction: Equatable {
        /// Arm the handshake timeout; a client also sends its ClientHello.
        case beginHandshake
        case none
    }

    mutating func channelActive() -> ActivationAction {
        guard state == .idle else { return .none }
        state = .handshaking
        return .beginHandshake
    }

    enum InactiveAction: Equatable {
        /// Cancel timers and fail writes still waiting for the handshake or a flush.
        case failPendingWrites(closedDuringHandshake: Bool)
        case none
    }

    mutating func channelInactive() -> InactiveAction {
        let wasHandshaking = state == .handshaking || state == .idle
        guard state != .closed else { return .failPendingWrites(closedDuringHandshake: false) }
        state = .closed
        return .failPendingWrites(closedDuringHandshake: wasHandshaking)
    }

    // MARK: Inbound

    enum CiphertextAction: Equatable {
        case continueHandshake
        case decrypt
        /// We are closing or closed: the bytes do not matter any more.
        case discard
    }

    mutating func ciphertextReceived() -> CiphertextAction {
        switch state {
        case .idle:
            // Bytes before channelActive only happen in odd test setups; treat them as the handshake's.
            state = .handshaking
            return .continueHandshake
        case .handshaking: return .continueHandshake
        case .active: return .decrypt
        case .closing, .closed: return .discard
        }
    }

    enum HandshakeCompletedAction: Equatable {
        /// Cancel the timeout, fire `TLSHandshakeCompletedEvent`, encrypt the flushed writes, then decrypt
        /// whatever plaintext came along with the handshake's last flight.
        case announceAndDrainPending
        case none
    }

    mutating func handshakeCompleted() -> HandshakeCompletedAction {
        guard state == .handshaking else { return .none }
        state = .active
        return .announceAndDrainPending
    }

    enum FailureAction: Equatable {
        /// Log, flush OpenSSL's alert (if any), fire the error, fail pending writes and close.
        case sendAlertAndClose
        case none
    }

    mutating func handshakeFailed() -> FailureAction {
        guard state == .handshaking else { return .none }
        state = .closing
        return .sendAlertAndClose
    }

    mutating func readFailed() -> FailureAction {
        guard state == .active else { return .none }
        state = .closing
        return .sendAlertAndClose
    }

    enum TimeoutAction: Equatable {
        /// Log and close: the peer never finished its handshake.
        case closeForTimeout
        case none
    }

    mutating func handshakeTimedOut() -> TimeoutAction {
        guard state == .handshaking || state == .idle else { return .none }
        state = .closed
        return .closeForTimeout
    }

    enum CloseNotifyAction: Equatable {
        /// Answer with our `close_notify`, flush it, then close the channel.
        case answerAndClose
        case none
    }

    mutating func closeNotifyReceived() -> CloseNotifyAction {
        guard state == .active else { return .none }
        state = .closing
        return .answerAndClose
    }

    // MARK: Outbound

    enum WriteAction: Equatable {
        /// Hold it until a flush (and until the handshake completes).
        case buffer
        case fail
    }

    func write() -> WriteAction {
        switch state {
        case .idle, .handshaking, .active: .buffer
        case .closing, .closed: .fail
        }
    }

    enum FlushAction: Equatable {
        /// Encrypt every flushed write at once and write the ciphertext in one go.
        case encryptFlushedWrites
        /// Remembered; done when the handshake completes.
        case waitForHandshake
        case none
    }

    func flush() -> FlushAction {
        switch state {
        case .idle, .handshaking: .waitForHandshake
        case .active: .encryptFlushedWrites
        case .closing, .closed: .none
        }
    }

    enum CloseAction: Equatable {
        /// Queue `close_notify`, flush it, then close the socket.
        case sendCloseNotifyAndClose
        /// No TLS session to shut down yet (or any more): close the socket now.
        case closeNow
        /// A close is already under way: attach to it.
        case joinPendingClose
    }

    mutating func closeRequested() -> CloseAction {
        switch state {
        case .idle, .handshaking:
            state = .closed
            return .closeNow
        case .active:
            state = .closing
            return .sendCloseNotifyAndClose
        case .closing:
            return .joinPendingClose
        case .closed:
            return .closeNow
        }
    }
}
