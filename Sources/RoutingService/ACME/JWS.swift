import Foundation

/// Flattened JWS (RFC 7515 §7.2.2) signed with the ACME account key, ES256 only (RFC 8555 §6.2).
public struct ACMEJWSSigner: Sendable {
    public let key: P256PrivateKey

    public init(key: P256PrivateKey) {
        self.key = key
    }

    /// The public JWK in RFC 7638 canonical form: members in lexicographic order, no spaces. Also what
    /// the `jwk` header carries.
    public var canonicalJWK: String {
        #"{"crv":"P-256","kty":"EC","x":"\#(Base64URL.encode(key.publicX))","y":"\#(Base64URL.encode(key.publicY))"}"#
    }

    /// RFC 7638 thumbprint: base64url(SHA-256(canonical JWK)).
    public var thumbprint: String {
        Base64URL.encode(SHA256Digest.hash(Array(canonicalJWK.utf8)))
    }

    /// RFC 8555 §8.1: `token || '.' || thumbprint`.
    public func keyAuthorization(token: String) -> String {
        "\(token).\(thumbprint)"
    }

    public enum KeyIdentification: Sendable {
        /// `newAccount` (and revocation by certificate key): the public key itself.
        case jwk
        /// Every other request: the account URL.
        case kid(String)
    }

    /// The request body. `payload` nil is POST-as-GET (RFC 8555 §6.3: an empty payload string).
    public func sign(payload: [UInt8]?, url: String, nonce: String, key identification: KeyIdentification) throws -> [UInt8] {
        var header = "{\"alg\":\"ES256\""
        switch identification {
        case .jwk: header += ",\"jwk\":\(canonicalJWK)"
        case .kid(let accountURL): header += ",\"kid\":\(Self.jsonString(accountURL))"
        }
        header += ",\"nonce\":\(Self.jsonString(nonce)),\"url\":\(Self.jsonString(url))}"
        let protected = Base64URL.encode(Array(header.utf8))
        let encodedPayload = payload.map { Base64URL.encode($0) } ?? ""
        let signature = try key.signES256(Array("\(protected).\(encodedPayload)".utf8))
        let body = #"{"protected":"\#(protected)","payload":"\#(encodedPayload)","signature":"\#(Base64URL.encode(signature))"}"#
        return Array(body.utf8)
    }

    /// A JSON string literal (quotes and escapes), through the system encoder so nothing is missed.
    static func jsonString(_ value: String) -> String {
        let data = (try? JSONEncoder().encode(value)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
