/* api_export.c — GET /api/v1/orgs/{org}/export: an org's readings as CSV
 * or NDJSON, streamed.
 *
 * The worker function checks the caller (viewer, or a data:read key), the
 * parameters and the devices, then hands the request over to the loop
 * (api_hand_over). From there the export is a chain of pages: a page is
 * read and written out as text (gzipped when the client takes it) on a
 * worker, taking the org's share of heavy requests for that read only;
 * the loop hands it to the connection and asks for the next page while
 * this one is sent, and waits for `drained` before handing more. So an
 * export holds one page besides what the connection has unsent, however
 * long it is, and holds no worker, store connection or statement while
 * the client reads. A client that goes away (or a store error) stops it
 * and frees what it held. The head goes out with the first page, so an
 * error found before any reading is read is an ordinary error answer.
 *
 * While it runs, an export registers in the connection registry as a live
 * stream does: under its credential, its login session and its org, each
 * of which cuts it when revoked; and under its person's access key, which
 * has the next page check the person's access again first. */
#include "core/clock.h"
#include "core/err.h"
#include "core/json_out.h"
#include "core/log.h"
#include "core/reading.h"
#include "http/api_call.h"
#include "http/api_params.h"
#include "http/export_text.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for device=a,b,…: SS_EXPORT_DEVICES_MAX ids and commas. */
#define EXPORT_DEVICE_LIST_MAX (SS_EXPORT_DEVICES_MAX * (SS_ID_LEN + 1))
/* How long a page waits before asking again for its org's share of
 * heavy requests, when the org runs as many as it may: a few pages'
 * time, so a waiting export costs the loop next to nothing. */
#define EXPORT_BUSY_RETRY_MS 20

static const char *const export_formats[] = {[EXPORT_CSV] = "csv", [EXPORT_NDJSON] = "ndjson"};
static const char device_list_message[] =
    "device is a comma-separated list of up to 256 device ids";

/* The registry entries of an export. */
enum { EXPORT_REG_PRINCIPAL, EXPORT_REG_SESSION, EXPORT_REG_ORG, EXPORT_REG_ACCESS, EXPORT_REGS };

typedef struct export_job {
    uv_work_t work;
    uv_timer_t retry;  /* a page that found no share free asks again */
    api_ctx *app;
    http_request *req;
    api_share share;
    char org_id[SS_ID_LEN + 1];
    export_text text;  /* the devices, the format, the gzip state */
    store_export_scan scan;
    store_export_cursor cursor;
    api_channels channels;  /* the names the scan's channels point into */
    /* A page's text: the worker's while in_work, then the loop's until
     * handed to the connection. */
    ss_buf page;
    int err;           /* the last page's store error (worker to loop) */
    int busy;          /* the last page found no share free (worker to loop) */
    uint64_t busy_since;  /* loop time the first page began to wait; 0: not waiting */
    int freed_share;   /* the last page gave its org's share back */
    int in_work;       /* a page is on a worker */
    int began;         /* the head is sent */
    int gone;          /* the client is gone: stop */
    int ended;         /* the request is let go */
    aaa_principal who;
    conn_reg_entry reg[EXPORT_REGS];
    int access_watched;  /* reg[EXPORT_REG_ACCESS] is registered */
    int access_changed;  /* the person's standing changed: check before a page (loop) */
    uint64_t reg_mark;   /* api_call.reg_mark: revocations before `who` was read */
    int check_access;    /* this page checks it (loop to worker) */
} export_job;

/* ---- parameters (worker) -------------------------------------------------- */

static int param_format(api_call *call, export_format *out)
{
    int format = EXPORT_CSV;
    if (api_param_choice(call, "format", export_formats, 2, &format, "format is csv or ndjson"))
        return 1;
    *out = (export_format)format;
    return 0;
}

static int param_range(api_call *call, store_export_scan *s)
{
    s->from = 0;
    s->to = call->now_ms + SS_TS_FUTURE_MAX_MS + 1;
    if (api_param_time(call, "from", &s->from, NULL) || api_param_time(call, "to", &s->to, NULL))
        return 1;
    if (s->to < s->from) {
        api_reply_error(call, 400, "bad_parameter", "to must not be before from");
        return 1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts names and drops repeats: the store's scan takes them so. Returns
 * how many are kept. */
static size_t sort_names(const char **names, size_t n)
{
    qsort(names, n, sizeof *names, cmp_str);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (kept == 0 || strcmp(names[kept - 1], names[i]) != 0)
            names[kept++] = names[i];
    return kept;
}

/* Splits a comma-separated list in place into names, sorted, repeats
 * dropped. Returns the count, or -1 when there are more than max. */
static int split_list(char *list, const char **names, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (n == max)
            return -1;
        names[n++] = name;
    }
    return (int)sort_names(names, n);
}

/* channel=a,b as a data query takes it; none named: every channel. */
static int param_channels(api_call *call, export_job *ex)
{
    if (api_param_channels(call, &ex->channels))
        return 1;
    ex->channels.n = sort_names(ex->channels.names, ex->channels.n);
    ex->scan.channels = ex->channels.names;
    ex->scan.n_channels = ex->channels.n;
    return 0;
}

/* ---- devices (worker) ------------------------------------------------------ */

static int add_device(void *ctx, const store_device *d)
{
    return export_text_add_device(ctx, d->id, d->name);
}

/* The devices named by device=…, each of the org or a 404 that names none
 * (another org's device is not revealed to exist). */
static int named_devices(api_call *call, export_job *ex, char *list)
{
    const char **ids = malloc(SS_EXPORT_DEVICES_MAX * sizeof *ids);
    int n = ids ? split_list(list, ids, SS_EXPORT_DEVICES_MAX) : 0;
    int rc = ids ? SS_OK : SS_NOMEM;
    if (n <= 0 && rc == SS_OK) {
        free(ids);
        api_reply_error(call, 400, "bad_parameter", device_list_message);
        return 1;
    }
    for (int i = 0; i < n && rc == SS_OK; i++) {
        store_device d;
        rc = store_device_get(call->db, ids[i], &d);
        if (rc == SS_OK && strcmp(d.org_id, ex->org_id) != 0)
            rc = SS_NOT_FOUND;
        if (rc == SS_OK)
            rc = export_text_add_device(&ex->text, d.id, d.name);
    }
    free(ids);
    if (rc == SS_NOT_FOUND)
        api_reply_error(call, 404, "not_found", "no such device");
    else if (rc)
        api_reply_store_error(call, rc);
    return rc != SS_OK;
}

static int load_devices(api_call *call, export_job *ex)
{
    char *list = malloc(EXPORT_DEVICE_LIST_MAX);
    if (!list) {
        api_reply_error(call, 503, "overloaded", "the server is out of memory");
        return 1;
    }
    int present = api_param_text(call, "device", list, EXPORT_DEVICE_LIST_MAX, device_list_message);
    int failed = present < 0;
    if (present > 0) {
        failed = named_devices(call, ex, list);
    } else if (present == 0) {
        int rc = store_device_list(call->db, ex->org_id, add_device, &ex->text);
        if (rc)
            api_reply_store_error(call, rc);
        failed = rc != SS_OK;
    }
    free(list);
    if (!failed && export_text_sort_devices(&ex->text)) {
        api_reply_error(call, 503, "overloaded", "the server is out of memory");
        failed = 1;
    }
    return failed;
}

/* ---- the job ------------------------------------------------------------------ */

static void job_free(export_job *ex)
{
    export_text_free(&ex->text);
    buf_free(&ex->page);
    free(ex);
}

static void drop_job(void *arg)
{
    job_free(arg);
}

static void on_retry_closed(uv_handle_t *h)
{
    job_free(h->data);
}

/* The end of an export, whatever ended it: the share back, the request
 * let go (its last chunk when the body is whole), the job freed once its
 * timer is closed. Never while a page is on a worker. */
static void unwatch(export_job *ex)
{
    for (size_t i = 0; i < EXPORT_REGS && ex->app->conns; i++)
        conn_registry_remove(ex->app->conns, &ex->reg[i]);
}

static void job_end(export_job *ex)
{
    unwatch(ex);
    api_share_release(ex->app, &ex->share);
    ex->share.held = 0;
    /* Gone at a stop, an export is cut (no last chunk, nothing unsent
     * lingered over): it is not whole, and a client that does not read
     * must not hold the stop. Gone with its client, this does nothing. */
    if (!ex->ended && ex->gone)
        http_request_close(ex->req);
    if (!ex->ended)
        http_stream_end(ex->req);
    ex->ended = 1;
    uv_close((uv_handle_t *)&ex->retry, on_retry_closed);
}

/* ---- a page (worker) -------------------------------------------------------- */

static int page_row(void *ctx, const store_export_row *row)
{
    export_job *ex = ctx;
    return export_text_row(&ex->text, &ex->page, row);
}

static int page_read(export_job *ex)
{
    store_conn *db = NULL;
    int err = store_conn_acquire(ex->app->store, &db);
    if (err)
        return err;
    if (ex->check_access)
        err = aaa_check_data(db, &ex->who, ex->org_id, NULL, AAA_DATA_READ);
    if (!err)
        err = export_text_header(&ex->text, &ex->page);
    if (!err && !ex->cursor.done)
        err = store_export_page(db, &ex->scan, &ex->cursor, page_row, ex);
    store_conn_release(ex->app->store, db);
    return err;
}

static void on_page_work(uv_work_t *w)
{
    export_job *ex = w->data;
    api_gate *gate = ex->app->gate;
    buf_reset(&ex->page);
    if (gate && api_gate_enter_org(gate, ex->org_id)) {
        ex->busy = 1;
        return;
    }
    ex->err = page_read(ex);
    if (gate) {
        api_gate_leave_org(gate, ex->org_id);
        ex->freed_share = 1;
    }
    if (!ex->err)
        ex->err = export_text_finish_page(&ex->text, &ex->page, ex->cursor.done);
}

static void on_page_done(uv_work_t *w, int status);

static void watch_access(export_job *ex);

static void fetch_page(export_job *ex)
{
    watch_access(ex);
    if (ex->access_changed)  /* kept until a page is read past it */
        ex->check_access = 1;
    ex->access_changed = 0;
    ex->busy = 0;
    ex->err = 0;
    ex->in_work = 1;
    if (uv_queue_work(ex->app->loop, &ex->work, on_page_work, on_page_done)) {
        ex->in_work = 0;
        ex->err = SS_NOMEM;
        on_page_done(&ex->work, 0);
    }
}

static void on_retry(uv_timer_t *t)
{
    fetch_page(t->data);
}

/* ---- the answer (loop) -------------------------------------------------------- */

static void on_drained(http_request *req);
static void on_gone(http_request *req);

static const http_stream_hooks export_hooks = {.drained = on_drained, .gone = on_gone};

/* The head, with the first page. */
static int begin(export_job *ex)
{
    char headers[API_EXTRA_HEADERS_MAX];
    export_text_headers(&ex->text, ex->org_id, headers, sizeof headers);
    int rc = http_stream_begin(ex->req, 200, export_text_content_type(&ex->text), headers,
                               &export_hooks);
    ex->began = rc == 0;
    return rc;
}

/* Hands the page to the connection when it has room, then asks for the
 * next one while this one is sent; the last page ends the answer. */
static void write_page(export_job *ex)
{
    if (ex->in_work || ex->gone || ex->ended ||
        http_stream_unsent(ex->req) >= SS_HTTP_STREAM_LOW_WATER)
        return;
    if (http_stream_write(ex->req, ex->page.data, ex->page.len))
        return;  /* gone: on_gone ends it */
    buf_reset(&ex->page);
    if (ex->cursor.done)
        job_end(ex);
    else
        fetch_page(ex);
}

/* A store error after the head is sent cannot change the status: the
 * connection is closed without the last chunk, so the client sees a cut
 * answer, never a whole-looking one. Before the head, it is an error
 * answer. */
static void page_failed(export_job *ex)
{
    int lost = ex->err == SS_NOT_FOUND || ex->err == SS_FORBIDDEN || ex->err == SS_AUTH;
    if (ex->began && lost) {
        http_request_close(ex->req);  /* its access is gone: cut, as a revocation is */
        return;
    }
    if (lost) {
        http_respond_error(ex->req, 404, "not_found", "no such resource", NULL);
        ex->ended = 1;
        job_end(ex);
        return;
    }
    if (ex->began) {
        log_warn("export", "org %s: export cut by a store error: %s", ex->org_id,
                 ss_strerror(ex->err));
        http_request_close(ex->req);
        return;
    }
    if (ex->err == SS_BUSY || ex->err == SS_NOMEM)
        http_respond_error(ex->req, 503, "overloaded", "the server cannot take the request now",
                           NULL);
    else
        http_respond_error(ex->req, 503, "store_unavailable", "the store cannot be reached", NULL);
    ex->ended = 1;
    job_end(ex);
}

/* The org runs as many heavy requests as it may: the page asks again
 * shortly. Before its head is sent, an export waits no longer than any
 * heavy request does (--heavy-wait), then answers 429 as one would; once
 * streaming, it can only pause. */
static void wait_for_share(export_job *ex)
{
    uint64_t now = uv_now(ex->app->loop);
    uint64_t most = ex->app->heavy_wait_ms ? ex->app->heavy_wait_ms : SS_API_HEAVY_WAIT_MS;
    if (!ex->began && !ex->busy_since)
        ex->busy_since = now;
    if (!ex->began && now - ex->busy_since >= most) {
        api_respond_busy(ex->req, "the organisation runs as many heavy requests as it may, and "
                                  "this export waited too long; retry shortly");
        ex->ended = 1;
        job_end(ex);
        return;
    }
    uv_timer_start(&ex->retry, on_retry, EXPORT_BUSY_RETRY_MS, 0);
}

static void on_page_done(uv_work_t *w, int status)
{
    export_job *ex = w->data;
    ex->in_work = 0;
    if (!ex->busy)
        ex->check_access = 0;
    if (ex->freed_share)
        api_org_share_freed(ex->app);
    ex->freed_share = 0;
    if (ex->gone) {
        job_end(ex);
        return;
    }
    if (status != 0 && !ex->err)
        ex->err = SS_NOMEM;
    if (ex->err) {
        page_failed(ex);
        return;
    }
    if (ex->busy) {
        wait_for_share(ex);
        return;
    }
    if (!ex->began && begin(ex)) {
        job_end(ex);  /* the client left before the head: nothing is sent */
        return;
    }
    write_page(ex);
}

static void on_drained(http_request *req)
{
    write_page(req->data);
}

static void on_gone(http_request *req)
{
    export_job *ex = req->data;
    ex->gone = 1;
    uv_timer_stop(&ex->retry);
    if (!ex->in_work)
        job_end(ex);
}

/* ---- revocation (loop) -------------------------------------------------------- */

/* The credential, its login session or the org is revoked: cut. */
static void on_revoked(conn_reg_entry *e)
{
    export_job *ex = e->data;
    if (!ex->ended)
        http_request_close(ex->req);
}

/* The person's standing in orgs changed: the next page checks it first.
 * The entry is registered again when that page is asked for, not from
 * inside the registry's walk (which would find it again and again). */
static void on_access_changed(conn_reg_entry *e)
{
    export_job *ex = e->data;
    ex->access_changed = 1;
    ex->access_watched = 0;
}

static void watch_access(export_job *ex)
{
    conn_registry *r = ex->app->conns;
    if (!r || ex->who.kind != AAA_PRINCIPAL_PERSON || ex->access_watched)
        return;
    char key[CONN_REG_KEY_MAX + 1];
    aaa_access_key(ex->who.user.id, key);
    ex->reg[EXPORT_REG_ACCESS].on_revoked = on_access_changed;
    ex->reg[EXPORT_REG_ACCESS].data = ex;
    conn_registry_add(r, &ex->reg[EXPORT_REG_ACCESS], key);
    ex->access_watched = 1;
}

/* Registers the export under its keys. Returns 1 when one of them was
 * revoked since its access was read on the worker (ex->reg_mark): the
 * revocation may have reached the loop before the entry did. */
static int watch(export_job *ex)
{
    conn_registry *r = ex->app->conns;
    if (!r)
        return 0;
    for (size_t i = 0; i < EXPORT_REGS; i++) {
        ex->reg[i].on_revoked = on_revoked;
        ex->reg[i].data = ex;
    }
    conn_registry_add(r, &ex->reg[EXPORT_REG_PRINCIPAL], aaa_principal_id(&ex->who));
    conn_registry_add(r, &ex->reg[EXPORT_REG_ORG], ex->org_id);
    if (ex->who.kind == AAA_PRINCIPAL_PERSON)
        conn_registry_add(r, &ex->reg[EXPORT_REG_SESSION], ex->who.session.id);
    for (size_t i = 0; i < EXPORT_REGS; i++)
        if (ex->reg[i].registered &&
            conn_registry_revoked_since(r, ex->reg[i].principal, ex->reg_mark))
            return 1;
    if (ex->who.kind == AAA_PRINCIPAL_PERSON) {
        char key[CONN_REG_KEY_MAX + 1];
        aaa_access_key(ex->who.user.id, key);
        ex->access_changed |= conn_registry_revoked_since(r, key, ex->reg_mark);
    }
    return 0;
}

/* A HEAD request: the head an export would have, no body, nothing read. */
static void head_only(export_job *ex)
{
    begin(ex);
    job_end(ex);
}

static void run_export(api_ctx *app, http_request *req, void *arg, const api_share *share)
{
    export_job *ex = arg;
    ex->app = app;
    ex->req = req;
    ex->share = *share;
    ex->work.data = ex;
    ex->retry.data = ex;
    req->data = ex;
    int revoked = watch(ex);
    if (revoked || uv_timer_init(app->loop, &ex->retry)) {
        unwatch(ex);
        api_share_release(app, share);
        if (revoked)  /* as the store now answers for it: gone */
            http_respond_error(req, 404, "not_found", "no such resource", NULL);
        else
            http_respond_error(req, 503, "overloaded", "the server cannot take the request now",
                               NULL);
        job_free(ex);
        return;
    }
    if (req->method == HTTP_HEAD)
        head_only(ex);
    else
        fetch_page(ex);
}

static const api_handoff export_handoff = {.run = run_export, .drop = drop_job};

/* ---- the route (worker) ---------------------------------------------------- */

static export_job *job_new(api_call *call)
{
    export_job *ex = calloc(1, sizeof *ex);
    if (!ex) {
        api_reply_error(call, 503, "overloaded", "the server is out of memory");
        return NULL;
    }
    snprintf(ex->org_id, sizeof ex->org_id, "%s", call->params[0]);
    ex->who = call->who;
    ex->reg_mark = call->reg_mark;
    ex->scan.max_rows = SS_EXPORT_PAGE_ROWS;
    ex->scan.max_series = SS_EXPORT_PAGE_SERIES;
    return ex;
}

static int job_prepare(api_call *call, export_job *ex)
{
    export_format format;
    /* Unknown parameter names were refused by the router (the route's
     * list). */
    if (param_format(call, &format) || param_range(call, &ex->scan) || param_channels(call, ex))
        return 1;
    int gzip = export_text_accepts_gzip(http_request_header(call->req, "accept-encoding"));
    if (export_text_init(&ex->text, format, gzip)) {
        api_reply_error(call, 503, "overloaded", "the server is out of memory");
        return 1;
    }
    if (load_devices(call, ex))
        return 1;
    ex->scan.device_ids = export_text_device_ids(&ex->text, &ex->scan.n_devices);
    if (ex->scan.n_devices == 0)  /* an org without devices: the header alone */
        ex->cursor.done = 1;
    return 0;
}

void api_export(api_call *call)
{
    if (api_require_org_role(call, STORE_ROLE_VIEWER, NULL))
        return;
    export_job *ex = job_new(call);
    if (!ex)
        return;
    if (job_prepare(call, ex)) {
        job_free(ex);
        return;
    }
    api_hand_over(call, &export_handoff, ex);
}
