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
#include "net/err.h"
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

/* The gateway has settled the commit; a datagram is stored whole or
 * dropped whole, and nobody is told. */
static void on_committed(gateway_msg *msg, const gateway_result *r)
{
    udp_ingest *u = msg->data;
    u->in_flight--;
    if (r->status == SS_OK && r->refused == 0) {
        u->stats.stored++;
    } else if (r->status == SS_OK) {
        char why[96];
        snprintf(why, sizeof why,
                 "too_many_channels: a reading would give the device more than %u channels",
                 SS_DEVICE_CHANNELS_MAX);
        udp_refuse(u, NULL, why);
    } else {
        log_warn(UDP_LOG, "commit failed: %s; datagram dropped", ss_strerror(r->status));
        udp_refuse(u, NULL, "the store refused the commit");
    }
    udp_maybe_stopped(u);
}

/* Why a datagram was refused, for the debug log. */
static int udp_fail(ss_parse_error *err, int rc, const char *why)
{
    snprintf(err->message, sizeof err->message, "%s", why);
    return rc;
}

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

/* The device a datagram comes from, by its token line; OUT off: where its
 * lines begin. The gateway has counted a refusal. */
static int udp_sender(udp_ingest *u, const char *d, size_t len, size_t *off,
                      gateway_sender *from, ss_parse_error *err)
{
    size_t token_len = 0;
    if (udp_split_token(d, len, &token_len, off, err)) {
        gateway_refuse(u->opt.gateway, NULL, METRICS_REFUSED_INVALID_TOKEN, 0);
        return SS_AUTH;
    }
    if (gateway_auth_token(u->opt.gateway, d, token_len, from))
        return udp_fail(err, SS_AUTH, "unknown or disabled device token");
    from->protocol = "udp";
    from->gone = METRICS_REFUSED_STORE_UNAVAILABLE;  /* like any failed commit */
    return SS_OK;
}

/* Why the gateway refused a datagram, for the debug log. */
static const char *udp_refusal(udp_ingest *u, int rc, const gateway_sender *from,
                               const gateway_refusal *why)
{
    switch (rc) {
    case SS_BUSY: return "ingest_busy: the device's share of the ingest queue is full";
    case SS_QUOTA: return "quota_exceeded";
    case SS_NOMEM:
        /* Out of memory is a refusal of the datagram here: nobody else is
         * told. */
        if (!why->counted)
            gateway_refuse(u->opt.gateway, from, METRICS_REFUSED_STORE_UNAVAILABLE, 0);
        return "out of memory";
    default: return why->err.message;
    }
}

static void udp_datagram(udp_ingest *u, const char *d, size_t len, unsigned flags,
                         const struct sockaddr *peer)
{
    u->stats.received++;
    metrics_bytes(u->opt.metrics, METRICS_UDP, len, 0);
    if (len == 0) {
        gateway_refuse(u->opt.gateway, NULL, METRICS_REFUSED_BAD_READING, 0);
        udp_refuse(u, peer, "empty datagram");
        return;
    }
    if ((flags & UV_UDP_PARTIAL) || len > UDP_INGEST_DATAGRAM_MAX) {
        gateway_refuse(u->opt.gateway, NULL, METRICS_REFUSED_TOO_LARGE, 0);
        udp_refuse(u, peer, "datagram over UDP_INGEST_DATAGRAM_MAX bytes");
        return;
    }
    size_t off = 0;
    ss_parse_error err = {0};
    gateway_sender from = {0};
    if (udp_sender(u, d, len, &off, &from, &err)) {
        udp_refuse(u, peer, err.message);
        return;
    }
    if (u->opt.meter)
        meter_bytes(u->opt.meter, NULL, from.dev.org_id, "udp", len, 0);
    gateway_request rq = {.body = {.format = GATEWAY_LINES, .data = d + off, .len = len - off},
                          .ack = on_committed, .data = u};
    gateway_msg *msg;
    gateway_refusal why;
    int rc = gateway_ingest(u->opt.gateway, &from, &rq, clock_now_ms(), &msg, &why);
    if (rc == SS_OK)
        u->in_flight++;
    else
        udp_refuse(u, peer, udp_refusal(u, rc, &from, &why));
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
        log_debug(UDP_LOG, "receive failed: %s", ss_strerror(net_err_from_uv((int)nread)));
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
        rc = net_err_from_uv(uv_udp_recv_start(&u->udp, on_alloc, on_recv));
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
