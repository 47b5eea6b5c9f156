/* tcp_ingest.h — the TCP direct socket of SPEC §3.4: line-format readings
 * over a plaintext socket, built to spend few bytes on metered links.
 *
 *   client: AUTH <token>\n            the first line, within 10 s of connect
 *   server: OK\n  or  ERR 401 invalid_token\n and close
 *   client: <line>\n …                SPEC §3.2 line format
 *   server: ACK <n>\n                 after each commit that stored some;
 *                                     n = data lines stored so far
 *   server: ERR <line-no> <code> <name>[ <message>]\n   a refused line
 *
 * Line numbers count every line after AUTH from 1, blank and '#' lines
 * included, so a device can count too; a line is "a data line" when it
 * carries readings, and only those count in ACK. Lines that arrive in one
 * read go to the ingest queue as one item; a connection has at most one
 * item in flight, and lines that arrive meanwhile wait for it as the next
 * batch, so ACKs go out in order. When the ingest queue refuses a batch
 * (the device's or org's share is full), the connection stops reading its
 * socket and waits for room (TCP back-pressure); each line is a group the
 * store refuses alone when it would create a channel past the device's
 * limit (ERR <line> 400 too_many_channels). docs/protocols.md is the device
 * maker's description.
 *
 * Every authenticated connection is registered in the conn_registry under
 * its device ID: rotating the token, disabling or deleting the device
 * closes it at once. */
#ifndef SS_TCP_INGEST_H
#define SS_TCP_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "aaa/conn_registry.h"
#include "aaa/meter.h"
#include "core/limits.h"
#include "core/metrics.h"
#include "ingest/gateway.h"
#include "net/stream.h"

/* SPEC §3.4 and §4: the AUTH line must arrive within 10 s of connect
 * (--first-message-timeout may shorten it). */
#define TCP_INGEST_AUTH_TIMEOUT_MS SS_FIRST_MESSAGE_TIMEOUT_MS
/* SPEC §3.4: idle connections close after 300 s unless configured. */
#define TCP_INGEST_IDLE_TIMEOUT_DEFAULT_MS 300000u

typedef struct tcp_ingest tcp_ingest;

typedef struct tcp_ingest_options {
    gateway *gateway;         /* required: tokens, parsing, the queue, accounting */
    conn_registry *conns;     /* required: revocations close connections */
    meter *meter;             /* optional: session records and bytes */
    net_loop_buffers *bufs;   /* the loop's shared read buffers */
    uint64_t idle_timeout_ms; /* 0: TCP_INGEST_IDLE_TIMEOUT_DEFAULT_MS */
    uint64_t auth_timeout_ms; /* 0: TCP_INGEST_AUTH_TIMEOUT_MS, never more */
    metrics *metrics;         /* may be NULL: nothing is counted */
} tcp_ingest_options;

/* Binds addr ("HOST:PORT") and starts accepting.
 * OUT out: the listener, also on a bind failure (then free it with
 * tcp_ingest_free once the loop has run, as for http_server_start).
 * OUT bound: "HOST:PORT" actually bound.
 * Returns 0, SS_INVAL (bad address), SS_NOMEM (*out untouched), or an SS
 * code of net_tcp_listen's (SS_IN_USE …). */
int tcp_ingest_start(uv_loop_t *loop, const char *addr, const tcp_ingest_options *opt,
                     tcp_ingest **out, char *bound, size_t cap);

/* Stops accepting and stops reading every connection; connections that are
 * still waiting for AUTH close now. The others commit what they already
 * read, send their last ACK and ERR lines, then close. `done` (may be NULL)
 * runs on the loop when the last connection and the listener are closed:
 * the ingest queue must keep running until then. Loop thread only. */
void tcp_ingest_stop(tcp_ingest *t, void (*done)(void *arg), void *arg);
/* Frees the listener after stop's `done` (or after a failed start). */
void tcp_ingest_free(tcp_ingest *t);

/* Open connections right now, authenticated or not. */
size_t tcp_ingest_connections(const tcp_ingest *t);

#endif
