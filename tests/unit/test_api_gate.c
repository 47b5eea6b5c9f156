/* test_api_gate.c — the heavy requests' shares of the worker pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/limits.h"
#include "http/api_gate.h"

static int setup(void **state)
{
    api_gate *g = NULL;
    if (api_gate_new(&g) != SS_OK)
        return -1;
    *state = g;
    return 0;
}

static int teardown(void **state)
{
    api_gate_free(*state);
    return 0;
}

static void key_of(api_gate *g, const char *text, uint8_t key[API_GATE_KEY_BYTES])
{
    api_gate_key(g, text, strlen(text), key);
}

static void test_principal_share_and_release(void **state)
{
    api_gate *g = *state;
    uint8_t a[API_GATE_KEY_BYTES], b[API_GATE_KEY_BYTES], a2[API_GATE_KEY_BYTES];
    key_of(g, "token-a", a);
    key_of(g, "token-b", b);
    key_of(g, "token-a", a2);
    assert_memory_equal(a, a2, API_GATE_KEY_BYTES);
    assert_memory_not_equal(a, b, API_GATE_KEY_BYTES);
    for (unsigned i = 0; i < SS_API_HEAVY_PER_PRINCIPAL; i++)
        assert_int_equal(api_gate_enter_principal(g, a), SS_OK);
    assert_int_equal(api_gate_enter_principal(g, a), SS_BUSY);
    /* Another credential has its own share. */
    assert_int_equal(api_gate_enter_principal(g, b), SS_OK);
    api_gate_leave_principal(g, a);
    assert_int_equal(api_gate_enter_principal(g, a), SS_OK);
    assert_int_equal(api_gate_enter_principal(g, a), SS_BUSY);
    for (unsigned i = 0; i < SS_API_HEAVY_PER_PRINCIPAL; i++)
        api_gate_leave_principal(g, a);
    api_gate_leave_principal(g, b);
    /* Leaving more than entered changes nothing. */
    api_gate_leave_principal(g, b);
    assert_int_equal(api_gate_enter_principal(g, b), SS_OK);
}

static void test_queued_max_bounds_all_credentials(void **state)
{
    api_gate *g = *state;
    uint8_t k[API_GATE_KEY_BYTES];
    char text[32];
    for (unsigned i = 0; i < SS_API_HEAVY_QUEUED_MAX; i++) {
        snprintf(text, sizeof text, "token-%u", i);
        key_of(g, text, k);
        assert_int_equal(api_gate_enter_principal(g, k), SS_OK);
    }
    key_of(g, "one-more", k);
    assert_int_equal(api_gate_enter_principal(g, k), SS_BUSY);
    key_of(g, "token-7", k);
    api_gate_leave_principal(g, k);
    key_of(g, "one-more", k);
    assert_int_equal(api_gate_enter_principal(g, k), SS_OK);
}

static void test_org_share_and_running_max(void **state)
{
    api_gate *g = *state;
    _Static_assert(SS_API_HEAVY_PER_ORG < SS_API_HEAVY_RUNNING_MAX, "test assumes it");
    for (unsigned i = 0; i < SS_API_HEAVY_PER_ORG; i++)
        assert_int_equal(api_gate_enter_org(g, "org-a"), SS_OK);
    assert_false(api_gate_has_room(g, "org-a"));
    assert_int_equal(api_gate_enter_org(g, "org-a"), SS_BUSY);
    assert_true(api_gate_has_room(g, "org-b"));
    unsigned taken = SS_API_HEAVY_PER_ORG;
    char org[16];
    for (unsigned i = 0; taken < SS_API_HEAVY_RUNNING_MAX; i++, taken++) {
        snprintf(org, sizeof org, "org-%u", i);
        assert_int_equal(api_gate_enter_org(g, org), SS_OK);
    }
    /* The pool's heavy share is taken: nobody else runs, even a new org. */
    assert_false(api_gate_has_room(g, "org-z"));
    assert_int_equal(api_gate_enter_org(g, "org-z"), SS_BUSY);
    api_gate_leave_org(g, "org-a");
    assert_true(api_gate_has_room(g, "org-a"));
    assert_int_equal(api_gate_enter_org(g, "org-z"), SS_OK);
    assert_int_equal(api_gate_enter_org(g, "org-a"), SS_BUSY);
}

static void test_sign_in_has_a_share_within_running_max(void **state)
{
    api_gate *g = *state;
    _Static_assert(SS_API_SIGN_IN_RUNNING_MAX < SS_API_HEAVY_RUNNING_MAX, "test assumes it");
    for (unsigned i = 0; i < SS_API_SIGN_IN_RUNNING_MAX; i++)
        assert_int_equal(api_gate_enter_org(g, API_GATE_SIGN_IN), SS_OK);
    /* Sign-ins from any number of addresses hold no more than their share. */
    assert_false(api_gate_has_room(g, API_GATE_SIGN_IN));
    assert_int_equal(api_gate_enter_org(g, API_GATE_SIGN_IN), SS_BUSY);
    /* They count in the pool's heavy total: the worker kept for light
     * requests stays free. */
    unsigned taken = SS_API_SIGN_IN_RUNNING_MAX;
    char org[16];
    for (unsigned i = 0; taken < SS_API_HEAVY_RUNNING_MAX; i++, taken++) {
        snprintf(org, sizeof org, "org-%u", i);
        assert_int_equal(api_gate_enter_org(g, org), SS_OK);
    }
    assert_int_equal(api_gate_enter_org(g, "org-z"), SS_BUSY);
    api_gate_leave_org(g, API_GATE_SIGN_IN);
    assert_true(api_gate_has_room(g, API_GATE_SIGN_IN));
    assert_int_equal(api_gate_enter_org(g, API_GATE_SIGN_IN), SS_OK);
    assert_int_equal(api_gate_enter_org(g, "org-z"), SS_BUSY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_principal_share_and_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_max_bounds_all_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_org_share_and_running_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_in_has_a_share_within_running_max, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
