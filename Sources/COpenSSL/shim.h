#ifndef EDGE_ROUTER_COPENSSL_SHIM_H
#define EDGE_ROUTER_COPENSSL_SHIM_H

// Hide the deprecated 1.x API so Swift sees only what OpenSSL 3 recommends.
#define OPENSSL_API_COMPAT 30000
#define OPENSSL_NO_DEPRECATED 1

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/core_names.h>
#include <openssl/objects.h>

// Function-like macros and macro-built constants Swift cannot import.

static inline long CO_SSL_CTX_set_tlsext_servername_callback(SSL_CTX *ctx, int (*cb)(SSL *, int *, void *)) {
    return SSL_CTX_set_tlsext_servername_callback(ctx, cb);
}
static inline long CO_SSL_CTX_set_tlsext_servername_arg(SSL_CTX *ctx, void *arg) {
    return SSL_CTX_set_tlsext_servername_arg(ctx, arg);
}
static inline long CO_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}
static inline long CO_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return SSL_CTX_set_min_proto_version(ctx, version);
}
static inline long CO_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return SSL_CTX_set_max_proto_version(ctx, version);
}
static inline long CO_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}
static inline void CO_SSL_CTX_set_read_ahead(SSL_CTX *ctx, int yes) {
    SSL_CTX_set_read_ahead(ctx, yes);
}
static inline long CO_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_session_cache_mode(ctx, mode);
}
static inline long CO_SSL_CTX_set1_groups_list(SSL_CTX *ctx, const char *list) {
    return SSL_CTX_set1_groups_list(ctx, list);
}
static inline long CO_SSL_CTX_set_num_tickets(SSL_CTX *ctx, size_t n) {
    return SSL_CTX_set_num_tickets(ctx, n);
}
static inline long CO_SSL_CTX_add_extra_chain_cert(SSL_CTX *ctx, X509 *x509) {
    return SSL_CTX_add_extra_chain_cert(ctx, x509);
}
static inline long CO_BIO_get_mem_data(BIO *bio, char **pp) {
    return BIO_get_mem_data(bio, pp);
}
static inline int CO_BIO_reset(BIO *bio) {
    return (int)BIO_reset(bio);
}
static inline long CO_BIO_set_mem_eof_return(BIO *bio, int v) {
    return BIO_set_mem_eof_return(bio, v);
}
static inline size_t CO_BIO_ctrl_pending(BIO *bio) {
    return BIO_ctrl_pending(bio);
}
static inline void CO_BIO_set_retry_read(BIO *bio) { BIO_set_retry_read(bio); }
static inline void CO_BIO_clear_retry_flags(BIO *bio) { BIO_clear_retry_flags(bio); }
static inline const char *CO_SSL_get_servername(const SSL *ssl) {
    return SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
}

static inline uint64_t CO_SSL_OP_NO_COMPRESSION(void) { return SSL_OP_NO_COMPRESSION; }
static inline uint64_t CO_SSL_OP_NO_RENEGOTIATION(void) { return SSL_OP_NO_RENEGOTIATION; }
static inline uint64_t CO_SSL_OP_CIPHER_SERVER_PREFERENCE(void) { return SSL_OP_CIPHER_SERVER_PREFERENCE; }
static inline uint64_t CO_SSL_OP_NO_TICKET(void) { return SSL_OP_NO_TICKET; }
static inline uint64_t CO_SSL_OP_IGNORE_UNEXPECTED_EOF(void) { return SSL_OP_IGNORE_UNEXPECTED_EOF; }
static inline long CO_SSL_MODE_RELEASE_BUFFERS(void) { return SSL_MODE_RELEASE_BUFFERS; }
static inline long CO_SSL_MODE_NO_AUTO_CHAIN(void) { return SSL_MODE_NO_AUTO_CHAIN; }
static inline long CO_SSL_MODE_ENABLE_PARTIAL_WRITE(void) { return SSL_MODE_ENABLE_PARTIAL_WRITE; }
static inline long CO_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER(void) { return SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER; }

// STACK_OF helpers.
static inline int CO_sk_GENERAL_NAME_num(const STACK_OF(GENERAL_NAME) *sk) { return sk_GENERAL_NAME_num(sk); }
static inline GENERAL_NAME *CO_sk_GENERAL_NAME_value(const STACK_OF(GENERAL_NAME) *sk, int i) {
    return sk_GENERAL_NAME_value(sk, i);
}
static inline void CO_GENERAL_NAMES_free(STACK_OF(GENERAL_NAME) *sk) { GENERAL_NAMES_free(sk); }
static inline int CO_sk_X509_num(const STACK_OF(X509) *sk) { return sk_X509_num(sk); }
static inline X509 *CO_sk_X509_value(const STACK_OF(X509) *sk, int i) { return sk_X509_value(sk, i); }

// A CSR's extension request needs a STACK_OF(X509_EXTENSION); only the one-extension case is needed.
static inline int CO_X509_REQ_add_extension(X509_REQ *request, X509_EXTENSION *extension) {
    STACK_OF(X509_EXTENSION) *extensions = sk_X509_EXTENSION_new_null();
    if (extensions == NULL) return 0;
    if (sk_X509_EXTENSION_push(extensions, extension) <= 0) {
        sk_X509_EXTENSION_free(extensions);
        return 0;
    }
    int added = X509_REQ_add_extensions(request, extensions);
    sk_X509_EXTENSION_free(extensions);
    return added;
}

// Memory OpenSSL hands back (BN_bn2hex, ASN1_STRING_to_UTF8) is freed with this macro.
static inline void CO_OPENSSL_free(void *pointer) { OPENSSL_free(pointer); }

#endif
