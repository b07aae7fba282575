import Foundation
/// Writes a `GatewayConfiguration` as YAML in the shape of SPEC §6 (flow-style entries, one per line),
/// which `ConfigurationLoader` reads back to the same value. Used for write-back only when the file
/// cannot be edited in place (`ConfigurationFileEditor`): it loses the file's comments.
public enum ConfigurationEmitter {
    public static func yaml(_ configuration: GatewayConfiguration) -> String {
        var lines: [String] = ["# Written by edge-router (admin API change); the previous comments could not be kept."]
        lines.append("listen:")
        lines.append("  https: \(scalar(configuration.listen.https.description))")
        lines.append("  http: \(scalar(configuration.listen.http.description))")
        lines.append("admin:")
        lines.append("  listen: \(scalar(configuration.admin.listen.description))")
        if let tokenFile = configuration.admin.tokenFile { lines.append("  tokenFile: \(scalar(tokenFile))") }
        lines.append("certificates:")
        lines.append("  directory: \(scalar(configuration.certificates.directory))")
        if let name = configuration.certificates.defaultName { lines.append("  default: \(scalar(name))") }
        if let acme = configuration.acme {
            lines.append("acme:")
            lines.append("  directory: \(scalar(acme.directoryURL))")
            if let email = acme.email { lines.append("  email: \(scalar(email))") }
            if let caBundle = acme.caBundle { lines.append("  caBundle: \(scalar(caBundle))") }
        }
        lines.append("balancers:")
        lines.append("  http: \(configuration.balancers.http)")
        let timeouts = configuration.timeouts
        lines.append("timeouts:")
        for (key, value) in [
            ("handshake", timeouts.handshake), ("requestHeader", timeouts.requestHeader),
            ("clientIdle", timeouts.clientIdle), ("upstreamConnect", timeouts.upstreamConnect),
            ("upstreamResponseHead", timeouts.upstreamResponseHead), ("upstreamIdle", timeouts.upstreamIdle),
            ("drain", timeouts.drain), ("l4Idle", timeouts.l4Idle), ("udpFlowIdle", timeouts.udpFlowIdle),
        ] {
            lines.append("  \(key): \(ConfigurationDuration.format(value))")
        }
        lines.append(configuration.services.isEmpty ? "services: []" : "services:")
        for service in configuration.services {
            lines.append("  - name: \(scalar(service.name))")
            lines.append("    ports:")
            for port in service.ports {
                lines.append("      - { port: \(port.port), protocol: \(port.transport.rawValue), http: \(port.http) }")
            }
            lines.append("    instances: \(instanceList(service.instances))")
            if let check = service.healthCheck {
                lines.append("    healthCheck: { path: \(scalar(check.path)), interval: \(ConfigurationDuration.format(check.interval)), timeout: \(ConfigurationDuration.format(check.timeout)) }")
            }
        }
        lines.append(configuration.domains.isEmpty ? "domains: []" : "domains:")
        for domain in configuration.domains { lines.append("  - \(flowMap(domain))") }
        lines.append(configuration.publicPorts.isEmpty ? "publicPorts: []" : "publicPorts:")
        for port in configuration.publicPorts {
            lines.append("  - { listen: \(scalar(port.listen.description)), protocol: \(port.transport.rawValue), service: \(scalar(port.service)), port: \(port.port) }")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `{ name: app.example.com, service: app, port: 3000, ssl: auto }`; `redirectHTTP` only when it
    /// differs from its default.
    public static func flowMap(_ domain: DomainConfiguration) -> String {
        var fields = ["name: \(scalar(domain.name.value))", "service: \(scalar(domain.service))", "port: \(domain.port)"]
        if let ssl = domain.ssl { fields.append("ssl: \(ssl.rawValue)") }
        let defaultRedirect = domain.ssl != nil && domain.ssl != .off
        if domain.redirectHTTP != defaultRedirect { fields.append("redirectHTTP: \(domain.redirectHTTP)") }
        return "{ " + fields.joined(separator: ", ") + " }"
    }

    /// `[10.0.0.11, "[::1]:3000"]`
    public static func instanceList(_ instances: [InstanceAddress]) -> String {
        "[" + instances.map { scalar($0.description) }.joined(separator: ", ") + "]"
    }

    /// A plain scalar when YAML reads it back as the same string, else a double-quoted one.
    static func scalar(_ text: String) -> String {
        let plain = !text.isEmpty
            && text.allSatisfy { $0.isLetter || $0.isNumber || ".-_/:".contains($0) }
            && !text.hasPrefix(":") && !text.hasPrefix("-") && !text.contains(": ")
            && !["true", "false", "null", "yes", "no", "on", "off", "~"].contains(text.lowercased())
            && Double(text) == nil && Int(text) == nil
        if plain && !text.hasPrefix("[") { return text }
        let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return "\"\(escaped)\""
    }
}
