/* gateway.c — authenticate, parse, admit, reserve, submit; settle, then
 * acknowledge. The only code that counts an ingest message. */
#include "ingest/gateway.h"

#include <stdlib.h>
#include <string.h>

#include "aaa/access.h"
#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "store/store.h"

struct gateway {
    gateway_options opt;
};

int gateway_new(const gateway_options *opt, gateway **out)
{
    gateway *gw = calloc(1, sizeof *gw);
    if (!gw)
        return SS_NOMEM;
    gw->opt = *opt;
    *out = gw;
    return SS_OK;
}

void gateway_free(gateway *gw)
{
    free(gw);
}

/* ---- counting ---------------------------------------------------------------- */

/* One refused message: `counted` readings in the metrics (a message that
 * could not be read counts as one), `readings` in the sender's usage. */
static void count_refused(gateway *gw, const char *org_id, const char *protocol,
                          meter_session *session, metrics_reason why, size_t counted,
                          size_t readings)
{
    metrics_readings_refused(gw->opt.metrics, why, counted ? counted : 1);
    if (gw->opt.meter && org_id)
        meter_refused(gw->opt.meter, session, org_id, protocol, readings);
}

void gateway_refuse(gateway *gw, const gateway_sender *from, metrics_reason why,
                    size_t readings)
{
    if (!from) {
        count_refused(gw, NULL, NULL, NULL, why, readings, readings);
        return;
    }
    count_refused(gw, from->dev.org_id, from->protocol, from->session, why, readings, readings);
}

/* ---- who sends ---------------------------------------------------------------- */

int gateway_auth_token(gateway *gw, const char *token, size_t len, gateway_sender *out)
{
    uint8_t hash[SS_SECRET_HASH_BYTES];
    if (len > 0 && len < SECRET_TEXT_MAX) {
        secret_hash(token, len, hash);
        if (device_cache_lookup(gw->opt.devices, hash, &out->dev) == SS_OK && !out->dev.disabled)
            return SS_OK;
    }
    gateway_refuse(gw, NULL, METRICS_REFUSED_INVALID_TOKEN, 0);
    return SS_AUTH;
}

int gateway_auth_key(gateway *gw, const gateway_key *key, const char *device_id,
                     gateway_sender *out)
{
    device_cache_entry dev;
    if (strnlen(device_id, SS_ID_LEN + 1) > SS_ID_LEN ||
        device_cache_find(gw->opt.devices, device_id, &dev) != SS_OK)
        return SS_NOT_FOUND;
    int rc = aaa_key_may_write(gw->opt.quotas, key->org_id, key->scopes, dev.org_id);
    if (rc)
        return rc;
    if (dev.disabled)
        return SS_CONFLICT;
    out->dev = dev;
    return SS_OK;
}

/* ---- one message ---------------------------------------------------------------- */

static metrics_reason parse_reason(int rc)
{
    switch (rc) {
    case SS_TOO_LARGE: return METRICS_REFUSED_TOO_LARGE;
    case SS_NOMEM: return METRICS_REFUSED_STORE_UNAVAILABLE;
    default: return METRICS_REFUSED_BAD_READING;
    }
}

static int parse_body(const gateway_body *b, int64_t now_ms, ss_readings *out,
                      ss_parse_error *err)
{
    const char *data = b->data ? b->data : "";
    switch (b->format) {
    case GATEWAY_JSON:
        return parse_json_readings(data, b->len, now_ms, SS_INGEST_READINGS_MAX, out, err);
    case GATEWAY_LINES:
        return parse_line_readings(data, b->len, now_ms, SS_INGEST_READINGS_MAX, out, err);
    case GATEWAY_LINE:
        return parse_line(data, b->len, now_ms, out, err);
    case GATEWAY_VALUE:
        return parse_value_reading(b->channel, b->channel_len, data, b->len, now_ms, out, err);
    }
    return SS_INVAL;
}

int gateway_parse(gateway *gw, const gateway_sender *from, const gateway_body *body,
                  int64_t now_ms, ss_readings *out, ss_parse_error *err)
{
    int rc = parse_body(body, now_ms, out, err);
    if (rc != SS_OK)
        gateway_refuse(gw, from, parse_reason(rc), 0);
    return rc;
}

/* 0 when the ingest queue has room for one more message of the sender;
 * SS_BUSY (counted as a refused message) when a submit would surely be
 * refused, so that a flooding sender is refused before it costs a parse. */
static int gateway_admit(gateway *gw, const gateway_sender *from)
{
    if (ingest_queue_has_room(gw->opt.queue, from->dev.org_id, from->dev.device_id))
        return SS_OK;
    gateway_refuse(gw, from, METRICS_REFUSED_INGEST_BUSY, 0);
    return SS_BUSY;
}

/* Ends the reservation: stored readings count for today, refused ones are
 * given back. */
static void settle_quota(gateway *gw, gateway_msg *m, size_t stored, size_t refused,
                         int64_t now_ms)
{
    if (!gw->opt.quotas)
        return;
    if (stored)
        quota_finish_readings(gw->opt.quotas, m->item.org_id, (int64_t)stored, 1, now_ms,
                              &m->quota);
    if (refused)
        quota_finish_readings(gw->opt.quotas, m->item.org_id, (int64_t)refused, 0, now_ms,
                              &m->quota);
}

/* A message of groups (TCP lines) is one message stored, each group the
 * store refused for the channel limit one message refused without
 * readings; a message of one group is refused whole, with its readings. */
static void settle_channel_refusals(gateway *gw, gateway_msg *m, size_t stored)
{
    const ingest_item *it = &m->item;
    if (!it->group_ends) {
        count_refused(gw, it->org_id, it->protocol, m->session, METRICS_REFUSED_BAD_READING, 1,
                      it->readings.len);
        return;
    }
    for (size_t g = 0; g < it->n_groups; g++) {
        if (it->group_refused[g])
            count_refused(gw, it->org_id, it->protocol, m->session, METRICS_REFUSED_BAD_READING,
                          1, 0);
    }
    if (gw->opt.meter)
        meter_stored(gw->opt.meter, m->session, stored);
}

static void on_done(ingest_item *item, int status)
{
    gateway_msg *m = (gateway_msg *)item;
    gateway *gw = m->gw;
    size_t n = item->readings.len;
    gateway_result r = {.status = status};
    r.refused = status == SS_OK ? item->readings_refused : n;
    r.stored = n - r.refused;
    settle_quota(gw, m, r.stored, r.refused, clock_now_ms());
    if (r.stored)
        metrics_readings_stored(gw->opt.metrics, metrics_protocol_parse(item->protocol),
                                r.stored);
    if (status != SS_OK) {
        /* A device deleted while its readings waited counts as the
         * protocol answers it. */
        count_refused(gw, item->org_id, item->protocol, m->session,
                      status == SS_NOT_FOUND ? m->gone : METRICS_REFUSED_STORE_UNAVAILABLE,
                      n, n);
    } else if (r.refused) {
        settle_channel_refusals(gw, m, r.stored);
    } else if (gw->opt.meter) {
        meter_stored(gw->opt.meter, m->session, r.stored);
    }
    int owned = m->owned;
    m->ack(m, &r);
    if (owned) {
        readings_free(&item->readings);
        free(m);
    }
}

static int reserve_quota(gateway *gw, const gateway_sender *from, gateway_msg *m,
                         int64_t now_ms)
{
    if (!gw->opt.quotas)
        return SS_OK;
    m->quota = from->quota ? *from->quota : (quota_ref){0};
    int rc = quota_reserve_readings(gw->opt.quotas, from->dev.org_id,
                                    (int64_t)m->item.readings.len, now_ms, &m->quota);
    if (from->quota)
        *from->quota = m->quota;
    return rc;
}

int gateway_reserve(gateway *gw, const char *org_id, const char *protocol, size_t n,
                    int64_t now_ms, quota_ref *ref)
{
    if (!gw->opt.quotas || n == 0)
        return SS_OK;
    if (quota_reserve_readings(gw->opt.quotas, org_id, (int64_t)n, now_ms, ref) == SS_OK)
        return SS_OK;
    count_refused(gw, org_id, protocol, NULL, METRICS_REFUSED_QUOTA_EXCEEDED, n, n);
    return SS_QUOTA;
}

void gateway_release(gateway *gw, const char *org_id, size_t n, int64_t now_ms, quota_ref *ref)
{
    if (gw->opt.quotas && n > 0)
        quota_finish_readings(gw->opt.quotas, org_id, (int64_t)n, 0, now_ms, ref);
}

int gateway_submit(gateway *gw, const gateway_sender *from, gateway_msg *m, int64_t now_ms)
{
    ingest_item *it = &m->item;
    if (m->prepaid)
        m->quota = from->quota ? *from->quota : (quota_ref){0};
    else if (reserve_quota(gw, from, m, now_ms) != SS_OK) {
        gateway_refuse(gw, from, METRICS_REFUSED_QUOTA_EXCEEDED, it->readings.len);
        return SS_QUOTA;
    }
    memcpy(it->device_id, from->dev.device_id, sizeof it->device_id);
    memcpy(it->org_id, from->dev.org_id, sizeof it->org_id);
    it->protocol = from->protocol;
    it->received_at = now_ms;
    it->done = on_done;
    m->gw = gw;
    m->session = from->session;
    m->gone = from->gone;
    /* The record is committed with the readings it brings (the store adds
     * them to this snapshot): a kill -9 a moment after the answer still
     * leaves it, ended "crash" at the next start. */
    it->session = NULL;
    if (from->session && from->session->open) {
        m->snapshot = from->session->rec;
        it->session = &m->snapshot;
    }
    if (ingest_queue_submit(gw->opt.queue, it) != SS_OK) {
        if (!m->prepaid)
            settle_quota(gw, m, 0, it->readings.len, now_ms);
        return SS_BUSY;
    }
    return SS_OK;
}

/* ---- the one entry point ------------------------------------------------------ */

int gateway_ingest(gateway *gw, const gateway_sender *from, const gateway_request *rq,
                   int64_t now_ms, gateway_msg **out, gateway_refusal *why)
{
    *why = (gateway_refusal){.counted = 1};
    /* A flooding sender is refused before its body costs a parse. */
    if (gateway_admit(gw, from) != SS_OK)
        return SS_BUSY;
    gateway_msg *m = calloc(1, sizeof *m);
    if (!m) {
        why->counted = 0;
        return SS_NOMEM;
    }
    int rc = gateway_parse(gw, from, &rq->body, now_ms, &m->item.readings, &why->err);
    if (rc == SS_OK) {
        m->ack = rq->ack;
        m->data = rq->data;
        m->owned = 1;
        m->item.held_bytes = sizeof *m - sizeof m->item + rq->held_bytes;
        why->readings = m->item.readings.len;
        rc = gateway_submit(gw, from, m, now_ms);
        if (rc == SS_BUSY)
            gateway_refuse(gw, from, METRICS_REFUSED_INGEST_BUSY, why->readings);
    }
    if (rc != SS_OK) {
        readings_free(&m->item.readings);
        free(m);
        return rc;
    }
    why->readings = 0;
    *out = m;
    return SS_OK;
}

void gateway_wait(gateway *gw, ingest_waiter *w, const gateway_sender *from)
{
    ingest_queue_wait(gw->opt.queue, w, from->dev.org_id);
}

void gateway_cancel_wait(gateway *gw, ingest_waiter *w)
{
    ingest_queue_cancel_wait(gw->opt.queue, w);
}
