/* udp_ingest.h — UDP ingest (SPEC §3.5): one datagram
 * "<token>\n<line>\n[<line>\n…]" in SPEC §3.2 line format, no reply.
 *
 * A datagram is stored whole or not at all: every line is parsed before
 * anything is submitted, and its readings go to the ingest queue as one
 * item (one transaction). Anything wrong (unknown or disabled token, a bad
 * line, no readings, over the size limit, a channel past the device's
 * limit, the device's or org's share of the ingest queue full, the store
 * refusing) drops the whole datagram and counts it as refused: UDP has no
 * back-pressure, so a sender faster than its share is dropped, alone.
 * docs/protocols.md is the device maker's description. */
#ifndef SS_UDP_INGEST_H
#define SS_UDP_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "aaa/meter.h"
#include "core/metrics.h"
#include "ingest/gateway.h"

/* The largest UDP payload IPv4 can carry (65535 - 20 IP - 8 UDP header).
 * IPv6 could carry 20 bytes more; they are refused, so a device gets the
 * same answer on either. */
#define UDP_INGEST_DATAGRAM_MAX 65507u

typedef struct udp_ingest udp_ingest;

typedef struct udp_ingest_options {
    gateway *gateway;         /* required: tokens, parsing, the queue, accounting */
    meter *meter;             /* optional: bytes per org (no session records: SPEC §5) */
    metrics *metrics;         /* may be NULL: nothing is counted */
} udp_ingest_options;

/* What happened to the datagrams received so far. Loop thread only. */
typedef struct udp_ingest_stats {
    uint64_t received;   /* datagrams read from the socket */
    uint64_t stored;     /* committed whole */
    uint64_t refused;    /* dropped whole: bad token, bad line, too large,
                            too many channels, ingest queue share full, or
                            the store refused the commit */
} udp_ingest_stats;

/* Binds addr ("HOST:PORT") and starts receiving.
 * OUT out: the listener, also on a bind failure (then free it with
 * udp_ingest_free once the loop has run).
 * OUT bound: "HOST:PORT" actually bound.
 * Returns 0, SS_INVAL (bad address), SS_NOMEM (*out untouched), or an SS
 * code of net_tcp_listen's (address in use …). */
int udp_ingest_start(uv_loop_t *loop, const char *addr, const udp_ingest_options *opt,
                     udp_ingest **out, char *bound, size_t cap);

/* Stops receiving and closes the socket; `done` (may be NULL) runs on the
 * loop once the socket is closed and every datagram already submitted has
 * been committed or refused. The ingest queue must run until then. */
void udp_ingest_stop(udp_ingest *u, void (*done)(void *arg), void *arg);
/* Frees the listener after stop's `done` (or after a failed start). */
void udp_ingest_free(udp_ingest *u);

/* Datagrams refused so far (SPEC §3.5: refused ones are counted). */
uint64_t udp_ingest_refused(const udp_ingest *u);
/* All three counters. */
void udp_ingest_get_stats(const udp_ingest *u, udp_ingest_stats *out);

#endif
