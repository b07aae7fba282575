import ArgumentParser
import Foundation
import RoutingService

struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "List or import the certificates of the certificate store.",
        subcommands: [List.self, Import.self]
    )
}

/// Which certificate directory a `certs` command works on.
struct CertificateDirectoryOptions: ParsableArguments {
    @Option(help: "The configuration file; its certificates.directory names the store.")
    var config: String = "Configs/edge-router.yaml"

    @Option(help: "The certificate directory itself (overrides --config).")
    var directory: String?

    func store() throws -> CertificateStore {
        if let directory { return CertificateStore(directory: CertificateDirectoryLocator.absolute(directory)) }
        return CertificateStore(directory: try CertificateDirectoryLocator.directory(fromConfigAt: config))
    }
}

extension Certs {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One line per certificate: names, source, issuer, expiry, folder; then the folders that failed."
        )

        @OptionGroup var location: CertificateDirectoryOptions

        func run() throws {
            let store = try location.store()
            let report = store.loadAll()
            for line in CertificateListing.lines(report, directory: store.directory, now: Date()) { print(line) }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a certificate chain and its key, and store them (replacing a certificate for the same names)."
        )

        @OptionGroup var location: CertificateDirectoryOptions

        @Option(help: "PEM certificate chain, leaf first.")
        var cert: String

        @Option(help: "PEM private key (EC or RSA, unencrypted).")
        var key: String

        @Option(help: "Where the certificate came from: manual, acme or self-signed.")
        var source: CertificateSource = .manual

        func run() throws {
            let store = try location.store()
            let chainPEM = try Self.read(cert, what: "certificate")
            let keyPEM = try Self.read(key, what: "key")
            let stored: StoredCertificate
            do {
                stored = try store.store(chainPEM: chainPEM, keyPEM: keyPEM, source: source)
            } catch {
                throw CommandFailure("cannot import \(cert) with \(key): \(error)")
            }
            print("stored \(stored.names.map(\.value).joined(separator: ", ")) in \(store.path(ofFolder: stored.folder))")
            print("expires \(stored.expiryDescription(now: Date())), issuer \(stored.issuer)")
        }

        private static func read(_ path: String, what: String) throws -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw CommandFailure("cannot read the \(what) file \(path)")
            }
            return Array(data)
        }
    }
}

extension CertificateSource: ExpressibleByArgument {}

/// The text of `certs list`: a table of the loaded certificates, then failures and warnings by folder.
enum CertificateListing {
    static func lines(_ report: CertificateLoadReport, directory: String, now: Date) -> [String] {
        var lines: [String] = []
        if report.certificates.isEmpty && report.failures.isEmpty {
            lines.append("no certificates in \(directory)")
        }
        if !report.certificates.isEmpty {
            let rows = [["NAMES", "SOURCE", "ISSUER", "EXPIRES", "FOLDER"]] + report.certificates.map { certificate in
                [
                    certificate.names.map(\.value).joined(separator: ","),
                    certificate.source.rawValue,
                    certificate.issuer,
                    certificate.expiryDescription(now: now),
                    certificate.folder,
                ]
            }
            let widths = (0..<5).map { column in rows.map { $0[column].count }.max() ?? 0 }
            for row in rows {
                let padded = row.enumerated().map { column, cell in
                    column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                }
                lines.append(padded.joined(separator: "  "))
            }
        }
        lines += report.failures.map { "FAILED  \($0.folder): \($0.reason)" }
        lines += report.warnings.map { "WARNING \($0.folder): \($0.message)" }
        return lines
    }
}
