/* Unit tests of src/core: buffers, errors, clock parsing, config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/json_out.h"
#include "core/list.h"

#include <math.h>

static void buf_appends_and_consumes(void **state)
{
    (void)state;
    ss_buf b = SS_BUF_INIT;
    assert_int_equal(buf_append_str(&b, "hello"), 0);
    assert_int_equal(buf_printf(&b, " %d", 42), 0);
    assert_string_equal(b.data, "hello 42");
    buf_consume(&b, 6);
    assert_string_equal(b.data, "42");
    assert_int_equal(b.len, 2);
    buf_consume(&b, 10);
    assert_int_equal(b.len, 0);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(buf_append(&b, "x", 1), 0);
    assert_int_equal(b.len, 10000);
    char *p = buf_steal(&b);
    assert_non_null(p);
    assert_null(b.data);
    free(p);
    buf_free(&b);
}

static void buf_refuses_impossible_sizes(void **state)
{
    (void)state;
    ss_buf b = SS_BUF_INIT;
    buf_append_str(&b, "x");
    assert_int_equal(buf_reserve(&b, SIZE_MAX - 1), SS_NOMEM);
    assert_string_equal(b.data, "x");
    buf_free(&b);
}

static void err_names_and_messages(void **state)
{
    (void)state;
    assert_string_equal(ss_err_name(SS_NOT_FOUND), "NOT_FOUND");
    assert_string_equal(ss_strerror(SS_OK), "success");
    assert_string_equal(ss_err_name(-999), "UNKNOWN");
    assert_string_equal(ss_strerror(-999), "unknown error");
}

static void clock_parses_ms_and_rfc3339(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(clock_parse_time("1732480000000", &ms), 0);
    assert_int_equal(ms, 1732480000000LL);
    assert_int_equal(clock_parse_time("2024-11-24T20:26:40Z", &ms), 0);
    assert_int_equal(ms, 1732480000000LL);
    assert_int_equal(clock_parse_time("2024-11-24T21:26:40.5+01:00", &ms), 0);
    assert_int_equal(ms, 1732480000500LL);
    assert_int_equal(clock_parse_time("2000-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 946684800000LL);
    assert_int_equal(clock_parse_time("2024-13-01T00:00:00Z", &ms), SS_INVAL);
    assert_int_equal(clock_parse_time("2024-11-24T20:26:40", &ms), SS_INVAL);
    assert_int_equal(clock_parse_time("yesterday", &ms), SS_INVAL);
    assert_int_equal(clock_parse_time("", &ms), SS_INVAL);
    assert_int_equal(clock_parse_time("12x", &ms), SS_INVAL);
}

static void config_defaults_match_spec(void **state)
{
    (void)state;
    config cfg;
    config_defaults(&cfg);
    assert_string_equal(cfg.listen_https, "0.0.0.0:8443");
    assert_string_equal(cfg.listen_http, "127.0.0.1:8080");
    assert_string_equal(cfg.listen_mqtts, "0.0.0.0:8883");
    assert_string_equal(cfg.listen_mqtt, "127.0.0.1:1883");
    assert_string_equal(cfg.listen_tcp, "127.0.0.1:7070");
    assert_string_equal(cfg.listen_udp, "127.0.0.1:7070");
    assert_string_equal(cfg.data_dir, "./data");
    assert_string_equal(cfg.store, "sqlite:");
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.durability, "full");
}

static void config_flags_win_over_file(void **state)
{
    (void)state;
    char path[] = "/tmp/ss-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "# comment\n\nlisten-http = 127.0.0.1:9\nlog-level=debug\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    config cfg;
    config_defaults(&cfg);
    char err[256] = "";
    char *argv[] = {"--listen-http", "off", "--config", path, "--data-dir=/tmp/x"};
    assert_int_equal(config_from_args(&cfg, 5, argv, err, sizeof err), 0);
    assert_string_equal(cfg.listen_http, "off");
    assert_string_equal(cfg.log_level, "debug");
    assert_string_equal(cfg.data_dir, "/tmp/x");
    assert_int_equal(config_validate(&cfg, err, sizeof err), 0);
    unlink(path);
}

static void config_comment_after_a_value(void **state)
{
    (void)state;
    char path[] = "/tmp/ss-config-comment-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "log-level = warn  # quiet\ndata-dir = /srv/data#2\n"
                        "listen-http=off\t#tab before\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    config cfg;
    config_defaults(&cfg);
    char err[256] = "";
    assert_int_equal(config_load_file(&cfg, path, err, sizeof err), 0);
    assert_string_equal(cfg.log_level, "warn");
    assert_string_equal(cfg.data_dir, "/srv/data#2");
    assert_string_equal(cfg.listen_http, "off");
    unlink(path);
}

static void config_first_message_timeout_takes_fractions_up_to_10s(void **state)
{
    (void)state;
    config cfg;
    char err[256] = "";
    config_defaults(&cfg);
    assert_string_equal(cfg.first_message_timeout, "10");
    uint64_t ms = 0;
    assert_int_equal(config_millis("10", 100, 10000, &ms), SS_OK);
    assert_int_equal(ms, 10000);
    assert_int_equal(config_millis("0.5", 100, 10000, &ms), SS_OK);
    assert_int_equal(ms, 500);
    assert_int_equal(config_millis("2.25", 100, 10000, &ms), SS_OK);
    assert_int_equal(ms, 2250);
    const char *bad[] = {"", "0", "0.05", "10.001", "11", "-1", "1.5s", ".5", "0.0001",
                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(config_millis(bad[i], 100, 10000, &ms), SS_INVAL);
    config_set(&cfg, "first-message-timeout", "0.5");
    assert_int_equal(config_validate(&cfg, err, sizeof err), SS_OK);
    config_set(&cfg, "first-message-timeout", "30");
    assert_int_equal(config_validate(&cfg, err, sizeof err), SS_INVAL);
    assert_non_null(strstr(err, "first-message-timeout"));
}

static void config_refuses_bad_input(void **state)
{
    (void)state;
    config cfg;
    config_defaults(&cfg);
    char err[256] = "";
    char *unknown[] = {"--nope", "1"};
    assert_int_equal(config_from_args(&cfg, 2, unknown, err, sizeof err), SS_INVAL);
    assert_non_null(strstr(err, "--nope"));
    char *missing[] = {"--data-dir"};
    assert_int_equal(config_from_args(&cfg, 1, missing, err, sizeof err), SS_INVAL);
    char *bare[] = {"serve"};
    assert_int_equal(config_from_args(&cfg, 1, bare, err, sizeof err), SS_INVAL);
    char *nofile[] = {"--config", "/nonexistent/file"};
    assert_int_equal(config_from_args(&cfg, 2, nofile, err, sizeof err), SS_IO);
    config_set(&cfg, "durability", "sometimes");
    assert_int_equal(config_validate(&cfg, err, sizeof err), SS_INVAL);
    config_defaults(&cfg);
    config_set(&cfg, "log-level", "loud");
    assert_int_equal(config_validate(&cfg, err, sizeof err), SS_INVAL);
    config_defaults(&cfg);
    config_set(&cfg, "tls-cert", "/x.pem");
    assert_int_equal(config_validate(&cfg, err, sizeof err), SS_INVAL);
    /* the sign-in throttle's cap may be lowered, never raised */
    config_defaults(&cfg);
    config_set(&cfg, "login-delay-max", "2");
    assert_int_equal(config_validate(&cfg, err, sizeof err), SS_OK);
    config_set(&cfg, "login-delay-max", "61");
    assert_int_equal(config_validate(&cfg, err, sizeof err), SS_INVAL);
    assert_non_null(strstr(err, "login-delay-max"));
    config_defaults(&cfg);
    /* a line past the file line limit is refused, not split in two */
    char path[] = "/tmp/ss-config-long-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char comment[5000];
    memset(comment, 'x', sizeof comment);
    comment[0] = '#';
    assert_int_equal(write(fd, comment, sizeof comment), (ssize_t)sizeof comment);
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    config_defaults(&cfg);
    assert_int_equal(config_load_file(&cfg, path, err, sizeof err), SS_INVAL);
    assert_non_null(strstr(err, "longer"));
    unlink(path);
    char big[CONFIG_VALUE_MAX + 1];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(config_set(&cfg, "data-dir", big), SS_INVAL);
}

static void hash_id_spreads_ids_and_reads_every_byte(void **state)
{
    (void)state;
    assert_true(hash_id("5f0c1e2d3a4b5c6d7e8f9a0b") == hash_id("5f0c1e2d3a4b5c6d7e8f9a0b"));
    /* a change in any byte, and in the length, changes the hash */
    const char *base = "5f0c1e2d3a4b5c6d7e8f9a0b";
    char id[32];
    for (size_t i = 0; i < strlen(base); i++) {
        snprintf(id, sizeof id, "%s", base);
        id[i] = id[i] == 'x' ? 'y' : 'x';
        assert_true(hash_id(id) != hash_id(base));
    }
    assert_true(hash_id("") != hash_id("0"));
    assert_true(hash_id("org1") != hash_id("org10"));
    /* sequential ids land in many of 256 buckets */
    unsigned char used[256] = {0};
    size_t distinct = 0;
    for (int i = 0; i < 256; i++) {
        snprintf(id, sizeof id, "org%d", i);
        size_t slot = (size_t)(hash_id(id) & 255);
        distinct += !used[slot];
        used[slot] = 1;
    }
    assert_true(distinct > 140);  /* a uniform hash fills ~162 */
}

/* SPEC §2: numbers print as the shortest text that reads back the same. */
static void json_out_prints_shortest_round_trip(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {21.6, "21.6"},
        {0.1, "0.1"},
        {1e300, "1e300"},
        {5e-324, "5e-324"},
        {-0.0, "-0"},
        {0.0, "0"},
        {123456789012345678.0, "1.2345678901234568e17"},
        {100.0, "100"},
        {-1.5, "-1.5"},
        {0.30000000000000004, "0.30000000000000004"},
        {1e-5, "1e-5"},
        {2.2250738585072014e-308, "2.2250738585072014e-308"},
        {1.7976931348623157e308, "1.7976931348623157e308"},
    };
    char text[JSON_OUT_DOUBLE_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = json_out_double(cases[i].v, text);
        assert_string_equal(text, cases[i].text);
        assert_int_equal(len, strlen(cases[i].text));
    }
    assert_true(signbit(strtod("-0", NULL)));
}

/* Any double, normal or not, reads back exactly and no shorter text of
 * fewer digits would (checked against %.*g one digit shorter). */
static void json_out_round_trips_random_doubles(void **state)
{
    (void)state;
    srand(7);
    char text[JSON_OUT_DOUBLE_MAX], shorter[512];
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = 0;
        for (int k = 0; k < 4; k++)
            bits = (bits << 16) ^ (uint64_t)(rand() & 0xffff);
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v))
            continue;
        json_out_double(v, text);
        assert_true(strtod(text, NULL) == v);
        size_t digits = 0;  /* significant: from the first nonzero digit */
        for (const char *p = text; *p && *p != 'e'; p++)
            digits += (digits > 0 || (*p >= '1' && *p <= '9')) && *p >= '0' && *p <= '9';
        if (digits > 1 && v != 0) {
            snprintf(shorter, sizeof shorter, "%.*g", (int)digits - 1, v);
            assert_false(strtod(shorter, NULL) == v);
        }
    }
}

static void json_out_writes_compact_json(void **state)
{
    (void)state;
    json_t *v = json_pack("{s:[f,f,I],s:s,s:b,s:n,s:{}}", "v", 21.6, 1e300,
                          (json_int_t)123456789012345678LL, "s", "a\"b\\c\n\x01/\xc3\xa9", "t", 1,
                          "z", "o");
    ss_buf b = SS_BUF_INIT;
    assert_int_equal(json_out_value(&b, v), 0);
    assert_string_equal(b.data, "{\"v\":[21.6,1e300,123456789012345678],"
                                "\"s\":\"a\\\"b\\\\c\\n\\u0001/\xc3\xa9\",\"t\":true,"
                                "\"z\":null,\"o\":{}}");
    /* what jansson reads back is what was written */
    json_t *back = json_loadb(b.data, b.len, 0, NULL);
    assert_non_null(back);
    assert_true(json_real_value(json_array_get(json_object_get(back, "v"), 0)) == 21.6);
    json_decref(back);
    buf_free(&b);
    assert_int_equal(json_out_value(&b, NULL), SS_INVAL);
    buf_free(&b);
    json_decref(v);
}

typedef struct list_item {
    int value;
    ss_list node;
} list_item;

static void list_links_in_order_and_removes_while_walking(void **state)
{
    (void)state;
    ss_list head;
    ss_list_init(&head);
    assert_true(ss_list_empty(&head));
    assert_null(ss_list_first(&head));
    list_item items[4];
    for (int i = 0; i < 4; i++) {
        items[i].value = i;
        ss_list_init(&items[i].node);
        assert_false(ss_list_linked(&items[i].node));
        ss_list_insert_tail(&head, &items[i].node);
    }
    list_item zero = {.value = -1};
    ss_list_insert_head(&head, &zero.node);
    ss_list *it, *tmp;
    int expect = -1, seen = 0;
    ss_list_foreach_safe(it, tmp, &head) {
        list_item *item = ss_list_entry(it, list_item, node);
        assert_int_equal(item->value, expect);
        expect = expect == -1 ? 0 : expect + 1;
        if (item->value % 2 == 0)
            ss_list_remove(it);
        seen++;
    }
    assert_int_equal(seen, 5);
    assert_false(ss_list_linked(&items[0].node));
    ss_list_remove(&items[0].node); /* twice is harmless */
    assert_ptr_equal(ss_list_entry(ss_list_first(&head), list_item, node), &zero);
    assert_ptr_equal(zero.node.next, &items[1].node);
    assert_ptr_equal(items[1].node.next, &items[3].node);
    assert_ptr_equal(items[3].node.next, &head);
    assert_ptr_equal(head.prev, &items[3].node);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_appends_and_consumes),
        cmocka_unit_test(buf_refuses_impossible_sizes),
        cmocka_unit_test(err_names_and_messages),
        cmocka_unit_test(hash_id_spreads_ids_and_reads_every_byte),
        cmocka_unit_test(clock_parses_ms_and_rfc3339),
        cmocka_unit_test(config_defaults_match_spec),
        cmocka_unit_test(config_flags_win_over_file),
        cmocka_unit_test(config_comment_after_a_value),
        cmocka_unit_test(config_first_message_timeout_takes_fractions_up_to_10s),
        cmocka_unit_test(config_refuses_bad_input),
        cmocka_unit_test(json_out_prints_shortest_round_trip),
        cmocka_unit_test(json_out_round_trips_random_doubles),
        cmocka_unit_test(json_out_writes_compact_json),
        cmocka_unit_test(list_links_in_order_and_removes_while_walking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
