import Foundation
import Logging

/// The version of an applied configuration: a number counting applied changes since start, and a short
/// hash of the file text. Written `7-1a2b3c4d`; the admin API's `ETag`/`If-Match` carry it.
public struct ConfigurationVersion: Sendable, Hashable, CustomStringConvertible {
    public let number: Int
    public let hash: String

    public init(number: Int, text: String) {
        self.number = number
        // FNV-1a, 32 bits: enough to tell versions apart in logs, not a security property.
        var value: UInt32 = 2_166_136_261
        for byte in text.utf8 {
            value ^= UInt32(byte)
            value = value &* 16_777_619
        }
        let hex = String(value, radix: 16)
        self.hash = String(repeating: "0", count: 8 - hex.count) + hex
    }

    public var description: String { "\(number)-\(hash)" }

    /// Whether an `If-Match` value names this version (quotes, as in an ETag, are accepted).
    public func matches(_ ifMatch: String) -> Bool {
        let trimmed = ifMatch.trimmingCharacters(in: .whitespaces)
        if trimmed == "*" { return true }
        return trimmed.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) == description
    }
}

/// What started a reload, for logs and the admin API.
public enum ReloadTrigger: String, Sendable {
    case start
    case signal = "sighup"
    case fileChange = "file"
    case adminAPI = "api"
}

/// One applied change, as the admin API and the log show it.
public struct AppliedReload: Sendable {
    public let version: ConfigurationVersion
    public let trigger: ReloadTrigger
    public let summary: String
    public let at: Date
}

public enum ReloadOutcome: Sendable {
    case applied(AppliedReload)
    /// Valid, and nothing to apply (the file's text may still differ: comments, order).
    case unchanged(ConfigurationVersion)
    case refused(ConfigurationError)
    /// `If-Match` named another version.
    case stale(current: ConfigurationVersion)
    case editFailed(ConfigurationEditError)
    /// The configuration applied but could not be written back; it was rolled back.
    case writeFailed(String)
}

/// Serializes every change to the running configuration (SIGHUP, file watcher, admin API): validate
/// the new configuration whole (the checks and messages of `edge-router check`), diff it against the
/// running one, refuse what needs a restart, apply only the diff, and bump the version.
public actor ConfigReloader {
    public private(set) var current: LoadedConfiguration
    public private(set) var text: String
    public private(set) var version: ConfigurationVersion
    public private(set) var history: [AppliedReload] = []
    public private(set) var refusals = 0
    public nonisolated let runtime: GatewayRuntime
    public nonisolated let startedAt = Date()
    private let logger: Logger
    /// Test hook: replaces the atomic write of the file (to simulate a crash mid-write).
    private let writeFile: @Sendable (String, String) throws -> Void

    public init(
        loaded: LoadedConfiguration,
        text: String,
        runtime: GatewayRuntime,
        logger: Logger,
        writeFile: @escaping @Sendable (String, String) throws -> Void = { text, path in
            try AtomicFile.write(Array(text.utf8), to: path)
        }
    ) {
        self.current = loaded
        self.text = text
        self.version = ConfigurationVersion(number: 1, text: text)
        self.runtime = runtime
        self.logger = logger
        self.writeFile = writeFile
        history.append(AppliedReload(version: version, trigger: .start, summary: "initial configuration", at: Date()))
    }

    public var path: String { current.path }

    /// Reads the file again (SIGHUP, file watcher, `POST /config/reload`).
    public func reloadFromFile(trigger: ReloadTrigger) async -> ReloadOutcome {
        let newText: String
        do {
            newText = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let problem = ConfigurationProblem(file: path, line: 0, key: "(file)", reason: "cannot read the file: \(error)")
            return refuse(ConfigurationError(problems: [problem]), trigger: trigger)
        }
        if newText == text { return .unchanged(version) }
        return await apply(text: newText, trigger: trigger, writeBack: false)
    }

    /// Replaces the whole configuration with `yaml` (`PUT /config`), written to the file as given.
    public func replace(yaml: String, ifMatch: String?) async -> ReloadOutcome {
        if let ifMatch, !version.matches(ifMatch) { return .stale(current: version) }
        return await apply(text: yaml, trigger: .adminAPI, writeBack: true)
    }

    /// One admin change: the file text is edited in place when its shape allows (comments kept), else
    /// re-emitted whole; then validated, applied and written back like any reload.
    public func edit(_ edit: ConfigurationEdit, ifMatch: String?) async -> ReloadOutcome {
        if let ifMatch, !version.matches(ifMatch) { return .stale(current: version) }
        let expected: GatewayConfiguration
        do {
            expected = try edit.applied(to: current.configuration)
        } catch {
            return .editFailed(error)
        }
        var newText = ConfigurationFileEditor.edit(text, loaded: current, edit)
        if let edited = newText,
           case .success(let reread) = ConfigurationLoader.load(yaml: edited, file: path, inventory: nil),
           reread.configuration != expected {
            newText = nil
        }
        if newText == nil {
            logger.warning("The configuration file could not be edited in place; writing it whole (comments are lost)",
                           metadata: ["config": "\(path)"])
        }
        return await apply(text: newText ?? ConfigurationEmitter.yaml(expected), trigger: .adminAPI, writeBack: true)
    }

    /// The certificate store changed (import or delete through the admin API): swap the index in.
    public func certificatesChanged() {
        runtime.reloadCertificates(current.configuration, force: true)
    }

    /// Validates the running configuration against a different certificate inventory (before deleting
    /// a certificate a `ssl: manual` domain needs).
    public func problems(withInventory inventory: any CertificateInventory) -> ConfigurationError? {
        if case .failure(let error) = ConfigurationLoader.load(yaml: text, file: path, inventory: inventory) { return error }
        return nil
    }

    private func validate(_ newText: String) -> Result<LoadedConfiguration, ConfigurationError> {
        ConfigurationLoader.load(yaml: newText, file: path, inventoryFor: {
            CertificateStore(directory: $0.certificates.directory).loadAll().inventory
        })
    }

    private func apply(text newText: String, trigger: ReloadTrigger, writeBack: Bool) async -> ReloadOutcome {
        // Each phase is timed and logged with the applied change (the reload benchmark reads these).
        let clock = ContinuousClock()
        let started = clock.now
        let loaded: LoadedConfiguration
        switch validate(newText) {
        case .success(let value): loaded = value
        case .failure(let error): return refuse(error, trigger: trigger)
        }
        let validated = clock.now
        let old = current
        let diff = ConfigurationDiff.between(old.configuration, loaded.configuration)
        let diffed = clock.now
        guard diff.needsRestart.isEmpty else {
            let problems = diff.needsRestart.map { item in
                ConfigurationProblem(
                    file: path, line: loaded.sourceMap.line(of: ConfigurationKeyPath(stringLiteral: item.key)),
                    key: item.key, reason: item.reason
                )
            }
            return refuse(ConfigurationError(problems: problems), trigger: trigger)
        }
        if diff.isEmpty {
            if writeBack && newText != text {
                do { try writeFile(newText, path) } catch { return .writeFailed("\(error)") }
            }
            text = newText
            current = loaded
            return .unchanged(version)
        }
        do {
            try await runtime.apply(loaded, old: old.configuration, diff: diff)
        } catch let error as ConfigurationError {
            return refuse(error, trigger: trigger)
        } catch {
            return refuse(ConfigurationError(problems: [
                ConfigurationProblem(file: path, line: 0, key: "(apply)", reason: "\(error)")
            ]), trigger: trigger)
        }
        let swapped = clock.now
        if writeBack {
            do {
                try writeFile(newText, path)
            } catch {
                // The file must match what runs, so a restart keeps it: undo the change.
                let undo = ConfigurationDiff.between(loaded.configuration, old.configuration)
                try? await runtime.apply(old, old: loaded.configuration, diff: undo)
                logger.error("Admin change not written to the configuration file; rolled back", metadata: [
                    "config": "\(path)", "error": "\(error)",
                ])
                return .writeFailed("cannot write \(path): \(error)")
            }
        }
        current = loaded
        text = newText
        version = ConfigurationVersion(number: version.number + 1, text: newText)
        let applied = AppliedReload(version: version, trigger: trigger, summary: diff.summary, at: Date())
        history.append(applied)
        if history.count > 50 { history.removeFirst(history.count - 50) }
        logger.info("Configuration applied", metadata: [
            "version": "\(version)", "trigger": "\(trigger.rawValue)", "changes": "\(diff.summary)",
            "validate_ms": "\(Self.milliseconds(validated - started))", "diff_ms": "\(Self.milliseconds(diffed - validated))",
            "apply_ms": "\(Self.milliseconds(swapped - diffed))", "total_ms": "\(Self.milliseconds(clock.now - started))",
        ])
        runtime.metrics.reloaded(outcome: "applied")
        return .applied(applied)
    }

    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return String(format: "%.2f", Double(seconds) * 1000 + Double(attoseconds) / 1e15)
    }

    private func refuse(_ error: ConfigurationError, trigger: ReloadTrigger) -> ReloadOutcome {
        refusals += 1
        runtime.metrics.reloaded(outcome: "refused")
        logger.error("Configuration refused; the running configuration stays", metadata: [
            "version": "\(version)", "trigger": "\(trigger.rawValue)", "problems": "\(error.problems.count)",
        ])
        for problem in error.problems { logger.error("\(problem.description)") }
        return .refused(error)
    }
}
