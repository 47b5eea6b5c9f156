/* test_net.c — listener addresses, the plain and TLS stream, the TLS context.
 *
 * Stream tests run a real loop on 127.0.0.1:0 with one blocking client in a
 * thread (plain sockets or OpenSSL over the socket). The client thread never
 * asserts: it records what it saw and the main thread checks after join. Each
 * test ends with every handle closed and uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/err.h"
#include "net/conn_set.h"
#include "net/err.h"
#include "net/listen.h"
#include "net/stream.h"
#include "net/tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* A test whose loop is still running after this has hung. */
#define TEST_GUARD_MS 20000
/* A client blocked this long on its socket gives up (below the guard). */
#define CLIENT_IO_TIMEOUT_S 10
/* Big enough to overflow loopback socket buffers, so writes get queued. */
#define BIG_PAYLOAD (8u * 1024u * 1024u)
#define BIG_CHUNK (64u * 1024u)
/* Several TLS records (16 KiB each) in one client send. */
#define MULTI_RECORD_BYTES 40000u
#define ECHO_BYTES 100000u
#define RESUME_AFTER_MS 100
/* A request-sized exchange, as an idle device makes between long pauses. */
#define SMALL_BYTES 100u
/* Idle checks in one scenario (small, large, small exchange). */
#define IDLE_CHECKS 3
/* Handshakes at once: more than the stream's trim threshold (32). */
#define BURST_CONNS 40
#define PATH_CAP 512

enum srv_mode {
    MODE_ECHO,          /* write back what arrives */
    MODE_CLOSE_IN_READ, /* net_stream_close inside the first on_read */
    MODE_BIG_THEN_CLOSE,/* on the first read: BIG_PAYLOAD, then close_after_write */
    MODE_PAUSE_ECHO,    /* echo, pause after the first read, resume by timer */
    MODE_RECORD,        /* count only */
};

typedef struct fixture fixture;
typedef struct conn {
    net_stream s; /* first: the callbacks get a net_stream * */
    fixture *f;
} conn;

struct fixture {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t client_done;
    uv_timer_t guard;
    uv_timer_t resume_timer;
    uv_async_t idle_check;  /* the client asks the loop to look at an idle stream */
    net_loop_buffers *bufs;
    SSL_CTX *srv_ctx;
    SSL_CTX *cli_ctx;
    char dir[64];
    char cert[PATH_CAP], key[PATH_CAP];
    int port;
    enum srv_mode mode;
    unsigned char *pattern; /* BIG_CHUNK bytes of pattern() */
    conn *c;
    /* server side, loop thread only */
    int accepted, reads, errors, last_err, closes, reads_while_paused;
    int write_fail, write_after_close_rc, drain_seen, handshake_done;
    uint64_t read_total, bytes_in, bytes_out;
    size_t max_write_pending;
    char peer[64];
    int timed_out, client_finished, finishing;
    /* set once the server has queued its big payload; the client reads only
     * then, so the payload cannot all fit in socket buffers */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int server_queued;
    int accepted_shared;         /* f->accepted, for the client */
    int idle_checks;             /* idle checks done, for the client */
    size_t idle_held[IDLE_CHECKS];  /* bytes the idle stream's BIOs held */
    /* client side, client thread only until joined */
    void (*client_fn)(fixture *);
    int cli_ok, cli_connect_failed, cli_version, cli_verify, cli_close_notify, cli_reused;
    size_t cli_received;
    char cli_cipher[64];
    unsigned char cli_peer_md[32];
};

static unsigned char pattern_byte(size_t i)
{
    return (unsigned char)(i % 251u);
}

/* ---- server side -------------------------------------------------------- */

static void finish(fixture *f)
{
    if (f->finishing)
        return;
    f->finishing = 1;
    uv_close((uv_handle_t *)&f->listener, NULL);
    uv_close((uv_handle_t *)&f->client_done, NULL);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_close((uv_handle_t *)&f->resume_timer, NULL);
    uv_close((uv_handle_t *)&f->idle_check, NULL);
}

static void maybe_finish(fixture *f)
{
    if (f->client_finished && f->accepted > 0 && f->closes == f->accepted)
        finish(f);
}

static void on_srv_close(net_stream *s)
{
    conn *c = (conn *)s;
    fixture *f = c->f;
    f->closes++;
    f->bytes_in = s->bytes_in;
    f->bytes_out = s->bytes_out;
    f->c = NULL;
    free(c);
    maybe_finish(f);
}

static void on_srv_error(net_stream *s, int err)
{
    fixture *f = ((conn *)s)->f;
    f->errors++;
    f->last_err = err;
    net_stream_close(s);
}

static void on_resume_timer(uv_timer_t *t)
{
    fixture *f = t->data;
    if (f->c)
        net_stream_resume(&f->c->s);
}

static void send_big_then_close(fixture *f, net_stream *s)
{
    for (size_t off = 0; off < BIG_PAYLOAD; off += BIG_CHUNK) {
        for (size_t i = 0; i < BIG_CHUNK; i++)
            f->pattern[i] = pattern_byte(off + i);
        if (net_stream_write(s, f->pattern, BIG_CHUNK) != 0)
            f->write_fail++;
        if (s->write_pending > f->max_write_pending)
            f->max_write_pending = s->write_pending;
    }
    net_stream_close_after_write(s);
    f->write_after_close_rc = net_stream_write(s, "x", 1);
    pthread_mutex_lock(&f->mu);
    f->server_queued = 1;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

static void on_srv_read(net_stream *s, const char *data, size_t len)
{
    fixture *f = ((conn *)s)->f;
    f->reads++;
    f->read_total += len;
    f->handshake_done = s->ssl ? (int)s->handshake_done : 1;
    if (s->paused)
        f->reads_while_paused++;
    if (s->drain)
        f->drain_seen = 1;
    switch (f->mode) {
    case MODE_ECHO:
        if (net_stream_write(s, data, len) != 0)
            f->write_fail++;
        break;
    case MODE_CLOSE_IN_READ:
        net_stream_close(s);
        net_stream_close(s); /* idempotent */
        f->write_after_close_rc = net_stream_write(s, data, len);
        break;
    case MODE_BIG_THEN_CLOSE:
        if (f->reads == 1)
            send_big_then_close(f, s);
        break;
    case MODE_PAUSE_ECHO:
        if (net_stream_write(s, data, len) != 0)
            f->write_fail++;
        if (f->reads == 1) {
            net_stream_pause(s);
            uv_timer_start(&f->resume_timer, on_resume_timer, RESUME_AFTER_MS, 0);
        }
        break;
    case MODE_RECORD:
        break;
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    fixture *f = server->data;
    if (status < 0)
        return;
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->f = f;
    static const net_stream_hooks hooks = {.on_read = on_srv_read, .on_error = on_srv_error,
                                           .on_close = on_srv_close};
    c->s.hooks = &hooks;
    c->s.data = c;
    f->accepted++;
    f->c = c;
    pthread_mutex_lock(&f->mu);
    f->accepted_shared = f->accepted;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
    if (net_stream_accept(server, &c->s, f->srv_ctx, f->bufs) == 0)
        net_stream_peer(&c->s, f->peer, sizeof f->peer);
}

/* What a memory BIO holds allocated, empty or not. */
static size_t bio_held(BIO *b)
{
    BUF_MEM *bm = NULL;
    BIO_get_mem_ptr(b, &bm);
    return bm ? bm->max : 0;
}

/* The client has its answer and waits: the stream is idle now. */
static void on_idle_check(uv_async_t *a)
{
    fixture *f = a->data;
    pthread_mutex_lock(&f->mu);
    int k = f->idle_checks;
    if (k < IDLE_CHECKS && f->c && f->c->s.ssl)
        f->idle_held[k] = bio_held(SSL_get_rbio(f->c->s.ssl)) + bio_held(SSL_get_wbio(f->c->s.ssl));
    f->idle_checks++;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

static void on_client_done(uv_async_t *a)
{
    fixture *f = a->data;
    f->client_finished = 1;
    maybe_finish(f);
}

static void on_guard(uv_timer_t *t)
{
    fixture *f = t->data;
    f->timed_out = 1;
    if (f->c)
        net_stream_close(&f->c->s);
    if (f->accepted == 0)
        f->accepted = f->closes = 1; /* nothing to wait for */
}

/* ---- client side (its own thread; records, never asserts) --------------- */

static int cli_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = CLIENT_IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads up to len bytes; returns how many arrived before EOF or error. */
static size_t recv_upto(int fd, unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

static unsigned char *pattern_buf(size_t len)
{
    unsigned char *p = malloc(len);
    for (size_t i = 0; p && i < len; i++)
        p[i] = pattern_byte(i);
    return p;
}

static int pattern_ok(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != pattern_byte(i))
            return 0;
    return 1;
}

/* A TLS client on fd; resumes sess when given. */
static SSL *cli_tls_resuming(fixture *f, int fd, SSL_SESSION *sess)
{
    SSL *ssl = SSL_new(f->cli_ctx);
    SSL_set_fd(ssl, fd);
    if (sess)
        SSL_set_session(ssl, sess);
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set1_host(ssl, "localhost");
    if (SSL_connect(ssl) != 1) {
        f->cli_connect_failed = 1;
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    f->cli_version = SSL_version(ssl);
    f->cli_verify = (int)SSL_get_verify_result(ssl);
    snprintf(f->cli_cipher, sizeof f->cli_cipher, "%s", SSL_get_cipher_name(ssl));
    X509 *peer = SSL_get1_peer_certificate(ssl);
    unsigned int mdlen = 0;
    if (peer)
        X509_digest(peer, EVP_sha256(), f->cli_peer_md, &mdlen);
    X509_free(peer);
    f->cli_reused = SSL_session_reused(ssl);
    return ssl;
}

static SSL *cli_tls(fixture *f, int fd)
{
    return cli_tls_resuming(f, fd, NULL);
}

/* Encrypts all of data into records and sends them with one send(), so the
 * server gets several records in one read. */
static int ssl_send_burst(SSL *ssl, int fd, const void *data, size_t len)
{
    BIO *mem = BIO_new(BIO_s_mem());
    BIO *sock = SSL_get_wbio(ssl);
    BIO_up_ref(sock);
    SSL_set0_wbio(ssl, mem);
    size_t written = 0;
    int ok = SSL_write_ex(ssl, data, len, &written) == 1;
    char *p = NULL;
    long n = BIO_get_mem_data(mem, &p);
    ok = ok && n > 0 && send_all(fd, p, (size_t)n) == 0;
    SSL_set0_wbio(ssl, sock);
    return ok ? 0 : -1;
}

static int ssl_write_all(SSL *ssl, const void *data, size_t len)
{
    size_t written = 0;
    return SSL_write_ex(ssl, data, len, &written) == 1 ? 0 : -1;
}

/* Reads up to len bytes; notes a clean close_notify. */
static size_t ssl_read_upto(fixture *f, SSL *ssl, unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        size_t n = 0;
        if (SSL_read_ex(ssl, buf + got, len - got, &n) != 1) {
            if (SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN)
                f->cli_close_notify = 1;
            ERR_clear_error();
            break;
        }
        got += n;
    }
    return got;
}

static void cli_wait_server_queued(fixture *f)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += CLIENT_IO_TIMEOUT_S;
    pthread_mutex_lock(&f->mu);
    while (!f->server_queued && pthread_cond_timedwait(&f->cond, &f->mu, &until) == 0)
        ;
    pthread_mutex_unlock(&f->mu);
}

/* Waits (bounded) until `*counter` reaches n; both under f->mu. */
static void cli_wait_count(fixture *f, const int *counter, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += CLIENT_IO_TIMEOUT_S;
    pthread_mutex_lock(&f->mu);
    while (*counter < n && pthread_cond_timedwait(&f->cond, &f->mu, &until) == 0)
        ;
    pthread_mutex_unlock(&f->mu);
}

/* Has the loop look at the idle stream, and waits until it has. */
static void cli_idle_check(fixture *f, int n)
{
    uv_async_send(&f->idle_check);
    cli_wait_count(f, &f->idle_checks, n);
}

static void *client_main(void *arg)
{
    fixture *f = arg;
    f->client_fn(f);
    uv_async_send(&f->client_done);
    return NULL;
}

/* ---- fixture ------------------------------------------------------------ */

static int port_of(const char *bound)
{
    const char *colon = strrchr(bound, ':');
    return colon ? atoi(colon + 1) : 0;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->bufs = calloc(1, sizeof *f->bufs);
    f->pattern = malloc(BIG_CHUNK);
    assert_non_null(f->bufs);
    assert_non_null(f->pattern);
    f->client_done.data = f->guard.data = f->resume_timer.data = f->listener.data = f;
    f->idle_check.data = f;
    assert_int_equal(uv_async_init(&f->loop, &f->client_done, on_client_done), 0);
    assert_int_equal(uv_async_init(&f->loop, &f->idle_check, on_idle_check), 0);
    uv_timer_init(&f->loop, &f->guard);
    uv_timer_init(&f->loop, &f->resume_timer);
    uv_timer_start(&f->guard, on_guard, TEST_GUARD_MS, 0);
    uv_unref((uv_handle_t *)&f->guard);
    net_addr a;
    char bound[64];
    assert_int_equal(net_addr_parse("127.0.0.1:0", &a), 0);
    assert_int_equal(net_tcp_listen(&f->loop, &f->listener, &a, on_connection, bound, sizeof bound),
                     0);
    f->listener.data = f;
    f->port = port_of(bound);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static void make_tls_files(char *dir, size_t dircap, char *cert, char *key)
{
    snprintf(dir, dircap, "/tmp/test_net.XXXXXX");
    assert_non_null(mkdtemp(dir));
    int generated = 0;
    assert_int_equal(tls_ensure_self_signed(dir, cert, key, PATH_CAP, &generated), 0);
    assert_int_equal(generated, 1);
}

static void remove_tls_files(const char *dir, const char *cert, const char *key)
{
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

/* A client context that trusts exactly the generated certificate. */
static SSL_CTX *client_ctx(const char *cert)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, cert, NULL), 1);
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_PARTIAL_CHAIN);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

static int setup_tls(void **state)
{
    setup(state);
    fixture *f = *state;
    make_tls_files(f->dir, sizeof f->dir, f->cert, f->key);
    char err[256] = "";
    f->srv_ctx = tls_server_ctx_new(f->cert, f->key, err, sizeof err);
    assert_non_null(f->srv_ctx);
    f->cli_ctx = client_ctx(f->cert);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (!f->finishing)
        finish(f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    SSL_CTX_free(f->srv_ctx);
    SSL_CTX_free(f->cli_ctx);
    if (f->dir[0])
        remove_tls_files(f->dir, f->cert, f->key);
    free(f->bufs);
    free(f->pattern);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cond);
    free(f);
    return 0;
}

/* Runs the loop with client_fn in a thread until the client is done and every
 * accepted stream has closed. */
static void run(fixture *f, enum srv_mode mode, void (*client_fn)(fixture *))
{
    pthread_t th;
    f->mode = mode;
    f->client_fn = client_fn;
    assert_int_equal(pthread_create(&th, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    assert_false(f->timed_out);
    assert_int_equal(f->closes, f->accepted);
}

/* ---- client scenarios --------------------------------------------------- */

static void cli_plain_echo(fixture *f)
{
    int fd = cli_connect(f->port);
    unsigned char *out = pattern_buf(ECHO_BYTES), *in = malloc(ECHO_BYTES);
    if (fd >= 0 && send_all(fd, out, ECHO_BYTES) == 0) {
        f->cli_received = recv_upto(fd, in, ECHO_BYTES);
        f->cli_ok = f->cli_received == ECHO_BYTES && pattern_ok(in, ECHO_BYTES);
    }
    if (fd >= 0)
        close(fd);
    free(out);
    free(in);
}

static void cli_tls_echo(fixture *f)
{
    int fd = cli_connect(f->port);
    SSL *ssl = fd >= 0 ? cli_tls(f, fd) : NULL;
    unsigned char *out = pattern_buf(ECHO_BYTES), *in = malloc(ECHO_BYTES);
    if (ssl && ssl_write_all(ssl, out, ECHO_BYTES) == 0) {
        f->cli_received = ssl_read_upto(f, ssl, in, ECHO_BYTES);
        f->cli_ok = f->cli_received == ECHO_BYTES && pattern_ok(in, ECHO_BYTES);
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    free(out);
    free(in);
}

/* Sends a trigger, waits until the server has queued everything, then reads
 * to EOF. */
static void cli_read_big(fixture *f)
{
    int fd = cli_connect(f->port);
    unsigned char *in = malloc(BIG_PAYLOAD + 1);
    if (fd >= 0 && send_all(fd, "go", 2) == 0) {
        cli_wait_server_queued(f);
        f->cli_received = recv_upto(fd, in, BIG_PAYLOAD + 1);
        f->cli_ok = f->cli_received == BIG_PAYLOAD && pattern_ok(in, BIG_PAYLOAD);
    }
    if (fd >= 0)
        close(fd);
    free(in);
}

static void cli_tls_read_big(fixture *f)
{
    int fd = cli_connect(f->port);
    SSL *ssl = fd >= 0 ? cli_tls(f, fd) : NULL;
    unsigned char *in = malloc(BIG_PAYLOAD + 1);
    if (ssl && ssl_write_all(ssl, "go", 2) == 0) {
        cli_wait_server_queued(f);
        f->cli_received = ssl_read_upto(f, ssl, in, BIG_PAYLOAD + 1);
        f->cli_ok = f->cli_received == BIG_PAYLOAD && pattern_ok(in, BIG_PAYLOAD);
    }
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    free(in);
}

/* Sends, then waits for the server to close on its side. */
static void cli_send_then_wait_eof(fixture *f)
{
    int fd = cli_connect(f->port);
    unsigned char buf[16];
    if (fd >= 0 && send_all(fd, "0123456789", 10) == 0)
        f->cli_ok = recv_upto(fd, buf, sizeof buf) == 0;
    if (fd >= 0)
        close(fd);
}

static void cli_tls_burst_then_wait_eof(fixture *f)
{
    int fd = cli_connect(f->port);
    SSL *ssl = fd >= 0 ? cli_tls(f, fd) : NULL;
    unsigned char *out = pattern_buf(MULTI_RECORD_BYTES);
    unsigned char buf[16];
    if (ssl && ssl_send_burst(ssl, fd, out, MULTI_RECORD_BYTES) == 0)
        f->cli_ok = ssl_read_upto(f, ssl, buf, sizeof buf) == 0;
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    free(out);
}

static void cli_send_then_close(fixture *f)
{
    int fd = cli_connect(f->port);
    if (fd >= 0)
        f->cli_ok = send_all(fd, "hello", 5) == 0;
    if (fd >= 0)
        close(fd);
}

/* Sends FIN, then reads whatever the server still sends (a TLS 1.3 session
 * ticket) until it closes: closing with unread data would send RST. */
static void cli_fin_and_drain(int fd)
{
    unsigned char buf[4096];
    shutdown(fd, SHUT_WR);
    while (recv(fd, buf, sizeof buf, 0) > 0)
        ;
    close(fd);
}

/* Sends, then aborts the connection with RST (SO_LINGER 0). */
static void cli_send_then_reset(fixture *f)
{
    int fd = cli_connect(f->port);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (fd < 0)
        return;
    f->cli_ok = send_all(fd, "hello", 5) == 0;
    usleep(20000);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* close_notify, then FIN. */
static void cli_tls_send_then_shutdown(fixture *f)
{
    int fd = cli_connect(f->port);
    SSL *ssl = fd >= 0 ? cli_tls(f, fd) : NULL;
    if (ssl) {
        f->cli_ok = ssl_write_all(ssl, "hello", 5) == 0;
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    if (fd >= 0)
        cli_fin_and_drain(fd);
}

/* FIN without close_notify. */
static void cli_tls_send_then_drop(fixture *f)
{
    int fd = cli_connect(f->port);
    SSL *ssl = fd >= 0 ? cli_tls(f, fd) : NULL;
    if (ssl)
        f->cli_ok = ssl_write_all(ssl, "hello", 5) == 0;
    SSL_free(ssl);
    if (fd >= 0)
        cli_fin_and_drain(fd);
}

static void cli_garbage(fixture *f)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    int fd = cli_connect(f->port);
    unsigned char buf[256];
    if (fd >= 0 && send_all(fd, req, sizeof req - 1) == 0) {
        recv_upto(fd, buf, sizeof buf); /* until the server closes */
        f->cli_ok = 1;
    }
    if (fd >= 0)
        close(fd);
}

static void cli_tls_handshake_only(fixture *f)
{
    int fd = cli_connect(f->port);
    SSL *ssl = fd >= 0 ? cli_tls(f, fd) : NULL;
    f->cli_ok = ssl != NULL;
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
}

/* Plain: two sends apart in time, both echoed although the server paused
 * after the first. */
static void cli_plain_two_parts(fixture *f)
{
    int fd = cli_connect(f->port);
    unsigned char *out = pattern_buf(2000), in[2000];
    if (fd >= 0 && send_all(fd, out, 1000) == 0) {
        usleep(20000);
        if (send_all(fd, out + 1000, 1000) == 0) {
            f->cli_received = recv_upto(fd, in, sizeof in);
            f->cli_ok = f->cli_received == sizeof in && pattern_ok(in, sizeof in);
        }
    }
    if (fd >= 0)
        close(fd);
    free(out);
}

/* TLS: several records in one send; the server pauses after the first and
 * must deliver the rest on resume although nothing more arrives. */
static void cli_tls_burst_echo(fixture *f)
{
    int fd = cli_connect(f->port);
    SSL *ssl = fd >= 0 ? cli_tls(f, fd) : NULL;
    unsigned char *out = pattern_buf(MULTI_RECORD_BYTES), *in = malloc(MULTI_RECORD_BYTES);
    if (ssl && ssl_send_burst(ssl, fd, out, MULTI_RECORD_BYTES) == 0) {
        f->cli_received = ssl_read_upto(f, ssl, in, MULTI_RECORD_BYTES);
        f->cli_ok = f->cli_received == MULTI_RECORD_BYTES && pattern_ok(in, MULTI_RECORD_BYTES);
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    free(out);
    free(in);
}

/* Echoes `len` bytes over ssl; 1 when they came back intact. */
static int cli_tls_exchange(fixture *f, SSL *ssl, unsigned char *in, size_t len)
{
    unsigned char *out = pattern_buf(len);
    int ok = out && ssl_write_all(ssl, out, len) == 0 && ssl_read_upto(f, ssl, in, len) == len &&
             pattern_ok(in, len);
    free(out);
    return ok;
}

/* A device's life on one connection: a small request, idle; a large one
 * (the buffers grow), idle; a small one again. The loop looks at the stream
 * in each pause. */
static void cli_tls_idle_between_requests(fixture *f)
{
    static const size_t sizes[IDLE_CHECKS] = {SMALL_BYTES, ECHO_BYTES, SMALL_BYTES};
    int fd = cli_connect(f->port);
    SSL *ssl = fd >= 0 ? cli_tls(f, fd) : NULL;
    unsigned char *in = malloc(ECHO_BYTES);
    int ok = ssl != NULL;
    for (int i = 0; ok && i < IDLE_CHECKS; i++) {
        ok = cli_tls_exchange(f, ssl, in, sizes[i]);
        if (ok)
            cli_idle_check(f, i + 1);
    }
    f->cli_ok = ok;
    if (ssl)
        SSL_shutdown(ssl);
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    free(in);
}

/* A device that just drops its connection (no close_notify) comes back,
 * resumes its session, idles and sends again. */
static void cli_tls_resume_then_idle(fixture *f)
{
    unsigned char in[SMALL_BYTES];
    int fd = cli_connect(f->port);
    SSL *ssl = fd >= 0 ? cli_tls(f, fd) : NULL;
    int ok = ssl && cli_tls_exchange(f, ssl, in, sizeof in); /* the ticket comes first */
    SSL_SESSION *sess = ok ? SSL_get1_session(ssl) : NULL;
    /* Sends nothing: only keeps OpenSSL from marking the client's copy of
     * the session unresumable, as it does for a connection freed unclosed. */
    if (ssl)
        SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN);
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    fd = sess ? cli_connect(f->port) : -1;
    ssl = fd >= 0 ? cli_tls_resuming(f, fd, sess) : NULL;
    ok = ssl && cli_tls_exchange(f, ssl, in, sizeof in);
    if (ok)
        cli_idle_check(f, 1);
    f->cli_ok = ok && cli_tls_exchange(f, ssl, in, sizeof in);
    if (ssl)
        SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_SESSION_free(sess);
    if (fd >= 0)
        close(fd);
}

/* Opens BURST_CONNS connections and waits until the server has accepted
 * them all, so all their handshakes are in flight at once. */
static int cli_open_burst(fixture *f, int *fds)
{
    int ok = 1;
    for (int i = 0; i < BURST_CONNS; i++) {
        fds[i] = cli_connect(f->port);
        ok = ok && fds[i] >= 0;
    }
    cli_wait_count(f, &f->accepted_shared, BURST_CONNS);
    return ok;
}

/* A reconnect storm: every handshake completes, then all just close. */
static void cli_tls_handshake_burst(fixture *f)
{
    int fds[BURST_CONNS];
    SSL *ssl[BURST_CONNS] = {0};
    int ok = cli_open_burst(f, fds);
    for (int i = 0; ok && i < BURST_CONNS; i++) {
        ssl[i] = cli_tls(f, fds[i]);
        ok = ssl[i] != NULL;
    }
    f->cli_ok = ok;
    for (int i = 0; i < BURST_CONNS; i++) {
        SSL_free(ssl[i]);
        if (fds[i] >= 0)
            close(fds[i]);
    }
}

/* Connections that never start their handshake. */
static void cli_tcp_burst_then_close(fixture *f)
{
    int fds[BURST_CONNS];
    f->cli_ok = cli_open_burst(f, fds);
    for (int i = 0; i < BURST_CONNS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* ---- stream tests: plain ------------------------------------------------ */

static void test_plain_echo_counts_bytes(void **state)
{
    fixture *f = *state;
    run(f, MODE_ECHO, cli_plain_echo);
    assert_true(f->cli_ok);
    assert_int_equal(f->accepted, 1);
    assert_int_equal(f->read_total, ECHO_BYTES);
    assert_int_equal(f->bytes_in, ECHO_BYTES);
    assert_int_equal(f->bytes_out, ECHO_BYTES);
    assert_int_equal(f->write_fail, 0);
    assert_string_equal(f->peer, "127.0.0.1");
}

static void test_plain_peer_close_reports_ss_closed(void **state)
{
    fixture *f = *state;
    run(f, MODE_RECORD, cli_send_then_close);
    assert_true(f->cli_ok);
    assert_int_equal(f->read_total, 5);
    assert_int_equal(f->errors, 1);
    assert_int_equal(f->last_err, SS_CLOSED);
}

static void test_plain_peer_reset_reports_ss_closed(void **state)
{
    fixture *f = *state;
    run(f, MODE_RECORD, cli_send_then_reset);
    assert_true(f->cli_ok);
    assert_int_equal(f->errors, 1);
    assert_int_equal(f->last_err, SS_CLOSED);
}

static void test_plain_close_inside_on_read_is_safe(void **state)
{
    fixture *f = *state;
    run(f, MODE_CLOSE_IN_READ, cli_send_then_wait_eof);
    assert_true(f->cli_ok);
    assert_int_equal(f->reads, 1);
    assert_int_equal(f->errors, 0);
    assert_int_equal(f->closes, 1);
    assert_int_equal(f->write_after_close_rc, SS_CLOSED);
}

static void test_plain_close_after_write_delivers_everything(void **state)
{
    fixture *f = *state;
    run(f, MODE_BIG_THEN_CLOSE, cli_read_big);
    assert_true(f->cli_ok);
    assert_int_equal(f->cli_received, BIG_PAYLOAD);
    assert_int_equal(f->write_fail, 0);
    assert_true(f->max_write_pending > 0); /* the queued path was taken */
    assert_int_equal(f->bytes_out, BIG_PAYLOAD);
    assert_int_equal(f->errors, 0);
    assert_int_equal(f->write_after_close_rc, SS_CLOSED);
}

static void test_plain_pause_holds_reads_until_resume(void **state)
{
    fixture *f = *state;
    run(f, MODE_PAUSE_ECHO, cli_plain_two_parts);
    assert_true(f->cli_ok);
    assert_true(f->reads >= 2);
    assert_int_equal(f->reads_while_paused, 0);
    assert_int_equal(f->read_total, 2000);
}

/* ---- stream tests: TLS -------------------------------------------------- */

static void test_tls13_echo_counts_records(void **state)
{
    fixture *f = *state;
    run(f, MODE_ECHO, cli_tls_echo);
    assert_true(f->cli_ok);
    assert_int_equal(f->cli_version, TLS1_3_VERSION);
    assert_int_equal(f->cli_verify, X509_V_OK); /* SAN localhost matched */
    assert_int_equal(f->read_total, ECHO_BYTES);
    assert_true(f->bytes_in > ECHO_BYTES);
    assert_true(f->bytes_out > ECHO_BYTES);
    assert_int_equal(f->write_fail, 0);
    assert_int_equal(f->last_err, SS_CLOSED); /* the client's close_notify */
}

static void test_tls12_client_gets_ecdhe_aead(void **state)
{
    fixture *f = *state;
    SSL_CTX_set_max_proto_version(f->cli_ctx, TLS1_2_VERSION);
    run(f, MODE_ECHO, cli_tls_echo);
    assert_true(f->cli_ok);
    assert_int_equal(f->cli_version, TLS1_2_VERSION);
    assert_non_null(strstr(f->cli_cipher, "ECDHE-ECDSA-"));
    assert_true(strstr(f->cli_cipher, "GCM") || strstr(f->cli_cipher, "CHACHA20"));
}

static void test_tls12_cbc_only_client_is_refused(void **state)
{
    fixture *f = *state;
    SSL_CTX_set_max_proto_version(f->cli_ctx, TLS1_2_VERSION);
    assert_int_equal(
        SSL_CTX_set_cipher_list(f->cli_ctx, "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA"), 1);
    run(f, MODE_ECHO, cli_tls_handshake_only);
    assert_false(f->cli_ok);
    assert_true(f->cli_connect_failed);
    assert_int_equal(f->last_err, SS_TLS);
    assert_int_equal(f->reads, 0);
}

static void test_tls11_client_is_refused(void **state)
{
    fixture *f = *state;
    SSL_CTX_set_min_proto_version(f->cli_ctx, TLS1_1_VERSION);
    SSL_CTX_set_max_proto_version(f->cli_ctx, TLS1_1_VERSION);
    assert_int_equal(SSL_CTX_set_cipher_list(f->cli_ctx, "DEFAULT:@SECLEVEL=0"), 1);
    run(f, MODE_ECHO, cli_tls_handshake_only);
    assert_true(f->cli_connect_failed);
    assert_int_equal(f->errors, 1);
    assert_int_equal(f->last_err, SS_TLS);
    assert_int_equal(f->reads, 0);
}

static void test_tls_garbage_reports_ss_tls(void **state)
{
    fixture *f = *state;
    run(f, MODE_ECHO, cli_garbage);
    assert_true(f->cli_ok);
    assert_int_equal(f->errors, 1);
    assert_int_equal(f->last_err, SS_TLS);
    assert_int_equal(f->reads, 0);
    assert_true(f->bytes_in > 0);
}

static void test_tls_close_notify_reports_ss_closed(void **state)
{
    fixture *f = *state;
    run(f, MODE_RECORD, cli_tls_send_then_shutdown);
    assert_true(f->cli_ok);
    assert_int_equal(f->read_total, 5);
    assert_int_equal(f->errors, 1);
    assert_int_equal(f->last_err, SS_CLOSED);
}

static void test_tls_fin_without_close_notify_reports_ss_closed(void **state)
{
    fixture *f = *state;
    run(f, MODE_RECORD, cli_tls_send_then_drop);
    assert_true(f->cli_ok);
    assert_int_equal(f->read_total, 5);
    assert_int_equal(f->errors, 1);
    assert_int_equal(f->last_err, SS_CLOSED);
}

static void test_tls_close_inside_on_read_stops_delivery(void **state)
{
    fixture *f = *state;
    run(f, MODE_CLOSE_IN_READ, cli_tls_burst_then_wait_eof);
    assert_true(f->cli_ok);
    assert_int_equal(f->reads, 1); /* later records in the same read not delivered */
    assert_int_equal(f->errors, 0);
    assert_int_equal(f->closes, 1);
    assert_int_equal(f->write_after_close_rc, SS_CLOSED);
}

static void test_tls_close_after_write_sends_all_then_close_notify(void **state)
{
    fixture *f = *state;
    run(f, MODE_BIG_THEN_CLOSE, cli_tls_read_big);
    assert_true(f->cli_ok);
    assert_int_equal(f->cli_received, BIG_PAYLOAD);
    assert_true(f->cli_close_notify);
    assert_true(f->max_write_pending > 0);
    assert_true(f->bytes_out > BIG_PAYLOAD);
    assert_int_equal(f->errors, 0);
}

static void test_tls_resume_delivers_buffered_records(void **state)
{
    fixture *f = *state;
    run(f, MODE_PAUSE_ECHO, cli_tls_burst_echo);
    assert_true(f->cli_ok);
    assert_int_equal(f->read_total, MULTI_RECORD_BYTES);
    assert_true(f->reads >= 3); /* one per record */
    assert_int_equal(f->reads_while_paused, 0);
    assert_true(f->drain_seen); /* delivered by the loop, not by new input */
}

static void test_tls_fingerprint_matches_served_cert(void **state)
{
    fixture *f = *state;
    run(f, MODE_ECHO, cli_tls_handshake_only);
    assert_true(f->cli_ok);
    char fp[96], want[96];
    assert_int_equal(tls_cert_fingerprint(f->cert, fp), 0);
    for (int i = 0; i < 32; i++)
        snprintf(want + i * 3, sizeof want - (size_t)i * 3, i < 31 ? "%02X:" : "%02X",
                 f->cli_peer_md[i]);
    assert_string_equal(fp, want);
}

/* An idle TLS stream holds no BIO buffer, whatever the last exchange's
 * size, and serves the next request as before. One handshake at a time gives
 * no heap back (no trim). */
static void test_tls_idle_stream_holds_no_buffers_and_serves_again(void **state)
{
    fixture *f = *state;
    run(f, MODE_ECHO, cli_tls_idle_between_requests);
    assert_true(f->cli_ok);
    assert_int_equal(f->idle_checks, IDLE_CHECKS);
    for (int i = 0; i < IDLE_CHECKS; i++)
        assert_int_equal(f->idle_held[i], 0);
    assert_int_equal(f->read_total, 2 * SMALL_BYTES + ECHO_BYTES);
    assert_int_equal(f->write_fail, 0);
    assert_int_equal(f->bufs->handshakes_in_flight, 0);
    assert_int_equal(f->bufs->trims, 0);
}

static void test_tls12_idle_stream_holds_no_buffers_and_serves_again(void **state)
{
    fixture *f = *state;
    SSL_CTX_set_max_proto_version(f->cli_ctx, TLS1_2_VERSION);
    run(f, MODE_ECHO, cli_tls_idle_between_requests);
    assert_true(f->cli_ok);
    assert_int_equal(f->cli_version, TLS1_2_VERSION);
    for (int i = 0; i < IDLE_CHECKS; i++)
        assert_int_equal(f->idle_held[i], 0);
    assert_int_equal(f->read_total, 2 * SMALL_BYTES + ECHO_BYTES);
}

static void test_tls_session_resumes_and_idles(void **state)
{
    fixture *f = *state;
    run(f, MODE_ECHO, cli_tls_resume_then_idle);
    assert_true(f->cli_ok);
    assert_true(f->cli_reused);
    assert_int_equal(f->accepted, 2);
    assert_int_equal(f->idle_held[0], 0);
    assert_int_equal(f->read_total, 3 * SMALL_BYTES);
}

static void test_tls12_session_resumes_and_idles(void **state)
{
    fixture *f = *state;
    SSL_CTX_set_max_proto_version(f->cli_ctx, TLS1_2_VERSION);
    run(f, MODE_ECHO, cli_tls_resume_then_idle);
    assert_true(f->cli_ok);
    assert_true(f->cli_reused);
    assert_int_equal(f->idle_held[0], 0);
}

/* The last handshake of a burst gives the heap back, once. */
static void test_tls_handshake_burst_trims_once(void **state)
{
    fixture *f = *state;
    run(f, MODE_RECORD, cli_tls_handshake_burst);
    assert_true(f->cli_ok);
    assert_int_equal(f->accepted, BURST_CONNS);
    assert_int_equal(f->bufs->trims, 1);
    assert_int_equal(f->bufs->handshakes_in_flight, 0);
}

/* A burst right after a trim does not trim again: a client that repeats
 * bursts gets at most one trim per interval. */
static void test_tls_handshake_bursts_trim_at_most_once_an_interval(void **state)
{
    fixture *f = *state;
    uv_update_time(&f->loop);
    f->bufs->trims = 1;  /* as if a burst had just been trimmed */
    f->bufs->last_trim_ms = uv_now(&f->loop);
    run(f, MODE_RECORD, cli_tls_handshake_burst);
    assert_true(f->cli_ok);
    assert_int_equal(f->bufs->trims, 1);
    assert_true(f->bufs->handshakes_peak >= BURST_CONNS);
    assert_int_equal(f->bufs->handshakes_in_flight, 0);
}

/* ... unless many handshakes ended since that trim (a reconnect storm that
 * came within the interval): then the burst's end trims again. */
static void test_tls_handshake_storm_trims_within_the_interval(void **state)
{
    fixture *f = *state;
    uv_update_time(&f->loop);
    f->bufs->trims = 1;
    f->bufs->last_trim_ms = uv_now(&f->loop);
    f->bufs->handshakes_since_trim = 256;  /* as if a storm had run since */
    run(f, MODE_RECORD, cli_tls_handshake_burst);
    assert_true(f->cli_ok);
    assert_int_equal(f->bufs->trims, 2);
    assert_int_equal(f->bufs->handshakes_since_trim, 0);
    assert_int_equal(f->bufs->handshakes_in_flight, 0);
}

/* Handshakes that end by the stream closing count as ended too. */
static void test_tls_unfinished_handshakes_end_on_close(void **state)
{
    fixture *f = *state;
    run(f, MODE_RECORD, cli_tcp_burst_then_close);
    assert_true(f->cli_ok);
    assert_int_equal(f->closes, BURST_CONNS);
    assert_int_equal(f->bufs->handshakes_in_flight, 0);
    assert_int_equal(f->bufs->trims, 1);
}

/* Plain streams have no handshake to count. */
static void test_plain_streams_count_no_handshakes(void **state)
{
    fixture *f = *state;
    run(f, MODE_RECORD, cli_tcp_burst_then_close);
    assert_true(f->cli_ok);
    assert_int_equal(f->bufs->handshakes_peak, 0);
    assert_int_equal(f->bufs->trims, 0);
}

/* ---- addresses ---------------------------------------------------------- */

static void expect_v4(const char *text, const char *ip, int port)
{
    net_addr a;
    char got[64];
    assert_int_equal(net_addr_parse(text, &a), 0);
    assert_int_equal(a.off, 0);
    const struct sockaddr_in *in = (const struct sockaddr_in *)&a.sa;
    assert_int_equal(in->sin_family, AF_INET);
    assert_int_equal(ntohs(in->sin_port), port);
    uv_ip4_name(in, got, sizeof got);
    assert_string_equal(got, ip);
}

static void test_addr_parse_accepts_ipv4_localhost_and_off(void **state)
{
    (void)state;
    expect_v4("127.0.0.1:8080", "127.0.0.1", 8080);
    expect_v4("0.0.0.0:0", "0.0.0.0", 0);
    expect_v4("localhost:7070", "127.0.0.1", 7070);
    expect_v4("255.255.255.255:65535", "255.255.255.255", 65535);
    expect_v4("10.1.2.3:00080", "10.1.2.3", 80);
    net_addr a;
    assert_int_equal(net_addr_parse("off", &a), 0);
    assert_int_equal(a.off, 1);
}

static void test_addr_parse_accepts_bracketed_ipv6(void **state)
{
    (void)state;
    net_addr a;
    char got[64];
    assert_int_equal(net_addr_parse("[::1]:1883", &a), 0);
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a.sa;
    assert_int_equal(in6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(in6->sin6_port), 1883);
    uv_ip6_name(in6, got, sizeof got);
    assert_string_equal(got, "::1");
    assert_int_equal(net_addr_parse("[::]:0", &a), 0);
    assert_int_equal(net_addr_parse("[2001:db8::42]:8443", &a), 0);
}

static void test_addr_parse_refuses_bad_input(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "off ", "OFF", "127.0.0.1", "127.0.0.1:", ":8080", "127.0.0.1:65536",
        "127.0.0.1:99999", "127.0.0.1:000080", "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:80x",
        "127.0.0.1: 80", "127.0.0.1:8080:1", "256.0.0.1:80", "1.2.3:80", "01.2.3.4:80",
        "::1:80", "[::1]", "[::1]80", "[::1]:", "[]:80", "[127.0.0.1]:80", "[::1:80",
        "example.com:80", "localhost", "localhost:", " 127.0.0.1:80",
        "1111111111111111111111111111111111111111111111111111111111111111111111:80",
    };
    net_addr a;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (net_addr_parse(bad[i], &a) != SS_INVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(net_addr_parse(NULL, &a), SS_INVAL);
}

static void test_addr_format_round_trips(void **state)
{
    (void)state;
    net_addr a;
    char out[64];
    assert_int_equal(net_addr_parse("127.0.0.1:8080", &a), 0);
    net_addr_format((const struct sockaddr *)&a.sa, out, sizeof out);
    assert_string_equal(out, "127.0.0.1:8080");
    assert_int_equal(net_addr_parse("[::1]:1883", &a), 0);
    net_addr_format((const struct sockaddr *)&a.sa, out, sizeof out);
    assert_string_equal(out, "[::1]:1883");
    net_addr_format((const struct sockaddr *)&a.sa, out, 4); /* truncated, terminated */
    assert_string_equal(out, "[::");
}

static void test_listen_port_zero_reports_bound_port_and_in_use_fails(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_tcp_t a, b;
    net_addr addr;
    char bound[64], again[64];
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(net_addr_parse("127.0.0.1:0", &addr), 0);
    assert_int_equal(net_tcp_listen(&loop, &a, &addr, on_connection, bound, sizeof bound), 0);
    assert_true(port_of(bound) > 0);
    assert_int_equal(strncmp(bound, "127.0.0.1:", 10), 0);
    assert_int_equal(net_addr_parse(bound, &addr), 0);
    assert_int_equal(net_tcp_listen(&loop, &b, &addr, on_connection, again, sizeof again),
                     SS_IN_USE);
    uv_close((uv_handle_t *)&a, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* b was closed by net_tcp_listen */
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* libuv's codes and ours share negative ints: -1 is UV_EPERM and SS_NOMEM. */
static void test_uv_errors_map_to_ss_codes(void **state)
{
    (void)state;
    assert_int_equal(net_err_from_uv(0), SS_OK);
    assert_int_equal(net_err_from_uv(12), SS_OK);
    assert_int_equal(net_err_from_uv(UV_EADDRINUSE), SS_IN_USE);
    assert_int_equal(net_err_from_uv(UV_EADDRNOTAVAIL), SS_UNAVAILABLE);
    assert_int_equal(net_err_from_uv(UV_EPERM), SS_FORBIDDEN);
    assert_int_equal(net_err_from_uv(UV_EACCES), SS_FORBIDDEN);
    assert_int_equal(net_err_from_uv(UV_ENOMEM), SS_NOMEM);
    assert_int_equal(net_err_from_uv(UV_EINVAL), SS_INVAL);
    assert_int_equal(net_err_from_uv(UV_EOF), SS_CLOSED);
    assert_int_equal(net_err_from_uv(UV_ECONNRESET), SS_CLOSED);
    assert_int_equal(net_err_from_uv(UV_ETIMEDOUT), SS_TIMEOUT);
    assert_int_equal(net_err_from_uv(UV_EIO), SS_IO);
    assert_int_equal(net_err_from_uv(UV_ENOENT), SS_IO);
    /* Every SS code is one of ours: a name, never "UNKNOWN". */
    assert_string_not_equal(ss_err_name(net_err_from_uv(UV_EADDRINUSE)), "UNKNOWN");
    assert_string_not_equal(ss_err_name(net_err_from_uv(UV_EADDRNOTAVAIL)), "UNKNOWN");
}

/* A listener on an address this host does not have, or that is taken,
 * says so in SS terms (the startup message reads ss_strerror). */
static void test_listen_errors_are_ss_codes(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_tcp_t a;
    uv_udp_t u;
    net_addr addr;
    assert_int_equal(uv_loop_init(&loop), 0);
    /* TEST-NET-1 (RFC 5737) is on no interface of a test machine. */
    assert_int_equal(net_addr_parse("192.0.2.1:0", &addr), 0);
    assert_int_equal(net_tcp_listen(&loop, &a, &addr, on_connection, NULL, 0), SS_UNAVAILABLE);
    assert_int_equal(net_udp_bind(&loop, &u, &addr, NULL, 0), SS_UNAVAILABLE);
    assert_int_equal(net_addr_parse("off", &addr), 0);
    assert_int_equal(net_tcp_listen(&loop, &a, &addr, on_connection, NULL, 0), SS_INVAL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_listen_ipv6_loopback_and_off(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_tcp_t t;
    net_addr addr;
    char bound[64];
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(net_addr_parse("off", &addr), 0);
    assert_int_equal(net_tcp_listen(&loop, &t, &addr, on_connection, bound, sizeof bound),
                     SS_INVAL);
    assert_int_equal(net_addr_parse("[::1]:0", &addr), 0);
    assert_int_equal(net_tcp_listen(&loop, &t, &addr, on_connection, bound, sizeof bound), 0);
    assert_int_equal(strncmp(bound, "[::1]:", 6), 0);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_udp_bind_reports_bound_port(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_udp_t u, u2;
    net_addr addr;
    char bound[64], again[64];
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(net_addr_parse("127.0.0.1:0", &addr), 0);
    assert_int_equal(net_udp_bind(&loop, &u, &addr, bound, sizeof bound), 0);
    assert_true(port_of(bound) > 0);
    assert_int_equal(net_addr_parse(bound, &addr), 0);
    assert_int_equal(net_udp_bind(&loop, &u2, &addr, again, sizeof again), SS_IN_USE);
    uv_close((uv_handle_t *)&u, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- certificate and context -------------------------------------------- */

static int san_has(GENERAL_NAMES *names, int type, const unsigned char *want, int len)
{
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != type)
            continue;
        ASN1_STRING *s = type == GEN_DNS ? g->d.dNSName : g->d.iPAddress;
        if (ASN1_STRING_length(s) == len && memcmp(ASN1_STRING_get0_data(s), want, len) == 0)
            return 1;
    }
    return 0;
}

static X509 *read_cert(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x);
    return x;
}

static void check_cert_fields(X509 *x)
{
    static const unsigned char v4[4] = {127, 0, 0, 1};
    static const unsigned char v6[16] = {[15] = 1};
    assert_int_equal(X509_get_version(x), X509_VERSION_3);
    GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(san);
    assert_true(san_has(san, GEN_DNS, (const unsigned char *)"localhost", 9));
    assert_true(san_has(san, GEN_IPADD, v4, 4));
    assert_true(san_has(san, GEN_IPADD, v6, 16));
    GENERAL_NAMES_free(san);
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
    assert_non_null(bc);
    assert_false(bc->ca);
    BASIC_CONSTRAINTS_free(bc);
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)),
                     1);
    assert_true(days >= 3652);
    const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
    assert_int_equal(ASN1_STRING_length(serial), 16);
    EVP_PKEY *pk = X509_get0_pubkey(x);
    assert_non_null(pk);
    assert_true(EVP_PKEY_is_a(pk, "EC"));
    char group[32] = "";
    size_t glen = 0;
    assert_int_equal(EVP_PKEY_get_group_name(pk, group, sizeof group, &glen), 1);
    assert_string_equal(group, "prime256v1");
    assert_int_equal(X509_verify(x, pk), 1); /* self-signed */
}

static void test_self_signed_cert_has_spec_fields(void **state)
{
    (void)state;
    char dir[64], cert[PATH_CAP], key[PATH_CAP];
    make_tls_files(dir, sizeof dir, cert, key);
    X509 *x = read_cert(cert);
    check_cert_fields(x);
    X509_free(x);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    remove_tls_files(dir, cert, key);
}

static void test_self_signed_is_kept_then_remade_when_a_file_is_missing(void **state)
{
    (void)state;
    char dir[64], cert[PATH_CAP], key[PATH_CAP], fp1[96], fp2[96], fp3[96];
    int generated = -1;
    make_tls_files(dir, sizeof dir, cert, key);
    assert_int_equal(tls_cert_fingerprint(cert, fp1), 0);
    assert_int_equal(tls_ensure_self_signed(dir, cert, key, PATH_CAP, &generated), 0);
    assert_int_equal(generated, 0);
    assert_int_equal(tls_cert_fingerprint(cert, fp2), 0);
    assert_string_equal(fp1, fp2);
    unlink(key);
    assert_int_equal(tls_ensure_self_signed(dir, cert, key, PATH_CAP, &generated), 0);
    assert_int_equal(generated, 1);
    assert_int_equal(tls_cert_fingerprint(cert, fp3), 0);
    assert_string_not_equal(fp1, fp3);
    char err[256] = "";
    SSL_CTX *ctx = tls_server_ctx_new(cert, key, err, sizeof err);
    assert_non_null(ctx); /* the new key matches the new cert */
    SSL_CTX_free(ctx);
    remove_tls_files(dir, cert, key);
}

static void test_self_signed_errors(void **state)
{
    (void)state;
    char cert[PATH_CAP], key[PATH_CAP];
    int generated = -1;
    assert_int_equal(tls_ensure_self_signed("/nonexistent/dir", cert, key, PATH_CAP, &generated),
                     SS_IO);
    assert_int_equal(generated, 0);
    char small_c[8], small_k[8];
    assert_int_equal(tls_ensure_self_signed("/tmp", small_c, small_k, sizeof small_c, &generated),
                     SS_INVAL);
}

static void test_fingerprint_format_and_errors(void **state)
{
    (void)state;
    char dir[64], cert[PATH_CAP], key[PATH_CAP], fp[96];
    make_tls_files(dir, sizeof dir, cert, key);
    assert_int_equal(tls_cert_fingerprint(cert, fp), 0);
    assert_int_equal(strlen(fp), 95);
    for (int i = 0; i < 95; i++) {
        if (i % 3 == 2)
            assert_int_equal(fp[i], ':');
        else
            assert_non_null(strchr("0123456789ABCDEF", fp[i]));
    }
    /* SHA-256 of the DER, computed another way */
    X509 *x = read_cert(cert);
    unsigned char *der = NULL, md[32];
    int len = i2d_X509(x, &der);
    assert_true(len > 0);
    assert_int_equal(EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL), 1);
    char want[4];
    snprintf(want, sizeof want, "%02X:", md[0]);
    assert_memory_equal(fp, want, 3);
    snprintf(want, sizeof want, "%02X", md[31]);
    assert_string_equal(fp + 93, want);
    OPENSSL_free(der);
    X509_free(x);
    assert_int_equal(tls_cert_fingerprint(key, fp), SS_TLS); /* not a certificate */
    assert_int_equal(tls_cert_fingerprint("/nonexistent/cert.pem", fp), SS_IO);
    remove_tls_files(dir, cert, key);
}

static void test_server_ctx_settings(void **state)
{
    (void)state;
    char dir[64], cert[PATH_CAP], key[PATH_CAP], err[256] = "";
    make_tls_files(dir, sizeof dir, cert, key);
    SSL_CTX *ctx = tls_server_ctx_new(cert, key, err, sizeof err);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    assert_int_equal(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
    uint64_t want = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET;
    assert_true((SSL_CTX_get_options(ctx) & want) == want);
    assert_true(SSL_CTX_get_mode(ctx) & SSL_MODE_RELEASE_BUFFERS);
    STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(ciphers, i);
        if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any)
            continue; /* a TLS 1.3 suite: (EC)DHE and AEAD by design */
        assert_int_equal(SSL_CIPHER_get_kx_nid(c), NID_kx_ecdhe);
        assert_true(SSL_CIPHER_is_aead(c));
    }
    SSL_CTX_free(ctx);
    remove_tls_files(dir, cert, key);
}

static void test_server_ctx_refuses_mismatched_or_missing_files(void **state)
{
    (void)state;
    char d1[64], c1[PATH_CAP], k1[PATH_CAP], d2[64], c2[PATH_CAP], k2[PATH_CAP];
    char err[256] = "";
    make_tls_files(d1, sizeof d1, c1, k1);
    make_tls_files(d2, sizeof d2, c2, k2);
    assert_null(tls_server_ctx_new(c1, k2, err, sizeof err));
    assert_true(strlen(err) > 0);
    err[0] = '\0';
    assert_null(tls_server_ctx_new("/nonexistent/cert.pem", k1, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/cert.pem"));
    err[0] = '\0';
    assert_null(tls_server_ctx_new(c1, "/nonexistent/key.pem", err, sizeof err));
    assert_true(strlen(err) > 0);
    assert_int_equal(ERR_peek_error(), 0); /* the error queue is left empty */
    remove_tls_files(d1, c1, k1);
    remove_tls_files(d2, c2, k2);
}

/* ---- conn_set: listener, connections, timers, close, stop ---------------- */

/* The clients here are libuv handles on the server's own loop: one thread,
 * and every step of a test is a callback, checked by a polling tick. */
#define CS_CLIENTS 3
#define CS_IDLE_MS 50u
#define CS_LINGER_MS 200u
#define CS_TICK_MS 5u
#define CS_GUARD_MS 5000u
/* The most a lingering connection of these tests reads and drops. */
#define CS_DISCARD_MAX 1024u
/* Timer slack: libuv rounds its clock to milliseconds. */
#define CS_SLACK_MS 2u

enum cs_mode { CS_ECHO, CS_IDLE, CS_LINGER, CS_HOLD_FIRST };

typedef struct cs_fixture cs_fixture;

typedef struct cs_conn {
    net_conn base; /* first */
    cs_fixture *f;
    int held;
} cs_conn;

typedef struct cs_client {
    uv_tcp_t tcp;
    uv_connect_t req;
    uv_write_t wreq;
    cs_fixture *f;
    char got[64];
    size_t got_len;
    int connected, eof, send_ping, close_on_eof;
    uint64_t connected_at, eof_at;
} cs_client;

struct cs_fixture {
    uv_loop_t loop;
    net_loop_buffers *bufs;
    net_conn_set *set;
    uv_timer_t tick, guard;
    enum cs_mode mode;
    cs_client cli[CS_CLIENTS];
    int n_cli;
    int opens, reads, errors, last_err, closeds, frees, stops, stopped, timed_out;
    int frees_at_done, stop_called, done_closing;
    uint64_t read_at, freed_at;
    cs_conn *first;
    void (*step)(cs_fixture *f);
};

static void cs_on_idle(uv_timer_t *t)
{
    net_conn_close(t->data);
}

static void cs_on_open(net_conn *nc)
{
    cs_conn *c = (cs_conn *)nc;
    c->f = net_conn_ctx(nc);
    if (c->f->opens++ == 0) {
        c->f->first = c;
        c->held = c->f->mode == CS_HOLD_FIRST;
    }
    if (c->f->mode == CS_IDLE)
        net_conn_timer_start(nc, cs_on_idle, CS_IDLE_MS);
}

static void cs_on_read(net_stream *st, const char *data, size_t len)
{
    cs_conn *c = (cs_conn *)st;
    c->f->reads++;
    c->f->read_at = uv_now(&c->f->loop);
    net_stream_write(st, data, len);
    if (c->f->mode == CS_LINGER)
        net_conn_close_after_write(&c->base, CS_LINGER_MS, CS_DISCARD_MAX);
}

static void cs_on_error(net_stream *st, int err)
{
    cs_conn *c = (cs_conn *)st;
    c->f->errors++;
    c->f->last_err = err;
    net_conn_close(&c->base);
}

static void cs_on_closed(net_conn *nc)
{
    ((cs_conn *)nc)->f->closeds++;
}

static int cs_held(const net_conn *nc)
{
    return ((const cs_conn *)nc)->held;
}

static void cs_on_free(net_conn *nc)
{
    cs_fixture *f = ((cs_conn *)nc)->f;
    f->frees++;
    f->freed_at = uv_now(&f->loop);
}

/* A held connection closes its socket now and is freed on release. */
static void cs_on_stop(net_conn *nc)
{
    ((cs_conn *)nc)->f->stops++;
    net_conn_close(nc);
}

static void cs_done(void *arg)
{
    cs_fixture *f = arg;
    f->stopped++;
    f->frees_at_done = f->frees;
}

/* ---- clients ---- */

static void cs_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    cs_client *k = h->data;
    *buf = uv_buf_init(k->got + k->got_len, (unsigned)(sizeof k->got - 1 - k->got_len));
}

static void cs_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    cs_client *k = s->data;
    if (n > 0) {
        k->got_len += (size_t)n;
        return;
    }
    if (n < 0 && !k->eof) {
        k->eof = 1;
        k->eof_at = uv_now(&k->f->loop);
        uv_read_stop(s);
        if (k->close_on_eof)
            uv_close((uv_handle_t *)&k->tcp, NULL);
    }
}

static void cs_client_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status;
}

static void cs_client_connected(uv_connect_t *req, int status)
{
    cs_client *k = req->data;
    if (status != 0)
        return;
    k->connected = 1;
    k->connected_at = uv_now(&k->f->loop);
    uv_read_start((uv_stream_t *)&k->tcp, cs_alloc, cs_client_read);
    if (k->send_ping) {
        uv_buf_t b = uv_buf_init("ping", 4);
        uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, cs_client_written);
    }
}

static void cs_connect(cs_fixture *f, int port, int send_ping, int close_on_eof)
{
    cs_client *k = &f->cli[f->n_cli++];
    k->f = f;
    k->send_ping = send_ping;
    k->close_on_eof = close_on_eof;
    k->tcp.data = k->req.data = k;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    assert_int_equal(uv_tcp_init(&f->loop, &k->tcp), 0);
    assert_int_equal(uv_tcp_connect(&k->req, &k->tcp, (const struct sockaddr *)&sa,
                                    cs_client_connected), 0);
}

/* ---- driving ---- */

static void cs_stop(cs_fixture *f)
{
    if (f->stop_called)
        return;
    f->stop_called = 1;
    net_conn_set_stop(f->set, cs_done, f);
}

static void cs_close_all(cs_fixture *f)
{
    f->done_closing = 1;
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_close((uv_handle_t *)&f->guard, NULL);
    for (int i = 0; i < f->n_cli; i++)
        if (!uv_is_closing((uv_handle_t *)&f->cli[i].tcp))
            uv_close((uv_handle_t *)&f->cli[i].tcp, NULL);
}

static void cs_on_tick(uv_timer_t *t)
{
    cs_fixture *f = t->data;
    if (f->stopped) {
        cs_close_all(f);
        return;
    }
    f->step(f);
}

static void cs_on_guard(uv_timer_t *t)
{
    cs_fixture *f = t->data;
    f->timed_out = 1;
    cs_stop(f);
    if (f->first && f->first->held) {
        f->first->held = 0;
        net_conn_release(&f->first->base);
    }
}

/* Starts a set on 127.0.0.1:0 in `mode`; returns its port. */
static int cs_start(cs_fixture *f, enum cs_mode mode, void (*step)(cs_fixture *))
{
    memset(f, 0, sizeof *f);
    f->mode = mode;
    f->step = step;
    f->bufs = calloc(1, sizeof *f->bufs);
    assert_non_null(f->bufs);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    net_conn_set_options opt = {
        .name = "test", .bufs = f->bufs, .conn_size = sizeof(cs_conn), .ctx = f,
        .on_read = cs_on_read, .on_error = cs_on_error, .on_open = cs_on_open,
        .on_closed = cs_on_closed, .held = cs_held, .on_free = cs_on_free, .on_stop = cs_on_stop,
    };
    char bound[64];
    assert_int_equal(
        net_conn_set_start(&f->loop, "127.0.0.1:0", &opt, &f->set, bound, sizeof bound), 0);
    f->tick.data = f->guard.data = f;
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_init(&f->loop, &f->guard);
    uv_timer_start(&f->tick, cs_on_tick, CS_TICK_MS, CS_TICK_MS);
    uv_timer_start(&f->guard, cs_on_guard, CS_GUARD_MS, 0);
    return port_of(bound);
}

static void cs_run_and_end(cs_fixture *f)
{
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_false(f->timed_out);
    assert_int_equal(f->stopped, 1);
    assert_int_equal(net_conn_set_count(f->set), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    net_conn_set_free(f->set);
    free(f->bufs);
}

static void cs_step_stop_once_freed(cs_fixture *f)
{
    if (f->frees == f->opens && f->opens > 0 && f->cli[0].eof)
        cs_stop(f);
}

static void test_conn_set_accepts_serves_and_frees_on_peer_close(void **state)
{
    (void)state;
    static cs_fixture f;
    int port = cs_start(&f, CS_ECHO, cs_step_stop_once_freed);
    cs_connect(&f, port, 1, 1);
    while (f.cli[0].got_len < 4 && !f.timed_out)
        uv_run(&f.loop, UV_RUN_ONCE);
    assert_memory_equal(f.cli[0].got, "ping", 4);
    assert_int_equal(net_conn_set_count(f.set), 1);
    /* The client leaves once it has its echo. */
    uv_close((uv_handle_t *)&f.cli[0].tcp, NULL);
    f.cli[0].eof = 1;
    cs_run_and_end(&f);
    assert_int_equal(f.opens, 1);
    assert_int_equal(f.reads, 1);
    assert_int_equal(f.errors, 1);
    assert_int_equal(f.last_err, SS_CLOSED);
    assert_int_equal(f.closeds, 1);
    assert_int_equal(f.frees, 1);
    assert_int_equal(f.stops, 0); /* freed before the stop */
}

static void test_conn_set_idle_timer_closes(void **state)
{
    (void)state;
    static cs_fixture f;
    int port = cs_start(&f, CS_IDLE, cs_step_stop_once_freed);
    cs_connect(&f, port, 0, 1);
    cs_run_and_end(&f);
    assert_int_equal(f.cli[0].eof, 1);
    assert_true(f.cli[0].eof_at - f.cli[0].connected_at + CS_SLACK_MS >= CS_IDLE_MS);
    assert_int_equal(f.frees, 1);
    assert_int_equal(f.reads, 0);
}

/* The answer goes out, then FIN; a peer that keeps its side open is given
 * the linger time, then dropped. */
static void test_conn_set_close_after_write_lingers_then_closes(void **state)
{
    (void)state;
    static cs_fixture f;
    int port = cs_start(&f, CS_LINGER, cs_step_stop_once_freed);
    cs_connect(&f, port, 1, 0);
    cs_run_and_end(&f);
    assert_memory_equal(f.cli[0].got, "ping", 4);
    assert_int_equal(f.cli[0].eof, 1);
    assert_int_equal(f.frees, 1);
    assert_true(f.freed_at - f.read_at + CS_SLACK_MS >= CS_LINGER_MS);
}

/* A peer that closes too ends the linger at once. */
static void test_conn_set_close_after_write_ends_when_the_peer_closes(void **state)
{
    (void)state;
    static cs_fixture f;
    int port = cs_start(&f, CS_LINGER, cs_step_stop_once_freed);
    cs_connect(&f, port, 1, 1);
    cs_run_and_end(&f);
    assert_memory_equal(f.cli[0].got, "ping", 4);
    assert_int_equal(f.frees, 1);
    assert_true(f.freed_at - f.read_at < CS_LINGER_MS);
}

static void cs_step_stop_when_all_open(cs_fixture *f)
{
    if (f->opens < CS_CLIENTS)
        return;
    cs_stop(f);
    /* Stop waits for the held connection: its socket is closed, its memory
     * is not freed and `done` has not run, until the hold ends. */
    if (f->closeds == CS_CLIENTS && f->frees == CS_CLIENTS - 1 && f->first->held) {
        assert_int_equal(f->stopped, 0);
        assert_int_equal(net_conn_set_count(f->set), 1);
        f->first->held = 0;
        net_conn_release(&f->first->base);
    }
}

static void test_conn_set_stop_closes_open_connections_and_waits_for_holds(void **state)
{
    (void)state;
    static cs_fixture f;
    int port = cs_start(&f, CS_HOLD_FIRST, cs_step_stop_when_all_open);
    for (int i = 0; i < CS_CLIENTS; i++)
        cs_connect(&f, port, 0, 1);
    cs_run_and_end(&f);
    assert_int_equal(f.opens, CS_CLIENTS);
    assert_int_equal(f.stops, CS_CLIENTS);
    assert_int_equal(f.frees, CS_CLIENTS);
    assert_int_equal(f.frees_at_done, CS_CLIENTS);
    for (int i = 0; i < CS_CLIENTS; i++)
        assert_int_equal(f.cli[i].eof, 1);
}

/* A set whose address is taken is handed out, to be freed after the loop. */
static void test_conn_set_bind_failure_is_an_ss_code(void **state)
{
    (void)state;
    static cs_fixture f;
    int port = cs_start(&f, CS_ECHO, cs_step_stop_once_freed);
    net_conn_set_options opt = {.name = "test", .bufs = f.bufs, .conn_size = sizeof(cs_conn)};
    net_conn_set *again = NULL;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    assert_int_equal(net_conn_set_start(&f.loop, addr, &opt, &again, NULL, 0), SS_IN_USE);
    assert_non_null(again);
    assert_int_equal(net_conn_set_start(&f.loop, "off", &opt, &again, NULL, 0), SS_INVAL);
    cs_stop(&f);
    cs_run_and_end(&f);
    net_conn_set_free(again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse_accepts_ipv4_localhost_and_off),
        cmocka_unit_test(test_addr_parse_accepts_bracketed_ipv6),
        cmocka_unit_test(test_addr_parse_refuses_bad_input),
        cmocka_unit_test(test_addr_format_round_trips),
        cmocka_unit_test(test_listen_port_zero_reports_bound_port_and_in_use_fails),
        cmocka_unit_test(test_uv_errors_map_to_ss_codes),
        cmocka_unit_test(test_listen_errors_are_ss_codes),
        cmocka_unit_test(test_listen_ipv6_loopback_and_off),
        cmocka_unit_test(test_conn_set_accepts_serves_and_frees_on_peer_close),
        cmocka_unit_test(test_conn_set_idle_timer_closes),
        cmocka_unit_test(test_conn_set_close_after_write_lingers_then_closes),
        cmocka_unit_test(test_conn_set_close_after_write_ends_when_the_peer_closes),
        cmocka_unit_test(test_conn_set_stop_closes_open_connections_and_waits_for_holds),
        cmocka_unit_test(test_conn_set_bind_failure_is_an_ss_code),
        cmocka_unit_test(test_udp_bind_reports_bound_port),
        cmocka_unit_test(test_self_signed_cert_has_spec_fields),
        cmocka_unit_test(test_self_signed_is_kept_then_remade_when_a_file_is_missing),
        cmocka_unit_test(test_self_signed_errors),
        cmocka_unit_test(test_fingerprint_format_and_errors),
        cmocka_unit_test(test_server_ctx_settings),
        cmocka_unit_test(test_server_ctx_refuses_mismatched_or_missing_files),
        cmocka_unit_test_setup_teardown(test_plain_echo_counts_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_peer_close_reports_ss_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_peer_reset_reports_ss_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_close_inside_on_read_is_safe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_close_after_write_delivers_everything, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plain_pause_holds_reads_until_resume, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tls13_echo_counts_records, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_tls12_client_gets_ecdhe_aead, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_tls12_cbc_only_client_is_refused, setup_tls,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tls11_client_is_refused, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_tls_garbage_reports_ss_tls, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_tls_close_notify_reports_ss_closed, setup_tls,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tls_fin_without_close_notify_reports_ss_closed,
                                        setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_tls_close_inside_on_read_stops_delivery, setup_tls,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tls_close_after_write_sends_all_then_close_notify,
                                        setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_tls_resume_delivers_buffered_records, setup_tls,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tls_idle_stream_holds_no_buffers_and_serves_again,
                                        setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_tls12_idle_stream_holds_no_buffers_and_serves_again,
                                        setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_tls_session_resumes_and_idles, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_tls12_session_resumes_and_idles, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_tls_handshake_burst_trims_once, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_tls_handshake_bursts_trim_at_most_once_an_interval,
                                        setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_tls_handshake_storm_trims_within_the_interval,
                                        setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_tls_unfinished_handshakes_end_on_close, setup_tls,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plain_streams_count_no_handshakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_fingerprint_matches_served_cert, setup_tls,
                                        teardown),
    };
    return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
