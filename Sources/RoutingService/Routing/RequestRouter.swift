/// Which listener a front serves: behind the TLS handler (SNI known from the handshake event) or plain HTTP.
public enum HTTPFrontMode: Sendable, Hashable {
    case tls
    case plain

    var scheme: String { self == .tls ? "https" : "http" }
}

/// What to do with one request, decided from the routing table alone (pure, unit-tested).
public enum RequestDisposition: Sendable {
    case proxy(DomainRoute)
    /// `308 Permanent Redirect` to this absolute `https://` URL.
    case redirect(location: String)
    /// A request under `/.well-known/acme-challenge/` on the plain listener.
    case acmeChallenge(token: Substring)
    /// `421`: the Host routes elsewhere than the connection's SNI, or the domain is not served here.
    case misdirected(reason: String)
    /// `404`: no domain for this Host.
    case unknownHost(String)
    /// `400`: an HTTP/1.1 request without a usable Host.
    case missingHost
}

public enum RequestRouter {
    static let acmeChallengePrefix = "/.well-known/acme-challenge/"

    /// - Parameters:
    ///   - serverName: the connection's SNI (TLS mode only), nil when the client sent none.
    ///   - host: the request's `Host` header value, nil when absent.
    ///   - uri: the request target as received.
    ///   - canServeTLS: whether the TLS front has a certificate for a host now; a domain still waiting for
    ///     its first automatic certificate is served over plain HTTP instead of redirected to a refusal.
    public static func disposition(
        table: RoutingTable,
        mode: HTTPFrontMode,
        serverName: String?,
        host: String?,
        uri: String,
        canServeTLS: (Substring) -> Bool = { _ in true }
    ) -> RequestDisposition {
        if mode == .plain, uri.hasPrefix(acmeChallengePrefix) {
            return .acmeChallenge(token: uri.dropFirst(acmeChallengePrefix.count))
        }
        guard let host, let hostname = HostHeader.hostname(host) else { return .missingHost }
        let hostRoute = table.route(forHost: hostname)

        switch mode {
        case .tls:
            if let serverName, let sniRoute = table.route(forHost: serverName) {
                guard let hostRoute, hostRoute.domain == sniRoute.domain else {
                    return .misdirected(reason: "Host \(hostname) does not route to the domain of SNI \(serverName)")
                }
            }
            guard let hostRoute else {
                return serverName == nil
                    ? .unknownHost(String(hostname))
                    : .misdirected(reason: "Host \(hostname) is not served on this connection")
            }
            guard hostRoute.isHTTP, hostRoute.ssl != .off else {
                return .misdirected(reason: "\(hostRoute.domain) is not served over HTTPS")
            }
            return .proxy(hostRoute)

        case .plain:
            guard let hostRoute, hostRoute.isHTTP else { return .unknownHost(String(hostname)) }
            if hostRoute.redirectHTTP, canServeTLS(hostname) {
                let port = table.httpsPort == 443 ? "" : ":\(table.httpsPort)"
                let authority = hostname.contains(":") ? "[\(hostname)]" : String(hostname)
                return .redirect(location: "https://\(authority)\(port)\(originForm(uri))")
            }
            return .proxy(hostRoute)
        }
    }

    /// The path and query of a request target: origin form as is, absolute form reduced to its path.
    static func originForm(_ uri: String) -> Substring {
        if uri.hasPrefix("/") { return Substring(uri) }
        guard let schemeEnd = uri.firstRange(of: "://") else { return "/" }
        let afterAuthority = uri[schemeEnd.upperBound...]
        guard let slash = afterAuthority.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        let rest = afterAuthority[slash...]
        return rest.first == "?" ? Substring("/" + rest) : rest
    }
}
