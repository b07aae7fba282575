internal import COpenSSL
import NIOCore

/// Result of a handshake step.
public enum OpenSSLHandshakeResult: Sendable {
    case complete
    /// OpenSSL needs more ciphertext from the peer.
    case wantsMoreInput
    case failed(OpenSSLError)
}

/// Result of decrypting what the peer sent so far; the plaintext is appended to the caller's buffer.
public enum OpenSSLReadResult: Sendable {
    case wantsMoreInput
    /// The peer sent `close_notify`: it will send nothing more.
    case closeNotifyReceived
    case failed(OpenSSLError)
}

public enum OpenSSLWriteResult: Sendable {
    case complete
    case failed(OpenSSLError)
}

public enum OpenSSLShutdownResult: Sendable {
    /// Our `close_notify` is in the outbound ciphertext; the peer's has not arrived.
    case closeNotifySent
    /// Both sides' `close_notify` are done.
    case complete
    case failed(OpenSSLError)
}

/// One TLS connection (`SSL*`) over a BIO on `ByteBuffer`s (`CiphertextBuffers`): ciphertext goes in
/// with `feed`, comes out with `takeCiphertext`; OpenSSL never touches a socket. Lives on one event
/// loop (not `Sendable`).
public final class OpenSSLConnection {
    public enum Role: Sendable {
        case server
        case client
    }

    /// The context the connection started on, which also tells its role: one word, where two optional
    /// references and a role took 17 bytes (every connection holds one of these objects).
    private enum Origin {
        case front(OpenSSLFrontContext)
        case client(OpenSSLClientContext)
    }

    private let ssl: OpaquePointer
    /// What `ssl`'s BIO reads from and writes to; the BIO points at it unretained, so it lives as long.
    private let ciphertext: CiphertextBuffers
    /// Retained for as long as `ssl` points at its `SSL_CTX` (the callbacks take it unretained).
    private let origin: Origin
    public private(set) var serverContext: OpenSSLServerContext?
    /// Why the servername callback refused the handshake, when it did.
    public private(set) var serverNameRefusal: String?
    /// Set by the ClientHello callback: the client lists ALPN `acme-tls/1` (RFC 8737 validation).
    var clientOffersACMETLS1 = false

    public var role: Role {
        if case .front = origin { return .server }
        return .client
    }

    private var front: OpenSSLFrontContext? {
        if case .front(let front) = origin { return front }
        return nil
    }

    /// A server connection starting on `front`; the SNI picks the certificate context.
    public static func server(front: OpenSSLFrontContext) throws(OpenSSLError) -> OpenSSLConnection {
        try server(front: front, recycler: nil)
    }

    /// The same, its ciphertext in spares of its event loop's `recycler`.
    static func server(
        front: OpenSSLFrontContext,
        recycler: ByteBufferRecycler?
    ) throws(OpenSSLError) -> OpenSSLConnection {
        let connection = try OpenSSLConnection(context: front.context, origin: .front(front), recycler: recycler)
        SSL_set_accept_state(connection.ssl)
        return connection
    }

    /// A client connection; `serverName` is sent as SNI and, when the context verifies, checked against
    /// the certificate. `resuming` offers a session from an earlier connection.
    public static func client(
        context: OpenSSLClientContext,
        serverName: String?,
        resuming session: OpenSSLSession? = nil
    ) throws(OpenSSLError) -> OpenSSLConnection {
        let connection = try OpenSSLConnection(context: context.context, origin: .client(context), recycler: nil)
        let ssl = connection.ssl
        SSL_set_connect_state(ssl)
        if let serverName, isIPAddressLiteral(serverName) {
            // An IP literal: no SNI (RFC 6066 §3 forbids it); the certificate is checked for that IP SAN.
            if context.verifiesPeer, X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) != 1 {
                throw OpenSSLError.draining(.connectionSetupFailed, detail: "IP address check for \(serverName)")
            }
        } else if let serverName {
            guard CO_SSL_set_tlsext_host_name(ssl, serverName) == 1 else {
                throw OpenSSLError.draining(.connectionSetupFailed, detail: "SNI \(serverName)")
            }
            if context.verifiesPeer, SSL_set1_host(ssl, serverName) != 1 {
                throw OpenSSLError.draining(.connectionSetupFailed, detail: "host name check for \(serverName)")
            }
        }
        if !context.alpnWireFormat.isEmpty {
            // SSL_set_alpn_protos returns 0 on success.
            let failed = context.alpnWireFormat.withUnsafeBufferPointer {
                SSL_set_alpn_protos(ssl, $0.baseAddress, UInt32($0.count))
            }
            if failed != 0 { throw OpenSSLError.draining(.connectionSetupFailed, detail: "ALPN list") }
        }
        if let session, SSL_set_session(ssl, session.session) != 1 {
            throw OpenSSLError.draining(.connectionSetupFailed, detail: "session to resume")
        }
        return connection
    }

    private init(context: OpaquePointer, origin: Origin, recycler: ByteBufferRecycler?) throws(OpenSSLError) {
        OpenSSLError.clearErrorQueue()
        guard let ssl = SSL_new(context) else { throw OpenSSLError.draining(.connectionSetupFailed, detail: "SSL_new") }
        let ciphertext = CiphertextBuffers(recycler: recycler)
        guard let bio = ciphertext.makeBIO() else {
            SSL_free(ssl)
            throw OpenSSLError.draining(.connectionSetupFailed, detail: "ciphertext BIO")
        }
        // One BIO for both directions: SSL_set_bio takes its one reference.
        SSL_set_bio(ssl, bio, bio)
        self.ssl = ssl
        self.ciphertext = ciphertext
        self.origin = origin
        // The one back-pointer C callbacks use; `self` owns `ssl`, so it outlives every callback.
        SSL_set_ex_data(ssl, connectionExDataIndex, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        SSL_free(ssl)  // frees the BIO too, before `ciphertext` goes
    }

    /// The one way back from an `SSL*` in a C callback to the connection that owns it.
    static func owning(_ ssl: OpaquePointer) -> OpenSSLConnection? {
        SSL_get_ex_data(ssl, connectionExDataIndex).map {
            Unmanaged<OpenSSLConnection>.fromOpaque($0).takeUnretainedValue()
        }
    }

    // MARK: Ciphertext in and out

    /// Hands ciphertext from the peer to OpenSSL (all of it, kept until OpenSSL has read it).
    public func feed(_ bytes: ByteBuffer) {
        ciphertext.feed(bytes)
    }

    /// Ciphertext OpenSSL produced (handshake messages, records, alerts), all at once; nil when none.
    public func takeCiphertext() -> ByteBuffer? {
        ciphertext.takeOutbound()
    }

    public var hasPendingCiphertext: Bool { ciphertext.outboundBytes > 0 }

    /// Whether OpenSSL consumed every ciphertext byte fed (none is held for a partial record).
    var isCiphertextInputDrained: Bool { ciphertext.isInboundDrained }

    // MARK: TLS operations

    public func handshake() -> OpenSSLHandshakeResult {
        OpenSSLError.clearErrorQueue()
        let result = SSL_do_handshake(ssl)
        if result == 1 { return .complete }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .wantsMoreInput
        default:
            if let refusal = serverNameRefusal {
                return .failed(.draining(.unrecognizedServerName, detail: refusal))
            }
            return .failed(.draining(.handshakeFailed))
        }
    }

    /// Decrypts everything fed so far, appending the plaintext to `plaintext`.
    ///
    /// The buffer grows by what can come out: plaintext is never longer than the ciphertext waiting, so a
    /// 100-byte request takes a small buffer, not 16 KiB, and no `SSL_read` is made once nothing is left.
    public func read(into plaintext: inout ByteBuffer) -> OpenSSLReadResult {
        while true {
            let waiting = ciphertext.inboundBytes
            // Nothing fed and nothing buffered inside OpenSSL (records or a partial one): it can only want more.
            if waiting == 0 && SSL_has_pending(ssl) == 0 { return .wantsMoreInput }
            OpenSSLError.clearErrorQueue()
            var outcome: Int32 = 1
            var readBytes = 0
            let room = Self.plaintextRoom(forCiphertext: waiting)
            plaintext.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { target in
                outcome = SSL_read_ex(ssl, target.baseAddress, target.count, &readBytes)
                return outcome == 1 ? readBytes : 0
            }
            if outcome == 1 { continue }
            switch SSL_get_error(ssl, outcome) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                return .wantsMoreInput
            case SSL_ERROR_ZERO_RETURN:
                return .closeNotifyReceived
            default:
                return .failed(.draining(.readFailed))
            }
        }
    }

    /// What a buffer for the next `read(into:)` should hold: allocating that much at once spares the
    /// reallocation a smaller buffer would need before OpenSSL can write into it.
    public var plaintextCapacityForNextRead: Int { Self.plaintextRoom(forCiphertext: ciphertext.inboundBytes) }

    private static func plaintextRoom(forCiphertext waiting: Int) -> Int {
        min(16 * 1024, max(waiting, 1024))
    }

    /// Encrypts `plaintext` into records (up to 16 KiB each) waiting in the outbound ciphertext.
    public func write(_ plaintext: ByteBuffer) -> OpenSSLWriteResult {
        guard plaintext.readableBytes > 0 else { return .complete }
        OpenSSLError.clearErrorQueue()
        var written = 0
        let outcome = plaintext.withUnsafeReadableBytes { bytes in
            SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &written)
        }
        guard outcome == 1 else { return .failed(.draining(.writeFailed)) }
        return .complete
    }

    /// Queues our `close_notify`. Only after the handshake completed.
    public func shutdown() -> OpenSSLShutdownResult {
        OpenSSLError.clearErrorQueue()
        switch SSL_shutdown(ssl) {
        case 1: return .complete
        case 0: return .closeNotifySent
        default: return .failed(.draining(.shutdownFailed))
        }
    }

    // MARK: Facts about the connection

    /// The SNI (as the client sent it, lower-cased); nil when none.
    public var serverName: String? {
        CO_SSL_get_servername(ssl).map { String(cString: $0).lowercased() }
    }

    public var negotiatedALPN: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// `TLSv1.3`, `TLSv1.2`.
    public var protocolVersion: String {
        String(cString: SSL_get_version(ssl))
    }

    public var sessionReused: Bool { SSL_session_reused(ssl) == 1 }

    /// The subject of the certificate the peer presented (`/CN=…`); nil when none.
    public var peerCertificateSubject: String? {
        guard let certificate = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(certificate) }
        return PEMReader.subjectLine(of: certificate)
    }

    /// The session to offer on a later connection (client side; TLS 1.3 tickets arrive after the handshake).
    public var session: OpenSSLSession? {
        SSL_get1_session(ssl).map { OpenSSLSession(taking: $0) }
    }

    // MARK: SNI

    /// Called from the servername callback: moves `ssl` to the certificate context for the SNI.
    func switchToContextForServerName() -> Bool {
        let requested = serverName
        if clientOffersACMETLS1, let front, let requested, let challenge = front.challengeContext(forServerName: requested) {
            guard SSL_set_SSL_CTX(ssl, challenge.context) != nil else {
                serverNameRefusal = "could not switch to the ACME challenge certificate for \(requested)"
                return false
            }
            serverContext = challenge
            return true
        }
        guard let front, let chosen = front.context(forServerName: requested) else {
            serverNameRefusal = requested.map { "no certificate for \($0)" } ?? "no SNI and no default certificate"
            return false
        }
        guard SSL_set_SSL_CTX(ssl, chosen.context) != nil else {
            serverNameRefusal = "could not switch to the certificate for \(requested ?? "the default")"
            return false
        }
        serverContext = chosen
        return true
    }
}

@available(*, unavailable)
extension OpenSSLConnection: Sendable {}

/// `127.0.0.1` or `::1` (a host name never contains `:` and never is all digits and dots).
private func isIPAddressLiteral(_ host: String) -> Bool {
    host.contains(":") || (host.contains(".") && host.allSatisfy { $0.isASCII && ($0.isNumber || $0 == ".") })
}

/// The `SSL` ex_data slot holding the owning `OpenSSLConnection` (allocated once per process).
private let connectionExDataIndex: Int32 = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, nil, nil, nil, nil)
