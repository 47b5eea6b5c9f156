/* tcp_ingest.c — the TCP direct socket (SPEC §3.4).
 *
 * One connection moves through three phases: AUTH (the first line must be
 * "AUTH <token>"), DATA (line-format lines), FINISHING (no more reading:
 * what was read is committed and answered, then the socket closes after its
 * last write). Lines are cut out of each read as they come; a line begun in
 * one read is kept in `line` until its end arrives, so any split across TCP
 * segments reads the same.
 *
 * Batching: the lines of one read are parsed into the `filling` batch, which
 * goes to the ingest queue as one item unless an item is already in
 * flight; then it waits, and grows with later reads, until that commit
 * completes. An item carries at most TCP_SUBMIT_READINGS_MAX readings (whole
 * lines): a larger batch is cut, its first lines become the `ready` batch
 * and the rest goes on filling. At most one item in flight per connection
 * keeps the ACKs in order without a sequence table. Answers produced while
 * handling one event are gathered in `out` and written together: fewer
 * packets on a metered link.
 *
 * Lifetime: the connection set (net/conn_set.h) owns the connection and
 * frees it when both its handles are closed and no item is in flight (the
 * queue owns the item until `done`: conn_held), whichever happens last. */
#include "socket/tcp_ingest.h"

#include "aaa/secret.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"
#include "net/conn_set.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TCP_LOG "tcp"
#define TCP_AUTH_WORD "AUTH "
#define TCP_AUTH_WORD_LEN (sizeof TCP_AUTH_WORD - 1u)
/* The AUTH line: the word, the longest token we issue, and a '\r'. A longer
 * first line is not a token of ours; refusing it at this length keeps an
 * unauthenticated peer's buffer small (Redis's tighter limit before AUTH). */
#define TCP_AUTH_LINE_MAX (TCP_AUTH_WORD_LEN + SECRET_TEXT_MAX + 1u)
/* A data line may carry SS_LINE_MAX bytes plus the '\r' of a "\r\n". */
#define TCP_DATA_LINE_MAX (SS_LINE_MAX + 1u)
/* Readings parsed while a batch is in flight before the connection stops
 * being read: a device that outpaces the disk waits in the kernel's socket
 * buffer, not in our memory. One read can still add what 64 KiB of lines
 * carry (about 16 000 readings), so the bound per connection is this plus
 * one read's worth, and one item in flight. The same count as one HTTP
 * request. */
#define TCP_PENDING_READINGS_MAX SS_INGEST_READINGS_MAX
/* The most readings one item carries (a batch is cut at a line boundary
 * below it; a single line larger goes alone). Two connections of one device
 * each with an item queued fit the device's share together, so a device
 * streaming on several connections is never refused for good: a batch as
 * large as the whole share would be refused whenever the device has
 * anything else queued. */
#define TCP_SUBMIT_READINGS_MAX SS_INGEST_READINGS_MAX

_Static_assert(2u * TCP_SUBMIT_READINGS_MAX <= SS_INGEST_DEVICE_READINGS_MAX,
               "two connections' items fit one device's share");
/* Answers the peer has not read yet. A client that floods bad lines and
 * never reads its ERRs would grow our write queue without end; past this we
 * stop reading from it until the queue has drained. ACKs are coalesced, so
 * an honest device stays far below. */
#define TCP_UNREAD_ANSWERS_MAX (256u * 1024u)
/* A line buffer that grew past this (a long line) is freed once the line is
 * done instead of kept: an idle connection holds no large buffer. */
#define TCP_LINE_BUF_KEEP 1024u

typedef enum { TCP_AUTH, TCP_DATA, TCP_FINISHING } tcp_phase;

typedef struct tcp_batch {
    gateway_msg msg;       /* msg.item.readings: the batch's readings */
    uint64_t *lines;       /* the line number of each data line, in order */
    uint32_t *ends;        /* where each data line's readings end: the item's groups */
    uint8_t *refused;      /* per data line: refused for the channel limit */
    size_t n_lines;
    size_t cap_lines;
} tcp_batch;

typedef struct tcp_conn tcp_conn;

struct tcp_ingest {
    net_conn_set *set;      /* the listener and every open connection */
    tcp_ingest_options opt;
};

struct tcp_conn {
    net_conn base;          /* first: stream; timer: AUTH deadline, then idle */
    ingest_waiter wait;     /* waiting for room in the ingest queue */
    conn_reg_entry reg;
    gateway_sender from;    /* the device, from AUTH on */
    tcp_phase phase;
    ss_buf line;            /* the line begun in an earlier read */
    ss_buf out;             /* answers of the current event, sent together */
    uint64_t lines_done;    /* lines after AUTH ended so far */
    uint64_t stored;        /* data lines stored: the ACK count */
    tcp_batch batch[2];
    tcp_batch *filling;     /* parsed, not yet submitted */
    tcp_batch *ready;       /* cut from filling, refused for room; NULL when none */
    tcp_batch *flight;      /* submitted, not yet committed; NULL when none */
    char peer[46];
    metrics_bytes_mark bytes_reported;  /* the stream's counters already in metrics */
    meter_session acct;     /* the session record, from AUTH on */
    quota_ref quota;        /* the device's org in the quotas (from.quota) */
    uint64_t acct_in, acct_out;  /* the stream's counters already in the meter */
    const char *end_reason; /* why it ends: "closed" unless set */
    unsigned skipping : 1;  /* dropping the rest of an over-long line */
    unsigned read_paused : 1;
    unsigned out_failed : 1;
};

/* ---- lifetime ----------------------------------------------------------- */

static void batch_clear(tcp_batch *b)
{
    /* Freed, not reset: a batch is made per commit, and an idle connection
     * should hold no readings memory. */
    readings_free(&b->msg.item.readings);
    free(b->lines);
    free(b->ends);
    free(b->refused);
    b->lines = NULL;
    b->ends = NULL;
    b->refused = NULL;
    b->n_lines = b->cap_lines = 0;
}

static tcp_ingest *conn_owner(const tcp_conn *c)
{
    return net_conn_ctx(&c->base);
}

/* Closed now or closing after its last answers: nothing more is read,
 * submitted or answered. */
static int conn_ended(const tcp_conn *c)
{
    return c->base.closing || c->base.ending;
}

static void on_conn_free(net_conn *nc)
{
    tcp_conn *c = (tcp_conn *)nc;
    tcp_ingest *t = conn_owner(c);
    gateway_cancel_wait(t->opt.gateway, &c->wait);
    if (t->opt.meter)
        meter_session_end(t->opt.meter, &c->acct, c->end_reason ? c->end_reason : "closed");
    conn_registry_remove(t->opt.conns, &c->reg);
    buf_free(&c->line);
    buf_free(&c->out);
    batch_clear(&c->batch[0]);
    batch_clear(&c->batch[1]);
    log_debug(TCP_LOG, "connection from %s closed after %" PRIu64 " stored lines", c->peer,
              c->stored);
}

/* The queue holds the connection while a batch of it is in flight. */
static int conn_held(const net_conn *nc)
{
    return ((const tcp_conn *)nc)->flight != NULL;
}

/* Adds the bytes moved since the last report: after each write of answers
 * and at close, so a long-lived device connection shows up before it ends. */
static void conn_report_bytes(tcp_conn *c)
{
    metrics_stream_bytes(conn_owner(c)->opt.metrics, METRICS_TCP, &c->bytes_reported,
                         c->base.stream.bytes_in, c->base.stream.bytes_out);
    if (c->phase == TCP_AUTH || !conn_owner(c)->opt.meter)
        return;
    meter_bytes(conn_owner(c)->opt.meter, &c->acct, c->from.dev.org_id, "tcp",
                c->base.stream.bytes_in - c->acct_in, c->base.stream.bytes_out - c->acct_out);
    c->acct_in = c->base.stream.bytes_in;
    c->acct_out = c->base.stream.bytes_out;
}

static void on_conn_closed(net_conn *nc)
{
    conn_report_bytes((tcp_conn *)nc);
}

/* Closes now, dropping unsent answers. */
static void conn_close(tcp_conn *c)
{
    if (conn_ended(c))
        return;
    conn_registry_remove(conn_owner(c)->opt.conns, &c->reg);
    net_conn_close(&c->base);
}

/* Closes once the answers already written are out, or after
 * SS_CLOSE_LINGER_MS: a peer that stopped reading cannot hold it open. */
static void conn_close_after_write(tcp_conn *c)
{
    if (conn_ended(c))
        return;
    conn_registry_remove(conn_owner(c)->opt.conns, &c->reg);
    net_conn_close_after_write(&c->base, SS_CLOSE_LINGER_MS, 0);
}

/* ---- answers ------------------------------------------------------------ */

static void answer(tcp_conn *c, const char *text)
{
    if (buf_append_str(&c->out, text))
        c->out_failed = 1;
}

/* "ERR <line-no> <code> <name>[ <message>]\n". The message is the parser's,
 * which quotes at most a short printable excerpt of the input; anything
 * that could end the answer line early is replaced all the same. */
static void answer_line_error(tcp_conn *c, uint64_t line_no, int code, const char *name,
                              const char *message)
{
    size_t start = c->out.len;
    if (buf_printf(&c->out, "ERR %" PRIu64 " %d %s%s%s\n", line_no, code, name,
                   message ? " " : "", message ? message : "")) {
        c->out_failed = 1;
        return;
    }
    for (size_t i = start; i + 1 < c->out.len; i++) {
        unsigned char ch = (unsigned char)c->out.data[i];
        if (ch < 0x20 || ch == 0x7f)
            c->out.data[i] = '?';
    }
}

/* Sends the gathered answers. Returns nonzero when the connection was
 * closed (write failed, or the peer does not read its answers). */
static int conn_flush(tcp_conn *c)
{
    if (conn_ended(c))
        return 1;
    if (c->out_failed) {
        log_warn(TCP_LOG, "out of memory answering %s; closing", c->peer);
        conn_close(c);
        return 1;
    }
    if (c->out.len == 0)
        return 0;
    int rc = net_stream_write(&c->base.stream, c->out.data, c->out.len);
    buf_reset(&c->out);
    conn_report_bytes(c);
    if (rc) {
        log_debug(TCP_LOG, "writing to %s: %s", c->peer, ss_strerror(rc));
        conn_close(c);
        return 1;
    }
    return 0;
}

/* ---- batches and commits -------------------------------------------------- */

/* Grows the per-line arrays together; each keeps its own pointer, so a
 * failure leaves every array valid at the old capacity or more. */
static int batch_grow_lines(tcp_batch *b)
{
    size_t cap = b->cap_lines ? b->cap_lines * 2 : 16;
    uint64_t *lines = realloc(b->lines, cap * sizeof *lines);
    if (lines)
        b->lines = lines;
    uint32_t *ends = lines ? realloc(b->ends, cap * sizeof *ends) : NULL;
    if (ends)
        b->ends = ends;
    uint8_t *refused = ends ? realloc(b->refused, cap * sizeof *refused) : NULL;
    if (!refused)
        return SS_NOMEM;
    b->refused = refused;
    b->cap_lines = cap;
    return SS_OK;
}

/* Notes a data line whose readings end the batch so far: one group, stored
 * or refused whole. */
static int batch_add_line(tcp_batch *b, uint64_t line_no)
{
    if (b->n_lines == b->cap_lines && batch_grow_lines(b) != SS_OK)
        return SS_NOMEM;
    b->lines[b->n_lines] = line_no;
    b->ends[b->n_lines] = (uint32_t)b->msg.item.readings.len;
    b->refused[b->n_lines] = 0;
    b->n_lines++;
    return SS_OK;
}

/* Refuses every data line of a batch with the same answer: a failed commit
 * (503), and later a quota refusal (429). The gateway has counted it. */
static void batch_refuse(tcp_conn *c, const tcp_batch *b, int code, const char *name)
{
    for (size_t i = 0; i < b->n_lines; i++)
        answer_line_error(c, b->lines[i], code, name, NULL);
}

static void on_committed(gateway_msg *msg, const gateway_result *r);

/* The lines of `from` past the first `keep` move to `to`, an empty batch;
 * `from` gives back the memory of the readings it no longer holds (an
 * item's bytes count against the queue's shares). */
static int batch_move_tail(tcp_batch *from, tcp_batch *to, size_t keep)
{
    uint32_t base = from->ends[keep - 1];
    size_t n = from->msg.item.readings.len - base;
    size_t lines = from->n_lines - keep;
    ss_reading *rs = realloc(to->msg.item.readings.items, n * sizeof *rs);
    if (!rs)
        return SS_NOMEM;
    to->msg.item.readings.items = rs;
    to->msg.item.readings.cap = n;
    while (to->cap_lines < lines) {
        if (batch_grow_lines(to) != SS_OK)
            return SS_NOMEM;
    }
    memcpy(rs, from->msg.item.readings.items + base, n * sizeof *rs);
    to->msg.item.readings.len = n;
    for (size_t i = 0; i < lines; i++) {
        to->lines[i] = from->lines[keep + i];
        to->ends[i] = from->ends[keep + i] - base;
        to->refused[i] = 0;
    }
    to->n_lines = lines;
    from->n_lines = keep;
    from->msg.item.readings.len = base;
    rs = realloc(from->msg.item.readings.items, base * sizeof *rs);
    if (rs) {
        from->msg.item.readings.items = rs;
        from->msg.item.readings.cap = base;
    }
    return SS_OK;
}

/* Makes the filling batch the ready one, cut after its first lines that
 * hold at most TCP_SUBMIT_READINGS_MAX readings (at least one line); the
 * rest goes on filling in the other batch, free while nothing is in
 * flight. Nonzero when out of memory: the connection is closed. */
static int conn_cut(tcp_conn *c)
{
    tcp_batch *b = c->filling;
    tcp_batch *other = b == &c->batch[0] ? &c->batch[1] : &c->batch[0];
    size_t keep = 1;
    while (keep < b->n_lines && b->ends[keep] <= TCP_SUBMIT_READINGS_MAX)
        keep++;
    if (keep < b->n_lines && batch_move_tail(b, other, keep) != SS_OK) {
        batch_clear(other);
        log_warn(TCP_LOG, "out of memory reading from %s; closing", c->peer);
        conn_close(c);
        return 1;
    }
    c->ready = b;
    c->filling = other;
    return 0;
}

/* The one place a batch becomes an ingest item. When the queue has no
 * room for it (the device's or org's share is full), it stays the ready
 * batch, the connection stops reading (conn_backpressure) and waits for
 * room: TCP's own back-pressure holds the device, not our memory. */
static void conn_submit(tcp_conn *c)
{
    tcp_batch *b = c->ready;
    b->msg.ack = on_committed;
    b->msg.data = c;
    b->msg.item.group_ends = b->ends;
    b->msg.item.group_refused = b->refused;
    b->msg.item.n_groups = b->n_lines;
    b->msg.item.held_bytes =
        b->cap_lines * (sizeof *b->lines + sizeof *b->ends + sizeof *b->refused);
    int rc = gateway_submit(conn_owner(c)->opt.gateway, &c->from, &b->msg, clock_now_ms());
    if (rc == SS_QUOTA) {
        batch_refuse(c, b, 429, "quota_exceeded");
        batch_clear(b);
        c->ready = NULL;
        return;
    }
    if (rc != SS_OK) {
        gateway_wait(conn_owner(c)->opt.gateway, &c->wait, &c->from);
        return;
    }
    c->ready = NULL;
    c->flight = b;
}

/* Submits what waits when nothing is in flight: the ready batch, else the
 * filling one, cut. Stops once one is in flight or refused for room. */
static void conn_pump(tcp_conn *c)
{
    while (!conn_ended(c) && !c->flight && !c->wait.waiting &&
           (c->ready || c->filling->msg.item.readings.len > 0)) {
        if (!c->ready && conn_cut(c))
            return;
        conn_submit(c);
    }
}

/* Stops reading while too much waits behind the commit in flight or in the
 * write queue, and starts again once it has gone out. */
static void conn_backpressure(tcp_conn *c)
{
    if (conn_ended(c) || c->phase != TCP_DATA)
        return;
    int full = c->wait.waiting || c->ready ||
               (c->flight && c->filling->msg.item.readings.len >= TCP_PENDING_READINGS_MAX) ||
               c->base.stream.write_pending > TCP_UNREAD_ANSWERS_MAX;
    if (full && !c->read_paused) {
        c->read_paused = 1;
        net_stream_pause(&c->base.stream);
    } else if (!full && c->read_paused) {
        c->read_paused = 0;
        net_stream_resume(&c->base.stream);
    }
}

/* A finishing connection closes once its last batch is answered. */
static void conn_maybe_end(tcp_conn *c)
{
    if (c->phase == TCP_FINISHING && !conn_ended(c) && !c->flight && !c->ready &&
        c->filling->msg.item.readings.len == 0)
        conn_close_after_write(c);
}

/* The lines of a committed batch the store refused for the channel limit:
 * one ERR each, before the ACK that covers the lines after them. Returns
 * how many. */
static size_t batch_refuse_channels(tcp_conn *c, const tcp_batch *b)
{
    size_t n = 0;
    char msg[96];
    snprintf(msg, sizeof msg, "a reading would give the device more than %u channels",
             SS_DEVICE_CHANNELS_MAX);
    for (size_t i = 0; i < b->n_lines; i++) {
        if (!b->refused[i])
            continue;
        answer_line_error(c, b->lines[i], 400, "too_many_channels", msg);
        n++;
    }
    return n;
}

/* The gateway has settled the commit: ERR lines for what the store
 * refused, an ACK for the rest. */
static void on_committed(gateway_msg *msg, const gateway_result *r)
{
    tcp_conn *c = msg->data;
    tcp_batch *b = c->flight;
    c->flight = NULL;
    if (conn_ended(c)) {
        /* Revoked or failed meanwhile: nobody to tell. */
        batch_clear(b);
        net_conn_release(&c->base);
        return;
    }
    if (r->status == SS_OK) {
        size_t refused = r->refused ? batch_refuse_channels(c, b) : 0;
        c->stored += b->n_lines - refused;
        char ack[32];
        snprintf(ack, sizeof ack, "ACK %" PRIu64 "\n", c->stored);
        answer(c, ack);
    } else {
        log_warn(TCP_LOG, "commit for %s failed: %s", c->peer, ss_strerror(r->status));
        batch_refuse(c, b, 503, "store_unavailable");
    }
    batch_clear(b);
    conn_pump(c);
    if (conn_flush(c))
        return;
    conn_backpressure(c);
    conn_maybe_end(c);
}

/* ---- lines -------------------------------------------------------------- */

/* counted: the gateway has counted the refusal already. */
static void conn_refuse_auth(tcp_conn *c, const char *why, int counted)
{
    log_info(TCP_LOG, "refused connection from %s: %s", c->peer, why);
    if (!counted)
        gateway_refuse(conn_owner(c)->opt.gateway, NULL, METRICS_REFUSED_INVALID_TOKEN, 0);
    answer(c, "ERR 401 invalid_token\n");
    if (conn_flush(c) == 0)
        conn_close_after_write(c);
}

static void conn_auth(tcp_conn *c, const char *text, size_t len)
{
    if (len <= TCP_AUTH_WORD_LEN || memcmp(text, TCP_AUTH_WORD, TCP_AUTH_WORD_LEN) != 0) {
        conn_refuse_auth(c, "the first line is not AUTH <token>", 0);
        return;
    }
    if (gateway_auth_token(conn_owner(c)->opt.gateway, text + TCP_AUTH_WORD_LEN,
                           len - TCP_AUTH_WORD_LEN, &c->from)) {
        conn_refuse_auth(c, "unknown or disabled device token", 1);
        return;
    }
    c->from.protocol = "tcp";
    c->from.gone = METRICS_REFUSED_STORE_UNAVAILABLE;  /* ERR ... 503 store_unavailable */
    c->from.quota = &c->quota;
    c->from.session = conn_owner(c)->opt.meter ? &c->acct : NULL;
    c->phase = TCP_DATA;
    conn_registry_add(conn_owner(c)->opt.conns, &c->reg, c->from.dev.device_id);
    if (conn_owner(c)->opt.meter) {
        meter_session_open(conn_owner(c)->opt.meter, &c->acct, "device", c->from.dev.device_id,
                           c->from.dev.org_id, "tcp", c->peer);
        /* The session's bytes start with the AUTH line that opened it. */
        c->acct_in = 0;
        c->acct_out = c->base.stream.bytes_out;
    }
    answer(c, "OK\n");
    /* on_read arms the idle timeout once this read is handled. */
    log_debug(TCP_LOG, "device %s connected from %s", c->from.dev.device_id, c->peer);
}

/* One data line, its terminator removed: parsed into the filling batch or
 * answered with its error. */
static void conn_data_line(tcp_conn *c, const char *text, size_t len, int64_t now)
{
    uint64_t no = ++c->lines_done;
    if (len > SS_LINE_MAX) {
        gateway_refuse(conn_owner(c)->opt.gateway, &c->from, METRICS_REFUSED_TOO_LARGE, 0);
        answer_line_error(c, no, 413, "too_large", NULL);
        return;
    }
    tcp_batch *b = c->filling;
    size_t before = b->msg.item.readings.len;
    ss_parse_error err = {0};
    gateway_body body = {.format = GATEWAY_LINE, .data = text, .len = len};
    int rc = gateway_parse(conn_owner(c)->opt.gateway, &c->from, &body, now, &b->msg.item.readings,
                           &err);
    if (rc == SS_OK && b->msg.item.readings.len > before)
        rc = batch_add_line(b, no);
    if (rc == SS_NOMEM) {
        b->msg.item.readings.len = before;
        log_warn(TCP_LOG, "out of memory reading from %s; closing", c->peer);
        conn_close(c);
        return;
    }
    if (rc)
        answer_line_error(c, no, 400, "bad_reading", err.message);
}

static void conn_line(tcp_conn *c, const char *text, size_t len, int64_t now)
{
    if (len > 0 && text[len - 1] == '\r')
        len--;
    if (c->phase == TCP_AUTH)
        conn_auth(c, text, len);
    else
        conn_data_line(c, text, len, now);
}

/* The line being read outgrew its cap before its end arrived. */
static void conn_line_overflow(tcp_conn *c)
{
    buf_free(&c->line);
    if (c->phase == TCP_AUTH) {
        conn_refuse_auth(c, "the first line is too long for AUTH <token>", 0);
        return;
    }
    gateway_refuse(conn_owner(c)->opt.gateway, &c->from, METRICS_REFUSED_TOO_LARGE, 0);
    answer_line_error(c, c->lines_done + 1, 413, "too_large", NULL);
    c->skipping = 1;
}

static size_t conn_line_cap(const tcp_conn *c)
{
    return c->phase == TCP_AUTH ? TCP_AUTH_LINE_MAX : TCP_DATA_LINE_MAX;
}

/* An over-long line has ended: it was answered when it overflowed. */
static void conn_skip_done(tcp_conn *c)
{
    c->skipping = 0;
    c->lines_done++;
}

static void conn_line_reset(tcp_conn *c)
{
    if (c->line.cap > TCP_LINE_BUF_KEEP)
        buf_free(&c->line);
    else
        buf_reset(&c->line);
}

/* Cuts the bytes of one read into lines. Stops early when the connection
 * closes (refused AUTH, out of memory). */
static void conn_feed(tcp_conn *c, const char *data, size_t len)
{
    int64_t now = clock_now_ms();
    const char *p = data;
    const char *end = data + len;
    while (p < end && !conn_ended(c)) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        if (c->skipping) {
            if (nl)
                conn_skip_done(c);
        } else if (c->line.len + n > conn_line_cap(c)) {
            conn_line_overflow(c);
            if (nl && c->skipping)
                conn_skip_done(c);
        } else if (!nl || c->line.len > 0) {
            if (buf_append(&c->line, p, n)) {
                log_warn(TCP_LOG, "out of memory reading from %s; closing", c->peer);
                conn_close(c);
                return;
            }
            if (nl) {
                conn_line(c, c->line.data, c->line.len, now);
                conn_line_reset(c);
            }
        } else {
            /* A whole line inside this read: parsed in place, no copy. */
            conn_line(c, p, n, now);
        }
        p = nl ? nl + 1 : end;
    }
}

/* Stops reading and lets what was read finish: commit, answer, close. For
 * the peer's FIN, the idle timeout and server stop. */
static void conn_finish(tcp_conn *c)
{
    if (conn_ended(c) || c->phase == TCP_FINISHING)
        return;
    if (c->phase == TCP_AUTH) {
        conn_close(c);
        return;
    }
    c->phase = TCP_FINISHING;
    net_conn_timer_stop(&c->base);
    net_stream_pause(&c->base.stream);
    c->read_paused = 1;
    conn_pump(c);
    if (conn_flush(c))
        return;
    conn_maybe_end(c);
}

/* ---- stream and timer callbacks ------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    tcp_conn *c = t->data;
    if (c->phase == TCP_AUTH)
        log_info(TCP_LOG, "%s sent no AUTH line within %" PRIu64 " ms; closing", c->peer,
                 conn_owner(c)->opt.auth_timeout_ms);
    else
        log_debug(TCP_LOG, "%s idle; closing", c->peer);
    c->end_reason = "timeout";
    conn_finish(c);
}

static void conn_arm_idle(tcp_conn *c)
{
    net_conn_timer_start(&c->base, on_timer, conn_owner(c)->opt.idle_timeout_ms);
}

static void on_read(net_stream *st, const char *data, size_t len)
{
    tcp_conn *c = (tcp_conn *)st;
    if (conn_ended(c) || c->phase == TCP_FINISHING)
        return;
    conn_feed(c, data, len);
    if (conn_ended(c))
        return;
    if (c->phase == TCP_DATA)
        conn_arm_idle(c);
    conn_pump(c);
    if (conn_flush(c))
        return;
    conn_backpressure(c);
}

/* The peer shut its side (FIN): what it sent is committed and answered
 * before we close ours. A last line without its newline may be cut short
 * (a reset mid-line reads the same), so it is refused, never stored. */
static void conn_eof(tcp_conn *c)
{
    if (c->line.len > 0 && !c->skipping) {
        gateway_refuse(conn_owner(c)->opt.gateway, &c->from, METRICS_REFUSED_BAD_READING, 0);
        answer_line_error(c, ++c->lines_done, 400, "bad_reading",
                          "the stream ended inside this line (no newline)");
        buf_free(&c->line);
    } else if (c->skipping) {
        conn_skip_done(c);
    }
    conn_finish(c);
}

static void on_stream_error(net_stream *st, int err)
{
    tcp_conn *c = (tcp_conn *)st;
    if (err != SS_CLOSED || c->phase == TCP_AUTH) {
        if (err != SS_CLOSED) {
            log_debug(TCP_LOG, "connection from %s: %s", c->peer, ss_strerror(err));
            c->end_reason = "error";
        }
        conn_close(c);
        return;
    }
    conn_eof(c);
}

/* The ingest queue may have room again: submit the waiting batch, and read
 * again if it went. */
static void on_queue_room(ingest_waiter *w)
{
    tcp_conn *c = (tcp_conn *)((char *)w - offsetof(tcp_conn, wait));
    if (conn_ended(c))
        return;
    conn_pump(c);
    if (conn_flush(c))
        return;
    conn_backpressure(c);
    conn_maybe_end(c);
}

/* The peer has read every answer: reading may go on. */
static void on_drained(net_stream *st)
{
    conn_backpressure((tcp_conn *)st);
}

static void on_revoked(conn_reg_entry *e)
{
    tcp_conn *c = e->data;
    log_info(TCP_LOG, "device %s: token revoked; closing the connection from %s",
             c->from.dev.device_id, c->peer);
    c->end_reason = "revoked";
    conn_close(c);
}

/* ---- listener ----------------------------------------------------------- */

static void on_conn_open(net_conn *nc)
{
    tcp_conn *c = (tcp_conn *)nc;
    c->reg.on_revoked = on_revoked;
    c->reg.data = c;
    c->wait.ready = on_queue_room;
    c->filling = &c->batch[0];
    net_stream_peer(&c->base.stream, c->peer, sizeof c->peer);
    net_conn_timer_start(&c->base, on_timer, conn_owner(c)->opt.auth_timeout_ms);
}

/* Stopping: a connection still waiting for AUTH closes now; the others
 * commit what they read, answer, then close. */
static void on_conn_stop(net_conn *nc)
{
    tcp_conn *c = (tcp_conn *)nc;
    c->end_reason = "shutdown";
    conn_finish(c);
}

int tcp_ingest_start(uv_loop_t *loop, const char *addr, const tcp_ingest_options *opt,
                     tcp_ingest **out, char *bound, size_t cap)
{
    tcp_ingest *t = calloc(1, sizeof *t);
    if (!t)
        return SS_NOMEM;
    t->opt = *opt;
    if (t->opt.idle_timeout_ms == 0)
        t->opt.idle_timeout_ms = TCP_INGEST_IDLE_TIMEOUT_DEFAULT_MS;
    if (t->opt.auth_timeout_ms == 0 || t->opt.auth_timeout_ms > TCP_INGEST_AUTH_TIMEOUT_MS)
        t->opt.auth_timeout_ms = TCP_INGEST_AUTH_TIMEOUT_MS;
    net_conn_set_options so = {
        .name = TCP_LOG, .bufs = t->opt.bufs, .metrics = t->opt.metrics,
        .listener = METRICS_TCP, .conn_size = sizeof(tcp_conn), .ctx = t,
        .on_read = on_read, .on_error = on_stream_error, .on_drained = on_drained,
        .on_open = on_conn_open, .on_closed = on_conn_closed, .held = conn_held,
        .on_free = on_conn_free, .on_stop = on_conn_stop,
    };
    int rc = net_conn_set_start(loop, addr, &so, &t->set, bound, cap);
    if (!t->set) {
        free(t);
        return rc;
    }
    *out = t;
    return rc;
}

void tcp_ingest_stop(tcp_ingest *t, void (*done)(void *arg), void *arg)
{
    net_conn_set_stop(t->set, done, arg);
}

void tcp_ingest_free(tcp_ingest *t)
{
    net_conn_set_free(t->set);
    free(t);
}

size_t tcp_ingest_connections(const tcp_ingest *t)
{
    return net_conn_set_count(t->set);
}
