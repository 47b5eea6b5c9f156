/* readings.c — every stored batch, whatever protocol brought it, as
 * messages on readings/<device id> in its org's tree (SPEC §3.6):
 * {"ts":…,"values":{…}}, one per distinct ts of the batch, numbers as the
 * REST API writes them (core/json_out.h), at QoS 1. */
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "ingest/batch_events.h"
#include "mqtt/session.h"

/* ---- readings/<device> ---------------------------------------------------------------- */

typedef struct readings_out {
    mqtt_broker *b;
    const fanout_batch *batch;
    const char *topic;
    size_t topic_len;
} readings_out;

/* batch_events' callback: one message on readings/<device>. A message
 * that cannot be made is logged and the next one tried. */
static int publish_reading_event(void *ctx, int64_t ts, const char *json, size_t len)
{
    (void)ts;
    readings_out *o = ctx;
    mqtt_msg *m = mqtt_msg_new(o->batch->org_id, o->topic, o->topic_len, (const uint8_t *)json,
                               len, 1, 0, NULL, clock_now_ms());
    if (!m) {
        log_error("mqtt", "out of memory: readings not published");
        return 0;
    }
    int matched = 0;
    int rc = mqtt_route(o->b, m, 0, NULL, NULL, &matched);
    if (rc)
        log_warn("mqtt", "readings of a device not published: %s", ss_strerror(rc));
    mqtt_msg_unref(m);
    return 0;
}

static void count_match(void *ctx, const mqtt_sub_entry *e)
{
    (void)e;
    (*(unsigned *)ctx)++;
}

void mqtt_deliver_readings(fanout_sub *sub, const fanout_batch *batch)
{
    mqtt_broker *b = (mqtt_broker *)((char *)sub - offsetof(mqtt_broker, readings));
    if (!b->subs || mqtt_subs_count(b->subs) == 0 || b->stopping)
        return;
    char topic[sizeof "readings/" + SS_ID_LEN];
    int tl = snprintf(topic, sizeof topic, "readings/%s", batch->device_id);
    if (tl < 0 || (size_t)tl >= sizeof topic)
        return;
    /* Nobody listens (the usual case): no message is made. */
    unsigned listeners = 0;
    mqtt_subs_match(b->subs, batch->org_id, topic, (size_t)tl, NULL, count_match, &listeners);
    if (listeners == 0)
        return;
    readings_out o = {.b = b, .batch = batch, .topic = topic, .topic_len = (size_t)tl};
    ss_buf json = SS_BUF_INIT;
    if (batch_events(batch, 0, &json, publish_reading_event, &o))
        log_error("mqtt", "out of memory: readings not published");
    buf_free(&json);
}
