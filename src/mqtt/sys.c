/* sys.c — the broker's own counts on $SYS/broker/…, in the Mosquitto
 * habit, for the superadmin (SPEC §3.6: broker topics are theirs alone).
 *
 * Every SS_MQTT_SYS_INTERVAL_MS, and when the superadmin signs in, each
 * count is published at QoS 0 in the superadmin's tree (MQTT_SYS_TREE,
 * which no org's client reaches): kept as the retained message a new
 * subscriber gets at once, and sent to those subscribed. They are counts
 * of the whole broker only, never an org's name, id or topic. Retained
 * here means in memory only: they are made again at every start, so the
 * store never holds them. */
#include "mqtt/broker_internal.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/version.h"
#include "mqtt/session.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define SYS_LOG "mqtt"
/* Room for a count's text ("18446744073709551615 seconds"). */
#define SYS_VALUE_CAP 48u

/* One count: the retained copy in the tree, and the live one to
 * subscribers (retain flag clear, as for any message routed when
 * published). */
static void sys_put(mqtt_broker *b, const char *topic, const char *value, int64_t now)
{
    size_t tlen = strlen(topic), vlen = strlen(value);
    mqtt_msg *kept = mqtt_msg_new(MQTT_SYS_TREE, topic, tlen, (const uint8_t *)value, vlen, 0, 1,
                                  NULL, now);
    mqtt_msg *live = mqtt_msg_new(MQTT_SYS_TREE, topic, tlen, (const uint8_t *)value, vlen, 0, 0,
                                  NULL, now);
    int rc = kept && live ? SS_OK : SS_NOMEM;
    if (rc == SS_OK)
        rc = mqtt_retain_set(b->retain, kept);
    int matched = 0;
    if (rc == SS_OK)
        rc = mqtt_route(b, live, 0, NULL, NULL, &matched);
    if (rc)
        log_warn(SYS_LOG, "%s not published: %s", topic, ss_strerror(rc));
    mqtt_msg_unref(kept);
    mqtt_msg_unref(live);
}

static void sys_put_u64(mqtt_broker *b, const char *topic, uint64_t n, int64_t now)
{
    char v[SYS_VALUE_CAP];
    snprintf(v, sizeof v, "%" PRIu64, n);
    sys_put(b, topic, v, now);
}

/* Messages waiting in every session's queue or in flight to its client. */
static uint64_t sys_queued(const mqtt_broker *b)
{
    const mqtt_sessions *t = mqtt_sessions_of(b);
    uint64_t n = 0;
    for (size_t i = 0; t && i < t->n_buckets; i++)
        for (const mqtt_session *s = t->buckets[i]; s; s = s->next)
            n += s->out ? (uint64_t)s->out->n_queued + s->out->n_in_flight : 0;
    return n;
}

void mqtt_sys_publish(mqtt_broker *b)
{
    if (b->stopping || !b->retain)
        return;
    int64_t now = clock_now_ms();
    const mqtt_sessions *t = mqtt_sessions_of(b);
    char v[SYS_VALUE_CAP];
    sys_put(b, "$SYS/broker/version", "sensorspace " SENSORSPACE_VERSION, now);
    snprintf(v, sizeof v, "%" PRId64 " seconds", (now - b->started_ms) / 1000);
    sys_put(b, "$SYS/broker/uptime", v, now);
    sys_put_u64(b, "$SYS/broker/clients/connected", mqtt_broker_connections(b), now);
    sys_put_u64(b, "$SYS/broker/clients/total", t ? t->count : 0, now);
    sys_put_u64(b, "$SYS/broker/messages/received", b->msgs_in, now);
    sys_put_u64(b, "$SYS/broker/messages/sent", b->msgs_out, now);
    sys_put_u64(b, "$SYS/broker/subscriptions/count", mqtt_subs_count(b->subs), now);
    sys_put_u64(b, "$SYS/broker/store/messages/count", sys_queued(b), now);
    sys_put_u64(b, "$SYS/broker/publish/messages/dropped", t ? t->dropped : 0, now);
    sys_put_u64(b, "$SYS/broker/load/ingest/queued",
                b->opt.queue ? ingest_queue_depth(b->opt.queue) : 0, now);
    /* Last, so that it counts the others. */
    sys_put_u64(b, "$SYS/broker/retained messages/count", mqtt_retain_total(b->retain), now);
}

static void on_sys_timer(uv_timer_t *h)
{
    mqtt_sys_publish(h->data);
}

void mqtt_sys_start(mqtt_broker *b)
{
    b->started_ms = clock_now_ms();
    uv_timer_init(b->loop, &b->sys_timer);
    b->sys_timer.data = b;
    mqtt_sys_publish(b);
    uv_timer_start(&b->sys_timer, on_sys_timer, SS_MQTT_SYS_INTERVAL_MS, SS_MQTT_SYS_INTERVAL_MS);
}

void mqtt_sys_stop(mqtt_broker *b)
{
    uv_close((uv_handle_t *)&b->sys_timer, NULL);
}
