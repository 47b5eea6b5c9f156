#include "http/server.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/json_out.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/framing.h"
#include "net/conn_set.h"

#include <http_parser.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bytes of pipelined input buffered while a request is in flight; past it we
 * stop reading the socket until the answer is out (backpressure). */
#define HTTP_PENDING_MAX (SS_HTTP_HEAD_MAX + 16u * 1024u)
/* Room for the head of an answer: status line, our headers and the
 * handler's extra ones (API_EXTRA_HEADERS_MAX is 512). */
#define HTTP_HEAD_OUT_MAX 2048u
/* Answers up to this size are assembled on the stack: most are. */
#define HTTP_SMALL_ANSWER 4096u

struct http_server {
    net_conn_set *set;      /* the listener and every open connection */
    http_server_options opt;
};

typedef enum {
    PHASE_IDLE,     /* between requests: keep-alive timer */
    PHASE_HEAD,     /* reading the head: head timer */
    PHASE_BODY,     /* reading the body: body timer */
    PHASE_WAITING,  /* handler has the request: no timer */
} conn_phase;

struct http_conn {
    net_conn base;          /* first: stream, timer, its place in the set */
    http_parser parser;
    http_request req;
    ss_buf pending;         /* bytes read and not yet parsed (pipelining) */
    size_t pending_pos;     /* parsed up to here */
    metrics_bytes_mark bytes_reported;  /* the stream's counters already in metrics */
    uint64_t stall_mark;    /* bytes_out when the send stall timer started */
    uint64_t acct_in, acct_out;         /* the stream's counters already accounted */
    ss_buf header_field;    /* the header name being read */
    http_head_scan scan;    /* RFC 9112 rules the lenient parser lets pass */
    conn_phase phase;
    int reject_status;      /* set by a parser callback to refuse the request */
    const char *reject_code;     /* its error code and message */
    const char *reject_message;
    unsigned te_count;      /* Transfer-Encoding field lines of this request */
    /* The principal of its last answer: whose unsent output it holds. */
    char holder[SS_ID_LEN + 1];
    int last_was_value;     /* header callbacks alternate field/value */
    unsigned in_flight : 1;     /* a handler holds the request */
    unsigned dispatching : 1;   /* inside the handler call: answers do not parse on */
    unsigned read_paused : 1;
    unsigned headers_done : 1;  /* later header callbacks are trailers: ignored */
    unsigned dropping_value : 1;  /* the header past the limit being skipped */
    unsigned request_started : 1; /* a byte of the current request has come */
    unsigned close_after_answer : 1;  /* http_request_close came while in flight */
    unsigned answered_early : 1;  /* on_head answered: the body is never read */
    unsigned message_done : 1;    /* the parser stands at the end of a request */
    /* A streamed answer (http_stream_begin): from its head to its end. */
    unsigned streaming : 1;
    unsigned stream_chunked : 1;  /* HTTP/1.1: chunked; else close-delimited */
    unsigned stream_no_body : 1;  /* HEAD or 204: writes are dropped */
    unsigned stream_gone : 1;     /* `gone` has run: writes are refused */
    unsigned stream_broken : 1;   /* a write failed: the close is due on the loop */
    int stream_status;
    http_stream_hooks stream_hooks;
    /* A streamed request body (http_body_stream): from the head callback
     * to the answer. The handler holds the request all along. */
    unsigned in_head_hook : 1;    /* inside on_head: http_body_stream may be called */
    unsigned head_oversized : 1;  /* Content-Length past body_max: 413 unless streamed */
    unsigned body_streaming : 1;
    unsigned body_paused : 1;
    unsigned body_gone : 1;       /* its `gone` has run */
    unsigned parsing : 1;         /* inside http_parser_execute */
    http_body_hooks body_hooks;
};

static const http_parser_settings parser_settings;
static void stream_gone(http_conn *c);
static void body_gone(http_conn *c);
static int body_incoming(const http_conn *c);

/* ---- lifetime -------------------------------------------------------- */

static void request_reset(http_request *req)
{
    buf_reset(&req->target);
    buf_reset(&req->headers);
    buf_free(&req->body);
    req->header_count = 0;
    req->path = "";
    req->query = "";
    req->data = NULL;
    req->principal_id[0] = '\0';
}

/* The connection's server: the set's ctx. */
static http_server *conn_server(const http_conn *c)
{
    return net_conn_ctx(&c->base);
}

static metrics_protocol server_listener(const http_server *s)
{
    return s->opt.tls ? METRICS_HTTPS : METRICS_HTTP;
}

/* Adds the bytes moved since the last report: after each answer and at
 * close, so a long keep-alive connection shows up before it ends. */
static void conn_report_bytes(http_conn *c, int closing)
{
    http_server *s = conn_server(c);
    const net_stream *st = &c->base.stream;
    metrics_stream_bytes(s->opt.metrics, server_listener(s), &c->bytes_reported, st->bytes_in,
                         st->bytes_out);
    if (!s->opt.on_account)
        return;
    s->opt.on_account(s->opt.ctx, &c->req, st->bytes_in - c->acct_in, st->bytes_out - c->acct_out,
                      closing);
    c->acct_in = st->bytes_in;
    c->acct_out = st->bytes_out;
}

static void on_conn_free(net_conn *nc)
{
    http_conn *c = (http_conn *)nc;
    buf_free(&c->req.target);
    buf_free(&c->req.headers);
    buf_free(&c->req.body);
    buf_free(&c->pending);
    buf_free(&c->header_field);
}

/* A connection is freed when both handles are closed and no handler holds
 * its request: whichever comes last frees it. */
static int conn_held(const net_conn *nc)
{
    return ((const http_conn *)nc)->in_flight;
}

static void on_conn_closed(net_conn *nc)
{
    stream_gone((http_conn *)nc);
    body_gone((http_conn *)nc);
    conn_report_bytes((http_conn *)nc, 1);
}

/* Closes now, dropping anything unwritten; a streamed answer's producer
 * is told to stop. */
static void conn_close(http_conn *c)
{
    net_conn_close(&c->base);
    stream_gone(c);
    body_gone(c);
}

/* Closes once the last answer is written, or after SS_CLOSE_LINGER_MS if
 * the peer does not take it: a peer that stops reading cannot hold the
 * connection, nor a shutdown, for ever. When the peer may still be sending
 * (a request refused before its end, or more pipelined), its bytes are read
 * and dropped meanwhile, so that it gets our answer, not a reset. */
static void conn_close_after_write(http_conn *c)
{
    int peer_sending = !c->message_done || c->pending_pos < c->pending.len;
    net_conn_close_after_write(&c->base, SS_CLOSE_LINGER_MS,
                               peer_sending ? SS_HTTP_LINGER_BYTES_MAX : 0);
}

/* ---- timers ------------------------------------------------------------ */

static void on_timeout(uv_timer_t *t);

/* Between requests with answers still unsent: the peer must take some of
 * them within the stall time, however long the whole takes. */
static void on_send_stall(uv_timer_t *t)
{
    http_conn *c = t->data;
    if (c->base.stream.write_pending == 0 || c->base.stream.bytes_out != c->stall_mark) {
        c->stall_mark = c->base.stream.bytes_out;
        net_conn_timer_start(&c->base, c->base.stream.write_pending ? on_send_stall : on_timeout,
                             c->base.stream.write_pending ? conn_server(c)->opt.send_stall_ms
                                                          : SS_HTTP_KEEPALIVE_TIMEOUT_MS);
        return;
    }
    log_debug(conn_server(c)->opt.name, "closing connection from %s: its answers are not read",
              c->req.peer);
    conn_close(c);
}

static void conn_set_phase(http_conn *c, conn_phase phase)
{
    c->phase = phase;
    uint64_t ms = 0;
    switch (phase) {
    case PHASE_IDLE: ms = SS_HTTP_KEEPALIVE_TIMEOUT_MS; break;
    case PHASE_HEAD: ms = conn_server(c)->opt.head_timeout_ms; break;
    case PHASE_BODY: ms = conn_server(c)->opt.body_timeout_ms; break;
    case PHASE_WAITING: net_conn_timer_stop(&c->base); return;
    }
    if (phase == PHASE_IDLE && c->base.stream.write_pending > 0) {
        c->stall_mark = c->base.stream.bytes_out;
        net_conn_timer_start(&c->base, on_send_stall, conn_server(c)->opt.send_stall_ms);
        return;
    }
    net_conn_timer_start(&c->base, on_timeout, ms);
}

/* ---- responses ----------------------------------------------------------- */

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    }
    return "Unknown";
}

static void conn_drain(http_conn *c);

/* Ready for the next request on a kept-alive connection. Parsing goes on
 * in conn_drain, never from here: an answer given inside the handler call
 * must not parse (and dispatch) the next request on top of the stack. */
static void conn_reset_request(http_conn *c)
{
    request_reset(&c->req);
    c->reject_status = 0;
    c->reject_code = c->reject_message = NULL;
    c->te_count = 0;
    c->answered_early = 0;
    c->head_oversized = 0;
    c->body_streaming = 0;
    c->body_paused = 0;
    c->body_gone = 0;
    c->headers_done = 0;
    c->dropping_value = 0;
    c->request_started = 0;
    http_parser_pause(&c->parser, 0);
    conn_set_phase(c, PHASE_IDLE);
}

/* Appends a string to a head being built in a fixed buffer; 0 when it
 * does not fit. */
static size_t head_put(char *head, size_t pos, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (pos == 0 || pos + n >= cap)
        return 0;
    memcpy(head + pos, s, n);
    return pos + n;
}

/* The rest of an answer's head after its status line and framing: type,
 * the handler's headers, Connection, the blank line. The length, or 0
 * when it does not fit. */
static size_t head_finish(const http_conn *c, char *head, size_t pos, size_t cap,
                          const char *content_type, const char *extra, int keep_alive)
{
    if (content_type) {
        pos = head_put(head, pos, cap, "Content-Type: ");
        pos = head_put(head, pos, cap, content_type);
        pos = head_put(head, pos, cap, "\r\n");
    }
    if (extra)
        pos = head_put(head, pos, cap, extra);
    if (!keep_alive)
        pos = head_put(head, pos, cap, "Connection: close\r\n");
    else if (c->parser.http_minor == 0)
        pos = head_put(head, pos, cap, "Connection: keep-alive\r\n");
    return head_put(head, pos, cap, "\r\n");
}

/* Builds the answer in one allocation and one write: this runs for every
 * request, so no printf beyond the status line and the length. */
static int write_response(http_conn *c, int status, const char *content_type, const char *body,
                          size_t len, const char *extra, int keep_alive)
{
    /* 204 and 304 carry no Content-Length (RFC 9110 §8.6: a 304's would
     * have to be the 200's length) and no body; HEAD gets the head of the
     * answer only (§9.3.2). */
    int bodiless = status == 204 || status == 304;
    int no_body = bodiless || (c->req.method == HTTP_HEAD && !c->reject_status);
    char head[HTTP_HEAD_OUT_MAX];
    int n = bodiless ? snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", status, http_status_text(status))
                     : snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n",
                                     status, http_status_text(status), len);
    size_t pos = n > 0 && (size_t)n < sizeof head ? (size_t)n : 0;
    pos = head_finish(c, head, pos, sizeof head, content_type, extra, keep_alive);
    if (pos == 0)
        return SS_TOO_LARGE;
    size_t body_len = no_body ? 0 : len;
    char small[HTTP_SMALL_ANSWER];
    if (pos + body_len > sizeof small) {
        /* A large answer goes out as it is: one more copy of it would only
         * add to what a connection holds. */
        int rc = net_stream_write(&c->base.stream, head, pos);
        return rc ? rc : net_stream_write(&c->base.stream, body, body_len);
    }
    memcpy(small, head, pos);
    if (body_len)
        memcpy(small + pos, body, body_len);
    return net_stream_write(&c->base.stream, small, pos + body_len);
}

/* Output queued and not yet sent: on every connection of the listener,
 * and on those whose last answer went to the principal `holder`. */
static void server_unsent(const http_server *s, const char *holder, size_t *total,
                          size_t *held)
{
    *total = *held = 0;
    const ss_list *head = net_conn_set_list(s->set), *it;
    for (it = head->next; it != head; it = it->next) {
        const http_conn *c = (const http_conn *)ss_list_entry(it, net_conn, link);
        *total += c->base.stream.write_pending;
        if (holder[0] && strcmp(c->holder, holder) == 0)
            *held += c->base.stream.write_pending;
    }
}

/* Whether a large answer goes out: 0, or the status refusing it. A
 * principal whose clients do not read is refused alone (429) once its own
 * unsent answers reach their share, before it could fill the listener's
 * budget that everyone shares (503, the last resort). Only answers past
 * SS_HTTP_UNSENT_MAX pay for the scan. */
static int answer_over_budget(const http_conn *c, size_t len)
{
    if (len <= SS_HTTP_UNSENT_MAX || c->req.method == HTTP_HEAD)
        return 0;
    size_t total, held;
    server_unsent(conn_server(c), c->req.principal_id, &total, &held);
    if (held > 0 && held + len > SS_HTTP_UNSENT_PRINCIPAL_MAX)
        return 429;
    return total + len > SS_HTTP_UNSENT_TOTAL_MAX ? 503 : 0;
}

/* An answer, whole or streamed, is handed to the stream: it is counted,
 * and the connection closes after it or takes the next request. */
static void conn_answered(http_conn *c, int status, int keep_alive)
{
    metrics_http_request(conn_server(c)->opt.metrics, server_listener(conn_server(c)), status);
    conn_report_bytes(c, 0);
    if (!keep_alive) {
        conn_close_after_write(c);
        return;
    }
    conn_reset_request(c);
    if (!c->dispatching)
        conn_drain(c);
}

void http_respond(http_request *req, int status, const char *content_type, const char *body,
                  size_t len, const char *extra_headers)
{
    http_conn *c = req->conn;
    /* A body past the limit is refused before anything the head callback
     * says, unless the handler takes that body in pieces. */
    if (c->in_head_hook && c->head_oversized && !c->body_streaming && status != 413) {
        c->reject_status = 413;
        log_info(conn_server(c)->opt.name, "refused request from %s: 413 too_large", req->peer);
        http_respond_error(req, 413, "too_large", "the request body is larger than the limit",
                           NULL);
        return;
    }
    int refuse = c->base.closing ? 0 : answer_over_budget(c, len);
    if (refuse) {
        log_info(conn_server(c)->opt.name, "answer to %s refused: %s", req->peer,
                 refuse == 429 ? "its principal's unsent answers are over their share"
                               : "the listener's unsent answers are over their budget");
        /* The connection ends with it: its pipelined requests would each
         * cost a full answer only to be refused again. */
        c->close_after_answer = 1;
        static const char overloaded[] = "{\"error\":{\"code\":\"overloaded\",\"message\":"
                                         "\"the server holds too many unsent answers; retry "
                                         "later\"}}";
        static const char unread[] = "{\"error\":{\"code\":\"too_many_requests\",\"message\":"
                                     "\"earlier answers to this credential are still unread; "
                                     "read them, then retry\"}}";
        http_respond(req, refuse, "application/json", refuse == 429 ? unread : overloaded,
                     refuse == 429 ? sizeof unread - 1 : sizeof overloaded - 1,
                     "Retry-After: 1\r\n");
        return;
    }
    snprintf(c->holder, sizeof c->holder, "%s", req->principal_id);
    c->in_flight = 0;
    /* Closed, or closing after the server's own refusal of a streamed
     * body: the answer is dropped. */
    if (c->base.closing || c->base.ending) {
        net_conn_release(&c->base);
        return;
    }
    int keep_alive = req->keep_alive && !net_conn_set_stopping(conn_server(c)->set) &&
                     !c->reject_status && !c->close_after_answer;
    if (log_enabled(LOG_DEBUG))
        log_debug(conn_server(c)->opt.name, "%s %s %d %lldms", http_method_str(req->method),
                  req->path, status, (long long)(clock_mono_ms() - req->started_ms));
    if (write_response(c, status, content_type, body, len, extra_headers, keep_alive)) {
        conn_close(c);
        return;
    }
    conn_answered(c, status, keep_alive);
}

void http_request_close(http_request *req)
{
    http_conn *c = req->conn;
    if (c->base.closing || c->base.ending)
        return;
    /* A streamed answer may never end (the live stream), a streamed body
     * may be long (an import): cut them now. */
    if (c->streaming || body_incoming(c)) {
        conn_close(c);
        return;
    }
    if (c->in_flight) {
        c->close_after_answer = 1;
        return;
    }
    conn_close(c);
}

void http_respond_error(http_request *req, int status, const char *code, const char *message,
                        const char *extra_json)
{
    json_t *msg = json_string(message);
    ss_buf b = SS_BUF_INIT;
    int rc = buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":", code);
    if (rc == 0)
        rc = msg ? json_out_value(&b, msg) : buf_append_str(&b, "\"\"");
    if (rc == 0)
        rc = buf_printf(&b, "%s%s}}", extra_json ? "," : "", extra_json ? extra_json : "");
    const char *extra = status == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL;
    if (rc == 0)
        http_respond(req, status, "application/json", b.data, b.len, extra);
    else
        http_respond(req, 500, NULL, NULL, 0, NULL);
    buf_free(&b);
    json_decref(msg);
}

/* Refuses a request the parser could not accept: the error answer, then
 * close. The request never reaches a handler. */
static void body_refuse(http_conn *c, int status, const char *code, const char *message);

static void conn_refuse(http_conn *c, int status, const char *code, const char *message)
{
    if (c->body_streaming && c->in_flight) {
        body_refuse(c, status, code, message);
        return;
    }
    c->reject_status = status;
    c->in_flight = 1;
    c->req.keep_alive = 0;
    log_info(conn_server(c)->opt.name, "refused request from %s: %d %s", c->req.peer, status, code);
    http_respond_error(&c->req, status, code, message, NULL);
}

/* ---- streamed answers ------------------------------------------------- */

/* Tells the producer of a streamed answer, once, that nobody will read
 * the rest: the client went, the request was closed, or the server stops. */
static void stream_gone(http_conn *c)
{
    if (!c->streaming || c->stream_gone)
        return;
    c->stream_gone = 1;
    if (c->stream_hooks.gone)
        c->stream_hooks.gone(&c->req);
}

/* While a streamed answer has bytes unsent, the peer must take some of
 * them within the stall time; an idle stream (nothing to send) waits. */
static void on_stream_stall(uv_timer_t *t)
{
    http_conn *c = t->data;
    const net_stream *st = &c->base.stream;
    if (st->write_pending == 0)
        return;
    if (st->bytes_out != c->stall_mark) {
        c->stall_mark = st->bytes_out;
        net_conn_timer_start(&c->base, on_stream_stall, conn_server(c)->opt.send_stall_ms);
        return;
    }
    log_debug(conn_server(c)->opt.name, "closing connection from %s: its stream is not read",
              c->req.peer);
    conn_close(c);
}

static void stream_arm_stall(http_conn *c)
{
    if (c->base.stream.write_pending == 0 || net_conn_timer_armed(&c->base))
        return;
    c->stall_mark = c->base.stream.bytes_out;
    net_conn_timer_start(&c->base, on_stream_stall, conn_server(c)->opt.send_stall_ms);
}

/* A write failed inside http_stream_write: the producer is on the stack,
 * so the close (and `gone`) comes from the loop, not from under it. */
static void on_stream_broken(uv_timer_t *t)
{
    conn_close(t->data);
}

static void stream_break(http_conn *c)
{
    c->stream_broken = 1;
    net_conn_timer_start(&c->base, on_stream_broken, 0);
}

int http_stream_begin(http_request *req, int status, const char *content_type,
                      const char *extra_headers, const http_stream_hooks *hooks)
{
    http_conn *c = req->conn;
    if (c->base.closing || c->base.ending || c->close_after_answer ||
        net_conn_set_stopping(conn_server(c)->set))
        return SS_CLOSED;
    /* HTTP/1.0 has no chunks: the end of the body is the end of the
     * connection (RFC 9112 §6.3). */
    int chunked = c->parser.http_minor >= 1;
    int keep_alive = chunked && req->keep_alive;
    char head[HTTP_HEAD_OUT_MAX];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n%s", status, http_status_text(status),
                     chunked && status != 204 ? "Transfer-Encoding: chunked\r\n" : "");
    size_t pos = n > 0 && (size_t)n < sizeof head ? (size_t)n : 0;
    pos = head_finish(c, head, pos, sizeof head, content_type, extra_headers, keep_alive);
    if (pos == 0)
        return SS_NOMEM;
    if (net_stream_write(&c->base.stream, head, pos)) {
        conn_close(c);
        return SS_CLOSED;
    }
    snprintf(c->holder, sizeof c->holder, "%s", req->principal_id);
    c->streaming = 1;
    c->stream_chunked = (unsigned)chunked;
    c->stream_no_body = req->method == HTTP_HEAD || status == 204;
    c->stream_gone = 0;
    c->stream_broken = 0;
    c->stream_status = status;
    c->stream_hooks = hooks ? *hooks : (http_stream_hooks){0};
    if (log_enabled(LOG_DEBUG))
        log_debug(conn_server(c)->opt.name, "%s %s %d streamed after %lldms",
                  http_method_str(req->method), req->path, status,
                  (long long)(clock_mono_ms() - req->started_ms));
    stream_arm_stall(c);
    return 0;
}

/* One chunk, framed and written at once: a small one from the stack,
 * a large one in one allocation (one write, one TLS record run). */
static int stream_write_chunk(http_conn *c, const char *data, size_t len)
{
    char small[HTTP_SMALL_ANSWER];
    char size[24];
    int n = snprintf(size, sizeof size, "%zx\r\n", len);
    size_t total = (size_t)n + len + 2;
    char *out = total <= sizeof small ? small : malloc(total);
    if (!out)
        return SS_NOMEM;
    memcpy(out, size, (size_t)n);
    memcpy(out + n, data, len);
    memcpy(out + n + len, "\r\n", 2);
    int rc = net_stream_write(&c->base.stream, out, total);
    if (out != small)
        free(out);
    return rc;
}

int http_stream_write(http_request *req, const char *data, size_t len)
{
    http_conn *c = req->conn;
    if (!c->streaming || c->stream_gone || c->stream_broken || c->base.closing || c->base.ending)
        return SS_CLOSED;
    if (len == 0 || c->stream_no_body)
        return 0;
    int rc = c->stream_chunked ? stream_write_chunk(c, data, len)
                               : net_stream_write(&c->base.stream, data, len);
    if (rc) {
        stream_break(c);
        return SS_CLOSED;
    }
    stream_arm_stall(c);
    return 0;
}

size_t http_stream_unsent(const http_request *req)
{
    return req->conn->base.stream.write_pending;
}

void http_stream_end(http_request *req)
{
    http_conn *c = req->conn;
    int begun = c->streaming, chunked = c->stream_chunked && !c->stream_no_body;
    int cut = c->stream_gone || c->stream_broken;
    c->streaming = 0;
    c->in_flight = 0;
    if (c->base.closing) {
        /* The client went (or the request was closed): the answer was
         * still given, and is accounted as one, with what it sent. */
        if (begun) {
            metrics_http_request(conn_server(c)->opt.metrics, server_listener(conn_server(c)),
                                 c->stream_status);
            conn_report_bytes(c, 0);
        }
        net_conn_release(&c->base);
        return;
    }
    /* Refused at the head, or a write failed: nothing more can be sent. */
    if (!begun || c->stream_broken) {
        conn_close(c);
        return;
    }
    int keep_alive = c->stream_chunked && req->keep_alive && !cut && !c->close_after_answer &&
                     !net_conn_set_stopping(conn_server(c)->set);
    if (chunked && net_stream_write(&c->base.stream, "0\r\n\r\n", 5)) {
        conn_close(c);
        return;
    }
    conn_answered(c, c->stream_status, keep_alive);
}

/* ---- streamed request bodies ------------------------------------------ */

/* A body still coming in to a handler that takes it in pieces. */
static int body_incoming(const http_conn *c)
{
    return c->body_streaming && c->in_flight && !c->message_done;
}

/* Tells the handler, once, that the rest of the body will not come. */
static void body_gone(http_conn *c)
{
    if (!body_incoming(c) || c->body_gone)
        return;
    c->body_gone = 1;
    if (c->body_hooks.gone)
        c->body_hooks.gone(&c->req);
}

/* The server refuses a body the handler was taking (a malformed chunk, a
 * stall, a stop): its answer goes out at once and the connection closes
 * after it; the handler is told (`gone`) and its own answer is dropped. */
static void body_refuse(http_conn *c, int status, const char *code, const char *message)
{
    log_info(conn_server(c)->opt.name, "refused request body from %s: %d %s", c->req.peer,
             status, code);
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                     code, message);
    size_t len = n > 0 && (size_t)n < sizeof body ? (size_t)n : 0;
    c->reject_status = status;
    if (c->base.closing || c->base.ending ||
        write_response(c, status, "application/json", body, len, NULL, 0)) {
        conn_close(c);
        return;
    }
    conn_close_after_write(c);
    body_gone(c);
}

int http_body_stream(http_request *req, const http_body_hooks *hooks)
{
    http_conn *c = req->conn;
    if (!c->in_head_hook || !hooks || !hooks->piece)
        return SS_INVAL;
    c->body_streaming = 1;
    c->body_hooks = *hooks;
    return 0;
}

void http_body_pause(http_request *req)
{
    http_conn *c = req->conn;
    if (!body_incoming(c) || c->body_paused)
        return;
    c->body_paused = 1;
    /* Inside a piece the parser stops right after it; the bytes it has
     * not taken wait in pending. */
    http_parser_pause(&c->parser, 1);
    if (!c->base.closing && !c->base.ending)
        net_conn_timer_stop(&c->base);
}

/* Resumed: parsing goes on from the loop, never from inside
 * http_body_resume (the handler may be deep in its own work). */
static void on_body_resumed(uv_timer_t *t)
{
    http_conn *c = t->data;
    if (!body_incoming(c) || c->body_paused)
        return;
    conn_set_phase(c, PHASE_BODY);
    conn_drain(c);
}

void http_body_resume(http_request *req)
{
    http_conn *c = req->conn;
    if (!c->body_paused)
        return;
    c->body_paused = 0;
    http_parser_pause(&c->parser, 0);
    if (!c->parsing && body_incoming(c) && !c->base.closing && !c->base.ending)
        net_conn_timer_start(&c->base, on_body_resumed, 0);
}

/* ---- parsing ---------------------------------------------------------- */

/* Refuses the request from inside a parser callback: the callback returns
 * this (-1), the parser stops, and conn_parse_error answers. */
static int conn_reject(http_conn *c, int status, const char *code, const char *message)
{
    c->reject_status = status;
    c->reject_code = code;
    c->reject_message = message;
    return -1;
}

static int reject_malformed(http_conn *c, const char *message)
{
    return conn_reject(c, 400, "bad_request", message);
}

static int on_message_begin(http_parser *p)
{
    http_conn *c = p->data;
    c->req.started_ms = clock_mono_ms();
    c->request_started = 1;
    c->message_done = 0;
    if (c->phase == PHASE_IDLE)
        conn_set_phase(c, PHASE_HEAD);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    return buf_append(&c->req.target, at, len) ? -1 : 0;
}

/* Headers that may appear once only: two would leave it to each reader
 * which one counts (RFC 9110 §5.3; RFC 9112 §3.2 for Host, §6.3 for
 * Content-Length; RFC 6265 §5.4 for Cookie), and the credential headers
 * must not be first-wins. Transfer-Encoding is counted apart (501). */
static const char *const singleton_headers[] = {
    "host", "content-length", "content-type", "authorization", "x-auth-token",
    "x-csrf-token", "cookie",
};

static int is_singleton(const char *name)
{
    for (size_t i = 0; i < sizeof singleton_headers / sizeof singleton_headers[0]; i++)
        if (strcmp(name, singleton_headers[i]) == 0)
            return 1;
    return 0;
}

/* Trims the trailing SP/HTAB of the value last stored (RFC 9110 §5.5: not
 * part of the value; the parser already skips the leading ones). */
static void header_finish(http_conn *c)
{
    ss_buf *h = &c->req.headers;
    if (!c->last_was_value || c->dropping_value || h->len == 0)
        return;
    size_t end = h->len - 1;  /* the value's NUL */
    while (end > 0 && (h->data[end - 1] == ' ' || h->data[end - 1] == '\t'))
        end--;
    h->data[end] = '\0';
    h->len = end + 1;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (c->headers_done)
        return 0;
    if (c->last_was_value) {
        header_finish(c);
        buf_reset(&c->header_field);
        c->last_was_value = 0;
    }
    return buf_append(&c->header_field, at, len) ? -1 : 0;
}

/* The name is complete: check it, lowercase it, and decide whether the
 * header is kept. 0, or -1 when the request is refused. */
static int header_begin(http_conn *c)
{
    http_request *req = &c->req;
    ss_buf *name = &c->header_field;
    if (!http_field_name_valid(name->data, name->len))
        return reject_malformed(c, "malformed HTTP request: a header name is not a token "
                                   "(no whitespace before the colon)");
    for (size_t i = 0; i < name->len; i++) {
        char ch = name->data[i];
        if (ch >= 'A' && ch <= 'Z')
            name->data[i] = (char)(ch + 32);
    }
    if (buf_append(name, "", 1))
        return -1;
    name->len--;
    int is_te = strcmp(name->data, "transfer-encoding") == 0;
    c->te_count += is_te;
    int singleton = is_singleton(name->data);
    if (singleton && http_request_header(req, name->data))
        return reject_malformed(c, "malformed HTTP request: a header that may appear once "
                                   "appears twice");
    /* Past the limit only the headers that must be checked are kept (the
     * head limit bounds them all the same). */
    c->dropping_value = req->header_count >= SS_HTTP_HEADERS_MAX && !singleton && !is_te;
    if (c->dropping_value)
        return 0;
    if (buf_append(&req->headers, name->data, name->len + 1))
        return -1;
    req->header_count++;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    http_request *req = &c->req;
    if (c->headers_done)
        return 0;
    if (!http_field_value_valid(at, len))
        return reject_malformed(c, "malformed HTTP request: a control character in a header");
    if (!c->last_was_value) {
        c->last_was_value = 1;
        if (header_begin(c))
            return -1;
        if (c->dropping_value)
            return 0;
        return buf_append(&req->headers, at, len) || buf_append(&req->headers, "", 1) ? -1 : 0;
    }
    if (c->dropping_value || req->headers.len == 0)
        return 0;
    /* A value in pieces: drop the NUL, append, terminate again. */
    req->headers.len--;
    return buf_append(&req->headers, at, len) || buf_append(&req->headers, "", 1) ? -1 : 0;
}

/* Rewrites the target in place as path '\0' query '\0' and points the
 * request at them; an absolute-form target is served by its path (RFC 9112
 * §3.2.2). 0, or -1 when the target is refused. */
static int split_target(http_conn *c, int method)
{
    http_request *req = &c->req;
    http_target t;
    if (buf_append(&req->target, "", 1))
        return -1;
    size_t len = req->target.len - 1;
    if (http_target_parse(req->target.data, len, &t) || (t.asterisk && method != HTTP_OPTIONS))
        return reject_malformed(c, "malformed HTTP request: the request target is not a valid "
                                   "path (characters outside RFC 3986 must be %-encoded)");
    char *d = req->target.data;
    size_t pos = 0;
    if (t.asterisk) {
        pos = 1;
    } else if (t.path_len == 0) {
        d[pos++] = '/';
    } else {
        memmove(d, d + t.path_off, t.path_len);
        pos = t.path_len;
    }
    d[pos++] = '\0';
    /* Both moves go left: the query starts after the path in the source. */
    memmove(d + pos, d + t.query_off, t.query_len);
    d[pos + t.query_len] = '\0';
    req->path = d;
    req->query = d + pos;
    return 0;
}

/* RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host, and any Host
 * sent must be a valid host[:port] (duplicates are refused as they come). */
static int check_host(http_conn *c, const http_parser *p)
{
    const char *host = http_request_header(&c->req, "host");
    if (!host && p->http_minor >= 1)
        return reject_malformed(c, "malformed HTTP request: an HTTP/1.1 request needs a Host "
                                   "header");
    if (host && !http_host_valid(host, strlen(host)))
        return reject_malformed(c, "malformed HTTP request: the Host header is not a valid "
                                   "host[:port]");
    return 0;
}

/* RFC 9112 §6.1: the only transfer coding served is chunked. One that ends
 * in something else cannot be framed at all (§6.3: 400); any other list is
 * a coding we do not implement (501). */
static int check_transfer_encoding(http_conn *c)
{
    if (c->te_count == 0)
        return 0;
    const char *te = http_request_header(&c->req, "transfer-encoding");
    if (c->te_count == 1 && te && strcasecmp(te, "chunked") == 0)
        return 0;
    size_t n = te ? strlen(te) : 0;
    int ends_chunked = n >= 7 && strcasecmp(te + n - 7, "chunked") == 0;
    if (c->te_count == 1 && te && !ends_chunked && strcasestr(te, "chunked"))
        return reject_malformed(c, "malformed HTTP request: chunked is not the last "
                                   "transfer coding");
    return conn_reject(c, 501, "not_implemented",
                       "the only Transfer-Encoding served is chunked, alone");
}

/* Lets the handler refuse a request from its head, before the body is
 * read (a bad credential); the answer then closes the connection. */
static int conn_head_hook(http_conn *c)
{
    http_server *s = conn_server(c);
    if (!s->opt.on_head)
        return 0;
    c->in_flight = 1;
    int keep_alive = c->req.keep_alive;
    c->req.keep_alive = 0;
    c->in_head_hook = 1;
    int answered = s->opt.on_head(s->opt.ctx, &c->req);
    c->in_head_hook = 0;
    if (answered) {
        c->answered_early = 1;
        return -1;
    }
    /* A handler that takes the body in pieces holds the request from now
     * on; keep-alive is known once the body has ended. */
    if (c->body_streaming)
        return 0;
    c->in_flight = 0;
    c->req.keep_alive = keep_alive;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    http_conn *c = p->data;
    header_finish(c);
    c->last_was_value = 0;
    c->headers_done = 1;
    buf_reset(&c->header_field);
    c->req.method = p->method;
    if (p->http_major != 1)
        return conn_reject(c, 505, "version_not_supported", "only HTTP/1.x is served here");
    if (split_target(c, p->method) || check_host(c, p) || check_transfer_encoding(c))
        return -1;
    size_t max = conn_server(c)->opt.body_max;
    c->head_oversized = (p->flags & F_CONTENTLENGTH) && p->content_length > max;
    if (c->head_oversized && !conn_server(c)->opt.on_head)
        return conn_reject(c, 413, "too_large", "the request body is larger than the limit");
    if (conn_head_hook(c))
        return -1;
    if (c->head_oversized && !c->body_streaming)
        return conn_reject(c, 413, "too_large", "the request body is larger than the limit");
    const char *expect = http_request_header(&c->req, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0)
        net_stream_write(&c->base.stream, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    conn_set_phase(c, PHASE_BODY);
    return 0;
}

/* A piece of a body the handler takes as it comes. Nonzero from `piece`
 * means it has answered: the parser stops, the rest is discarded by the
 * lingering close its answer started. */
static int body_piece(http_conn *c, const char *at, size_t len)
{
    if (c->base.closing || c->base.ending || !c->in_flight) {
        c->answered_early = 1;
        return -1;
    }
    if (c->body_hooks.piece(&c->req, at, len)) {
        c->answered_early = 1;
        return -1;
    }
    /* The body timeout runs between pieces: a long body is fine, a
     * stalled one is not. */
    if (!c->body_paused && !c->base.closing && !c->base.ending)
        conn_set_phase(c, PHASE_BODY);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (c->body_streaming)
        return body_piece(c, at, len);
    if (c->req.body.len + len > conn_server(c)->opt.body_max)
        return conn_reject(c, 413, "too_large", "the request body is larger than the limit");
    return buf_append(&c->req.body, at, len) ? -1 : 0;
}

static int on_message_complete(http_parser *p)
{
    http_conn *c = p->data;
    c->req.method = p->method;
    c->req.keep_alive = http_should_keep_alive(p);
    c->message_done = 1;
    http_head_scan_reset(&c->scan);
    /* Stop after this message: later bytes wait until it is answered. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void conn_dispatch(http_conn *c)
{
    c->in_flight = 1;
    c->dispatching = 1;
    conn_set_phase(c, PHASE_WAITING);
    conn_server(c)->opt.on_request(conn_server(c)->opt.ctx, &c->req);
    c->dispatching = 0;
}

static void conn_parse_error(http_conn *c)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->answered_early)
        return;
    if (c->reject_status) {
        conn_refuse(c, c->reject_status, c->reject_code, c->reject_message);
        return;
    }
    if (e == HPE_HEADER_OVERFLOW) {
        conn_refuse(c, 431, "head_too_large", "the request head is larger than 64 KiB");
        return;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "malformed HTTP request: %s", http_errno_description(e));
    conn_refuse(c, 400, "bad_request", msg);
}

/* Runs the parser over bytes. 1: a message is complete (the parser paused
 * itself at its end); 2: a streamed body is paused (the rest of the bytes
 * wait); 0: more bytes are needed; -1: refused (answered).
 * OUT used: bytes consumed. */
static int conn_parse(http_conn *c, const char *data, size_t len, size_t *used)
{
    if (c->phase == PHASE_IDLE && len)
        conn_set_phase(c, PHASE_HEAD);
    /* The scanner looks ahead of the parser over the whole chunk; it stops
     * at the end of the head and starts again once the message is done. */
    if (http_head_scan_feed(&c->scan, data, len)) {
        *used = 0;
        conn_refuse(c, 400, "bad_request",
                    "malformed HTTP request: a folded header line, whitespace before the first "
                    "header, or a request line not of the form METHOD SP target SP version");
        return -1;
    }
    /* The head limit is http-parser's own (http_parser_set_max_header_size,
     * set once at start): it counts the request line and every header. */
    c->parsing = 1;
    *used = http_parser_execute(&c->parser, &parser_settings, data, len);
    c->parsing = 0;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED)
        return c->message_done ? 1 : 2;
    if (e != HPE_OK) {
        conn_parse_error(c);
        return -1;
    }
    return 0;
}

/* 1 when the connection should not take another request now. */
static int conn_busy(http_conn *c)
{
    /* A handler taking a body in pieces holds the request, yet its body
     * is parsed on, unless paused. */
    int held = c->in_flight && !body_incoming(c);
    return c->base.closing || c->base.ending || held || c->body_paused ||
           c->base.stream.write_pending > SS_HTTP_UNSENT_MAX;
}

static void conn_pending_compact(http_conn *c)
{
    if (c->pending_pos == c->pending.len) {
        buf_reset(&c->pending);
        c->pending_pos = 0;
    }
}

static void conn_update_backpressure(http_conn *c)
{
    size_t unparsed = c->pending.len - c->pending_pos;
    int want_pause = unparsed > HTTP_PENDING_MAX || c->body_paused ||
                     c->base.stream.write_pending > SS_HTTP_UNSENT_MAX;
    if (c->base.closing || c->base.ending || want_pause == (int)c->read_paused)
        return;
    c->read_paused = (unsigned)want_pause;
    if (want_pause)
        net_stream_pause(&c->base.stream);
    else
        net_stream_resume(&c->base.stream);
}

/* Parses and dispatches buffered requests one after the other, in a loop,
 * until one goes asynchronous or the bytes run out. */
static void conn_drain(http_conn *c)
{
    while (!conn_busy(c) && c->pending_pos < c->pending.len) {
        size_t used = 0;
        int rc = conn_parse(c, c->pending.data + c->pending_pos, c->pending.len - c->pending_pos,
                            &used);
        c->pending_pos += used;
        if (rc != 1)
            break;
        conn_dispatch(c);
    }
    conn_pending_compact(c);
    conn_update_backpressure(c);
}

/* ---- stream callbacks --------------------------------------------------- */

static void on_read(net_stream *st, const char *data, size_t len)
{
    http_conn *c = (http_conn *)st;
    if (c->base.closing || c->base.ending)
        return;
    if (conn_busy(c) || c->pending_pos < c->pending.len) {
        if (buf_append(&c->pending, data, len)) {
            conn_close(c);
            return;
        }
        conn_drain(c);
        return;
    }
    /* The common case: parse straight from the read buffer, copy nothing. */
    size_t used = 0;
    int rc = conn_parse(c, data, len, &used);
    if (rc == 2) {
        /* A streamed body paused: the rest waits, and reading stops. */
        if (used < len && buf_append(&c->pending, data + used, len - used)) {
            conn_close(c);
            return;
        }
        conn_update_backpressure(c);
        return;
    }
    if (rc != 1)
        return;
    if (used < len && buf_append(&c->pending, data + used, len - used)) {
        conn_close(c);
        return;
    }
    conn_dispatch(c);
    conn_drain(c);
}

static void on_drained(net_stream *st)
{
    http_conn *c = (http_conn *)st;
    /* All is sent: the keep-alive timer runs from now, not from the answer. */
    if (c->phase == PHASE_IDLE && !c->in_flight && !c->base.closing && !c->base.ending)
        conn_set_phase(c, PHASE_IDLE);
    conn_drain(c);
    /* Last: the producer may end the answer from its hook. */
    if (c->streaming && !c->stream_gone && !c->stream_broken && !c->base.ending &&
        c->stream_hooks.drained)
        c->stream_hooks.drained(&c->req);
}

static void on_stream_error(net_stream *st, int err)
{
    http_conn *c = (http_conn *)st;
    if (err != SS_CLOSED)
        log_debug(conn_server(c)->opt.name, "connection from %s: %s", c->req.peer,
                  ss_strerror(err));
    conn_close(c);
}

static void on_timeout(uv_timer_t *t)
{
    http_conn *c = t->data;
    if (body_incoming(c)) {
        conn_refuse(c, 408, "request_timeout", "the request body stopped coming");
        return;
    }
    /* Nothing of a request came: close without a word, as browsers expect
     * of an idle connection. */
    if (c->phase == PHASE_IDLE || c->in_flight || !c->request_started) {
        conn_close(c);
        return;
    }
    /* A client that started a request and stalled: tell it, then close. */
    conn_refuse(c, 408, "request_timeout", "the request was not received in time");
}

/* ---- listener --------------------------------------------------------- */

static void on_conn_open(net_conn *nc)
{
    http_conn *c = (http_conn *)nc;
    http_server *s = conn_server(c);
    c->req.conn = c;
    c->req.server = s;
    c->req.tls = s->opt.tls != NULL;
    c->req.path = "";
    c->req.query = "";
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    http_head_scan_reset(&c->scan);
    net_stream_peer(&c->base.stream, c->req.peer, sizeof c->req.peer);
    /* The first request's head must be in within the head timeout of the
     * accept, however slowly its bytes (or a TLS handshake) come. */
    conn_set_phase(c, PHASE_HEAD);
}

/* Stopping: idle connections go now; one with a request in flight closes
 * after its answer (keep-alive is off while stopping). */
static void on_conn_stop(net_conn *nc)
{
    http_conn *c = (http_conn *)nc;
    /* A streamed answer may never end: its producer is told to stop, and
     * its end closes the connection. */
    if (c->streaming) {
        stream_gone(c);
        return;
    }
    /* A streamed body may be long: it is not waited for. */
    if (body_incoming(c)) {
        conn_refuse(c, 503, "unavailable", "the server is stopping");
        return;
    }
    if (!c->in_flight)
        conn_close(c);
}

int http_server_start(uv_loop_t *loop, const char *addr, const http_server_options *opt,
                      http_server **out, char *bound, size_t cap)
{
    http_parser_set_max_header_size(SS_HTTP_HEAD_MAX);
    http_server *s = calloc(1, sizeof *s);
    if (!s)
        return SS_NOMEM;
    s->opt = *opt;
    if (s->opt.body_max == 0 || s->opt.body_max > SS_HTTP_BODY_MAX)
        s->opt.body_max = SS_HTTP_BODY_MAX;
    if (s->opt.head_timeout_ms == 0 || s->opt.head_timeout_ms > SS_FIRST_MESSAGE_TIMEOUT_MS)
        s->opt.head_timeout_ms = SS_FIRST_MESSAGE_TIMEOUT_MS;
    if (s->opt.body_timeout_ms == 0 || s->opt.body_timeout_ms > SS_HTTP_BODY_TIMEOUT_MS)
        s->opt.body_timeout_ms = SS_HTTP_BODY_TIMEOUT_MS;
    if (s->opt.send_stall_ms == 0 || s->opt.send_stall_ms > SS_HTTP_SEND_STALL_MS)
        s->opt.send_stall_ms = SS_HTTP_SEND_STALL_MS;
    net_conn_set_options so = {
        .name = s->opt.name, .tls = s->opt.tls, .bufs = s->opt.bufs,
        .metrics = s->opt.metrics, .listener = server_listener(s),
        .conn_size = sizeof(http_conn), .ctx = s,
        .on_read = on_read, .on_error = on_stream_error, .on_drained = on_drained,
        .on_open = on_conn_open, .on_closed = on_conn_closed, .held = conn_held,
        .on_free = on_conn_free, .on_stop = on_conn_stop,
    };
    int rc = net_conn_set_start(loop, addr, &so, &s->set, bound, cap);
    if (!s->set) {
        free(s);
        return rc;
    }
    /* On a bind failure the server is handed out all the same, to be freed
     * once the loop has let go of its listener. */
    *out = s;
    return rc;
}

void http_server_stop(http_server *s, void (*done)(void *arg), void *arg)
{
    net_conn_set_stop(s->set, done, arg);
}

void http_server_free(http_server *s)
{
    net_conn_set_free(s->set);
    free(s);
}

size_t http_server_connections(const http_server *s)
{
    return net_conn_set_count(s->set);
}
