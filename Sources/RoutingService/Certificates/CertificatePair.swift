import Foundation

/// A certificate chain and its private key, checked to belong together: both parse, the key is the leaf's,
/// the leaf comes first and each certificate is issued by the next one.
public struct CertificatePair: Sendable {
    /// Leaf first.
    public let chain: [X509Certificate]
    public let key: PrivateKey

    public var leaf: X509Certificate { chain[0] }

    /// The names the leaf covers: its DNS names, then its IP addresses; the common name when it has neither.
    public var names: [DomainName] {
        var names = leaf.subjectAlternativeDNSNames + leaf.subjectAlternativeIPAddresses
        if names.isEmpty, let commonName = leaf.commonName { names = [commonName] }
        var seen = Set<String>()
        return names.map(DomainName.init).filter { seen.insert($0.value).inserted }
    }

    public init(chainPEM: [UInt8], keyPEM: [UInt8]) throws {
        do {
            chain = try X509Certificate.parseChain(pem: chainPEM)
        } catch let error as X509Error {
            throw CertificateStoreError(.invalidCertificate, "certificate chain: \(error.reason)")
        }
        do {
            key = try PrivateKey(pem: keyPEM)
        } catch let error as X509Error {
            throw CertificateStoreError(.invalidPrivateKey, "private key: \(error.reason)")
        }
        guard key.matches(chain[0]) else {
            if let index = chain.indices.dropFirst().first(where: { key.matches(chain[$0]) }) {
                throw CertificateStoreError(
                    .chainNotLeafFirst,
                    "the private key belongs to certificate \(index + 1) of the chain (\(chain[index].subject)), "
                        + "not the first: put the leaf certificate first"
                )
            }
            throw CertificateStoreError(
                .keyDoesNotMatchCertificate,
                "the private key does not match the certificate (\(chain[0].subject))"
            )
        }
        for index in chain.indices.dropLast() where !chain[index].isIssued(by: chain[index + 1]) {
            throw CertificateStoreError(
                .chainOutOfOrder,
                "certificate \(index + 2) of the chain (\(chain[index + 1].subject)) did not issue certificate "
                    + "\(index + 1) (\(chain[index].subject)): order the chain leaf first, each followed by its issuer"
            )
        }
        guard !names.isEmpty else {
            throw CertificateStoreError(.noNames, "the certificate (\(chain[0].subject)) names no host (no SAN, no CN)")
        }
    }

    /// Throws `.expired` when the leaf's not-after date is before `now`.
    public func checkNotExpired(at now: Date) throws {
        guard leaf.notAfter >= now else {
            throw CertificateStoreError(
                .expired,
                "the certificate for \(names[0]) expired on \(StoredCertificate.isoDate(leaf.notAfter))"
                    + " (notAfter \(leaf.notAfter))"
            )
        }
    }

    /// The folder name (from the first name), the facts, and the PEM bytes as they are written to the store:
    /// each certificate and the key re-encoded, so stray text around the PEM blocks is dropped.
    /// `folder` defaults to the name derived from the first name.
    public func storedCertificate(source: CertificateSource, folder: String? = nil) throws -> StoredCertificate {
        StoredCertificate(
            folder: try folder ?? CertificateFolderName.forName(names[0]),
            names: names,
            source: source,
            notBefore: leaf.notBefore,
            notAfter: leaf.notAfter,
            issuer: leaf.issuer,
            serialNumber: leaf.serialNumberHex,
            chainPEM: chain.flatMap(\.pem),
            keyPEM: key.pem
        )
    }
}
