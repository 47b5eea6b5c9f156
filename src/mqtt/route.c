/* route.c — a published message to the sessions whose subscriptions
 * match (mqtt_route), and to the retained store.
 *
 * A message matching several subscriptions of one session is delivered
 * once, at the highest QoS granted among them, with all their
 * subscription identifiers (MQTT-3.3.4-2, -3); no-local and
 * retain-as-published are the subscription's; a shared group's message
 * goes to an online member when there is one. Everything the route
 * changes for a stored session is recorded in the persister before
 * memory changes, and the publisher's `done` runs once all of it is
 * committed. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "mqtt/session.h"

/* Hits of one route held on the stack before the heap is needed. */
#define ROUTE_HITS_INLINE 8u

/* ---- routing --------------------------------------------------------------------------- */

/* One session's share of a message: the merge of its matching
 * subscriptions. */
typedef struct route_hit {
    mqtt_session *s;
    uint64_t seq;            /* the delivery's, once recorded */
    uint8_t qos;
    uint8_t retain;
    uint8_t recorded;
    uint8_t n_ids;
    uint32_t ids[MQTT_SUB_IDS_MAX];
} route_hit;

typedef struct route_ctx {
    const mqtt_msg *m;
    uint64_t origin;
    uint64_t gen;
    route_hit *hits;
    unsigned n;
    unsigned cap;
    int nomem;
    route_hit inline_hits[ROUTE_HITS_INLINE];
} route_ctx;

/* The publisher's acknowledgement waits for every record of one route. */
typedef struct route_job {
    unsigned pending;
    int status;
    mqtt_persist_done_cb done;
    void *ctx;
} route_job;

static void job_done(void *ctx, int status)
{
    route_job *j = ctx;
    if (status && !j->status)
        j->status = status;
    if (--j->pending > 0)
        return;
    if (j->done)
        j->done(j->ctx, j->status);
    free(j);
}

/* A record's hold on the job, taken before the call that may complete it. */
static void job_hold(route_job *j)
{
    if (j)
        j->pending++;
}

static void job_unhold(route_job *j)
{
    if (j)
        j->pending--;
}

static route_hit *hit_for(route_ctx *r, mqtt_session *s)
{
    if (s->route_gen == r->gen)
        return &r->hits[s->route_idx];
    if (r->n == r->cap) {
        unsigned cap = r->cap * 2;
        route_hit *h = malloc(cap * sizeof *h);
        if (!h) {
            r->nomem = 1;
            return NULL;
        }
        memcpy(h, r->hits, r->n * sizeof *h);
        if (r->hits != r->inline_hits)
            free(r->hits);
        r->hits = h;
        r->cap = cap;
    }
    route_hit *h = &r->hits[r->n];
    memset(h, 0, offsetof(route_hit, ids));
    h->s = s;
    s->route_gen = r->gen;
    s->route_idx = r->n++;
    return h;
}

static void on_match(void *ctx, const mqtt_sub_entry *e)
{
    route_ctx *r = ctx;
    mqtt_session *s = e->owner;
    if ((e->options & MQTT_SUBOPT_NO_LOCAL) && r->origin && s->serial == r->origin)
        return;  /* MQTT-3.8.3-3 */
    route_hit *h = hit_for(r, s);
    if (!h)
        return;
    uint8_t granted = e->options & MQTT_SUBOPT_QOS_MASK;
    uint8_t qos = granted < r->m->qos ? granted : r->m->qos;
    if (qos > h->qos)
        h->qos = qos;
    if (e->options & MQTT_SUBOPT_RETAIN_AS_PUBLISHED)
        h->retain |= r->m->retain;
    for (unsigned i = 0; e->sub_id && i <= h->n_ids && h->n_ids < MQTT_SUB_IDS_MAX; i++) {
        if (i == h->n_ids) {
            h->ids[h->n_ids++] = e->sub_id;
            break;
        }
        if (h->ids[i] == e->sub_id)
            break;
    }
}

/* A shared group's message goes to a member that is online when there is
 * one. */
static int pick_online(void *owner)
{
    const mqtt_session *s = owner;
    return s->conn != NULL;
}

static int retained_quota(mqtt_broker *b, const mqtt_msg *m)
{
    if (!m->retain || m->payload_len == 0 || !b->retain)
        return SS_OK;
    if (mqtt_retain_get(b->retain, m->org_id, m->topic, m->topic_len))
        return SS_OK;
    return mqtt_retain_count(b->retain, m->org_id) >= SS_MQTT_RETAINED_PER_ORG_MAX ? SS_QUOTA
                                                                                   : SS_OK;
}

/* Records what the route changes in the store, before anything changes
 * in memory: the retained message, then one delivery per stored session.
 * Refused at the first record while a publisher can wait (can_wait):
 * nothing routed (SS_BUSY); any other refusal leaves that delivery in
 * memory only (a will, readings: nobody could send them again). */
static int route_record(mqtt_broker *b, mqtt_msg *m, route_ctx *r, route_job *j, int can_wait)
{
    mqtt_persist *p = b->persist;
    if (!p)
        return SS_OK;
    int first = can_wait;
    if (m->retain && b->retain) {
        job_hold(j);
        int rc = mqtt_persist_retain_put(p, m, j ? job_done : NULL, j);
        if (rc)
            job_unhold(j);
        if (rc && first)
            return rc;
        if (rc)
            log_warn("mqtt", "a retained message was kept in memory only: %s", ss_strerror(rc));
        first = 0;
    }
    for (unsigned i = 0; i < r->n; i++) {
        route_hit *h = &r->hits[i];
        if (h->qos == 0 || !h->s->stored)
            continue;
        mqtt_persist_delivery pd = {.org_id = h->s->org_id,
                                    .client_id = h->s->client_id,
                                    .seq = h->s->next_seq,
                                    .msg = m,
                                    .qos = h->qos,
                                    .retain = h->retain,
                                    .state = MQTT_DELIVERY_QUEUED,
                                    .sub_ids = h->ids,
                                    .n_sub_ids = h->n_ids};
        job_hold(j);
        int rc = mqtt_persist_delivery_put(p, &pd, j ? job_done : NULL, j);
        if (rc)
            job_unhold(j);
        if (rc && first)
            return rc;
        if (rc) {
            log_warn("mqtt", "a delivery was kept in memory only: %s", ss_strerror(rc));
            continue;
        }
        first = 0;
        h->seq = h->s->next_seq++;
        h->recorded = 1;
    }
    return SS_OK;
}

static void route_apply(mqtt_broker *b, mqtt_msg *m, route_ctx *r)
{
    if (m->retain && b->retain && mqtt_retain_set(b->retain, m))
        log_error("mqtt", "out of memory: a retained message was not kept");
    for (unsigned i = 0; i < r->n; i++) {
        route_hit *h = &r->hits[i];
        if (h->qos == 0)
            mqtt_deliver_qos0(h->s, m, h->retain, h->ids, h->n_ids);
        else
            mqtt_deliver_enqueue(h->s, m, h->qos, h->retain, h->ids, h->n_ids, h->seq, h->recorded);
    }
}

int mqtt_route(mqtt_broker *b, mqtt_msg *m, uint64_t origin_serial, mqtt_persist_done_cb done,
               void *ctx, int *matched)
{
    *matched = 0;
    int rc = retained_quota(b, m);
    if (rc)
        return rc;
    route_ctx r = {.m = m, .origin = origin_serial, .cap = ROUTE_HITS_INLINE};
    r.hits = r.inline_hits;
    mqtt_sessions *t = mqtt_sessions_of(b);
    r.gen = ++t->route_gen;
    mqtt_subs_match(b->subs, m->org_id, m->topic, m->topic_len, pick_online, on_match, &r);
    route_job *j = NULL;
    if (!r.nomem && done && !(j = calloc(1, sizeof *j)))
        r.nomem = 1;
    if (r.nomem) {
        rc = SS_NOMEM;
        goto out;
    }
    if (j) {
        j->pending = 1;  /* this call's own, released at the end */
        j->done = done;
        j->ctx = ctx;
    }
    rc = route_record(b, m, &r, j, done != NULL);
    if (rc) {
        free(j);
        j = NULL;
        goto out;
    }
    route_apply(b, m, &r);
    /* A retained message is kept for subscribers to come: not 0x10. */
    *matched = (int)r.n + (m->retain && m->payload_len > 0 && b->retain && r.n == 0);
out:
    if (r.hits != r.inline_hits)
        free(r.hits);
    if (j)
        job_done(j, SS_OK);
    return rc;
}
