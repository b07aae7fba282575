import Foundation
import Logging
import NIOHTTP1

/// RFC 8555 requests over an `ACMETransport`: the directory, nonces (a pool fed by every response's
/// `Replay-Nonce`, `HEAD newNonce` when empty), the account (registered on first use; `newAccount`
/// with an existing key returns that account, so a restart or a forgetful CA costs one request), and
/// signed POSTs retried on `badNonce` with the nonce the rejection carried.
public actor ACMEClient {
    public let directoryURL: String
    public let signer: ACMEJWSSigner
    private let contactEmail: String?
    private let transport: any ACMETransport
    private let logger: Logger
    private var directory: ACMEDirectory?
    private var nonces: [String] = []
    private var accountURL: String?
    /// How many `badNonce` rejections in a row one request absorbs before giving up.
    static let badNonceRetries = 4

    /// Counters for tests and logs.
    public private(set) var badNonceRetryCount = 0
    public private(set) var requestCount = 0

    public init(
        directoryURL: String,
        accountKey: P256PrivateKey,
        contactEmail: String?,
        transport: any ACMETransport,
        logger: Logger
    ) {
        self.directoryURL = directoryURL
        self.signer = ACMEJWSSigner(key: accountKey)
        self.contactEmail = contactEmail
        self.transport = transport
        self.logger = logger
    }

    /// The response of a signed request: its JSON body decoded, plus the headers ACME uses.
    public struct Reply<Body: Sendable>: Sendable {
        public var body: Body
        public var location: String?
        public var retryAfter: Duration?
    }

    // MARK: Account

    /// The account URL (`kid`), registering the account key with the CA the first time.
    public func account() async throws -> String {
        if let accountURL { return accountURL }
        let directory = try await loadDirectory()
        var payload = #"{"termsOfServiceAgreed":true"#
        if let contactEmail {
            let contact = ACMEJWSSigner.jsonString("mailto:" + contactEmail)
            payload += #","contact":["# + contact + "]"
        }
        payload += "}"
        let response = try await signedPost(directory.newAccount, payload: Array(payload.utf8), key: .jwk)
        guard let location = response.headers.first(name: "Location") else {
            throw ACMEError(.unexpectedResponse, "newAccount answered \(response.status) without a Location header")
        }
        accountURL = location
        logger.info("ACME account ready", metadata: ["account": "\(location)", "directory": "\(directoryURL)"])
        return location
    }

    // MARK: Orders

    public func newOrder(names: [String]) async throws -> Reply<ACMEOrder> {
        let identifiers = names.map { #"{"type":"dns","value":\#(ACMEJWSSigner.jsonString($0))}"# }
        let payload = #"{"identifiers":[\#(identifiers.joined(separator: ","))]}"#
        let directory = try await loadDirectory()
        return try await post(directory.newOrder, payload: Array(payload.utf8), as: ACMEOrder.self)
    }

    /// POST-as-GET of an order, an authorization or a challenge (RFC 8555 §6.3).
    public func fetch<Body: Decodable & Sendable>(_ url: String, as type: Body.Type) async throws -> Reply<Body> {
        try await post(url, payload: nil, as: type)
    }

    /// Tells the CA the challenge is ready to be validated (an empty JSON object).
    public func respond(toChallenge url: String) async throws -> Reply<ACMEChallenge> {
        try await post(url, payload: Array("{}".utf8), as: ACMEChallenge.self)
    }

    public func finalize(_ url: String, csrDER: [UInt8]) async throws -> Reply<ACMEOrder> {
        try await post(url, payload: Array(#"{"csr":"\#(Base64URL.encode(csrDER))"}"#.utf8), as: ACMEOrder.self)
    }

    /// The certificate chain, PEM (`application/pem-certificate-chain`, leaf first).
    public func downloadCertificate(_ url: String) async throws -> [UInt8] {
        let response = try await signedPost(url, payload: nil, key: .kid(try await account()))
        guard response.status == 200, !response.body.isEmpty else {
            throw ACMEError(.unexpectedResponse, "certificate download answered \(response.status)")
        }
        return response.body
    }

    // MARK: Plumbing

    private func post<Body: Decodable & Sendable>(
        _ url: String,
        payload: [UInt8]?,
        as type: Body.Type
    ) async throws -> Reply<Body> {
        let response = try await signedPost(url, payload: payload, key: .kid(try await account()))
        let body: Body
        do {
            body = try JSONDecoder().decode(Body.self, from: Data(response.body))
        } catch {
            throw ACMEError(
                .unexpectedResponse, "\(url) answered \(response.status) with JSON this client cannot read: \(error)"
            )
        }
        return Reply(
            body: body,
            location: response.headers.first(name: "Location"),
            retryAfter: Self.retryAfter(response.headers)
        )
    }

    /// One signed request; a `badNonce` rejection is retried with a fresh nonce (RFC 8555 §6.5).
    private func signedPost(_ url: String, payload: [UInt8]?, key: ACMEJWSSigner.KeyIdentification) async throws
        -> ACMEHTTPResponse
    {
        var attempt = 0
        while true {
            let nonce = try await takeNonce()
            let body = try signer.sign(payload: payload, url: url, nonce: nonce, key: key)
            let response = try await send(.POST, url, contentType: "application/jose+json", body: body)
            if (200..<300).contains(response.status) { return response }
            let problem = try? JSONDecoder().decode(ACMEProblem.self, from: Data(response.body))
            if problem?.type == ACMEProblem.badNonceType, attempt < Self.badNonceRetries {
                attempt += 1
                badNonceRetryCount += 1
                logger.debug("ACME badNonce, retrying", metadata: ["url": "\(url)", "attempt": "\(attempt)"])
                continue
            }
            let words = problem.map { "\($0)" } ?? String(decoding: response.body.prefix(200), as: UTF8.self)
            throw ACMEError(.serverProblem, "\(url) answered \(response.status): \(words)", problem: problem)
        }
    }

    private func send(_ method: HTTPMethod, _ url: String, contentType: String?, body: [UInt8]) async throws
        -> ACMEHTTPResponse
    {
        requestCount += 1
        let response = try await transport.send(method: method, url: url, contentType: contentType, body: body)
        if let nonce = response.headers.first(name: "Replay-Nonce"), !nonce.isEmpty { nonces.append(nonce) }
        return response
    }

    private func takeNonce() async throws -> String {
        if let nonce = nonces.popLast() { return nonce }
        let directory = try await loadDirectory()
        let response = try await send(.HEAD, directory.newNonce, contentType: nil, body: [])
        guard (200..<300).contains(response.status), let nonce = nonces.popLast() else {
            throw ACMEError(.unexpectedResponse, "newNonce answered \(response.status) without a Replay-Nonce")
        }
        return nonce
    }

    private func loadDirectory() async throws -> ACMEDirectory {
        if let directory { return directory }
        let response = try await send(.GET, directoryURL, contentType: nil, body: [])
        guard response.status == 200 else {
            throw ACMEError(.unexpectedResponse, "ACME directory \(directoryURL) answered \(response.status)")
        }
        do {
            let directory = try JSONDecoder().decode(ACMEDirectory.self, from: Data(response.body))
            self.directory = directory
            return directory
        } catch {
            throw ACMEError(.unexpectedResponse, "ACME directory \(directoryURL) is not a directory object: \(error)")
        }
    }

    /// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3); nil when absent or unreadable.
    static func retryAfter(_ headers: HTTPHeaders, now: Date = Date()) -> Duration? {
        guard let value = headers.first(name: "Retry-After")?.trimmingCharacters(in: .whitespaces) else { return nil }
        if let seconds = Int(value), seconds >= 0 { return .seconds(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .milliseconds(max(0, Int(date.timeIntervalSince(now) * 1000)))
    }
}
