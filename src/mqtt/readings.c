/* readings.c — every stored batch, whatever protocol brought it, as
 * messages on readings/<device id> in its org's tree (SPEC §3.6):
 * {"ts":…,"values":{…}}, one per distinct ts of the batch, numbers as the
 * REST API writes them (core/json_out.h), at QoS 1. */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/json_out.h"
#include "core/log.h"
#include "mqtt/session.h"

/* ---- readings/<device> ---------------------------------------------------------------- */

typedef struct reading_ref {
    const ss_reading *r;
    size_t pos;
} reading_ref;

/* By time, then channel, then arrival: one message per time, and of one
 * channel's readings at one time the last that came is the one told. */
static int reading_cmp(const void *a, const void *b)
{
    const reading_ref *x = a, *y = b;
    if (x->r->ts != y->r->ts)
        return x->r->ts < y->r->ts ? -1 : 1;
    int c = strcmp(x->r->channel, y->r->channel);
    if (c)
        return c;
    return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

/* {"ts":…,"values":{…}} of refs[0..n), all of one ts; channel names need
 * no escaping ([A-Za-z0-9_.-]). */
static int readings_json(ss_buf *out, const reading_ref *refs, size_t n)
{
    buf_reset(out);
    int rc = buf_printf(out, "{\"ts\":%lld,\"values\":{", (long long)refs[0].r->ts);
    const char *sep = "";
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i + 1 < n && strcmp(refs[i].r->channel, refs[i + 1].r->channel) == 0)
            continue;  /* a later reading of the channel follows */
        char num[JSON_OUT_DOUBLE_MAX];
        json_out_double(refs[i].r->value, num);
        rc = buf_printf(out, "%s\"%s\":%s", sep, refs[i].r->channel, num);
        sep = ",";
    }
    return rc ? rc : buf_append_str(out, "}}");
}

static void publish_reading_group(mqtt_broker *b, const fanout_batch *batch, const char *topic,
                                  size_t topic_len, ss_buf *json, const reading_ref *refs,
                                  size_t n)
{
    if (readings_json(json, refs, n)) {
        log_error("mqtt", "out of memory: readings not published");
        return;
    }
    mqtt_msg *m = mqtt_msg_new(batch->org_id, topic, topic_len, (const uint8_t *)json->data,
                               json->len, 1, 0, NULL, clock_now_ms());
    if (!m) {
        log_error("mqtt", "out of memory: readings not published");
        return;
    }
    int matched = 0;
    int rc = mqtt_route(b, m, 0, NULL, NULL, &matched);
    if (rc)
        log_warn("mqtt", "readings of a device not published: %s", ss_strerror(rc));
    mqtt_msg_unref(m);
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
    reading_ref one, *refs = &one;
    if (batch->len > 1 && !(refs = malloc(batch->len * sizeof *refs))) {
        log_error("mqtt", "out of memory: readings not published");
        return;
    }
    for (size_t i = 0; i < batch->len; i++)
        refs[i] = (reading_ref){.r = &batch->readings[i], .pos = i};
    if (batch->len > 1)
        qsort(refs, batch->len, sizeof *refs, reading_cmp);
    ss_buf json = SS_BUF_INIT;
    for (size_t i = 0, j; i < batch->len; i = j) {
        for (j = i + 1; j < batch->len && refs[j].r->ts == refs[i].r->ts; j++)
            ;
        publish_reading_group(b, batch, topic, (size_t)tl, &json, refs + i, j - i);
    }
    buf_free(&json);
    if (refs != &one)
        free(refs);
}
