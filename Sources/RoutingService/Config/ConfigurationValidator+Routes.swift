extension ValidationRun {
    // MARK: - Domains

    mutating func checkDomains() {
        var firstByName: [DomainName: Int] = [:]
        for (index, domain) in configuration.domains.enumerated() {
            let path = domainPath(index)
            if let problem = domain.name.syntaxProblem {
                report(path.appending("name"), problem)
            }
            if let first = firstByName[domain.name] {
                report(
                    path.appending("name"),
                    "domain \"\(domain.name)\" is already mapped by domains[\(first)]\(lineNote(domainPath(first)))"
                )
            } else {
                firstByName[domain.name] = index
            }
            checkPort(domain.port, at: path.appending("port"))
            let target = resolveServicePort(
                service: domain.service,
                port: domain.port,
                transport: .tcp,
                at: path,
                for: "domain"
            )
            checkSSL(of: domain, at: path, target: target)
        }
    }

    /// What a domain's or public port's `service`/`port` pair points at.
    enum PortTarget {
        case found(ServicePort)
        /// The reference is broken (already reported) or points into a service that could not be read whole.
        case unknown
    }

    /// Reports an unknown service or an undeclared port (with the ports the service does have).
    mutating func resolveServicePort(
        service name: String,
        port number: Int,
        transport: TransportProtocol,
        at path: ConfigurationKeyPath,
        for user: String
    ) -> PortTarget {
        guard let service = servicesByName[name] else {
            var reason = "no service named \"\(name)\""
            let names = configuration.services.map(\.name)
            if let suggestion = KeySuggestion.closest(to: name, among: names) {
                reason += "; did you mean \"\(suggestion)\"?"
            } else if !names.isEmpty {
                reason += " (services: \(names.joined(separator: ", ")))"
            }
            report(path.appending("service"), reason)
            return .unknown
        }
        if let port = service.port(number, transport: transport) { return .found(port) }
        guard !gaps.services.contains(name) else { return .unknown }
        let declared = service.ports.map(\.label).joined(separator: ", ")
        if service.port(number, transport: transport == .tcp ? .udp : .tcp) != nil {
            let need = user == "domain" ? "a domain needs a tcp port" : "the public port is \(transport.rawValue)"
            report(
                path.appending("port"),
                "port \(number) of service \"\(name)\" is \(transport == .tcp ? "udp" : "tcp"); \(need)"
            )
        } else {
            report(
                path.appending("port"),
                "service \"\(name)\" declares no \(transport.rawValue) port \(number) (its ports: \(declared.isEmpty ? "none" : declared))"
            )
        }
        return .unknown
    }

    private mutating func checkSSL(of domain: DomainConfiguration, at path: ConfigurationKeyPath, target: PortTarget) {
        let sslPath = path.appending("ssl")
        let redirectPath = path.appending("redirectHTTP")
        let sslWritten = sourceMap.contains(sslPath)

        guard !gaps.partialEntries.contains(path) else { return }
        if case .found(let port) = target {
            if !port.http {
                if domain.ssl != nil {
                    report(
                        sslPath,
                        "ssl applies only to domains on HTTP ports; port \(port.port) of service \"\(domain.service)\" is not http"
                    )
                }
                // Written, or set in code: a default that only followed an already reported `ssl` is not news.
                if domain.redirectHTTP, domain.ssl == nil || sourceMap.contains(redirectPath) {
                    report(
                        redirectPath,
                        "redirectHTTP applies only to domains on HTTP ports; port \(port.port) of service \"\(domain.service)\" is not http"
                    )
                }
                return
            }
            if domain.ssl == nil {
                report(sslPath, "a domain on an HTTP port needs ssl: auto, manual or off")
            }
        }
        guard let ssl = domain.ssl else { return }
        let defaulted = sslWritten ? "" : " (auto is the default on HTTP ports)"
        switch ssl {
        case .auto where domain.name.isWildcard:
            report(
                sslPath,
                "ssl: auto cannot be used on the wildcard \"\(domain.name)\"\(defaulted): wildcard names cannot use HTTP-01 (nor TLS-ALPN-01) validation; import a certificate and use ssl: manual"
            )
        case .auto where configuration.acme == nil:
            report(sslPath, "ssl: auto\(defaulted) needs an acme section (directory URL) to obtain certificates")
        case .manual:
            if let inventory = validator.inventory, !inventory.hasCertificate(covering: domain.name) {
                report(
                    sslPath,
                    "ssl: manual needs a certificate for \"\(domain.name)\" in \(configuration.certificates.directory)/, and there is none; import one with `edge-router certs import`"
                )
            }
        case .off where domain.redirectHTTP:
            report(redirectPath, "redirectHTTP: true needs TLS, but ssl is off: there is no HTTPS to redirect to")
        default:
            break
        }
    }

    // MARK: - Public ports

    mutating func checkPublicPorts() {
        let listeners: [(key: ConfigurationKeyPath, address: ListenAddress)] = [
            ("listen.https", configuration.listen.https),
            ("listen.http", configuration.listen.http),
            ("admin.listen", configuration.admin.listen),
        ]
        var earlier: [(index: Int, port: PublicPortConfiguration)] = []
        for (index, publicPort) in configuration.publicPorts.enumerated() {
            let path = publicPortPath(index)
            let listenPath = path.appending("listen")
            checkAddress(publicPort.listen, at: listenPath)
            checkPort(publicPort.port, at: path.appending("port"))
            _ = resolveServicePort(
                service: publicPort.service,
                port: publicPort.port,
                transport: publicPort.transport,
                at: path,
                for: "public port"
            )
            if publicPort.transport == .tcp {
                for listener in listeners where publicPort.listen.overlaps(listener.address) {
                    report(
                        listenPath,
                        "\(publicPort.listen)/tcp collides with \(listener.key) \(listener.address)\(lineNote(listener.key))\(publicPort.listen.wildcardNote(listener.address))"
                    )
                }
            }
            if let clash = earlier.first(where: {
                $0.port.transport == publicPort.transport && $0.port.listen.overlaps(publicPort.listen)
            }) {
                let clashPath = publicPortPath(clash.index)
                report(
                    listenPath,
                    "\(publicPort.listen)/\(publicPort.transport.rawValue) collides with \(clashPath) \(clash.port.listen)\(lineNote(clashPath))\(publicPort.listen.wildcardNote(clash.port.listen))"
                )
            }
            earlier.append((index, publicPort))
        }
    }
}
