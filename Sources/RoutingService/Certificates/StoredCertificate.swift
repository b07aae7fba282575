import Foundation

/// One certificate of the store: its facts and the PEM bytes a TLS context is built from.
public struct StoredCertificate: Sendable, Hashable {
    /// The folder's name inside the certificate directory (`app.example.com`, `_wildcard.example.com`).
    public var folder: String
    /// DNS names (then IP addresses) the certificate covers, in certificate order; the first names the folder.
    public var names: [DomainName]
    public var source: CertificateSource
    public var notBefore: Date
    public var notAfter: Date
    /// One line, most specific first: `CN=R11, O=Let's Encrypt, C=US`.
    public var issuer: String
    /// Upper-case hexadecimal.
    public var serialNumber: String
    /// `cert.pem`: the leaf first, then the intermediates.
    public var chainPEM: [UInt8]
    /// `key.pem`: the leaf's private key, unencrypted PKCS#8.
    public var keyPEM: [UInt8]

    public init(
        folder: String,
        names: [DomainName],
        source: CertificateSource,
        notBefore: Date,
        notAfter: Date,
        issuer: String,
        serialNumber: String,
        chainPEM: [UInt8],
        keyPEM: [UInt8]
    ) {
        self.folder = folder
        self.names = names
        self.source = source
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.issuer = issuer
        self.serialNumber = serialNumber
        self.chainPEM = chainPEM
        self.keyPEM = keyPEM
    }

    /// True for one of its names exactly, or through a one-label wildcard name (`*.example.com` covers
    /// `a.example.com`, not `a.b.example.com` nor `example.com`).
    public func covers(_ name: DomainName) -> Bool {
        CertificateInventorySnapshot(names: names).hasCertificate(covering: name)
    }

    public func isExpired(at now: Date) -> Bool {
        notAfter < now
    }

    /// `2026-03-01 (in 29 days)`, `2026-03-01 (today)` or `2025-01-01 (EXPIRED)`, in UTC.
    public func expiryDescription(now: Date) -> String {
        let date = Self.isoDate(notAfter)
        if isExpired(at: now) { return "\(date) (EXPIRED)" }
        let days = Int((notAfter.timeIntervalSince(now) / 86_400).rounded(.down))
        switch days {
        case 0: return "\(date) (today)"
        case 1: return "\(date) (in 1 day)"
        default: return "\(date) (in \(days) days)"
        }
    }

    static func isoDate(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}

/// The name of a certificate's folder, from its first name: the name itself, with a leading `*` spelled
/// `_wildcard` (`*.example.com` → `_wildcard.example.com`) so the folder name needs no quoting in a shell.
public enum CertificateFolderName {
    public static func forName(_ name: DomainName) throws -> String {
        let folder = name.wildcardParent.map { "_wildcard.\($0)" } ?? name.value
        try validate(folder)
        return folder
    }

    /// A folder name must stay inside the store: no `/`, no leading `.` (hidden names are the store's own
    /// temporary folders), only the characters of host names and IP addresses.
    public static func validate(_ folder: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.-_:")
        guard !folder.isEmpty, !folder.hasPrefix("."), folder.count <= 255, folder.allSatisfy(allowed.contains) else {
            throw CertificateStoreError(
                .invalidFolderName,
                "'\(folder)' cannot name a certificate folder (lower-case host name characters only, not starting with '.')"
            )
        }
    }
}
