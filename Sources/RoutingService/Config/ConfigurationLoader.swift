import Foundation

/// A configuration that decoded and validated with no problem, with where each key came from.
public struct LoadedConfiguration: Sendable, Equatable {
    public var configuration: GatewayConfiguration
    public var sourceMap: ConfigurationSourceMap
    /// The file as named by the caller (`<string>` or another label for text that came from no file).
    public var path: String

    public init(configuration: GatewayConfiguration, sourceMap: ConfigurationSourceMap, path: String) {
        self.configuration = configuration
        self.sourceMap = sourceMap
        self.path = path
    }
}

/// The one way in: YAML text → decoded → validated whole. Either a `LoadedConfiguration`, or a
/// `ConfigurationError` holding every problem (decoding and validation merged, sorted by line).
public enum ConfigurationLoader {
    /// Reads and checks the file at `path`. `inventory` enables the `ssl: manual` certificate check.
    public static func load(
        path: String,
        inventory: (any CertificateInventory)? = nil
    ) -> Result<LoadedConfiguration, ConfigurationError> {
        load(path: path, inventoryFor: { _ in inventory })
    }

    /// Reads and checks the file at `path`, checking `ssl: manual` domains against the certificate
    /// store the file itself names (`certificates.directory`).
    public static func loadCheckingCertificates(path: String) -> Result<LoadedConfiguration, ConfigurationError> {
        load(path: path, inventoryFor: { CertificateStore(directory: $0.certificates.directory).loadAll().inventory })
    }

    /// `inventoryFor` gets the decoded configuration, so the inventory may depend on it.
    public static func load(
        path: String,
        inventoryFor: (GatewayConfiguration) -> (any CertificateInventory)?
    ) -> Result<LoadedConfiguration, ConfigurationError> {
        let text: String
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            guard let decoded = String(data: data, encoding: .utf8) else {
                return .failure(fileProblem(path, "the file is not UTF-8 text"))
            }
            text = decoded
        } catch {
            return .failure(fileProblem(path, "cannot read the file: \(Self.describeReadError(error, path: path))"))
        }
        return load(yaml: text, file: path, inventoryFor: inventoryFor)
    }

    /// Checks YAML text; `file` labels the problems (use the path it will be written to, or e.g. `<admin>`).
    public static func load(
        yaml: String,
        file: String = "<string>",
        inventory: (any CertificateInventory)? = nil
    ) -> Result<LoadedConfiguration, ConfigurationError> {
        load(yaml: yaml, file: file, inventoryFor: { _ in inventory })
    }

    public static func load(
        yaml: String,
        file: String = "<string>",
        inventoryFor: (GatewayConfiguration) -> (any CertificateInventory)?
    ) -> Result<LoadedConfiguration, ConfigurationError> {
        let decoded = ConfigurationDecoder.decode(yaml: yaml, file: file)
        var problems = decoded.problems
        // A syntax error leaves no tree, so there is nothing further to check.
        if !problems.contains(where: { $0.key == "(syntax)" }) {
            var validator = ConfigurationValidator(
                file: file,
                sourceMap: decoded.sourceMap,
                inventory: inventoryFor(decoded.configuration)
            )
            validator.gaps = decoded.gaps
            problems += validator.validate(decoded.configuration)
        }
        guard problems.isEmpty else { return .failure(ConfigurationError(problems: problems)) }
        return .success(
            LoadedConfiguration(configuration: decoded.configuration, sourceMap: decoded.sourceMap, path: file)
        )
    }

    private static func fileProblem(_ path: String, _ reason: String) -> ConfigurationError {
        ConfigurationError(problems: [ConfigurationProblem(file: path, line: 0, key: "(file)", reason: reason)])
    }

    private static func describeReadError(_ error: any Error, path: String) -> String {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) { return "no such file" }
        if isDirectory.boolValue { return "it is a directory" }
        if !FileManager.default.isReadableFile(atPath: path) { return "permission denied" }
        return (error as NSError).localizedDescription
    }
}
