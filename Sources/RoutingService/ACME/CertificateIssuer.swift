import Logging
import NIOCore
import NIOPosix

/// Obtains a certificate for names with one challenge type. `ACMECertificateIssuer` is the real one;
/// tests of the manager's scheduling can give a fake.
public protocol CertificateIssuer: Sendable {
    func issue(names: [String], challengeType: ACMEChallengeType) async throws -> IssuedCertificate
}

/// ACME issuance with the account key from the certificate store (`.acme/account.key`, made on first use),
/// the CA trusted through `acme.caBundle` (or the system roots), answers published in `challenges`.
public final class ACMECertificateIssuer: CertificateIssuer {
    public let client: ACMEClient
    private let runner: ACMEOrderRunner

    public init(
        configuration: ACMEConfiguration,
        certificateDirectory: String,
        challenges: ACMEChallengeTable,
        polling: ACMEPollingPolicy = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) throws {
        let key = try ACMEAccountStore(certificateDirectory: certificateDirectory).loadOrCreateKey()
        let transport = try ACMEHTTPClient(
            trustRoots: configuration.caBundle.map { .pemFile($0) } ?? .systemDefault,
            group: group,
            logger: logger
        )
        client = ACMEClient(
            directoryURL: configuration.directoryURL,
            accountKey: key,
            contactEmail: configuration.email,
            transport: transport,
            logger: logger
        )
        runner = ACMEOrderRunner(client: client, challenges: challenges, polling: polling, logger: logger)
    }

    public func issue(names: [String], challengeType: ACMEChallengeType) async throws -> IssuedCertificate {
        try await runner.issue(names: names, challengeType: challengeType)
    }
}
