/// The whole gateway configuration: immutable values, built by `ConfigurationLoader` from the YAML file
/// (SPEC §6) and checked by `ConfigurationValidator` before anything uses them.
public struct GatewayConfiguration: Sendable, Equatable {
    public var listen: ListenConfiguration
    public var admin: AdminConfiguration
    public var certificates: CertificateStoreConfiguration
    public var acme: ACMEConfiguration?
    public var balancers: BalancerConfiguration
    public var timeouts: TimeoutConfiguration
    public var services: [ServiceConfiguration]
    public var domains: [DomainConfiguration]
    public var publicPorts: [PublicPortConfiguration]

    public init(
        listen: ListenConfiguration = .init(),
        admin: AdminConfiguration = .init(),
        certificates: CertificateStoreConfiguration = .init(),
        acme: ACMEConfiguration? = nil,
        balancers: BalancerConfiguration = .init(),
        timeouts: TimeoutConfiguration = .init(),
        services: [ServiceConfiguration] = [],
        domains: [DomainConfiguration] = [],
        publicPorts: [PublicPortConfiguration] = []
    ) {
        self.listen = listen
        self.admin = admin
        self.certificates = certificates
        self.acme = acme
        self.balancers = balancers
        self.timeouts = timeouts
        self.services = services
        self.domains = domains
        self.publicPorts = publicPorts
    }

    public func service(named name: String) -> ServiceConfiguration? {
        services.first { $0.name == name }
    }

    /// Services by name (the first of duplicates, like `service(named:)`): for loops over every domain,
    /// where a linear lookup each would make 10,000 domains × 1,000 services quadratic.
    public var servicesByName: [String: ServiceConfiguration] {
        Dictionary(services.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }
}

/// `host:port`, the host being an IPv4 or IPv6 literal (IPv6 written in brackets) or a hostname.
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

public struct ListenConfiguration: Sendable, Equatable {
    public var https: ListenAddress
    public var http: ListenAddress

    public init(
        https: ListenAddress = ListenAddress(host: "0.0.0.0", port: 443),
        http: ListenAddress = ListenAddress(host: "0.0.0.0", port: 80)
    ) {
        self.https = https
        self.http = http
    }
}

public struct AdminConfiguration: Sendable, Equatable {
    public var listen: ListenAddress
    /// Path of the file holding the bearer token; without one the admin API does not start.
    public var tokenFile: String?

    public init(listen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 9901), tokenFile: String? = nil) {
        self.listen = listen
        self.tokenFile = tokenFile
    }
}

public struct CertificateStoreConfiguration: Sendable, Equatable {
    public var directory: String
    /// The certificate name served to clients that send no SNI.
    public var defaultName: String?

    public init(directory: String = "certs", defaultName: String? = nil) {
        self.directory = directory
        self.defaultName = defaultName
    }
}

public struct ACMEConfiguration: Sendable, Equatable {
    public var directoryURL: String
    public var email: String?
    /// PEM bundle trusted for the ACME server's own TLS certificate.
    public var caBundle: String?

    public init(directoryURL: String, email: String? = nil, caBundle: String? = nil) {
        self.directoryURL = directoryURL
        self.email = email
        self.caBundle = caBundle
    }
}

public struct BalancerConfiguration: Sendable, Equatable {
    /// How many active HTTP balancers share the HTTP traffic.
    public var http: Int

    public init(http: Int = 2) {
        self.http = http
    }
}

/// Optional key `timeouts`: every limit on slow peers in one place.
public struct TimeoutConfiguration: Sendable, Equatable {
    public var handshake: Duration
    public var requestHeader: Duration
    public var clientIdle: Duration
    public var upstreamConnect: Duration
    public var upstreamResponseHead: Duration
    public var upstreamIdle: Duration
    public var drain: Duration
    /// A relayed TCP session (public port or SNI passthrough) with no bytes either way is closed after this.
    public var l4Idle: Duration
    /// A UDP flow with no datagram either way ends after this.
    public var udpFlowIdle: Duration

    public init(
        handshake: Duration = .seconds(10),
        requestHeader: Duration = .seconds(10),
        clientIdle: Duration = .seconds(60),
        upstreamConnect: Duration = .seconds(3),
        upstreamResponseHead: Duration = .seconds(60),
        upstreamIdle: Duration = .seconds(60),
        drain: Duration = .seconds(30),
        l4Idle: Duration = .seconds(300),
        udpFlowIdle: Duration = .seconds(30)
    ) {
        self.handshake = handshake
        self.requestHeader = requestHeader
        self.clientIdle = clientIdle
        self.upstreamConnect = upstreamConnect
        self.upstreamResponseHead = upstreamResponseHead
        self.upstreamIdle = upstreamIdle
        self.drain = drain
        self.l4Idle = l4Idle
        self.udpFlowIdle = udpFlowIdle
    }
}

public enum TransportProtocol: String, Sendable, Hashable, CaseIterable {
    case tcp
    case udp
}

public struct ServicePort: Sendable, Hashable {
    public var port: Int
    public var transport: TransportProtocol
    /// The HTTP-support flag: TLS is terminated and requests go through the HTTP balancers.
    public var http: Bool

    public init(port: Int, transport: TransportProtocol = .tcp, http: Bool = false) {
        self.port = port
        self.transport = transport
        self.http = http
    }
}

/// One running instance of a service. It listens on every port of its service unless `port` overrides it.
public struct InstanceAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int?

    public init(host: String, port: Int? = nil) {
        self.host = host
        self.port = port
    }

    public var description: String {
        guard let port else { return host }
        return ListenAddress(host: host, port: port).description
    }

    /// The address to connect to for the service port `servicePort`.
    public func endpoint(forServicePort servicePort: Int) -> ListenAddress {
        ListenAddress(host: host, port: port ?? servicePort)
    }
}

public struct HealthCheckConfiguration: Sendable, Equatable {
    public var path: String
    public var interval: Duration
    public var timeout: Duration

    public init(path: String = "/healthz", interval: Duration = .seconds(2), timeout: Duration = .seconds(1)) {
        self.path = path
        self.interval = interval
        self.timeout = timeout
    }
}

public struct ServiceConfiguration: Sendable, Equatable {
    public var name: String
    public var ports: [ServicePort]
    public var instances: [InstanceAddress]
    public var healthCheck: HealthCheckConfiguration?

    public init(
        name: String,
        ports: [ServicePort],
        instances: [InstanceAddress],
        healthCheck: HealthCheckConfiguration? = nil
    ) {
        self.name = name
        self.ports = ports
        self.instances = instances
        self.healthCheck = healthCheck
    }

    public func port(_ number: Int, transport: TransportProtocol = .tcp) -> ServicePort? {
        ports.first { $0.port == number && $0.transport == transport }
    }
}

public enum SSLMode: String, Sendable, Hashable, CaseIterable {
    case auto
    case manual
    case off
}

/// A public domain name, exact (`app.example.com`) or a one-label wildcard (`*.example.com`), lower-cased.
public struct DomainName: Sendable, Hashable, CustomStringConvertible {
    public let value: String

    public init(_ value: String) {
        self.value = value.lowercased()
    }

    public var isWildcard: Bool { value.hasPrefix("*.") }

    /// For `*.example.com`, `example.com`; nil for an exact name.
    public var wildcardParent: Substring? {
        isWildcard ? value.dropFirst(2) : nil
    }

    public var description: String { value }
}

public struct DomainConfiguration: Sendable, Equatable {
    public var name: DomainName
    public var service: String
    public var port: Int
    /// nil for a domain on a non-HTTP port (SNI passthrough), which takes no `ssl`.
    public var ssl: SSLMode?
    public var redirectHTTP: Bool

    public init(name: DomainName, service: String, port: Int, ssl: SSLMode?, redirectHTTP: Bool? = nil) {
        self.name = name
        self.service = service
        self.port = port
        self.ssl = ssl
        self.redirectHTTP = redirectHTTP ?? (ssl != nil && ssl != .off)
    }
}

public struct PublicPortConfiguration: Sendable, Equatable {
    public var listen: ListenAddress
    public var transport: TransportProtocol
    public var service: String
    public var port: Int

    public init(listen: ListenAddress, transport: TransportProtocol, service: String, port: Int) {
        self.listen = listen
        self.transport = transport
        self.service = service
        self.port = port
    }
}
