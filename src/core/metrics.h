/* metrics.h — process-wide counters, gauges and histograms for GET /metrics
 * (SPEC §2), rendered in the Prometheus text exposition format 0.0.4.
 *
 * Every value is a C11 atomic updated with relaxed ordering: any thread
 * (loop, store thread, workers) may update, and the renderer reads without
 * a lock. A scrape is therefore not one instant: two series may be a few
 * events apart, but each histogram's _count is the sum of its own buckets,
 * so +Inf and _count always agree.
 *
 * The server owns the one `metrics` (metrics_new/metrics_free). Every
 * update function accepts m == NULL and then does nothing, so a module
 * started without metrics (unit tests) needs no checks of its own.
 *
 * sensorspace_readings_refused_total counts readings when the refused
 * readings were already parsed (a failed commit, a device deleted while
 * they waited, a quota refusal) and
 * otherwise one per refused message: an HTTP request, a TCP line or AUTH
 * line, a UDP datagram. docs/operator-guide.md lists every series. */
#ifndef SS_METRICS_H
#define SS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct metrics metrics;

/* The label of connections_open (listener), http_requests_total (listener),
 * readings_stored_total and bytes_*_total (protocol). */
typedef enum {
    METRICS_HTTP,
    METRICS_HTTPS,
    METRICS_TCP,
    METRICS_MQTTS,
    METRICS_MQTT,
    METRICS_UDP,     /* last: the one without connections */
    METRICS_PROTOCOLS  /* the count; also "not one of ours": ignored */
} metrics_protocol;

/* The reason label of readings_refused_total: SPEC error codes. */
typedef enum {
    METRICS_REFUSED_BAD_READING,
    METRICS_REFUSED_TOO_LARGE,
    METRICS_REFUSED_INVALID_TOKEN,
    METRICS_REFUSED_QUOTA_EXCEEDED,
    METRICS_REFUSED_STORE_UNAVAILABLE,
    METRICS_REFUSED_INGEST_BUSY,  /* the sender's share of the ingest queue was full */
    METRICS_REASONS  /* the count */
} metrics_reason;

/* What a connection has already reported of its stream's byte counters,
 * kept in the connection so each report adds only what is new. */
typedef struct metrics_bytes_mark {
    uint64_t in;
    uint64_t out;
} metrics_bytes_mark;

/* 0 or SS_NOMEM. The start time is taken now. */
int metrics_new(metrics **out);
void metrics_free(metrics *m);

/* "http", "https", "tcp", "mqtts", "mqtt", "udp" → its protocol; anything
 * else (NULL, "ws" …) → METRICS_PROTOCOLS, which every update ignores. */
metrics_protocol metrics_protocol_parse(const char *name);

/* A connection accepted / closed on the listener. */
void metrics_connection_opened(metrics *m, metrics_protocol listener);
void metrics_connection_closed(metrics *m, metrics_protocol listener);

/* An HTTP answer with `status` went out on the listener (status 100..599;
 * others are not counted). */
void metrics_http_request(metrics *m, metrics_protocol listener, int status);

/* n readings committed / refused. */
void metrics_readings_stored(metrics *m, metrics_protocol protocol, uint64_t n);
void metrics_readings_refused(metrics *m, metrics_reason reason, uint64_t n);

/* Bytes received and sent on the socket. */
void metrics_bytes(metrics *m, metrics_protocol protocol, uint64_t in, uint64_t out);
/* Adds what a stream's running totals grew by since `mark`, then moves
 * the mark to them. */
void metrics_stream_bytes(metrics *m, metrics_protocol protocol, metrics_bytes_mark *mark,
                          uint64_t in_total, uint64_t out_total);

/* MQTT messages a session dropped (a stalled client's QoS 0, a full
 * session queue's oldest, an expired message). */
void metrics_mqtt_dropped(metrics *m, uint64_t n);

/* The ingest queue's depth right now (items submitted, not completed). */
void metrics_queue_depth(metrics *m, size_t depth);
/* One group commit of `readings` readings that took `nanoseconds`. */
void metrics_commit(metrics *m, uint64_t readings, uint64_t nanoseconds);
/* A commit the store refused (not a deleted device: a store failure). */
void metrics_store_error(metrics *m);
/* Series of deleted devices waiting for the purge, now; n readings purged. */
void metrics_purge_pending(metrics *m, uint64_t series);
void metrics_readings_purged(metrics *m, uint64_t n);

/* Appends the whole exposition (HELP, TYPE and samples of every series)
 * to out. 0 or SS_NOMEM (out may then hold part of it). */
int metrics_render(metrics *m, ss_buf *out);

/* The Content-Type of metrics_render's text. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* 1 when addr (a numeric IPv4 or IPv6 address, no port, as
 * http_request.peer holds it) is loopback: 127.0.0.0/8, ::1 or
 * ::ffff:127.x.x.x. 0 for anything else, NULL and "" included. */
int metrics_peer_is_local(const char *addr);

#endif
