import Logging

/// A certificate and its key as ACME delivered them, ready for `CertificateStore.store`.
public struct IssuedCertificate: Sendable {
    public var chainPEM: [UInt8]
    public var keyPEM: [UInt8]

    public init(chainPEM: [UInt8], keyPEM: [UInt8]) {
        self.chainPEM = chainPEM
        self.keyPEM = keyPEM
    }
}

/// Runs one `ACMEOrderStateMachine` against the CA: performs each action, feeds the result back,
/// provisions and withdraws the challenge answers in the shared table.
public struct ACMEOrderRunner: Sendable {
    public let client: ACMEClient
    public let challenges: ACMEChallengeTable
    public let polling: ACMEPollingPolicy
    public let logger: Logger

    public init(client: ACMEClient, challenges: ACMEChallengeTable, polling: ACMEPollingPolicy = .init(), logger: Logger) {
        self.client = client
        self.challenges = challenges
        self.polling = polling
        self.logger = logger
    }

    public func issue(names: [String], challengeType: ACMEChallengeType) async throws -> IssuedCertificate {
        var machine = ACMEOrderStateMachine(names: names, challengeType: challengeType, polling: polling)
        var provisioned = Provisioned()
        defer { provisioned.withdraw(from: challenges) }
        var certificateKey: P256PrivateKey?
        var chainPEM: [UInt8]?
        var action = machine.start()
        while true {
            do {
                switch action {
                case .createOrder(let names):
                    let reply = try await client.newOrder(names: names)
                    action = machine.orderReceived(reply.body, location: reply.location, retryAfter: reply.retryAfter)
                case .fetchAuthorization(let url):
                    let reply = try await client.fetch(url, as: ACMEAuthorization.self)
                    action = machine.authorizationReceived(reply.body, retryAfter: reply.retryAfter)
                case .respondToChallenge(_, let identifier, let challenge):
                    try provision(challenge, for: identifier, into: &provisioned)
                    let reply = try await client.respond(toChallenge: challenge.url)
                    action = machine.challengeAccepted(reply.body)
                case .pollAuthorization(let url, let delay):
                    try await Task.sleep(for: delay)
                    let reply = try await client.fetch(url, as: ACMEAuthorization.self)
                    action = machine.authorizationReceived(reply.body, retryAfter: reply.retryAfter)
                case .pollOrder(let url, let delay):
                    if delay > .zero { try await Task.sleep(for: delay) }
                    let reply = try await client.fetch(url, as: ACMEOrder.self)
                    action = machine.orderReceived(reply.body, location: url, retryAfter: reply.retryAfter)
                case .finalize(let url, let names):
                    // A new key for every certificate (never the account key, never a previous one).
                    let key = try P256PrivateKey.generate()
                    certificateKey = key
                    let csr = try ACMECertificateBuilder.certificateSigningRequestDER(names: names, key: key)
                    let reply = try await client.finalize(url, csrDER: csr)
                    action = machine.orderReceived(reply.body, location: url, retryAfter: reply.retryAfter)
                case .downloadCertificate(let url):
                    chainPEM = try await client.downloadCertificate(url)
                    action = machine.certificateDownloaded()
                case .succeed:
                    guard let chainPEM, let certificateKey else {
                        throw ACMEError(.unexpectedResponse, "order finished without a certificate")
                    }
                    return IssuedCertificate(chainPEM: chainPEM, keyPEM: certificateKey.pem)
                case .fail(let error):
                    throw error
                }
            } catch let error as ACMEError {
                if case .fail = action { throw error }
                action = machine.requestFailed(error)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                action = machine.requestFailed(ACMEError(.unexpectedResponse, "\(error)"))
            }
        }
    }

    /// What this order put in the challenge table, removed when it ends whichever way.
    private struct Provisioned {
        var tokens: [String] = []
        var names: [String] = []

        func withdraw(from table: ACMEChallengeTable) {
            tokens.forEach { table.removeHTTP01(token: $0) }
            names.forEach { table.removeTLSALPN01(name: $0) }
        }
    }

    private func provision(_ challenge: ACMEChallenge, for identifier: String, into provisioned: inout Provisioned) throws {
        guard let token = challenge.token else { throw ACMEError(.unexpectedResponse, "challenge without a token") }
        let keyAuthorization = client.signer.keyAuthorization(token: token)
        switch ACMEChallengeType(rawValue: challenge.type) {
        case .http01:
            challenges.addHTTP01(token: token, keyAuthorization: keyAuthorization)
            provisioned.tokens.append(token)
        case .tlsALPN01:
            // The challenge certificate gets its own throwaway key.
            let context = try ACMECertificateBuilder.tlsALPN01Context(
                name: identifier, keyAuthorization: keyAuthorization, key: try P256PrivateKey.generate()
            )
            challenges.addTLSALPN01(name: identifier, context: context)
            provisioned.names.append(identifier)
        case nil:
            throw ACMEError(.challengeFailed, "cannot answer a \(challenge.type) challenge")
        }
    }
}
