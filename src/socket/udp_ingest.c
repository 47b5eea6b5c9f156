/* udp_ingest.c — UDP ingest (SPEC §3.5).
 *
 * Each datagram is handled whole on the loop thread the moment it arrives:
 * token line, then every line parsed with parse_line_readings (which is all
 * or nothing), then one ingest item. Nothing is sent back: a device on a
 * metered link chose UDP to save the bytes of an answer. */
#include "socket/udp_ingest.h"

#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"
#include "ingest/parse.h"
#include "net/listen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UDP_LOG "udp"
/* One byte past the limit: a datagram that fills the buffer is over it
 * (a still larger one arrives cut, flagged UV_UDP_PARTIAL). */
#define UDP_RECV_BUF_SIZE (UDP_INGEST_DATAGRAM_MAX + 1u)

struct udp_ingest {
    uv_udp_t udp;
    udp_ingest_options opt;
    udp_ingest_stats stats;
    size_t in_flight;
    int stopping;
    int handle_closed;
    void (*stopped)(void *arg);
    void *stopped_arg;
    char buf[UDP_RECV_BUF_SIZE];  /* one datagram at a time: the loop thread's */
};

/* One datagram on its way to the store. */
typedef struct udp_item {
    ingest_item item;
    udp_ingest *owner;
    quota_ref quota;    /* found at the reservation, used again at its end */
} udp_item;

static void udp_maybe_stopped(udp_ingest *u)
{
    if (u->stopping && u->handle_closed && u->in_flight == 0 && u->stopped)
        u->stopped(u->stopped_arg);
}

static void udp_refuse(udp_ingest *u, const struct sockaddr *from, const char *why)
{
    u->stats.refused++;
    if (!log_enabled(LOG_DEBUG))
        return;
    char peer[64] = "?";
    if (from)
        net_addr_format(from, peer, sizeof peer);
    log_debug(UDP_LOG, "refused datagram from %s (%" PRIu64 " refused so far): %s", peer,
              u->stats.refused, why);
}

/* A datagram the store refused whole for the channel limit: a bad
 * reading, as the parser's refusals are. */
static void udp_refuse_channels(udp_ingest *u, udp_item *it)
{
    metrics_readings_refused(u->opt.metrics, METRICS_REFUSED_BAD_READING, 1);
    if (u->opt.meter)
        meter_refused(u->opt.meter, NULL, it->item.org_id, "udp", it->item.readings.len);
    char why[96];
    snprintf(why, sizeof why,
             "too_many_channels: a reading would give the device more than %u channels",
             SS_DEVICE_CHANNELS_MAX);
    udp_refuse(u, NULL, why);
}

static void on_committed(ingest_item *item, int status)
{
    udp_item *it = (udp_item *)item;
    udp_ingest *u = it->owner;
    int stored = status == SS_OK && it->item.readings_refused == 0;
    u->in_flight--;
    if (u->opt.quotas)
        quota_finish_readings(u->opt.quotas, it->item.org_id, (int64_t)it->item.readings.len,
                              stored, clock_now_ms(), &it->quota);
    if (stored) {
        u->stats.stored++;
    } else if (status == SS_OK) {
        udp_refuse_channels(u, it);
    } else {
        log_warn(UDP_LOG, "commit failed: %s; datagram dropped", ss_strerror(status));
        metrics_readings_refused(u->opt.metrics, METRICS_REFUSED_STORE_UNAVAILABLE,
                                 it->item.readings.len);
        if (u->opt.meter)
            meter_refused(u->opt.meter, NULL, it->item.org_id, "udp", it->item.readings.len);
        udp_refuse(u, NULL, "the store refused the commit");
    }
    readings_free(&it->item.readings);
    free(it);
    udp_maybe_stopped(u);
}

/* The metrics reason of a datagram udp_make_item refused. */
static metrics_reason udp_reason(int rc)
{
    switch (rc) {
    case SS_AUTH: return METRICS_REFUSED_INVALID_TOKEN;
    case SS_TOO_LARGE: return METRICS_REFUSED_TOO_LARGE;
    case SS_NOMEM: return METRICS_REFUSED_STORE_UNAVAILABLE;
    case SS_BUSY: return METRICS_REFUSED_INGEST_BUSY;
    default: return METRICS_REFUSED_BAD_READING;
    }
}

/* Why a datagram was refused, for the debug log. */
static int udp_fail(ss_parse_error *err, int rc, const char *why)
{
    snprintf(err->message, sizeof err->message, "%s", why);
    return rc;
}

/* Splits off the token line: its length, and where the lines begin. */
static int udp_split_token(const char *d, size_t len, size_t *token_len, size_t *body_off,
                           ss_parse_error *err)
{
    const char *nl = memchr(d, '\n', len);
    if (!nl)
        return udp_fail(err, SS_AUTH, "no token line");
    size_t n = (size_t)(nl - d);
    *body_off = n + 1;
    if (n > 0 && d[n - 1] == '\r')
        n--;
    if (n == 0 || n >= SECRET_TEXT_MAX)
        return udp_fail(err, SS_AUTH, "the token line is empty or too long");
    *token_len = n;
    return SS_OK;
}

/* Authenticates and parses one datagram into a new item. 0, or an error
 * with err->message saying why (no item is made). OUT org_id: the device's
 * org once the token is known ("" before), so a refusal is its usage. */
static int udp_make_item(udp_ingest *u, const char *d, size_t len, udp_item **out,
                         ss_parse_error *err, char org_id[SS_ID_LEN + 1])
{
    size_t token_len = 0, off = 0;
    int rc = udp_split_token(d, len, &token_len, &off, err);
    if (rc)
        return rc;
    uint8_t hash[SS_SECRET_HASH_BYTES];
    device_cache_entry dev;
    secret_hash(d, token_len, hash);
    if (device_cache_lookup(u->opt.devices, hash, &dev) || dev.disabled)
        return udp_fail(err, SS_AUTH, "unknown or disabled device token");
    memcpy(org_id, dev.org_id, SS_ID_LEN + 1);
    /* A flooding device is refused before its lines cost a parse. */
    if (!ingest_queue_has_room(u->opt.queue, dev.org_id, dev.device_id))
        return udp_fail(err, SS_BUSY, "ingest_busy: the device's share of the ingest queue is full");
    udp_item *it = calloc(1, sizeof *it);
    if (!it)
        return udp_fail(err, SS_NOMEM, "out of memory");
    rc = parse_line_readings(d + off, len - off, clock_now_ms(), SS_INGEST_READINGS_MAX,
                             &it->item.readings, err);
    if (rc) {
        readings_free(&it->item.readings);
        free(it);
        return rc;
    }
    memcpy(it->item.device_id, dev.device_id, sizeof it->item.device_id);
    memcpy(it->item.org_id, dev.org_id, sizeof it->item.org_id);
    it->item.protocol = "udp";
    it->item.received_at = clock_now_ms();
    it->item.done = on_committed;
    it->item.data = u;
    it->owner = u;
    *out = it;
    return SS_OK;
}

/* The org's or device's share of the ingest queue is full (SPEC §4): the
 * datagram is dropped and counted, its quota reservation given back. */
static void udp_refuse_busy(udp_ingest *u, udp_item *it, const struct sockaddr *from)
{
    if (u->opt.quotas)
        quota_finish_readings(u->opt.quotas, it->item.org_id, (int64_t)it->item.readings.len, 0,
                              clock_now_ms(), &it->quota);
    metrics_readings_refused(u->opt.metrics, METRICS_REFUSED_INGEST_BUSY, it->item.readings.len);
    if (u->opt.meter)
        meter_refused(u->opt.meter, NULL, it->item.org_id, "udp", it->item.readings.len);
    readings_free(&it->item.readings);
    free(it);
    udp_refuse(u, from, "ingest_busy: the device's share of the ingest queue is full");
}

/* Reserves the datagram's readings against its org's quotas (SPEC §5). */
static int udp_over_quota(udp_ingest *u, udp_item *it)
{
    int64_t now = clock_now_ms();
    if (!u->opt.quotas)
        return 0;
    return quota_reserve_readings(u->opt.quotas, it->item.org_id,
                                  (int64_t)it->item.readings.len, now, &it->quota);
}

static void udp_datagram(udp_ingest *u, const char *d, size_t len, unsigned flags,
                         const struct sockaddr *from)
{
    u->stats.received++;
    metrics_bytes(u->opt.metrics, METRICS_UDP, len, 0);
    if (len == 0) {
        metrics_readings_refused(u->opt.metrics, METRICS_REFUSED_BAD_READING, 1);
        udp_refuse(u, from, "empty datagram");
        return;
    }
    if ((flags & UV_UDP_PARTIAL) || len > UDP_INGEST_DATAGRAM_MAX) {
        metrics_readings_refused(u->opt.metrics, METRICS_REFUSED_TOO_LARGE, 1);
        udp_refuse(u, from, "datagram over UDP_INGEST_DATAGRAM_MAX bytes");
        return;
    }
    udp_item *it = NULL;
    ss_parse_error err = {0};
    char org_id[SS_ID_LEN + 1] = "";
    int rc = udp_make_item(u, d, len, &it, &err, org_id);
    if (rc) {
        metrics_readings_refused(u->opt.metrics, udp_reason(rc), 1);
        if (u->opt.meter && org_id[0]) {
            meter_bytes(u->opt.meter, NULL, org_id, "udp", len, 0);
            meter_refused(u->opt.meter, NULL, org_id, "udp", 0);
        }
        udp_refuse(u, from, err.message);
        return;
    }
    /* The token names the org: from here on the datagram is its usage. */
    if (u->opt.meter)
        meter_bytes(u->opt.meter, NULL, it->item.org_id, "udp", len, 0);
    if (udp_over_quota(u, it)) {
        metrics_readings_refused(u->opt.metrics, METRICS_REFUSED_QUOTA_EXCEEDED,
                                 it->item.readings.len);
        if (u->opt.meter)
            meter_refused(u->opt.meter, NULL, it->item.org_id, "udp", it->item.readings.len);
        readings_free(&it->item.readings);
        free(it);
        udp_refuse(u, from, "quota_exceeded");
        return;
    }
    it->item.held_bytes = sizeof *it - sizeof it->item;
    if (ingest_queue_submit(u->opt.queue, &it->item) != SS_OK) {
        udp_refuse_busy(u, it, from);
        return;
    }
    u->in_flight++;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    udp_ingest *u = h->data;
    *buf = uv_buf_init(u->buf, sizeof u->buf);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    udp_ingest *u = h->data;
    if (nread < 0) {
        log_debug(UDP_LOG, "receive failed: %s", uv_strerror((int)nread));
        return;
    }
    /* nread 0 with no address: the socket is drained, not a datagram. */
    if (!from || u->stopping)
        return;
    udp_datagram(u, buf->base, (size_t)nread, flags, from);
}

int udp_ingest_start(uv_loop_t *loop, const char *addr, const udp_ingest_options *opt,
                     udp_ingest **out, char *bound, size_t cap)
{
    net_addr na;
    if (net_addr_parse(addr, &na) || na.off)
        return SS_INVAL;
    udp_ingest *u = calloc(1, sizeof *u);
    if (!u)
        return SS_NOMEM;
    u->opt = *opt;
    u->udp.data = u;
    *out = u;
    int rc = net_udp_bind(loop, &u->udp, &na, bound, cap);
    if (rc == 0)
        rc = uv_udp_recv_start(&u->udp, on_alloc, on_recv);
    if (rc) {
        if (!uv_is_closing((uv_handle_t *)&u->udp))
            uv_close((uv_handle_t *)&u->udp, NULL);
        u->stopping = 1;
    }
    return rc;
}

static void on_closed(uv_handle_t *h)
{
    udp_ingest *u = h->data;
    u->handle_closed = 1;
    udp_maybe_stopped(u);
}

void udp_ingest_stop(udp_ingest *u, void (*done)(void *arg), void *arg)
{
    u->stopped = done;
    u->stopped_arg = arg;
    u->stopping = 1;
    if (uv_is_closing((uv_handle_t *)&u->udp)) {
        u->handle_closed = 1;
        udp_maybe_stopped(u);
        return;
    }
    uv_udp_recv_stop(&u->udp);
    uv_close((uv_handle_t *)&u->udp, on_closed);
}

void udp_ingest_free(udp_ingest *u)
{
    free(u);
}

uint64_t udp_ingest_refused(const udp_ingest *u)
{
    return u->stats.refused;
}

void udp_ingest_get_stats(const udp_ingest *u, udp_ingest_stats *out)
{
    *out = u->stats;
}
