/// How often to ask the CA whether something changed: a short first wait that grows, so a fast CA
/// (Pebble validates within milliseconds) is seen at once and a slow one is not hammered.
public struct ACMEPollingPolicy: Sendable, Equatable {
    public var initialInterval: Duration
    public var multiplier: Double
    public var maximumInterval: Duration
    /// Polls of one resource before the order is given up.
    public var maximumPolls: Int
    /// The longest `Retry-After` honoured as is; a longer one is cut to this (a CA asking for hours
    /// would stall the order; the manager's retry takes over instead).
    public var maximumRetryAfter: Duration

    public init(
        initialInterval: Duration = .milliseconds(50),
        multiplier: Double = 1.5,
        maximumInterval: Duration = .seconds(2),
        maximumPolls: Int = 60,
        maximumRetryAfter: Duration = .seconds(30)
    ) {
        self.initialInterval = initialInterval
        self.multiplier = multiplier
        self.maximumInterval = maximumInterval
        self.maximumPolls = maximumPolls
        self.maximumRetryAfter = maximumRetryAfter
    }

    /// The wait before poll number `poll` (0-based), unless the server said otherwise.
    func interval(forPoll poll: Int, retryAfter: Duration?) -> Duration {
        if let retryAfter { return min(retryAfter, maximumRetryAfter) }
        var interval = initialInterval
        for _ in 0..<poll {
            interval = min(interval * multiplier, maximumInterval)
        }
        return interval
    }
}

/// One ACME order (RFC 8555 §7.4) for a set of names with one challenge type, as a pure state machine:
/// each event (a response from the CA) returns the one next action. No I/O, no clock: the runner
/// performs the action and feeds the result back.
public struct ACMEOrderStateMachine: Sendable {
    public enum Action: Sendable, Equatable {
        case createOrder(names: [String])
        case fetchAuthorization(url: String)
        /// Provision the answer (HTTP-01 token or TLS-ALPN-01 certificate), then tell the CA.
        case respondToChallenge(authorizationURL: String, identifier: String, challenge: ACMEChallenge)
        case pollAuthorization(url: String, after: Duration)
        case pollOrder(url: String, after: Duration)
        /// Make a new key and a CSR for the names and send it.
        case finalize(url: String, names: [String])
        case downloadCertificate(url: String)
        /// The chain has been downloaded: store and serve it.
        case succeed
        case fail(ACMEError)
    }

    private enum State: Sendable {
        case idle
        case creatingOrder
        /// Authorizations are handled one after the other (an order of one name has one).
        case authorizing(remaining: [String], current: String, responded: Bool, polls: Int)
        case awaitingReady(polls: Int)
        case finalizing(polls: Int)
        case downloading
        case done
        case failed
    }

    public let names: [String]
    public let challengeType: ACMEChallengeType
    public let polling: ACMEPollingPolicy
    private var state: State = .idle
    private var orderURL: String?
    private var finalizeURL: String?

    public init(names: [String], challengeType: ACMEChallengeType, polling: ACMEPollingPolicy = .init()) {
        self.names = names
        self.challengeType = challengeType
        self.polling = polling
    }

    public var isFinished: Bool {
        switch state {
        case .done, .failed: true
        default: false
        }
    }

    public mutating func start() -> Action {
        guard case .idle = state else { return fail("order started twice") }
        state = .creatingOrder
        return .createOrder(names: names)
    }

    /// The order object, from `newOrder` (with its `Location`), a poll, or `finalize`.
    public mutating func orderReceived(_ order: ACMEOrder, location: String?, retryAfter: Duration?) -> Action {
        switch state {
        case .creatingOrder:
            guard let location else {
                return fail("newOrder answered without the order's Location", code: .unexpectedResponse)
            }
            orderURL = location
            finalizeURL = order.finalize
            switch order.status {
            case .pending:
                guard let first = order.authorizations.first else {
                    return fail("the new order is pending but lists no authorization", code: .unexpectedResponse)
                }
                state = .authorizing(
                    remaining: Array(order.authorizations.dropFirst()), current: first, responded: false, polls: 0
                )
                return .fetchAuthorization(url: first)
            case .ready:
                return finalize()
            default:
                return orderProgress(order, polls: 0, retryAfter: retryAfter)
            }
        case .awaitingReady(let polls):
            switch order.status {
            case .ready:
                return finalize()
            case .pending:
                return poll(order: polls, retryAfter: retryAfter) { .awaitingReady(polls: $0) }
            default:
                return orderProgress(order, polls: polls, retryAfter: retryAfter)
            }
        case .finalizing(let polls):
            return orderProgress(order, polls: polls, retryAfter: retryAfter)
        default:
            return fail("an order arrived in an unexpected step", code: .unexpectedResponse)
        }
    }

    public mutating func authorizationReceived(_ authorization: ACMEAuthorization, retryAfter: Duration?) -> Action {
        guard case .authorizing(let remaining, let current, let responded, let polls) = state else {
            return fail("an authorization arrived in an unexpected step", code: .unexpectedResponse)
        }
        let name = authorization.identifier.value
        switch authorization.status {
        case .valid:
            if let next = remaining.first {
                state = .authorizing(remaining: Array(remaining.dropFirst()), current: next, responded: false, polls: 0)
                return .fetchAuthorization(url: next)
            }
            guard let orderURL else { return fail("no order URL", code: .unexpectedResponse) }
            state = .awaitingReady(polls: 0)
            return .pollOrder(url: orderURL, after: .zero)
        case .pending:
            if responded {
                guard polls < polling.maximumPolls else {
                    return fail("the CA did not validate \(name) after \(polls) polls", code: .challengeFailed)
                }
                state = .authorizing(remaining: remaining, current: current, responded: true, polls: polls + 1)
                return .pollAuthorization(url: current, after: polling.interval(forPoll: polls, retryAfter: retryAfter))
            }
            guard let challenge = authorization.challenges.first(where: { $0.type == challengeType.rawValue }),
                challenge.token != nil
            else {
                let offered = authorization.challenges.map(\.type).joined(separator: ", ")
                return fail(
                    "the CA offers no \(challengeType) challenge for \(name) (offered: \(offered))",
                    code: .challengeFailed
                )
            }
            state = .authorizing(remaining: remaining, current: current, responded: true, polls: 0)
            return .respondToChallenge(authorizationURL: current, identifier: name, challenge: challenge)
        case .invalid:
            let problem = authorization.challenges.first(where: { $0.type == challengeType.rawValue })?.error
                ?? authorization.challenges.compactMap(\.error).first
            return fail(
                "\(challengeType) validation of \(name) failed: \(problem.map { "\($0)" } ?? "no reason given")",
                code: .challengeFailed,
                problem: problem
            )
        case .deactivated, .expired, .revoked:
            return fail("the authorization for \(name) is \(authorization.status.rawValue)", code: .orderFailed)
        }
    }

    /// The CA acknowledged the challenge response; validation runs on its side.
    public mutating func challengeAccepted(_ challenge: ACMEChallenge) -> Action {
        guard case .authorizing(_, let current, true, _) = state else {
            return fail("a challenge answer arrived in an unexpected step", code: .unexpectedResponse)
        }
        if challenge.status == .invalid {
            return fail(
                "\(challengeType) challenge refused: \(challenge.error.map { "\($0)" } ?? "no reason given")",
                code: .challengeFailed,
                problem: challenge.error
            )
        }
        return .pollAuthorization(url: current, after: polling.initialInterval)
    }

    public mutating func certificateDownloaded() -> Action {
        guard case .downloading = state else {
            return fail("a certificate arrived in an unexpected step", code: .unexpectedResponse)
        }
        state = .done
        return .succeed
    }

    /// A request failed (transport error, problem document): the order ends.
    public mutating func requestFailed(_ error: ACMEError) -> Action {
        state = .failed
        return .fail(error)
    }

    // MARK: Helpers

    private mutating func finalize() -> Action {
        guard let finalizeURL else { return fail("the order has no finalize URL", code: .unexpectedResponse) }
        state = .finalizing(polls: 0)
        return .finalize(url: finalizeURL, names: names)
    }

    /// After finalize: processing → poll, valid → download, invalid → fail.
    private mutating func orderProgress(_ order: ACMEOrder, polls: Int, retryAfter: Duration?) -> Action {
        switch order.status {
        case .valid:
            guard let certificate = order.certificate else {
                return fail("the order is valid but names no certificate URL", code: .unexpectedResponse)
            }
            state = .downloading
            return .downloadCertificate(url: certificate)
        case .processing:
            return poll(order: polls, retryAfter: retryAfter) { .finalizing(polls: $0) }
        case .invalid:
            let reason = order.error.map { "\($0)" } ?? "no reason given"
            return fail("the order became invalid: \(reason)", code: .orderFailed, problem: order.error)
        case .pending, .ready:
            return fail("the order is \(order.status.rawValue) after finalize", code: .orderFailed)
        }
    }

    private mutating func poll(order polls: Int, retryAfter: Duration?, next: (Int) -> State) -> Action {
        guard let orderURL else { return fail("no order URL", code: .unexpectedResponse) }
        guard polls < polling.maximumPolls else {
            return fail("the order did not progress after \(polls) polls", code: .orderFailed)
        }
        state = next(polls + 1)
        return .pollOrder(url: orderURL, after: polling.interval(forPoll: polls, retryAfter: retryAfter))
    }

    private mutating func fail(
        _ reason: String,
        code: ACMEError.Code = .orderFailed,
        problem: ACMEProblem? = nil
    ) -> Action {
        state = .failed
        return .fail(ACMEError(code, reason, problem: problem))
    }
}
