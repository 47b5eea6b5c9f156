/* subscribe.c — SUBSCRIBE and UNSUBSCRIBE (SPEC §3.6): each filter checked
 * (its wildcards, the ACL in the client's own tree) before the session
 * takes it; SUBACK / UNSUBACK with a reason per filter. */
#include "mqtt/conn_internal.h"

#include "core/err.h"
#include "mqtt/acl.h"
#include "mqtt/topic.h"

#include <stdint.h>
#include <stdlib.h>

/* 3.1.1 knows one failure code. */
static uint8_t suback_code(const mqtt_conn *c, uint8_t r)
{
    return c->version != MQTT_V5 && r >= MQTT_RC_UNSPECIFIED ? MQTT_311_SUBACK_FAILURE : r;
}

/* One filter of a SUBSCRIBE. OUT reason. 1 when the connection ended (a
 * protocol error), else 0. */
static int conn_subscribe_one(mqtt_conn *c, const mqtt_str *f, uint8_t options, uint32_t sub_id,
                              uint8_t *reason)
{
    int shared = 0;
    char filter[MQTT_ACL_TOPIC_CAP];
    size_t len = 0;
    if (!mqtt_topic_filter_valid(f->p, f->len, &shared) ||
        mqtt_acl_resolve(&c->who, f->p, f->len, filter, sizeof filter, &len) != SS_OK) {
        *reason = suback_code(c, MQTT_RC_TOPIC_FILTER_INVALID);
        return 0;
    }
    if (shared && (options & MQTT_SUBOPT_NO_LOCAL)) {
        mqtt_conn_refuse(c, MQTT_RC_PROTOCOL_ERROR, "no-local on a shared subscription");
        return 1;
    }
    if (mqtt_acl_check(&c->who, MQTT_ACL_SUBSCRIBE, filter, len) != SS_OK) {
        *reason = suback_code(c, MQTT_RC_NOT_AUTHORIZED);
        return 0;
    }
    *reason = MQTT_RC_UNSPECIFIED;
    if (c->session && mqtt_session_subscribe(c, filter, len, options, sub_id, reason) != SS_OK)
        *reason = MQTT_RC_UNSPECIFIED;
    *reason = suback_code(c, *reason);
    return mqtt_conn_ended(c);
}

/* SUBACK goes out before the retained messages the subscriptions sent
 * (they were queued behind the mark). */
void mqtt_subscribe_in(mqtt_conn *c, const mqtt_packet *p)
{
    const mqtt_subscribe *s = &p->subscribe;
    uint8_t *reasons = malloc(s->count);
    if (!reasons) {
        mqtt_conn_close_now(c, "error");
        return;
    }
    uint32_t sub_id = s->props.n_sub_ids > 0 ? s->props.sub_ids[0] : 0;
    size_t mark = c->out.len, pos = 0;
    uint32_t n = 0;
    mqtt_str f;
    uint8_t options;
    while (n < s->count && mqtt_filter_next(p, &pos, &f, &options)) {
        if (conn_subscribe_one(c, &f, options, sub_id, &reasons[n])) {
            free(reasons);
            return;
        }
        n++;
    }
    mqtt_packet a = {.type = MQTT_SUBACK};
    a.suback.packet_id = s->packet_id;
    a.suback.reasons = reasons;
    a.suback.count = n;
    if (c->out.len == mark || c->expiry_s != 0)
        /* A persistent session's SUBACK waits for its subscriptions'
         * commit, behind the retained messages they sent (a server may
         * send matching PUBLISHes before the SUBACK, MQTT-3.8.4). */
        mqtt_conn_queue_committed(c, &a);
    else
        /* Retained messages went out behind the mark: a clean session's
         * SUBACK, with nothing to wait for, goes in front of them. */
        mqtt_conn_queue_at(c, &a, mark < c->out.len ? mark : SIZE_MAX);
    free(reasons);
}

void mqtt_unsubscribe_in(mqtt_conn *c, const mqtt_packet *p)
{
    const mqtt_subscribe *s = &p->subscribe;
    uint8_t *reasons = malloc(s->count);
    if (!reasons) {
        mqtt_conn_close_now(c, "error");
        return;
    }
    size_t pos = 0;
    uint32_t n = 0;
    mqtt_str f;
    uint8_t options;
    while (n < s->count && mqtt_filter_next(p, &pos, &f, &options)) {
        char filter[MQTT_ACL_TOPIC_CAP];
        size_t len = 0;
        uint8_t r = MQTT_RC_TOPIC_FILTER_INVALID;
        if (mqtt_topic_filter_valid(f.p, f.len, NULL) &&
            mqtt_acl_resolve(&c->who, f.p, f.len, filter, sizeof filter, &len) == SS_OK) {
            r = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
            if (c->session && mqtt_session_unsubscribe(c, filter, len, &r) != SS_OK)
                r = MQTT_RC_UNSPECIFIED;
        }
        reasons[n++] = r;
    }
    mqtt_packet a = {.type = MQTT_UNSUBACK};
    a.suback.packet_id = s->packet_id;
    a.suback.reasons = reasons;
    a.suback.count = n;
    mqtt_conn_queue_committed(c, &a);
    free(reasons);
}

