/// Where a stored certificate came from; ACME renews only its own (`acme`) certificates.
public enum CertificateSource: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case acme
    case manual
    case selfSigned = "self-signed"

    public var description: String { rawValue }
}
