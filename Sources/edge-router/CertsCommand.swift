import ArgumentParser
import Foundation
import NIOHTTP1
import RoutingService

struct Certs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "List or import certificates: through the running gateway's admin API, else in the store directly.",
        subcommands: [List.self, Import.self]
    )
}

/// How a `certs` command reaches the certificates. Through the running gateway's admin API when one
/// answers (an import is then loaded into the TLS front at once); directly in the certificate store
/// when `--directory` is given, when the configuration sets no `admin.tokenFile` (no admin API runs),
/// or when nothing answers at the admin address. `--config` serves both: it locates the admin API and
/// names `certificates.directory`.
struct CertificateAccessOptions: ParsableArguments {
    @OptionGroup var admin: AdminOptions

    @Option(help: "Work on this certificate directory directly, not through the running gateway.")
    var directory: String?

    /// Runs `api` against the gateway, or `direct` on the store with a note saying why the store is used.
    /// A refused token is an error, not a reason to go around the gateway.
    func run(
        api: (AdminClient) async throws -> Void,
        direct: (CertificateStore, _ why: String) throws -> Void
    ) async throws {
        if let directory {
            return try direct(CertificateStore(directory: CertificateDirectoryLocator.absolute(directory)), "--directory given")
        }
        let why: String
        switch try admin.resolve() {
        case .noTokenFile:
            why = "\(admin.config) sets no admin.tokenFile, so no admin API runs"
        case .configured(let client):
            do {
                return try await api(client)
            } catch AdminClientError.notRunning(let address, _) {
                why = "no gateway answers at \(address)"
            }
        }
        try direct(CertificateStore(directory: try CertificateDirectoryLocator.directory(fromConfigAt: admin.config)), why)
    }

    static func viaAPI(_ client: AdminClient) -> String {
        "via the admin API of the running gateway at \(client.address)"
    }

    static func directly(_ store: CertificateStore, _ why: String) -> String {
        "directly in the certificate store \(store.directory) (\(why))"
    }
}

extension Certs {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Where the list comes from, then one line per certificate: names, source, issuer, expiry, folder; then the folders that failed."
        )

        @OptionGroup var access: CertificateAccessOptions

        func run() async throws {
            try await access.run(
                api: { client in
                    let object = try AdminOutput.check(try await client.request(.GET, "/certificates"))
                    print("certificates " + CertificateAccessOptions.viaAPI(client))
                    for line in CertificateListing.lines(apiAnswer: object) { print(line) }
                },
                direct: { store, why in
                    let report = store.loadAll()
                    print("certificates " + CertificateAccessOptions.directly(store, why))
                    for line in CertificateListing.lines(report, directory: store.directory, now: Date()) { print(line) }
                }
            )
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a certificate chain and its key, and store them (replacing a certificate for the same names); a running gateway serves it at once."
        )

        @OptionGroup var access: CertificateAccessOptions

        @Option(help: "PEM certificate chain, leaf first.")
        var cert: String

        @Option(help: "PEM private key (EC or RSA, unencrypted).")
        var key: String

        @Option(help: "Where the certificate came from: manual, acme or self-signed.")
        var source: CertificateSource = .manual

        func run() async throws {
            let chainPEM = try Self.read(cert, what: "certificate")
            let keyPEM = try Self.read(key, what: "key")
            try await access.run(
                api: { client in
                    let body: [String: Any] = [
                        "cert": String(decoding: chainPEM, as: UTF8.self),
                        "key": String(decoding: keyPEM, as: UTF8.self),
                        "source": source.rawValue,
                    ]
                    let response = try await client.request(.POST, "/certificates", json: body)
                    guard (200..<300).contains(response.status) else {
                        let reason = response.json?["error"] as? String ?? "HTTP \(response.status): \(response.text)"
                        throw CommandFailure("cannot import \(cert) with \(key): \(reason)")
                    }
                    let stored = response.json ?? [:]
                    let names = (stored["names"] as? [String] ?? []).joined(separator: ", ")
                    print("stored \(names) in folder \(stored["folder"] as? String ?? "?") " + CertificateAccessOptions.viaAPI(client))
                    print("expires \(stored["expires"] as? String ?? "?"), issuer \(stored["issuer"] as? String ?? "?")")
                    print("served at once: the gateway swapped it into its TLS front")
                },
                direct: { store, why in
                    let stored: StoredCertificate
                    do {
                        stored = try store.store(chainPEM: chainPEM, keyPEM: keyPEM, source: source)
                    } catch {
                        throw CommandFailure("cannot import \(cert) with \(key): \(error)")
                    }
                    print("stored \(stored.names.map(\.value).joined(separator: ", ")) in \(store.path(ofFolder: stored.folder)) "
                        + CertificateAccessOptions.directly(store, why))
                    print("expires \(stored.expiryDescription(now: Date())), issuer \(stored.issuer)")
                }
            )
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

/// The text of `certs list`: a table of the certificates, then failures and warnings by folder. The
/// same table whether it comes from the store or from the admin API's `GET /certificates`.
enum CertificateListing {
    static func lines(_ report: CertificateLoadReport, directory: String, now: Date) -> [String] {
        lines(
            rows: report.certificates.map { certificate in
                [
                    certificate.names.map(\.value).joined(separator: ","),
                    certificate.source.rawValue,
                    certificate.issuer,
                    certificate.expiryDescription(now: now),
                    certificate.folder,
                ]
            },
            failures: report.failures.map { ($0.folder, "\($0.reason)") },
            warnings: report.warnings.map { ($0.folder, $0.message) },
            empty: "no certificates in \(directory)"
        )
    }

    static func lines(apiAnswer object: [String: Any]) -> [String] {
        let certificates = object["certificates"] as? [[String: Any]] ?? []
        let failures = object["failures"] as? [[String: Any]] ?? []
        let warnings = object["warnings"] as? [[String: Any]] ?? []
        return lines(
            rows: certificates.map { certificate in
                [
                    (certificate["names"] as? [String] ?? []).joined(separator: ","),
                    certificate["source"] as? String ?? "?",
                    certificate["issuer"] as? String ?? "?",
                    certificate["expires"] as? String ?? "?",
                    certificate["folder"] as? String ?? "?",
                ]
            },
            failures: failures.map { ($0["folder"] as? String ?? "?", $0["reason"] as? String ?? "?") },
            warnings: warnings.map { ($0["folder"] as? String ?? "?", $0["message"] as? String ?? "?") },
            empty: "no certificates in the gateway's store"
        )
    }

    private static func lines(
        rows certificates: [[String]],
        failures: [(folder: String, reason: String)],
        warnings: [(folder: String, message: String)],
        empty: String
    ) -> [String] {
        var lines: [String] = []
        if certificates.isEmpty && failures.isEmpty { lines.append(empty) }
        if !certificates.isEmpty {
            lines += AdminOutput.table([["NAMES", "SOURCE", "ISSUER", "EXPIRES", "FOLDER"]] + certificates)
        }
        lines += failures.map { "FAILED  \($0.folder): \($0.reason)" }
        lines += warnings.map { "WARNING \($0.folder): \($0.message)" }
        return lines
    }
}
