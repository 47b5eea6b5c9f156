/* metrics.c — the series of GET /metrics and their text rendering.
 *
 * Counters and gauges are single atomics. A histogram keeps one atomic
 * count per bucket (not cumulative: one increment per observation) plus an
 * atomic sum in integer base units (readings, nanoseconds), so no float
 * ever needs an atomic add; the renderer accumulates the buckets and
 * scales the sum. */
#include "core/metrics.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/json_out.h"

/* The most bounds a histogram of ours has (commit duration: 11). */
#define HIST_BOUNDS_MAX 16
/* The HTTP status classes counted: 2xx … 5xx. */
#define HTTP_CLASS_FIRST 2
#define HTTP_CLASSES 4
#define NS_PER_SECOND 1e9
/* /proc/self/statm is one short line of seven numbers. */
#define STATM_LINE_MAX 256

typedef struct histogram {
    const uint64_t *bounds;  /* upper bounds in base units, ascending */
    size_t n_bounds;
    double scale;            /* base unit → the unit in the series name */
    _Atomic uint64_t buckets[HIST_BOUNDS_MAX + 1];  /* the last: above every bound */
    _Atomic uint64_t sum;    /* base units */
} histogram;

struct metrics {
    int64_t start_ms;  /* set once by metrics_new */
    _Atomic int64_t connections_open[METRICS_PROTOCOLS];
    _Atomic uint64_t http_requests[METRICS_PROTOCOLS][HTTP_CLASSES];
    _Atomic uint64_t readings_stored[METRICS_PROTOCOLS];
    _Atomic uint64_t readings_refused[METRICS_REASONS];
    _Atomic uint64_t bytes_in[METRICS_PROTOCOLS];
    _Atomic uint64_t bytes_out[METRICS_PROTOCOLS];
    _Atomic int64_t queue_depth;
    _Atomic uint64_t store_errors;
    _Atomic uint64_t purge_pending;
    _Atomic uint64_t readings_purged;
    _Atomic uint64_t mqtt_dropped;
    histogram commit_batch;
    histogram commit_duration;
};

static const char *const protocol_names[METRICS_PROTOCOLS] = {"http",  "https", "tcp",
                                                               "mqtts", "mqtt",  "udp"};
static const char *const reason_names[METRICS_REASONS] = {
    "bad_reading", "too_large", "invalid_token", "quota_exceeded", "store_unavailable",
    "ingest_busy",
};
static const char *const class_names[HTTP_CLASSES] = {"2xx", "3xx", "4xx", "5xx"};

/* Readings per group commit: one per decade up to the store's largest. */
static const uint64_t batch_bounds[] = {1, 10, 100, 1000, 10000, 100000};
/* Commit time in ns, 0.5 ms to 1 s in 1-2.5-5 steps: an fsync on an SSD
 * is around a millisecond, one past a second is an incident. */
static const uint64_t duration_bounds_ns[] = {
    500000, 1000000, 2500000, 5000000, 10000000, 25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000,
};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(N_OF(duration_bounds_ns) <= HIST_BOUNDS_MAX, "histogram bounds");
_Static_assert(N_OF(batch_bounds) <= HIST_BOUNDS_MAX, "histogram bounds");

int metrics_new(metrics **out)
{
    metrics *m = calloc(1, sizeof *m);
    if (!m)
        return SS_NOMEM;
    m->start_ms = clock_now_ms();
    m->commit_batch.bounds = batch_bounds;
    m->commit_batch.n_bounds = N_OF(batch_bounds);
    m->commit_batch.scale = 1.0;
    m->commit_duration.bounds = duration_bounds_ns;
    m->commit_duration.n_bounds = N_OF(duration_bounds_ns);
    m->commit_duration.scale = 1.0 / NS_PER_SECOND;
    *out = m;
    return SS_OK;
}

void metrics_free(metrics *m)
{
    free(m);
}

metrics_protocol metrics_protocol_parse(const char *name)
{
    for (int p = 0; name && p < METRICS_PROTOCOLS; p++)
        if (strcmp(name, protocol_names[p]) == 0)
            return (metrics_protocol)p;
    return METRICS_PROTOCOLS;
}

static int protocol_ok(const metrics *m, metrics_protocol p)
{
    return m && (unsigned)p < METRICS_PROTOCOLS;
}

static void add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---- updates ---------------------------------------------------------- */

void metrics_connection_opened(metrics *m, metrics_protocol listener)
{
    if (protocol_ok(m, listener))
        atomic_fetch_add_explicit(&m->connections_open[listener], 1, memory_order_relaxed);
}

void metrics_connection_closed(metrics *m, metrics_protocol listener)
{
    if (protocol_ok(m, listener))
        atomic_fetch_sub_explicit(&m->connections_open[listener], 1, memory_order_relaxed);
}

void metrics_http_request(metrics *m, metrics_protocol listener, int status)
{
    int cls = status / 100 - HTTP_CLASS_FIRST;
    if (protocol_ok(m, listener) && cls >= 0 && cls < HTTP_CLASSES)
        add(&m->http_requests[listener][cls], 1);
}

void metrics_readings_stored(metrics *m, metrics_protocol protocol, uint64_t n)
{
    if (protocol_ok(m, protocol))
        add(&m->readings_stored[protocol], n);
}

void metrics_readings_refused(metrics *m, metrics_reason reason, uint64_t n)
{
    if (m && (unsigned)reason < METRICS_REASONS)
        add(&m->readings_refused[reason], n);
}

void metrics_bytes(metrics *m, metrics_protocol protocol, uint64_t in, uint64_t out)
{
    if (!protocol_ok(m, protocol))
        return;
    add(&m->bytes_in[protocol], in);
    add(&m->bytes_out[protocol], out);
}

void metrics_stream_bytes(metrics *m, metrics_protocol protocol, metrics_bytes_mark *mark,
                          uint64_t in_total, uint64_t out_total)
{
    /* Totals only grow; a smaller one (a reused mark) adds nothing. */
    uint64_t in = in_total > mark->in ? in_total - mark->in : 0;
    uint64_t out = out_total > mark->out ? out_total - mark->out : 0;
    mark->in = in_total;
    mark->out = out_total;
    metrics_bytes(m, protocol, in, out);
}

void metrics_queue_depth(metrics *m, size_t depth)
{
    if (m)
        atomic_store_explicit(&m->queue_depth, (int64_t)depth, memory_order_relaxed);
}

static void histogram_observe(histogram *h, uint64_t value)
{
    size_t i = 0;
    while (i < h->n_bounds && value > h->bounds[i])
        i++;
    add(&h->buckets[i], 1);
    add(&h->sum, value);
}

void metrics_commit(metrics *m, uint64_t readings, uint64_t nanoseconds)
{
    if (!m)
        return;
    histogram_observe(&m->commit_batch, readings);
    histogram_observe(&m->commit_duration, nanoseconds);
}

void metrics_store_error(metrics *m)
{
    if (m)
        add(&m->store_errors, 1);
}

void metrics_purge_pending(metrics *m, uint64_t series)
{
    if (m)
        atomic_store_explicit(&m->purge_pending, series, memory_order_relaxed);
}

void metrics_readings_purged(metrics *m, uint64_t n)
{
    if (m)
        add(&m->readings_purged, n);
}

void metrics_mqtt_dropped(metrics *m, uint64_t n)
{
    if (m)
        add(&m->mqtt_dropped, n);
}

/* ---- rendering -------------------------------------------------------- */

static uint64_t load(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static int render_head(ss_buf *out, const char *name, const char *type, const char *help)
{
    return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One counter family with one label over names[0..n). */
static int render_labelled(ss_buf *out, const char *name, const char *help, const char *label,
                           const char *const *names, _Atomic uint64_t *values, size_t n)
{
    int rc = render_head(out, name, "counter", help);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = buf_printf(out, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, names[i],
                        load(&values[i]));
    return rc;
}

static int render_connections(metrics *m, ss_buf *out)
{
    const char *name = "sensorspace_connections_open";
    int rc = render_head(out, name, "gauge", "Connections open now, per listener.");
    for (int p = METRICS_HTTP; rc == 0 && p < METRICS_UDP; p++)
        rc = buf_printf(out, "%s{listener=\"%s\"} %" PRId64 "\n", name, protocol_names[p],
                        atomic_load_explicit(&m->connections_open[p], memory_order_relaxed));
    return rc;
}

static int render_requests(metrics *m, ss_buf *out)
{
    const char *name = "sensorspace_http_requests_total";
    int rc = render_head(out, name, "counter",
                         "HTTP answers sent, per listener and status class.");
    for (int p = METRICS_HTTP; rc == 0 && p <= METRICS_HTTPS; p++)
        for (int c = 0; rc == 0 && c < HTTP_CLASSES; c++)
            rc = buf_printf(out, "%s{listener=\"%s\",code_class=\"%s\"} %" PRIu64 "\n", name,
                            protocol_names[p], class_names[c], load(&m->http_requests[p][c]));
    return rc;
}

/* Every double of the exposition as in the JSON answers: the shortest text
 * that reads back to it. */
static const char *shortest(double v, char num[JSON_OUT_DOUBLE_MAX])
{
    json_out_double(v, num);
    return num;
}

/* A count of base units in the unit of the series name. Dividing by the
 * whole number of base units per unit (1e9 ns per s) is exact where
 * multiplying by its inexact reciprocal is not: 5 ms prints as 0.005. */
static double scaled(const histogram *h, uint64_t x)
{
    if (h->scale == 1.0)
        return (double)x;
    return (double)x / (double)llround(1.0 / h->scale);
}

static int render_histogram(histogram *h, ss_buf *out, const char *name, const char *help)
{
    char num[JSON_OUT_DOUBLE_MAX];
    int rc = render_head(out, name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; rc == 0 && i <= h->n_bounds; i++) {
        cumulative += load(&h->buckets[i]);
        if (i < h->n_bounds)
            rc = buf_printf(out, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
                            shortest(scaled(h, h->bounds[i]), num), cumulative);
        else
            rc = buf_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
    }
    /* Whole units print exactly; scaled ones (ns → s) in their shortest form. */
    uint64_t sum = load(&h->sum);
    if (rc == 0 && h->scale == 1.0)
        rc = buf_printf(out, "%s_sum %" PRIu64 "\n", name, sum);
    else if (rc == 0)
        rc = buf_printf(out, "%s_sum %s\n", name, shortest(scaled(h, sum), num));
    if (rc == 0)
        rc = buf_printf(out, "%s_count %" PRIu64 "\n", name, cumulative);
    return rc;
}

/* Resident set size from /proc/self/statm (pages); 0 when unreadable. */
static uint64_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    char line[STATM_LINE_MAX];
    unsigned long long size = 0, resident = 0;
    int ok = fgets(line, sizeof line, f) && sscanf(line, "%llu %llu", &size, &resident) == 2;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return ok && page > 0 ? (uint64_t)resident * (uint64_t)page : 0;
}

static int render_process(metrics *m, ss_buf *out)
{
    const char *rss = "sensorspace_process_resident_memory_bytes";
    const char *start = "sensorspace_process_start_time_seconds";
    char num[JSON_OUT_DOUBLE_MAX];
    int rc = render_head(out, rss, "gauge", "Resident memory size in bytes.");
    if (rc == 0)
        rc = buf_printf(out, "%s %" PRIu64 "\n", rss, resident_bytes());
    if (rc == 0)
        rc = render_head(out, start, "gauge", "When the server started, in seconds since the epoch.");
    if (rc == 0)
        rc = buf_printf(out, "%s %s\n", start, shortest((double)m->start_ms / 1000.0, num));
    return rc;
}

static int render_bytes(metrics *m, ss_buf *out)
{
    int rc = render_labelled(out, "sensorspace_bytes_received_total",
                             "Bytes received on sockets (TLS records included), per protocol.",
                             "protocol", protocol_names, m->bytes_in, METRICS_PROTOCOLS);
    if (rc == 0)
        rc = render_labelled(out, "sensorspace_bytes_sent_total",
                             "Bytes sent on sockets (TLS records included), per protocol.",
                             "protocol", protocol_names, m->bytes_out, METRICS_PROTOCOLS);
    return rc;
}

static int render_purge(metrics *m, ss_buf *out)
{
    const char *pending = "sensorspace_purge_pending_series";
    const char *purged = "sensorspace_readings_purged_total";
    int rc = render_head(out, pending, "gauge",
                         "Series of deleted devices whose readings wait for the purge.");
    if (rc == 0)
        rc = buf_printf(out, "%s %" PRIu64 "\n", pending, load(&m->purge_pending));
    if (rc == 0)
        rc = render_head(out, purged, "counter", "Readings of deleted devices purged.");
    if (rc == 0)
        rc = buf_printf(out, "%s %" PRIu64 "\n", purged, load(&m->readings_purged));
    return rc;
}

static int render_ingest(metrics *m, ss_buf *out)
{
    const char *depth = "sensorspace_ingest_queue_depth";
    const char *errors = "sensorspace_store_errors_total";
    int rc = render_labelled(out, "sensorspace_readings_stored_total",
                             "Readings committed to the store, per protocol.", "protocol",
                             protocol_names, m->readings_stored, METRICS_PROTOCOLS);
    if (rc == 0)
        rc = render_labelled(out, "sensorspace_readings_refused_total",
                             "Readings refused (parsed ones), else messages refused, per reason.",
                             "reason", reason_names, m->readings_refused, METRICS_REASONS);
    if (rc == 0)
        rc = render_head(out, depth, "gauge", "Ingest items submitted and not yet committed.");
    if (rc == 0)
        rc = buf_printf(out, "%s %" PRId64 "\n", depth,
                        atomic_load_explicit(&m->queue_depth, memory_order_relaxed));
    if (rc == 0)
        rc = render_histogram(&m->commit_batch, out, "sensorspace_commit_batch_readings",
                              "Readings per group commit.");
    if (rc == 0)
        rc = render_histogram(&m->commit_duration, out, "sensorspace_commit_duration_seconds",
                              "Time one group commit took.");
    if (rc == 0)
        rc = render_head(out, errors, "counter", "Group commits the store refused.");
    if (rc == 0)
        rc = buf_printf(out, "%s %" PRIu64 "\n", errors, load(&m->store_errors));
    return rc == 0 ? render_purge(m, out) : rc;
}

static int render_mqtt(metrics *m, ss_buf *out)
{
    const char *dropped = "sensorspace_mqtt_messages_dropped_total";
    int rc = render_head(out, dropped, "counter",
                         "MQTT messages sessions dropped (stalled client, full queue, expired).");
    if (rc == 0)
        rc = buf_printf(out, "%s %" PRIu64 "\n", dropped, load(&m->mqtt_dropped));
    return rc;
}

int metrics_render(metrics *m, ss_buf *out)
{
    int rc = render_connections(m, out);
    if (rc == 0)
        rc = render_requests(m, out);
    if (rc == 0)
        rc = render_ingest(m, out);
    if (rc == 0)
        rc = render_bytes(m, out);
    if (rc == 0)
        rc = render_mqtt(m, out);
    if (rc == 0)
        rc = render_process(m, out);
    return rc ? SS_NOMEM : SS_OK;
}

/* ---- access ----------------------------------------------------------- */

int metrics_peer_is_local(const char *addr)
{
    unsigned char a[16];
    if (!addr)
        return 0;
    if (inet_pton(AF_INET, addr, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, addr, a) != 1)
        return 0;
    static const unsigned char loopback6[16] = {[15] = 1};
    static const unsigned char mapped_prefix[12] = {[10] = 0xff, [11] = 0xff};
    if (memcmp(a, loopback6, sizeof a) == 0)
        return 1;
    return memcmp(a, mapped_prefix, sizeof mapped_prefix) == 0 && a[12] == 127;
}
