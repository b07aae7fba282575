internal import COpenSSL

/// The server policy shared by every server `SSL_CTX`: the front one a connection starts on and
/// the per-certificate ones the SNI callback switches to. Versions, options and ciphers are copied
/// into the `SSL` from the front context at `SSL_new` and stay after the switch, so both must agree.
enum OpenSSLServerSettings {
    /// TLS 1.2 suites: forward secrecy (ECDHE) and AEAD only, ECDSA before RSA, AES-GCM and ChaCha20.
    static let tls12CipherList = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")
    /// OpenSSL's default TLS 1.3 AEAD suites, named so a change of default cannot widen them.
    static let tls13CipherSuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
    static let groups = "X25519:P-256:P-384"
    /// The same on every context: a session is bound to its context id, and a ticket issued after the
    /// SNI switch is checked against the id of the front context when it comes back.
    static let sessionIDContext: [UInt8] = Array("edge-router".utf8)

    static func makeServerContext() throws(OpenSSLError) -> OpaquePointer {
        OpenSSLError.clearErrorQueue()
        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw OpenSSLError.draining(.contextSetupFailed, detail: "SSL_CTX_new")
        }
        do {
            try apply(to: context)
        } catch {
            SSL_CTX_free(context)
            throw error
        }
        return context
    }

    private static func apply(to context: OpaquePointer) throws(OpenSSLError) {
        try check(CO_SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) == 1, "minimum version TLS 1.2")
        try check(CO_SSL_CTX_set_max_proto_version(context, TLS1_3_VERSION) == 1, "maximum version TLS 1.3")
        try check(SSL_CTX_set_cipher_list(context, tls12CipherList) == 1, "TLS 1.2 cipher list")
        try check(SSL_CTX_set_ciphersuites(context, tls13CipherSuites) == 1, "TLS 1.3 cipher suites")
        try check(CO_SSL_CTX_set1_groups_list(context, groups) == 1, "groups \(groups)")
        SSL_CTX_set_options(
            context,
            CO_SSL_OP_NO_COMPRESSION() | CO_SSL_OP_NO_RENEGOTIATION() | CO_SSL_OP_CIPHER_SERVER_PREFERENCE()
        )
        // Idle connections give their record buffers back; RSS per idle connection matters.
        _ = CO_SSL_CTX_set_mode(context, CO_SSL_MODE_RELEASE_BUFFERS())
        // The chain sent is the certificate file's, leaf and intermediates. Without this, a file holding the
        // leaf alone had OpenSSL try to build a chain from the (empty) certificate store at every full
        // handshake: an X509_verify_cert per connection that found nothing to add.
        _ = CO_SSL_CTX_set_mode(context, CO_SSL_MODE_NO_AUTO_CHAIN())
        // A record is taken from the ciphertext buffer in one BIO read, not its 5-byte header and then its
        // body: half the BIO calls per request. (The ciphertext is already in memory; nothing reads ahead
        // of what the socket gave.)
        CO_SSL_CTX_set_read_ahead(context, 1)
        let idSet = sessionIDContext.withUnsafeBufferPointer {
            SSL_CTX_set_session_id_context(context, $0.baseAddress, UInt32($0.count))
        }
        try check(idSet == 1, "session id context")
        // Resumption rides on stateless tickets (on by default); no per-context server cache to hold memory.
        _ = CO_SSL_CTX_set_session_cache_mode(context, Int(SSL_SESS_CACHE_OFF))
        // TLS 1.3: one ticket after a full handshake instead of OpenSSL's two (a resumed handshake brings one
        // anyway), as Go's TLS (Caddy) does. A client spends a ticket per connection (RFC 8446 C.4) and gets a
        // fresh one on each, so it goes on resuming; the second ticket cost a session encoding, its encryption
        // and a record on every full handshake (63 of its 841 allocations).
        try check(CO_SSL_CTX_set_num_tickets(context, 1) == 1, "number of session tickets")
    }

    private static func check(_ succeeded: Bool, _ step: String) throws(OpenSSLError) {
        guard succeeded else { throw OpenSSLError.draining(.contextSetupFailed, detail: step) }
    }
}
