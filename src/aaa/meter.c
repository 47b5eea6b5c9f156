#include "aaa/meter.h"
#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METER_LOG "meter"

/* One batch of writes handed to the worker pool. */
typedef struct meter_job {
    uv_work_t work;
    meter *owner;
    store_usage *usage;
    size_t n_usage;
    store_acct_session *recs;
    size_t n_recs;
    int rc;
} meter_job;

struct meter {
    uv_loop_t *loop;
    store *store;
    quota *quota;
    uv_timer_t timer;
    meter_session *open;       /* every open record */
    store_usage *usage;        /* deltas since the last flush */
    size_t n_usage, cap_usage;
    size_t last_usage;         /* the row hit last: most requests hit it again */
    store_acct_session *recs;  /* records to write at the next flush */
    size_t n_recs, cap_recs;
    int flushing;              /* a job is on the worker pool */
    int stopping;              /* meter_stop waits for that job to write last */
};

/* Person records are heap-owned by the meter. */
typedef struct meter_user {
    meter_session s;           /* first: found through the open list */
    char login_id[SS_ID_LEN + 1];
    int64_t last_seen;
} meter_user;

static void on_timer(uv_timer_t *t);

int meter_new(uv_loop_t *loop, store *s, quota *q, meter **out)
{
    meter *m = calloc(1, sizeof *m);
    if (!m)
        return SS_NOMEM;
    m->loop = loop;
    m->store = s;
    m->quota = q;
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    uv_timer_start(&m->timer, on_timer, METER_FLUSH_MS, METER_FLUSH_MS);
    *out = m;
    return SS_OK;
}

/* ---- pending writes ------------------------------------------------------ */

static int is_user_record(const meter_session *s)
{
    return strcmp(s->rec.kind, "user") == 0;
}

/* Queues a copy of the record for the next flush. Out of memory loses this
 * snapshot only; the next one (or the end) carries the counts again. */
static void queue_record(meter *m, const store_acct_session *r)
{
    if (m->n_recs == m->cap_recs) {
        size_t cap = m->cap_recs ? m->cap_recs * 2 : 64;
        store_acct_session *p = realloc(m->recs, cap * sizeof *p);
        if (!p)
            return;
        m->recs = p;
        m->cap_recs = cap;
    }
    m->recs[m->n_recs++] = *r;
}

static int usage_row_is(const store_usage *u, int64_t hour, const char *org_id,
                        const char *protocol)
{
    return u->bucket == hour && strcmp(u->org_id, org_id) == 0 &&
           strcmp(u->protocol, protocol) == 0;
}

/* The usage row of (org, this hour, protocol), made when missing. */
static store_usage *usage_row(meter *m, const char *org_id, const char *protocol)
{
    int64_t hour = clock_now_ms() / STORE_HOUR_MS * STORE_HOUR_MS;
    if (m->last_usage < m->n_usage &&
        usage_row_is(&m->usage[m->last_usage], hour, org_id, protocol))
        return &m->usage[m->last_usage];
    for (size_t i = 0; i < m->n_usage; i++) {
        if (usage_row_is(&m->usage[i], hour, org_id, protocol)) {
            m->last_usage = i;
            return &m->usage[i];
        }
    }
    if (m->n_usage == m->cap_usage) {
        size_t cap = m->cap_usage ? m->cap_usage * 2 : 16;
        store_usage *p = realloc(m->usage, cap * sizeof *p);
        if (!p)
            return NULL;
        m->usage = p;
        m->cap_usage = cap;
    }
    m->last_usage = m->n_usage;
    store_usage *u = &m->usage[m->n_usage++];
    memset(u, 0, sizeof *u);
    snprintf(u->org_id, sizeof u->org_id, "%s", org_id);
    snprintf(u->protocol, sizeof u->protocol, "%s", protocol);
    u->bucket = hour;
    return u;
}

/* ---- records ---------------------------------------------------------- */

void meter_session_open(meter *m, meter_session *s, const char *kind, const char *principal_id,
                        const char *org_id, const char *protocol, const char *addr)
{
    memset(s, 0, sizeof *s);
    store_acct_session *r = &s->rec;
    secret_new_id(r->id);
    snprintf(r->kind, sizeof r->kind, "%s", kind);
    snprintf(r->principal_id, sizeof r->principal_id, "%s", principal_id);
    snprintf(r->org_id, sizeof r->org_id, "%s", org_id ? org_id : "");
    snprintf(r->protocol, sizeof r->protocol, "%s", protocol);
    snprintf(r->addr, sizeof r->addr, "%s", addr ? addr : "");
    r->started_at = clock_now_ms();
    s->open = 1;
    s->dirty = 1;
    s->next = m->open;
    if (m->open)
        m->open->prev = s;
    m->open = s;
}

static void unlink_open(meter *m, meter_session *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        m->open = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

/* A record's bytes reach its org's usage at each flush and at its end,
 * not per request: the request path only adds to the record. */
static void fold_bytes(meter *m, meter_session *s)
{
    int64_t in = s->rec.bytes_in - s->usage_in, out = s->rec.bytes_out - s->usage_out;
    if ((in == 0 && out == 0) || !s->rec.org_id[0])
        return;
    store_usage *u = usage_row(m, s->rec.org_id, s->rec.protocol);
    if (!u)
        return;  /* out of memory: the next fold carries them */
    u->bytes_in += in;
    u->bytes_out += out;
    s->usage_in = s->rec.bytes_in;
    s->usage_out = s->rec.bytes_out;
}

void meter_session_end(meter *m, meter_session *s, const char *reason)
{
    if (!s || !s->open)
        return;
    fold_bytes(m, s);
    s->open = 0;
    unlink_open(m, s);
    s->rec.ended_at = clock_now_ms();
    snprintf(s->rec.end_reason, sizeof s->rec.end_reason, "%s", reason);
    queue_record(m, &s->rec);
}

void meter_bytes(meter *m, meter_session *s, const char *org_id, const char *protocol,
                 uint64_t in, uint64_t out)
{
    if (in == 0 && out == 0)
        return;
    if (s && s->open) {
        /* a record is of one org and protocol: its bytes go to usage at the flush */
        s->rec.bytes_in += (int64_t)in;
        s->rec.bytes_out += (int64_t)out;
        s->dirty = 1;
        return;
    }
    if (!org_id || !org_id[0])
        return;
    store_usage *u = usage_row(m, org_id, protocol);
    if (u) {
        u->bytes_in += (int64_t)in;
        u->bytes_out += (int64_t)out;
    }
}

void meter_stored(meter *m, meter_session *s, uint64_t readings)
{
    (void)m;
    if (!s || !s->open)
        return;
    s->rec.messages++;
    s->rec.readings += (int64_t)readings;
    s->dirty = 1;
}

void meter_refused(meter *m, meter_session *s, const char *org_id, const char *protocol,
                   uint64_t readings)
{
    if (s && s->open) {
        s->rec.messages++;
        s->rec.refused += (int64_t)(readings ? readings : 1);
        s->dirty = 1;
    }
    if (!org_id || !org_id[0])
        return;
    store_usage *u = usage_row(m, org_id, protocol);
    if (u)
        u->rejected += (int64_t)(readings ? readings : 1);
}

void meter_api_request(meter *m, meter_session *s, const char *org_id, const char *protocol)
{
    if (s && s->open) {
        s->rec.api_requests++;
        s->dirty = 1;
    }
    if (!org_id || !org_id[0])
        return;
    store_usage *u = usage_row(m, org_id, protocol);
    if (u)
        u->api_requests++;
}

/* ---- people ------------------------------------------------------------- */

static meter_user *find_user(meter *m, const char *login_id, const char *org_id)
{
    for (meter_session *s = m->open; s; s = s->next) {
        if (!is_user_record(s))
            continue;
        meter_user *u = (meter_user *)s;
        if (strcmp(u->login_id, login_id) == 0 && (!org_id || strcmp(s->rec.org_id, org_id) == 0))
            return u;
    }
    return NULL;
}

meter_session *meter_user_session(meter *m, const char *login_id, const char *user_id,
                                  const char *org_id, const char *protocol, const char *addr)
{
    meter_user *u = find_user(m, login_id, org_id ? org_id : "");
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u)
            return NULL;
        meter_session_open(m, &u->s, "user", user_id, org_id, protocol, addr);
        snprintf(u->login_id, sizeof u->login_id, "%s", login_id);
    }
    u->last_seen = clock_mono_ms();
    return &u->s;
}

void meter_user_end(meter *m, const char *login_id, const char *reason)
{
    meter_user *u;
    while ((u = find_user(m, login_id, NULL)) != NULL) {
        meter_session_end(m, &u->s, reason);
        free(u);
    }
}

void meter_user_end_all(meter *m, const char *user_id, const char *keep_login_id,
                        const char *reason)
{
    meter_session *s = m->open;
    while (s) {
        meter_session *next = s->next;
        meter_user *u = (meter_user *)s;
        if (is_user_record(s) && strcmp(s->rec.principal_id, user_id) == 0 &&
            !(keep_login_id && strcmp(u->login_id, keep_login_id) == 0)) {
            meter_session_end(m, s, reason);
            free(u);
        }
        s = next;
    }
}

static void end_idle_users(meter *m)
{
    int64_t now = clock_mono_ms();
    meter_session *s = m->open;
    while (s) {
        meter_session *next = s->next;
        if (is_user_record(s) && now - ((meter_user *)s)->last_seen > METER_USER_IDLE_MS) {
            meter_session_end(m, s, "timeout");
            free(s);
        }
        s = next;
    }
}

/* ---- flushing ------------------------------------------------------------- */

static int write_job(store *st, meter_job *job)
{
    store_conn *c;
    int rc = store_conn_acquire(st, &c);
    if (rc)
        return rc;
    if (job->n_usage)
        rc = store_usage_add(c, job->usage, job->n_usage);
    if (rc == 0 && job->n_recs)
        rc = store_acct_session_put(c, job->recs, job->n_recs);
    store_conn_release(st, c);
    return rc;
}

static void on_job_work(uv_work_t *w)
{
    meter_job *job = w->data;
    job->rc = write_job(job->owner->store, job);
}

static void job_free(meter_job *job)
{
    free(job->usage);
    free(job->recs);
    free(job);
}

static void final_write(meter *m);

static void on_job_done(uv_work_t *w, int status)
{
    meter_job *job = w->data;
    meter *m = job->owner;
    m->flushing = 0;
    if (status || job->rc)
        log_error(METER_LOG, "writing accounting failed: %s", ss_strerror(job->rc));
    job_free(job);
    /* Written after this job, never before it: the last state wins. */
    if (m->stopping)
        final_write(m);
}

/* The bytes of this flush count toward each org's bytes quota here, once a
 * second rather than per request: the quota's mutex and org walk stay off
 * the per-request path, and a bytes quota is reached at most one flush
 * late. A row of a day already over counts toward no quota. */
static void quota_add_flushed_bytes(meter *m)
{
    if (!m->quota)
        return;
    int64_t now = clock_now_ms();
    int64_t today = now / STORE_DAY_MS;
    for (size_t i = 0; i < m->n_usage; i++) {
        const store_usage *u = &m->usage[i];
        int64_t bytes = u->bytes_in + u->bytes_out;
        if (bytes && u->bucket / STORE_DAY_MS == today)
            quota_add_bytes(m->quota, u->org_id, bytes, now);
    }
}

/* Takes everything pending into a job; NULL when there is nothing. */
static meter_job *take_job(meter *m)
{
    for (meter_session *s = m->open; s; s = s->next) {
        if (s->dirty) {
            fold_bytes(m, s);
            queue_record(m, &s->rec);
            s->dirty = 0;
        }
    }
    if (m->n_usage == 0 && m->n_recs == 0)
        return NULL;
    meter_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    quota_add_flushed_bytes(m);
    job->owner = m;
    job->usage = m->usage;
    job->n_usage = m->n_usage;
    job->recs = m->recs;
    job->n_recs = m->n_recs;
    job->work.data = job;
    m->usage = NULL;
    m->n_usage = m->cap_usage = m->last_usage = 0;
    m->recs = NULL;
    m->n_recs = m->cap_recs = 0;
    return job;
}

void meter_flush(meter *m)
{
    if (m->flushing)
        return;
    end_idle_users(m);
    meter_job *job = take_job(m);
    if (!job)
        return;
    m->flushing = 1;
    if (uv_queue_work(m->loop, &job->work, on_job_work, on_job_done)) {
        m->flushing = 0;
        log_error(METER_LOG, "cannot queue the accounting write");
        job_free(job);
    }
}

static void on_timer(uv_timer_t *t)
{
    meter_flush(t->data);
}

/* The loop is stopping: what is left is written right here. */
static void final_write(meter *m)
{
    m->stopping = 0;
    meter_job *job = take_job(m);
    if (job && write_job(m->store, job))
        log_error(METER_LOG, "writing the last accounting failed");
    if (job)
        job_free(job);
    uv_close((uv_handle_t *)&m->timer, NULL);
}

void meter_stop(meter *m, const char *reason)
{
    uv_timer_stop(&m->timer);
    meter_session *s = m->open;
    while (s) {
        meter_session *next = s->next;
        int owned = is_user_record(s);
        meter_session_end(m, s, reason);
        if (owned)
            free(s);
        s = next;
    }
    if (m->flushing)
        m->stopping = 1;
    else
        final_write(m);
}

void meter_free(meter *m)
{
    if (!m)
        return;
    free(m->usage);
    free(m->recs);
    free(m);
}
