/* api_import.c — bulk import of history: POST /api/v1/orgs/{org}/import.
 *
 * One streamed request, all or nothing. Three phases:
 *   auth    from the head, on the worker pool (the body waits, paused): an
 *           editor of the org, or an API key with data:write over it;
 *   body    each piece is parsed on the loop as it arrives
 *           (import_parse.h); every reading is validated, its device found
 *           in the org (the token cache knows every device), and written
 *           as a fixed-size record to a spool file in the data dir. A bad
 *           line is answered at once (its number and why) and nothing is
 *           stored; so is a device of another org (404), and a body past
 *           the import's limit (413);
 *   commit  once the whole body is valid, no device would pass its channel
 *           limit with those it has (or 400 and nothing stored), and the
 *           org's quota holds all of it (reserved at once, or 429 and
 *           nothing stored), the spool is
 *           read back on the worker pool in steps and handed to the ingest
 *           queue as items of one device each, a few at a time: they take
 *           their turn in the group commits with everyone's ingest (per
 *           organisation, deficit round robin), so an import never starves
 *           another org's devices. Then 200 with a summary.
 * The commit phase is api_import_commit.c's. The spool is a file with no
 * name (O_TMPFILE, or unlinked at once): it goes when its descriptor
 * closes, whatever the path out — success, error, client gone, server
 * stop, or a crash.
 *
 * A store failure in the commit phase (disk full) answers 503 after what
 * was committed before it: writes are idempotent (a reading with the same
 * device, channel and ts replaces), so the client sends the same file
 * again. A server stop during the commit phase finishes it first (the
 * request is in flight). */
#include "aaa/access.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"
#include "http/api_call.h"
#include "ingest/gateway.h"
#include "ingest/import_parse.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define IMPORT_PATH_PREFIX "/api/v1/orgs/"
#define IMPORT_PATH_SUFFIX "/import"

#include "http/api_import_int.h"


/* ---- the running imports ---------------------------------------------------- */

static size_t imports_running(const api_ctx *app)
{
    size_t n = 0;
    for (const api_import *i = app->imports; i; i = i->next)
        n++;
    return n;
}

/* Another import into imp's org has passed its check. Asked only once
 * imp's own check passed: to anyone outside the org, an import into it
 * is a 404 whether one runs there or not. */
static int import_org_busy(const api_import *imp)
{
    for (const api_import *i = imp->app->imports; i; i = i->next)
        if (i != imp && i->phase != IMPORT_AUTH && strcmp(i->org_id, imp->org_id) == 0)
            return 1;
    return 0;
}

static void imports_unlink(api_import *imp)
{
    for (api_import **p = &imp->app->imports; *p; p = &(*p)->next) {
        if (*p == imp) {
            *p = imp->next;
            return;
        }
    }
}

/* ---- tables ----------------------------------------------------------------- */

static int table_init(import_table *t, size_t max)
{
    size_t n = 1;
    while (n < 2 * max)
        n <<= 1;
    t->slots = calloc(n, sizeof *t->slots);
    t->mask = (uint32_t)(n - 1);
    return t->slots ? SS_OK : SS_NOMEM;
}

uint32_t import_name_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* ---- answers ---------------------------------------------------------------- */

/* What only the body and commit phases use: a refused request keeps none
 * of it while it waits for a piece of its body to answer from, outside
 * the count of running imports. Loop thread, before any body is read. */
static void import_drop_body_state(api_import *imp)
{
    free(imp->devices);
    free(imp->channels);
    free(imp->series);
    free(imp->device_table.slots);
    free(imp->channel_table.slots);
    imp->devices = NULL;
    imp->channels = NULL;
    imp->series = NULL;
    imp->device_table.slots = imp->channel_table.slots = NULL;
    if (imp->spool_fd >= 0)
        close(imp->spool_fd);  /* empty: nothing to free off the loop */
    imp->spool_fd = -1;
}

static void import_free(api_import *imp);

/* Frees the import once nothing of it runs any more: answered, and no
 * write, step or item in flight. */
void import_maybe_free(api_import *imp)
{
    if (imp->phase != IMPORT_ANSWERED || imp->authing || imp->writing || imp->checking ||
        imp->stepping || imp->in_flight || imp->closing)
        return;
    import_free(imp);
}

/* The request, to answer now (NULL: answered already, or gone and
 * answered): the import lets go of it, and it of the import, since the
 * server may not call back after the answer. */
static http_request *take_req(api_import *imp)
{
    http_request *req = imp->req;
    if (req)
        req->data = NULL;
    imp->req = NULL;
    return req;
}

void import_answer_error(api_import *imp, int status, const char *code, const char *message,
                         size_t line)
{
    char extra[48];
    if (line)
        snprintf(extra, sizeof extra, "\"line\":%zu", line);
    http_request *req = take_req(imp);
    if (req)
        http_respond_error(req, status, code, message, line ? extra : NULL);
    imp->phase = IMPORT_ANSWERED;
    imports_unlink(imp);  /* the org may send its next import */
}

/* The answer an api_call helper made (auth), as it would have gone. */
static void answer_call(api_import *imp)
{
    api_call *c = imp->call;
    http_request *req = take_req(imp);
    if (req)
        http_respond(req, c->status, c->content_type, c->body.data, c->body.len,
                     c->extra_headers[0] ? c->extra_headers : NULL);
    imp->phase = IMPORT_ANSWERED;
    imports_unlink(imp);  /* the org may send its next import */
}

void import_answer_done(api_import *imp)
{
    char body[160];
    int n = snprintf(body, sizeof body,
                     "{\"readings\":%llu,\"devices\":%zu,\"from\":%lld,\"to\":%lld}",
                     (unsigned long long)imp->submitted, imp->n_devices, (long long)imp->min_ts,
                     (long long)imp->max_ts + 1);
    http_request *req = take_req(imp);
    if (req)
        http_respond(req, 200, "application/json", body, (size_t)n, NULL);
    imp->phase = IMPORT_ANSWERED;
    imports_unlink(imp);  /* the org may send its next import */
}

/* ---- auth (worker pool) ----------------------------------------------------- */

/* An editor of the org (a person), or a key with data:write over it
 * (aaa_key_may_write: its org or one above). */
static void auth_check(api_import *imp, api_call *call)
{
    if (api_authenticate(call))
        return;
    if (call->who.kind == AAA_PRINCIPAL_KEY) {
        int rc = aaa_key_may_write(call->app->quotas, call->who.key.org_id, call->who.key.scopes,
                                   imp->org_id);
        if (rc)
            api_reply_err(call, rc,
                          rc == SS_FORBIDDEN ? "an import needs an API key with data:write" : NULL);
        return;
    }
    store_role role;
    api_require_role(call, imp->org_id, STORE_ROLE_EDITOR, &role);
}

/* A file with no name in the data dir: it goes with its descriptor. */
static int spool_open(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != ENOENT))
        return fd;
    char path[4096];
    snprintf(path, sizeof path, "%s/import-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static void on_auth_work(uv_work_t *w)
{
    api_import *imp = w->data;
    api_call *call = imp->call;
    call->now_ms = clock_now_ms();
    if (store_conn_acquire(call->app->store, &call->db)) {
        api_reply_error(call, 503, "store_unavailable", "the store cannot be reached");
        return;
    }
    auth_check(imp, call);
    store_conn_release(call->app->store, call->db);
    call->db = NULL;
    if (call->status == 0) {
        imp->spool_fd = spool_open(imp->app->data_dir ? imp->app->data_dir : ".");
        imp->spool_err = imp->spool_fd < 0 ? errno : 0;
    }
}

/* Who the request is from, for its accounting (as the router notes it). */
static void note_who(api_import *imp)
{
    const aaa_principal *who = &imp->call->who;
    if (who->kind == AAA_PRINCIPAL_KEY) {
        api_note_who(imp->req, API_WHO_APIKEY, aaa_principal_id(who), imp->org_id);
    } else if (who->kind == AAA_PRINCIPAL_PERSON) {
        api_req_acct *p = api_note_who(imp->req, API_WHO_PERSON, who->user.id, imp->org_id);
        if (p)
            snprintf(p->login_id, sizeof p->login_id, "%s", who->session.id);
    }
}

static int feed(api_import *imp, const char *data, size_t len);
static void body_end(api_import *imp);
static int fill_full(const api_import *imp);

/* The check is back: a refusal is answered now when the body is all here,
 * else with its next piece (the streamed body's contract: an early answer
 * goes from `piece`); a pass feeds what came meanwhile and reads on. */
static void on_auth_done(uv_work_t *w, int status)
{
    api_import *imp = w->data;
    imp->authing = 0;
    if (status != 0 && imp->call->status == 0)
        api_reply_error(imp->call, 500, "internal", "the request could not be served");
    if (imp->call->status == 0 && imp->early_failed)
        api_reply_error(imp->call, 503, "overloaded", "the server cannot take the request now");
    if (imp->call->status == 0 && import_org_busy(imp))
        api_reply_busy(imp->call, "an import into this organisation is running; send the next "
                                  "one when it has answered");
    if (imp->call->status == 0 && imp->spool_fd < 0) {
        log_warn("import", "cannot make a spool file in the data dir: %s",
                 strerror(imp->spool_err));
        api_reply_error(imp->call, 503, "store_unavailable",
                        "the server cannot spool the import now");
    }
    if (imp->req)
        note_who(imp);
    if (imp->gone) {
        import_answer_error(imp, 400, "gone", "the client went away", 0);  /* dropped */
        import_maybe_free(imp);
        return;
    }
    if (imp->call->status != 0) {
        /* Refused: it only waits to answer, and takes no import's slot. */
        imports_unlink(imp);
        import_drop_body_state(imp);
        if (imp->body_done) {
            answer_call(imp);
            import_maybe_free(imp);
        } else {
            imp->paused = 0;
            http_body_resume(imp->req);
        }
        return;
    }
    imp->phase = IMPORT_BODY;
    if (imp->early.len) {
        int stop = feed(imp, imp->early.data, imp->early.len);
        buf_free(&imp->early);
        if (stop)
            return;
    }
    if (imp->body_done) {
        body_end(imp);
        return;
    }
    if (imp->paused && !(fill_full(imp) && imp->writing)) {
        imp->paused = 0;
        http_body_resume(imp->req);
    }
}

/* ---- body: devices and channels --------------------------------------------- */

/* The device's index; a device not in the org (or not at all) stops the
 * parse with 404 naming the line. */
static int device_index(api_import *imp, const char *id, size_t len, size_t lineno,
                        uint32_t *out, ss_parse_error *err)
{
    if (imp->last_device) {
        const import_device *d = &imp->devices[imp->last_device - 1];
        if (strncmp(d->id, id, len) == 0 && d->id[len] == '\0') {
            *out = imp->last_device - 1;
            return SS_OK;
        }
    }
    char key[SS_ID_LEN + 1];
    memcpy(key, id, len);
    key[len] = '\0';
    import_table *t = &imp->device_table;
    uint32_t i = (uint32_t)hash_id(key) & t->mask;
    for (; t->slots[i]; i = (i + 1) & t->mask) {
        if (strcmp(imp->devices[t->slots[i] - 1].id, key) == 0) {
            *out = t->slots[i] - 1;
            imp->last_device = t->slots[i];
            return SS_OK;
        }
    }
    device_cache_entry e;
    if (device_cache_find(imp->app->devices, key, &e) != SS_OK ||
        strcmp(e.org_id, imp->org_id) != 0) {
        char ex[READING_EXCERPT_SIZE];
        reading_excerpt(ex, id, len);
        err->position = lineno;
        snprintf(err->message, sizeof err->message,
                 "line %zu: no device \"%.40s\" in this organisation", lineno, ex);
        return SS_NOT_FOUND;
    }
    if (imp->n_devices == SS_IMPORT_DEVICES_MAX) {
        err->position = lineno;
        snprintf(err->message, sizeof err->message,
                 "line %zu: more than %u devices in one import", lineno, SS_IMPORT_DEVICES_MAX);
        return SS_TOO_LARGE;
    }
    memcpy(imp->devices[imp->n_devices].id, key, len + 1);
    t->slots[i] = (uint32_t)++imp->n_devices;
    imp->last_device = t->slots[i];
    *out = t->slots[i] - 1;
    return SS_OK;
}

static int channel_index(api_import *imp, const char *name, size_t lineno, uint32_t *out,
                         ss_parse_error *err)
{
    if (imp->last_channel && strcmp(imp->channels[imp->last_channel - 1].name, name) == 0) {
        *out = imp->last_channel - 1;  /* the common case: the reading before's channel */
        return SS_OK;
    }
    size_t len = strlen(name);
    import_table *t = &imp->channel_table;
    uint32_t i = import_name_hash(name, len) & t->mask;
    for (; t->slots[i]; i = (i + 1) & t->mask) {
        if (strcmp(imp->channels[t->slots[i] - 1].name, name) == 0) {
            *out = t->slots[i] - 1;
            imp->last_channel = t->slots[i];
            return SS_OK;
        }
    }
    if (imp->n_channels == SS_IMPORT_CHANNELS_MAX) {
        err->position = lineno;
        snprintf(err->message, sizeof err->message,
                 "line %zu: more than %u channel names in one import", lineno,
                 SS_IMPORT_CHANNELS_MAX);
        return SS_TOO_LARGE;
    }
    import_channel *c = &imp->channels[imp->n_channels];
    memcpy(c->name, name, len + 1);
    c->len = (uint8_t)len;
    t->slots[i] = (uint32_t)++imp->n_channels;
    imp->last_channel = t->slots[i];
    *out = t->slots[i] - 1;
    return SS_OK;
}

uint64_t import_series_key(uint32_t dev, uint32_t ch)
{
    return ((uint64_t)dev + 1) << 32 | ch;
}

size_t import_series_slot(const api_import *imp, uint64_t key)
{
    size_t mask = 2 * SS_IMPORT_SERIES_MAX - 1;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & mask;
    while (imp->series[i] && imp->series[i] != key)
        i = (i + 1) & mask;
    return i;
}

/* Counts the device's channels as the import names them: one past the
 * device's limit is refused at its line, before anything is stored. */
static int series_note(api_import *imp, uint32_t dev, uint32_t ch, size_t lineno,
                       ss_parse_error *err)
{
    uint64_t key = import_series_key(dev, ch);
    if (key == imp->last_series)
        return SS_OK;
    size_t i = import_series_slot(imp, key);
    imp->last_series = key;
    if (imp->series[i])
        return SS_OK;
    err->position = lineno;
    if (imp->n_series == SS_IMPORT_SERIES_MAX) {
        snprintf(err->message, sizeof err->message,
                 "line %zu: more than %u series (device and channel) in one import", lineno,
                 SS_IMPORT_SERIES_MAX);
        return SS_TOO_LARGE;
    }
    if (imp->devices[dev].channels == SS_DEVICE_CHANNELS_MAX) {
        snprintf(err->message, sizeof err->message,
                 "line %zu: device \"%s\" would have more than %u channels", lineno,
                 imp->devices[dev].id, SS_DEVICE_CHANNELS_MAX);
        return SS_CONFLICT;
    }
    imp->series[i] = key;
    imp->n_series++;
    imp->devices[dev].channels++;
    return SS_OK;
}

/* ---- body: the spool -------------------------------------------------------- */

static int buf_room(import_buf *b, size_t n)
{
    if (b->len + n <= b->cap)
        return SS_OK;
    size_t cap = b->cap ? b->cap * 2 : SS_IMPORT_BUFFER_BYTES / sizeof(import_rec);
    while (cap < b->len + n)
        cap *= 2;
    import_rec *r = realloc(b->recs, cap * sizeof *r);
    if (!r)
        return SS_NOMEM;
    b->recs = r;
    b->cap = cap;
    return SS_OK;
}

static void start_write(api_import *imp);

static void after_write(api_import *imp);

static void on_write(uv_fs_t *fs)
{
    api_import *imp = fs->data;
    ssize_t want = (ssize_t)(imp->spare.len * sizeof(import_rec));
    if (fs->result != want) {
        imp->write_err = fs->result < 0 ? (int)fs->result : UV_EIO;
    } else {
        imp->written += imp->spare.len;
    }
    uv_fs_req_cleanup(fs);
    imp->spare.len = 0;
    imp->writing = 0;
    after_write(imp);
}

/* Writes the filled buffer (swapped to spare) at the spool's end. */
static void start_write(api_import *imp)
{
    import_buf t = imp->spare;
    imp->spare = imp->fill;
    imp->fill = t;
    imp->fill.len = 0;
    uv_buf_t b = uv_buf_init((char *)imp->spare.recs,
                             (unsigned)(imp->spare.len * sizeof(import_rec)));
    imp->write_req.data = imp;
    imp->writing = 1;
    int rc = uv_fs_write(imp->app->loop, &imp->write_req, imp->spool_fd, &b, 1,
                         (int64_t)(imp->written * sizeof(import_rec)), on_write);
    if (rc) {
        imp->writing = 0;
        imp->write_err = rc;
    }
}

static int fill_full(const api_import *imp)
{
    return imp->fill.len * sizeof(import_rec) >= SS_IMPORT_BUFFER_BYTES;
}

/* One data line: its readings go to the fill buffer. */
static int on_line_rc(api_import *imp, size_t lineno, const char *device, size_t device_len,
                      const ss_readings *rs, ss_parse_error *err)
{
    uint32_t dev;
    int rc = device_index(imp, device, device_len, lineno, &dev, err);
    if (rc)
        return rc;
    if (imp->spooled + rs->len > imp->max_readings) {
        err->position = lineno;
        snprintf(err->message, sizeof err->message,
                 "line %zu: more than %zu readings in one import; split the file", lineno,
                 imp->max_readings);
        return SS_TOO_LARGE;
    }
    if (buf_room(&imp->fill, rs->len)) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return SS_NOMEM;
    }
    for (size_t i = 0; i < rs->len; i++) {
        const ss_reading *r = &rs->items[i];
        uint32_t ch;
        if ((rc = channel_index(imp, r->channel, lineno, &ch, err)) != SS_OK ||
            (rc = series_note(imp, dev, ch, lineno, err)) != SS_OK)
            return rc;
        imp->fill.recs[imp->fill.len++] = (import_rec){r->ts, r->value, dev, ch};
        if (r->ts < imp->min_ts)
            imp->min_ts = r->ts;
        if (r->ts > imp->max_ts)
            imp->max_ts = r->ts;
    }
    imp->spooled += rs->len;
    return SS_OK;
}

/* Why the parse stopped, in HTTP's terms. cb_rc: what on_line returned
 * (SS_CONFLICT from the parser means the callback stopped it). */
static void answer_parse(api_import *imp, int rc, int cb_rc, const ss_parse_error *err)
{
    if (rc == SS_CONFLICT)
        rc = cb_rc;
    switch (rc) {
    case SS_NOT_FOUND:
        import_answer_error(imp, 404, "not_found", err->message, err->position);
        break;
    case SS_TOO_LARGE:
        import_answer_error(imp, 413, "too_large", err->message, err->position);
        break;
    case SS_CONFLICT:
        import_answer_error(imp, 400, "too_many_channels", err->message, err->position);
        break;
    case SS_NOMEM:
        import_answer_error(imp, 503, "overloaded", "the server is out of memory", 0);
        break;
    default:
        import_answer_error(imp, 400, "bad_reading", err->message, err->position);
        break;
    }
}


/* Parses a piece; answers and returns 1 when the import stops there. */
static int feed(api_import *imp, const char *data, size_t len)
{
    ss_parse_error err = {0};
    int rc = import_parser_feed(&imp->parser, data, len, &err);
    if (rc == SS_OK && imp->write_err)
        rc = SS_IO;
    if (rc == SS_IO) {
        import_answer_error(imp, 503, "store_unavailable", "the import could not be spooled", 0);
    } else if (rc) {
        answer_parse(imp, rc, imp->line_rc, &err);
    }
    if (rc) {
        import_maybe_free(imp);
        return 1;
    }
    if (fill_full(imp) && !imp->writing)
        start_write(imp);
    if (fill_full(imp) && imp->writing && !imp->paused) {
        imp->paused = 1;
        http_body_pause(imp->req);
    }
    return 0;
}

/* The parser's callback: keeps what on_line_rc said, for answer_parse. */
static int on_line(void *ctx, size_t lineno, const char *device, size_t device_len,
                   const ss_readings *rs, ss_parse_error *err)
{
    api_import *imp = ctx;
    imp->line_rc = on_line_rc(imp, lineno, device, device_len, rs, err);
    return imp->line_rc;
}

static int on_piece(http_request *req, const char *data, size_t len)
{
    api_import *imp = req->data;
    if (!imp)
        return 1;
    if (imp->authing) {
        /* Came with the head, before the pause took: kept for the check
         * (a read's worth at most). */
        if (imp->early.len + len > SS_LINE_MAX || buf_append(&imp->early, data, len))
            imp->early_failed = 1;
        return 0;
    }
    if (imp->phase == IMPORT_AUTH) {
        answer_call(imp);
        import_maybe_free(imp);
        return 1;
    }
    return feed(imp, data, len);
}

static void after_write(api_import *imp)
{
    if (imp->phase == IMPORT_ANSWERED) {
        import_maybe_free(imp);
        return;
    }
    if (!imp->write_err && (fill_full(imp) || (imp->body_done && imp->fill.len)))
        start_write(imp);
    if (imp->write_err && imp->body_done) {
        import_answer_error(imp, 503, "store_unavailable", "the import could not be spooled", 0);
        import_maybe_free(imp);
        return;
    }
    if (imp->body_done && !imp->writing) {
        import_commit_begin(imp);
        return;
    }
    /* A failed write mid-body is answered with the next piece (an early
     * answer goes from `piece`): reading resumes for it. */
    if (imp->paused && (imp->write_err || !fill_full(imp))) {
        imp->paused = 0;
        http_body_resume(imp->req);
    }
}

static void on_gone(http_request *req)
{
    api_import *imp = req->data;
    if (!imp)
        return;
    imp->gone = 1;
    if (imp->authing)
        return;  /* answered when the check is back */
    if (imp->phase == IMPORT_AUTH)
        answer_call(imp);  /* refused, waiting for a piece to answer from: dropped */
    else if (imp->phase == IMPORT_BODY)
        import_answer_error(imp, 400, "gone", "the client went away", 0);  /* dropped */
    import_maybe_free(imp);
}

/* ---- the request ------------------------------------------------------------ */

static void on_closed_spool(uv_fs_t *fs)
{
    api_import *imp = fs->data;
    uv_fs_req_cleanup(fs);
    free(fs);
    imp->closing = 0;
    imp->spool_fd = -1;
    import_maybe_free(imp);
}

static void import_free(api_import *imp)
{
    if (imp->spool_fd >= 0) {
        /* Closing the nameless spool deletes it; off the loop, since that
         * frees its blocks. */
        uv_fs_t *fs = malloc(sizeof *fs);
        if (fs) {
            fs->data = imp;
            imp->closing = 1;
            if (uv_fs_close(imp->app->loop, fs, imp->spool_fd, on_closed_spool) == 0)
                return;
            imp->closing = 0;
            free(fs);
        }
        close(imp->spool_fd);
        imp->spool_fd = -1;
    }
    gateway_cancel_wait(imp->app->gateway, &imp->waiter);
    imports_unlink(imp);
    import_parser_free(&imp->parser);
    buf_free(&imp->early);
    import_items_free(imp->pending);
    free(imp->fill.recs);
    free(imp->spare.recs);
    free(imp->devices);
    free(imp->channels);
    free(imp->series);
    free(imp->device_table.slots);
    free(imp->channel_table.slots);
    if (imp->call)
        buf_free(&imp->call->body);
    free(imp->call);
    free(imp);
}

/* The org of an import path, or 0 when the path is not one. */
static int import_path_org(const char *path, char org[SS_ID_LEN + 1])
{
    size_t plen = strlen(IMPORT_PATH_PREFIX);
    if (strncmp(path, IMPORT_PATH_PREFIX, plen) != 0)
        return 0;
    const char *id = path + plen;
    const char *slash = strchr(id, '/');
    if (!slash || slash == id || (size_t)(slash - id) > SS_ID_LEN)
        return 0;
    if (strcmp(slash, IMPORT_PATH_SUFFIX) != 0 && strcmp(slash, IMPORT_PATH_SUFFIX "/") != 0)
        return 0;
    memcpy(org, id, (size_t)(slash - id));
    org[slash - id] = '\0';
    return 1;
}

int api_import_path(const char *path)
{
    char org[SS_ID_LEN + 1];
    return import_path_org(path, org);
}

/* format=line|csv|ndjson, else the Content-Type. 0, or answers 400. */
static int import_format_of(http_request *req, import_format *out)
{
    /* Any other parameter was refused by the router (api_head). */
    char name[16];
    int rc = http_query_get(req, "format", name, sizeof name);
    if (rc == 1 && import_format_parse(name, out) == SS_OK)
        return 0;
    if (rc != 0) {
        http_respond_error(req, 400, "bad_parameter", "format must be line, csv or ndjson",
                           "\"parameter\":\"format\"");
        return 1;
    }
    const char *ct = http_request_header(req, "content-type");
    if (ct && strncasecmp(ct, "text/csv", 8) == 0)
        *out = IMPORT_CSV;
    else if (ct && (strncasecmp(ct, "application/x-ndjson", 20) == 0 ||
                    strncasecmp(ct, "application/ndjson", 18) == 0))
        *out = IMPORT_NDJSON;
    else if (ct && strncasecmp(ct, "text/plain", 10) == 0)
        *out = IMPORT_LINE;
    else {
        http_respond_error(req, 400, "bad_request",
                           "say the format: ?format=line|csv|ndjson, or Content-Type text/plain, "
                           "text/csv or application/x-ndjson",
                           NULL);
        return 1;
    }
    return 0;
}

static int import_alloc_tables(api_import *imp)
{
    imp->devices = calloc(SS_IMPORT_DEVICES_MAX, sizeof *imp->devices);
    imp->channels = calloc(SS_IMPORT_CHANNELS_MAX, sizeof *imp->channels);
    imp->series = calloc(2 * SS_IMPORT_SERIES_MAX, sizeof *imp->series);
    if (!imp->devices || !imp->channels || !imp->series)
        return SS_NOMEM;
    int rc = table_init(&imp->device_table, SS_IMPORT_DEVICES_MAX);
    return rc ? rc : table_init(&imp->channel_table, SS_IMPORT_CHANNELS_MAX);
}

static api_import *import_new(api_ctx *app, http_request *req, const char *org,
                              import_format format)
{
    api_import *imp = calloc(1, sizeof *imp);
    if (!imp)
        return NULL;
    imp->app = app;
    imp->req = req;
    imp->spool_fd = -1;
    imp->now_ms = clock_now_ms();
    imp->started_ms = clock_mono_ms();
    imp->min_ts = INT64_MAX;
    imp->max_ts = INT64_MIN;
    imp->max_readings = app->import_readings_max ? app->import_readings_max
                                                 : SS_IMPORT_READINGS_MAX;
    snprintf(imp->org_id, sizeof imp->org_id, "%s", org);
    import_parser_init(&imp->parser, format, imp->now_ms, on_line, imp);
    imp->early = (ss_buf)SS_BUF_INIT;
    imp->call = calloc(1, sizeof *imp->call);
    if (!imp->call || import_alloc_tables(imp)) {
        import_free(imp);
        return NULL;
    }
    imp->call->app = app;
    imp->call->req = req;
    imp->call->weight = API_LIGHT;
    snprintf(imp->call->params[0], sizeof imp->call->params[0], "%s", org);
    return imp;
}

int api_import_head(api_ctx *app, http_request *req)
{
    char org[SS_ID_LEN + 1];
    import_format format;
    if (!import_path_org(req->path, org))
        return 0;
    if (import_format_of(req, &format))
        return 1;
    if (imports_running(app) >= SS_IMPORT_RUNNING_MAX) {
        api_respond_busy(req, "the server runs as many imports as it may; retry shortly");
        return 1;
    }
    api_import *imp = import_new(app, req, org, format);
    static const http_body_hooks hooks = {.piece = on_piece, .gone = on_gone};
    if (!imp || http_body_stream(req, &hooks) != SS_OK) {
        if (imp)
            import_free(imp);
        http_respond_error(req, 503, "overloaded", "the server is out of memory", NULL);
        return 1;
    }
    api_conn_open(req);
    req->data = imp;
    imp->next = app->imports;
    app->imports = imp;
    imp->paused = 1;
    http_body_pause(req);
    imp->auth_work.data = imp;
    imp->authing = 1;
    if (uv_queue_work(app->loop, &imp->auth_work, on_auth_work, on_auth_done)) {
        imp->authing = 0;
        api_reply_error(imp->call, 503, "overloaded", "the server cannot take the request now");
        imp->paused = 0;
        http_body_resume(req);
    }
    return 0;
}

/* The whole body is here: the last line, then the commit once the spool
 * holds everything. */
static void body_end(api_import *imp)
{
    ss_parse_error err = {0};
    int rc = import_parser_end(&imp->parser, &err);
    if (rc) {
        answer_parse(imp, rc, imp->line_rc, &err);
        import_maybe_free(imp);
        return;
    }
    if (!imp->writing)
        after_write(imp);
}

void api_import_request(api_ctx *app, http_request *req)
{
    (void)app;
    api_import *imp = req->data;
    if (!imp) {
        http_respond_error(req, 500, "internal", "the request could not be served", NULL);
        return;
    }
    imp->body_done = 1;
    if (imp->authing)
        return;  /* on_auth_done goes on */
    if (imp->phase == IMPORT_AUTH) {
        answer_call(imp);
        import_maybe_free(imp);
        return;
    }
    body_end(imp);
}
