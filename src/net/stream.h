/* stream.h — one byte stream over a libuv TCP handle, plain or TLS.
 *
 * TLS runs through OpenSSL memory BIOs: ciphertext read from the socket is
 * written into the SSL object's input BIO, plaintext comes out of SSL_read;
 * plaintext to send goes into SSL_write and the output BIO is flushed to the
 * socket. Every protocol (HTTP, MQTT, TCP ingest) sits on this one stream and
 * never knows which kind it got.
 *
 * Memory: the stream is embedded in its owner's connection struct (caller
 * storage, the libuv habit) and must not move or be freed before on_close.
 * While idle a stream holds no buffer: reads go through one buffer per loop
 * (net_loop_buffers), OpenSSL's record buffers are released
 * (SSL_MODE_RELEASE_BUFFERS) and so are the memory BIOs' once empty, so an
 * idle connection costs only its structs and, for TLS, its SSL object (about
 * 14 KiB with OpenSSL 3.0, most of it the SSL struct itself). Handshakes
 * need far more while they run (about 40 KiB each); after a burst of them
 * the heap's freed pages are given back to the system (malloc_trim) once no
 * handshake is left in flight on the loop, so a reconnect storm does not
 * leave its peak behind in the server's resident memory.
 *
 * Callbacks never run after net_stream_close has been called, except
 * on_close, which runs exactly once. */
#ifndef SS_NET_STREAM_H
#define SS_NET_STREAM_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct net_stream net_stream;
struct net_loop_buffers;

/* Plaintext arrived. `data` is valid only during the call. */
typedef void (*net_read_cb)(net_stream *s, const char *data, size_t len);
/* The peer closed (SS_CLOSED: FIN, reset or TLS close_notify), the socket
 * failed (SS_IO) or TLS failed (SS_TLS). Called at most once; the owner then
 * calls net_stream_close. Not called after close. */
typedef void (*net_error_cb)(net_stream *s, int err);
/* The handle is closed; the owner may free the memory holding the stream. */
typedef void (*net_close_cb)(net_stream *s);
/* Everything queued has been written (write_pending dropped to 0): an owner
 * that stopped reading because its peer was not reading may go on. */
typedef void (*net_drained_cb)(net_stream *s);

/* The owner's callbacks. Every stream of an owner has the same ones, so a
 * stream points at them (an idle connection holds 8 bytes, not 32). */
typedef struct net_stream_hooks {
    net_read_cb on_read;
    net_error_cb on_error;
    net_close_cb on_close;
    net_drained_cb on_drained;  /* optional */
} net_stream_hooks;

struct net_stream {
    uv_tcp_t tcp;        /* tcp.data points back to this stream */
    SSL *ssl;            /* NULL for plaintext */
    const net_stream_hooks *hooks;  /* set before accept; they outlive the stream */
    void *data;          /* the owner's */
    struct net_loop_buffers *bufs;  /* the loop's shared read buffers (from accept) */
    uv_idle_t *drain;    /* TLS only, made on first need: delivers plaintext that
                            OpenSSL still held when the stream was resumed */
    uint64_t bytes_in;   /* bytes read from the socket, TLS records included */
    uint64_t bytes_out;  /* bytes the kernel accepted, TLS records included:
                            counted when written, not when queued */
    size_t write_pending;  /* bytes handed to libuv and not yet written */
    size_t linger_left;    /* bytes a lingering close may still discard */
    unsigned closing : 1;
    unsigned paused : 1;
    unsigned shutdown_after_write : 1;
    unsigned lingering : 1;     /* after close: reading and discarding */
    unsigned shutdown_done : 1; /* the FIN is out */
    unsigned handshake_done : 1;
    unsigned failed : 1;        /* an error was reported: no more reads */
    unsigned tls_broken : 1;    /* TLS itself failed: its session is not kept */
    unsigned hs_in_flight : 1;  /* counted in bufs->handshakes_in_flight */
    unsigned open_handles : 2;  /* tcp and drain not yet closed; on_close at 0 */
};

/* Per-loop scratch space for reads, and the loop's count of TLS handshakes
 * under way: the server struct owns one per loop (zeroed) and passes it to
 * every net_stream_accept on that loop. */
#define NET_READ_BUF_SIZE (64u * 1024u)
typedef struct net_loop_buffers {
    char read_buf[NET_READ_BUF_SIZE];     /* ciphertext or plaintext from the socket */
    char plain_buf[NET_READ_BUF_SIZE];    /* plaintext out of SSL_read */
    int read_buf_busy;
    unsigned handshakes_in_flight;  /* accepted TLS streams not yet through the handshake */
    unsigned handshakes_peak;       /* the most in flight at once since the last trim */
    unsigned handshakes_since_trim; /* ended since the last trim */
    unsigned trims;                 /* times handshake memory was given back (tests) */
    uint64_t last_trim_ms;          /* loop time of the last trim */
} net_loop_buffers;

/* Accepts a pending connection from `server` into `s` and starts reading.
 * IN tls: a server context for TLS, NULL for plaintext. Its hooks and
 * data must be set in `s` before the call (the rest of `s` is initialised
 * here). On failure (SS_IO, SS_NOMEM, SS_TLS) on_close is still called once
 * the half-made handle is closed, so the owner frees in one place. */
int net_stream_accept(uv_stream_t *server, net_stream *s, SSL_CTX *tls, net_loop_buffers *bufs);

/* Sends bytes: written at once as far as the socket takes them, the rest
 * copied and queued. 0, SS_CLOSED (closing, or after close_after_write),
 * SS_NOMEM, SS_IO (the socket failed), SS_TLS (TLS failed, or the handshake is
 * not finished yet: owners answer only after on_read, so it always is). */
int net_stream_write(net_stream *s, const void *data, size_t len);

/* Stops / restarts delivering on_read (backpressure, one request at a time).
 * Pausing inside on_read takes effect at once. On resume, plaintext that TLS
 * had already decrypted is delivered from the loop (never from inside
 * net_stream_resume itself). */
void net_stream_pause(net_stream *s);
void net_stream_resume(net_stream *s);

/* Closes once everything queued has been written (TLS: after close_notify),
 * then sends FIN. Stops reading at once; on_read and on_error are not called
 * any more, on_close is. */
void net_stream_close_after_write(net_stream *s);
/* Like net_stream_close_after_write, but keeps reading after the FIN and
 * throws away what comes, up to discard_max bytes, until the peer closes
 * too (nginx's lingering close): a peer still sending a body we refused
 * then reads our answer, where closing with its bytes unread would send it
 * a reset that destroys the answer in its receive buffer. The owner bounds
 * the time (net_stream_close on its own timer); past discard_max the
 * stream closes at once. */
void net_stream_close_lingering(net_stream *s, size_t discard_max);
/* Closes now, dropping anything unwritten. Idempotent. */
void net_stream_close(net_stream *s);

/* Bytes of this stream the peer has taken so far (TLS records included):
 * those handed to the socket less those its send queue still holds
 * unacknowledged (SIOCOUTQ), so it moves as the peer reads, also while one
 * large write is still under way and bytes_out has not moved. Where the
 * kernel does not say, the bytes handed to the socket. A syscall: for
 * judging a slow peer, not for every write. */
uint64_t net_stream_bytes_taken(const net_stream *s);

/* The peer's address as "1.2.3.4" or "::1" into out (cap >= 46). */
void net_stream_peer(const net_stream *s, char *out, size_t cap);

#endif
