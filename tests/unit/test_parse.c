/* test_parse.c — the JSON (SPEC §3.1) and line (SPEC §3.2) reading parsers.
 *
 * Every input is copied to the end of a malloc'd buffer of exactly its size,
 * so under ASan a read past `len` is caught. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/limits.h"
#include "ingest/parse.h"
#include "core/reading.h"

/* 2024-11-24T20:31:40Z: five minutes after the SPEC examples' ts. */
#define NOW 1732480300000LL
#define SPEC_TS 1732480000000LL
#define MAX SS_INGEST_READINGS_MAX

/* ---- helpers ------------------------------------------------------------ */

static char *exact_copy(const char *s, size_t n)
{
    char *b = malloc(n ? n : 1);
    assert_non_null(b);
    memcpy(b, s, n);
    return b;
}

static int json_n(const char *s, size_t n, size_t max, ss_readings *out, ss_parse_error *err)
{
    char *b = exact_copy(s, n);
    int rc = parse_json_readings(b, n, NOW, max, out, err);
    free(b);
    return rc;
}

static int json(const char *s, ss_readings *out, ss_parse_error *err)
{
    return json_n(s, strlen(s), MAX, out, err);
}

static int lines_n(const char *s, size_t n, size_t max, ss_readings *out, ss_parse_error *err)
{
    char *b = exact_copy(s, n);
    int rc = parse_line_readings(b, n, NOW, max, out, err);
    free(b);
    return rc;
}

static int lines(const char *s, ss_readings *out, ss_parse_error *err)
{
    return lines_n(s, strlen(s), MAX, out, err);
}

static int one_line(const char *s, ss_readings *out, ss_parse_error *err)
{
    size_t n = strlen(s);
    char *b = exact_copy(s, n);
    int rc = parse_line(b, n, NOW, out, err);
    free(b);
    return rc;
}

static void assert_reading(const ss_readings *r, size_t i, const char *ch, double v, int64_t ts)
{
    assert_true(i < r->len);
    assert_string_equal(r->items[i].channel, ch);
    assert_true(r->items[i].value == v);
    assert_int_equal(r->items[i].ts, ts);
}

/* Messages are printable ASCII: whatever came in, they are valid UTF-8. */
static void assert_message_clean(const ss_parse_error *err)
{
    size_t n = strlen(err->message);
    assert_true(n > 0);
    assert_true(n < sizeof err->message);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)err->message[i];
        assert_true(c >= 0x20 && c < 0x7f);
    }
}

static void json_refused(const char *s, int want_rc, size_t want_pos, const char *want_msg)
{
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    int rc = json(s, &r, &err);
    if (rc != want_rc)
        fail_msg("%s: rc %d, want %d (%s)", s, rc, want_rc, err.message);
    assert_int_equal(r.len, 0);
    assert_int_equal(err.position, want_pos);
    assert_message_clean(&err);
    if (want_msg && !strstr(err.message, want_msg))
        fail_msg("%s: message \"%s\" lacks \"%s\"", s, err.message, want_msg);
    readings_free(&r);
}

static void line_refused(const char *s, size_t want_pos, const char *want_msg)
{
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    int rc = lines(s, &r, &err);
    if (rc != SS_PARSE)
        fail_msg("\"%s\": rc %d, want SS_PARSE", s, rc);
    assert_int_equal(r.len, 0);
    assert_int_equal(err.position, want_pos);
    assert_message_clean(&err);
    if (want_msg && !strstr(err.message, want_msg))
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", s, err.message, want_msg);
    readings_free(&r);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* No run of more than `limit` consecutive `c` in the message. */
static void assert_run_at_most(const char *msg, char c, size_t limit)
{
    size_t run = 0;
    for (const char *p = msg; *p; p++) {
        run = (*p == c) ? run + 1 : 0;
        assert_true(run <= limit);
    }
}

/* ---- reading.c ----------------------------------------------------------- */

static void test_reading_channel_valid_charset_and_length(void **state)
{
    (void)state;
    assert_true(reading_channel_valid("Temp_1.a-b", 10));
    assert_false(reading_channel_valid("", 0));
    assert_false(reading_channel_valid("te mp", 5));
    assert_false(reading_channel_valid("t/x", 3));
    assert_false(reading_channel_valid("t\0x", 3));
    assert_false(reading_channel_valid("t\xc3\xa9", 3));
    char *c64 = repeat('c', 64);
    assert_true(reading_channel_valid(c64, 64));
    free(c64);
    char *c65 = repeat('c', 65);
    assert_false(reading_channel_valid(c65, 65));
    free(c65);
}

static void test_reading_ts_check_bounds_spec_3(void **state)
{
    (void)state;
    assert_int_equal(reading_ts_check(SS_TS_MIN_MS, NOW), SS_OK);
    assert_int_equal(reading_ts_check(SS_TS_MIN_MS - 1, NOW), SS_INVAL);
    assert_int_equal(reading_ts_check(NOW + SS_TS_FUTURE_MAX_MS, NOW), SS_OK);
    assert_int_equal(reading_ts_check(NOW + SS_TS_FUTURE_MAX_MS + 1, NOW), SS_INVAL);
    assert_int_equal(reading_ts_check(INT64_MIN, NOW), SS_INVAL);
    assert_int_equal(reading_ts_check(INT64_MAX, NOW), SS_INVAL);
}

static void test_readings_push_grows_reset_keeps_memory(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(readings_push(&r, "abc", 3, i, i * 0.5), SS_OK);
    assert_int_equal(r.len, 1000);
    assert_true(r.cap >= 1000);
    assert_reading(&r, 999, "abc", 499.5, 999);
    readings_reset(&r);
    assert_int_equal(r.len, 0);
    assert_non_null(r.items);
    readings_free(&r);
    assert_null(r.items);
    assert_int_equal(r.cap, 0);
    readings_free(&r); /* twice is harmless */
}

/* ---- JSON: SPEC §3.1 examples --------------------------------------------- */

static void test_json_spec_3_1_flat_object_uses_server_time(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(json("{\"temp\": 21.5, \"rh\": 40}", &r, &err), SS_OK);
    assert_int_equal(r.len, 2);
    assert_reading(&r, 0, "temp", 21.5, NOW);
    assert_reading(&r, 1, "rh", 40, NOW);
    readings_free(&r);
}

static void test_json_spec_3_1_ts_and_values(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(json("{\"ts\": 1732480000000, \"values\": {\"temp\": 21.5, \"rh\": 40}}", &r,
                          &err),
                     SS_OK);
    assert_int_equal(r.len, 2);
    assert_reading(&r, 0, "temp", 21.5, SPEC_TS);
    assert_reading(&r, 1, "rh", 40, SPEC_TS);
    readings_free(&r);
}

static void test_json_spec_3_1_values_without_ts(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(json("{\"values\": {\"a\": -1e3}}", &r, &err), SS_OK);
    assert_int_equal(r.len, 1);
    assert_reading(&r, 0, "a", -1000, NOW);
    readings_free(&r);
}

static void test_json_spec_3_1_flat_object_with_ts_key(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(json("{\"temp\": 1, \"ts\": 1732480000000, \"rh\": 2}", &r, &err), SS_OK);
    assert_int_equal(r.len, 2);
    assert_reading(&r, 0, "temp", 1, SPEC_TS);
    assert_reading(&r, 1, "rh", 2, SPEC_TS);
    readings_free(&r);
}

static void test_json_spec_3_1_batch_of_both_forms(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    const char *body = "[{\"temp\": 21.5, \"rh\": 40},"
                       " {\"ts\": 1732480000000, \"values\": {\"temp\": 21.6}},"
                       " {\"ts\": 1732480001000, \"x.y-z_0\": 0}]";
    assert_int_equal(json(body, &r, &err), SS_OK);
    assert_int_equal(r.len, 4);
    assert_reading(&r, 0, "temp", 21.5, NOW);
    assert_reading(&r, 1, "rh", 40, NOW);
    assert_reading(&r, 2, "temp", 21.6, SPEC_TS);
    assert_reading(&r, 3, "x.y-z_0", 0, SPEC_TS + 1000);
    readings_free(&r);
}

static void test_json_appends_to_existing_readings(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(readings_push(&r, "old", 3, 1, 1), SS_OK);
    assert_int_equal(json("{\"a\": 2}", &r, &err), SS_OK);
    assert_int_equal(r.len, 2);
    assert_reading(&r, 1, "a", 2, NOW);
    /* A refused body leaves what was there. */
    assert_int_equal(json("{\"b\": 3, \"c\": true}", &r, &err), SS_PARSE);
    assert_int_equal(r.len, 2);
    assert_reading(&r, 0, "old", 1, 1);
    readings_free(&r);
}

/* ---- JSON: refusals ---------------------------------------------------- */

static void test_json_refuses_invalid_json_with_position(void **state)
{
    (void)state;
    json_refused("{\"a\": 1", SS_PARSE, 0, "invalid JSON at line 1 column ");
    json_refused("{\"a\" 1}", SS_PARSE, 0, "invalid JSON at line 1 column ");
    json_refused("{\"a\": 1}}", SS_PARSE, 0, "invalid JSON");
    json_refused("{\"a\": 1,}", SS_PARSE, 0, "invalid JSON");
    json_refused("{\"a\": 01}", SS_PARSE, 0, "invalid JSON");
    json_refused("{\"a\": NaN}", SS_PARSE, 0, "invalid JSON");
    json_refused("{\"a\": Infinity}", SS_PARSE, 0, "invalid JSON");
    json_refused("\n\n{x}", SS_PARSE, 0, "invalid JSON at line 3 column ");
    json_refused("", SS_PARSE, 0, "invalid JSON");
    json_refused("   ", SS_PARSE, 0, "invalid JSON");
}

static void test_json_refuses_truncated_body(void **state)
{
    (void)state;
    const char *body = "[{\"ts\": 1732480000000, \"values\": {\"temp\": 21.5}}]";
    size_t n = strlen(body);
    for (size_t k = 0; k < n; k++) {
        ss_readings r = SS_READINGS_INIT;
        ss_parse_error err = {0};
        assert_int_equal(json_n(body, k, MAX, &r, &err), SS_PARSE);
        assert_int_equal(r.len, 0);
        assert_message_clean(&err);
        readings_free(&r);
    }
}

static void test_json_refuses_invalid_utf8(void **state)
{
    (void)state;
    json_refused("{\"t\xff\": 1}", SS_PARSE, 0, "invalid JSON");
    json_refused("{\"a\": 1, \"b\": \"\xc3\"}", SS_PARSE, 0, "invalid JSON");
    json_refused("{\"\xed\xa0\x80\": 1}", SS_PARSE, 0, "invalid JSON"); /* surrogate */
    json_refused("{\"\xc0\xaf\": 1}", SS_PARSE, 0, "invalid JSON");     /* overlong */
}

static void test_json_refuses_nul_byte(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(json_n("{\"a\": 1}\0", 9, MAX, &r, &err), SS_PARSE);
    assert_int_equal(json_n("{\"a\\u0000\": 1}", 14, MAX, &r, &err), SS_PARSE);
    assert_int_equal(r.len, 0);
    readings_free(&r);
}

static void test_json_refuses_duplicate_keys(void **state)
{
    (void)state;
    json_refused("{\"a\": 1, \"a\": 2}", SS_PARSE, 0, "invalid JSON");
    json_refused("{\"ts\": 1732480000000, \"ts\": 1732480000000, \"a\": 1}", SS_PARSE, 0,
                 "invalid JSON");
}

static void test_json_refuses_top_level_scalars(void **state)
{
    (void)state;
    json_refused("5", SS_PARSE, 0, NULL);
    json_refused("\"temp\"", SS_PARSE, 0, NULL);
    json_refused("null", SS_PARSE, 0, NULL);
    json_refused("true", SS_PARSE, 0, NULL);
}

static void test_json_refuses_nested_array_with_index(void **state)
{
    (void)state;
    json_refused("[[{\"a\": 1}]]", SS_PARSE, 0, "reading 0: nested arrays");
    json_refused("[{\"a\": 1}, [{\"a\": 1}]]", SS_PARSE, 1, "reading 1: nested arrays");
    json_refused("[{\"a\": 1}, 5]", SS_PARSE, 1, "reading 1: expected an object");
    json_refused("[{\"a\": 1}, null]", SS_PARSE, 1, "reading 1:");
}

static void test_json_refuses_values_not_object(void **state)
{
    (void)state;
    json_refused("{\"values\": 5}", SS_PARSE, 0, "reading 0: \"values\" is not an object");
    json_refused("{\"ts\": 1732480000000, \"values\": [1]}", SS_PARSE, 0,
                 "\"values\" is not an object");
    json_refused("{\"values\": {\"a\": {\"b\": 1}}}", SS_PARSE, 0,
                 "value of \"a\" is not a finite number");
}

static void test_json_refuses_extra_key_beside_values(void **state)
{
    (void)state;
    json_refused("{\"ts\": 1732480000000, \"values\": {\"a\": 1}, \"temp\": 2}", SS_PARSE, 0,
                 "unexpected key \"temp\"");
    json_refused("[{\"a\": 1}, {\"values\": {\"a\": 1}, \"x\": 1}]", SS_PARSE, 1,
                 "reading 1: unexpected key \"x\"");
}

static void test_json_refuses_ts_not_integer(void **state)
{
    (void)state;
    json_refused("{\"ts\": 1732480000000.5, \"a\": 1}", SS_PARSE, 0, "ts is not an integer");
    json_refused("{\"ts\": 1.73248e12, \"a\": 1}", SS_PARSE, 0, "ts is not an integer");
    json_refused("{\"ts\": \"1732480000000\", \"a\": 1}", SS_PARSE, 0, "ts is not an integer");
    json_refused("{\"ts\": null, \"values\": {\"a\": 1}}", SS_PARSE, 0, "ts is not an integer");
    json_refused("{\"ts\": 99999999999999999999, \"a\": 1}", SS_PARSE, 0, "invalid JSON");
}

static void test_json_refuses_non_number_values(void **state)
{
    (void)state;
    json_refused("{\"temp\": true}", SS_PARSE, 0, "reading 0: value of \"temp\" is not a finite number");
    json_refused("{\"temp\": false}", SS_PARSE, 0, "value of \"temp\"");
    json_refused("{\"temp\": null}", SS_PARSE, 0, "value of \"temp\"");
    json_refused("{\"temp\": \"21.5\"}", SS_PARSE, 0, "value of \"temp\"");
    json_refused("{\"temp\": [21.5]}", SS_PARSE, 0, "value of \"temp\"");
    json_refused("[{\"a\": 1}, {\"b\": 2, \"c\": {}}]", SS_PARSE, 1,
                 "reading 1: value of \"c\" is not a finite number");
}

static void test_json_refuses_overflowing_number(void **state)
{
    (void)state;
    /* jansson refuses 1e999 itself; either way it is never stored. */
    json_refused("{\"a\": 1e999}", SS_PARSE, 0, NULL);
    json_refused("{\"a\": -1e999}", SS_PARSE, 0, NULL);
}

static void test_json_accepts_number_forms(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(json("{\"a\": -0, \"b\": 1E2, \"c\": 2.5e-1, \"d\": 9007199254740993}", &r,
                          &err),
                     SS_OK);
    assert_int_equal(r.len, 4);
    assert_true(r.items[0].value == 0);
    assert_true(r.items[1].value == 100);
    assert_true(r.items[2].value == 0.25);
    assert_true(r.items[3].value == 9007199254740992.0);
    readings_free(&r);
}

static void test_json_refuses_invalid_channel_names(void **state)
{
    (void)state;
    json_refused("[{\"a\": 1}, {\"b\": 1}, {\"c\": 1}, {\"te mp\": 1}]", SS_PARSE, 3,
                 "reading 3: channel \"te mp\" is not a valid name ([A-Za-z0-9_.-]{1,64})");
    json_refused("{\"\": 1}", SS_PARSE, 0, "channel \"\" is not a valid name");
    json_refused("{\"a/b\": 1}", SS_PARSE, 0, "channel \"a/b\"");
    json_refused("{\"values\": {\"a+b\": 1}}", SS_PARSE, 0, "channel \"a+b\"");
}

static void test_json_refuses_non_ascii_channel_with_clean_echo(void **state)
{
    (void)state;
    json_refused("{\"temp\xc3\xa9rature\": 1}", SS_PARSE, 0, "channel \"temp??rature\"");
    json_refused("{\"tab\\there\": 1}", SS_PARSE, 0, "channel \"tab?here\"");
}

static void test_json_channel_64_ok_65_refused(void **state)
{
    (void)state;
    char *c64 = repeat('c', 64);
    char *c65 = repeat('c', 65);
    char body[256];
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    snprintf(body, sizeof body, "{\"%s\": 1}", c64);
    assert_int_equal(json(body, &r, &err), SS_OK);
    assert_int_equal(r.len, 1);
    assert_string_equal(r.items[0].channel, c64);
    snprintf(body, sizeof body, "{\"%s\": 1}", c65);
    json_refused(body, SS_PARSE, 0, "is not a valid name");
    free(c64);
    free(c65);
    readings_free(&r);
}

static void test_json_long_bad_key_echoes_at_most_64_bytes(void **state)
{
    (void)state;
    char *key = repeat('x', 500);
    key[250] = ' ';
    size_t n = strlen(key) + 16;
    char *body = malloc(n);
    assert_non_null(body);
    snprintf(body, n, "{\"%s\": 1}", key);
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(json(body, &r, &err), SS_PARSE);
    assert_message_clean(&err);
    assert_run_at_most(err.message, 'x', 64);
    assert_non_null(strstr(err.message, "..."));
    free(body);
    free(key);
    readings_free(&r);
}

static void test_json_invalid_token_echoes_at_most_64_bytes(void **state)
{
    (void)state;
    char *junk = repeat('t', 300);
    size_t n = strlen(junk) + 16;
    char *body = malloc(n);
    assert_non_null(body);
    snprintf(body, n, "{\"a\": %s}", junk);
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(json(body, &r, &err), SS_PARSE);
    assert_message_clean(&err);
    assert_run_at_most(err.message, 't', 64 + 1); /* the 't' of "not" may touch it */
    free(body);
    free(junk);
    readings_free(&r);
}

static void test_json_refuses_empty_sets(void **state)
{
    (void)state;
    json_refused("{}", SS_PARSE, 0, "reading 0: no readings");
    json_refused("{\"values\": {}}", SS_PARSE, 0, "reading 0: no readings");
    json_refused("{\"ts\": 1732480000000, \"values\": {}}", SS_PARSE, 0, "no readings");
    json_refused("{\"ts\": 1732480000000}", SS_PARSE, 0, "no readings");
    json_refused("[]", SS_PARSE, 0, "no readings");
    json_refused("[{\"a\": 1}, {}]", SS_PARSE, 1, "reading 1: no readings");
}

static void test_json_ts_bounds_spec_3(void **state)
{
    (void)state;
    char body[128];
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    snprintf(body, sizeof body, "{\"ts\": %lld, \"a\": 1}", (long long)SS_TS_MIN_MS);
    assert_int_equal(json(body, &r, &err), SS_OK);
    snprintf(body, sizeof body, "{\"ts\": %lld, \"a\": 1}",
             (long long)(NOW + SS_TS_FUTURE_MAX_MS));
    assert_int_equal(json(body, &r, &err), SS_OK);
    assert_int_equal(r.len, 2);
    assert_int_equal(r.items[1].ts, NOW + SS_TS_FUTURE_MAX_MS);

    snprintf(body, sizeof body, "{\"ts\": %lld, \"a\": 1}", (long long)(SS_TS_MIN_MS - 1));
    json_refused(body, SS_PARSE, 0, "ts 946684799999 is before 2000-01-01 or more than 10 minutes in the future");
    snprintf(body, sizeof body, "[{\"a\": 1}, {\"ts\": %lld, \"values\": {\"a\": 1}}]",
             (long long)(NOW + SS_TS_FUTURE_MAX_MS + 1));
    json_refused(body, SS_PARSE, 1, "reading 1: ts ");
    json_refused("[{\"a\": 1}, {\"ts\": 123, \"a\": 1}]", SS_PARSE, 1,
                 "reading 1: ts 123 is before 2000-01-01 or more than 10 minutes in the future");
    json_refused("{\"ts\": -1, \"a\": 1}", SS_PARSE, 0, "ts -1 is before");
    readings_free(&r);
}

/* N readings pass, N+1 are refused before anything is pushed. */
static void test_json_max_readings_n_ok_n_plus_1_too_large(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    const char *batch = "[{\"a\": 1, \"b\": 2}, {\"ts\": 1732480000000, \"values\": {\"c\": 3}},"
                        " {\"d\": 4, \"ts\": 1732480000000}]";
    assert_int_equal(json_n(batch, strlen(batch), 4, &r, &err), SS_OK);
    assert_int_equal(r.len, 4);
    readings_free(&r);

    assert_int_equal(json_n(batch, strlen(batch), 3, &r, &err), SS_TOO_LARGE);
    assert_int_equal(r.len, 0);
    assert_int_equal(r.cap, 0); /* counted first: no memory spent */
    assert_int_equal(err.position, 2);
    assert_message_clean(&err);

    const char *flat = "{\"a\": 1, \"b\": 2, \"ts\": 1732480000000}";
    assert_int_equal(json_n(flat, strlen(flat), 2, &r, &err), SS_OK);
    readings_free(&r);
    assert_int_equal(json_n(flat, strlen(flat), 1, &r, &err), SS_TOO_LARGE);
    assert_int_equal(r.cap, 0);
    assert_int_equal(err.position, 0);
    readings_free(&r);
}

static void test_json_max_readings_at_the_default_limit(void **state)
{
    (void)state;
    size_t cap = (size_t)MAX * 16 + 16;
    char *body = malloc(cap);
    assert_non_null(body);
    size_t n = 0;
    body[n++] = '[';
    for (size_t i = 0; i <= MAX; i++)
        n += (size_t)snprintf(body + n, cap - n, "%s{\"c\": %zu}", i ? "," : "", i);
    body[n++] = ']';
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(json_n(body, n, MAX + 1, &r, &err), SS_OK);
    assert_int_equal(r.len, MAX + 1);
    readings_free(&r);
    assert_int_equal(json_n(body, n, MAX, &r, &err), SS_TOO_LARGE);
    assert_int_equal(err.position, MAX);
    assert_int_equal(r.cap, 0);
    free(body);
}

static void test_json_every_prefix_parses_or_fails_cleanly(void **state)
{
    (void)state;
    const char *body = "[{\"temp\": 21.5, \"rh\": 40}, {\"ts\": 1732480000000, \"values\": "
                       "{\"temp\": -1.5e2}}]";
    size_t n = strlen(body);
    for (size_t k = 0; k <= n; k++) {
        ss_readings r = SS_READINGS_INIT;
        ss_parse_error err = {0};
        int rc = json_n(body, k, MAX, &r, &err);
        assert_true(rc == SS_OK || rc == SS_PARSE);
        if (rc == SS_OK)
            assert_int_equal(r.len, 3);
        else
            assert_int_equal(r.len, 0);
        readings_free(&r);
    }
}

/* ---- line format: SPEC §3.2 examples --------------------------------------- */

static void test_line_spec_3_2_example(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(lines("temp=21.5,rh=40 1732480000000\ntemp=21.6\n", &r, &err), SS_OK);
    assert_int_equal(r.len, 3);
    assert_reading(&r, 0, "temp", 21.5, SPEC_TS);
    assert_reading(&r, 1, "rh", 40, SPEC_TS);
    assert_reading(&r, 2, "temp", 21.6, NOW);
    readings_free(&r);
}

static void test_line_spec_3_2_crlf_ends_lines(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(lines("a=1 1732480000000\r\nb=2\r\n\r\nc=3", &r, &err), SS_OK);
    assert_int_equal(r.len, 3);
    assert_reading(&r, 0, "a", 1, SPEC_TS);
    assert_reading(&r, 1, "b", 2, NOW);
    assert_reading(&r, 2, "c", 3, NOW);
    readings_free(&r);
}

static void test_line_spec_3_2_last_line_without_newline(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(lines("a=1\nb=2 1732480000000", &r, &err), SS_OK);
    assert_int_equal(r.len, 2);
    assert_reading(&r, 1, "b", 2, SPEC_TS);
    readings_free(&r);
}

static void test_line_spec_3_2_blank_and_comment_lines_skipped(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(lines("# header\n\n#a=1\na=2\n\n# bad=line here %%\r\n", &r, &err), SS_OK);
    assert_int_equal(r.len, 1);
    assert_reading(&r, 0, "a", 2, NOW);
    readings_free(&r);
}

static void test_line_value_number_forms(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(lines("a=0,b=-0,c=-12.25,d=1e3,e=1E+2,f=25e-1,g=0.5,h=1e-999,"
                           "i=1.7976931348623157e308\n",
                           &r, &err),
                     SS_OK);
    assert_int_equal(r.len, 9);
    assert_true(r.items[0].value == 0);
    assert_true(r.items[1].value == 0);
    assert_true(r.items[2].value == -12.25);
    assert_true(r.items[3].value == 1000);
    assert_true(r.items[4].value == 100);
    assert_true(r.items[5].value == 2.5);
    assert_true(r.items[6].value == 0.5);
    assert_true(r.items[7].value == 0);
    assert_true(r.items[8].value == 1.7976931348623157e308);
    readings_free(&r);
}

/* A random JSON number of 1 to 17 digits, some after a point, maybe
 * negative (xorshift: the same numbers every run). */
static void random_decimal(uint64_t *x, char *text)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    uint64_t r = *x;
    int digits = 1 + (int)(r % 17);
    int int_digits = digits - (int)((r >> 8) % (uint64_t)digits);
    char *p = text;
    if ((r >> 16) & 1)
        *p++ = '-';
    for (int k = 0; k < digits; k++) {
        *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
        int d = (int)(*x % 10);
        if (k == int_digits)
            *p++ = '.';
        if (k == 0 && int_digits > 1 && d == 0)
            d = 1;  /* no leading zero before more digits */
        *p++ = (char)('0' + d);
    }
    *p = '\0';
}

/* Every value is the double strtod gives for its text, bit for bit,
 * whichever way it is converted: short decimals (the common shape), 15 and
 * 16 digits, many after the point, -0, and exponents. */
static void test_line_value_is_strtods_bit_for_bit(void **state)
{
    (void)state;
    static const char *fixed[] = {"0", "-0", "-0.0", "0.1", "0.3", "2.675", "1.005", "4.35",
                                  "999999999999999", "9999999999999999", "0.000000000000001",
                                  "123456789.012345", "-12345.6789012345", "9007199254740993",
                                  "0.30000000000000004", "1e22", "-2.5e-3"};
    size_t n_fixed = sizeof fixed / sizeof fixed[0];
    uint64_t x = 88172645463325252ull;
    char text[32], line[48];
    for (size_t i = 0; i < 20000; i++) {
        const char *t = text;
        if (i < n_fixed)
            t = fixed[i];
        else
            random_decimal(&x, text);
        snprintf(line, sizeof line, "v=%s\n", t);
        ss_readings r = SS_READINGS_INIT;
        ss_parse_error err = {0};
        assert_int_equal(lines(line, &r, &err), SS_OK);
        double want = strtod(t, NULL);
        if (memcmp(&r.items[0].value, &want, sizeof want) != 0)
            fail_msg("\"%s\": %.17g, strtod %.17g", t, r.items[0].value, want);
        readings_free(&r);
    }
}

/* ---- line format: refusals --------------------------------------------- */

static void test_line_refuses_missing_equals(void **state)
{
    (void)state;
    line_refused("a=1\ntemp 5\n", 2, "line 2: expected '=' after channel \"temp\"");
    line_refused("temp\n", 1, "line 1: expected '=' after channel \"temp\"");
    line_refused("temp:5\n", 1, "expected '=' after channel \"temp\"");
}

static void test_line_refuses_bad_values(void **state)
{
    (void)state;
    const char *bad[] = {"a=", "a=01", "a=1.", "a=.5", "a=+1", "a=1e", "a=1e+", "a=-",
                         "a=NaN", "a=nan", "a=inf", "a=Infinity", "a=0x10", "a=1..2",
                         "a=1e5.5", "a=1x", "a=\"1\"", "a=true", "a==1", "a=1="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        line_refused(bad[i], 1, "line 1: value of \"a\" is not a number");
}

static void test_line_refuses_overflow_to_infinity(void **state)
{
    (void)state;
    line_refused("a=1e999", 1, "line 1: value of \"a\" is not a finite number");
    line_refused("a=-1e309", 1, "value of \"a\" is not a finite number");
    line_refused("a=1.8e308", 1, "not a finite number");
}

static void test_line_refuses_overlong_value(void **state)
{
    (void)state;
    char line[300];
    memcpy(line, "a=0.", 4);
    memset(line + 4, '0', 200);
    memcpy(line + 204, "1", 2);
    line_refused(line, 1, "value of \"a\" is longer than");
}

static void test_line_refuses_bad_separators(void **state)
{
    (void)state;
    line_refused("a=1,", 1, "expected a channel name at the end of the line");
    line_refused(",a=1", 1, "expected a channel name");
    line_refused("a=1,,b=2", 1, "expected a channel name");
    line_refused("=1", 1, "expected a channel name");
    line_refused("a=1, b=2", 1, "expected a channel name");
    line_refused("a=1;b=2", 1, "value of \"a\" is not a number");
    line_refused(" a=1", 1, "expected a channel name");
    line_refused("a=1,5", 1, "expected '=' after channel \"5\"");
}

static void test_line_refuses_bad_ts(void **state)
{
    (void)state;
    line_refused("a=1 ", 1, "expected a ts after the space");
    line_refused("a=1  1732480000000", 1, "is not an integer");
    line_refused("a=1 1732480000000 ", 1, "is not an integer");
    line_refused("a=1 +1732480000000", 1, "is not an integer");
    line_refused("a=1 -1", 1, "is not an integer");
    line_refused("a=1 1732480000000x", 1, "is not an integer");
    line_refused("a=1 1.7e12", 1, "is not an integer");
    line_refused("a=1 1732480000000,b=2", 1, "is not an integer");
    line_refused("a=1 1732480000000 1732480000000", 1, "is not an integer");
    line_refused("a=1 99999999999999999999999", 1, "is before 2000-01-01");
    line_refused("a=1\tb", 1, "value of \"a\" is not a number");
}

static void test_line_ts_bounds_spec_3(void **state)
{
    (void)state;
    char body[128];
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    snprintf(body, sizeof body, "a=1 %lld\nb=2 %lld\n", (long long)SS_TS_MIN_MS,
             (long long)(NOW + SS_TS_FUTURE_MAX_MS));
    assert_int_equal(lines(body, &r, &err), SS_OK);
    assert_int_equal(r.len, 2);
    assert_int_equal(r.items[0].ts, SS_TS_MIN_MS);
    assert_int_equal(r.items[1].ts, NOW + SS_TS_FUTURE_MAX_MS);
    readings_free(&r);

    snprintf(body, sizeof body, "a=1 %lld\n", (long long)(SS_TS_MIN_MS - 1));
    line_refused(body, 1, "line 1: ts 946684799999 is before 2000-01-01 or more than 10 minutes in the future");
    snprintf(body, sizeof body, "a=1\nb=2 %lld\n", (long long)(NOW + SS_TS_FUTURE_MAX_MS + 1));
    line_refused(body, 2, "line 2: ts ");
    line_refused("a=1 0", 1, "ts 0 is before");
}

static void test_line_refuses_lone_cr(void **state)
{
    (void)state;
    line_refused("te\rmp=1\n", 1, "carriage return");
    line_refused("a=1\nb=1\r", 2, "line 2: carriage return"); /* no '\n' after it */
    line_refused("a=1\r\r\n", 1, "carriage return");
    line_refused("a=1\rb=2\n", 1, "carriage return");
}

static void test_line_refuses_invalid_channel_names(void **state)
{
    (void)state;
    line_refused("te mp=1", 1, "expected '=' after channel \"te\"");
    line_refused("a/b=1", 1, "expected '=' after channel \"a\"");
    line_refused("t\xc3\xa9=1", 1, "expected '=' after channel \"t\"");
    line_refused("\xff=1", 1, "expected a channel name, found \"?=1\"");
}

static void test_line_channel_64_ok_65_refused(void **state)
{
    (void)state;
    char *c64 = repeat('c', 64);
    char *c65 = repeat('c', 65);
    char body[256];
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    snprintf(body, sizeof body, "%s=1", c64);
    assert_int_equal(lines(body, &r, &err), SS_OK);
    assert_int_equal(r.len, 1);
    assert_string_equal(r.items[0].channel, c64);
    snprintf(body, sizeof body, "%s=1", c65);
    line_refused(body, 1, "is not a valid name ([A-Za-z0-9_.-]{1,64})");
    free(c64);
    free(c65);
    readings_free(&r);
}

static void test_line_long_bad_input_echoes_at_most_64_bytes(void **state)
{
    (void)state;
    char *line = repeat('x', 400);
    line[0] = 'a';
    line[1] = '=';
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(lines(line, &r, &err), SS_PARSE);
    assert_message_clean(&err);
    assert_run_at_most(err.message, 'x', 64);
    line[1] = 'x';
    assert_int_equal(lines(line, &r, &err), SS_PARSE);
    assert_run_at_most(err.message, 'x', 64);
    free(line);
    readings_free(&r);
}

static void test_line_refuses_nul_and_control_bytes(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(lines_n("a=1\0", 4, MAX, &r, &err), SS_PARSE);
    assert_message_clean(&err);
    assert_int_equal(lines_n("a\0=1", 4, MAX, &r, &err), SS_PARSE);
    assert_int_equal(lines_n("a=1 17324800000\0", 16, MAX, &r, &err), SS_PARSE);
    assert_message_clean(&err);
    assert_int_equal(r.len, 0);
    readings_free(&r);
}

static void test_line_errors_count_every_line(void **state)
{
    (void)state;
    line_refused("# c\n\na=1\r\n\nbad\n", 5, "line 5: expected '=' after channel \"bad\"");
    line_refused("a=1\nb=2\nc=x\n", 3, "line 3: value of \"c\" is not a number");
}

static void test_line_refuses_empty_body(void **state)
{
    (void)state;
    line_refused("", 0, "no readings");
    line_refused("\n\n# only comments\r\n", 0, "no readings");
}

static char *line_of_length(size_t len)
{
    /* "x=1,x=1,…" gives 4k-1 bytes; widen the first value to hit len. */
    size_t k = (len + 1) / 4;
    size_t pad = len - (4 * k - 1);
    char *s = malloc(len + 1);
    assert_non_null(s);
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        if (i)
            s[n++] = ',';
        s[n++] = 'x';
        s[n++] = '=';
        s[n++] = '1';
        for (size_t j = 0; i == 0 && j < pad; j++)
            s[n++] = '0';
    }
    s[n] = '\0';
    assert_int_equal(n, len);
    return s;
}

static void test_line_max_length_n_ok_n_plus_1_refused(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    char *ok = line_of_length(SS_LINE_MAX);
    assert_int_equal(lines_n(ok, SS_LINE_MAX, SS_LINE_MAX, &r, &err), SS_OK);
    assert_int_equal(r.len, (SS_LINE_MAX + 1) / 4);
    readings_free(&r);
    free(ok);

    char *big = line_of_length(SS_LINE_MAX + 1);
    size_t n = SS_LINE_MAX + 1;
    char *body = malloc(n + 5);
    assert_non_null(body);
    memcpy(body, "a=1\n", 4);
    memcpy(body + 4, big, n);
    assert_int_equal(lines_n(body, n + 4, SS_LINE_MAX, &r, &err), SS_PARSE);
    assert_int_equal(err.position, 2);
    assert_non_null(strstr(err.message, "line 2: line is longer than"));
    assert_int_equal(r.len, 0);
    /* With "\r\n" the terminator does not count against the limit. */
    char *crlf = line_of_length(SS_LINE_MAX);
    char *crlf_body = malloc(SS_LINE_MAX + 2);
    assert_non_null(crlf_body);
    memcpy(crlf_body, crlf, SS_LINE_MAX);
    memcpy(crlf_body + SS_LINE_MAX, "\r\n", 2);
    assert_int_equal(lines_n(crlf_body, SS_LINE_MAX + 2, SS_LINE_MAX, &r, &err), SS_OK);
    free(crlf_body);
    free(crlf);
    free(body);
    free(big);
    readings_free(&r);
}

static void test_line_max_readings_n_ok_n_plus_1_too_large(void **state)
{
    (void)state;
    const char *body = "a=1,b=2\n# c\nc=3 1732480000000\nd=4\n";
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(lines_n(body, strlen(body), 4, &r, &err), SS_OK);
    assert_int_equal(r.len, 4);
    readings_free(&r);
    assert_int_equal(lines_n(body, strlen(body), 3, &r, &err), SS_TOO_LARGE);
    assert_int_equal(r.len, 0);
    assert_int_equal(err.position, 4);
    assert_non_null(strstr(err.message, "line 4: more than 3 readings"));
    assert_int_equal(lines_n(body, strlen(body), 2, &r, &err), SS_TOO_LARGE);
    assert_int_equal(err.position, 3);
    readings_free(&r);
}

static void test_line_body_appends_and_restores(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(readings_push(&r, "old", 3, 5, 5), SS_OK);
    assert_int_equal(lines("a=1\nb=2\n", &r, &err), SS_OK);
    assert_int_equal(r.len, 3);
    assert_int_equal(lines("c=1\nd=x\n", &r, &err), SS_PARSE);
    assert_int_equal(r.len, 3);
    assert_reading(&r, 2, "b", 2, NOW);
    readings_free(&r);
}

/* ---- parse_line (TCP/UDP unit) ------------------------------------------ */

static void test_parse_line_appends_and_truncates_back_on_error(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {.position = 777};
    assert_int_equal(one_line("a=1,b=2", &r, &err), SS_OK);
    assert_int_equal(r.len, 2);
    assert_int_equal(one_line("c=3,d=4,e=x", &r, &err), SS_PARSE);
    assert_int_equal(r.len, 2);
    assert_int_equal(err.position, 777); /* the caller's to set */
    assert_string_equal(err.message, "value of \"e\" is not a number: \"x\"");
    assert_int_equal(one_line("c=3 1732480000000", &r, &err), SS_OK);
    assert_int_equal(r.len, 3);
    assert_reading(&r, 0, "a", 1, NOW);
    assert_reading(&r, 2, "c", 3, SPEC_TS);
    readings_free(&r);
}

static void test_parse_line_blank_and_comment_give_nothing(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(one_line("", &r, &err), SS_OK);
    assert_int_equal(one_line("#", &r, &err), SS_OK);
    assert_int_equal(one_line("# anything \r at all", &r, &err), SS_OK);
    assert_int_equal(r.len, 0);
    assert_int_equal(parse_line(NULL, 0, NOW, &r, &err), SS_OK);
    readings_free(&r);
}

static void test_parse_line_refuses_terminator_inside(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(one_line("a=1\r", &r, &err), SS_PARSE);
    assert_int_equal(one_line("a=1\n", &r, &err), SS_PARSE);
    assert_int_equal(r.len, 0);
    readings_free(&r);
}

static void test_parse_line_over_line_max_refused(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    char *ok = line_of_length(SS_LINE_MAX);
    assert_int_equal(parse_line(ok, SS_LINE_MAX, NOW, &r, &err), SS_OK);
    free(ok);
    size_t before = r.len;
    char *big = line_of_length(SS_LINE_MAX + 1);
    assert_int_equal(parse_line(big, SS_LINE_MAX + 1, NOW, &r, &err), SS_PARSE);
    assert_int_equal(r.len, before);
    free(big);
    readings_free(&r);
}

static void every_prefix_of_line(const char *s)
{
    size_t n = strlen(s);
    for (size_t k = 0; k <= n; k++) {
        ss_readings r = SS_READINGS_INIT;
        ss_parse_error err = {0};
        assert_int_equal(readings_push(&r, "keep", 4, 1, 1), SS_OK);
        char *b = exact_copy(s, k);
        int rc = parse_line(b, k, NOW, &r, &err);
        free(b);
        assert_true(rc == SS_OK || rc == SS_PARSE);
        if (rc == SS_PARSE) {
            assert_int_equal(r.len, 1);
            assert_message_clean(&err);
        }
        readings_free(&r);
    }
}

static void test_parse_line_every_prefix_parses_or_fails_cleanly(void **state)
{
    (void)state;
    every_prefix_of_line("temp=21.5,rh=40 1732480000000");
    every_prefix_of_line("a=-0.5e+10,b.c-d_e=0,x=1E-3 946684800000");
    every_prefix_of_line("# comment");
}

static void test_line_body_every_prefix_parses_or_fails_cleanly(void **state)
{
    (void)state;
    const char *body = "# c\r\ntemp=21.5,rh=40 1732480000000\r\n\ntemp=-1e2\n";
    size_t n = strlen(body);
    for (size_t k = 0; k <= n; k++) {
        ss_readings r = SS_READINGS_INIT;
        ss_parse_error err = {0};
        int rc = lines_n(body, k, MAX, &r, &err);
        assert_true(rc == SS_OK || rc == SS_PARSE);
        if (rc == SS_PARSE)
            assert_int_equal(r.len, 0);
        readings_free(&r);
    }
}

/* ---- a bare value for one channel ---------------------------------------- */

static int value_of(const char *ch, const char *payload, ss_readings *out, ss_parse_error *err)
{
    size_t n = strlen(payload);
    char *b = exact_copy(payload, n);
    int rc = parse_value_reading(ch, strlen(ch), b, n, NOW, out, err);
    free(b);
    return rc;
}

static void test_value_number_forms_at_server_time(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(value_of("temp", "21.5", &r, &err), SS_OK);
    assert_int_equal(value_of("t.2", " -1e3\r\n", &r, &err), SS_OK);
    assert_int_equal(value_of("x", "0", &r, &err), SS_OK);
    assert_int_equal(r.len, 3);
    assert_string_equal(r.items[0].channel, "temp");
    assert_true(r.items[0].value == 21.5);
    assert_int_equal(r.items[0].ts, NOW);
    assert_string_equal(r.items[1].channel, "t.2");
    assert_true(r.items[1].value == -1000);
    assert_true(r.items[2].value == 0);
    readings_free(&r);
}

static void value_refused(const char *ch, const char *payload, const char *message)
{
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(value_of(ch, payload, &r, &err), SS_PARSE);
    assert_int_equal(r.len, 0);
    assert_int_equal(err.position, 0);
    assert_non_null(strstr(err.message, message));
    readings_free(&r);
}

static void test_value_refusals(void **state)
{
    (void)state;
    value_refused("temp", "", "no value");
    value_refused("temp", " \n", "no value");
    value_refused("temp", "abc", "is not a number");
    value_refused("temp", "1 2", "is not a number");
    value_refused("temp", "1,2", "is not a number");
    value_refused("temp", "01", "is not a number");
    value_refused("temp", "1e999", "not a finite number");
    value_refused("temp", "{\"v\":1}", "is not a number");
    value_refused("bad/ch", "1", "not a valid name");
    value_refused("", "1", "not a valid name");
    char long_ch[SS_CHANNEL_MAX + 2];
    memset(long_ch, 'c', sizeof long_ch - 1);
    long_ch[sizeof long_ch - 1] = '\0';
    value_refused(long_ch, "1", "not a valid name");
    long_ch[SS_CHANNEL_MAX] = '\0';
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(value_of(long_ch, "1", &r, &err), SS_OK);
    readings_free(&r);
}

/* Appends, and leaves earlier readings as they were on a refusal. */
static void test_value_appends_and_leaves_out_on_error(void **state)
{
    (void)state;
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    assert_int_equal(value_of("a", "1", &r, &err), SS_OK);
    assert_int_equal(value_of("a", "x", &r, &err), SS_PARSE);
    assert_int_equal(r.len, 1);
    assert_true(r.items[0].value == 1);
    readings_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reading_channel_valid_charset_and_length),
        cmocka_unit_test(test_reading_ts_check_bounds_spec_3),
        cmocka_unit_test(test_readings_push_grows_reset_keeps_memory),
        cmocka_unit_test(test_json_spec_3_1_flat_object_uses_server_time),
        cmocka_unit_test(test_json_spec_3_1_ts_and_values),
        cmocka_unit_test(test_json_spec_3_1_values_without_ts),
        cmocka_unit_test(test_json_spec_3_1_flat_object_with_ts_key),
        cmocka_unit_test(test_json_spec_3_1_batch_of_both_forms),
        cmocka_unit_test(test_json_appends_to_existing_readings),
        cmocka_unit_test(test_json_refuses_invalid_json_with_position),
        cmocka_unit_test(test_json_refuses_truncated_body),
        cmocka_unit_test(test_json_refuses_invalid_utf8),
        cmocka_unit_test(test_json_refuses_nul_byte),
        cmocka_unit_test(test_json_refuses_duplicate_keys),
        cmocka_unit_test(test_json_refuses_top_level_scalars),
        cmocka_unit_test(test_json_refuses_nested_array_with_index),
        cmocka_unit_test(test_json_refuses_values_not_object),
        cmocka_unit_test(test_json_refuses_extra_key_beside_values),
        cmocka_unit_test(test_json_refuses_ts_not_integer),
        cmocka_unit_test(test_json_refuses_non_number_values),
        cmocka_unit_test(test_json_refuses_overflowing_number),
        cmocka_unit_test(test_json_accepts_number_forms),
        cmocka_unit_test(test_json_refuses_invalid_channel_names),
        cmocka_unit_test(test_json_refuses_non_ascii_channel_with_clean_echo),
        cmocka_unit_test(test_json_channel_64_ok_65_refused),
        cmocka_unit_test(test_json_long_bad_key_echoes_at_most_64_bytes),
        cmocka_unit_test(test_json_invalid_token_echoes_at_most_64_bytes),
        cmocka_unit_test(test_json_refuses_empty_sets),
        cmocka_unit_test(test_json_ts_bounds_spec_3),
        cmocka_unit_test(test_json_max_readings_n_ok_n_plus_1_too_large),
        cmocka_unit_test(test_json_max_readings_at_the_default_limit),
        cmocka_unit_test(test_json_every_prefix_parses_or_fails_cleanly),
        cmocka_unit_test(test_line_spec_3_2_example),
        cmocka_unit_test(test_line_spec_3_2_crlf_ends_lines),
        cmocka_unit_test(test_line_spec_3_2_last_line_without_newline),
        cmocka_unit_test(test_line_spec_3_2_blank_and_comment_lines_skipped),
        cmocka_unit_test(test_line_value_number_forms),
        cmocka_unit_test(test_line_value_is_strtods_bit_for_bit),
        cmocka_unit_test(test_line_refuses_missing_equals),
        cmocka_unit_test(test_line_refuses_bad_values),
        cmocka_unit_test(test_line_refuses_overflow_to_infinity),
        cmocka_unit_test(test_line_refuses_overlong_value),
        cmocka_unit_test(test_line_refuses_bad_separators),
        cmocka_unit_test(test_line_refuses_bad_ts),
        cmocka_unit_test(test_line_ts_bounds_spec_3),
        cmocka_unit_test(test_line_refuses_lone_cr),
        cmocka_unit_test(test_line_refuses_invalid_channel_names),
        cmocka_unit_test(test_line_channel_64_ok_65_refused),
        cmocka_unit_test(test_line_long_bad_input_echoes_at_most_64_bytes),
        cmocka_unit_test(test_line_refuses_nul_and_control_bytes),
        cmocka_unit_test(test_line_errors_count_every_line),
        cmocka_unit_test(test_line_refuses_empty_body),
        cmocka_unit_test(test_line_max_length_n_ok_n_plus_1_refused),
        cmocka_unit_test(test_line_max_readings_n_ok_n_plus_1_too_large),
        cmocka_unit_test(test_line_body_appends_and_restores),
        cmocka_unit_test(test_parse_line_appends_and_truncates_back_on_error),
        cmocka_unit_test(test_parse_line_blank_and_comment_give_nothing),
        cmocka_unit_test(test_parse_line_refuses_terminator_inside),
        cmocka_unit_test(test_parse_line_over_line_max_refused),
        cmocka_unit_test(test_parse_line_every_prefix_parses_or_fails_cleanly),
        cmocka_unit_test(test_line_body_every_prefix_parses_or_fails_cleanly),
        cmocka_unit_test(test_value_number_forms_at_server_time),
        cmocka_unit_test(test_value_refusals),
        cmocka_unit_test(test_value_appends_and_leaves_out_on_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
