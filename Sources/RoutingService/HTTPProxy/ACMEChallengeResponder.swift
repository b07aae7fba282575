/// The seam for ACME HTTP-01 (filled by the ACME work): the key authorization to serve for a token
/// under `/.well-known/acme-challenge/`, or nil when there is no such challenge pending.
public protocol ACMEChallengeResponder: Sendable {
    func keyAuthorization(forToken token: Substring, host: String?) -> String?
}

/// Until ACME is in: every challenge path answers `404 no challenge`.
public struct NoACMEChallenges: ACMEChallengeResponder {
    public init() {}

    public func keyAuthorization(forToken token: Substring, host: String?) -> String? { nil }
}
