/* stream.c — one byte stream over a libuv TCP handle, plain or TLS.
 *
 * Reentrancy rule: after any call into an owner callback (on_read, on_error)
 * the owner may have closed the stream. The memory stays valid until on_close
 * (which libuv runs on a later loop turn), so code here only re-checks the
 * flags (stream_delivering) before going on, and never frees anything itself
 * while an owner callback is on the stack. */
#include "net/stream.h"

#include "core/err.h"
#include "core/log.h"
#include "net/err.h"

#include <linux/sockios.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>

/* OpenSSL wants more ciphertext: the normal way a TLS read loop ends. */
#define TLS_WANT_MORE 1

/* Handshakes at once, since the last trim, that make the heap worth giving
 * back when the last of them ends. Each leaves about 40 KiB of freed heap
 * that glibc keeps resident (in the middle of the heap, so never trimmed by
 * itself): 32 at once leave over 1 MiB, while a trim costs well under 1 ms
 * per MiB given back. A trickle of reconnects (a few at once) never trims. */
#define NET_TRIM_HANDSHAKE_PEAK 32u
/* A trim walks and locks every malloc arena, the workers' and the store
 * thread's too, from the I/O thread: a client that opens and drops bursts
 * of TLS connections over and over gets at most one every this long, */
#define NET_TRIM_INTERVAL_MS 10000u
/* unless this many handshakes ended since the last one: they cost the
 * server far more than the trim (a few ms each against well under 1 ms
 * per MiB), and without it the end of a reconnect storm that came within
 * the interval of the last trim would keep its 40 KiB a handshake for
 * good. */
#define NET_TRIM_HANDSHAKES_MIN 256u

/* One queued write: the request and the bytes in one allocation. */
typedef struct net_wreq {
    uv_write_t req;
    size_t len;
    char data[];
} net_wreq;

/* Whether on_read may be called now. */
static int stream_delivering(const net_stream *s)
{
    return !s->closing && !s->paused && !s->failed && !s->shutdown_after_write;
}

/* Tells the owner once, then stops reading; an owner that already asked to
 * close after writing gets its close now instead. */
static void stream_fail(net_stream *s, int err)
{
    if (s->closing || s->failed)
        return;
    s->failed = 1;
    s->tls_broken = err == SS_TLS;
    uv_read_stop((uv_stream_t *)&s->tcp);
    if (s->shutdown_after_write) {
        net_stream_close(s);
        return;
    }
    if (s->hooks->on_error)
        s->hooks->on_error(s, err);
}

/* ---- closing ------------------------------------------------------------ */

/* OpenSSL drops a session from the cache when the connection is freed
 * without our close_notify, and devices often just close the socket. A
 * connection whose handshake finished and whose TLS never failed (the
 * socket ending is no TLS failure) keeps its session resumable, as nginx
 * does, so a device that reconnects skips the certificate and the full key
 * exchange. */
static void tls_keep_session(net_stream *s)
{
    if (s->handshake_done && !s->tls_broken)
        SSL_set_shutdown(s->ssl, SSL_get_shutdown(s->ssl) | SSL_SENT_SHUTDOWN);
}

/* ---- handshake memory --------------------------------------------------- */

static void hs_begin(net_stream *s)
{
    net_loop_buffers *b = s->bufs;
    s->hs_in_flight = 1;
    if (++b->handshakes_in_flight > b->handshakes_peak)
        b->handshakes_peak = b->handshakes_in_flight;
}

/* The handshake finished or its stream closed. The last of a burst gives the
 * heap pages its peers freed back to the system. */
static void hs_end(net_stream *s)
{
    net_loop_buffers *b = s->bufs;
    if (!s->hs_in_flight)
        return;
    s->hs_in_flight = 0;
    b->handshakes_since_trim++;
    if (--b->handshakes_in_flight > 0 || b->handshakes_peak < NET_TRIM_HANDSHAKE_PEAK)
        return;
    uint64_t now = uv_now(s->tcp.loop);
    if (b->trims > 0 && now - b->last_trim_ms < NET_TRIM_INTERVAL_MS &&
        b->handshakes_since_trim < NET_TRIM_HANDSHAKES_MIN)
        return;  /* the peak stays: the end of a later burst trims */
    b->handshakes_peak = 0;
    b->handshakes_since_trim = 0;
    b->trims++;
    b->last_trim_ms = now;
    malloc_trim(0);
}

static void stream_handle_closed(net_stream *s)
{
    if (--s->open_handles > 0)
        return;
    hs_end(s);
    if (s->ssl) {
        tls_keep_session(s);
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->hooks->on_close)
        s->hooks->on_close(s);
}

static void on_tcp_closed(uv_handle_t *h)
{
    stream_handle_closed(h->data);
}

static void on_drain_closed(uv_handle_t *h)
{
    net_stream *s = h->data;
    free(h);
    s->drain = NULL;
    stream_handle_closed(s);
}

void net_stream_close(net_stream *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    /* Pending writes complete with UV_ECANCELED before on_tcp_closed. */
    uv_close((uv_handle_t *)&s->tcp, on_tcp_closed);
    if (s->drain)
        uv_close((uv_handle_t *)s->drain, on_drain_closed);
}

/* ---- writing ------------------------------------------------------------ */

static void on_write_done(uv_write_t *req, int status)
{
    net_wreq *w = (net_wreq *)req;
    net_stream *s = req->handle->data;
    s->write_pending -= w->len;
    if (status == 0)
        s->bytes_out += w->len;
    free(w);
    if (status < 0 && status != UV_ECANCELED) {
        stream_fail(s, SS_IO);
        return;
    }
    if (s->write_pending == 0 && s->hooks->on_drained && !s->closing)
        s->hooks->on_drained(s);
}

/* Copies bytes into one allocation with its request and queues it. */
static int stream_queue(net_stream *s, const char *data, size_t len)
{
    if (len > SIZE_MAX - sizeof(net_wreq))
        return SS_NOMEM;
    net_wreq *w = malloc(sizeof *w + len);
    if (!w)
        return SS_NOMEM;
    memcpy(w->data, data, len);
    w->len = len;
    uv_buf_t b = {.base = w->data, .len = len};
    if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_write_done) < 0) {
        free(w);
        return SS_IO;
    }
    s->write_pending += len;
    return SS_OK;
}

/* Hands bytes to the socket. When nothing is queued the kernel usually takes
 * them all at once (uv_try_write) and nothing is allocated or copied: the hot
 * path of small HTTP responses. Whatever is left is queued in order. */
static int stream_send(net_stream *s, const char *data, size_t len)
{
    size_t done = 0;
    if (s->write_pending == 0) {
        uv_buf_t b = {.base = (char *)data, .len = len};
        int n = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
        if (n > 0) {
            done = (size_t)n;
            s->bytes_out += done;
        }
    }
    if (done == len)
        return SS_OK;
    return stream_queue(s, data + done, len - done);
}

/* ---- TLS ---------------------------------------------------------------- */

/* Peers failing TLS are common (scanners, old clients): debug level only. */
static void tls_log_failure(int ssl_error)
{
    if (!log_enabled(LOG_DEBUG))
        return;
    char reason[256] = "";
    unsigned long e = ERR_peek_error();
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    log_debug("net", "TLS failed (SSL_get_error %d): %s", ssl_error, reason);
}

/* The one place SSL_get_error is read (Redis's handleSSLReturnCode): OpenSSL
 * wants more ciphertext (TLS_WANT_MORE), the peer sent close_notify
 * (SS_CLOSED), or TLS failed (SS_TLS). Memory BIOs never block on write, so a
 * WANT_WRITE only means "flush and wait for more input" too. */
static int tls_status(net_stream *s, int ret)
{
    int e = SSL_get_error(s->ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_MORE;
    case SSL_ERROR_ZERO_RETURN:
        return SS_CLOSED;
    default:
        tls_log_failure(e);
        ERR_clear_error();
        return SS_TLS;
    }
}

static BIO *tls_bio_new(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    /* An empty memory BIO means "no more yet", not end of stream. */
    if (b)
        BIO_set_mem_eof_return(b, -1);
    return b;
}

/* A memory BIO never shrinks: emptied, it keeps the buffer it grew to (a
 * handshake flight, a request, a response). Once empty that buffer is given
 * back, so an idle TLS connection holds none; SSL_MODE_RELEASE_BUFFERS does
 * the same for OpenSSL's own record buffers. The cost is one small malloc
 * per flush, nothing beside the record's encryption. */
static void tls_bio_release(BIO *b)
{
    BUF_MEM *bm = NULL;
    BIO_get_mem_ptr(b, &bm);
    if (!bm || bm->max == 0 || BIO_ctrl_pending(b) > 0)
        return;
    BUF_MEM *empty = BUF_MEM_new();
    if (empty)
        BIO_set_mem_buf(b, empty, BIO_CLOSE);
}

/* Sends what OpenSSL wrote into the output BIO, then empties it. */
static int tls_flush(net_stream *s)
{
    BIO *out = SSL_get_wbio(s->ssl);
    char *p = NULL;
    long n = BIO_get_mem_data(out, &p);
    if (n <= 0)
        return SS_OK;
    int rc = stream_send(s, p, (size_t)n);
    BIO_reset(out);
    tls_bio_release(out);
    return rc;
}

/* One step: finish the handshake, or decrypt one record for on_read. 0 to go
 * on, TLS_WANT_MORE, SS_CLOSED or SS_TLS. */
static int tls_step(net_stream *s)
{
    if (!s->handshake_done) {
        int r = SSL_do_handshake(s->ssl);
        if (r != 1)
            return tls_status(s, r);
        s->handshake_done = 1;
        hs_end(s);
        return SS_OK;
    }
    char *plain = s->bufs->plain_buf;
    size_t got = 0;
    if (SSL_read_ex(s->ssl, plain, sizeof s->bufs->plain_buf, &got) != 1)
        return tls_status(s, 0);
    s->hooks->on_read(s, plain, got);
    return SS_OK;
}

/* Runs OpenSSL over the ciphertext in the input BIO until it wants more, the
 * owner pauses or closes, or TLS fails; then sends what it produced
 * (handshake messages, alerts, key updates). What stays in the input BIO
 * while paused is owned by the BIO, not by the loop's read buffer. */
static void tls_drain(net_stream *s)
{
    int rc = SS_OK;
    ERR_clear_error();
    while (rc == SS_OK && stream_delivering(s))
        rc = tls_step(s);
    if (s->closing)
        return;
    int frc = tls_flush(s);
    if (rc == TLS_WANT_MORE)
        rc = SS_OK;
    if (rc == SS_OK)
        rc = frc;
    if (rc < 0) {
        stream_fail(s, rc == SS_NOMEM ? SS_IO : rc);
        return;
    }
    tls_bio_release(SSL_get_rbio(s->ssl));
}

static void tls_feed(net_stream *s, const char *data, size_t len)
{
    if (BIO_write(SSL_get_rbio(s->ssl), data, (int)len) != (int)len) {
        stream_fail(s, SS_IO);
        return;
    }
    tls_drain(s);
}

static void on_drain_idle(uv_idle_t *h)
{
    net_stream *s = h->data;
    uv_idle_stop(h);
    if (stream_delivering(s))
        tls_drain(s);
}

/* Whether OpenSSL holds input not yet delivered: a decrypted record, or
 * ciphertext left in the input BIO when the owner paused. */
static int tls_has_buffered(const net_stream *s)
{
    return SSL_has_pending(s->ssl) || BIO_ctrl_pending(SSL_get_rbio(s->ssl)) > 0;
}

/* Delivers buffered plaintext on the next loop turn. The socket may stay
 * silent, so waiting for the next read could stall the stream for good. */
static void tls_schedule_drain(net_stream *s)
{
    if (!s->drain) {
        s->drain = malloc(sizeof *s->drain);
        if (!s->drain) {
            stream_fail(s, SS_IO);
            return;
        }
        uv_idle_init(s->tcp.loop, s->drain);
        s->drain->data = s;
        s->open_handles++;
    }
    uv_idle_start(s->drain, on_drain_idle);
}

static int tls_attach(net_stream *s, SSL_CTX *ctx)
{
    s->ssl = SSL_new(ctx);
    BIO *in = tls_bio_new();
    BIO *out = tls_bio_new();
    if (!s->ssl || !in || !out) {
        BIO_free(in);
        BIO_free(out);
        ERR_clear_error();
        return SS_NOMEM;
    }
    SSL_set_bio(s->ssl, in, out);
    SSL_set_accept_state(s->ssl);
    hs_begin(s);
    return SS_OK;
}

/* Sends close_notify; a stream whose handshake never finished has none. */
static void tls_close_notify(net_stream *s)
{
    if (!s->handshake_done || s->failed)
        return;
    ERR_clear_error();
    if (SSL_shutdown(s->ssl) < 0)
        ERR_clear_error();
    tls_flush(s);
}

/* ---- reading ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    net_loop_buffers *b = ((net_stream *)h->data)->bufs;
    if (!b->read_buf_busy) {
        b->read_buf_busy = 1;
        *buf = uv_buf_init(b->read_buf, sizeof b->read_buf);
        return;
    }
    /* Not reached with one loop thread; libuv reports UV_ENOBUFS on NULL. */
    char *p = malloc(NET_READ_BUF_SIZE);
    *buf = uv_buf_init(p, p ? NET_READ_BUF_SIZE : 0);
}

static void release_read_buf(net_stream *s, const uv_buf_t *buf)
{
    if (buf->base == s->bufs->read_buf)
        s->bufs->read_buf_busy = 0;
    else
        free(buf->base);
}

/* A reset is the peer leaving too (a client that closes with our data
 * unread sends RST, not FIN): owners treat both alike. */
static int read_error(ssize_t nread)
{
    return net_err_from_uv((int)nread) == SS_CLOSED ? SS_CLOSED : SS_IO;
}

/* A lingering stream throws input away; its end (or too much of it) closes
 * the stream, once the FIN is out. */
static void linger_read(net_stream *s, ssize_t nread)
{
    if (nread == 0)
        return;
    if (nread > 0) {
        s->bytes_in += (uint64_t)nread;
        if ((size_t)nread <= s->linger_left) {
            s->linger_left -= (size_t)nread;
            return;
        }
    }
    s->lingering = 0;
    uv_read_stop((uv_stream_t *)&s->tcp);
    /* The peer has ended: close once our answer is out (on_shutdown_done);
     * it failed or sent too much: close now. */
    if (s->shutdown_done || nread != UV_EOF)
        net_stream_close(s);
}

static void on_uv_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    net_stream *s = st->data;
    if (s->lingering && !s->closing) {
        linger_read(s, nread);
        release_read_buf(s, buf);
        return;
    }
    if (nread > 0) {
        s->bytes_in += (uint64_t)nread;
        if (s->closing || s->failed || s->shutdown_after_write)
            ; /* a read already in libuv's hands when reading stopped */
        else if (s->ssl)
            /* paused or not: the ciphertext is kept in the input BIO */
            tls_feed(s, buf->base, (size_t)nread);
        else
            s->hooks->on_read(s, buf->base, (size_t)nread);
    } else if (nread < 0) {
        stream_fail(s, read_error(nread));
    }
    release_read_buf(s, buf);
}

static int stream_start(net_stream *s)
{
    return uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_uv_read) ? SS_IO : SS_OK;
}

/* ---- public ------------------------------------------------------------- */

int net_stream_accept(uv_stream_t *server, net_stream *s, SSL_CTX *tls, net_loop_buffers *bufs)
{
    net_stream keep = *s;
    *s = (net_stream){.hooks = keep.hooks, .data = keep.data, .bufs = bufs};
    if (uv_tcp_init(server->loop, &s->tcp) != 0) {
        /* No handle to close, so nothing would call on_close later: call it
         * now to keep the promise of one free path (libuv cannot fail here
         * for an AF_UNSPEC handle, so this is defensive). */
        if (s->hooks->on_close)
            s->hooks->on_close(s);
        return SS_IO;
    }
    s->tcp.data = s;
    s->open_handles = 1;
    int rc = uv_accept(server, (uv_stream_t *)&s->tcp) ? SS_IO : SS_OK;
    if (rc == 0) {
        uv_tcp_nodelay(&s->tcp, 1);
        if (tls)
            rc = tls_attach(s, tls);
    }
    if (rc == 0)
        rc = stream_start(s);
    if (rc)
        net_stream_close(s);
    return rc;
}

int net_stream_write(net_stream *s, const void *data, size_t len)
{
    if (s->closing || s->shutdown_after_write)
        return SS_CLOSED;
    if (len == 0)
        return SS_OK;
    if (!s->ssl)
        return stream_send(s, data, len);
    if (!s->handshake_done || s->failed)
        return SS_TLS;
    size_t written = 0;
    ERR_clear_error();
    if (SSL_write_ex(s->ssl, data, len, &written) != 1) {
        ERR_clear_error();
        return SS_TLS;
    }
    return tls_flush(s);
}

void net_stream_pause(net_stream *s)
{
    if (s->closing || s->paused)
        return;
    s->paused = 1;
    uv_read_stop((uv_stream_t *)&s->tcp);
}

void net_stream_resume(net_stream *s)
{
    if (s->closing || !s->paused)
        return;
    s->paused = 0;
    if (s->failed || s->shutdown_after_write)
        return;
    if (stream_start(s) != 0) {
        stream_fail(s, SS_IO);
        return;
    }
    if (s->ssl && tls_has_buffered(s))
        tls_schedule_drain(s);
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
    net_stream *s = req->handle->data;
    free(req);
    s->shutdown_done = 1;
    /* A lingering stream waits for the peer's end; failed or not, any
     * other closes now. */
    if (s->lingering && status == 0)
        return;
    net_stream_close(s);
}

static void stream_shutdown(net_stream *s)
{
    if (s->ssl)
        tls_close_notify(s);
    /* uv_shutdown waits for every queued write, then sends FIN. */
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&s->tcp, on_shutdown_done) != 0) {
        free(req);
        net_stream_close(s);
    }
}

void net_stream_close_after_write(net_stream *s)
{
    if (s->closing || s->shutdown_after_write)
        return;
    s->shutdown_after_write = 1;
    uv_read_stop((uv_stream_t *)&s->tcp);
    stream_shutdown(s);
}

void net_stream_close_lingering(net_stream *s, size_t discard_max)
{
    if (s->closing || s->shutdown_after_write)
        return;
    s->shutdown_after_write = 1;
    /* A stream that failed has nothing more to read. */
    s->lingering = !s->failed;
    s->linger_left = discard_max;
    /* Reading goes on, or starts again when the owner had paused it. */
    if (s->lingering && s->paused &&
        uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_uv_read) != 0)
        s->lingering = 0;
    if (!s->lingering)
        uv_read_stop((uv_stream_t *)&s->tcp);
    stream_shutdown(s);
}

uint64_t net_stream_bytes_taken(const net_stream *s)
{
    size_t queued = uv_stream_get_write_queue_size((const uv_stream_t *)&s->tcp);
    uint64_t handed = s->bytes_out + (s->write_pending > queued ? s->write_pending - queued : 0);
    uv_os_fd_t fd;
    int unacked = 0;
    if (uv_fileno((const uv_handle_t *)&s->tcp, &fd) == 0 && ioctl(fd, SIOCOUTQ, &unacked) == 0 &&
        unacked >= 0 && (uint64_t)unacked <= handed)
        return handed - (uint64_t)unacked;
    return handed;
}

void net_stream_peer(const net_stream *s, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (cap == 0)
        return;
    out[0] = '\0';
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)&ss, out, cap);
        return;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    if (ss.ss_family != AF_INET6)
        return;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        /* A dual-stack listener: show (and rate-limit) the IPv4 address. */
        struct sockaddr_in in = {.sin_family = AF_INET};
        memcpy(&in.sin_addr, &in6->sin6_addr.s6_addr[12], sizeof in.sin_addr);
        uv_ip4_name(&in, out, cap);
        return;
    }
    uv_ip6_name(in6, out, cap);
}
