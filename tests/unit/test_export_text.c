/* test_export_text.c — the text of an export (src/http/export_text.c):
 * Accept-Encoding, CSV quoting, NDJSON escaping, numbers, device order and
 * the gzip stream across pages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "core/err.h"
#include "http/export_text.h"

static void test_accepts_gzip_by_name_star_and_q(void **state)
{
    (void)state;
    static const struct {
        const char *h;
        int want;
    } cases[] = {
        {NULL, 0},
        {"", 0},
        {"identity", 0},
        {"gzip", 1},
        {"GZIP", 1},
        {"x-gzip", 1},
        {"gzip, deflate", 1},
        {"deflate, gzip;q=0.5", 1},
        {"br;q=1.0, gzip;q=0.8, *;q=0.1", 1},
        {"gzip;q=0", 0},
        {"gzip; q=0.000", 0},
        {"*", 1},
        {"*;q=0", 0},
        {"br, *;q=0.5", 1},
        {"gzip;q=0, *", 0},
        {"gzipx", 0},
        {"br", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (export_text_accepts_gzip(cases[i].h) != cases[i].want)
            fail_msg("Accept-Encoding: %s", cases[i].h ? cases[i].h : "(none)");
    }
}

/* Two devices added out of order; their ids sorted, each row with its own
 * device's prefix. */
static void fill(export_text *t)
{
    assert_int_equal(export_text_add_device(t, "bbbb", "plain name"), SS_OK);
    assert_int_equal(export_text_add_device(t, "aaaa", "a, \"quoted\"\nname"), SS_OK);
    assert_int_equal(export_text_sort_devices(t), SS_OK);
    size_t n = 0;
    const char *const *ids = export_text_device_ids(t, &n);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], "aaaa");
    assert_string_equal(ids[1], "bbbb");
}

static void write_rows(export_text *t, ss_buf *page)
{
    store_export_row a = {.device = 0, .channel = "temp", .ts = 1732480000000, .value = 21.6};
    store_export_row b = {.device = 1, .channel = "rh", .ts = 1732480000001, .value = 0.1 + 0.2};
    assert_int_equal(export_text_header(t, page), SS_OK);
    assert_int_equal(export_text_row(t, page, &a), SS_OK);
    assert_int_equal(export_text_row(t, page, &b), SS_OK);
    assert_int_equal(export_text_header(t, page), SS_OK);  /* once only */
}

static void test_csv_header_quoting_and_shortest_numbers(void **state)
{
    (void)state;
    export_text t;
    ss_buf page = SS_BUF_INIT;
    assert_int_equal(export_text_init(&t, EXPORT_CSV, 0), SS_OK);
    fill(&t);
    write_rows(&t, &page);
    assert_int_equal(export_text_finish_page(&t, &page, 1), SS_OK);
    assert_string_equal(page.data, "device_id,device_name,channel,ts,value\n"
                                   "aaaa,\"a, \"\"quoted\"\"\nname\",temp,1732480000000,21.6\n"
                                   "bbbb,plain name,rh,1732480000001,0.30000000000000004\n");
    char headers[256];
    export_text_headers(&t, "org1", headers, sizeof headers);
    assert_non_null(strstr(headers, "filename=\"export-org1.csv\""));
    assert_null(strstr(headers, "Content-Encoding"));
    assert_string_equal(export_text_content_type(&t), "text/csv; charset=utf-8");
    buf_free(&page);
    export_text_free(&t);
}

static void test_ndjson_escapes_names(void **state)
{
    (void)state;
    export_text t;
    ss_buf page = SS_BUF_INIT;
    assert_int_equal(export_text_init(&t, EXPORT_NDJSON, 0), SS_OK);
    fill(&t);
    write_rows(&t, &page);
    assert_string_equal(page.data,
                        "{\"device_id\":\"aaaa\",\"device_name\":\"a, \\\"quoted\\\"\\nname\","
                        "\"channel\":\"temp\",\"ts\":1732480000000,\"value\":21.6}\n"
                        "{\"device_id\":\"bbbb\",\"device_name\":\"plain name\",\"channel\":\"rh\","
                        "\"ts\":1732480000001,\"value\":0.30000000000000004}\n");
    assert_string_equal(export_text_content_type(&t), "application/x-ndjson");
    buf_free(&page);
    export_text_free(&t);
}

/* Inflates everything so far of a gzip stream. */
static void inflate_all(z_stream *z, const ss_buf *in, ss_buf *out)
{
    z->next_in = (Bytef *)in->data;
    z->avail_in = (uInt)in->len;
    while (z->avail_in) {
        assert_int_equal(buf_reserve(out, 4096), 0);
        z->next_out = (Bytef *)out->data + out->len;
        z->avail_out = 4096;
        int rc = inflate(z, Z_SYNC_FLUSH);
        assert_true(rc == Z_OK || rc == Z_STREAM_END);
        out->len += 4096 - z->avail_out;
    }
}

/* Pages gzipped one by one make one gzip stream; each page can be read
 * whole as soon as it arrives (flushed), the last one ends the stream. */
static void test_gzip_pages_one_stream_each_flushed(void **state)
{
    (void)state;
    export_text t, plain;
    assert_int_equal(export_text_init(&t, EXPORT_CSV, 1), SS_OK);
    assert_int_equal(export_text_init(&plain, EXPORT_CSV, 0), SS_OK);
    fill(&t);
    fill(&plain);
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    ss_buf want = SS_BUF_INIT, got = SS_BUF_INIT, page = SS_BUF_INIT;
    for (int p = 0; p < 3; p++) {
        buf_reset(&page);
        size_t before = want.len;
        write_rows(&plain, &want);
        write_rows(&t, &page);
        assert_int_equal(export_text_finish_page(&t, &page, p == 2), SS_OK);
        inflate_all(&z, &page, &got);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.data + before, want.data + before, want.len - before);
    }
    char headers[256];
    export_text_headers(&t, "o", headers, sizeof headers);
    assert_non_null(strstr(headers, "Content-Encoding: gzip\r\n"));
    assert_non_null(strstr(headers, "Vary: Accept-Encoding\r\n"));
    inflateEnd(&z);
    buf_free(&want);
    buf_free(&got);
    buf_free(&page);
    export_text_free(&t);
    export_text_free(&plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_gzip_by_name_star_and_q),
        cmocka_unit_test(test_csv_header_quoting_and_shortest_numbers),
        cmocka_unit_test(test_ndjson_escapes_names),
        cmocka_unit_test(test_gzip_pages_one_stream_each_flushed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
