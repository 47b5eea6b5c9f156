/* test_import_parse.c — the bulk import formats (CSV, NDJSON, line format
 * with a device per line), fed whole and in pieces of every size. */
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
#include "ingest/import_parse.h"

#define NOW 1732480300000LL
#define TS 1732480000000LL

typedef struct got_line {
    size_t lineno;
    char device[SS_ID_LEN + 1];
    char channel[SS_CHANNEL_MAX + 1];
    int64_t ts;
    double value;
} got_line;

typedef struct got {
    got_line lines[64];
    size_t n;
    size_t stop_at;  /* stop the parse at this line (0: never) */
} got;

static int on_line(void *ctx, size_t lineno, const char *device, size_t device_len,
                   const ss_readings *rs, ss_parse_error *err)
{
    got *g = ctx;
    if (g->stop_at && lineno == g->stop_at) {
        snprintf(err->message, sizeof err->message, "stopped");
        return 1;
    }
    for (size_t i = 0; i < rs->len && g->n < 64; i++) {
        got_line *l = &g->lines[g->n++];
        l->lineno = lineno;
        memcpy(l->device, device, device_len);
        l->device[device_len] = '\0';
        snprintf(l->channel, sizeof l->channel, "%s", rs->items[i].channel);
        l->ts = rs->items[i].ts;
        l->value = rs->items[i].value;
    }
    return 0;
}

/* Feeds body in pieces of `step` bytes (0: whole), each copied to a buffer
 * of exactly its size so ASan sees a read past it. */
static int run(import_format f, const char *body, size_t step, got *g, ss_parse_error *err)
{
    import_parser p;
    import_parser_init(&p, f, NOW, on_line, g);
    size_t len = strlen(body);
    if (step == 0)
        step = len ? len : 1;
    int rc = SS_OK;
    for (size_t at = 0; at < len && rc == SS_OK; at += step) {
        size_t n = len - at < step ? len - at : step;
        char *piece = malloc(n);
        memcpy(piece, body + at, n);
        rc = import_parser_feed(&p, piece, n, err);
        free(piece);
    }
    if (rc == SS_OK)
        rc = import_parser_end(&p, err);
    import_parser_free(&p);
    return rc;
}

static const char csv_body[] =
    "device_id,device_name,channel,ts,value\n"
    "dev1,Boiler,temp,1732480000000,21.5\r\n"
    "\n"
    "dev1,\"Hall, \"\"north\"\"\nwing\",rh,1732480000001,40\n"
    "dev2,,temp,1732480000002,-3e2";

static void csv_whole_and_in_pieces(void **state)
{
    (void)state;
    for (size_t step = 0; step < sizeof csv_body; step++) {
        got g = {0};
        ss_parse_error err = {0};
        assert_int_equal(run(IMPORT_CSV, csv_body, step, &g, &err), SS_OK);
        assert_int_equal(g.n, 3);
        assert_string_equal(g.lines[0].device, "dev1");
        assert_string_equal(g.lines[0].channel, "temp");
        assert_int_equal(g.lines[0].ts, TS);
        assert_true(g.lines[0].value == 21.5);
        assert_int_equal(g.lines[0].lineno, 2);
        /* The quoted name spans two lines: the record starts on line 4. */
        assert_int_equal(g.lines[1].lineno, 4);
        assert_string_equal(g.lines[1].channel, "rh");
        assert_int_equal(g.lines[2].lineno, 6);
        assert_string_equal(g.lines[2].device, "dev2");
        assert_true(g.lines[2].value == -300);
    }
}

static void csv_needs_its_header(void **state)
{
    (void)state;
    got g = {0};
    ss_parse_error err = {0};
    assert_int_equal(run(IMPORT_CSV, "dev1,,temp,1732480000000,1\n", 0, &g, &err), SS_PARSE);
    assert_int_equal(err.position, 1);
    assert_non_null(strstr(err.message, "header"));
    assert_int_equal(run(IMPORT_CSV, "", 0, &g, &err), SS_PARSE);
}

static void csv_bad_lines_named(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        const char *says;
    } bad[] = {
        {"dev1,,temp,1732480000000,abc", "not a number"},
        {"dev1,,temp,1732480000000", "4 fields"},
        {"dev1,,temp,1732480000000,1,2", "more than 5"},
        {"dev1,,te mp,1732480000000,1", "not a valid name"},
        {"dev1,,temp,,1", "no ts"},
        {"dev1,,temp,12x,1", "not an integer"},
        {"dev1,,temp,99999999999999,1", "future"},
        {"dev1,,temp,9999999999999999999,1", "future"},  /* past int64_t */
        {",,temp,1732480000000,1", "no device"},
        {"dev1,\"open,temp,1732480000000,1", "not closed"},
        {"dev1,,temp,1732480000000,nan", "not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "device_id,device_name,channel,ts,value\ndev1,,a,1732480000000,1\n%s\n",
                 bad[i].line);
        got g = {0};
        ss_parse_error err = {0};
        assert_int_equal(run(IMPORT_CSV, body, 0, &g, &err), SS_PARSE);
        assert_int_equal(err.position, 3);
        assert_non_null(strstr(err.message, "line 3: "));
        if (!strstr(err.message, bad[i].says))
            fail_msg("%s: %s", bad[i].line, err.message);
    }
}

static void ndjson_lines(void **state)
{
    (void)state;
    static const char body[] =
        "{\"device_id\":\"dev1\",\"device_name\":\"B\",\"channel\":\"temp\",\"ts\":1732480000000,"
        "\"value\":21.5}\n"
        "\n"
        "{\"device_id\":\"dev2\",\"channel\":\"rh\",\"ts\":1732480000001,\"value\":40}\n";
    for (size_t step = 0; step < sizeof body; step += 7) {
        got g = {0};
        ss_parse_error err = {0};
        assert_int_equal(run(IMPORT_NDJSON, body, step, &g, &err), SS_OK);
        assert_int_equal(g.n, 2);
        assert_string_equal(g.lines[1].device, "dev2");
        assert_int_equal(g.lines[1].lineno, 3);
        assert_true(g.lines[1].value == 40);
    }
    static const char *const bad[] = {
        "{\"device_id\":\"d\",\"channel\":\"t\",\"ts\":1732480000000}",
        "{\"device_id\":\"d\",\"channel\":\"t\",\"ts\":1732480000000,\"value\":\"1\"}",
        "{\"device_id\":\"d\",\"channel\":\"t\",\"ts\":1732480000000,\"value\":1,\"x\":1}",
        "{\"device_id\":\"d\",\"channel\":\"t\",\"ts\":1.5,\"value\":1}",
        "[1]",
        "{\"device_id\":\"d\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        got g = {0};
        ss_parse_error err = {0};
        assert_int_equal(run(IMPORT_NDJSON, bad[i], 0, &g, &err), SS_PARSE);
        assert_int_equal(err.position, 1);
    }
}

static void line_format_names_its_device(void **state)
{
    (void)state;
    static const char body[] = "# history of two devices\n"
                               "dev1 temp=21.5,rh=40 1732480000000\n"
                               "dev2 temp=1 1732480000001\r\n";
    got g = {0};
    ss_parse_error err = {0};
    assert_int_equal(run(IMPORT_LINE, body, 5, &g, &err), SS_OK);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.lines[1].channel, "rh");
    assert_int_equal(g.lines[1].ts, TS);
    assert_string_equal(g.lines[2].device, "dev2");
    assert_int_equal(g.lines[2].lineno, 3);
    static const char *const bad[] = {
        "dev1 temp=21.5",          /* no ts */
        "temp=21.5 1732480000000", /* no device */
        "dev1 temp=x 1732480000000",
        "dev1  temp=1 1732480000000",
        "dev1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(run(IMPORT_LINE, bad[i], 0, &g, &err), SS_PARSE);
        assert_int_equal(err.position, 1);
    }
}

static void overlong_line_refused(void **state)
{
    (void)state;
    size_t n = SS_LINE_MAX + 100;
    char *body = malloc(n + 1);
    memset(body, 'a', n);
    body[n] = '\0';
    got g = {0};
    ss_parse_error err = {0};
    assert_int_equal(run(IMPORT_LINE, body, 4096, &g, &err), SS_PARSE);
    assert_non_null(strstr(err.message, "longer"));
    free(body);
}

static void callback_stops_the_parse(void **state)
{
    (void)state;
    got g = {.stop_at = 2};
    ss_parse_error err = {0};
    assert_int_equal(
        run(IMPORT_LINE, "d t=1 1732480000000\nd t=2 1732480000000\nd t=3 1732480000000\n", 0,
            &g, &err),
        SS_CONFLICT);
    assert_int_equal(g.n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csv_whole_and_in_pieces),
        cmocka_unit_test(csv_needs_its_header),
        cmocka_unit_test(csv_bad_lines_named),
        cmocka_unit_test(ndjson_lines),
        cmocka_unit_test(line_format_names_its_device),
        cmocka_unit_test(overlong_line_refused),
        cmocka_unit_test(callback_stops_the_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
