/* Unit tests of the web app's built-in assets (src/http/web_assets.h, as
 * scripts/web-embed.mjs generates them): the page at "/", every other
 * file under this build's prefix, each gzip form the same bytes as its
 * body, tags that tell the files apart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "http/web_assets.h"

static const web_asset *find(const char *path)
{
    for (size_t i = 0; i < web_assets_count; i++)
        if (strcmp(web_assets[i].path, path) == 0)
            return &web_assets[i];
    return NULL;
}

static void the_page_names_this_build(void **state)
{
    (void)state;
    const web_asset *page = find("/");
    assert_non_null(page);
    assert_false(page->immutable);
    assert_string_equal(page->type, "text/html; charset=utf-8");
    char prefix[64];
    snprintf(prefix, sizeof prefix, "/assets/%s/app.js", web_assets_build);
    assert_non_null(memmem(page->body, page->len, prefix, strlen(prefix)));
    assert_null(memmem(page->body, page->len, "%ASSETS%", 8));
    char uplot[64];
    snprintf(uplot, sizeof uplot, "/assets/%s/vendor/uplot.esm.js", web_assets_build);
    assert_non_null(find(uplot));
}

static void every_asset_is_under_the_build_once(void **state)
{
    (void)state;
    char prefix[64];
    int n = snprintf(prefix, sizeof prefix, "/assets/%s/", web_assets_build);
    for (size_t i = 0; i < web_assets_count; i++) {
        const web_asset *a = &web_assets[i];
        if (strcmp(a->path, "/") != 0) {
            assert_memory_equal(a->path, prefix, (size_t)n);
            assert_true(a->immutable);
        }
        assert_true(a->etag[0] == '"' && a->etag[strlen(a->etag) - 1] == '"');
        for (size_t j = i + 1; j < web_assets_count; j++)
            assert_string_not_equal(a->path, web_assets[j].path);
    }
}

static void each_gzip_form_is_its_body(void **state)
{
    (void)state;
    for (size_t i = 0; i < web_assets_count; i++) {
        const web_asset *a = &web_assets[i];
        if (!a->gz)
            continue;
        assert_true(a->gz_len < a->len);
        unsigned char *out = malloc(a->len + 1);
        assert_non_null(out);
        z_stream z = {0};
        assert_int_equal(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
        z.next_in = (unsigned char *)a->gz;
        z.avail_in = (uInt)a->gz_len;
        z.next_out = out;
        z.avail_out = (uInt)a->len + 1;
        assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
        assert_int_equal(z.total_out, a->len);
        assert_memory_equal(out, a->body, a->len);
        inflateEnd(&z);
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_page_names_this_build),
        cmocka_unit_test(every_asset_is_under_the_build_once),
        cmocka_unit_test(each_gzip_form_is_its_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
