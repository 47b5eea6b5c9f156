/* test_last_seen.c — devices' newest stored batch in memory, written to the
 * real SQLite store by flushes. */
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

#include "core/err.h"
#include "ingest/fanout.h"
#include "ingest/last_seen.h"
#include "store/store.h"

#define ORG_ID "0123456789abcdef01234567"
#define DEV_ID "89abcdef0123456789abcdef"
#define DEV2_ID "fedcba9876543210fedcba98"
#define GONE_ID "fedcba9876543210fedcba00"
/* Devices noted at once, past the table's first size (it grows). */
#define MANY 300

typedef struct fixture {
    char dir[64];
    store *s;
    store_conn *c;
    last_seen *ls;
} fixture;

static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    rmdir(path);
}

static void create_device(store_conn *c, const char *id, uint8_t token_byte)
{
    store_device d = {0};
    snprintf(d.id, sizeof d.id, "%s", id);
    snprintf(d.org_id, sizeof d.org_id, "%s", ORG_ID);
    snprintf(d.name, sizeof d.name, "%s", id);
    memset(d.token_hash, token_byte, sizeof d.token_hash);
    d.created_at = 1;
    assert_int_equal(store_device_create(c, &d), SS_OK);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/ss_test_last_seen_XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    store_options opt = {.url = "sqlite:", .data_dir = fx->dir,
                         .durability = STORE_DURABILITY_NORMAL};
    char why[256] = "";
    if (store_open(&opt, &fx->s, why, sizeof why) != SS_OK)
        fail_msg("store_open: %s", why);
    assert_int_equal(store_conn_acquire(fx->s, &fx->c), SS_OK);
    store_org org = {.id = ORG_ID, .name = "org", .created_at = 1};
    assert_int_equal(store_org_create(fx->c, &org), SS_OK);
    create_device(fx->c, DEV_ID, 1);
    create_device(fx->c, DEV2_ID, 2);
    assert_int_equal(last_seen_new(&fx->ls), SS_OK);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    last_seen_free(fx->ls);
    store_conn_release(fx->s, fx->c);
    store_close(fx->s);
    remove_dir(fx->dir);
    free(fx);
    return 0;
}

static store_device load(fixture *fx, const char *id)
{
    store_device d;
    assert_int_equal(store_device_get(fx->c, id, &d), SS_OK);
    return d;
}

static void test_noted_batch_shows_before_and_after_a_flush(void **state)
{
    fixture *fx = *state;
    store_device d = load(fx, DEV_ID);
    last_seen_apply(fx->ls, &d);
    assert_int_equal(d.last_seen, 0);
    assert_int_equal(last_seen_note(fx->ls, DEV_ID, 1000, "tcp"), SS_OK);
    assert_int_equal(last_seen_note(fx->ls, DEV_ID, 900, "udp"), SS_OK);  /* older: kept out */
    d = load(fx, DEV_ID);
    assert_int_equal(d.last_seen, 0);  /* not written yet */
    last_seen_apply(fx->ls, &d);
    assert_int_equal(d.last_seen, 1000);
    assert_string_equal(d.last_protocol, "tcp");
    assert_int_equal(last_seen_flush(fx->ls, fx->c), SS_OK);
    d = load(fx, DEV_ID);
    assert_int_equal(d.last_seen, 1000);
    assert_string_equal(d.last_protocol, "tcp");
    /* Written and forgotten: the store's value stands. */
    d.last_seen = 5;
    last_seen_apply(fx->ls, &d);
    assert_int_equal(d.last_seen, 5);
    d = load(fx, DEV2_ID);
    assert_int_equal(d.last_seen, 0);
}

static void test_fanout_batches_are_noted(void **state)
{
    fixture *fx = *state;
    fanout *f;
    assert_int_equal(fanout_new(&f), SS_OK);
    fanout_subscribe(f, last_seen_sub(fx->ls));
    ss_reading r = {.ts = 1, .value = 2};
    snprintf(r.channel, sizeof r.channel, "t");
    ss_readings rs = {.items = &r, .len = 1, .cap = 1};
    ingest_item it = {.readings = rs, .protocol = "mqtts", .received_at = 4242};
    snprintf(it.device_id, sizeof it.device_id, "%s", DEV2_ID);
    snprintf(it.org_id, sizeof it.org_id, "%s", ORG_ID);
    fanout_offer(f, &it);
    fanout_free(f);
    store_device d = load(fx, DEV2_ID);
    last_seen_apply(fx->ls, &d);
    assert_int_equal(d.last_seen, 4242);
    assert_string_equal(d.last_protocol, "mqtts");
}

static void test_many_devices_and_one_gone(void **state)
{
    fixture *fx = *state;
    char id[SS_ID_LEN + 1];
    for (int i = 0; i < MANY; i++) {
        snprintf(id, sizeof id, "c%023d", i);
        assert_int_equal(last_seen_note(fx->ls, id, 100 + i, "http"), SS_OK);
    }
    assert_int_equal(last_seen_note(fx->ls, GONE_ID, 7, "http"), SS_OK);
    assert_int_equal(last_seen_note(fx->ls, DEV_ID, 77, "https"), SS_OK);
    for (int i = 0; i < MANY; i++) {
        store_device d = {0};
        snprintf(d.id, sizeof d.id, "c%023d", i);
        last_seen_apply(fx->ls, &d);
        assert_int_equal(d.last_seen, 100 + i);
    }
    /* A device that is gone is skipped by the store's write, not an error. */
    assert_int_equal(last_seen_flush(fx->ls, fx->c), SS_OK);
    store_device d = load(fx, DEV_ID);
    assert_int_equal(d.last_seen, 77);
    assert_string_equal(d.last_protocol, "https");
    /* Nothing left to write. */
    assert_int_equal(last_seen_flush(fx->ls, fx->c), SS_OK);
    assert_int_equal(last_seen_flush(NULL, fx->c), SS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_noted_batch_shows_before_and_after_a_flush, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fanout_batches_are_noted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_devices_and_one_gone, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
