/* tls.h — the server's TLS context and its certificate.
 *
 * TLS 1.2 and 1.3 only, forward-secret key exchange only (ECDHE), AEAD
 * ciphers only; no renegotiation, no compression, no session tickets that
 * outlive the process. */
#ifndef SS_TLS_H
#define SS_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* Ensures DATA/tls-cert.pem and DATA/tls-key.pem exist: when either is
 * missing, generates a self-signed ECDSA P-256 certificate for "localhost"
 * (SAN: DNS localhost, IP 127.0.0.1, IP ::1; valid 10 years), key written
 * with mode 0600. The directory must exist; each file is written to a
 * temporary name and renamed, so a crash leaves no half file.
 * OUT cert_path, key_path: the files' paths (cap bytes each).
 * OUT generated: 1 when it made them now. 0, SS_INVAL (paths longer than
 * cap), SS_IO, SS_TLS. */
int tls_ensure_self_signed(const char *data_dir, char *cert_path, char *key_path, size_t cap,
                           int *generated);

/* The SHA-256 fingerprint of the certificate in a PEM file, as
 * "AB:CD:…" (95 characters + NUL). 0, SS_IO, SS_TLS. */
int tls_cert_fingerprint(const char *cert_path, char out[96]);

/* A server context for the PEM certificate (chain) and key. Returns NULL and
 * writes a reason into errbuf on failure. Free with SSL_CTX_free. */
SSL_CTX *tls_server_ctx_new(const char *cert_path, const char *key_path, char *errbuf,
                            size_t errlen);

#endif
