extension ValidationRun {
    mutating func checkServices() {
        var firstByName: [String: Int] = [:]
        for (index, service) in configuration.services.enumerated() {
            let path = servicePath(index)
            if service.name.isEmpty {
                report(path.appending("name"), "must not be empty")
            } else if let bad = service.name.first(where: { !Self.isServiceNameCharacter($0) }) {
                report(
                    path.appending("name"),
                    "\"\(service.name)\" contains \"\(bad)\"; a service name uses letters, digits, \".\", \"_\" and \"-\" only"
                )
            }
            if let first = firstByName[service.name] {
                report(
                    path.appending("name"),
                    "service \"\(service.name)\" is already defined by services[\(first)]\(lineNote(servicePath(first)))"
                )
            } else {
                firstByName[service.name] = index
            }
            checkPorts(of: service, at: index)
            checkInstances(of: service, at: index)
            if let healthCheck = service.healthCheck {
                checkHealthCheck(healthCheck, at: path.appending("healthCheck"))
            }
        }
    }

    private static func isServiceNameCharacter(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber || "._-".contains(character))
    }

    private mutating func checkPorts(of service: ServiceConfiguration, at serviceIndex: Int) {
        if service.ports.isEmpty, !gaps.services.contains(service.name) {
            report(servicePath(serviceIndex).appending("ports"), "a service needs at least one port")
        }
        var seen: [ServicePort.Key: Int] = [:]
        for (index, port) in service.ports.enumerated() {
            let path = servicePortPath(service: serviceIndex, port: index)
            checkPort(port.port, at: path.appending("port"))
            if port.http, port.transport == .udp {
                report(path.appending("http"), "http: true needs a tcp port; port \(port.port) is udp")
            }
            if let first = seen[port.key] {
                let firstPath = servicePortPath(service: serviceIndex, port: first)
                report(
                    path.appending("port"),
                    "port \(port.port)/\(port.transport.rawValue) is already declared\(lineNote(firstPath))"
                )
            } else {
                seen[port.key] = index
            }
        }
    }

    private mutating func checkInstances(of service: ServiceConfiguration, at serviceIndex: Int) {
        var seen: [String: Int] = [:]
        for (index, instance) in service.instances.enumerated() {
            let path = instancePath(service: serviceIndex, instance: index)
            if let problem = AddressSyntax.hostProblem(instance.host) {
                report(path, "\(problem); an instance is an IPv4 or IPv6 address or a hostname, optionally with :port")
                continue
            }
            if let port = instance.port { checkPort(port, at: path) }
            let identity = instance.description.lowercased()
            if let first = seen[identity] {
                let firstPath = instancePath(service: serviceIndex, instance: first)
                report(
                    path,
                    "instance \(instance) is listed twice in service \"\(service.name)\" (first as \(reference(firstPath)))"
                )
            } else {
                seen[identity] = index
            }
        }
    }

    private mutating func checkHealthCheck(_ healthCheck: HealthCheckConfiguration, at path: ConfigurationKeyPath) {
        if !healthCheck.path.hasPrefix("/") {
            report(
                path.appending("path"),
                "\"\(healthCheck.path)\" must start with \"/\" (it is the request path, e.g. /healthz)"
            )
        }
        checkPositive(healthCheck.interval, at: path.appending("interval"))
        checkPositive(healthCheck.timeout, at: path.appending("timeout"))
        if healthCheck.timeout > healthCheck.interval {
            report(
                path.appending("timeout"),
                "\(ConfigurationDuration.format(healthCheck.timeout)) is longer than the interval \(ConfigurationDuration.format(healthCheck.interval)); checks would overlap"
            )
        }
    }
}

extension ServicePort {
    /// A port is identified by number and protocol: 53/tcp and 53/udp are two ports.
    struct Key: Hashable {
        let port: Int
        let transport: TransportProtocol
    }

    var key: Key { Key(port: port, transport: transport) }

    var label: String { "\(port)/\(transport.rawValue)\(http ? " http" : "")" }
}
