/* tls.c — the server's TLS context and its self-signed certificate. */
#include "net/tls.h"

#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define TLS_CERT_FILE "tls-cert.pem"
#define TLS_KEY_FILE "tls-key.pem"
/* Written under this suffix, then renamed: a crash mid-write must not leave a
 * half file that the next start takes for a complete one. */
#define TLS_TMP_SUFFIX ".tmp"
/* SPEC §1: the generated certificate is valid 10 years (with leap days). */
#define TLS_CERT_DAYS 3653
/* 128 random bits: serials must be unpredictable (CA/B BR 7.1 asks >= 64). */
#define TLS_SERIAL_BYTES 16
/* Only the key's owner may read it. */
#define TLS_KEY_MODE 0600
#define TLS_CERT_MODE 0644
/* Sessions resumable from the cache. Bounded so that many clients cost a fixed
 * amount; 1024 entries of about 1 KiB each. */
#define TLS_SESSION_CACHE_SIZE 1024
/* Seconds a cached session may be resumed: OpenSSL's own default. */
#define TLS_SESSION_TIMEOUT_S 300
/* TLS 1.3 tickets per full handshake: one is what a reconnecting client uses;
 * OpenSSL's default of two doubles the session-cache churn. With
 * SSL_OP_NO_TICKET they are stateful (they name a cache entry), so none
 * outlives the process. */
#define TLS_TICKETS_PER_HANDSHAKE 1
#define TLS_SESSION_ID_CONTEXT "sensorspace"
/* TLS 1.2 suites: forward secrecy (ECDHE) and AEAD only. TLS 1.3 suites are
 * all AEAD with (EC)DHE already; OpenSSL's default list is kept. */
#define TLS_CIPHERS_12                                                                       \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                             \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                             \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_SHA256_BYTES 32

static int join_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return (n < 0 || (size_t)n >= cap) ? SS_INVAL : SS_OK;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Adds one extension written in openssl.cnf syntax ("critical,CA:FALSE"). */
static int cert_add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return SS_TLS;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? SS_OK : SS_TLS;
}

/* A positive random serial of TLS_SERIAL_BYTES. */
static int cert_set_serial(X509 *x)
{
    unsigned char raw[TLS_SERIAL_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return SS_TLS;
    raw[0] &= 0x7f; /* DER integers are signed: keep it positive */
    raw[0] |= 0x40; /* and keep its full length */
    BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
    if (!bn)
        return SS_TLS;
    int ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? SS_OK : SS_TLS;
}

static int cert_set_names(X509 *x)
{
    X509_NAME *name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"SensorSpace",
                                    -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
                                    -1, -1, 0))
        return SS_TLS;
    return X509_set_issuer_name(x, name) ? SS_OK : SS_TLS;
}

static int cert_set_exts(X509 *x)
{
    int rc = cert_add_ext(x, NID_basic_constraints, "critical,CA:FALSE");
    if (rc == 0)
        rc = cert_add_ext(x, NID_key_usage, "critical,digitalSignature");
    if (rc == 0)
        rc = cert_add_ext(x, NID_ext_key_usage, "serverAuth");
    if (rc == 0)
        rc = cert_add_ext(x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
    if (rc == 0)
        rc = cert_add_ext(x, NID_subject_key_identifier, "hash");
    return rc;
}

/* A self-signed v3 certificate for "localhost" over pkey. */
static X509 *cert_make(EVP_PKEY *pkey)
{
    X509 *x = X509_new();
    if (!x)
        return NULL;
    int rc = X509_set_version(x, X509_VERSION_3) ? SS_OK : SS_TLS;
    if (rc == 0)
        rc = cert_set_serial(x);
    if (rc == 0 && (!X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
                    !X509_time_adj_ex(X509_getm_notAfter(x), TLS_CERT_DAYS, 0, NULL)))
        rc = SS_TLS;
    if (rc == 0)
        rc = cert_set_names(x);
    if (rc == 0 && !X509_set_pubkey(x, pkey))
        rc = SS_TLS;
    if (rc == 0)
        rc = cert_set_exts(x);
    if (rc == 0 && !X509_sign(x, pkey, EVP_sha256()))
        rc = SS_TLS;
    if (rc == 0)
        return x;
    X509_free(x);
    return NULL;
}

/* Opens path for writing with exactly `mode` (an old file's looser mode is
 * not kept). */
static FILE *open_private(const char *path, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return NULL;
    if (fchmod(fd, mode) != 0) {
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (!f)
        close(fd);
    return f;
}

/* Writes key or cert (one of them non-NULL) as PEM to path + ".tmp", then
 * renames it over path. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s%s", path, TLS_TMP_SUFFIX);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return SS_INVAL;
    FILE *f = open_private(tmp, mode);
    if (!f)
        return SS_IO;
    int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_X509(f, cert);
    ok = (fflush(f) == 0 && fsync(fileno(f)) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (ok && rename(tmp, path) == 0)
        return SS_OK;
    unlink(tmp);
    return SS_IO;
}

static int generate(const char *cert_path, const char *key_path)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    if (!pkey)
        return SS_TLS;
    int rc = SS_TLS;
    X509 *x = cert_make(pkey);
    if (x)
        rc = write_pem(key_path, TLS_KEY_MODE, pkey, NULL);
    if (rc == 0)
        rc = write_pem(cert_path, TLS_CERT_MODE, NULL, x);
    X509_free(x);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return rc;
}

int tls_ensure_self_signed(const char *data_dir, char *cert_path, char *key_path, size_t cap,
                           int *generated)
{
    *generated = 0;
    if (join_path(cert_path, cap, data_dir, TLS_CERT_FILE) ||
        join_path(key_path, cap, data_dir, TLS_KEY_FILE))
        return SS_INVAL;
    if (file_exists(cert_path) && file_exists(key_path))
        return SS_OK;
    int rc = generate(cert_path, key_path);
    if (rc == 0)
        *generated = 1;
    return rc;
}

int tls_cert_fingerprint(const char *cert_path, char out[96])
{
    out[0] = '\0';
    FILE *f = fopen(cert_path, "r");
    if (!f)
        return SS_IO;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int ok = x && X509_digest(x, EVP_sha256(), md, &len) && len == TLS_SHA256_BYTES;
    X509_free(x);
    ERR_clear_error();
    if (!ok)
        return SS_TLS;
    static const char hex[] = "0123456789ABCDEF";
    for (unsigned int i = 0; i < len; i++) {
        out[i * 3] = hex[md[i] >> 4];
        out[i * 3 + 1] = hex[md[i] & 0xf];
        out[i * 3 + 2] = (i + 1 < len) ? ':' : '\0';
    }
    return SS_OK;
}

/* Writes "what: <first OpenSSL reason>" into errbuf and empties the queue. */
static void set_error(char *errbuf, size_t errlen, const char *what, const char *path)
{
    char reason[256];
    unsigned long e = ERR_peek_error();
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    else
        snprintf(reason, sizeof reason, "unknown error");
    if (errlen)
        snprintf(errbuf, errlen, "%s%s%s: %s", what, path ? " " : "", path ? path : "", reason);
    ERR_clear_error();
}

static int ctx_configure(SSL_CTX *ctx)
{
    static const unsigned char sid_ctx[] = TLS_SESSION_ID_CONTEXT;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) ||
        !SSL_CTX_set_num_tickets(ctx, TLS_TICKETS_PER_HANDSHAKE) ||
        !SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1))
        return SS_TLS;
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    /* Idle connections keep no record buffers (about 34 KiB each). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, TLS_SESSION_TIMEOUT_S);
    return SS_OK;
}

SSL_CTX *tls_server_ctx_new(const char *cert_path, const char *key_path, char *errbuf,
                            size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        set_error(errbuf, errlen, "creating TLS context", NULL);
        return NULL;
    }
    if (ctx_configure(ctx) != 0) {
        set_error(errbuf, errlen, "configuring TLS", NULL);
    } else if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        set_error(errbuf, errlen, "loading certificate", cert_path);
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        set_error(errbuf, errlen, "loading key", key_path);
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        set_error(errbuf, errlen, "key does not match certificate", key_path);
    } else {
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}
