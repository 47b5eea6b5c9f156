/* Unit tests of src/aaa: secrets, passwords, the device token cache, the
 * login throttle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "aaa/audit_detail.h"
#include "aaa/device_cache.h"
#include "aaa/password.h"
#include "aaa/secret.h"
#include "aaa/throttle.h"
#include "core/err.h"
#include "core/limits.h"

static int setup(void **state)
{
    (void)state;
    return secret_init();
}

static void secrets_are_random_prefixed_and_hashed(void **state)
{
    (void)state;
    char a[SECRET_TEXT_MAX], b[SECRET_TEXT_MAX];
    uint8_t ha[SS_SECRET_HASH_BYTES], hb[SS_SECRET_HASH_BYTES], again[SS_SECRET_HASH_BYTES];
    secret_new(SECRET_PREFIX_DEVICE, a, ha);
    secret_new(SECRET_PREFIX_DEVICE, b, hb);
    assert_int_equal(strncmp(a, "ssd_", 4), 0);
    assert_int_equal(strlen(a), 4 + 2 * SS_SECRET_BYTES);
    assert_string_not_equal(a, b);
    assert_false(secret_hash_equal(ha, hb));
    secret_hash(a, strlen(a), again);
    assert_true(secret_hash_equal(ha, again));
    /* the hash is not the secret */
    assert_null(memmem(ha, sizeof ha, a + 4, 8));
}

static void ids_have_their_shape(void **state)
{
    (void)state;
    char id[SS_ID_LEN + 1], other[SS_ID_LEN + 1];
    secret_new_id(id);
    secret_new_id(other);
    assert_int_equal(strlen(id), SS_ID_LEN);
    assert_true(secret_id_valid(id));
    assert_string_not_equal(id, other);
    assert_false(secret_id_valid(""));
    assert_false(secret_id_valid("nope"));
    char upper[SS_ID_LEN + 1];
    memcpy(upper, id, sizeof upper);
    upper[0] = 'G';
    assert_false(secret_id_valid(upper));
    char longer[SS_ID_LEN + 2];
    snprintf(longer, sizeof longer, "%sa", id);
    assert_false(secret_id_valid(longer));
}

static void passwords_hash_and_verify(void **state)
{
    (void)state;
    char hash[STORE_PW_HASH_MAX];
    assert_int_equal(password_hash("correct horse battery", hash), 0);
    assert_non_null(strstr(hash, "$argon2id$"));
    assert_true(password_verify("correct horse battery", hash));
    assert_false(password_verify("correct horse batterx", hash));
    assert_int_equal(password_hash("elevenchars", hash), SS_INVAL);
    assert_int_equal(password_hash("twelve chars", hash), 0);
    /* the dummy hash has the real parameters, so it costs the same */
    assert_int_equal(strncmp(password_dummy_hash(), hash, strlen("$argon2id$v=19$m=65536,t=2,p=1$")), 0);
    assert_false(password_verify("correct horse battery", password_dummy_hash()));
    char generated[21];
    password_generate(generated, 20);
    assert_int_equal(strlen(generated), 20);
}

static void cache_finds_by_token_and_follows_changes(void **state)
{
    (void)state;
    device_cache *c;
    assert_int_equal(device_cache_new(&c), 0);
    uint8_t h1[SS_SECRET_HASH_BYTES], h2[SS_SECRET_HASH_BYTES];
    char token[SECRET_TEXT_MAX];
    secret_new("ssd", token, h1);
    secret_new("ssd", token, h2);
    device_cache_entry e;
    assert_int_equal(device_cache_put(c, "dev1", "org1", h1, 0), 0);
    assert_int_equal(device_cache_lookup(c, h1, &e), 0);
    assert_string_equal(e.device_id, "dev1");
    assert_string_equal(e.org_id, "org1");
    /* rotate: the old token stops working at once */
    assert_int_equal(device_cache_put(c, "dev1", "org1", h2, 0), 0);
    assert_int_equal(device_cache_lookup(c, h1, &e), SS_NOT_FOUND);
    assert_int_equal(device_cache_lookup(c, h2, &e), 0);
    assert_int_equal(device_cache_set_disabled(c, "dev1", 1), 0);
    assert_int_equal(device_cache_lookup(c, h2, &e), 0);
    assert_int_equal(e.disabled, 1);
    /* a rotation keeps the disabled flag */
    assert_int_equal(device_cache_set_token(c, "dev1", h1), 0);
    assert_int_equal(device_cache_lookup(c, h2, &e), SS_NOT_FOUND);
    assert_int_equal(device_cache_lookup(c, h1, &e), 0);
    assert_int_equal(e.disabled, 1);
    assert_int_equal(device_cache_set_token(c, "dev1", h2), 0);
    assert_int_equal(device_cache_remove(c, "dev1"), 0);
    assert_int_equal(device_cache_lookup(c, h2, &e), SS_NOT_FOUND);
    assert_int_equal(device_cache_remove(c, "dev1"), SS_NOT_FOUND);
    assert_int_equal(device_cache_set_disabled(c, "dev1", 0), SS_NOT_FOUND);
    assert_int_equal(device_cache_set_token(c, "dev1", h1), SS_NOT_FOUND);
    device_cache_free(c);
}

static void cache_grows_past_its_first_table(void **state)
{
    (void)state;
    device_cache *c;
    assert_int_equal(device_cache_new(&c), 0);
    enum { N = 5000 };
    static uint8_t hashes[N][SS_SECRET_HASH_BYTES];
    char token[SECRET_TEXT_MAX], id[32];
    for (int i = 0; i < N; i++) {
        secret_new("ssd", token, hashes[i]);
        snprintf(id, sizeof id, "dev%d", i);
        assert_int_equal(device_cache_put(c, id, "org", hashes[i], 0), 0);
    }
    assert_int_equal(device_cache_count(c), N);
    device_cache_entry e;
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "dev%d", i);
        assert_int_equal(device_cache_lookup(c, hashes[i], &e), 0);
        assert_string_equal(e.device_id, id);
    }
    device_cache_free(c);
}

/* The clock is injected: every call takes now_ms. */
#define T0 1000000LL
#define ACCOUNT "ann@example.com"
#define EVIL "192.0.2.66"
#define CLEAN "198.51.100.7"

static throttle *new_throttle(void)
{
    throttle *t;
    assert_int_equal(throttle_new(NULL, &t), 0);
    return t;
}

static void fail_n(throttle *t, const char *account, const char *addr, unsigned n, int64_t now)
{
    for (unsigned i = 0; i < n; i++)
        throttle_login_failed(t, account, addr, now);
}

/* Free failures, then a wait doubling per failure from the base. */
static void throttle_account_wait_doubles_after_free_failures(void **state)
{
    (void)state;
    throttle *t = new_throttle();
    fail_n(t, ACCOUNT, EVIL, SS_LOGIN_ACCOUNT_FREE - 1, T0);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, EVIL, 0, T0), 0);
    throttle_login_failed(t, ACCOUNT, EVIL, T0);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, EVIL, 0, T0), SS_LOGIN_DELAY_BASE_MS);
    throttle_login_failed(t, ACCOUNT, EVIL, T0);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, EVIL, 0, T0), 2 * SS_LOGIN_DELAY_BASE_MS);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, EVIL, 0, T0 + 500), 2 * SS_LOGIN_DELAY_BASE_MS - 500);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, EVIL, 0, T0 + 2 * SS_LOGIN_DELAY_BASE_MS), 0);
    /* another account from the same address is not held back by this one */
    assert_int_equal(throttle_login_wait(t, "bob@example.com", EVIL, 0, T0), 0);
    throttle_free(t);
}

/* However many failures, nobody waits longer than the cap; guessing runs
 * at one try per cap at best. */
static void throttle_wait_is_capped(void **state)
{
    (void)state;
    throttle *t = new_throttle();
    fail_n(t, ACCOUNT, EVIL, 1000, T0);
    int64_t wait = throttle_login_wait(t, ACCOUNT, EVIL, 0, T0);
    assert_int_equal(wait, SS_LOGIN_DELAY_MAX_MS);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, EVIL, 0, T0 + SS_LOGIN_DELAY_MAX_MS), 0);
    throttle_free(t);
}

/* A stranger's few failures never hold back an address that has not failed. */
static void throttle_clean_address_is_not_held_by_account(void **state)
{
    (void)state;
    throttle *t = new_throttle();
    fail_n(t, ACCOUNT, EVIL, SS_LOGIN_ACCOUNT_SPREAD - 1, T0);
    assert_true(throttle_login_wait(t, ACCOUNT, EVIL, 0, T0) > 0);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, CLEAN, 0, T0), 0);
    /* once the clean address fails too, the account's wait binds it */
    throttle_login_failed(t, ACCOUNT, CLEAN, T0 + 1);
    assert_true(throttle_login_wait(t, ACCOUNT, CLEAN, 0, T0 + 1) > 0);
    /* the right password forgets the account's failures, not the address's */
    throttle_login_ok(t, ACCOUNT);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, CLEAN, 0, T0 + 1), 0);
    assert_int_equal(throttle_login_wait(t, "bob@example.com", EVIL, 0, T0 + 1),
                     SS_LOGIN_DELAY_MAX_MS - 1);
    throttle_free(t);
}

/* An address spraying many accounts waits on its own count. */
static void throttle_address_waits_on_its_own(void **state)
{
    (void)state;
    throttle *t = new_throttle();
    char account[64];
    for (unsigned i = 0; i < SS_LOGIN_ADDR_FREE; i++) {
        snprintf(account, sizeof account, "u%u@example.com", i);
        assert_int_equal(throttle_login_wait(t, account, EVIL, 0, T0), 0);
        throttle_login_failed(t, account, EVIL, T0);
    }
    assert_int_equal(throttle_login_wait(t, "fresh@example.com", EVIL, 0, T0), SS_LOGIN_DELAY_BASE_MS);
    assert_int_equal(throttle_login_wait(t, "fresh@example.com", CLEAN, 0, T0), 0);
    throttle_free(t);
}

/* A lift forgets the account's failures and the address's earlier ones
 * for that account; later failures count again. */
static void throttle_lift_releases_account(void **state)
{
    (void)state;
    throttle *t = new_throttle();
    fail_n(t, ACCOUNT, EVIL, 40, T0);
    assert_true(throttle_login_wait(t, ACCOUNT, EVIL, 0, T0 + 10) > 0);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, EVIL, T0 + 5, T0 + 10), 0);
    throttle_login_failed(t, ACCOUNT, EVIL, T0 + 20);
    /* the address's count is back in force; the account's starts afresh */
    assert_true(throttle_login_wait(t, ACCOUNT, EVIL, T0 + 5, T0 + 20) > 0);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, CLEAN, T0 + 5, T0 + 20), 0);
    throttle_free(t);
}

/* Failures are forgotten after the forget time; the table never grows. */
static void throttle_forgets_and_stays_bounded(void **state)
{
    (void)state;
    throttle *t = new_throttle();
    fail_n(t, ACCOUNT, EVIL, 20, T0);
    assert_true(throttle_login_wait(t, ACCOUNT, EVIL, 0, T0 + 1) > 0);
    throttle_login_failed(t, ACCOUNT, EVIL, T0 + SS_LOGIN_FORGET_MS + 1);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, EVIL, 0, T0 + SS_LOGIN_FORGET_MS + 1), 0);
    char key[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        throttle_login_failed(t, key, key, T0);
    }
    throttle_free(t);
}

/* An IPv6 client cannot look clean by moving within its /64. */
static void throttle_counts_ipv6_per_64(void **state)
{
    (void)state;
    throttle *t = new_throttle();
    fail_n(t, ACCOUNT, "2001:db8:1:2::66", SS_LOGIN_ACCOUNT_SPREAD - 1, T0);
    assert_true(throttle_login_wait(t, ACCOUNT, "2001:db8:1:2:abcd::9", 0, T0) > 0);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, "2001:db8:1:3::66", 0, T0), 0);
    /* IPv4 mapped into IPv6 stays per address */
    fail_n(t, "bob@example.com", "::ffff:192.0.2.1", SS_LOGIN_ACCOUNT_SPREAD - 1, T0);
    assert_int_equal(throttle_login_wait(t, "bob@example.com", "::ffff:192.0.2.2", 0, T0), 0);
    throttle_free(t);
}

/* One fresh /64 after another of an IPv6 /48, each guessing at the
 * account the moment it may. */
static void fresh_addr(char *out, size_t cap, unsigned n)
{
    snprintf(out, cap, "2001:db8:7:%x::1", n);
}

/* Guessing spread over many clean addresses: below the spread each new
 * address is spared the account's wait; from it on every address waits,
 * never longer than the cap, so guessing stays at about one a minute. */
static void throttle_spread_guessing_binds_every_address(void **state)
{
    (void)state;
    throttle *t = new_throttle();
    char addr[64];
    unsigned n = 0;
    for (; n < SS_LOGIN_ACCOUNT_SPREAD; n++) {
        fresh_addr(addr, sizeof addr, n);
        assert_int_equal(throttle_login_wait(t, ACCOUNT, addr, 0, T0), 0);
        throttle_login_failed(t, ACCOUNT, addr, T0);
    }
    /* the next fresh address, and the rightful person's clean one, wait */
    fresh_addr(addr, sizeof addr, n++);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, addr, 0, T0), SS_LOGIN_DELAY_MAX_MS);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, CLEAN, 0, T0), SS_LOGIN_DELAY_MAX_MS);
    /* other accounts are untouched */
    assert_int_equal(throttle_login_wait(t, "bob@example.com", CLEAN, 0, T0), 0);
    /* an hour of guessing from a fresh address each time it may: about
     * one guess a minute, and nobody ever told to wait past the cap */
    unsigned guesses = 0;
    int64_t last = T0;
    for (int64_t now = T0; now < T0 + 60 * 60 * 1000; now += 100) {
        fresh_addr(addr, sizeof addr, n++);
        int64_t wait = throttle_login_wait(t, ACCOUNT, addr, 0, now);
        assert_true(wait <= SS_LOGIN_DELAY_MAX_MS);
        assert_true(throttle_login_wait(t, ACCOUNT, CLEAN, 0, now) <= SS_LOGIN_DELAY_MAX_MS);
        if (wait == 0) {
            throttle_login_failed(t, ACCOUNT, addr, now);
            guesses++;
            last = now;
        }
    }
    assert_true(guesses <= 60);
    /* a lift frees the rightful person at once */
    assert_true(throttle_login_wait(t, ACCOUNT, CLEAN, 0, last + 1) > 0);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, CLEAN, last + 1, last + 1), 0);
    throttle_free(t);
}

/* The rightful person, waiting out the cap between guesses, gets a try in
 * at most the cap; and the spread is forgotten with the failures. */
static void throttle_spread_wait_is_bounded_and_forgotten(void **state)
{
    (void)state;
    throttle *t = new_throttle();
    char addr[64];
    for (unsigned n = 0; n < 2 * SS_LOGIN_ACCOUNT_SPREAD; n++) {
        fresh_addr(addr, sizeof addr, n);
        throttle_login_failed(t, ACCOUNT, addr, T0);
    }
    int64_t wait = throttle_login_wait(t, ACCOUNT, CLEAN, 0, T0 + 1);
    assert_true(wait > 0 && wait <= SS_LOGIN_DELAY_MAX_MS);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, CLEAN, 0, T0 + 1 + wait), 0);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, CLEAN, 0, T0 + SS_LOGIN_FORGET_MS), 0);
    /* once forgotten, a fresh address is spared again */
    fresh_addr(addr, sizeof addr, 9999);
    throttle_login_failed(t, ACCOUNT, addr, T0 + SS_LOGIN_FORGET_MS);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, CLEAN, 0, T0 + SS_LOGIN_FORGET_MS), 0);
    throttle_free(t);
}

/* Configuration lowers the cap (tests run with a short one), never raises it. */
static void throttle_limits_lower_never_raise(void **state)
{
    (void)state;
    throttle_limits lim;
    throttle_limits_default(&lim);
    lim.max_ms = 2000;
    throttle *t;
    assert_int_equal(throttle_new(&lim, &t), 0);
    fail_n(t, ACCOUNT, EVIL, 100, T0);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, EVIL, 0, T0), 2000);
    throttle_free(t);
    lim.max_ms = 10 * SS_LOGIN_DELAY_MAX_MS;
    assert_int_equal(throttle_new(&lim, &t), 0);
    fail_n(t, ACCOUNT, EVIL, 100, T0);
    assert_int_equal(throttle_login_wait(t, ACCOUNT, EVIL, 0, T0), SS_LOGIN_DELAY_MAX_MS);
    throttle_free(t);
}

/* The detail as it is when it fits; values cut at a UTF-8 boundary when
 * not; the field names alone when even that does not fit. */
static void audit_detail_fits_its_room(void **state)
{
    (void)state;
    char out[SS_AUDIT_DETAIL_MAX];
    json_t *d = json_pack("{s:s,s:b}", "password", AUDIT_SECRET_CHANGED, "enabled", 1);
    audit_detail_text(d, out, sizeof out);
    assert_string_equal(out, "{\"password\":\"(changed)\",\"enabled\":true}");
    json_decref(d);

    char long_value[4 * SS_AUDIT_VALUE_MAX];
    memset(long_value, 'a', sizeof long_value - 3);
    memcpy(long_value + sizeof long_value - 3, "\xc3\xa9", 3); /* ends in an e-acute */
    long_value[SS_AUDIT_VALUE_MAX - 1] = (char)0xc3;            /* one across the cut */
    long_value[SS_AUDIT_VALUE_MAX] = (char)0xa9;
    d = json_object();
    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        json_object_set_new(d, key, json_string(long_value));
    }
    audit_detail_text(d, out, sizeof out);
    json_decref(d);
    json_t *back = json_loads(out, 0, NULL);
    assert_non_null(back);
    const char *k0 = json_string_value(json_object_get(back, "k0"));
    assert_int_equal(strlen(k0), SS_AUDIT_VALUE_MAX - 1 + 3);
    assert_string_equal(k0 + SS_AUDIT_VALUE_MAX - 1, "...");
    json_decref(back);

    d = json_object();
    for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        json_object_set_new(d, key, json_string(long_value));
    }
    audit_detail_text(d, out, sizeof out);
    json_decref(d);
    assert_memory_equal(out, "{\"changed\":[\"k0\",\"k1\",", 19);
    audit_detail_text(NULL, out, sizeof out);
    assert_string_equal(out, "{}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(secrets_are_random_prefixed_and_hashed),
        cmocka_unit_test(ids_have_their_shape),
        cmocka_unit_test(passwords_hash_and_verify),
        cmocka_unit_test(cache_finds_by_token_and_follows_changes),
        cmocka_unit_test(cache_grows_past_its_first_table),
        cmocka_unit_test(throttle_account_wait_doubles_after_free_failures),
        cmocka_unit_test(throttle_wait_is_capped),
        cmocka_unit_test(throttle_clean_address_is_not_held_by_account),
        cmocka_unit_test(throttle_address_waits_on_its_own),
        cmocka_unit_test(throttle_lift_releases_account),
        cmocka_unit_test(throttle_forgets_and_stays_bounded),
        cmocka_unit_test(throttle_limits_lower_never_raise),
        cmocka_unit_test(throttle_counts_ipv6_per_64),
        cmocka_unit_test(audit_detail_fits_its_room),
        cmocka_unit_test(throttle_spread_guessing_binds_every_address),
        cmocka_unit_test(throttle_spread_wait_is_bounded_and_forgotten),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
