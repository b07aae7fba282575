internal import COpenSSL

/// Why a PEM certificate chain or private key was refused. `code` is for matching, `reason` for people: it
/// says what was wrong and, when OpenSSL said something, what OpenSSL said.
public struct X509Error: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case noCertificateInPEM = "no certificate in PEM"
            case malformedCertificatePEM = "malformed certificate PEM"
            case noPrivateKeyInPEM = "no private key in PEM"
            case malformedPrivateKeyPEM = "malformed private key PEM"
            case encryptedPrivateKey = "encrypted private key"
            case unsupportedKeyType = "unsupported key type"
            case keyDoesNotMatchCertificate = "key does not match certificate"
            case encodingFailed = "encoding failed"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        public static let noCertificateInPEM = Code(.noCertificateInPEM)
        public static let malformedCertificatePEM = Code(.malformedCertificatePEM)
        public static let noPrivateKeyInPEM = Code(.noPrivateKeyInPEM)
        public static let malformedPrivateKeyPEM = Code(.malformedPrivateKeyPEM)
        public static let encryptedPrivateKey = Code(.encryptedPrivateKey)
        public static let unsupportedKeyType = Code(.unsupportedKeyType)
        public static let keyDoesNotMatchCertificate = Code(.keyDoesNotMatchCertificate)
        public static let encodingFailed = Code(.encodingFailed)

        public var description: String { base.rawValue }
    }

    public let code: Code
    public let reason: String

    init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    /// `reason` followed by what OpenSSL's error queue holds for this thread (which is then empty).
    static func draining(_ code: Code, _ reason: String) -> X509Error {
        let queue = X509ErrorQueue.drain()
        return X509Error(code, queue.isEmpty ? reason : "\(reason) (OpenSSL: \(queue))")
    }

    public var description: String { reason }
}

/// OpenSSL's per-thread error queue. Cleared before each operation whose failure we report, and read right
/// after, so a message never mixes in an older failure.
enum X509ErrorQueue {
    static func clear() {
        ERR_clear_error()
    }

    /// The queued errors, oldest first, joined with "; ". Empties the queue.
    static func drain() -> String {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            messages.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return messages.joined(separator: "; ")
    }

    /// True when the most recent queued error says "there was no (further) PEM block": the normal end of a chain.
    static func lastErrorIsNoStartLine() -> Bool {
        let code = ERR_peek_last_error()
        return code != 0 && ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE
    }
}
