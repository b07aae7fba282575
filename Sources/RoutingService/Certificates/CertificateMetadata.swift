import Foundation

/// `meta.json` beside `cert.pem` and `key.pem`: what a person (or `certs list`) wants to know without parsing
/// the PEM, and the one fact the PEM cannot tell, the source. The certificate stays the truth for everything
/// else: when the two disagree, the certificate wins.
struct CertificateMetadata: Codable, Equatable, Sendable {
    var names: [String]
    var source: CertificateSource
    var notBefore: Date
    var notAfter: Date
    var issuer: String
    var serial: String

    static let fileName = "meta.json"

    init(_ certificate: StoredCertificate) {
        names = certificate.names.map(\.value)
        source = certificate.source
        notBefore = certificate.notBefore
        notAfter = certificate.notAfter
        issuer = certificate.issuer
        serial = certificate.serialNumber
    }

    func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [UInt8(ascii: "\n")]
    }

    static func decode(_ bytes: [UInt8]) throws -> CertificateMetadata {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(CertificateMetadata.self, from: Data(bytes))
    }
}
