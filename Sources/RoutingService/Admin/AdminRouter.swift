import Foundation
import NIOCore
import NIOHTTP1

/// The admin API's endpoints (docs/ADMIN-API.md). Every request is authenticated first; every change
/// goes through the `ConfigReloader`, so it is validated, applied as a diff and written back like a reload.
public struct AdminRouter: Sendable {
    public let reloader: ConfigReloader
    public let token: AdminToken

    public init(reloader: ConfigReloader, token: AdminToken) {
        self.reloader = reloader
        self.token = token
    }

    public func handle(_ request: AdminRequest) async -> AdminResponse {
        guard token.accepts(authorization: request.headers.first(name: "authorization")) else {
            return AdminResponse.error(
                .unauthorized, "missing or wrong bearer token", extra: [:]
            ).adding(header: ("WWW-Authenticate", "Bearer"))
        }
        do {
            return try await route(request)
        } catch {
            return error
        }
    }

    private func route(_ request: AdminRequest) async throws(AdminResponse) -> AdminResponse {
        let method = request.method
        let path = PathMatcher(segments: request.segments)
        if method == .GET, path.matches("health") { return .json(.ok, ["status": "ok"]) }
        if method == .GET, path.matches("status") { return await status() }
        if method == .GET, path.matches("metrics") {
            return AdminResponse(
                status: .ok,
                headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                body: Array(reloader.runtime.metrics.render().utf8)
            )
        }
        if method == .GET, path.matches("config") {
            let (text, version, file) = await (reloader.text, reloader.version, reloader.path)
            return .json(.ok, ["version": version.description, "path": file, "yaml": text], headers: etag(version))
        }
        if method == .PUT, path.matches("config") {
            let yaml = String(decoding: request.body, as: UTF8.self)
            return await outcome(reloader.replace(yaml: yaml, ifMatch: request.ifMatch))
        }
        if method == .POST, path.matches("config/reload") {
            return await outcome(reloader.reloadFromFile(trigger: .adminAPI))
        }
        if method == .GET, path.matches("domains") {
            let configuration = await reloader.current.configuration
            return .json(.ok, ["domains": configuration.domains.map { Self.json($0, in: configuration) }],
                         headers: etag(await reloader.version))
        }
        if let name = path.capture("domains/*") {
            switch method {
            case .GET: return try await domain(named: name)
            case .PUT: return try await setDomain(named: name, request)
            case .DELETE: return await outcome(reloader.edit(.removeDomain(DomainName(name)), ifMatch: request.ifMatch))
            default: break
            }
        }
        if let name = path.capture("domains/*/ssl") {
            switch method {
            case .GET: return try await sslState(named: name)
            case .PUT: return try await setSSL(named: name, request)
            default: break
            }
        }
        if method == .GET, path.matches("certificates") { return await certificates() }
        if method == .POST, path.matches("certificates") { return try await importCertificate(request) }
        if method == .DELETE, let folder = path.capture("certificates/*") { return try await deleteCertificate(folder) }
        if let name = path.capture("services/*/instances") {
            switch method {
            case .GET: return try await instances(of: name)
            case .POST:
                let object = try request.jsonObject()
                guard let text = object["address"] as? String else {
                    throw AdminResponse.error(.badRequest, "the body needs \"address\": an instance address such as 10.0.0.14 or 10.0.0.14:3000")
                }
                let address = try Self.instanceAddress(text)
                return await outcome(reloader.edit(.addInstance(service: name, address), ifMatch: request.ifMatch), created: true)
            default: break
            }
        }
        if method == .DELETE, let captures = path.captures("services/*/instances/*") {
            let address = try Self.instanceAddress(captures[1])
            return await outcome(reloader.edit(.removeInstance(service: captures[0], address), ifMatch: request.ifMatch))
        }
        if method == .GET, path.matches("balancers") { return await balancers() }
        let known = ["health", "status", "metrics", "config", "domains", "certificates", "services", "balancers"]
        if let first = request.segments.first, known.contains(first) {
            return .error(.methodNotAllowed, "\(method.rawValue) is not supported on /\(request.segments.joined(separator: "/")) (see docs/ADMIN-API.md)")
        }
        return .error(.notFound, "no endpoint /\(request.segments.joined(separator: "/")) (see docs/ADMIN-API.md)")
    }

    // MARK: outcomes

    private func etag(_ version: ConfigurationVersion) -> [(String, String)] { [("ETag", "\"\(version)\"")] }

    private func outcome(_ outcome: ReloadOutcome, created: Bool = false) async -> AdminResponse {
        switch outcome {
        case .applied(let applied):
            return .json(created ? .created : .ok, [
                "version": applied.version.description, "changes": applied.summary, "applied": true,
            ], headers: etag(applied.version))
        case .unchanged(let version):
            return .json(.ok, ["version": version.description, "changes": "no change", "applied": false], headers: etag(version))
        case .refused(let error):
            return .error(.badRequest, "the configuration was refused; the running one stays", extra: [
                "problems": error.problems.map(\.description),
            ])
        case .stale(let current):
            return .error(.conflict, "the configuration changed since the version in If-Match", extra: [
                "version": current.description,
            ])
        case .editFailed(.notFound(let message)):
            return .error(.notFound, message)
        case .editFailed(.conflict(let message)):
            return .error(.conflict, message)
        case .writeFailed(let message):
            return .error(.internalServerError, "\(message); the change was rolled back")
        }
    }

    // MARK: status

    private func status() async -> AdminResponse {
        let configuration = await reloader.current.configuration
        let version = await reloader.version
        let history = await reloader.history
        let refusals = await reloader.refusals
        let runtime = reloader.runtime
        var last: [String: Any] = [:]
        if let applied = history.last {
            last = ["version": applied.version.description, "trigger": applied.trigger.rawValue,
                    "changes": applied.summary, "at": ISO8601DateFormatter().string(from: applied.at)]
        }
        return .json(.ok, [
            "version": version.description,
            "config": await reloader.path,
            "uptimeSeconds": Int(Date().timeIntervalSince(reloader.startedAt)),
            "lastChange": last,
            "changesApplied": version.number,
            "reloadsRefused": refusals,
            "counts": [
                "services": configuration.services.count,
                "instances": configuration.services.reduce(0) { $0 + $1.instances.count },
                "domains": configuration.domains.count,
                "publicPorts": configuration.publicPorts.count,
                "certificates": runtime.contexts.current.names.count,
                "requestsInFlight": runtime.proxy.inFlight,
                "longLivedConnections": runtime.proxy.longLivedConnections.count,
                "l4Sessions": runtime.l4Sessions.count,
            ],
        ], headers: etag(version))
    }

    // MARK: domains

    static func json(_ domain: DomainConfiguration, in configuration: GatewayConfiguration) -> [String: Any] {
        let isHTTP = configuration.service(named: domain.service)?.port(domain.port)?.http ?? false
        return [
            "name": domain.name.value, "service": domain.service, "port": domain.port,
            "ssl": domain.ssl?.rawValue ?? NSNull(), "redirectHTTP": domain.redirectHTTP,
            "passthrough": !isHTTP,
        ]
    }

    private func domain(named name: String) async throws(AdminResponse) -> AdminResponse {
        let configuration = await reloader.current.configuration
        guard let domain = configuration.domains.first(where: { $0.name == DomainName(name) }) else {
            throw AdminResponse.error(.notFound, "no domain \(name) in the configuration")
        }
        return .json(.ok, Self.json(domain, in: configuration))
    }

    private func setDomain(named name: String, _ request: AdminRequest) async throws(AdminResponse) -> AdminResponse {
        let object = try request.jsonObject()
        guard let service = object["service"] as? String else {
            throw AdminResponse.error(.badRequest, "the body needs \"service\": the name of a service")
        }
        guard let port = object["port"] as? Int else {
            throw AdminResponse.error(.badRequest, "the body needs \"port\": a port number of that service")
        }
        var ssl: SSLMode?
        if let text = object["ssl"] as? String {
            guard let mode = SSLMode(rawValue: text) else {
                throw AdminResponse.error(.badRequest, "\"ssl\" must be auto, manual or off, not \(text)")
            }
            ssl = mode
        } else if object["ssl"] != nil && !(object["ssl"] is NSNull) {
            throw AdminResponse.error(.badRequest, "\"ssl\" must be auto, manual or off")
        } else {
            // Like the file: `ssl` defaults to auto on HTTP ports; a non-HTTP port takes none.
            let configuration = await reloader.current.configuration
            let isHTTP = configuration.service(named: service)?.port(port)?.http ?? true
            ssl = isHTTP ? .auto : nil
        }
        let redirect = object["redirectHTTP"] as? Bool
        let domain = DomainConfiguration(name: DomainName(name), service: service, port: port, ssl: ssl, redirectHTTP: redirect)
        return await outcome(reloader.edit(.setDomain(domain), ifMatch: request.ifMatch))
    }

    private func sslState(named name: String) async throws(AdminResponse) -> AdminResponse {
        let configuration = await reloader.current.configuration
        guard let domain = configuration.domains.first(where: { $0.name == DomainName(name) }) else {
            throw AdminResponse.error(.notFound, "no domain \(name) in the configuration")
        }
        let store = CertificateStore(directory: configuration.certificates.directory)
        var certificate: Any = NSNull()
        if let stored = store.loadAll().certificate(covering: domain.name) {
            certificate = Self.json(stored)
        }
        var automatic: Any = NSNull()
        if domain.ssl == .auto, let state = reloader.runtime.certificateManager?.state(for: domain.name.value) {
            automatic = Self.json(state)
        }
        return .json(.ok, [
            "domain": domain.name.value, "ssl": domain.ssl?.rawValue ?? NSNull(),
            "redirectHTTP": domain.redirectHTTP, "certificate": certificate, "automatic": automatic,
        ])
    }

    private func setSSL(named name: String, _ request: AdminRequest) async throws(AdminResponse) -> AdminResponse {
        let object = try request.jsonObject()
        guard let text = object["mode"] as? String, let mode = SSLMode(rawValue: text) else {
            throw AdminResponse.error(.badRequest, "the body needs \"mode\": auto, manual or off")
        }
        let configuration = await reloader.current.configuration
        guard var domain = configuration.domains.first(where: { $0.name == DomainName(name) }) else {
            throw AdminResponse.error(.notFound, "no domain \(name) in the configuration")
        }
        let wasOff = domain.ssl == .off
        domain.ssl = mode
        domain.redirectHTTP = mode == .off ? false : (wasOff ? true : domain.redirectHTTP)
        return await outcome(reloader.edit(.setDomain(domain), ifMatch: request.ifMatch))
    }

    // MARK: certificates

    static func json(_ certificate: StoredCertificate) -> [String: Any] {
        let format = ISO8601DateFormatter()
        return [
            "folder": certificate.folder, "names": certificate.names.map(\.value),
            "source": certificate.source.rawValue, "issuer": certificate.issuer,
            "notBefore": format.string(from: certificate.notBefore), "notAfter": format.string(from: certificate.notAfter),
            "expires": certificate.expiryDescription(now: Date()),
        ]
    }

    private func store() async -> CertificateStore {
        CertificateStore(directory: await reloader.current.configuration.certificates.directory)
    }

    private func certificates() async -> AdminResponse {
        let report = await store().loadAll()
        return .json(.ok, [
            "certificates": report.certificates.map(Self.json),
            "failures": report.failures.map { ["folder": $0.folder, "reason": "\($0.reason)"] },
            "warnings": report.warnings.map { ["folder": $0.folder, "message": $0.message] },
        ])
    }

    private func importCertificate(_ request: AdminRequest) async throws(AdminResponse) -> AdminResponse {
        let object = try request.jsonObject()
        guard let cert = object["cert"] as? String, let key = object["key"] as? String else {
            throw AdminResponse.error(.badRequest, "the body needs \"cert\" (PEM chain, leaf first) and \"key\" (PEM private key)")
        }
        var source = CertificateSource.manual
        if let text = object["source"] as? String {
            guard let parsed = CertificateSource(rawValue: text) else {
                throw AdminResponse.error(.badRequest, "\"source\" must be manual, acme or self-signed")
            }
            source = parsed
        }
        let stored: StoredCertificate
        do {
            stored = try await store().store(chainPEM: Array(cert.utf8), keyPEM: Array(key.utf8), source: source)
        } catch {
            throw AdminResponse.error(.badRequest, "certificate refused: \(error)")
        }
        await reloader.certificatesChanged()
        return .json(.created, Self.json(stored))
    }

    private func deleteCertificate(_ folder: String) async throws(AdminResponse) -> AdminResponse {
        let store = await store()
        let report = store.loadAll()
        guard report.certificates.contains(where: { $0.folder == folder }) else {
            throw AdminResponse.error(.notFound, "no certificate folder \(folder) in \(store.directory)")
        }
        let remaining = CertificateInventorySnapshot(
            names: report.certificates.filter { $0.folder != folder }.flatMap(\.names)
        )
        if let problems = await reloader.problems(withInventory: remaining) {
            throw AdminResponse.error(.badRequest, "the running configuration needs this certificate", extra: [
                "problems": problems.problems.map(\.description),
            ])
        }
        do {
            try store.remove(folder: folder)
        } catch {
            throw AdminResponse.error(.internalServerError, "cannot remove \(folder): \(error)")
        }
        await reloader.certificatesChanged()
        return .json(.ok, ["removed": folder])
    }

    // MARK: instances and balancers

    static func instanceAddress(_ text: String) throws(AdminResponse) -> InstanceAddress {
        switch AddressSyntax.splitInstanceAddress(text) {
        case .success(let address):
            if let problem = AddressSyntax.hostProblem(address.host) {
                throw AdminResponse.error(.badRequest, "bad instance address \(text): \(problem)")
            }
            return address
        case .failure(let failure):
            throw AdminResponse.error(.badRequest, "bad instance address \(text): \(failure.reason)")
        }
    }

    private func instances(of name: String) async throws(AdminResponse) -> AdminResponse {
        let configuration = await reloader.current.configuration
        guard let service = configuration.service(named: name) else {
            throw AdminResponse.error(.notFound, "no service \(name) in the configuration")
        }
        let runtime = reloader.runtime
        let now = NIODeadline.now()
        let rows: [[String: Any]] = service.instances.map { instance in
            let ports: [[String: Any]] = service.ports.map { port in
                let endpoint = instance.endpoint(forServicePort: port.port)
                if port.http {
                    let live = runtime.proxy.balancers.compactMap { $0.registry.instance(for: endpoint) }
                    return [
                        "port": port.port, "protocol": port.transport.rawValue, "http": true,
                        "endpoint": endpoint.description,
                        "inFlight": live.reduce(0) { $0 + $1.inFlight },
                        "healthy": live.allSatisfy { $0.isAvailable(at: now) },
                    ]
                }
                return [
                    "port": port.port, "protocol": port.transport.rawValue, "http": false,
                    "endpoint": endpoint.description,
                    "activeSessions": runtime.registry.activeCount(for: endpoint, transport: port.transport),
                ]
            }
            let healthy = ports.allSatisfy { ($0["healthy"] as? Bool) ?? true }
            return ["address": instance.description, "healthy": healthy, "ports": ports]
        }
        return .json(.ok, ["service": name, "instances": rows], headers: etag(await reloader.version))
    }

    private func balancers() async -> AdminResponse {
        let now = NIODeadline.now()
        let rows: [[String: Any]] = reloader.runtime.proxy.balancers.map { balancer in
            [
                "index": balancer.index, "inFlight": balancer.inFlight, "requestsHandled": balancer.requestsHandled,
                "instances": balancer.registry.all.sorted { $0.endpoint.description < $1.endpoint.description }.map {
                    ["endpoint": $0.endpoint.description, "inFlight": $0.inFlight,
                     "healthy": $0.isAvailable(at: now), "retired": $0.isRetired] as [String: Any]
                },
            ]
        }
        return .json(.ok, ["balancers": rows])
    }
}

extension AdminResponse {
    func adding(header: (String, String)) -> AdminResponse {
        var copy = self
        copy.headers.append(header)
        return copy
    }
}

/// Matches request path segments against patterns such as `domains/*/ssl` (`*` captures one segment).
struct PathMatcher {
    let segments: [String]

    func captures(_ pattern: String) -> [String]? {
        let parts = pattern.split(separator: "/")
        guard parts.count == segments.count else { return nil }
        var captured: [String] = []
        for (part, segment) in zip(parts, segments) {
            if part == "*" {
                captured.append(segment)
            } else if part != segment {
                return nil
            }
        }
        return captured
    }

    func matches(_ pattern: String) -> Bool { captures(pattern) != nil }

    func capture(_ pattern: String) -> String? { captures(pattern)?.first }
}

extension AdminRouter {
    /// An automatic certificate's state as JSON (dates in ISO 8601).
    static func json(_ state: DomainCertificateState) -> [String: Any] {
        let formatter = ISO8601DateFormatter()
        var object: [String: Any] = [
            "status": state.status.rawValue, "consecutiveFailures": state.consecutiveFailures,
        ]
        object["serialNumber"] = state.serialNumber
        object["notBefore"] = state.notBefore.map(formatter.string(from:))
        object["notAfter"] = state.notAfter.map(formatter.string(from:))
        object["renewalDate"] = state.renewalDate.map(formatter.string(from:))
        object["lastError"] = state.lastError
        object["nextRetry"] = state.nextRetry.map(formatter.string(from:))
        return object
    }
}
