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
    int64_t close_stale_at;    /* 0: nothing to close */
    /* Which of its writes (one transaction each) succeeded, in order. */
    int stale_done, usage_done, recs_done;
    int rc;
} meter_job;

struct meter {
    uv_loop_t *loop;
    store *store;
    quota *quota;
    uv_timer_t timer;
    ss_list sessions;          /* every open record */
    store_usage *usage;        /* deltas since the last flush */
    size_t n_usage, cap_usage;
    size_t last_usage;         /* the row hit last: most requests hit it again */
    store_acct_session *recs;  /* records to write at the next flush */
    size_t n_recs, cap_recs;
    /* What failed writes carried, for the next one: already counted
     * toward quotas; records oldest first. Empty while a job is out. */
    store_usage *held_usage;
    size_t n_held_usage;
    store_acct_session *held_recs;
    size_t n_held_recs;
    int64_t close_stale_at;    /* meter_close_stale's, until written */
    int failing;               /* the last write failed: said once, not every second */
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
    ss_list_init(&m->sessions);
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    uv_timer_start(&m->timer, on_timer, METER_FLUSH_MS, METER_FLUSH_MS);
    *out = m;
    return SS_OK;
}

/* ---- pending writes ------------------------------------------------------ */

/* A login's record, which the meter owns (a connection's is its own). */
static int is_user_record(const meter_session *s)
{
    return s->pooled;
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
    ss_list_insert_head(&m->sessions, &s->link);
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
    ss_list_remove(&s->link);
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

void meter_message(meter *m, meter_session *s)
{
    (void)m;
    if (!s || !s->open)
        return;
    s->rec.messages++;
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
    for (ss_list *it = m->sessions.next; it != &m->sessions; it = it->next) {
        meter_session *s = ss_list_entry(it, meter_session, link);
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
        u->s.pooled = 1;
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
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &m->sessions) {
        meter_session *s = ss_list_entry(it, meter_session, link);
        meter_user *u = (meter_user *)s;
        if (is_user_record(s) && strcmp(s->rec.principal_id, user_id) == 0 &&
            !(keep_login_id && strcmp(u->login_id, keep_login_id) == 0)) {
            meter_session_end(m, s, reason);
            free(u);
        }
    }
}

static void end_idle_users(meter *m)
{
    int64_t now = clock_mono_ms();
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &m->sessions) {
        meter_session *s = ss_list_entry(it, meter_session, link);
        if (is_user_record(s) && now - ((meter_user *)s)->last_seen > METER_USER_IDLE_MS) {
            meter_session_end(m, s, "timeout");
            free(s);
        }
    }
}

/* ---- flushing ------------------------------------------------------------- */

static int write_job(store *st, meter_job *job)
{
    store_conn *c;
    int rc = store_conn_acquire(st, &c);
    if (rc)
        return rc;
    /* First: it must never end a record this process wrote. */
    if (job->close_stale_at) {
        rc = store_acct_session_close_stale(c, job->close_stale_at);
        job->stale_done = rc == 0;
    }
    if (rc == 0 && job->n_usage) {
        rc = store_usage_add(c, job->usage, job->n_usage);
        job->usage_done = rc == 0;
    }
    if (rc == 0 && job->n_recs) {
        rc = store_acct_session_put(c, job->recs, job->n_recs);
        job->recs_done = rc == 0;
    }
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

/* What the job did not write goes back to be merged into the next one.
 * The held arrays are empty while a job is out (take_job moved them). */
static void hold_back(meter *m, meter_job *job)
{
    if (job->rc == SS_INVAL) {
        log_error(METER_LOG, "accounting refused by the store as invalid; dropped");
        return;
    }
    if (!m->failing)
        log_warn(METER_LOG, "writing accounting failed: %s; kept for the next write",
                 ss_strerror(job->rc));
    if (!job->usage_done) {
        m->held_usage = job->usage;
        m->n_held_usage = job->n_usage;
        job->usage = NULL;
    }
    if (!job->recs_done) {
        m->held_recs = job->recs;
        m->n_held_recs = job->n_recs;
        job->recs = NULL;
    }
}

static void final_write(meter *m);

static void on_job_done(uv_work_t *w, int status)
{
    meter_job *job = w->data;
    meter *m = job->owner;
    m->flushing = 0;
    if (job->stale_done)
        m->close_stale_at = 0;
    if (status && !job->rc)
        job->rc = SS_STORE;
    if (job->rc)
        hold_back(m, job);
    else if (m->failing)
        log_info(METER_LOG, "accounting written again");
    m->failing = job->rc != 0;
    job_free(job);
    /* Written after this job, never before it: the last state wins. */
    if (m->stopping)
        final_write(m);
}

/* The bytes of this flush count toward each org's bytes quota here, once a
 * second rather than per request: the quota's mutex and org walk stay off
 * the per-request path, and a bytes quota is reached at most one flush
 * late. A row of a day already over counts toward no quota. Rows held
 * back from a failed write were counted when they were new. */
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

/* Room in the held arrays for everything new (and one, so that no size is
 * 0); nothing is lost when it fails. */
static int held_reserve(meter *m)
{
    store_usage *u = realloc(m->held_usage, (m->n_held_usage + m->n_usage + 1) * sizeof *u);
    if (!u)
        return SS_NOMEM;
    m->held_usage = u;
    store_acct_session *r = realloc(m->held_recs, (m->n_held_recs + m->n_recs + 1) * sizeof *r);
    if (!r)
        return SS_NOMEM;
    m->held_recs = r;
    return SS_OK;
}

static void usage_sum(store_usage *dst, const store_usage *src)
{
    dst->bytes_in += src->bytes_in;
    dst->bytes_out += src->bytes_out;
    dst->messages += src->messages;
    dst->readings += src->readings;
    dst->rejected += src->rejected;
    dst->api_requests += src->api_requests;
}

/* New usage rows into the held ones, one row per org, hour and protocol. */
static void merge_usage(meter *m)
{
    for (size_t i = 0; i < m->n_usage; i++) {
        const store_usage *u = &m->usage[i];
        size_t k = 0;
        while (k < m->n_held_usage &&
               !usage_row_is(&m->held_usage[k], u->bucket, u->org_id, u->protocol))
            k++;
        if (k == m->n_held_usage)
            m->held_usage[m->n_held_usage++] = *u;
        else
            usage_sum(&m->held_usage[k], u);
    }
    m->n_usage = m->last_usage = 0;
}

static int has_record(const store_acct_session *recs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(recs[i].id, id) == 0)
            return 1;
    }
    return 0;
}

/* New record snapshots after the held ones, each replacing an older
 * snapshot of its record; the oldest dropped past METER_HELD_RECORDS_MAX. */
static void merge_recs(meter *m)
{
    size_t kept = 0;
    for (size_t i = 0; i < m->n_held_recs; i++) {
        if (!has_record(m->recs, m->n_recs, m->held_recs[i].id))
            m->held_recs[kept++] = m->held_recs[i];
    }
    if (m->n_recs)
        memcpy(&m->held_recs[kept], m->recs, m->n_recs * sizeof *m->recs);
    m->n_held_recs = kept + m->n_recs;
    m->n_recs = 0;
    if (m->n_held_recs <= METER_HELD_RECORDS_MAX)
        return;
    size_t drop = m->n_held_recs - METER_HELD_RECORDS_MAX;
    memmove(m->held_recs, m->held_recs + drop, METER_HELD_RECORDS_MAX * sizeof *m->held_recs);
    m->n_held_recs = METER_HELD_RECORDS_MAX;
    log_warn(METER_LOG, "store failing: %zu oldest session records dropped (their counts are "
             "kept in usage)", drop);
}

/* Takes everything pending, merged into what failed writes held back,
 * into a job; NULL when there is nothing (or no memory: it all stays). */
static meter_job *take_job(meter *m)
{
    /* Every open record's bytes reach usage now; at most
     * METER_FLUSH_RECORDS_MAX records are copied, the others stay dirty
     * for the next flush, which starts where this one stopped. */
    size_t copied = 0;
    ss_list *rest = NULL;
    for (ss_list *it = m->sessions.next; it != &m->sessions; it = it->next) {
        meter_session *s = ss_list_entry(it, meter_session, link);
        if (!s->dirty)
            continue;
        fold_bytes(m, s);
        if (copied == METER_FLUSH_RECORDS_MAX) {
            rest = rest ? rest : it;
            continue;
        }
        queue_record(m, &s->rec);
        s->dirty = 0;
        copied++;
    }
    if (rest) {
        ss_list_remove(&m->sessions);
        ss_list_insert_tail(rest, &m->sessions);
    }
    if (m->n_usage == 0 && m->n_recs == 0 && m->n_held_usage == 0 && m->n_held_recs == 0 &&
        m->close_stale_at == 0)
        return NULL;
    meter_job *job = calloc(1, sizeof *job);
    if (!job || held_reserve(m)) {
        free(job);
        return NULL;
    }
    quota_add_flushed_bytes(m);
    merge_usage(m);
    merge_recs(m);
    if (m->cap_recs > METER_FLUSH_RECORDS_MAX) {
        /* a burst of ended records: its room goes back */
        free(m->recs);
        m->recs = NULL;
        m->cap_recs = 0;
    }
    *job = (meter_job){.owner = m, .usage = m->held_usage, .n_usage = m->n_held_usage,
                       .recs = m->held_recs, .n_recs = m->n_held_recs,
                       .close_stale_at = m->close_stale_at};
    job->work.data = job;
    m->held_usage = NULL;
    m->n_held_usage = 0;
    m->held_recs = NULL;
    m->n_held_recs = 0;
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

/* What a last write that failed loses, for the log. */
static void log_lost(const meter_job *job)
{
    store_usage lost = {0};
    for (size_t i = 0; !job->usage_done && i < job->n_usage; i++)
        usage_sum(&lost, &job->usage[i]);
    log_error(METER_LOG, "writing the last accounting failed (%s): lost %lld bytes in, %lld "
              "bytes out, %lld refused, %lld API requests, %zu session records",
              ss_strerror(job->rc), (long long)lost.bytes_in, (long long)lost.bytes_out,
              (long long)lost.rejected, (long long)lost.api_requests,
              job->recs_done ? (size_t)0 : job->n_recs);
}

/* The loop is stopping: what is left is written right here. */
static void final_write(meter *m)
{
    m->stopping = 0;
    meter_job *job = take_job(m);
    if (job) {
        job->rc = write_job(m->store, job);
        if (job->rc)
            log_lost(job);
        job_free(job);
    }
    uv_close((uv_handle_t *)&m->timer, NULL);
}

void meter_close_stale(meter *m, int64_t now_ms)
{
    m->close_stale_at = now_ms;
}

void meter_stop(meter *m, const char *reason)
{
    uv_timer_stop(&m->timer);
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &m->sessions) {
        meter_session *s = ss_list_entry(it, meter_session, link);
        int owned = is_user_record(s);
        meter_session_end(m, s, reason);
        if (owned)
            free(s);
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
    free(m->held_usage);
    free(m->held_recs);
    free(m);
}
