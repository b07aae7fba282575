import Yams

/// Turns the YAML text into a `GatewayConfiguration` by walking Yams' node tree by hand, so every value
/// keeps the line it was written on and every shape problem (syntax, unknown key, wrong type, missing
/// field, unreadable value) is collected rather than stopping at the first.
/// Meaning (references, duplicates, collisions, SSL rules) is `ConfigurationValidator`'s job.
struct ConfigurationDecoder {
    /// What decoding produced: a configuration holding every entry that could be read.
    struct Output {
        var configuration: GatewayConfiguration
        var sourceMap: ConfigurationSourceMap
        var problems: [ConfigurationProblem]
        var gaps: DecodingGaps
    }

    private let file: String
    private var problems: [ConfigurationProblem] = []
    private var sourceMap = ConfigurationSourceMap()
    private var gaps = DecodingGaps()

    init(file: String) {
        self.file = file
    }

    static func decode(yaml: String, file: String) -> Output {
        var decoder = ConfigurationDecoder(file: file)
        let configuration = decoder.decodeDocument(yaml)
        return Output(
            configuration: configuration,
            sourceMap: decoder.sourceMap,
            problems: decoder.problems,
            gaps: decoder.gaps
        )
    }

    /// The decoder reads every scalar as text and parses it itself, so YAML 1.1 type guessing (one regular
    /// expression per rule per scalar, half the time of a 10,000-domain file) is left out; merge keys stay.
    private static let resolver = Resolver.basic.appending(.merge)

    // MARK: - Document

    private mutating func decodeDocument(_ yaml: String) -> GatewayConfiguration {
        var configuration = GatewayConfiguration()
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml, Self.resolver)
        } catch {
            problems.append(YAMLSyntaxProblem.problem(from: error, yaml: yaml, file: file))
            return configuration
        }
        guard let root else {
            problems.append(
                problem(line: 1, key: "(document)", "the file is empty; see Configs/edge-router.example.yaml")
            )
            return configuration
        }
        guard case .mapping = root else {
            problems.append(
                problem(
                    line: root.line,
                    key: "(document)",
                    "expected a map of keys (listen, services, domains, …), found \(root.kindDescription)"
                )
            )
            return configuration
        }
        guard let fields = fields(of: root, at: .root, known: ConfigurationKeys.root) else { return configuration }

        if let node = fields["listen"] { configuration.listen = decodeListen(node, at: "listen") }
        if let node = fields["admin"] { configuration.admin = decodeAdmin(node, at: "admin") }
        if let node = fields["certificates"] {
            configuration.certificates = decodeCertificates(node, at: "certificates")
        }
        if let node = fields["acme"] { configuration.acme = decodeACME(node, at: "acme") }
        if let node = fields["balancers"] { configuration.balancers = decodeBalancers(node, at: "balancers") }
        if let node = fields["timeouts"] { configuration.timeouts = decodeTimeouts(node, at: "timeouts") }
        // Services first whatever the key order: a domain's `ssl` default depends on its port's HTTP flag.
        if let node = fields["services"] {
            configuration.services = decodeList(node, at: "services") { decoder, node, path in
                decoder.decodeService(node, at: path)
            }
        }
        if let node = fields["domains"] {
            let services = configuration.servicesByName
            configuration.domains = decodeList(node, at: "domains") { decoder, node, path in
                decoder.decodeDomain(node, at: path, services: services)
            }
        }
        if let node = fields["publicPorts"] {
            configuration.publicPorts = decodeList(node, at: "publicPorts") { decoder, node, path in
                decoder.decodePublicPort(node, at: path)
            }
        }
        return configuration
    }

    // MARK: - Sections

    private mutating func decodeListen(_ node: Node, at path: ConfigurationKeyPath) -> ListenConfiguration {
        var listen = ListenConfiguration()
        guard let fields = fields(of: node, at: path, known: ConfigurationKeys.listen) else { return listen }
        if let value = fields["https"], let address = listenAddress(value, at: path.appending("https")) {
            listen.https = address
        }
        if let value = fields["http"], let address = listenAddress(value, at: path.appending("http")) {
            listen.http = address
        }
        return listen
    }

    private mutating func decodeAdmin(_ node: Node, at path: ConfigurationKeyPath) -> AdminConfiguration {
        var admin = AdminConfiguration()
        guard let fields = fields(of: node, at: path, known: ConfigurationKeys.admin) else { return admin }
        if let value = fields["listen"], let address = listenAddress(value, at: path.appending("listen")) {
            admin.listen = address
        }
        if let value = fields["tokenFile"] { admin.tokenFile = nonEmptyString(value, at: path.appending("tokenFile")) }
        return admin
    }

    private mutating func decodeCertificates(_ node: Node, at path: ConfigurationKeyPath)
        -> CertificateStoreConfiguration
    {
        var certificates = CertificateStoreConfiguration()
        guard let fields = fields(of: node, at: path, known: ConfigurationKeys.certificates) else {
            return certificates
        }
        if let value = fields["directory"], let directory = nonEmptyString(value, at: path.appending("directory")) {
            certificates.directory = directory
        }
        if let value = fields["default"] {
            certificates.defaultName = nonEmptyString(value, at: path.appending("default"))
        }
        return certificates
    }

    private mutating func decodeACME(_ node: Node, at path: ConfigurationKeyPath) -> ACMEConfiguration? {
        guard let fields = fields(of: node, at: path, known: ConfigurationKeys.acme) else { return nil }
        let email = fields["email"].flatMap { nonEmptyString($0, at: path.appending("email")) }
        let caBundle = fields["caBundle"].flatMap { nonEmptyString($0, at: path.appending("caBundle")) }
        guard let directoryNode = required("directory", in: fields, at: path),
            let directory = nonEmptyString(directoryNode, at: path.appending("directory"))
        else { return nil }
        return ACMEConfiguration(directoryURL: directory, email: email, caBundle: caBundle)
    }

    private mutating func decodeBalancers(_ node: Node, at path: ConfigurationKeyPath) -> BalancerConfiguration {
        var balancers = BalancerConfiguration()
        guard let fields = fields(of: node, at: path, known: ConfigurationKeys.balancers) else { return balancers }
        if let value = fields["http"], let count = int(value, at: path.appending("http")) { balancers.http = count }
        return balancers
    }

    private mutating func decodeTimeouts(_ node: Node, at path: ConfigurationKeyPath) -> TimeoutConfiguration {
        var timeouts = TimeoutConfiguration()
        guard let fields = fields(of: node, at: path, known: ConfigurationKeys.timeouts) else { return timeouts }
        func read(
            _ key: String,
            into keyPath: WritableKeyPath<TimeoutConfiguration, Duration>,
            decoder: inout ConfigurationDecoder
        ) {
            if let value = fields[key], let duration = decoder.duration(value, at: path.appending(key)) {
                timeouts[keyPath: keyPath] = duration
            }
        }
        read("handshake", into: \.handshake, decoder: &self)
        read("requestHeader", into: \.requestHeader, decoder: &self)
        read("clientIdle", into: \.clientIdle, decoder: &self)
        read("upstreamConnect", into: \.upstreamConnect, decoder: &self)
        read("upstreamResponseHead", into: \.upstreamResponseHead, decoder: &self)
        read("upstreamIdle", into: \.upstreamIdle, decoder: &self)
        read("drain", into: \.drain, decoder: &self)
        read("l4Idle", into: \.l4Idle, decoder: &self)
        read("udpFlowIdle", into: \.udpFlowIdle, decoder: &self)
        return timeouts
    }

    // MARK: - Services

    /// Kept whenever its name reads, even with a bad port or instance, so domains naming it do not also
    /// report "unknown service"; such a service is listed in `gaps` and its ports are not cross-checked.
    private mutating func decodeService(_ node: Node, at path: ConfigurationKeyPath) -> ServiceConfiguration? {
        guard let fields = fields(of: node, at: path, known: ConfigurationKeys.service) else { return nil }
        let problemCount = problems.count
        let nameNode = required("name", in: fields, at: path)
        let portsNode = required("ports", in: fields, at: path)
        let instancesNode = required("instances", in: fields, at: path)
        let name = nameNode.flatMap { string($0, at: path.appending("name")) }

        let portsPath = path.appending("ports")
        let ports =
            portsNode.map {
                decodeList($0, at: portsPath) { decoder, node, path in decoder.decodeServicePort(node, at: path) }
            } ?? []
        let instancesPath = path.appending("instances")
        let instances =
            instancesNode.map {
                decodeList($0, at: instancesPath) { decoder, node, path in decoder.decodeInstance(node, at: path) }
            } ?? []
        let healthCheck = fields["healthCheck"].flatMap { decodeHealthCheck($0, at: path.appending("healthCheck")) }

        guard let name else { return nil }
        if problems.count != problemCount { gaps.services.insert(name) }
        return ServiceConfiguration(name: name, ports: ports, instances: instances, healthCheck: healthCheck)
    }

    private mutating func decodeServicePort(_ node: Node, at path: ConfigurationKeyPath) -> ServicePort? {
        guard let fields = fields(of: node, at: path, known: ConfigurationKeys.servicePort) else { return nil }
        let number = required("port", in: fields, at: path).flatMap { int($0, at: path.appending("port")) }
        let transport =
            fields["protocol"].map { oneOf(TransportProtocol.self, $0, at: path.appending("protocol")) } ?? .tcp
        let http = fields["http"].map { bool($0, at: path.appending("http")) } ?? false
        guard let number, let transport, let http else { return nil }
        return ServicePort(port: number, transport: transport, http: http)
    }

    private mutating func decodeInstance(_ node: Node, at path: ConfigurationKeyPath) -> InstanceAddress? {
        guard let text = nonEmptyString(node, at: path) else { return nil }
        switch AddressSyntax.splitInstanceAddress(text) {
        case .success(let address):
            return address
        case .failure(let failure):
            problems.append(problem(at: path, failure.reason))
            return nil
        }
    }

    private mutating func decodeHealthCheck(_ node: Node, at path: ConfigurationKeyPath) -> HealthCheckConfiguration? {
        guard let fields = fields(of: node, at: path, known: ConfigurationKeys.healthCheck) else { return nil }
        var healthCheck = HealthCheckConfiguration()
        var complete = true
        if let value = fields["path"] {
            if let text = string(value, at: path.appending("path")) {
                healthCheck.path = text
            } else {
                complete = false
            }
        }
        if let value = fields["interval"] {
            if let interval = duration(value, at: path.appending("interval")) {
                healthCheck.interval = interval
            } else {
                complete = false
            }
        }
        if let value = fields["timeout"] {
            if let timeout = duration(value, at: path.appending("timeout")) {
                healthCheck.timeout = timeout
            } else {
                complete = false
            }
        }
        return complete ? healthCheck : nil
    }

    // MARK: - Domains and public ports

    private mutating func decodeDomain(
        _ node: Node,
        at path: ConfigurationKeyPath,
        services: [String: ServiceConfiguration]
    ) -> DomainConfiguration? {
        guard let fields = fields(of: node, at: path, known: ConfigurationKeys.domain) else { return nil }
        let name = required("name", in: fields, at: path).flatMap { string($0, at: path.appending("name")) }
        let service = required("service", in: fields, at: path).flatMap { string($0, at: path.appending("service")) }
        let port = required("port", in: fields, at: path).flatMap { int($0, at: path.appending("port")) }
        let ssl = fields["ssl"].map { oneOf(SSLMode.self, $0, at: path.appending("ssl")) }
        let redirect = fields["redirectHTTP"].map { bool($0, at: path.appending("redirectHTTP")) }

        guard let name, let service, let port else {
            if let name { gaps.domainNames.insert(DomainName(name)) }
            return nil
        }
        // An unreadable `ssl` or `redirectHTTP` keeps the entry (its name, service and port are still checked)
        // but leaves its SSL settings unchecked.
        if ssl == .some(nil) || redirect == .some(nil) {
            gaps.partialEntries.insert(path)
            return DomainConfiguration(
                name: DomainName(name),
                service: service,
                port: port,
                ssl: nil,
                redirectHTTP: false
            )
        }
        // SPEC §6: `ssl` defaults to auto on an HTTP port; a non-HTTP port is passed through and takes none.
        let isHTTP = services[service]?.port(port, transport: .tcp)?.http ?? false
        let mode: SSLMode? = ssl ?? (isHTTP ? .auto : nil)
        return DomainConfiguration(
            name: DomainName(name),
            service: service,
            port: port,
            ssl: mode,
            redirectHTTP: redirect ?? nil
        )
    }

    private mutating func decodePublicPort(_ node: Node, at path: ConfigurationKeyPath) -> PublicPortConfiguration? {
        guard let fields = fields(of: node, at: path, known: ConfigurationKeys.publicPort) else { return nil }
        let listen = required("listen", in: fields, at: path).flatMap {
            listenAddress($0, at: path.appending("listen"))
        }
        let transport =
            fields["protocol"].map { oneOf(TransportProtocol.self, $0, at: path.appending("protocol")) } ?? .tcp
        let service = required("service", in: fields, at: path).flatMap { string($0, at: path.appending("service")) }
        let port = required("port", in: fields, at: path).flatMap { int($0, at: path.appending("port")) }
        guard let listen, let transport, let service, let port else { return nil }
        return PublicPortConfiguration(listen: listen, transport: transport, service: service, port: port)
    }

    // MARK: - Structure

    /// The entries of a list that decoded; the source map remembers which file index each one came from.
    private mutating func decodeList<Element>(
        _ node: Node,
        at path: ConfigurationKeyPath,
        element: (inout ConfigurationDecoder, Node, ConfigurationKeyPath) -> Element?
    ) -> [Element] {
        guard case .sequence(let sequence) = node else {
            problems.append(problem(at: path, "expected a list, found \(node.kindDescription)"))
            return []
        }
        var elements: [Element] = []
        for (fileIndex, item) in sequence.enumerated() {
            sourceMap.record(path[fileIndex], line: item.line)
            if let value = element(&self, item, path[fileIndex]) {
                sourceMap.recordEntry(decodedIndex: elements.count, fileIndex: fileIndex, in: path)
                elements.append(value)
            }
        }
        return elements
    }

    /// The values of a map's known keys. Every key's line goes into the source map; unknown keys are reported
    /// (with the closest known key as a hint), as are keys that are not plain scalars.
    private mutating func fields(of node: Node, at path: ConfigurationKeyPath, known: [String]) -> [String: Node]? {
        guard case .mapping(let mapping) = node else {
            problems.append(problem(at: path, "expected a map, found \(node.kindDescription)"))
            return nil
        }
        if path != .root { sourceMap.record(path, line: node.line) }
        var values: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                problems.append(
                    problem(
                        line: keyNode.line,
                        key: path.description.isEmpty ? "(document)" : path.description,
                        "a key must be a plain word, found \(keyNode.kindDescription)"
                    )
                )
                continue
            }
            let key = scalar.string
            let keyPath = path.appending(key)
            sourceMap.record(keyPath, line: keyNode.line)
            if known.contains(key) {
                values[key] = value
            } else {
                var reason = "unknown key \"\(key)\""
                if let suggestion = KeySuggestion.closest(to: key, among: known) {
                    reason += "; did you mean \"\(suggestion)\"?"
                }
                reason += " (known keys: \(known.joined(separator: ", ")))"
                problems.append(problem(at: keyPath, reason))
            }
        }
        return values
    }

    private mutating func required(_ key: String, in fields: [String: Node], at path: ConfigurationKeyPath) -> Node? {
        if let value = fields[key] { return value }
        problems.append(
            problem(
                line: sourceMap.line(of: path),
                key: path.appending(key).description,
                "missing required key \"\(key)\""
            )
        )
        return nil
    }

    // MARK: - Scalars

    /// The scalar's text as written; YAML 1.1 readings of it (`off` as false, `1_000` as a number) are ignored,
    /// so `ssl: off` means off and a port is digits.
    private mutating func scalarText(_ node: Node, at path: ConfigurationKeyPath, expected: String) -> String? {
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain, Self.nullSpellings.contains(scalar.string) {
                problems.append(problem(at: path, "expected \(expected), found an empty value"))
                return nil
            }
            return scalar.string
        default:
            problems.append(problem(at: path, "expected \(expected), found \(node.kindDescription)"))
            return nil
        }
    }

    private static let nullSpellings: Set<String> = ["", "~", "null", "Null", "NULL"]

    private mutating func string(_ node: Node, at path: ConfigurationKeyPath) -> String? {
        scalarText(node, at: path, expected: "a string")
    }

    private mutating func nonEmptyString(_ node: Node, at path: ConfigurationKeyPath) -> String? {
        guard let text = string(node, at: path) else { return nil }
        guard !text.trimmingWhitespace().isEmpty else {
            problems.append(problem(at: path, "must not be empty"))
            return nil
        }
        return text
    }

    private mutating func int(_ node: Node, at path: ConfigurationKeyPath) -> Int? {
        guard let text = scalarText(node, at: path, expected: "a whole number") else { return nil }
        guard let value = Int(text) else {
            problems.append(problem(at: path, "expected a whole number, found \"\(text)\""))
            return nil
        }
        return value
    }

    private mutating func bool(_ node: Node, at path: ConfigurationKeyPath) -> Bool? {
        guard let text = scalarText(node, at: path, expected: "true or false") else { return nil }
        switch text.lowercased() {
        case "true": return true
        case "false": return false
        default:
            problems.append(problem(at: path, "expected true or false, found \"\(text)\""))
            return nil
        }
    }

    private mutating func duration(_ node: Node, at path: ConfigurationKeyPath) -> Duration? {
        let expected = "a duration such as 500ms, 2s, 1m or 1h"
        guard let text = scalarText(node, at: path, expected: expected) else { return nil }
        guard let duration = ConfigurationDuration.parse(text) else {
            problems.append(problem(at: path, "expected \(expected), found \"\(text)\""))
            return nil
        }
        return duration
    }

    private mutating func oneOf<Value: RawRepresentable & CaseIterable>(
        _ type: Value.Type,
        _ node: Node,
        at path: ConfigurationKeyPath
    ) -> Value? where Value.RawValue == String {
        let choices = Value.allCases.map(\.rawValue).joined(separator: ", ")
        guard let text = scalarText(node, at: path, expected: "one of \(choices)") else { return nil }
        guard let value = Value(rawValue: text) else {
            problems.append(problem(at: path, "expected one of \(choices), found \"\(text)\""))
            return nil
        }
        return value
    }

    private mutating func listenAddress(_ node: Node, at path: ConfigurationKeyPath) -> ListenAddress? {
        guard let text = scalarText(node, at: path, expected: "an address host:port") else { return nil }
        switch AddressSyntax.splitListenAddress(text) {
        case .success(let address):
            return address
        case .failure(let failure):
            problems.append(problem(at: path, failure.reason))
            return nil
        }
    }

    // MARK: - Problems

    private func problem(at path: ConfigurationKeyPath, _ reason: String) -> ConfigurationProblem {
        problem(line: sourceMap.line(of: path), key: path.description, reason)
    }

    private func problem(line: Int, key: String, _ reason: String) -> ConfigurationProblem {
        ConfigurationProblem(file: file, line: line, key: key, reason: reason)
    }
}

/// Entries the decoder could only partly read. The validator leaves them out of cross-checks, so one
/// mistake is reported once, not again as "unknown service" or "no such domain".
struct DecodingGaps: Sendable, Equatable {
    /// Services kept with a port, instance or health check missing.
    var services: Set<String> = []
    /// Domains dropped because a required field could not be read.
    var domainNames: Set<DomainName> = []
    /// Entries kept with a setting they could not read (file paths such as `domains[3]`).
    var partialEntries: Set<ConfigurationKeyPath> = []
}

/// The keys each level of the file accepts (SPEC §6 plus the optional `timeouts`).
enum ConfigurationKeys {
    static let root = [
        "listen", "admin", "certificates", "acme", "balancers", "timeouts", "services", "domains", "publicPorts",
    ]
    static let listen = ["https", "http"]
    static let admin = ["listen", "tokenFile"]
    static let certificates = ["directory", "default"]
    static let acme = ["directory", "email", "caBundle"]
    static let balancers = ["http"]
    static let timeouts = [
        "handshake", "requestHeader", "clientIdle", "upstreamConnect", "upstreamResponseHead", "upstreamIdle", "drain", "l4Idle", "udpFlowIdle",
    ]
    static let service = ["name", "ports", "instances", "healthCheck"]
    static let servicePort = ["port", "protocol", "http"]
    static let healthCheck = ["path", "interval", "timeout"]
    static let domain = ["name", "service", "port", "ssl", "redirectHTTP"]
    static let publicPort = ["listen", "protocol", "service", "port"]
}

extension Node {
    var line: Int { mark?.line ?? 0 }

    var kindDescription: String {
        switch self {
        case .scalar(let scalar): "the value \"\(scalar.string)\""
        case .mapping: "a map"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> Substring {
        let text = Substring(self)
        guard let first = text.firstIndex(where: { !$0.isWhitespace }),
            let last = text.lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return text[first...last]
    }
}
