/// Why an ACME exchange failed. `reason` names the step and the server's own words where there are some.
public struct ACMEError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidURL = "invalid URL"
            case connectionFailed = "connection failed"
            case timedOut = "timed out"
            case serverProblem = "server problem"
            case unexpectedResponse = "unexpected response"
            case challengeFailed = "challenge failed"
            case orderFailed = "order failed"
            case accountStorage = "account storage"
            case notConfigured = "ACME not configured"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        public static let invalidURL = Code(.invalidURL)
        /// TCP or TLS to the ACME server failed (wrong port, untrusted certificate).
        public static let connectionFailed = Code(.connectionFailed)
        public static let timedOut = Code(.timedOut)
        /// The server answered with a problem document (RFC 8555 §6.7).
        public static let serverProblem = Code(.serverProblem)
        /// A response this client cannot use (bad JSON, missing header).
        public static let unexpectedResponse = Code(.unexpectedResponse)
        /// The CA could not validate the challenge.
        public static let challengeFailed = Code(.challengeFailed)
        /// The order became invalid, or polling gave up.
        public static let orderFailed = Code(.orderFailed)
        public static let accountStorage = Code(.accountStorage)
        public static let notConfigured = Code(.notConfigured)

        public var description: String { base.rawValue }
    }

    public let code: Code
    public let reason: String
    /// The server's problem document, when there was one.
    public let problem: ACMEProblem?

    public init(_ code: Code, _ reason: String, problem: ACMEProblem? = nil) {
        self.code = code
        self.reason = reason
        self.problem = problem
    }

    public var description: String { reason }
}
