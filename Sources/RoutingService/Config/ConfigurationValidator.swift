/// Checks a whole `GatewayConfiguration` for meaning: values in range, names well formed, references that
/// resolve, nothing defined twice, listeners that do not collide, SSL settings that can work.
/// It collects every problem; a configuration is used only when the list is empty.
///
/// Works on a configuration from the file (with its source map, for lines) or one built in code, such as an
/// admin API change (no source map: lines are 0, keys still name the field).
public struct ConfigurationValidator: Sendable {
    public let file: String
    public let sourceMap: ConfigurationSourceMap
    /// nil skips the `ssl: manual` certificate check (no certificate store at hand, e.g. `edge-router check`).
    public let inventory: (any CertificateInventory)?
    /// Entries the decoder could only partly read; references to them are not checked again.
    var gaps = DecodingGaps()

    public init(file: String, sourceMap: ConfigurationSourceMap = .init(), inventory: (any CertificateInventory)? = nil)
    {
        self.file = file
        self.sourceMap = sourceMap
        self.inventory = inventory
    }

    public func validate(_ configuration: GatewayConfiguration) -> [ConfigurationProblem] {
        var run = ValidationRun(validator: self, configuration: configuration)
        run.checkListeners()
        run.checkAdmin()
        run.checkCertificates()
        run.checkACME()
        run.checkBalancersAndTimeouts()
        run.checkServices()
        run.checkDomains()
        run.checkPublicPorts()
        return run.problems.sortedByLine()
    }
}

/// One validation pass: the configuration, paths back into the file, and the problems found so far.
struct ValidationRun {
    let validator: ConfigurationValidator
    let configuration: GatewayConfiguration
    /// `configuration.servicesByName`, built once: every domain and public port looks its service up.
    let servicesByName: [String: ServiceConfiguration]
    private(set) var problems: [ConfigurationProblem] = []

    init(validator: ConfigurationValidator, configuration: GatewayConfiguration) {
        self.validator = validator
        self.configuration = configuration
        self.servicesByName = configuration.servicesByName
    }

    var sourceMap: ConfigurationSourceMap { validator.sourceMap }
    var gaps: DecodingGaps { validator.gaps }

    mutating func report(_ path: ConfigurationKeyPath, _ reason: String) {
        problems.append(
            ConfigurationProblem(
                file: validator.file,
                line: sourceMap.line(of: path),
                key: path.description,
                reason: reason
            )
        )
    }

    /// ` (line N)` when the file says where `path` is, for pointing at the first of two clashing entries;
    /// ` (the default)` for a key the file leaves out.
    func lineNote(_ path: ConfigurationKeyPath) -> String {
        let line = sourceMap.line(of: path)
        guard line > 0 else { return "" }
        return sourceMap.contains(path) ? " (line \(line))" : " (the default)"
    }

    /// `services[0].instances[1] at line 14`, naming another entry in a message.
    func reference(_ path: ConfigurationKeyPath) -> String {
        let line = sourceMap.line(of: path)
        return line > 0 ? "\(path) at line \(line)" : path.description
    }

    // MARK: - Paths of decoded entries in the file

    func servicePath(_ index: Int) -> ConfigurationKeyPath { sourceMap.path(ofEntry: index, in: "services") }
    func domainPath(_ index: Int) -> ConfigurationKeyPath { sourceMap.path(ofEntry: index, in: "domains") }
    func publicPortPath(_ index: Int) -> ConfigurationKeyPath { sourceMap.path(ofEntry: index, in: "publicPorts") }

    func servicePortPath(service: Int, port: Int) -> ConfigurationKeyPath {
        sourceMap.path(ofEntry: port, in: servicePath(service).appending("ports"))
    }

    func instancePath(service: Int, instance: Int) -> ConfigurationKeyPath {
        sourceMap.path(ofEntry: instance, in: servicePath(service).appending("instances"))
    }

    // MARK: - Shared checks

    mutating func checkAddress(_ address: ListenAddress, at path: ConfigurationKeyPath) {
        if let problem = AddressSyntax.hostProblem(address.host) {
            report(path, problem)
        } else if !AddressSyntax.isValidPort(address.port) {
            report(path, "port \(address.port) is out of range 1–65535")
        }
    }

    mutating func checkPort(_ port: Int, at path: ConfigurationKeyPath) {
        if !AddressSyntax.isValidPort(port) { report(path, "port \(port) is out of range 1–65535") }
    }

    mutating func checkPositive(_ duration: Duration, at path: ConfigurationKeyPath) {
        if duration <= .zero { report(path, "must be longer than zero") }
    }

    // MARK: - Listeners and admin

    mutating func checkListeners() {
        checkAddress(configuration.listen.https, at: "listen.https")
        checkAddress(configuration.listen.http, at: "listen.http")
        if configuration.listen.http.overlaps(configuration.listen.https) {
            report(
                "listen.http",
                "\(configuration.listen.http) collides with listen.https \(configuration.listen.https)\(lineNote("listen.https"))\(configuration.listen.http.wildcardNote(configuration.listen.https))"
            )
        }
    }

    mutating func checkAdmin() {
        let admin = configuration.admin
        checkAddress(admin.listen, at: "admin.listen")
        for (name, address) in [
            ("listen.https", configuration.listen.https), ("listen.http", configuration.listen.http),
        ]
        where admin.listen.overlaps(address) {
            report(
                "admin.listen",
                "\(admin.listen) collides with \(name) \(address)\(lineNote(ConfigurationKeyPath(stringLiteral: name)))\(admin.listen.wildcardNote(address))"
            )
        }
        if admin.tokenFile == nil, !admin.listen.isLoopback {
            report(
                "admin.listen",
                "\(admin.listen) is not a loopback address and admin.tokenFile is not set: the admin API must not be open without a token"
            )
        }
    }

    // MARK: - Certificates, ACME, balancers, timeouts

    mutating func checkCertificates() {
        guard let defaultName = configuration.certificates.defaultName else { return }
        let name = DomainName(defaultName)
        if let problem = name.syntaxProblem {
            report("certificates.default", problem)
            return
        }
        let partiallyRead = configuration.domains.indices.contains { gaps.partialEntries.contains(domainPath($0)) }
        guard !gaps.domainNames.contains(name), !partiallyRead else { return }
        var table = HostTable<DomainConfiguration>()
        for domain in configuration.domains { table.insert(domain, for: domain.name) }
        let match =
            configuration.domains.first { $0.name == name } ?? (name.isWildcard ? nil : table.lookup(name.value))
        guard let match else {
            report(
                "certificates.default",
                "\"\(name)\" names no domain in domains; it must be one of them (or covered by a wildcard one)"
            )
            return
        }
        if match.ssl == nil || match.ssl == .off {
            let mode = match.ssl.map { "ssl: \($0.rawValue)" } ?? "a passed-through (non-HTTP) port"
            report(
                "certificates.default",
                "the domain \"\(match.name)\" has \(mode), so it has no certificate to serve to clients without SNI"
            )
        }
    }

    mutating func checkACME() {
        guard let acme = configuration.acme else { return }
        let url = acme.directoryURL
        let scheme = url.hasPrefix("https://") ? "https://" : url.hasPrefix("http://") ? "http://" : nil
        if let scheme {
            if url.dropFirst(scheme.count).prefix(while: { $0 != "/" }).isEmpty {
                report("acme.directory", "\"\(url)\" has no host")
            }
        } else {
            report("acme.directory", "expected the ACME directory URL (https://…), found \"\(url)\"")
        }
        if let email = acme.email {
            let parts = email.split(separator: "@", omittingEmptySubsequences: false)
            if parts.count != 2 || parts[0].isEmpty || parts[1].isEmpty || email.contains(where: \.isWhitespace) {
                report("acme.email", "\"\(email)\" is not an email address")
            }
        }
    }

    mutating func checkBalancersAndTimeouts() {
        if configuration.balancers.http < 1 {
            report(
                "balancers.http",
                "must be at least 1 (found \(configuration.balancers.http)); 2 keeps HTTP traffic flowing while one drains"
            )
        }
        let timeouts = configuration.timeouts
        let all: [(String, Duration)] = [
            ("handshake", timeouts.handshake), ("requestHeader", timeouts.requestHeader),
            ("clientIdle", timeouts.clientIdle), ("upstreamConnect", timeouts.upstreamConnect),
            ("upstreamResponseHead", timeouts.upstreamResponseHead), ("upstreamIdle", timeouts.upstreamIdle),
            ("drain", timeouts.drain), ("l4Idle", timeouts.l4Idle), ("udpFlowIdle", timeouts.udpFlowIdle),
        ]
        for (key, duration) in all {
            checkPositive(duration, at: ConfigurationKeyPath.root.appending("timeouts").appending(key))
        }
    }
}

extension ListenAddress {
    /// Whether binding both would clash: the same port on the same host, or on a host that takes every interface.
    func overlaps(_ other: ListenAddress) -> Bool {
        guard port == other.port else { return false }
        return host.lowercased() == other.host.lowercased()
            || AddressSyntax.isWildcardHost(host) || AddressSyntax.isWildcardHost(other.host)
    }

    /// Explains a clash between two different hosts, which only a wildcard host causes.
    func wildcardNote(_ other: ListenAddress) -> String {
        host.lowercased() == other.host.lowercased() ? "" : "; 0.0.0.0 and :: take the port on every address"
    }

    /// 127.0.0.0/8, ::1 or localhost: reachable from this machine only.
    var isLoopback: Bool {
        let host = host.lowercased()
        if host == "localhost" || host == "::1" { return true }
        return AddressSyntax.isIPv4(host) && host.hasPrefix("127.")
    }
}
