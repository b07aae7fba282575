/// Why a certificate could not be loaded from, stored in or removed from the store. `code` is for matching,
/// `reason` for people and names the file or the certificate concerned.
public struct CertificateStoreError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case missingFile = "missing file"
            case unreadableFile = "unreadable file"
            case invalidCertificate = "invalid certificate"
            case invalidPrivateKey = "invalid private key"
            case keyDoesNotMatchCertificate = "key does not match certificate"
            case chainNotLeafFirst = "chain not leaf first"
            case chainOutOfOrder = "chain out of order"
            case expired = "expired"
            case noNames = "no names"
            case invalidFolderName = "invalid folder name"
            case notFound = "not found"
            case writeFailed = "write failed"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        public static let missingFile = Code(.missingFile)
        public static let unreadableFile = Code(.unreadableFile)
        public static let invalidCertificate = Code(.invalidCertificate)
        public static let invalidPrivateKey = Code(.invalidPrivateKey)
        public static let keyDoesNotMatchCertificate = Code(.keyDoesNotMatchCertificate)
        public static let chainNotLeafFirst = Code(.chainNotLeafFirst)
        public static let chainOutOfOrder = Code(.chainOutOfOrder)
        public static let expired = Code(.expired)
        public static let noNames = Code(.noNames)
        public static let invalidFolderName = Code(.invalidFolderName)
        public static let notFound = Code(.notFound)
        public static let writeFailed = Code(.writeFailed)

        public var description: String { base.rawValue }
    }

    public let code: Code
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { reason }
}
