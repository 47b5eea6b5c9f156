/* test_queue.c — the ingest queue against the real SQLite store.
 *
 * Every test counts its callbacks, checks their order, finds the readings
 * in the store afterwards, and ends with uv_loop_close() == 0 (no handle
 * left behind). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "core/err.h"
#include "core/limits.h"
#include "ingest/queue.h"
#include "ingest/reading.h"
#include "store/store.h"

#define ORG_ID "0123456789abcdef01234567"
#define DEV_ID "89abcdef0123456789abcdef"
#define DEV2_ID "fedcba9876543210fedcba98"
#define BASE_TS 1732480000000LL
/* A test that hangs is a failure, not a stuck CI job. */
#define WATCHDOG_MS 30000u
#define ITEMS_MAX 16

typedef struct fixture fixture;

typedef struct test_item {
    ingest_item item;
    fixture *fx;
    int index;
} test_item;

struct fixture {
    char dir[64];
    store *s;
    uv_loop_t loop;
    uv_timer_t watchdog;
    ingest_queue *q;

    test_item items[ITEMS_MAX];
    int n_items;
    /* Callback log: +i for on_commit of item i, -(i+1) for its done. */
    int events[4 * ITEMS_MAX];
    int n_events;
    int done_count;
    int done_status[ITEMS_MAX];
    int done_order[ITEMS_MAX];
    size_t depth_at_done[ITEMS_MAX];
    int commit_ctx_ok;
    /* Behaviours switched on per test. */
    int stop_when_done;     /* uv_stop the loop after this many dones */
    int stop_queue_in_done; /* call ingest_queue_stop inside the first done */
    int resubmit_in_done;   /* the first done submits item `resubmit_index` */
    int resubmit_index;
};

/* ---- store set-up -------------------------------------------------------- */

static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
    rmdir(path);
}

static void create_device(store_conn *c, const char *id, uint8_t token_byte)
{
    store_device d = {0};
    strcpy(d.id, id);
    strcpy(d.org_id, ORG_ID);
    strcpy(d.name, id);
    memset(d.token_hash, token_byte, sizeof d.token_hash);
    d.created_at = BASE_TS;
    assert_int_equal(store_device_create(c, &d), SS_OK);
}

static void watchdog_cb(uv_timer_t *t)
{
    (void)t;
    fail_msg("the queue did not complete its items within %u ms", WATCHDOG_MS);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/ss_test_queue_XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    store_options opt = {.url = "sqlite:", .data_dir = fx->dir,
                         .durability = STORE_DURABILITY_NORMAL};
    char errbuf[256] = "";
    int rc = store_open(&opt, &fx->s, errbuf, sizeof errbuf);
    if (rc != SS_OK)
        fail_msg("store_open: %s", errbuf);
    store_conn *c;
    assert_int_equal(store_conn_acquire(fx->s, &c), SS_OK);
    store_org org = {.id = ORG_ID, .name = "test org", .created_at = BASE_TS};
    assert_int_equal(store_org_create(c, &org), SS_OK);
    create_device(c, DEV_ID, 0x11);
    create_device(c, DEV2_ID, 0x22);
    store_conn_release(fx->s, c);

    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(uv_timer_init(&fx->loop, &fx->watchdog), 0);
    assert_int_equal(uv_timer_start(&fx->watchdog, watchdog_cb, WATCHDOG_MS, 0), 0);
    uv_unref((uv_handle_t *)&fx->watchdog);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    for (int i = 0; i < fx->n_items; i++)
        readings_free(&fx->items[i].item.readings);
    store_close(fx->s);
    remove_dir(fx->dir);
    free(fx);
    return 0;
}

/* ---- items and callbacks ------------------------------------------------- */

static void on_commit(void *ctx, const ingest_item *item)
{
    fixture *fx = ctx;
    const test_item *ti = (const test_item *)item;
    fx->commit_ctx_ok += (ti->fx == fx);
    fx->events[fx->n_events++] = ti->index;
}

static void on_done(ingest_item *item, int status)
{
    test_item *ti = (test_item *)item;
    fixture *fx = ti->fx;
    fx->events[fx->n_events++] = -(ti->index + 1);
    fx->done_status[ti->index] = status;
    fx->done_order[fx->done_count] = ti->index;
    fx->depth_at_done[fx->done_count] = fx->q ? ingest_queue_depth(fx->q) : 0;
    fx->done_count++;
    if (fx->resubmit_in_done) {
        fx->resubmit_in_done = 0;
        ingest_queue_submit(fx->q, &fx->items[fx->resubmit_index].item);
    }
    if (fx->stop_queue_in_done) {
        fx->stop_queue_in_done = 0;
        ingest_queue_stop(fx->q);
        fx->q = NULL;
    }
    if (fx->stop_when_done && fx->done_count == fx->stop_when_done)
        uv_stop(&fx->loop);
}

/* Item i: `n` readings of channel `ch` at BASE_TS + first_ts_offset + k. */
static test_item *make_item(fixture *fx, const char *device, const char *ch, size_t n,
                            int64_t first_ts_offset)
{
    assert_true(fx->n_items < ITEMS_MAX);
    test_item *ti = &fx->items[fx->n_items];
    *ti = (test_item){.fx = fx, .index = fx->n_items};
    fx->n_items++;
    strcpy(ti->item.device_id, device);
    strcpy(ti->item.org_id, ORG_ID);
    ti->item.done = on_done;
    ti->item.data = fx;
    for (size_t k = 0; k < n; k++) {
        int64_t ts = BASE_TS + first_ts_offset + (int64_t)k;
        assert_int_equal(readings_push(&ti->item.readings, ch, strlen(ch), ts, (double)ts), SS_OK);
    }
    fx->done_status[ti->index] = 12345; /* overwritten by done */
    return ti;
}

static void start_queue(fixture *fx)
{
    assert_int_equal(ingest_queue_start(&fx->loop, fx->s, on_commit, fx, &fx->q), SS_OK);
    assert_non_null(fx->q);
    assert_int_equal(ingest_queue_depth(fx->q), 0);
}

static void submit_all(fixture *fx)
{
    for (int i = 0; i < fx->n_items; i++) {
        ingest_queue_submit(fx->q, &fx->items[i].item);
        assert_int_equal(ingest_queue_depth(fx->q), (size_t)i + 1);
    }
}

/* Stops the queue (unless a callback already did) and lets its handle close. */
static void stop_queue(fixture *fx)
{
    if (fx->q) {
        ingest_queue_stop(fx->q);
        fx->q = NULL;
    }
    uv_run(&fx->loop, UV_RUN_DEFAULT);
}

typedef struct points {
    size_t n;
    int64_t first_ts;
    int64_t last_ts;
    int values_match;
} points;

static int count_point(void *ctx, int64_t ts, double value)
{
    points *p = ctx;
    if (p->n == 0)
        p->first_ts = ts;
    p->last_ts = ts;
    p->values_match += (value == (double)ts);
    p->n++;
    return 0;
}

static points query_points(fixture *fx, const char *device, const char *ch)
{
    store_conn *c;
    assert_int_equal(store_conn_acquire(fx->s, &c), SS_OK);
    store_query q = {.device_id = device, .channel = ch, .from = BASE_TS,
                     .to = BASE_TS + 10000000, .limit = SS_QUERY_LIMIT_MAX};
    points p = {0};
    /* Pages of at most SS_QUERY_LIMIT_MAX points, each after the last. */
    for (;;) {
        size_t before = p.n;
        assert_int_equal(store_query_points(c, &q, count_point, &p), SS_OK);
        if (p.n - before < q.limit)
            break;
        q.from = p.last_ts + 1;
    }
    store_conn_release(fx->s, c);
    return p;
}

/* Every item done once with 0, in submission order, each on_commit just
 * before its done. */
static void assert_all_done_in_order(const fixture *fx)
{
    assert_int_equal(fx->done_count, fx->n_items);
    assert_int_equal(fx->n_events, 2 * fx->n_items);
    assert_int_equal(fx->commit_ctx_ok, fx->n_items);
    for (int i = 0; i < fx->n_items; i++) {
        assert_int_equal(fx->done_status[i], SS_OK);
        assert_int_equal(fx->done_order[i], i);
        assert_int_equal(fx->events[2 * i], i);
        assert_int_equal(fx->events[2 * i + 1], -(i + 1));
    }
}

/* ---- tests ----------------------------------------------------------------- */

static void test_queue_items_submitted_together_complete_in_order(void **state)
{
    fixture *fx = *state;
    make_item(fx, DEV_ID, "temp", 3, 0);
    make_item(fx, DEV_ID, "temp", 2, 100);
    make_item(fx, DEV_ID, "rh", 0, 0); /* no readings: still completes with 0 */
    make_item(fx, DEV2_ID, "temp", 4, 0);
    make_item(fx, DEV_ID, "rh", 1, 7);
    start_queue(fx);
    submit_all(fx);
    fx->stop_when_done = fx->n_items;
    uv_run(&fx->loop, UV_RUN_DEFAULT);

    assert_all_done_in_order(fx);
    for (int i = 0; i < fx->n_items; i++)
        assert_int_equal(fx->depth_at_done[i], (size_t)(fx->n_items - i - 1));
    assert_int_equal(ingest_queue_depth(fx->q), 0);
    stop_queue(fx);

    points p = query_points(fx, DEV_ID, "temp");
    assert_int_equal(p.n, 5);
    assert_int_equal(p.first_ts, BASE_TS);
    assert_int_equal(p.last_ts, BASE_TS + 101);
    assert_int_equal(p.values_match, 5);
    assert_int_equal(query_points(fx, DEV_ID, "rh").n, 1);
    assert_int_equal(query_points(fx, DEV2_ID, "temp").n, 4);
}

static void test_queue_stop_completes_pending_items(void **state)
{
    fixture *fx = *state;
    for (int i = 0; i < 6; i++)
        make_item(fx, DEV_ID, "temp", 10, i * 10);
    start_queue(fx);
    submit_all(fx);
    /* The loop never ran: every completion is delivered by stop itself. */
    ingest_queue_stop(fx->q);
    fx->q = NULL;
    assert_all_done_in_order(fx);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(query_points(fx, DEV_ID, "temp").n, 60);
}

static void test_queue_stop_commits_items_submitted_by_done(void **state)
{
    fixture *fx = *state;
    make_item(fx, DEV_ID, "a", 1, 0);
    make_item(fx, DEV_ID, "a", 1, 1);
    make_item(fx, DEV_ID, "a", 1, 2); /* submitted by item 0's done */
    start_queue(fx);
    ingest_queue_submit(fx->q, &fx->items[0].item);
    ingest_queue_submit(fx->q, &fx->items[1].item);
    fx->resubmit_in_done = 1;
    fx->resubmit_index = 2;
    stop_queue(fx);
    assert_all_done_in_order(fx);
    assert_int_equal(query_points(fx, DEV_ID, "a").n, 3);
}

static void test_queue_stop_inside_done_delivers_the_rest(void **state)
{
    fixture *fx = *state;
    for (int i = 0; i < 4; i++)
        make_item(fx, DEV_ID, "b", 2, i * 2);
    start_queue(fx);
    submit_all(fx);
    fx->stop_queue_in_done = 1;
    /* Returns once the stopped queue's handle has closed: nothing else holds
     * the loop (the watchdog is unreferenced). */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_null(fx->q);
    assert_all_done_in_order(fx);
    assert_int_equal(query_points(fx, DEV_ID, "b").n, 8);
}

static void test_queue_empty_start_stop(void **state)
{
    fixture *fx = *state;
    start_queue(fx);
    stop_queue(fx);
    assert_int_equal(fx->done_count, 0);
}

static void test_queue_resubmit_after_done_reuses_item(void **state)
{
    fixture *fx = *state;
    test_item *ti = make_item(fx, DEV_ID, "r", 2, 0);
    start_queue(fx);
    fx->stop_when_done = 1;
    ingest_queue_submit(fx->q, &ti->item);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->done_count, 1);
    /* The item is the submitter's again: refill and submit it once more. */
    readings_reset(&ti->item.readings);
    assert_int_equal(readings_push(&ti->item.readings, "r", 1, BASE_TS + 50, BASE_TS + 50), SS_OK);
    fx->stop_when_done = 2;
    ingest_queue_submit(fx->q, &ti->item);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->done_count, 2);
    assert_int_equal(fx->done_status[0], SS_OK);
    stop_queue(fx);
    assert_int_equal(query_points(fx, DEV_ID, "r").n, 3);
}

/* Group commit is capped at SS_COMMIT_READINGS_MAX readings, yet an item
 * bigger than the cap still goes through on its own. */
static void test_queue_commit_cap_splits_but_never_starves(void **state)
{
    fixture *fx = *state;
    size_t half = SS_COMMIT_READINGS_MAX / 2 + 1;
    make_item(fx, DEV_ID, "big", half, 0);
    make_item(fx, DEV_ID, "big", half, (int64_t)half);
    make_item(fx, DEV_ID, "big", SS_COMMIT_READINGS_MAX + 1, 2 * (int64_t)half);
    make_item(fx, DEV_ID, "big", 0, 0);
    start_queue(fx);
    submit_all(fx);
    fx->stop_when_done = fx->n_items;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_all_done_in_order(fx);
    stop_queue(fx);
    points p = query_points(fx, DEV_ID, "big");
    assert_int_equal(p.n, 2 * half + SS_COMMIT_READINGS_MAX + 1);
    assert_int_equal(p.values_match, p.n);
}

/* A reading with the same device, channel and ts replaces the stored one:
 * a retried batch does not double. */
static void test_queue_retried_batch_does_not_double(void **state)
{
    fixture *fx = *state;
    make_item(fx, DEV_ID, "dup", 5, 0);
    make_item(fx, DEV_ID, "dup", 5, 0);
    start_queue(fx);
    submit_all(fx);
    stop_queue(fx);
    assert_all_done_in_order(fx);
    assert_int_equal(query_points(fx, DEV_ID, "dup").n, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_queue_items_submitted_together_complete_in_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_stop_completes_pending_items, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queue_stop_commits_items_submitted_by_done, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queue_stop_inside_done_delivers_the_rest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queue_empty_start_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_resubmit_after_done_reuses_item, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queue_commit_cap_splits_but_never_starves, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queue_retried_batch_does_not_double, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
