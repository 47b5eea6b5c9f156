/* Unit tests of src/http/live_ring: each org's window of live events, its
 * ids, resuming from them, and the limits (per org in events and bytes,
 * and in all). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "http/live_ring.h"

#define ORG_A "aaaaaaaaaaaaaaaaaaaaaaaa"
#define ORG_B "bbbbbbbbbbbbbbbbbbbbbbbb"
#define DEV "dddddddddddddddddddddddd"
#define JSON "{\"n\":1}"

static live_ring *ring_with(size_t events, size_t bytes, size_t total)
{
    live_ring_limits lim = {events, bytes, total};
    live_ring *r = NULL;
    assert_int_equal(live_ring_new(&lim, &r), SS_OK);
    return r;
}

static void append(live_ring *r, live_org *o, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(live_ring_append(r, o, DEV, JSON, strlen(JSON)), SS_OK);
}

static void frame_carries_its_id_and_data(void **state)
{
    (void)state;
    live_ring *r = ring_with(0, 0, 0);
    live_org *o = NULL;
    assert_int_equal(live_ring_open(r, ORG_A, &o), SS_OK);
    assert_ptr_equal(live_ring_find(r, ORG_A), o);
    assert_null(live_ring_find(r, ORG_B));
    append(r, o, 2);
    const live_event *e = live_org_event(o, 2);
    assert_non_null(e);
    char want[128];
    snprintf(want, sizeof want, "id: %s-2\ndata: " JSON "\n\n", o->epoch);
    assert_string_equal(e->frame, want);
    assert_int_equal(e->len, strlen(want));
    assert_string_equal(e->device_id, DEV);
    assert_null(live_org_event(o, 0));
    assert_null(live_org_event(o, 3));
    live_ring_free(r);
}

/* A stream's channel filter: the values of the channels named, in the
 * event's order; an event with none of them is nothing to send. */
static void filter_keeps_the_channels_named(void **state)
{
    (void)state;
    static const char json[] = "{\"device_id\":\"" DEV "\",\"ts\":5,"
                               "\"values\":{\"a\":1,\"bb\":-2.5e-3,\"c.d\":3}}";
    live_ring *r = ring_with(0, 0, 0);
    live_org *o = NULL;
    assert_int_equal(live_ring_open(r, ORG_A, &o), SS_OK);
    assert_int_equal(live_ring_append(r, o, DEV, json, strlen(json)), SS_OK);
    const live_event *e = live_org_event(o, 1);
    ss_buf out = SS_BUF_INIT;
    char want[256];
    const char *const some[] = {"c.d", "a", "b"};
    assert_int_equal(live_event_filter(e, some, 3, &out), SS_OK);
    snprintf(want, sizeof want,
             "id: %s-1\ndata: {\"device_id\":\"" DEV "\",\"ts\":5,\"values\":{\"a\":1,"
             "\"c.d\":3}}\n\n",
             o->epoch);
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    const char *const last[] = {"c.d"};
    assert_int_equal(live_event_filter(e, last, 1, &out), SS_OK);
    snprintf(want, sizeof want,
             "id: %s-1\ndata: {\"device_id\":\"" DEV "\",\"ts\":5,\"values\":{\"c.d\":3}}"
             "\n\n",
             o->epoch);
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    const char *const none[] = {"x", "bbb", "c"};
    assert_int_equal(live_event_filter(e, none, 3, &out), SS_OK);
    assert_int_equal(out.len, 0);
    buf_free(&out);
    live_ring_free(r);
}

static void ids_resume_within_the_window_only(void **state)
{
    (void)state;
    live_ring *r = ring_with(4, 0, 0);
    live_org *o = NULL;
    assert_int_equal(live_ring_open(r, ORG_A, &o), SS_OK);
    append(r, o, 10);
    live_ring_trim(r, o);  /* holds 7..10 */
    assert_int_equal(o->first_seq, 7);
    char id[LIVE_ID_MAX];
    uint64_t last = 0;
    live_org_id(o, 6, id);  /* every event after 6 is held */
    assert_int_equal(live_org_parse_id(o, id, &last), SS_OK);
    assert_int_equal(last, 6);
    live_org_id(o, 10, id);
    assert_int_equal(live_org_parse_id(o, id, &last), SS_OK);
    live_org_id(o, 5, id);  /* 6 is gone */
    assert_int_equal(live_org_parse_id(o, id, &last), SS_NOT_FOUND);
    live_org_id(o, 11, id);  /* not given yet */
    assert_int_equal(live_org_parse_id(o, id, &last), SS_NOT_FOUND);
    assert_int_equal(live_org_parse_id(o, "0123456789abcdef-8", &last), SS_NOT_FOUND);
    static const char *const bad[] = {"", "8", "0123456789abcdef", "0123456789abcdef-",
                                      "0123456789ABCDEF-8", "0123456789abcdef-8x",
                                      "0123456789abcdef--8", "0123456789abcdef-99999999999999999999",
                                      "0123456789abcde-8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(live_org_parse_id(o, bad[i], &last), SS_INVAL);
    live_ring_free(r);
}

static void windows_of_two_orgs_differ(void **state)
{
    (void)state;
    live_ring *r = ring_with(0, 0, 0);
    live_org *a = NULL, *b = NULL;
    assert_int_equal(live_ring_open(r, ORG_A, &a), SS_OK);
    assert_int_equal(live_ring_open(r, ORG_B, &b), SS_OK);
    append(r, a, 3);
    append(r, b, 1);
    assert_int_equal(a->next_seq, 4);
    assert_int_equal(b->next_seq, 2);  /* ids count per org */
    char id[LIVE_ID_MAX];
    uint64_t last;
    live_org_id(a, 1, id);
    assert_int_equal(live_org_parse_id(b, id, &last), SS_NOT_FOUND);
    live_ring_free(r);
}

static void append_does_not_evict_trim_does(void **state)
{
    (void)state;
    live_ring *r = ring_with(100, 0, 0);
    live_org *o = NULL;
    assert_int_equal(live_ring_open(r, ORG_A, &o), SS_OK);
    append(r, o, 250);  /* grows past the first slots and the limit */
    assert_int_equal(o->first_seq, 1);
    assert_non_null(live_org_event(o, 1));
    live_ring_trim(r, o);
    assert_int_equal(o->first_seq, 151);
    for (uint64_t s = 151; s <= 250; s++)
        assert_int_equal(live_org_event(o, s)->seq, s);
    append(r, o, 50);  /* wraps around the circular slots */
    live_ring_trim(r, o);
    for (uint64_t s = 201; s <= 300; s++)
        assert_int_equal(live_org_event(o, s)->seq, s);
    live_ring_free(r);
}

static void bytes_are_bounded_per_org_and_in_all(void **state)
{
    (void)state;
    live_ring *r = ring_with(0, 4096, 6144);
    live_org *a = NULL, *b = NULL;
    assert_int_equal(live_ring_open(r, ORG_A, &a), SS_OK);
    assert_int_equal(live_ring_open(r, ORG_B, &b), SS_OK);
    append(r, a, 200);
    live_ring_trim(r, a);
    assert_true(a->bytes <= 4096 && a->bytes > 3000);
    append(r, b, 200);
    live_ring_trim(r, b);
    assert_true(live_ring_bytes(r) <= 6144);
    assert_true(b->bytes <= 4096);
    assert_true(a->bytes < 4096 - 1000);  /* the oldest of all went first: a's */
    assert_int_equal(live_ring_bytes(r), a->bytes + b->bytes);
    live_ring_free(r);
}

static void idle_windows_are_dropped(void **state)
{
    (void)state;
    live_ring *r = ring_with(0, 0, 0);
    live_org *a = NULL, *b = NULL;
    assert_int_equal(live_ring_open(r, ORG_A, &a), SS_OK);
    assert_int_equal(live_ring_open(r, ORG_B, &b), SS_OK);
    append(r, a, 5);
    a->idle_since = 100;
    b->listener_count = 1;
    live_ring_drop_idle(r, 50);
    assert_non_null(live_ring_find(r, ORG_A));
    live_ring_drop_idle(r, 101);
    assert_null(live_ring_find(r, ORG_A));
    assert_ptr_equal(live_ring_find(r, ORG_B), b);  /* listened to */
    assert_int_equal(live_ring_bytes(r), 0);
    live_org *again = NULL;
    assert_int_equal(live_ring_open(r, ORG_A, &again), SS_OK);
    assert_int_equal(again->next_seq, 1);  /* a new window: a new epoch */
    live_ring_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_carries_its_id_and_data),
        cmocka_unit_test(filter_keeps_the_channels_named),
        cmocka_unit_test(ids_resume_within_the_window_only),
        cmocka_unit_test(windows_of_two_orgs_differ),
        cmocka_unit_test(append_does_not_evict_trim_does),
        cmocka_unit_test(bytes_are_bounded_per_org_and_in_all),
        cmocka_unit_test(idle_windows_are_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
