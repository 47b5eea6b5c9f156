#include "aaa/quota.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/limits.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUOTA_DAY_MS 86400000LL
#define QUOTA_INITIAL_BUCKETS 256u

typedef struct quota_org {
    struct quota_org *next;
    char id[SS_ID_LEN + 1];
    char parent_id[SS_ID_LEN + 1];
    struct quota_org *parent;  /* found by parent_id, valid while parent_gen == gen */
    uint64_t parent_gen;
    quota_limits limits;
    int64_t day;               /* the UTC day the counts are for */
    int64_t readings;          /* stored today, this org and below */
    int64_t reserved;          /* queued, not yet stored */
    int64_t bytes;             /* on the wire today, this org and below */
} quota_org;

struct quota {
    pthread_mutex_t lock;
    quota_org **buckets;
    size_t nbuckets;
    size_t count;
    uint64_t gen;              /* changes when an org is freed: kept pointers die */
};

static size_t id_slot(const char *id, size_t nbuckets)
{
    return (size_t)(hash_id(id) & (nbuckets - 1));
}

int quota_new(quota **out)
{
    quota *q = calloc(1, sizeof *q);
    if (!q)
        return SS_NOMEM;
    q->nbuckets = QUOTA_INITIAL_BUCKETS;
    q->buckets = calloc(q->nbuckets, sizeof *q->buckets);
    if (!q->buckets) {
        free(q);
        return SS_NOMEM;
    }
    pthread_mutex_init(&q->lock, NULL);
    q->gen = 1;  /* a zeroed quota_ref is never valid */
    *out = q;
    return SS_OK;
}

void quota_free(quota *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->nbuckets; i++) {
        quota_org *o = q->buckets[i];
        while (o) {
            quota_org *next = o->next;
            free(o);
            o = next;
        }
    }
    free(q->buckets);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static quota_org *find(quota *q, const char *id)
{
    for (quota_org *o = q->buckets[id_slot(id, q->nbuckets)]; o; o = o->next)
        if (strcmp(o->id, id) == 0)
            return o;
    return NULL;
}

static int grow(quota *q)
{
    size_t n = q->nbuckets * 2;
    quota_org **b = calloc(n, sizeof *b);
    if (!b)
        return SS_NOMEM;
    for (size_t i = 0; i < q->nbuckets; i++) {
        quota_org *o = q->buckets[i];
        while (o) {
            quota_org *next = o->next;
            size_t slot = id_slot(o->id, n);
            o->next = b[slot];
            b[slot] = o;
            o = next;
        }
    }
    free(q->buckets);
    q->buckets = b;
    q->nbuckets = n;
    return SS_OK;
}

/* Counts are per UTC day: the first touch on a new day starts afresh. */
static void roll_day(quota_org *o, int64_t now_ms)
{
    int64_t day = now_ms / QUOTA_DAY_MS;
    if (o->day == day)
        return;
    o->day = day;
    o->readings = 0;
    o->bytes = 0;
}

/* The org by the caller's ref while it is valid and names this org, else
 * by id (then kept in the ref). */
static quota_org *lookup(quota *q, const char *org_id, quota_ref *ref)
{
    if (ref && ref->org && ref->gen == q->gen && strcmp(((quota_org *)ref->org)->id, org_id) == 0)
        return (quota_org *)ref->org;
    quota_org *o = find(q, org_id);
    if (ref) {
        ref->org = o;
        ref->gen = q->gen;
    }
    return o;
}

/* A parent not known yet is not remembered: it may be added later. */
static quota_org *parent_of(quota *q, quota_org *o)
{
    if (!o->parent_id[0])
        return NULL;
    if (o->parent_gen != q->gen) {
        o->parent = find(q, o->parent_id);
        o->parent_gen = o->parent ? q->gen : 0;
    }
    return o->parent;
}

/* The org and its ancestors, nearest first. Returns how many. */
static size_t chain(quota *q, const char *org_id, quota_ref *ref, quota_org **out,
                    int64_t now_ms)
{
    size_t n = 0;
    quota_org *o = lookup(q, org_id, ref);
    while (o && n < SS_ORG_DEPTH_MAX) {
        roll_day(o, now_ms);
        out[n++] = o;
        o = parent_of(q, o);
    }
    return n;
}

int quota_set_org(quota *q, const char *org_id, const char *parent_id)
{
    int rc = SS_OK;
    pthread_mutex_lock(&q->lock);
    quota_org *o = find(q, org_id);
    if (!o && q->count >= q->nbuckets)
        rc = grow(q);
    if (!o && rc == SS_OK) {
        o = calloc(1, sizeof *o);
        if (o) {
            snprintf(o->id, sizeof o->id, "%s", org_id);
            size_t slot = id_slot(org_id, q->nbuckets);
            o->next = q->buckets[slot];
            q->buckets[slot] = o;
            q->count++;
        } else {
            rc = SS_NOMEM;
        }
    }
    if (o) {
        snprintf(o->parent_id, sizeof o->parent_id, "%s", parent_id ? parent_id : "");
        o->parent_gen = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int quota_org_within(quota *q, const char *org_id, const char *ancestor)
{
    int within = 0;
    pthread_mutex_lock(&q->lock);
    quota_org *o = find(q, org_id);
    for (int depth = 0; o && depth < SS_ORG_DEPTH_MAX && !within; depth++) {
        within = strcmp(o->id, ancestor) == 0;
        o = parent_of(q, o);
    }
    pthread_mutex_unlock(&q->lock);
    return within;
}

void quota_remove_org(quota *q, const char *org_id)
{
    pthread_mutex_lock(&q->lock);
    /* What the org has reserved would never be finished against it now:
     * release it from its ancestors, or their quota shrinks for good. */
    quota_org *self = find(q, org_id);
    quota_org *up = self && self->parent_id[0] ? find(q, self->parent_id) : NULL;
    for (int depth = 0; up && depth < SS_ORG_DEPTH_MAX; depth++) {
        up->reserved -= self->reserved;
        if (up->reserved < 0)
            up->reserved = 0;
        up = up->parent_id[0] ? find(q, up->parent_id) : NULL;
    }
    quota_org **link = &q->buckets[id_slot(org_id, q->nbuckets)];
    for (; *link; link = &(*link)->next) {
        if (strcmp((*link)->id, org_id) == 0) {
            quota_org *gone = *link;
            *link = gone->next;
            free(gone);
            q->count--;
            q->gen++;
            break;
        }
    }
    pthread_mutex_unlock(&q->lock);
}

int quota_set_limits(quota *q, const char *org_id, const quota_limits *l)
{
    pthread_mutex_lock(&q->lock);
    quota_org *o = find(q, org_id);
    if (o)
        o->limits = *l;
    pthread_mutex_unlock(&q->lock);
    return o ? SS_OK : SS_NOT_FOUND;
}

void quota_load_usage(quota *q, const char *org_id, int64_t readings, int64_t bytes,
                      int64_t now_ms)
{
    quota_org *orgs[SS_ORG_DEPTH_MAX];
    pthread_mutex_lock(&q->lock);
    size_t n = chain(q, org_id, NULL, orgs, now_ms);
    for (size_t i = 0; i < n; i++) {
        orgs[i]->readings += readings;
        orgs[i]->bytes += bytes;
    }
    pthread_mutex_unlock(&q->lock);
}

static int over(const quota_org *o, int64_t more_readings)
{
    const quota_limits *l = &o->limits;
    if (l->max_readings_per_day && o->readings + o->reserved + more_readings > l->max_readings_per_day)
        return 1;
    return l->max_bytes_per_day && o->bytes >= l->max_bytes_per_day;
}

int quota_reserve_readings(quota *q, const char *org_id, int64_t n, int64_t now_ms,
                           quota_ref *ref)
{
    quota_org *orgs[SS_ORG_DEPTH_MAX];
    int rc = SS_OK;
    pthread_mutex_lock(&q->lock);
    size_t len = chain(q, org_id, ref, orgs, now_ms);
    for (size_t i = 0; i < len && rc == SS_OK; i++)
        if (over(orgs[i], n))
            rc = SS_QUOTA;
    for (size_t i = 0; i < len && rc == SS_OK; i++)
        orgs[i]->reserved += n;
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void quota_finish_readings(quota *q, const char *org_id, int64_t n, int stored, int64_t now_ms,
                           quota_ref *ref)
{
    quota_org *orgs[SS_ORG_DEPTH_MAX];
    pthread_mutex_lock(&q->lock);
    size_t len = chain(q, org_id, ref, orgs, now_ms);
    for (size_t i = 0; i < len; i++) {
        orgs[i]->reserved -= n;
        if (orgs[i]->reserved < 0)
            orgs[i]->reserved = 0;
        if (stored)
            orgs[i]->readings += n;
    }
    pthread_mutex_unlock(&q->lock);
}

void quota_add_bytes(quota *q, const char *org_id, int64_t bytes, int64_t now_ms)
{
    quota_org *orgs[SS_ORG_DEPTH_MAX];
    pthread_mutex_lock(&q->lock);
    size_t len = chain(q, org_id, NULL, orgs, now_ms);
    for (size_t i = 0; i < len; i++)
        orgs[i]->bytes += bytes;
    pthread_mutex_unlock(&q->lock);
}
