internal import COpenSSL

/// An OpenSSL failure, with OpenSSL's own error queue drained into it the moment it happened
/// (the queue is per thread and the next call would mix its errors in).
public struct OpenSSLError: Error, Sendable, CustomStringConvertible {
    /// What we were doing when OpenSSL failed; callers match on this (`error.code == .handshakeFailed`).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case handshakeFailed
            case unrecognizedServerName
            case readFailed
            case writeFailed
            case shutdownFailed
            case invalidCertificateChain
            case invalidPrivateKey
            case privateKeyMismatch
            case invalidTrustRoots
            case contextSetupFailed
            case connectionSetupFailed
            case keyGenerationFailed
            case signingFailed
            case certificateBuildFailed
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The peer sent something that is not a valid TLS handshake, or the handshake was refused.
        public static let handshakeFailed = Code(.handshakeFailed)
        /// The server refused the handshake: no certificate for the client's SNI (alert `unrecognized_name`).
        public static let unrecognizedServerName = Code(.unrecognizedServerName)
        public static let readFailed = Code(.readFailed)
        public static let writeFailed = Code(.writeFailed)
        public static let shutdownFailed = Code(.shutdownFailed)
        /// The PEM chain holds no certificate, or one that does not parse.
        public static let invalidCertificateChain = Code(.invalidCertificateChain)
        public static let invalidPrivateKey = Code(.invalidPrivateKey)
        /// The private key does not belong to the leaf certificate.
        public static let privateKeyMismatch = Code(.privateKeyMismatch)
        /// The CA bundle given to a client could not be read.
        public static let invalidTrustRoots = Code(.invalidTrustRoots)
        /// OpenSSL refused a setting while building an `SSL_CTX` (cipher list, groups, versions…).
        public static let contextSetupFailed = Code(.contextSetupFailed)
        /// `SSL_new` or a per-connection setting (SNI, ALPN, host name check) failed.
        public static let connectionSetupFailed = Code(.connectionSetupFailed)
        /// A new key pair could not be made, or a stored key is not the expected kind.
        public static let keyGenerationFailed = Code(.keyGenerationFailed)
        /// Signing or hashing (JWS, CSR) failed.
        public static let signingFailed = Code(.signingFailed)
        /// A CSR or a self-signed challenge certificate could not be built.
        public static let certificateBuildFailed = Code(.certificateBuildFailed)

        public var description: String {
            switch base {
            case .handshakeFailed: "TLS handshake failed"
            case .unrecognizedServerName: "no certificate for the requested server name"
            case .readFailed: "TLS read failed"
            case .writeFailed: "TLS write failed"
            case .shutdownFailed: "TLS shutdown failed"
            case .invalidCertificateChain: "invalid certificate chain"
            case .invalidPrivateKey: "invalid private key"
            case .privateKeyMismatch: "private key does not match the certificate"
            case .invalidTrustRoots: "invalid CA bundle"
            case .contextSetupFailed: "TLS context setup failed"
            case .connectionSetupFailed: "TLS connection setup failed"
            case .keyGenerationFailed: "key generation failed"
            case .signingFailed: "signing failed"
            case .certificateBuildFailed: "certificate building failed"
            }
        }
    }

    public let code: Code
    /// Our own words about the failure (a server name, a step), when OpenSSL's do not say enough.
    public let detail: String?
    /// OpenSSL's reason strings from its error queue, oldest first (e.g. `wrong version number`).
    public let reasons: [String]

    init(code: Code, detail: String? = nil, reasons: [String] = []) {
        self.code = code
        self.detail = detail
        self.reasons = reasons
    }

    /// The most telling words about the failure: OpenSSL's last reason, else our detail, else the code.
    /// A refused SNI is the exception: OpenSSL only says "callback failed", our detail names the name.
    public var reason: String {
        if code == .unrecognizedServerName, let detail { return detail }
        return reasons.last ?? detail ?? code.description
    }

    public var description: String {
        var text = code.description
        if let detail { text += " (\(detail))" }
        if !reasons.isEmpty { text += ": " + reasons.joined(separator: "; ") }
        return text
    }

    /// Builds an error for `code`, emptying the calling thread's OpenSSL error queue into it.
    static func draining(_ code: Code, detail: String? = nil) -> OpenSSLError {
        OpenSSLError(code: code, detail: detail, reasons: drainErrorQueue())
    }

    /// Empties the calling thread's error queue, so the next `SSL_*` result is read on its own.
    static func clearErrorQueue() {
        // Peeking is cheaper than clearing all sixteen slots, and the queue is empty almost always.
        if ERR_peek_error() != 0 { ERR_clear_error() }
    }

    private static func drainErrorQueue() -> [String] {
        var reasons: [String] = []
        while true {
            let packed = ERR_get_error()
            if packed == 0 { break }
            if let text = ERR_reason_error_string(packed) {
                reasons.append(String(cString: text))
            } else {
                reasons.append("OpenSSL error \(String(packed, radix: 16)) (library \(ERR_GET_LIB(packed)))")
            }
        }
        return reasons
    }
}
