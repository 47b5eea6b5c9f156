/* api_live.c — GET /api/v1/orgs/{org}/live: Server-Sent Events of every
 * stored batch of the org, or of one device (device=), or of some
 * channels (channel=a,b: each event carries only those; one left with
 * none is not sent).
 *
 * The worker checks access (viewer, or a data:read key; a dashboard user
 * names a device and channels a dashboard shows) and the query;
 * the loop then opens the stream, resumes it from Last-Event-ID within
 * the org's window (or says `event: reset`), and feeds it from the window
 * whenever a batch commits or the client has taken what it was sent. A
 * stream holds no events of its own, only the seq of the next one it
 * looks at: what it has not taken stays in the shared window, and once
 * the window has let such an event go the stream is told so
 * (`event: overflow`) and closed. Its unsent output stays under
 * SS_HTTP_STREAM_LOW_WATER plus one write.
 *
 * Each stream registers in the connection registry under its credential
 * (a person or an API key), its login session, its org, its person's
 * access key (aaa_access_key) and, when it follows one device, the org's
 * shown key (aaa_shown_key): the first three close it, the last two have
 * its access checked again on the worker pool and close it if it no longer
 * reads what it follows. */
#include "http/api_live.h"

#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "aaa/service.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "http/api_call.h"
#include "http/api_params.h"
#include "http/live_ring.h"
#include "ingest/batch_events.h"

/* What one write to a stream gathers of consecutive events: a write per
 * event would cost a system call each with a hundred streams. */
#define LIVE_WRITE_CHUNK (16u * 1024u)

/* The registry entries of a stream. */
enum {
    LIVE_REG_PRINCIPAL,
    LIVE_REG_SESSION,
    LIVE_REG_ORG,
    LIVE_REG_ACCESS,
    LIVE_REG_SHOWN,
    LIVE_REGS
};

struct api_live {
    uv_loop_t *loop;
    store *store;
    fanout *fanout;
    conn_registry *conns;
    uint64_t heartbeat_ms;
    fanout_sub sub;
    live_ring *ring;
    uv_timer_t tick;
    /* Streams whose access key is registered again on the next turn of
     * the loop, not from inside the registry's revocation walk (which
     * would find it again and again). */
    uv_timer_t rewatch;
    ss_list rewatch_list;
    int tick_open;
    int stopped;
    ss_list streams;          /* every live_client */
    size_t stream_count;
    ss_buf json;              /* scratch: one event's data */
    ss_buf out;               /* scratch: one write's frames */
    ss_buf event;             /* scratch: one event's frame, its channels filtered */
};

typedef struct live_client {
    ss_list link;             /* in its org's listeners */
    ss_list all;              /* in the live's streams */
    ss_list rewatch_link;     /* in the live's rewatch_list */
    api_live *live;
    live_org *org;
    http_request *req;        /* NULL once the answer has ended */
    char org_id[SS_ID_LEN + 1];
    char device_id[SS_ID_LEN + 1];  /* the filter; "" for every device */
    api_channels ch;                /* the filter; none named: every channel */
    uint64_t next;            /* seq of the next event to look at */
    int wrote;                /* wrote since the last heartbeat tick */
    int busy;                 /* inside a write: `gone` waits for it */
    int gone;                 /* the client is gone: end */
    int rechecking;           /* an access check is on the worker pool */
    int recheck_again;        /* memberships changed again meanwhile */
    int recheck_rc;
    int64_t expires_at;       /* a person's session's absolute end (ms), 0 none */
    aaa_principal who;
    conn_reg_entry reg[LIVE_REGS];
    uv_work_t work;
} live_client;

/* ---- the stream's end ------------------------------------------------------ */

static void client_free_if_done(live_client *c)
{
    if (!c->req && !c->rechecking)
        free(c);
}

/* Takes the client out of every list; returns its request (the caller
 * ends it) and lets the client go (now, or after its access check comes
 * back). */
static http_request *client_unlink(live_client *c)
{
    api_live *l = c->live;
    http_request *req = c->req;
    for (size_t i = 0; i < LIVE_REGS && l->conns; i++)
        conn_registry_remove(l->conns, &c->reg[i]);
    ss_list_remove(&c->link);
    ss_list_remove(&c->all);
    ss_list_remove(&c->rewatch_link);
    l->stream_count--;
    if (--c->org->listener_count == 0)
        c->org->idle_since = uv_now(l->loop);
    c->req = NULL;
    req->data = NULL;
    client_free_if_done(c);
    return req;
}

/* Ends the answer and lets the client go. */
static void client_finish(live_client *c)
{
    if (c->req)
        http_stream_end(client_unlink(c));
}

/* Ends the stream and its connection (a revocation, an overflow): the
 * last chunk goes, then the connection closes once its output is out (or
 * after the server's linger time if the client does not read). Not
 * http_request_close, which would drop what is unsent and leave the
 * answer out of the accounting. */
static void client_close(live_client *c)
{
    if (!c->req)
        return;
    c->req->keep_alive = 0;
    client_finish(c);
}

static void on_gone(http_request *req)
{
    live_client *c = req->data;
    if (!c)
        return;
    c->gone = 1;
    if (!c->busy)
        client_finish(c);
}

/* ---- writing ------------------------------------------------------------------ */

/* The names point into the text: a copy points into its own. */
static void channels_copy(api_channels *to, const api_channels *from)
{
    memcpy(to->text, from->text, sizeof to->text);
    to->n = from->n;
    for (size_t i = 0; i < from->n; i++)
        to->names[i] = to->text + (from->names[i] - from->text);
}

/* Appends the event to the write as the client follows it: its channels
 * only, when it names some. 0 or SS_NOMEM. */
static int append_for(live_client *c, const live_event *e)
{
    api_live *l = c->live;
    if (c->device_id[0] && strcmp(e->device_id, c->device_id) != 0)
        return 0;
    if (!c->ch.n)
        return buf_append(&l->out, e->frame, e->len);
    int rc = live_event_filter(e, c->ch.names, c->ch.n, &l->event);
    return rc ? rc : buf_append(&l->out, l->event.data, l->event.len);
}

/* 0, or nonzero when the client is gone (the caller stops; finish after). */
static int client_write(live_client *c, const char *data, size_t len)
{
    c->busy++;
    int rc = http_stream_write(c->req, data, len);
    c->busy--;
    c->wrote = 1;
    return rc || c->gone;
}

static const char overflow_frame[] =
    "event: overflow\ndata: {\"reason\":\"the client read too slowly: events it had not read "
    "left the server's window; reconnect with Last-Event-ID (or reload)\"}\n\n";

/* A client behind the window: told, then cut off. */
static void client_overflow(live_client *c)
{
    client_write(c, overflow_frame, sizeof overflow_frame - 1);
    client_close(c);
}

/* Writes what the client has not had of the window, while its unsent
 * output is under the low water; `drained` calls again. */
static void client_pump(live_client *c)
{
    api_live *l = c->live;
    live_org *o = c->org;
    if (!c->req)
        return;
    if (c->next < o->first_seq) {
        client_overflow(c);
        return;
    }
    while (c->next < o->next_seq && http_stream_unsent(c->req) < SS_HTTP_STREAM_LOW_WATER) {
        buf_reset(&l->out);
        while (c->next < o->next_seq && l->out.len < LIVE_WRITE_CHUNK) {
            if (append_for(c, live_org_event(o, c->next++))) {
                log_error("live", "out of memory: a stream is closed");
                client_close(c);
                return;
            }
        }
        if (l->out.len && client_write(c, l->out.data, l->out.len)) {
            client_finish(c);
            return;
        }
    }
}

static void on_drained(http_request *req)
{
    live_client *c = req->data;
    if (c && !c->busy)  /* inside a write, the writer goes on itself */
        client_pump(c);
}

/* ---- batches in ----------------------------------------------------------------- */

typedef struct live_append {
    api_live *l;
    live_org *o;
    const char *device_id;
} live_append;

static int append_event(void *ctx, int64_t ts, const char *json, size_t len)
{
    (void)ts;
    live_append *a = ctx;
    return live_ring_append(a->l->ring, a->o, a->device_id, json, len);
}

static int append_batch(api_live *l, live_org *o, const fanout_batch *b)
{
    live_append a = {.l = l, .o = o, .device_id = b->device_id};
    return batch_events(b, 1, &l->json, append_event, &a);
}

/* Each listener takes the new events before the window is trimmed, so
 * one that keeps up loses none to a large batch; one the trim passed is
 * told at once. */
static void feed_listeners(api_live *l, live_org *o)
{
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &o->listeners)
        client_pump(ss_list_entry(it, live_client, link));
    live_ring_trim(l->ring, o);
    ss_list_foreach_safe(it, tmp, &o->listeners) {
        live_client *c = ss_list_entry(it, live_client, link);
        if (c->next < o->first_seq)
            client_pump(c);
    }
}

static void on_batch(fanout_sub *sub, const fanout_batch *b)
{
    api_live *l = sub->data;
    live_org *o = live_ring_find(l->ring, b->org_id);
    if (!o)
        return;  /* nobody listens in this org, nor did lately */
    if (append_batch(l, o, b))
        log_error("live", "out of memory: events of a batch left out of the live stream");
    feed_listeners(l, o);
}

/* ---- access ---------------------------------------------------------------------- */

/* May the principal follow the org's data, or of device d (NULL: every
 * device) the channels named? The data routes' rule
 * (aaa_check_dashboard_data) when a device is named. */
static int live_access(store_conn *db, const aaa_principal *who, const char *org_id,
                       const store_device *d, const api_channels *ch)
{
    if (!d)
        return aaa_check_data(db, who, org_id, NULL, AAA_DATA_READ);
    return aaa_check_dashboard_data(db, who, d, ch->names, ch->n);
}

/* The same question again, the device as it is now. */
static int live_access_again(store_conn *db, const live_client *c)
{
    if (!c->device_id[0])
        return live_access(db, &c->who, c->org_id, NULL, &c->ch);
    store_device d;
    int rc = store_device_get(db, c->device_id, &d);
    if (rc == 0 && strcmp(d.org_id, c->org_id) != 0)
        rc = SS_NOT_FOUND;
    return rc ? rc : live_access(db, &c->who, c->org_id, &d, &c->ch);
}

static void on_recheck(uv_work_t *w)
{
    live_client *c = w->data;
    store_conn *db = NULL;
    c->recheck_rc = store_conn_acquire(c->live->store, &db);
    if (c->recheck_rc)
        return;
    c->recheck_rc = live_access_again(db, c);
    store_conn_release(c->live->store, db);
}

static void start_recheck(live_client *c);

static void on_recheck_done(uv_work_t *w, int status)
{
    live_client *c = w->data;
    c->rechecking = 0;
    if (!c->req) {
        client_free_if_done(c);
        return;
    }
    int rc = status ? SS_NOMEM : c->recheck_rc;
    if (rc) {
        /* Access lost, or it cannot be told (the store failed): the safe
         * side, as when the check cannot even be queued. The client
         * reconnects and is checked anew. */
        if (rc != SS_NOT_FOUND && rc != SS_FORBIDDEN && rc != SS_AUTH)
            log_warn("live", "a stream's access could not be checked again: %s; stream ended",
                     ss_strerror(rc));
        client_close(c);
        return;
    }
    if (c->recheck_again)
        start_recheck(c);
}

static void on_access_changed(conn_reg_entry *e);

static void watch_access(live_client *c)
{
    char key[CONN_REG_KEY_MAX + 1];
    aaa_access_key(c->who.user.id, key);
    c->reg[LIVE_REG_ACCESS].on_revoked = on_access_changed;
    c->reg[LIVE_REG_ACCESS].data = c;
    conn_registry_add(c->live->conns, &c->reg[LIVE_REG_ACCESS], key);
    /* A dashboard user's stream of one device lasts while a dashboard
     * shows what it follows; a viewer's passes the check at once. */
    if (!c->device_id[0])
        return;
    aaa_shown_key(c->org_id, key);
    c->reg[LIVE_REG_SHOWN].on_revoked = on_access_changed;
    c->reg[LIVE_REG_SHOWN].data = c;
    conn_registry_add(c->live->conns, &c->reg[LIVE_REG_SHOWN], key);
}

/* The revocations of one turn of the loop were all sent after their
 * changes were stored, and the check reads the store after them: one
 * check covers them all. One heard after the key is registered again
 * runs another once this one is back. */
static void on_rewatch(uv_timer_t *t)
{
    api_live *l = t->data;
    ss_list pending;
    ss_list_move_all(&l->rewatch_list, &pending);
    ss_list *first;
    while ((first = ss_list_first(&pending)) != NULL) {
        live_client *c = ss_list_entry(first, live_client, rewatch_link);
        ss_list_remove(first);
        watch_access(c);
    }
}

static void start_recheck(live_client *c)
{
    api_live *l = c->live;
    if (c->rechecking) {
        c->recheck_again = 1;
        return;
    }
    c->recheck_again = 0;
    c->work.data = c;
    if (uv_queue_work(l->loop, &c->work, on_recheck, on_recheck_done) == 0)
        c->rechecking = 1;
    else
        client_close(c);  /* cannot tell: the safe side */
}

static void on_access_changed(conn_reg_entry *e)
{
    live_client *c = e->data;
    api_live *l = c->live;
    if (!ss_list_linked(&c->rewatch_link)) {
        ss_list_insert_tail(&l->rewatch_list, &c->rewatch_link);
        uv_timer_start(&l->rewatch, on_rewatch, 0, 0);
    }
    start_recheck(c);  /* last: it may end the stream */
}

static void on_revoked(conn_reg_entry *e)
{
    client_close(e->data);
}

/* Registers the stream under its keys. Returns 1 when one of them was
 * revoked since its access was read (mark): the caller ends the stream (a
 * person's standing that changed in that moment ends it too, rather than
 * be checked again: the client reconnects and is checked anew). */
static int watch(live_client *c, uint64_t mark)
{
    conn_registry *r = c->live->conns;
    if (!r)
        return 0;
    for (size_t i = 0; i < LIVE_REGS; i++) {
        c->reg[i].on_revoked = on_revoked;
        c->reg[i].data = c;
    }
    conn_registry_add(r, &c->reg[LIVE_REG_PRINCIPAL], aaa_principal_id(&c->who));
    conn_registry_add(r, &c->reg[LIVE_REG_ORG], c->org_id);
    if (c->who.kind == AAA_PRINCIPAL_PERSON) {
        conn_registry_add(r, &c->reg[LIVE_REG_SESSION], c->who.session.id);
        watch_access(c);
    }
    for (size_t i = 0; i < LIVE_REGS; i++)
        if (c->reg[i].registered && conn_registry_revoked_since(r, c->reg[i].principal, mark))
            return 1;
    return 0;
}

/* ---- the request -------------------------------------------------------------------- */

/* What the worker found, for the loop side (api_hand_over). */
typedef struct live_open {
    aaa_principal who;
    uint64_t reg_mark;              /* api_call.reg_mark */
    char org_id[SS_ID_LEN + 1];
    char device_id[SS_ID_LEN + 1];  /* the filter; "" for every device */
    api_channels ch;                /* the filter; none named: every channel */
} live_open;

/* The device filter: a device of this org, else 404. 0 with *found (0
 * when none is named), or answered. */
static int check_device(api_call *call, const char *org_id, store_device *d, int *found)
{
    *found = 0;
    char dev[SS_ID_LEN + 2];
    int rc = http_query_get(call->req, "device", dev, sizeof dev);
    if (rc == 0)
        return 0;
    if (rc == SS_INVAL || (rc == 1 && !dev[0])) {
        api_reply_error(call, 400, "bad_parameter",
                        "device must be one device id, given once (?device=ID)");
        return 1;
    }
    rc = rc == 1 ? aaa_device_access(call->db, &call->who, dev, STORE_ROLE_DASHBOARD, d)
                 : SS_NOT_FOUND;
    if (rc == 0 && strcmp(d->org_id, org_id) != 0)
        rc = SS_NOT_FOUND;
    if (rc) {
        api_reply_err(call, rc, NULL);
        return 1;
    }
    *found = 1;
    return 0;
}

/* What the stream follows, checked: 0 or answered. */
static int check_access(api_call *call, const store_device *d, const api_channels *ch)
{
    int rc = live_access(call->db, &call->who, call->params[0], d, ch);
    if (rc == 0)
        return 0;
    /* Past the org's role check, a person refused here is a dashboard user. */
    api_reply_err(call, rc,
                  rc == SS_FORBIDDEN && call->who.kind == AAA_PRINCIPAL_PERSON
                      ? "a dashboard user follows one device (device=) and channels "
                        "(channel=) a dashboard of the organisation shows"
                      : NULL);
    return 1;
}

static void live_run(api_ctx *app, http_request *req, void *arg, const api_share *share);

static void live_drop(void *arg)
{
    free(arg);
}

static const api_handoff live_handoff = {.run = live_run, .drop = live_drop};

/* The router has refused any query parameter but `device` and `channel`
 * already. */
void api_live_get(api_call *call)
{
    store_device d;
    api_channels ch;
    int one = 0;
    if (api_require_org_role(call, STORE_ROLE_DASHBOARD, NULL) ||
        check_device(call, call->params[0], &d, &one) || api_param_channels(call, &ch) ||
        check_access(call, one ? &d : NULL, &ch))
        return;
    live_open *open = calloc(1, sizeof *open);
    if (!open) {
        api_reply_error(call, 503, "overloaded", "the server is out of memory");
        return;
    }
    open->who = call->who;
    open->reg_mark = call->reg_mark;
    snprintf(open->org_id, sizeof open->org_id, "%s", call->params[0]);
    snprintf(open->device_id, sizeof open->device_id, "%s", one ? d.id : "");
    channels_copy(&open->ch, &ch);
    api_hand_over(call, &live_handoff, open);
}

static void respond_limit(http_request *req, int status, const char *code, const char *message)
{
    char headers[64];
    snprintf(headers, sizeof headers, "Retry-After: %u\r\n", SS_LIVE_RETRY_MS / 1000u);
    ss_buf body = SS_BUF_INIT;
    if (buf_printf(&body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message))
        http_respond(req, status, NULL, NULL, 0, headers);
    else
        http_respond(req, status, "application/json", body.data, body.len, headers);
    buf_free(&body);
}

/* 0 with the stream's first seq, or answered (400, reset is said later). */
static int resume_from(http_request *req, live_org *o, uint64_t *next, int *reset)
{
    const char *id = http_request_header(req, "last-event-id");
    *reset = 0;
    *next = o->next_seq;
    if (!id || !id[0])
        return 0;
    uint64_t last = 0;
    int rc = strlen(id) < LIVE_ID_MAX ? live_org_parse_id(o, id, &last) : SS_INVAL;
    if (rc == SS_INVAL) {
        http_respond_error(req, 400, "bad_last_event_id",
                           "Last-Event-ID is not an event id of this stream; connect without "
                           "it to start from now", NULL);
        return 1;
    }
    if (rc == 0)
        *next = last + 1;
    else
        *reset = 1;
    return 0;
}

/* The org's window for a new stream, within the limits; NULL after
 * answering. */
static live_org *open_org(api_live *l, http_request *req, const char *org_id)
{
    if (!l || l->stopped) {
        respond_limit(req, 503, "unavailable", "the server is stopping; reconnect shortly");
        return NULL;
    }
    if (l->stream_count >= SS_LIVE_STREAMS_MAX) {
        respond_limit(req, 503, "too_many_streams",
                      "the server serves as many live streams as it may; retry later");
        return NULL;
    }
    live_org *o = NULL;
    if (live_ring_open(l->ring, org_id, &o)) {
        respond_limit(req, 503, "overloaded", "the server is out of memory");
        return NULL;
    }
    if (o->listener_count >= SS_LIVE_STREAMS_ORG_MAX) {
        respond_limit(req, 429, "too_many_streams",
                      "the organisation has as many live streams open as it may; close one "
                      "or retry later");
        return NULL;
    }
    return o;
}

/* The first frames: retry advice, and a reset when the id given is not
 * resumable (with the id of now, so the next reconnect resumes here). */
static int write_preamble(live_client *c, int reset)
{
    ss_buf *b = &c->live->out;
    buf_reset(b);
    int rc = buf_printf(b, "retry: %u\n\n", SS_LIVE_RETRY_MS);
    if (rc == 0 && reset) {
        char id[LIVE_ID_MAX];
        live_org_id(c->org, c->org->next_seq - 1, id);
        rc = buf_printf(b,
                        "event: reset\nid: %s\ndata: {\"reason\":\"the events after the id "
                        "given are no longer held (or it is of a stream before a restart): "
                        "reload, then follow from here\"}\n\n",
                        id);
    }
    return rc ? rc : client_write(c, b->data, b->len);
}

static live_client *client_new(api_live *l, http_request *req, const live_open *open,
                               live_org *o, uint64_t next)
{
    live_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->live = l;
    c->org = o;
    c->req = req;
    c->next = next;
    c->who = open->who;
    snprintf(c->org_id, sizeof c->org_id, "%s", open->org_id);
    snprintf(c->device_id, sizeof c->device_id, "%s", open->device_id);
    channels_copy(&c->ch, &open->ch);
    if (c->who.kind == AAA_PRINCIPAL_PERSON)
        c->expires_at = c->who.session.expires_at;
    ss_list_init(&c->rewatch_link);
    ss_list_insert_tail(&o->listeners, &c->link);
    o->listener_count++;
    ss_list_insert_tail(&l->streams, &c->all);
    l->stream_count++;
    req->data = c;
    return c;
}

static const http_stream_hooks live_hooks = {.drained = on_drained, .gone = on_gone};

/* The answer's head, the first frames, and what the window has for it. */
static void live_start(live_client *c, int reset, uint64_t mark)
{
    http_request *req = c->req;
    int rc = http_stream_begin(req, 200, "text/event-stream",
                               "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n", &live_hooks);
    if (rc == SS_NOMEM) {
        client_unlink(c);
        respond_limit(req, 503, "overloaded", "the server is out of memory");
        return;
    }
    if (rc || req->method == HTTP_HEAD) {
        client_finish(c);
        return;
    }
    if (watch(c, mark)) {
        client_close(c);
        return;
    }
    if (write_preamble(c, reset)) {
        client_finish(c);
        return;
    }
    client_pump(c);
}

/* The loop side: the stream opens, within the limits. A live stream is
 * not a heavy request: the credential's share (none for this light
 * route) goes back at once. */
static void live_run(api_ctx *app, http_request *req, void *arg, const api_share *share)
{
    live_open *open = arg;
    api_share_release(app, share);
    api_live *l = app->live;
    live_org *o = open_org(l, req, open->org_id);
    uint64_t next;
    int reset;
    live_client *c = NULL;
    uint64_t mark = open->reg_mark;
    if (o && resume_from(req, o, &next, &reset) == 0 && !(c = client_new(l, req, open, o, next)))
        respond_limit(req, 503, "overloaded", "the server is out of memory");
    free(open);
    if (c)
        live_start(c, reset, mark);
}

/* ---- the heartbeat ---------------------------------------------------------------------- */

static const char heartbeat_frame[] = ": heartbeat\n\n";

static void on_tick(uv_timer_t *t)
{
    api_live *l = t->data;
    int64_t now = clock_now_ms();
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &l->streams) {
        live_client *c = ss_list_entry(it, live_client, all);
        if (c->expires_at && now >= c->expires_at) {
            client_close(c);  /* the login session is over */
            continue;
        }
        if (!c->wrote && http_stream_unsent(c->req) == 0 &&
            client_write(c, heartbeat_frame, sizeof heartbeat_frame - 1)) {
            client_finish(c);
            continue;
        }
        c->wrote = 0;
    }
    uint64_t mono = uv_now(l->loop);
    if (mono > SS_LIVE_ORG_LINGER_MS)
        live_ring_drop_idle(l->ring, mono - SS_LIVE_ORG_LINGER_MS);
}

/* ---- the module ------------------------------------------------------------------------- */

int api_live_new(const api_live_options *opt, api_live **out)
{
    api_live *l = calloc(1, sizeof *l);
    if (!l)
        return SS_NOMEM;
    l->loop = opt->loop;
    l->store = opt->store;
    l->fanout = opt->fanout;
    l->conns = opt->conns;
    l->heartbeat_ms = opt->heartbeat_ms && opt->heartbeat_ms < SS_LIVE_HEARTBEAT_MS
                          ? opt->heartbeat_ms
                          : SS_LIVE_HEARTBEAT_MS;
    ss_list_init(&l->streams);
    if (live_ring_new(NULL, &l->ring)) {
        free(l);
        return SS_NOMEM;
    }
    ss_list_init(&l->rewatch_list);
    uv_timer_init(l->loop, &l->tick);
    l->tick.data = l;
    uv_timer_init(l->loop, &l->rewatch);
    l->rewatch.data = l;
    l->tick_open = 1;
    uv_timer_start(&l->tick, on_tick, l->heartbeat_ms, l->heartbeat_ms);
    l->sub.on_batch = on_batch;
    l->sub.data = l;
    if (l->fanout)
        fanout_subscribe(l->fanout, &l->sub);
    *out = l;
    return SS_OK;
}

static void on_tick_closed(uv_handle_t *h)
{
    (void)h;
}

void api_live_stop(api_live *l)
{
    if (!l || l->stopped)
        return;
    l->stopped = 1;
    if (l->fanout)
        fanout_unsubscribe(l->fanout, &l->sub);
    /* The listeners have stopped, so their streams are gone; any left
     * (a start cut short) end here. */
    ss_list *first;
    while ((first = ss_list_first(&l->streams)) != NULL)
        client_finish(ss_list_entry(first, live_client, all));
    if (l->tick_open) {
        uv_close((uv_handle_t *)&l->tick, on_tick_closed);
        uv_close((uv_handle_t *)&l->rewatch, on_tick_closed);
    }
    l->tick_open = 0;
}

void api_live_free(api_live *l)
{
    if (!l)
        return;
    live_ring_free(l->ring);
    buf_free(&l->json);
    buf_free(&l->out);
    buf_free(&l->event);
    free(l);
}

size_t api_live_streams(const api_live *l)
{
    return l ? l->stream_count : 0;
}
