/* session_subs.c — what a session subscribes to (its list, the org's
 * index, the store; the retained messages a new subscription gets, as
 * retain handling says) and the inbound QoS 2 packet ids it keeps until
 * PUBREL (MQTT-4.3.3-9). */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "mqtt/session.h"
#include "mqtt/topic.h"

void mqtt_session_record_sub(mqtt_session *s, const mqtt_session_sub *sub)
{
    mqtt_persist *p = s->broker->persist;
    if (!p || !s->stored)
        return;
    mqtt_persist_sub ps = {.org_id = s->org_id,
                           .client_id = s->client_id,
                           .filter = sub->filter,
                           .options = sub->options,
                           .sub_id = sub->sub_id};
    int rc = mqtt_persist_sub_put(p, &ps, NULL, NULL);
    if (rc)
        mqtt_session_persist_failed("subscription", rc);
}

void mqtt_session_subs_forget(mqtt_session *s)
{
    mqtt_broker *b = s->broker;
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->subs) {
        mqtt_session_sub *sub = ss_list_entry(it, mqtt_session_sub, link);
        if (b->subs)
            mqtt_subs_remove(b->subs, s->org_id, sub->filter, sub->len, s);
        ss_list_remove(it);
        free(sub);
    }
    s->n_subs = 0;
}

/* ---- subscriptions ------------------------------------------------------------------ */

mqtt_session_sub *mqtt_session_sub_find(mqtt_session *s, const char *filter, size_t len)
{
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->subs) {
        mqtt_session_sub *sub = ss_list_entry(it, mqtt_session_sub, link);
        if (sub->len == len && memcmp(sub->filter, filter, len) == 0)
            return sub;
    }
    return NULL;
}

/* A 5.0 reason, or 3.1.1's one failure code. */
static uint8_t suback_failure(const mqtt_conn *c, uint8_t reason)
{
    return c->version == MQTT_V5 ? reason : MQTT_311_SUBACK_FAILURE;
}

typedef struct retained_ctx {
    mqtt_session *s;
    uint8_t qos;
    uint32_t sub_id;
} retained_ctx;

/* A retained message sent for a new subscription keeps its retain flag
 * (MQTT-3.3.1-8, 5.0's MQTT-3.3.1-9) whatever retain-as-published says. */
static void on_retained(void *ctx, mqtt_msg *m)
{
    retained_ctx *rc = ctx;
    uint8_t qos = m->qos < rc->qos ? m->qos : rc->qos;
    mqtt_deliver_one(rc->s, m, qos, 1, rc->sub_id);
}

static mqtt_session_sub *sub_new(const char *filter, size_t len)
{
    mqtt_session_sub *sub = calloc(1, sizeof *sub + len + 1);
    if (!sub)
        return NULL;
    ss_list_init(&sub->link);
    memcpy(sub->filter, filter, len);
    sub->filter[len] = 0;
    sub->len = (uint16_t)len;
    return sub;
}

/* Adds or replaces the session's subscription in its list and the index;
 * the store is the caller's. OUT existed. 0 or SS_NOMEM. */
int mqtt_session_sub_set(mqtt_session *s, const char *filter, size_t len, uint8_t options,
                   uint32_t sub_id, int *existed)
{
    mqtt_session_sub *sub = mqtt_session_sub_find(s, filter, len);
    *existed = sub != NULL;
    if (!sub && !(sub = sub_new(filter, len)))
        return SS_NOMEM;
    int rc = mqtt_subs_add(s->broker->subs, s->org_id, sub->filter, len, s, options, sub_id, NULL);
    if (rc) {
        if (!*existed)
            free(sub);
        return rc;
    }
    sub->options = options;
    sub->sub_id = sub_id;
    if (!*existed) {
        ss_list_insert_tail(&s->subs, &sub->link);
        s->n_subs++;
    }
    return SS_OK;
}

int mqtt_session_subscribe(mqtt_conn *c, const char *filter, size_t len, uint8_t options,
                           uint32_t sub_id, uint8_t *reason)
{
    mqtt_session *s = c->session;
    int shared = 0;
    if (!s || len > UINT16_MAX || !mqtt_topic_filter_valid(filter, len, &shared)) {
        *reason = suback_failure(c, MQTT_RC_TOPIC_FILTER_INVALID);
        return SS_OK;
    }
    if (s->n_subs >= SS_MQTT_SESSION_SUBS_MAX && !mqtt_session_sub_find(s, filter, len)) {
        *reason = suback_failure(c, MQTT_RC_QUOTA_EXCEEDED);
        return SS_OK;
    }
    int existed = 0;
    int rc = mqtt_session_sub_set(s, filter, len, options, sub_id, &existed);
    if (rc)
        return rc;
    mqtt_session_record_sub(s, mqtt_session_sub_find(s, filter, len));
    uint8_t granted = options & MQTT_SUBOPT_QOS_MASK;
    *reason = granted;
    /* Retain handling: 0 sends the retained messages, 1 only for a new
     * subscription, 2 never (5.0 §3.8.3.1); a shared subscription gets
     * none (5.0 §4.8.2). */
    unsigned handling = (options & MQTT_SUBOPT_RETAIN_HANDLING_MASK) >>
                        MQTT_SUBOPT_RETAIN_HANDLING_SHIFT;
    if (shared || handling == 2 || (handling == 1 && existed) || !c->broker->retain)
        return SS_OK;
    retained_ctx ctx = {.s = s, .qos = granted, .sub_id = sub_id};
    mqtt_retain_match(c->broker->retain, s->org_id, filter, len, clock_now_ms(), on_retained, &ctx);
    return SS_OK;
}

int mqtt_session_unsubscribe(mqtt_conn *c, const char *filter, size_t len, uint8_t *reason)
{
    mqtt_session *s = c->session;
    mqtt_session_sub *sub = s ? mqtt_session_sub_find(s, filter, len) : NULL;
    if (!sub) {
        *reason = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
        return SS_OK;
    }
    mqtt_subs_remove(c->broker->subs, s->org_id, sub->filter, sub->len, s);
    mqtt_persist *p = c->broker->persist;
    if (p && s->stored) {
        int rc = mqtt_persist_sub_del(p, s->org_id, s->client_id, sub->filter, NULL, NULL);
        if (rc)
            mqtt_session_persist_failed("unsubscribe", rc);
    }
    ss_list_remove(&sub->link);
    free(sub);
    s->n_subs--;
    *reason = MQTT_RC_SUCCESS;
    return SS_OK;
}

/* ---- inbound QoS 2 ------------------------------------------------------------------ */

int mqtt_session_qos2_find(const mqtt_session *s, uint16_t packet_id)
{
    for (unsigned i = 0; i < s->n_qos2_in; i++) {
        if (s->qos2_in[i] == packet_id)
            return (int)i;
    }
    return -1;
}

int mqtt_session_qos2_push(mqtt_session *s, uint16_t packet_id)
{
    if (s->n_qos2_in >= SS_MQTT_RECEIVE_MAX)
        return SS_QUOTA;
    if (s->n_qos2_in == s->cap_qos2_in) {
        unsigned cap = s->cap_qos2_in ? s->cap_qos2_in * 2 : 4;
        uint16_t *a = realloc(s->qos2_in, cap * sizeof *a);
        if (!a)
            return SS_NOMEM;
        s->qos2_in = a;
        s->cap_qos2_in = cap;
    }
    s->qos2_in[s->n_qos2_in++] = packet_id;
    return SS_OK;
}

int mqtt_session_inbound_add(mqtt_session *s, uint16_t packet_id, mqtt_persist_done_cb done,
                             void *ctx)
{
    if (mqtt_session_qos2_find(s, packet_id) >= 0)
        return SS_EXISTS;
    int rc = mqtt_session_qos2_push(s, packet_id);
    if (rc)
        return rc;
    mqtt_persist *p = s->broker->persist;
    if (!p || !s->stored) {
        if (done)
            done(ctx, SS_OK);
        return SS_OK;
    }
    rc = mqtt_persist_inbound_put(p, s->org_id, s->client_id, packet_id, done, ctx);
    if (rc)
        s->n_qos2_in--;
    return rc;
}

int mqtt_session_inbound_del(mqtt_session *s, uint16_t packet_id)
{
    int i = mqtt_session_qos2_find(s, packet_id);
    if (i < 0)
        return SS_NOT_FOUND;
    s->qos2_in[i] = s->qos2_in[--s->n_qos2_in];
    mqtt_persist *p = s->broker->persist;
    if (p && s->stored) {
        int rc = mqtt_persist_inbound_del(p, s->org_id, s->client_id, packet_id, NULL, NULL);
        if (rc)
            mqtt_session_persist_failed("PUBREL", rc);
    }
    return SS_OK;
}
