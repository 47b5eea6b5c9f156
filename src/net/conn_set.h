/* conn_set.h — a listener and the connections it accepted: written once for
 * every stream protocol (HTTP, the TCP socket, MQTT).
 *
 * The set owns each connection: it allocates it (the protocol's struct,
 * whose first member is a net_conn), links it in its list, and frees it.
 * A connection has one handle, its stream, and one deadline that the
 * protocol uses for whatever it waits for now (first message, idle, a body,
 * a send stall) and that the set uses for the linger of a graceful close.
 * The deadlines of a set's connections sit in one heap under one timer: a
 * timer handle each would cost an idle connection 152 bytes.
 *
 * Closing: net_conn_close drops what is unsent and closes both handles now;
 * net_conn_close_after_write lets what is queued go out (optionally reading
 * and dropping what the peer still sends), bounded by a linger time. Either
 * way the memory is freed once the stream is closed and the protocol no
 * longer holds the connection (opt.held: a request a handler answers later,
 * an item in the ingest queue), whichever comes last: the protocol calls
 * net_conn_release when its hold ends.
 *
 * Stopping: net_conn_set_stop closes the listener and asks the protocol to
 * end each connection (opt.on_stop: close now, or finish what is in flight
 * and close after it); `done` runs once the listener and the last
 * connection are closed. Loop thread only.
 *
 * How a protocol sits on it (MQTT as the example): on_open arms the timer
 * with the first-message timeout (CONNECT), the packet handler re-arms it
 * with 1.5 x the client's keep-alive; `held` is nonzero while a PUBLISH is
 * in the ingest queue (its PUBACK is owed); DISCONNECT or a refused CONNECT
 * is net_conn_close_after_write; on_stop finishes what is in flight. */
#ifndef SS_NET_CONN_SET_H
#define SS_NET_CONN_SET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/list.h"
#include "core/metrics.h"
#include "net/stream.h"

typedef struct net_conn net_conn;
typedef struct net_conn_set net_conn_set;

struct net_conn {
    net_stream stream;      /* first: stream callbacks cast back to the connection */
    net_conn_set *set;
    ss_list link;           /* in the set's list of open connections */
    /* The protocol's deadline, then the linger: what runs at due_ms (the
     * loop's clock), while heap_idx places it in the set's heap. */
    uv_timer_cb timer_cb;
    uint64_t due_ms;
    uint32_t heap_idx;      /* NET_CONN_UNARMED: no deadline */
    unsigned handles_open : 1;  /* the stream not yet closed */
    unsigned timer_off : 1; /* closing: no deadline any more */
    unsigned opened : 1;    /* on_open ran: on_closed and on_free will */
    unsigned closing : 1;   /* closed now (net_conn_close, or the socket ended) */
    unsigned ending : 1;    /* closing after its last write */
};

typedef struct net_conn_set_options {
    const char *name;        /* "http", "tcp" …: logs */
    SSL_CTX *tls;            /* NULL for plaintext */
    net_loop_buffers *bufs;  /* the loop's shared read buffers */
    metrics *metrics;        /* may be NULL; connections opened and closed */
    metrics_protocol listener;
    size_t conn_size;        /* the protocol's struct, a net_conn first */
    void *ctx;               /* the protocol's, net_conn_ctx */
    /* The stream's callbacks (net/stream.h); on_drained may be NULL. */
    net_read_cb on_read;
    net_error_cb on_error;
    net_drained_cb on_drained;
    /* Accepted and reading: the protocol sets itself up and arms its first
     * deadline. Not called when the accept failed (the set then frees the
     * connection without any of these hooks). */
    void (*on_open)(net_conn *c);
    /* The socket is closed: its byte counts are final. */
    void (*on_closed)(net_conn *c);
    /* Nonzero while something outside the connection still points at it;
     * may be NULL (never held). */
    int (*held)(const net_conn *c);
    /* Last call before the memory goes: free what the connection owns. */
    void (*on_free)(net_conn *c);
    /* The set is stopping: end this connection (now or after its work). */
    void (*on_stop)(net_conn *c);
} net_conn_set_options;

/* Binds addr ("HOST:PORT") and starts accepting.
 * OUT out: the set, also when binding failed (free it with
 * net_conn_set_free once the loop has run its close callbacks).
 * OUT bound: "HOST:PORT" actually bound (cap bytes).
 * 0, SS_INVAL (bad address or "off") or SS_NOMEM, both leaving *out
 * untouched, or net_tcp_listen's SS code (SS_IN_USE …). */
int net_conn_set_start(uv_loop_t *loop, const char *addr, const net_conn_set_options *opt,
                       net_conn_set **out, char *bound, size_t cap);

/* Stops accepting and calls on_stop for every open connection; `done` (may
 * be NULL) runs when the listener and the last connection are closed. */
void net_conn_set_stop(net_conn_set *s, void (*done)(void *arg), void *arg);
/* After stop's `done`, or after a failed start. */
void net_conn_set_free(net_conn_set *s);

int net_conn_set_stopping(const net_conn_set *s);
/* Open connections right now (accepted, not yet freed). */
size_t net_conn_set_count(const net_conn_set *s);
/* The list of open connections: ss_list_entry(node, net_conn, link). */
const ss_list *net_conn_set_list(const net_conn_set *s);

/* The options' ctx, from a connection. */
void *net_conn_ctx(const net_conn *c);

#define NET_CONN_UNARMED UINT32_MAX

/* (Re)sets the connection's one deadline, ms from now: cb runs then, its
 * t the set's timer with t->data the net_conn (nothing else of t is the
 * connection's). A closing connection has none. */
void net_conn_timer_start(net_conn *c, uv_timer_cb cb, uint64_t ms);
void net_conn_timer_stop(net_conn *c);
/* 1 while the deadline is set: started, and neither run nor stopped (it is
 * not set any more while its callback runs). */
int net_conn_timer_armed(const net_conn *c);

/* Closes now, dropping anything unwritten; idempotent, also after
 * net_conn_close_after_write. */
void net_conn_close(net_conn *c);
/* Closes once what is queued is written (TLS: and close_notify), then FIN;
 * closes anyway after linger_ms. With discard_max > 0 the peer's bytes are
 * read and dropped meanwhile, up to that many (a lingering close: a peer
 * still sending reads our answer instead of a reset). The protocol's timer
 * is taken over for the linger. No-op once closing or ending. */
void net_conn_close_after_write(net_conn *c, uint64_t linger_ms, size_t discard_max);

/* The protocol's hold (opt.held) has ended: frees the connection if its
 * handles are closed too. The connection must not be touched after. */
void net_conn_release(net_conn *c);

#endif
