internal import COpenSSL

/// The server policy shared by every server `SSL_CTX`: the front one and the per-certificate ones.
/// A connection starts on the default certificate's context when there is one (the front one
/// otherwise) and the SNI callback switches it when the name needs another. Versions, options and
/// ciphers are copied into the `SSL` at `SSL_new` and stay after a switch, so all must agree; tickets
/// are sealed with the keys of the context a connection started on, so all share the same keys.
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

    /// Session ticket keys (name, HMAC and AES keys: 80 bytes) for every server context of this process,
    /// drawn once: a ticket sealed on one context opens on any other, also on one built after a
    /// certificate reload. Like the front context's own keys before, they live as long as the process.
    private static let ticketKeys: [UInt8] = {
        var keys = [UInt8](repeating: 0, count: 80)
        guard RAND_bytes(&keys, Int32(keys.count)) == 1 else {
            fatalError("OpenSSL's RAND_bytes failed: no randomness for session ticket keys")
        }
        return keys
    }()

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
        let idSet = sessionIDContext.withUnsafeBufferPointer {
            SSL_CTX_set_session_id_context(context, $0.baseAddress, UInt32($0.count))
        }
        try check(idSet == 1, "session id context")
        // Resumption rides on stateless tickets (on by default); no per-context server cache to hold memory.
        _ = CO_SSL_CTX_set_session_cache_mode(context, Int(SSL_SESS_CACHE_OFF))
        var keys = ticketKeys
        try check(CO_SSL_CTX_set_tlsext_ticket_keys(context, &keys, keys.count) == 1, "session ticket keys")
        // Every context a connection can start on asks the SNI callback (which may switch contexts)
        // and notes an ACME TLS-ALPN-01 offer first.
        _ = CO_SSL_CTX_set_tlsext_servername_callback(context, switchContextForServerName)
        SSL_CTX_set_client_hello_cb(context, noteACMEChallengeOffer, nil)
    }

    private static func check(_ succeeded: Bool, _ step: String) throws(OpenSSLError) {
        guard succeeded else { throw OpenSSLError.draining(.contextSetupFailed, detail: step) }
    }
}
