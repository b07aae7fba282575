/// What `CertificateStore.loadAll()` found: the certificates that can be served, and, per folder, what
/// could not be loaded or deserves attention. One bad folder never hides the others.
public struct CertificateLoadReport: Sendable {
    /// Sorted by folder name.
    public var certificates: [StoredCertificate]
    public var failures: [CertificateLoadFailure]
    public var warnings: [CertificateLoadWarning]

    public init(
        certificates: [StoredCertificate] = [],
        failures: [CertificateLoadFailure] = [],
        warnings: [CertificateLoadWarning] = []
    ) {
        self.certificates = certificates
        self.failures = failures
        self.warnings = warnings
    }

    /// The certificate to serve for `name` by the SNI rule: an exact name first, then a one-label wildcard;
    /// among several, the one valid the longest.
    public func certificate(covering name: DomainName) -> StoredCertificate? {
        var table = HostTable<StoredCertificate>()
        for certificate in certificates.sorted(by: { $0.notAfter > $1.notAfter }) {
            for certificateName in certificate.names { table.insert(certificate, for: certificateName) }
        }
        return table.lookup(name.value)
    }

    public var inventory: CertificateInventorySnapshot {
        CertificateInventorySnapshot(names: certificates.flatMap(\.names))
    }
}

public struct CertificateLoadFailure: Sendable, CustomStringConvertible {
    public var folder: String
    public var reason: CertificateStoreError

    public init(folder: String, reason: CertificateStoreError) {
        self.folder = folder
        self.reason = reason
    }

    public var description: String { "\(folder): \(reason)" }
}

/// Something wrong that does not stop the certificate from being served (a key readable by others, an
/// unreadable `meta.json`).
public struct CertificateLoadWarning: Sendable, CustomStringConvertible {
    public var folder: String
    public var message: String

    public init(folder: String, message: String) {
        self.folder = folder
        self.message = message
    }

    public var description: String { "\(folder): \(message)" }
}
