/* server.h — the HTTP/1.1 server: connections, parsing, limits, responses.
 *
 * Requests are parsed by http-parser from bytes a net_stream delivers (plain
 * or TLS alike). A connection has at most one request in flight: a client
 * may pipeline, and its later requests wait (buffered, bounded) until the
 * earlier one is answered, so responses go out in order. The handler may
 * answer at once or later (after a worker or a commit): the request and its
 * connection stay valid until http_respond is called, even if the peer has
 * gone (the answer is then dropped).
 *
 * Limits of SPEC §4 are enforced here, before any handler runs: head size
 * (431), body size (413, refused from Content-Length before the body is
 * read), head and body timeouts (408), malformed requests (400); each gets a
 * JSON error and the connection is closed. */
#ifndef SS_HTTP_SERVER_H
#define SS_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/limits.h"
#include "core/metrics.h"
#include "net/stream.h"

typedef struct http_conn http_conn;
typedef struct http_server http_server;

typedef struct http_request {
    http_conn *conn;        /* private */
    http_server *server;
    int method;             /* enum http_method of http_parser.h */
    const char *path;       /* NUL-terminated, without the query */
    const char *query;      /* after '?', "" when none; never log it */
    ss_buf target;          /* private: path '\0' query '\0' */
    ss_buf headers;         /* private: lowercased name '\0' value '\0' … */
    size_t header_count;
    ss_buf body;
    int keep_alive;
    int tls;                /* 1 when it came over TLS */
    char peer[46];          /* the client's address */
    int64_t started_ms;     /* monotonic */
    void *data;             /* the handler's, for an answer given later */
    /* Whose answer this is (a device, person or API key), set by the
     * handler before it answers: the unsent answers of one principal are
     * bounded (SS_HTTP_UNSENT_PRINCIPAL_MAX). "" when none; reset per
     * request. */
    char principal_id[SS_ID_LEN + 1];
    void *conn_data;        /* the handler's and the accounting callback's,
                               kept across the requests of a connection */
} http_request;

/* Runs for each complete request, on the loop thread. The handler must
 * eventually call http_respond exactly once for this request. */
typedef void (*http_request_cb)(void *ctx, http_request *req);

/* Runs once a request's head is complete, before its body is read, on the
 * loop thread: path, query, method and headers are set, the body is not.
 * Returns 0 to go on, or 1 after answering the request itself (http_respond
 * or http_respond_error, at once): the body is then never read and the
 * connection closes after the answer. */
typedef int (*http_head_cb)(void *ctx, http_request *req);

/* Accounting: runs on the loop after each answer (closing 0) and once after
 * the connection has closed (closing 1), with the bytes moved on the socket
 * since the last call (TLS records included) and the request last answered
 * (with its conn_data, which the callback frees when closing). It runs
 * before the next request of the connection is parsed. */
typedef void (*http_account_cb)(void *ctx, http_request *req, uint64_t bytes_in,
                                uint64_t bytes_out, int closing);

typedef struct http_server_options {
    const char *name;        /* "http" or "https", for logs */
    SSL_CTX *tls;            /* NULL for plaintext */
    http_request_cb on_request;
    http_head_cb on_head;    /* may be NULL */
    void *ctx;
    net_loop_buffers *bufs;  /* the loop's shared read buffers */
    size_t body_max;         /* <= SS_HTTP_BODY_MAX */
    metrics *metrics;        /* may be NULL: nothing is counted */
    http_account_cb on_account;  /* may be NULL */
    uint64_t head_timeout_ms;   /* 0: SS_FIRST_MESSAGE_TIMEOUT_MS, never more */
    uint64_t body_timeout_ms;   /* 0: SS_HTTP_BODY_TIMEOUT_MS, never more */
    uint64_t send_stall_ms;     /* 0: SS_HTTP_SEND_STALL_MS, never more */
} http_server_options;

/* Binds and starts listening. OUT bound: "HOST:PORT" actually bound.
 * 0, SS_INVAL (bad address), SS_NOMEM, or an SS code of net_tcp_listen's
 * (SS_IN_USE …). */
int http_server_start(uv_loop_t *loop, const char *addr, const http_server_options *opt,
                      http_server **out, char *bound, size_t cap);

/* Stops accepting; connections with a request in flight finish it and are
 * then closed; idle ones are closed now. `done` runs (on the loop) when the
 * last connection and the listener are closed; then free with
 * http_server_free. */
void http_server_stop(http_server *s, void (*done)(void *arg), void *arg);
void http_server_free(http_server *s);

/* Open connections right now. */
size_t http_server_connections(const http_server *s);

/* The value of a header (name lowercase), or NULL. Valid until the answer. */
const char *http_request_header(const http_request *req, const char *name);

/* Copies the percent-decoded value of query parameter `name` into out.
 * 1 when present, 0 when absent; SS_TOO_LARGE when it does not fit, SS_INVAL
 * for a bad escape or a parameter given twice. */
int http_query_get(const http_request *req, const char *name, char *out, size_t cap);

/* 1 when some parameter of the query is named one of names[0..count),
 * compared ignoring case after percent-decoding and trimming surrounding
 * whitespace ("?Key%20=" names "key"); 0 else. */
int http_query_has_name(const http_request *req, const char *const *names, size_t count);

/* One parameter of a query, as http_query_next finds it. */
#define HTTP_QUERY_NAME_MAX 63u
typedef struct http_query_param {
    char name[HTTP_QUERY_NAME_MAX + 1];  /* percent-decoded; "" when name_bad */
    int name_bad;    /* a bad escape, or longer than HTTP_QUERY_NAME_MAX */
    int value_bad;   /* the value has a bad escape */
} http_query_param;
/* Walks the query's parameters in order, skipping empty ones ("a=1&&b"):
 * start with *pos = 0; 1 with the next in out, 0 at the end. */
int http_query_next(const http_request *req, size_t *pos, http_query_param *out);

/* Answers the request: status, body (copied) of len bytes with its content
 * type, and extra header lines (each ending "\r\n", or NULL). After this
 * call the request must not be touched. */
void http_respond(http_request *req, int status, const char *content_type, const char *body,
                  size_t len, const char *extra_headers);

/* Answers with the JSON error of SPEC §2:
 * {"error":{"code":code,"message":message}} (plus any extra JSON members,
 * given as a fragment like "\"index\":3", or NULL). */
void http_respond_error(http_request *req, int status, const char *code, const char *message,
                        const char *extra_json);

/* Ends the request's connection for a reason outside HTTP (the principal
 * it carried was revoked): at once when no answer is owed, else right
 * after the answer a handler still owes (with `Connection: close`). A
 * streamed answer or a streamed body in progress is cut at once (its
 * `gone` runs). The request struct stays valid until the accounting
 * callback's close. */
void http_request_close(http_request *req);

/* ---- streamed answers (export, the live stream) ------------------------
 *
 * An answer whose length is not known, or that never ends (Server-Sent
 * Events), is streamed: http_stream_begin sends the head (HTTP/1.1:
 * `Transfer-Encoding: chunked`; HTTP/1.0: no length, and the connection
 * closes at the end), each http_stream_write one piece of the body, and
 * http_stream_end its end. Until the end the connection takes no other
 * request. A producer writes while http_stream_unsent is below
 * SS_HTTP_STREAM_LOW_WATER and otherwise waits for `drained`, so a
 * streamed answer holds a bounded amount unsent however long it is. A
 * client that takes nothing for SS_HTTP_SEND_STALL_MS is disconnected.
 * When the client goes away, the server stops, or http_request_close is
 * called for the request (its principal was revoked), `gone` runs once, on
 * the loop: the producer stops, frees what it holds and calls
 * http_stream_end, which then only lets the request go. Loop thread only;
 * a HEAD request gets the head and no body (writes are dropped, and never
 * wait: a producer may end right after the head). */
typedef struct http_stream_hooks {
    /* Unsent fell below the low water: it runs once all is handed to the
     * kernel, so a producer that waits only while http_stream_unsent is at
     * or above SS_HTTP_STREAM_LOW_WATER is always woken. Not from inside
     * http_stream_write. */
    void (*drained)(http_request *req);
    void (*gone)(http_request *req);     /* stop: the answer will not be read */
} http_stream_hooks;

/* Sends the head of a streamed answer; hooks are copied. 0, or SS_CLOSED
 * (the client is gone, the server is stopping or the request was closed:
 * nothing is sent, `gone` is not called, end the request with
 * http_stream_end), SS_NOMEM (the head does not fit; nothing sent). */
int http_stream_begin(http_request *req, int status, const char *content_type,
                      const char *extra_headers, const http_stream_hooks *hooks);
/* One piece of the body (copied; len 0 writes nothing). 0, or SS_CLOSED
 * once the client is gone (stop producing; `gone` runs or has run: when
 * the write itself failed, it runs from the loop, after this returns). */
int http_stream_write(http_request *req, const char *data, size_t len);
/* Bytes handed to the connection and not yet taken by the kernel: this
 * answer's (and any earlier answer's still queued). */
size_t http_stream_unsent(const http_request *req);
/* The end of the body (the last chunk); after this call the request must
 * not be touched. */
void http_stream_end(http_request *req);

/* ---- streamed request bodies (bulk import) -----------------------------
 *
 * From the head callback (http_head_cb, returning 0), a handler may take
 * the request's body in pieces instead of whole: the body limit
 * (body_max) then does not apply, the handler bounds what it takes. A
 * Content-Length past body_max still gets 413 unless the head callback
 * chose to stream: one that also refuses from the head (a bad credential)
 * calls http_body_stream first, or its answer becomes the 413. Each piece
 * goes to `piece` as it arrives (on the loop; data valid during the call
 * only); on_request runs once the body is complete, with req->body empty.
 * The body timeout runs between pieces, not over the whole body. The
 * handler may pause reading while it works on what it has (the body
 * timeout does not run while paused) and resume it; pieces then come again
 * from the loop, never from inside http_body_resume. It may answer before
 * the body is complete (a bad line): `piece` returns nonzero after
 * http_respond (or, while paused, it just answers), the rest of the body
 * is then read and discarded (bounded as a lingering close is) and the
 * connection closes; on_request does not run. When the client goes away
 * mid-body, or the server refuses the rest itself (a malformed chunk 400,
 * a stalled body 408, the server stopping 503, each answered and closed
 * by the server), `gone` (may be NULL) runs once, and the handler must
 * still end the request with http_respond (its answer is dropped). */
typedef struct http_body_hooks {
    int (*piece)(http_request *req, const char *data, size_t len);
    void (*gone)(http_request *req);
} http_body_hooks;
/* 0, or SS_INVAL when not called from the head callback (or without a
 * `piece`). */
int http_body_stream(http_request *req, const http_body_hooks *hooks);
void http_body_pause(http_request *req);
void http_body_resume(http_request *req);

/* The reason phrase of a status ("Not Found"). */
const char *http_status_text(int status);

#endif
