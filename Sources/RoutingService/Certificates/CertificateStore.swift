import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The certificate directory (SPEC §3): one folder per certificate holding `cert.pem` (leaf first, then the
/// chain), `key.pem` (mode 0600) and `meta.json`. A folder with only the two PEM files loads too: its facts
/// come from the certificate and its source is `manual`.
///
/// Names starting with `.` are the store's own temporary folders (and the place for other state kept in the
/// directory, such as an ACME account under `.acme/`); they are never loaded as certificates.
///
/// Replacing a certificate never modifies a folder in place. The new folder is written in full under a hidden
/// name (`.NAME.new-XXXXXXXX`, every file through `AtomicFile`, so fsynced) and then swapped in: the current
/// folder is renamed aside (`.NAME.old-XXXXXXXX`), the new one renamed to `NAME`, the folder fsynced, the old
/// one deleted. Each rename is atomic, so at any instant `NAME` is either the complete old folder or the
/// complete new one, and a key is never seen beside a certificate of another folder. A crash can leave:
/// - a half-written `.NAME.new-*`: hidden, ignored, deleted by the next store of that name;
/// - `.NAME.old-*` with no `NAME` (crash between the two renames): `loadAll()` serves the old folder from there
///   and the next store of that name first moves it back, so the previous certificate is never lost;
/// - `.NAME.old-*` beside a new `NAME` (crash before the delete): ignored, deleted by the next store.
public struct CertificateStore: Sendable {
    public static let certificateFileName = "cert.pem"
    public static let keyFileName = "key.pem"
    public static let metadataFileName = CertificateMetadata.fileName

    public let directory: String
    private let now: @Sendable () -> Date

    /// `now` decides what "expired" means; tests inject a clock.
    public init(directory: String, now: @escaping @Sendable () -> Date = { Date() }) {
        self.directory = directory
        self.now = now
    }

    public func path(ofFolder folder: String) -> String {
        "\(directory)/\(folder)"
    }

    // MARK: - Loading

    /// Every certificate folder, each loaded on its own: a folder that fails is reported (folder and reason)
    /// and the others still load. A missing directory is an empty store.
    public func loadAll() -> CertificateLoadReport {
        var report = CertificateLoadReport()
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            if FileManager.default.fileExists(atPath: directory) {
                report.failures.append(CertificateLoadFailure(
                    folder: directory,
                    reason: CertificateStoreError(.unreadableFile, "cannot list the certificate directory \(directory): \(error)")
                ))
            }
            return report
        }
        let folders = entries.filter { !$0.hasPrefix(".") && isDirectory(path(ofFolder: $0)) }
        var locations = folders.map { (folder: $0, path: path(ofFolder: $0), interrupted: false) }
        let present = Set(folders)
        var setAside: [String: String] = [:]
        for (folder, entry) in StagingName.setAside(in: entries) where !present.contains(folder) {
            setAside[folder] = entry
        }
        locations += setAside.map { (folder: $0.key, path: path(ofFolder: $0.value), interrupted: true) }
        for location in locations.sorted(by: { $0.folder < $1.folder }) {
            do {
                let (certificate, warnings) = try loadFolder(at: location.path, named: location.folder)
                report.certificates.append(certificate)
                report.warnings += warnings.map { CertificateLoadWarning(folder: location.folder, message: $0) }
                if location.interrupted {
                    report.warnings.append(CertificateLoadWarning(
                        folder: location.folder,
                        message: "a replacement of this certificate was interrupted; serving the previous one from "
                            + "\(location.path) (the next import of it completes the recovery)"
                    ))
                }
            } catch let error as CertificateStoreError {
                report.failures.append(CertificateLoadFailure(folder: location.folder, reason: error))
            } catch {
                report.failures.append(CertificateLoadFailure(
                    folder: location.folder,
                    reason: CertificateStoreError(.unreadableFile, "\(error)")
                ))
            }
        }
        return report
    }

    /// One folder; throws `CertificateStoreError` saying what is wrong with it.
    public func load(folder: String) throws -> StoredCertificate {
        try CertificateFolderName.validate(folder)
        guard isDirectory(path(ofFolder: folder)) else {
            throw CertificateStoreError(.notFound, "no certificate folder '\(folder)' in \(directory)")
        }
        return try loadFolder(at: path(ofFolder: folder), named: folder).certificate
    }

    /// The certificate `loadAll()` would serve for `name`.
    public func certificate(covering name: DomainName) -> StoredCertificate? {
        loadAll().certificate(covering: name)
    }

    /// Whether a loadable certificate covers `name` (exactly, or by a one-label wildcard).
    public func hasCertificate(covering name: DomainName) -> Bool {
        loadAll().inventory.hasCertificate(covering: name)
    }

    private func loadFolder(at folderPath: String, named folder: String) throws -> (
        certificate: StoredCertificate, warnings: [String]
    ) {
        var warnings: [String] = []
        let chainPEM = try readFile(Self.certificateFileName, in: folderPath)
        let keyPEM = try readFile(Self.keyFileName, in: folderPath)
        if let mode = permissions(of: "\(folderPath)/\(Self.keyFileName)"), mode & 0o077 != 0 {
            warnings.append(
                "\(Self.keyFileName) is readable or writable by group or others (mode \(String(mode, radix: 8))): "
                    + "run chmod 600 on it"
            )
        }
        let pair = try CertificatePair(chainPEM: chainPEM, keyPEM: keyPEM)
        try pair.checkNotExpired(at: now())

        var source = CertificateSource.manual
        let metadataPath = "\(folderPath)/\(Self.metadataFileName)"
        if FileManager.default.fileExists(atPath: metadataPath) {
            do {
                let metadata = try CertificateMetadata.decode(try readFile(Self.metadataFileName, in: folderPath))
                source = metadata.source
                if metadata.serial.uppercased() != pair.leaf.serialNumberHex {
                    warnings.append(
                        "\(Self.metadataFileName) describes another certificate (serial \(metadata.serial)); "
                            + "the facts shown come from \(Self.certificateFileName)"
                    )
                }
            } catch {
                warnings.append("\(Self.metadataFileName) cannot be read (\(error)); treating the certificate as manual")
            }
        }
        return (try pair.storedCertificate(source: source, folder: folder), warnings)
    }

    private func readFile(_ name: String, in folderPath: String) throws -> [UInt8] {
        let filePath = "\(folderPath)/\(name)"
        guard FileManager.default.fileExists(atPath: filePath) else {
            throw CertificateStoreError(.missingFile, "\(name) is missing")
        }
        guard let data = FileManager.default.contents(atPath: filePath) else {
            throw CertificateStoreError(.unreadableFile, "\(name) cannot be read (check its permissions)")
        }
        return Array(data)
    }

    // MARK: - Storing

    /// Validates the pair (both parse, the key is the first certificate's, the chain is in order, not expired)
    /// and writes it as the folder named after its first name, replacing any certificate there.
    @discardableResult
    public func store(chainPEM: [UInt8], keyPEM: [UInt8], source: CertificateSource) throws -> StoredCertificate {
        try store(chainPEM: chainPEM, keyPEM: keyPEM, source: source, interruption: nil)
    }

    /// Where `_testOnly_store` stops, as a crash would, leaving what it wrote so far.
    public enum Interruption: Sendable {
        /// `key.pem`'s temporary file written, not yet renamed, inside the new hidden folder.
        case whileWritingKey
        /// The new hidden folder complete; the current folder untouched.
        case beforeSwap
        /// The current folder renamed aside; the new one not yet in its place.
        case betweenRenames
    }

    /// Test hook: `store` that stops at `interruption` and throws `AtomicFileError` (`isSimulatedCrash`).
    public func _testOnly_store(
        chainPEM: [UInt8],
        keyPEM: [UInt8],
        source: CertificateSource,
        interruptedAt interruption: Interruption
    ) throws {
        _ = try store(chainPEM: chainPEM, keyPEM: keyPEM, source: source, interruption: interruption)
    }

    private func store(
        chainPEM: [UInt8],
        keyPEM: [UInt8],
        source: CertificateSource,
        interruption: Interruption?
    ) throws -> StoredCertificate {
        let pair = try CertificatePair(chainPEM: chainPEM, keyPEM: keyPEM)
        try pair.checkNotExpired(at: now())
        let certificate = try pair.storedCertificate(source: source)
        let metadata = try CertificateMetadata(certificate).encoded()

        try writing("the certificate directory \(directory)") {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try completeInterruptedReplacement(of: certificate.folder)
        }
        let finalPath = path(ofFolder: certificate.folder)
        let stagingPath = path(ofFolder: StagingName.make(certificate.folder, .new))
        do {
            try writing(stagingPath) {
                guard mkdir(stagingPath, 0o755) == 0 else { throw AtomicFileError(operation: "create folder", path: stagingPath) }
                try AtomicFile.write(certificate.chainPEM, to: "\(stagingPath)/\(Self.certificateFileName)", permissions: 0o644)
                if interruption == .whileWritingKey {
                    try AtomicFile._testOnly_writeCrashingBeforeRename(
                        certificate.keyPEM, to: "\(stagingPath)/\(Self.keyFileName)", permissions: 0o600
                    )
                }
                try AtomicFile.write(certificate.keyPEM, to: "\(stagingPath)/\(Self.keyFileName)", permissions: 0o600)
                try AtomicFile.write(metadata, to: "\(stagingPath)/\(Self.metadataFileName)", permissions: 0o644)
                try AtomicFile.syncDirectory(stagingPath)
            }
            if interruption == .beforeSwap { throw AtomicFileError.simulatedCrash(path: finalPath) }
        } catch let error as AtomicFileError where error.isSimulatedCrash {
            throw error
        } catch {
            try? FileManager.default.removeItem(atPath: stagingPath)
            throw error
        }

        var asidePath: String?
        if isDirectory(finalPath) {
            let aside = path(ofFolder: StagingName.make(certificate.folder, .old))
            try writing(finalPath) {
                guard rename(finalPath, aside) == 0 else { throw AtomicFileError(operation: "move aside", path: finalPath) }
            }
            asidePath = aside
        }
        if interruption == .betweenRenames { throw AtomicFileError.simulatedCrash(path: finalPath) }
        do {
            try writing(finalPath) {
                guard rename(stagingPath, finalPath) == 0 else {
                    throw AtomicFileError(operation: "rename \(stagingPath) to", path: finalPath)
                }
                try AtomicFile.syncDirectory(directory)
            }
        } catch {
            // Put the previous certificate back so the name keeps being served.
            if let asidePath { _ = rename(asidePath, finalPath) }
            try? FileManager.default.removeItem(atPath: stagingPath)
            throw error
        }
        if let asidePath { try? FileManager.default.removeItem(atPath: asidePath) }
        return certificate
    }

    /// Undoes what a crash during an earlier store or remove of `folder` left: when `folder` is missing but
    /// its previous version was set aside, it is moved back; every other leftover of it is deleted.
    private func completeInterruptedReplacement(of folder: String) throws {
        let entries = try FileManager.default.contentsOfDirectory(atPath: directory)
        let finalPath = path(ofFolder: folder)
        if !isDirectory(finalPath), let aside = StagingName.setAside(in: entries).last(where: { $0.folder == folder }) {
            guard rename(path(ofFolder: aside.entry), finalPath) == 0 else {
                throw AtomicFileError(operation: "restore \(aside.entry) to", path: finalPath)
            }
            try AtomicFile.syncDirectory(directory)
        }
        let current = try FileManager.default.contentsOfDirectory(atPath: directory)
        for entry in current where StagingName.parse(entry)?.folder == folder {
            try? FileManager.default.removeItem(atPath: path(ofFolder: entry))
        }
    }

    // MARK: - Removing

    /// Deletes a certificate folder. It is first renamed to a hidden name, so a crash during the delete
    /// leaves no half-deleted folder behind to be loaded.
    public func remove(folder: String) throws {
        try CertificateFolderName.validate(folder)
        let folderPath = path(ofFolder: folder)
        guard isDirectory(folderPath) else {
            throw CertificateStoreError(.notFound, "no certificate folder '\(folder)' in \(directory)")
        }
        let doomed = path(ofFolder: StagingName.make(folder, .removed))
        try writing(folderPath) {
            guard rename(folderPath, doomed) == 0 else { throw AtomicFileError(operation: "remove", path: folderPath) }
            try AtomicFile.syncDirectory(directory)
        }
        try? FileManager.default.removeItem(atPath: doomed)
    }

    // MARK: - Helpers

    /// Runs `body`, turning file system errors into `.writeFailed`; simulated crashes pass through.
    private func writing(_ what: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as AtomicFileError where error.isSimulatedCrash {
            throw error
        } catch let error as CertificateStoreError {
            throw error
        } catch {
            throw CertificateStoreError(.writeFailed, "cannot write \(what): \(error)")
        }
    }

    private func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    private func permissions(of path: String) -> mode_t? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return status.st_mode & 0o777
    }
}

/// Hidden names of the store's temporary folders: `.FOLDER.KIND-XXXXXXXX`.
enum StagingName {
    enum Kind: String {
        /// Being written.
        case new
        /// The previous version, moved aside during a replacement.
        case old
        /// Being deleted.
        case removed
    }

    static func make(_ folder: String, _ kind: Kind) -> String {
        let token = String(UInt32.random(in: .min ... .max), radix: 16)
        return ".\(folder).\(kind.rawValue)-\(String(repeating: "0", count: 8 - token.count))\(token)"
    }

    static func parse(_ entry: String) -> (folder: String, kind: Kind)? {
        guard entry.hasPrefix("."), let lastDot = entry.lastIndex(of: "."), lastDot > entry.startIndex else { return nil }
        let suffix = entry[entry.index(after: lastDot)...]
        guard let dash = suffix.firstIndex(of: "-"), let kind = Kind(rawValue: String(suffix[..<dash])),
              suffix[suffix.index(after: dash)...].count == 8 else { return nil }
        let folder = String(entry[entry.index(after: entry.startIndex)..<lastDot])
        return folder.isEmpty ? nil : (folder, kind)
    }

    /// Previous versions set aside by replacements, sorted by entry name.
    static func setAside(in entries: [String]) -> [(folder: String, entry: String)] {
        entries.sorted().compactMap { entry in
            guard let parsed = parse(entry), parsed.kind == .old else { return nil }
            return (parsed.folder, entry)
        }
    }
}

extension CertificateInventorySnapshot: CertificateInventory {}
