/* Unit tests of src/core/metrics: counters, gauges, histograms, the
 * Prometheus text rendering, and the loopback rule of GET /metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/metrics.h"

static int setup(void **state)
{
    metrics *m = NULL;
    if (metrics_new(&m) != SS_OK)
        return -1;
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    metrics_free(*state);
    return 0;
}

/* The rendered text; the caller frees it. */
static char *render(metrics *m)
{
    ss_buf b = SS_BUF_INIT;
    assert_int_equal(metrics_render(m, &b), SS_OK);
    assert_non_null(b.data);
    return buf_steal(&b);
}

/* The value of the sample whose name and labels are exactly `series`
 * (e.g. `x{a="b"}`); fails the test when there is no such line. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    fail_msg("no sample %s", series);
    return -1;
}

static double sample_of(metrics *m, const char *series)
{
    char *text = render(m);
    double v = sample(text, series);
    free(text);
    return v;
}

static void fresh_metrics_render_every_series_at_zero(void **state)
{
    metrics *m = *state;
    char *t = render(m);
    assert_true(sample(t, "sensorspace_connections_open{listener=\"tcp\"}") == 0);
    assert_true(sample(t, "sensorspace_http_requests_total{listener=\"https\",code_class=\"5xx\"}") ==
                0);
    assert_true(sample(t, "sensorspace_readings_stored_total{protocol=\"udp\"}") == 0);
    assert_true(sample(t, "sensorspace_readings_refused_total{reason=\"store_unavailable\"}") == 0);
    assert_true(sample(t, "sensorspace_bytes_received_total{protocol=\"http\"}") == 0);
    assert_true(sample(t, "sensorspace_bytes_sent_total{protocol=\"tcp\"}") == 0);
    assert_true(sample(t, "sensorspace_ingest_queue_depth") == 0);
    assert_true(sample(t, "sensorspace_commit_batch_readings_count") == 0);
    assert_true(sample(t, "sensorspace_commit_duration_seconds_bucket{le=\"+Inf\"}") == 0);
    assert_true(sample(t, "sensorspace_store_errors_total") == 0);
    free(t);
}

static void readings_counters_add_per_protocol(void **state)
{
    metrics *m = *state;
    metrics_readings_stored(m, METRICS_HTTP, 5);
    metrics_readings_stored(m, METRICS_HTTP, 3);
    metrics_readings_stored(m, METRICS_UDP, 1);
    char *t = render(m);
    assert_true(sample(t, "sensorspace_readings_stored_total{protocol=\"http\"}") == 8);
    assert_true(sample(t, "sensorspace_readings_stored_total{protocol=\"https\"}") == 0);
    assert_true(sample(t, "sensorspace_readings_stored_total{protocol=\"udp\"}") == 1);
    free(t);
}

static void refusals_count_per_reason(void **state)
{
    metrics *m = *state;
    static const char *const names[] = {"bad_reading", "too_large", "invalid_token",
                                        "quota_exceeded", "store_unavailable", "ingest_busy"};
    for (int r = 0; r < METRICS_REASONS; r++)
        metrics_readings_refused(m, (metrics_reason)r, (uint64_t)r + 1);
    metrics_readings_refused(m, METRICS_REASONS, 100);  /* out of range: ignored */
    char *t = render(m);
    for (int r = 0; r < METRICS_REASONS; r++) {
        char series[128];
        snprintf(series, sizeof series, "sensorspace_readings_refused_total{reason=\"%s\"}",
                 names[r]);
        assert_true(sample(t, series) == r + 1);
    }
    free(t);
}

static void http_requests_count_by_status_class(void **state)
{
    metrics *m = *state;
    int statuses[] = {200, 201, 204, 301, 400, 401, 404, 499, 500, 503, 599};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        metrics_http_request(m, METRICS_HTTP, statuses[i]);
    /* Not a class of ours: not counted anywhere. */
    metrics_http_request(m, METRICS_HTTP, 100);
    metrics_http_request(m, METRICS_HTTP, 199);
    metrics_http_request(m, METRICS_HTTP, 600);
    metrics_http_request(m, METRICS_HTTP, 0);
    metrics_http_request(m, METRICS_HTTP, -200);
    metrics_http_request(m, METRICS_HTTPS, 200);
    char *t = render(m);
    const char *h = "sensorspace_http_requests_total{listener=\"http\",code_class=";
    char s[160];
    snprintf(s, sizeof s, "%s\"2xx\"}", h);
    assert_true(sample(t, s) == 3);
    snprintf(s, sizeof s, "%s\"3xx\"}", h);
    assert_true(sample(t, s) == 1);
    snprintf(s, sizeof s, "%s\"4xx\"}", h);
    assert_true(sample(t, s) == 4);
    snprintf(s, sizeof s, "%s\"5xx\"}", h);
    assert_true(sample(t, s) == 3);
    assert_true(sample(t, "sensorspace_http_requests_total{listener=\"https\",code_class=\"2xx\"}") ==
                1);
    free(t);
}

static void connections_gauge_goes_up_and_down(void **state)
{
    metrics *m = *state;
    metrics_connection_opened(m, METRICS_HTTPS);
    metrics_connection_opened(m, METRICS_HTTPS);
    metrics_connection_opened(m, METRICS_TCP);
    metrics_connection_closed(m, METRICS_HTTPS);
    char *t = render(m);
    assert_true(sample(t, "sensorspace_connections_open{listener=\"https\"}") == 1);
    assert_true(sample(t, "sensorspace_connections_open{listener=\"tcp\"}") == 1);
    assert_true(sample(t, "sensorspace_connections_open{listener=\"http\"}") == 0);
    /* UDP has no connections: no such series. */
    assert_null(strstr(t, "sensorspace_connections_open{listener=\"udp\"}"));
    free(t);
}

static void stream_bytes_add_only_the_growth_since_the_mark(void **state)
{
    metrics *m = *state;
    metrics_bytes_mark mark = {0};
    metrics_stream_bytes(m, METRICS_HTTPS, &mark, 100, 40);
    metrics_stream_bytes(m, METRICS_HTTPS, &mark, 100, 40);  /* nothing new */
    metrics_stream_bytes(m, METRICS_HTTPS, &mark, 150, 41);
    assert_true(mark.in == 150 && mark.out == 41);
    metrics_stream_bytes(m, METRICS_HTTPS, &mark, 10, 10);   /* smaller: adds nothing */
    metrics_bytes(m, METRICS_UDP, 512, 0);
    char *t = render(m);
    assert_true(sample(t, "sensorspace_bytes_received_total{protocol=\"https\"}") == 150);
    assert_true(sample(t, "sensorspace_bytes_sent_total{protocol=\"https\"}") == 41);
    assert_true(sample(t, "sensorspace_bytes_received_total{protocol=\"udp\"}") == 512);
    assert_true(sample(t, "sensorspace_bytes_sent_total{protocol=\"udp\"}") == 0);
    free(t);
}

static void protocol_names_parse_and_unknown_ones_are_ignored(void **state)
{
    metrics *m = *state;
    assert_int_equal(metrics_protocol_parse("http"), METRICS_HTTP);
    assert_int_equal(metrics_protocol_parse("https"), METRICS_HTTPS);
    assert_int_equal(metrics_protocol_parse("tcp"), METRICS_TCP);
    assert_int_equal(metrics_protocol_parse("udp"), METRICS_UDP);
    assert_int_equal(metrics_protocol_parse("mqtt"), METRICS_MQTT);
    assert_int_equal(metrics_protocol_parse("mqtts"), METRICS_MQTTS);
    assert_int_equal(metrics_protocol_parse("ws"), METRICS_PROTOCOLS);
    assert_int_equal(metrics_protocol_parse("HTTP"), METRICS_PROTOCOLS);
    assert_int_equal(metrics_protocol_parse(""), METRICS_PROTOCOLS);
    assert_int_equal(metrics_protocol_parse(NULL), METRICS_PROTOCOLS);
    char *before = render(m);
    metrics_protocol bad = metrics_protocol_parse("ws");
    metrics_readings_stored(m, bad, 7);
    metrics_bytes(m, bad, 7, 7);
    metrics_connection_opened(m, bad);
    metrics_http_request(m, bad, 200);
    char *after = render(m);
    /* Only the resident memory sample may differ between two renders. */
    char *cut_b = strstr(before, "# HELP sensorspace_process_resident_memory_bytes");
    char *cut_a = strstr(after, "# HELP sensorspace_process_resident_memory_bytes");
    assert_non_null(cut_b);
    assert_non_null(cut_a);
    *cut_b = *cut_a = '\0';
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void null_metrics_ignore_every_update(void **state)
{
    (void)state;
    metrics_bytes_mark mark = {0};
    metrics_connection_opened(NULL, METRICS_HTTP);
    metrics_connection_closed(NULL, METRICS_HTTP);
    metrics_http_request(NULL, METRICS_HTTP, 200);
    metrics_readings_stored(NULL, METRICS_TCP, 1);
    metrics_readings_refused(NULL, METRICS_REFUSED_TOO_LARGE, 1);
    metrics_bytes(NULL, METRICS_UDP, 1, 1);
    metrics_stream_bytes(NULL, METRICS_HTTP, &mark, 5, 6);
    assert_true(mark.in == 5 && mark.out == 6);
    metrics_queue_depth(NULL, 3);
    metrics_commit(NULL, 1, 1);
    metrics_store_error(NULL);
    metrics_free(NULL);
}

static void queue_depth_and_store_errors_show(void **state)
{
    metrics *m = *state;
    metrics_queue_depth(m, 42);
    metrics_store_error(m);
    metrics_store_error(m);
    assert_true(sample_of(m, "sensorspace_ingest_queue_depth") == 42);
    metrics_queue_depth(m, 0);
    assert_true(sample_of(m, "sensorspace_ingest_queue_depth") == 0);
    assert_true(sample_of(m, "sensorspace_store_errors_total") == 2);
}

/* A value equal to a bound falls in that bucket (le: less or equal); one
 * more falls in the next; buckets are cumulative. */
static void batch_histogram_buckets_are_cumulative(void **state)
{
    metrics *m = *state;
    uint64_t values[] = {0, 1, 2, 10, 11, 100000, 100001};
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        metrics_commit(m, values[i], 1);
        sum += values[i];
    }
    char *t = render(m);
    const char *b = "sensorspace_commit_batch_readings_bucket";
    char s[128];
    struct { const char *le; double want; } want[] = {
        {"1", 2}, {"10", 4}, {"100", 5}, {"1000", 5}, {"10000", 5}, {"100000", 6}, {"+Inf", 7},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        snprintf(s, sizeof s, "%s{le=\"%s\"}", b, want[i].le);
        assert_true(sample(t, s) == want[i].want);
    }
    assert_true(sample(t, "sensorspace_commit_batch_readings_count") == 7);
    assert_true(sample(t, "sensorspace_commit_batch_readings_sum") == (double)sum);
    free(t);
}

static void duration_histogram_is_in_seconds(void **state)
{
    metrics *m = *state;
    metrics_commit(m, 1, 500000);      /* 0.5 ms: on the first bound */
    metrics_commit(m, 1, 500001);      /* just past it */
    metrics_commit(m, 1, 1000000000);  /* 1 s: on the last bound */
    metrics_commit(m, 1, 2000000000);  /* 2 s: only +Inf */
    char *t = render(m);
    const char *b = "sensorspace_commit_duration_seconds_bucket";
    char s[128];
    snprintf(s, sizeof s, "%s{le=\"0.0005\"}", b);
    assert_true(sample(t, s) == 1);
    snprintf(s, sizeof s, "%s{le=\"0.001\"}", b);
    assert_true(sample(t, s) == 2);
    snprintf(s, sizeof s, "%s{le=\"0.5\"}", b);
    assert_true(sample(t, s) == 2);
    snprintf(s, sizeof s, "%s{le=\"1\"}", b);
    assert_true(sample(t, s) == 3);
    snprintf(s, sizeof s, "%s{le=\"+Inf\"}", b);
    assert_true(sample(t, s) == 4);
    assert_true(sample(t, "sensorspace_commit_duration_seconds_count") == 4);
    assert_non_null(strstr(t, "\nsensorspace_commit_duration_seconds_sum 3.001000001\n"));
    free(t);
}

/* Every family: HELP, then TYPE, then samples of that name only; each
 * family once; every sample line is `name[{labels}] value`. */
static void render_follows_the_text_format(void **state)
{
    metrics *m = *state;
    metrics_commit(m, 3, 700000);
    char *t = render(m);
    size_t len = strlen(t);
    assert_true(len > 0 && t[len - 1] == '\n');
    char family[128] = "";
    char seen[16][128];
    int families = 0;
    int expect_type = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        char name[128], type[32];
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_false(expect_type);
            assert_int_equal(sscanf(line + 7, "%127s", name), 1);
            for (int i = 0; i < families; i++)  /* each family once, together */
                assert_string_not_equal(name, seen[i]);
            assert_true(families < 16);
            snprintf(family, sizeof family, "%s", name);
            snprintf(seen[families++], sizeof seen[0], "%s", name);
            expect_type = 1;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            assert_true(expect_type);
            expect_type = 0;
            assert_int_equal(sscanf(line + 7, "%127s %31s", name, type), 2);
            assert_string_equal(name, family);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            if (strcmp(type, "counter") == 0)
                assert_non_null(strstr(name, "_total"));
            continue;
        }
        assert_false(expect_type);
        assert_int_equal(strncmp(line, family, strlen(family)), 0);
        char *space = strrchr(line, ' ');
        assert_non_null(space);
        char *end = NULL;
        strtod(space + 1, &end);
        assert_true(end && *end == '\0' && end > space + 1);
        char *brace = strchr(line, '{');
        if (brace && brace < space)
            assert_true(space[-1] == '}');
    }
    assert_int_equal(families, 15);
    free(t);
}

static void process_series_hold_memory_and_start_time(void **state)
{
    metrics *m = *state;
    char *t = render(m);
    assert_true(sample(t, "sensorspace_process_resident_memory_bytes") > 4096);
    double start = sample(t, "sensorspace_process_start_time_seconds");
    double now = (double)time(NULL);
    assert_true(start > now - 60 && start < now + 60);
    free(t);
}

static void render_appends_to_what_the_buffer_holds(void **state)
{
    metrics *m = *state;
    ss_buf b = SS_BUF_INIT;
    assert_int_equal(buf_append_str(&b, "prefix\n"), 0);
    assert_int_equal(metrics_render(m, &b), SS_OK);
    assert_int_equal(strncmp(b.data, "prefix\n# HELP ", 14), 0);
    buf_free(&b);
}

static void loopback_peers_are_local(void **state)
{
    (void)state;
    const char *local[] = {"127.0.0.1", "127.0.0.2", "127.255.255.254", "127.1.2.3", "::1",
                           "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"};
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        assert_int_equal(metrics_peer_is_local(local[i]), 1);
}

static void other_peers_are_not_local(void **state)
{
    (void)state;
    const char *remote[] = {
        "126.255.255.255", "128.0.0.1", "10.0.0.1", "192.168.1.1", "0.0.0.0", "::", "::2",
        "fe80::1", "::ffff:10.0.0.1", "::127.0.0.1", "", "localhost", "127.0.0.1:80",
        "[::1]", " 127.0.0.1", "127.0.0.1 ", "127.0.0", "1.127.0.0",
    };
    for (size_t i = 0; i < sizeof remote / sizeof remote[0]; i++)
        assert_int_equal(metrics_peer_is_local(remote[i]), 0);
    assert_int_equal(metrics_peer_is_local(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fresh_metrics_render_every_series_at_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(readings_counters_add_per_protocol, setup, teardown),
        cmocka_unit_test_setup_teardown(refusals_count_per_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(http_requests_count_by_status_class, setup, teardown),
        cmocka_unit_test_setup_teardown(connections_gauge_goes_up_and_down, setup, teardown),
        cmocka_unit_test_setup_teardown(stream_bytes_add_only_the_growth_since_the_mark, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(protocol_names_parse_and_unknown_ones_are_ignored, setup,
                                        teardown),
        cmocka_unit_test(null_metrics_ignore_every_update),
        cmocka_unit_test_setup_teardown(queue_depth_and_store_errors_show, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_histogram_buckets_are_cumulative, setup, teardown),
        cmocka_unit_test_setup_teardown(duration_histogram_is_in_seconds, setup, teardown),
        cmocka_unit_test_setup_teardown(render_follows_the_text_format, setup, teardown),
        cmocka_unit_test_setup_teardown(process_series_hold_memory_and_start_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(render_appends_to_what_the_buffer_holds, setup, teardown),
        cmocka_unit_test(loopback_peers_are_local),
        cmocka_unit_test(other_peers_are_not_local),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
