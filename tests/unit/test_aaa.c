/* Unit tests of src/aaa: secrets, passwords, the device token cache, the
 * login throttle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "aaa/device_cache.h"
#include "aaa/password.h"
#include "aaa/secret.h"
#include "aaa/throttle.h"
#include "core/err.h"

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

static void throttle_blocks_after_max_failures(void **state)
{
    (void)state;
    throttle *t;
    assert_int_equal(throttle_new(&t), 0);
    int64_t now = 1000000;
    for (unsigned i = 0; i < SS_LOGIN_FAILURES_MAX - 1; i++)
        throttle_fail(t, "user:a", now);
    assert_int_equal(throttle_check(t, "user:a", now), 0);
    throttle_fail(t, "user:a", now);
    assert_true(throttle_check(t, "user:a", now) > 0);
    assert_int_equal(throttle_check(t, "user:b", now), 0);
    assert_int_equal(throttle_check(t, "user:a", now + SS_LOGIN_WINDOW_MS), 0);
    throttle_clear(t, "user:a");
    assert_int_equal(throttle_check(t, "user:a", now), 0);
    /* spraying keys cannot grow memory or evict beyond the table */
    char key[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "addr:%d", i);
        throttle_fail(t, key, now);
    }
    throttle_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(secrets_are_random_prefixed_and_hashed),
        cmocka_unit_test(ids_have_their_shape),
        cmocka_unit_test(passwords_hash_and_verify),
        cmocka_unit_test(cache_finds_by_token_and_follows_changes),
        cmocka_unit_test(cache_grows_past_its_first_table),
        cmocka_unit_test(throttle_blocks_after_max_failures),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
