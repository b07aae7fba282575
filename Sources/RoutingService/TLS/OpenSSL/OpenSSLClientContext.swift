internal import COpenSSL

/// A client `SSL_CTX` (TLS 1.2–1.3): for talking to an ACME server, and for tests.
public final class OpenSSLClientContext: @unchecked Sendable {
    public enum TrustRoots: Sendable {
        /// OpenSSL's default CA locations.
        case systemDefault
        /// A PEM bundle file.
        case pemFile(String)
        /// PEM certificates held in memory.
        case pem([UInt8])
    }

    let context: OpaquePointer
    public let alpnProtocols: [ALPNProtocol]
    /// Whether the peer's chain and host name are verified (false only when no trust roots were given).
    public let verifiesPeer: Bool
    let alpnWireFormat: [UInt8]

    /// `trustRoots` nil turns verification off: only for tests that check something else.
    public init(alpnProtocols: [ALPNProtocol] = [.http1_1], trustRoots: TrustRoots?) throws(OpenSSLError) {
        OpenSSLError.clearErrorQueue()
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw OpenSSLError.draining(.contextSetupFailed, detail: "SSL_CTX_new")
        }
        do {
            try Self.configure(context, trustRoots: trustRoots)
        } catch {
            SSL_CTX_free(context)
            throw error
        }
        self.context = context
        self.alpnProtocols = alpnProtocols
        self.verifiesPeer = trustRoots != nil
        self.alpnWireFormat = ALPNProtocol.wireFormat(alpnProtocols)
    }

    deinit {
        SSL_CTX_free(context)
    }

    private static func configure(_ context: OpaquePointer, trustRoots: TrustRoots?) throws(OpenSSLError) {
        guard CO_SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) == 1,
            CO_SSL_CTX_set_max_proto_version(context, TLS1_3_VERSION) == 1
        else { throw OpenSSLError.draining(.contextSetupFailed, detail: "protocol versions") }
        _ = CO_SSL_CTX_set_mode(context, CO_SSL_MODE_RELEASE_BUFFERS())
        // Clients keep sessions themselves (`OpenSSLSession`); OpenSSL's client cache stays off.
        _ = CO_SSL_CTX_set_session_cache_mode(context, Int(SSL_SESS_CACHE_OFF))
        guard let trustRoots else {
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
            return
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        switch trustRoots {
        case .systemDefault:
            guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                throw OpenSSLError.draining(.invalidTrustRoots, detail: "default verify paths")
            }
        case .pemFile(let path):
            guard SSL_CTX_load_verify_locations(context, path, nil) == 1 else {
                throw OpenSSLError.draining(.invalidTrustRoots, detail: path)
            }
        case .pem(let bytes):
            guard let store = SSL_CTX_get_cert_store(context) else {
                throw OpenSSLError.draining(.invalidTrustRoots, detail: "no certificate store")
            }
            try PEMReader.addCertificates(bytes, to: store)
        }
    }
}

/// A client session kept for resumption (`SSL_SESSION`), from `OpenSSLConnection.session`.
public final class OpenSSLSession: @unchecked Sendable {
    let session: OpaquePointer

    init(taking session: OpaquePointer) {
        self.session = session
    }

    deinit {
        SSL_SESSION_free(session)
    }

    public var isResumable: Bool { SSL_SESSION_is_resumable(session) == 1 }
}
