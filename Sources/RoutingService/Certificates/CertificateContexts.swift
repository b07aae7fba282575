import Foundation
import Logging

/// Turns what the certificate store loaded into the TLS front's index: one `SSL_CTX` per certificate,
/// built here (off the event loops, at load time), never during a handshake.
public enum CertificateContexts {
    /// What the HTTPS front offers, in server preference order: HTTP/2, then HTTP/1.1.
    public static let frontALPNProtocols: [ALPNProtocol] = [.http2, .http1_1]

    public struct Outcome: Sendable {
        public var index: TLSCertificateIndex
        /// Certificates the store loaded but OpenSSL refused, with the reason.
        public var refused: [(folder: String, reason: String)]
    }

    /// When two certificates cover the same name, the one expiring last serves it (a renewed
    /// certificate next to the one it replaces). `defaultName` picks the context for SNI-less clients.
    public static func build(
        from certificates: [StoredCertificate],
        defaultName: String?,
        alpnProtocols: [ALPNProtocol] = frontALPNProtocols
    ) -> Outcome {
        var entries: [TLSCertificateIndex.Entry] = []
        var refused: [(folder: String, reason: String)] = []
        var claimed = Set<DomainName>()
        var defaultContext: OpenSSLServerContext?
        let defaultDomain = defaultName.map(DomainName.init)
        for certificate in certificates.sorted(by: { $0.notAfter > $1.notAfter }) {
            let names = certificate.names.filter { !claimed.contains($0) }
            guard !names.isEmpty else { continue }
            do {
                let context = try OpenSSLServerContext(
                    certificateChainPEM: certificate.chainPEM,
                    privateKeyPEM: certificate.keyPEM,
                    alpnProtocols: alpnProtocols
                )
                entries.append(.init(names: names, context: context))
                claimed.formUnion(names)
                if let defaultDomain, defaultContext == nil, certificate.covers(defaultDomain) {
                    defaultContext = context
                }
            } catch {
                refused.append((certificate.folder, "\(error)"))
            }
        }
        // Names are unique by construction, so the index cannot refuse them.
        let index = (try? TLSCertificateIndex(entries: entries, defaultContext: defaultContext)) ?? .empty
        return Outcome(index: index, refused: refused)
    }

    /// Loads the store and builds the index, logging every certificate that could not be used.
    public static func load(
        store: CertificateStore,
        defaultName: String?,
        logger: Logger
    ) -> (index: TLSCertificateIndex, report: CertificateLoadReport) {
        let report = store.loadAll()
        for failure in report.failures {
            logger.error("Certificate not loaded", metadata: ["folder": "\(failure.folder)", "reason": "\(failure.reason)"])
        }
        for warning in report.warnings {
            logger.warning("Certificate warning", metadata: ["folder": "\(warning.folder)", "reason": "\(warning.message)"])
        }
        let outcome = build(from: report.certificates, defaultName: defaultName)
        for (folder, reason) in outcome.refused {
            logger.error("Certificate refused by OpenSSL", metadata: ["folder": "\(folder)", "reason": "\(reason)"])
        }
        if let defaultName, outcome.index.defaultContext == nil {
            logger.warning("No certificate covers certificates.default; clients without SNI will be refused",
                           metadata: ["default": "\(defaultName)"])
        }
        logger.info("Certificates loaded", metadata: [
            "count": "\(report.certificates.count)", "names": "\(outcome.index.names.map(\.value).joined(separator: ","))",
        ])
        return (outcome.index, report)
    }
}
