/* Unit tests of src/ingest/batch_events: a stored batch as one event per
 * distinct ts, in ts order, the last reading of a channel at a ts told. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "ingest/batch_events.h"

#define EVENTS_MAX 8

typedef struct seen {
    char json[EVENTS_MAX][256];
    int64_t ts[EVENTS_MAX];
    size_t n;
    size_t stop_after;  /* 0: never */
} seen;

static int collect(void *ctx, int64_t ts, const char *json, size_t len)
{
    seen *s = ctx;
    assert_true(s->n < EVENTS_MAX && len < sizeof s->json[0]);
    memcpy(s->json[s->n], json, len);
    s->json[s->n][len] = '\0';
    s->ts[s->n++] = ts;
    return s->stop_after && s->n == s->stop_after ? SS_BUSY : 0;
}

static fanout_batch batch_of(const ss_reading *r, size_t n)
{
    return (fanout_batch){.device_id = "dev1", .org_id = "org1", .protocol = "http",
                          .readings = r, .len = n};
}

static void one_event_per_ts_in_ts_order(void **state)
{
    (void)state;
    const ss_reading r[] = {
        {.ts = 20, .value = 1.5, .channel = "b"},
        {.ts = 10, .value = 2, .channel = "a"},
        {.ts = 20, .value = 0.1, .channel = "a"},
        {.ts = 20, .value = 3, .channel = "b"},  /* the later b at 20 is told */
    };
    fanout_batch b = batch_of(r, 4);
    ss_buf scratch = SS_BUF_INIT;
    seen s = {0};
    assert_int_equal(batch_events(&b, 0, &scratch, collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ts[0], 10);
    assert_string_equal(s.json[0], "{\"ts\":10,\"values\":{\"a\":2}}");
    assert_int_equal(s.ts[1], 20);
    assert_string_equal(s.json[1], "{\"ts\":20,\"values\":{\"a\":0.1,\"b\":3}}");
    buf_free(&scratch);
}

static void device_id_when_asked(void **state)
{
    (void)state;
    const ss_reading r[] = {{.ts = 5, .value = -1e-7, .channel = "t.x_1-y"}};
    fanout_batch b = batch_of(r, 1);
    ss_buf scratch = SS_BUF_INIT;
    seen s = {0};
    assert_int_equal(batch_events(&b, 1, &scratch, collect, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.json[0],
                        "{\"device_id\":\"dev1\",\"ts\":5,\"values\":{\"t.x_1-y\":-1e-7}}");
    buf_free(&scratch);
}

static void callback_stops_the_walk(void **state)
{
    (void)state;
    const ss_reading r[] = {
        {.ts = 1, .value = 1, .channel = "a"},
        {.ts = 2, .value = 2, .channel = "a"},
        {.ts = 3, .value = 3, .channel = "a"},
    };
    fanout_batch b = batch_of(r, 3);
    ss_buf scratch = SS_BUF_INIT;
    seen s = {.stop_after = 2};
    assert_int_equal(batch_events(&b, 0, &scratch, collect, &s), SS_BUSY);
    assert_int_equal(s.n, 2);
    buf_free(&scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_event_per_ts_in_ts_order),
        cmocka_unit_test(device_id_when_asked),
        cmocka_unit_test(callback_stops_the_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
