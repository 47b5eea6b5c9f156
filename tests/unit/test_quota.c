/* Unit tests of src/aaa/quota.c: limits per UTC day, reservations, and a
 * child's usage counting toward every ancestor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "aaa/quota.h"
#include "core/err.h"

#define DAY 86400000LL
#define NOW (20000 * DAY + 1000)

static quota *tree(void)
{
    quota *q;
    assert_int_equal(quota_new(&q), 0);
    assert_int_equal(quota_set_org(q, "root", ""), 0);
    assert_int_equal(quota_set_org(q, "child", "root"), 0);
    assert_int_equal(quota_set_org(q, "grandchild", "child"), 0);
    assert_int_equal(quota_set_org(q, "other", ""), 0);
    return q;
}

/* A reservation of no readings is refused only when bytes are used up (or
 * readings already over): the bytes check every message gets. */
static int out_of_bytes(quota *q, const char *org_id, int64_t now)
{
    return quota_reserve_readings(q, org_id, 0, now, NULL);
}

static void unlimited_by_default(void **state)
{
    (void)state;
    quota *q = tree();
    assert_int_equal(quota_reserve_readings(q, "grandchild", 1000000, NOW, NULL), 0);
    quota_finish_readings(q, "grandchild", 1000000, 1, NOW, NULL);
    assert_int_equal(out_of_bytes(q, "grandchild", NOW), 0);
    quota_free(q);
}

static void limit_n_passes_n_plus_one_refused_whole(void **state)
{
    (void)state;
    quota *q = tree();
    quota_limits l = {.max_readings_per_day = 10};
    assert_int_equal(quota_set_limits(q, "root", &l), 0);
    assert_int_equal(quota_reserve_readings(q, "root", 7, NOW, NULL), 0);
    quota_finish_readings(q, "root", 7, 1, NOW, NULL);
    assert_int_equal(quota_reserve_readings(q, "root", 4, NOW, NULL), SS_QUOTA);
    assert_int_equal(quota_reserve_readings(q, "root", 3, NOW, NULL), 0);
    quota_finish_readings(q, "root", 3, 1, NOW, NULL);
    assert_int_equal(quota_reserve_readings(q, "root", 1, NOW, NULL), SS_QUOTA);
    quota_free(q);
}

static void child_usage_counts_toward_ancestors(void **state)
{
    (void)state;
    quota *q = tree();
    quota_limits l = {.max_readings_per_day = 5};
    assert_int_equal(quota_set_limits(q, "root", &l), 0);
    assert_int_equal(quota_reserve_readings(q, "grandchild", 5, NOW, NULL), 0);
    quota_finish_readings(q, "grandchild", 5, 1, NOW, NULL);
    assert_int_equal(quota_reserve_readings(q, "child", 1, NOW, NULL), SS_QUOTA);
    assert_int_equal(quota_reserve_readings(q, "root", 1, NOW, NULL), SS_QUOTA);
    assert_int_equal(quota_reserve_readings(q, "other", 1, NOW, NULL), 0);
    quota_free(q);
}

static void reservations_block_concurrent_batches_and_release(void **state)
{
    (void)state;
    quota *q = tree();
    quota_limits l = {.max_readings_per_day = 10};
    assert_int_equal(quota_set_limits(q, "child", &l), 0);
    assert_int_equal(quota_reserve_readings(q, "child", 8, NOW, NULL), 0);
    /* in flight: a second batch may not assume the first fails */
    assert_int_equal(quota_reserve_readings(q, "grandchild", 3, NOW, NULL), SS_QUOTA);
    quota_finish_readings(q, "child", 8, 0, NOW, NULL);  /* store refused it */
    assert_int_equal(quota_reserve_readings(q, "grandchild", 10, NOW, NULL), 0);
    quota_finish_readings(q, "grandchild", 10, 1, NOW, NULL);
    assert_int_equal(quota_reserve_readings(q, "grandchild", 1, NOW, NULL), SS_QUOTA);
    quota_free(q);
}

static void new_utc_day_starts_afresh(void **state)
{
    (void)state;
    quota *q = tree();
    quota_limits l = {.max_readings_per_day = 2, .max_bytes_per_day = 100};
    assert_int_equal(quota_set_limits(q, "root", &l), 0);
    quota_load_usage(q, "child", 2, 100, NOW);
    assert_int_equal(quota_reserve_readings(q, "root", 1, NOW, NULL), SS_QUOTA);
    assert_int_equal(out_of_bytes(q, "grandchild", NOW), SS_QUOTA);
    assert_int_equal(quota_reserve_readings(q, "root", 1, NOW + DAY, NULL), 0);
    assert_int_equal(out_of_bytes(q, "grandchild", NOW + DAY), 0);
    quota_free(q);
}

static void deleting_an_org_releases_its_reservations(void **state)
{
    (void)state;
    quota *q = tree();
    quota_limits l = {.max_readings_per_day = 10};
    assert_int_equal(quota_set_limits(q, "root", &l), 0);
    assert_int_equal(quota_reserve_readings(q, "grandchild", 8, NOW, NULL), 0);
    quota_remove_org(q, "grandchild");
    quota_finish_readings(q, "grandchild", 8, 0, NOW, NULL);
    assert_int_equal(quota_reserve_readings(q, "root", 10, NOW, NULL), 0);
    quota_free(q);
}

static void bytes_limit(void **state)
{
    (void)state;
    quota *q = tree();
    quota_limits l = {.max_bytes_per_day = 1000};
    assert_int_equal(quota_set_limits(q, "child", &l), 0);
    quota_add_bytes(q, "grandchild", 999, NOW);
    assert_int_equal(out_of_bytes(q, "child", NOW), 0);
    quota_add_bytes(q, "grandchild", 1, NOW);
    assert_int_equal(out_of_bytes(q, "grandchild", NOW), SS_QUOTA);
    assert_int_equal(quota_reserve_readings(q, "grandchild", 1, NOW, NULL), SS_QUOTA);
    assert_int_equal(out_of_bytes(q, "root", NOW), 0);
    quota_free(q);
}

static void unknown_and_removed_orgs(void **state)
{
    (void)state;
    quota *q = tree();
    quota_limits l = {.max_readings_per_day = 1};
    assert_int_equal(quota_set_limits(q, "nope", &l), SS_NOT_FOUND);
    assert_int_equal(quota_reserve_readings(q, "nope", 5, NOW, NULL), 0);
    quota_remove_org(q, "other");
    assert_int_equal(quota_set_limits(q, "other", &l), SS_NOT_FOUND);
    for (int i = 0; i < 2000; i++) {
        char id[32];
        snprintf(id, sizeof id, "org%d", i);
        assert_int_equal(quota_set_org(q, id, "root"), 0);
    }
    assert_int_equal(quota_set_limits(q, "org1999", &l), 0);
    quota_free(q);
}

static void refs_skip_the_lookup_and_die_with_their_org(void **state)
{
    (void)state;
    quota *q = tree();
    quota_limits l = {.max_readings_per_day = 10};
    assert_int_equal(quota_set_limits(q, "root", &l), 0);
    quota_ref ref = {0};
    assert_int_equal(quota_reserve_readings(q, "grandchild", 4, NOW, &ref), 0);
    assert_non_null(ref.org);
    quota_finish_readings(q, "grandchild", 4, 1, NOW, &ref);
    /* the ref outlives another org's removal: looked up again, same org */
    quota_remove_org(q, "other");
    assert_int_equal(quota_reserve_readings(q, "grandchild", 6, NOW, &ref), 0);
    quota_finish_readings(q, "grandchild", 6, 1, NOW, &ref);
    assert_int_equal(quota_reserve_readings(q, "root", 1, NOW, NULL), SS_QUOTA);
    /* its own org removed, the ref finds nothing (and touches no freed memory) */
    quota_remove_org(q, "grandchild");
    assert_int_equal(quota_reserve_readings(q, "grandchild", 100, NOW, &ref), 0);
    assert_null(ref.org);
    quota_free(q);
}

static void parent_known_after_its_child(void **state)
{
    (void)state;
    quota *q;
    assert_int_equal(quota_new(&q), 0);
    assert_int_equal(quota_set_org(q, "kid", "mum"), 0);
    quota_ref ref = {0};
    assert_int_equal(quota_reserve_readings(q, "kid", 5, NOW, &ref), 0);
    quota_finish_readings(q, "kid", 5, 1, NOW, &ref);
    assert_int_equal(quota_set_org(q, "mum", ""), 0);
    quota_limits l = {.max_readings_per_day = 3};
    assert_int_equal(quota_set_limits(q, "mum", &l), 0);
    assert_int_equal(quota_reserve_readings(q, "kid", 3, NOW, &ref), 0);
    quota_finish_readings(q, "kid", 3, 1, NOW, &ref);
    assert_int_equal(quota_reserve_readings(q, "kid", 1, NOW, &ref), SS_QUOTA);
    quota_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unlimited_by_default),
        cmocka_unit_test(limit_n_passes_n_plus_one_refused_whole),
        cmocka_unit_test(child_usage_counts_toward_ancestors),
        cmocka_unit_test(reservations_block_concurrent_batches_and_release),
        cmocka_unit_test(new_utc_day_starts_afresh),
        cmocka_unit_test(bytes_limit),
        cmocka_unit_test(deleting_an_org_releases_its_reservations),
        cmocka_unit_test(unknown_and_removed_orgs),
        cmocka_unit_test(refs_skip_the_lookup_and_die_with_their_org),
        cmocka_unit_test(parent_known_after_its_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
