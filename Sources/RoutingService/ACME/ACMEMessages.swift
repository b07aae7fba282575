import Foundation

/// The JSON objects of RFC 8555 this client reads and writes. Unknown fields are ignored; an unknown
/// status value is a decoding error (the client would not know what to do next).

/// RFC 8555 §7.1.1.
public struct ACMEDirectory: Decodable, Sendable, Equatable {
    public var newNonce: String
    public var newAccount: String
    public var newOrder: String
}

/// RFC 8555 §9.7.8: `dns` identifiers only here.
public struct ACMEIdentifier: Codable, Sendable, Hashable {
    public var type: String
    public var value: String

    public static func dns(_ name: String) -> ACMEIdentifier { ACMEIdentifier(type: "dns", value: name) }
}

/// RFC 8555 §7.1.6 order states.
public enum ACMEOrderStatus: String, Decodable, Sendable {
    case pending, ready, processing, valid, invalid
}

/// RFC 8555 §7.1.3.
public struct ACMEOrder: Decodable, Sendable, Equatable {
    public var status: ACMEOrderStatus
    public var identifiers: [ACMEIdentifier]
    public var authorizations: [String]
    public var finalize: String
    public var certificate: String?
    public var error: ACMEProblem?

    public init(
        status: ACMEOrderStatus,
        identifiers: [ACMEIdentifier],
        authorizations: [String],
        finalize: String,
        certificate: String? = nil,
        error: ACMEProblem? = nil
    ) {
        self.status = status
        self.identifiers = identifiers
        self.authorizations = authorizations
        self.finalize = finalize
        self.certificate = certificate
        self.error = error
    }
}

public enum ACMEAuthorizationStatus: String, Decodable, Sendable {
    case pending, valid, invalid, deactivated, expired, revoked
}

/// RFC 8555 §7.1.4.
public struct ACMEAuthorization: Decodable, Sendable, Equatable {
    public var status: ACMEAuthorizationStatus
    public var identifier: ACMEIdentifier
    public var challenges: [ACMEChallenge]

    public init(status: ACMEAuthorizationStatus, identifier: ACMEIdentifier, challenges: [ACMEChallenge]) {
        self.status = status
        self.identifier = identifier
        self.challenges = challenges
    }
}

public enum ACMEChallengeStatus: String, Decodable, Sendable {
    case pending, processing, valid, invalid
}

/// The challenge types this client answers.
public enum ACMEChallengeType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// RFC 8555 §8.3, answered by the plain listener.
    case http01 = "http-01"
    /// RFC 8737, answered by the TLS listener.
    case tlsALPN01 = "tls-alpn-01"

    public var description: String { rawValue }
}

/// RFC 8555 §8.
public struct ACMEChallenge: Decodable, Sendable, Equatable {
    /// Kept as text: a server may offer types this client does not know (`dns-01`).
    public var type: String
    public var url: String
    public var status: ACMEChallengeStatus
    public var token: String?
    public var error: ACMEProblem?

    public init(type: String, url: String, status: ACMEChallengeStatus, token: String?, error: ACMEProblem? = nil) {
        self.type = type
        self.url = url
        self.status = status
        self.token = token
        self.error = error
    }
}

/// RFC 7807 problem document, as ACME uses it (RFC 8555 §6.7).
public struct ACMEProblem: Decodable, Sendable, Equatable, CustomStringConvertible {
    public var type: String
    public var detail: String?
    public var subproblems: [ACMEProblem]?

    public init(type: String, detail: String? = nil) {
        self.type = type
        self.detail = detail
    }

    public static let badNonceType = "urn:ietf:params:acme:error:badNonce"

    public var description: String {
        let shortType = type.hasPrefix("urn:ietf:params:acme:error:") ? String(type.dropFirst(27)) : type
        guard let detail, !detail.isEmpty else { return shortType }
        return "\(shortType): \(detail)"
    }
}
