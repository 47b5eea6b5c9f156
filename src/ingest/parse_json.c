/* parse_json.c — the JSON reading format of SPEC §3.1, on jansson.
 *
 * jansson does the hard part (UTF-8, numbers, duplicate keys, nesting
 * depth); this file checks the shape: an object of readings, an object with
 * "ts" and "values", or an array of either, nothing else. */
#include "ingest/parse.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

static int json_fail(ss_parse_error *err, int rc, size_t position, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int json_fail(ss_parse_error *err, int rc, size_t position, const char *fmt, ...)
{
    va_list ap;
    err->position = position;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return rc;
}

/* jansson's text may quote the input ("near '…'"); only that part is
 * input, so only that part is cut to an excerpt. */
static int json_load_failed(const json_error_t *jerr, ss_parse_error *err)
{
    if (json_error_code(jerr) == json_error_out_of_memory)
        return json_fail(err, SS_NOMEM, 0, "out of memory parsing JSON");
    char ex[READING_EXCERPT_SIZE];
    const char *near = strstr(jerr->text, "near '");
    size_t head = near ? (size_t)(near - jerr->text) + 6 : strlen(jerr->text);
    const char *tail = near ? near + 6 : "";
    reading_excerpt(ex, tail, strlen(tail));
    return json_fail(err, SS_PARSE, 0, "invalid JSON at line %d column %d: %.*s%s", jerr->line,
                     jerr->column, (int)head, jerr->text, ex);
}

static int json_key_is(const char *key, size_t key_len, const char *name)
{
    return key_len == strlen(name) && memcmp(key, name, key_len) == 0;
}

/* Readings a set would yield if valid: counted before anything is pushed so
 * an oversized body is refused without growing `out`. */
static size_t json_set_count(const json_t *set)
{
    if (!json_is_object(set))
        return 0;
    const json_t *values = json_object_get(set, "values");
    if (values)
        return json_is_object(values) ? json_object_size(values) : 0;
    return json_object_size(set) - (json_object_get(set, "ts") ? 1 : 0);
}

static int json_parse_ts(const json_t *v, size_t idx, int64_t now_ms, int64_t *ts,
                         ss_parse_error *err)
{
    if (!json_is_integer(v))
        return json_fail(err, SS_PARSE, idx,
                         "reading %zu: ts is not an integer (ms since the epoch)", idx);
    json_int_t t = json_integer_value(v);
    if (reading_ts_check((int64_t)t, now_ms) != SS_OK)
        return json_fail(err, SS_PARSE, idx,
                         "reading %zu: ts %lld is before 2000-01-01 or more than 10 minutes "
                         "in the future", idx, (long long)t);
    *ts = (int64_t)t;
    return SS_OK;
}

static int json_push_one(const char *key, size_t key_len, const json_t *v, size_t idx,
                         int64_t ts, ss_readings *out, ss_parse_error *err)
{
    char ex[READING_EXCERPT_SIZE];
    reading_excerpt(ex, key, key_len);
    if (!reading_channel_valid(key, key_len))
        return json_fail(err, SS_PARSE, idx,
                         "reading %zu: channel \"%s\" is not a valid name ([A-Za-z0-9_.-]{1,64})",
                         idx, ex);
    double value = json_is_number(v) ? json_number_value(v) : NAN;
    if (!isfinite(value))
        return json_fail(err, SS_PARSE, idx, "reading %zu: value of \"%s\" is not a finite number",
                         idx, ex);
    if (readings_push(out, key, key_len, ts, value) != SS_OK)
        return json_fail(err, SS_NOMEM, idx, "out of memory");
    return SS_OK;
}

/* Pushes every channel of obj; skip_ts for the flat form, where "ts" is the
 * time and not a channel. */
static int json_push_channels(const json_t *obj, int skip_ts, size_t idx, int64_t ts,
                              ss_readings *out, ss_parse_error *err)
{
    const char *key;
    size_t key_len;
    json_t *v;
    size_t pushed = 0;
    json_object_keylen_foreach((json_t *)obj, key, key_len, v) {
        if (skip_ts && json_key_is(key, key_len, "ts"))
            continue;
        int rc = json_push_one(key, key_len, v, idx, ts, out, err);
        if (rc != SS_OK)
            return rc;
        pushed++;
    }
    if (pushed == 0)
        return json_fail(err, SS_PARSE, idx, "reading %zu: no readings", idx);
    return SS_OK;
}

/* {"ts": …, "values": {…}}: any key besides those two is a mistake worth
 * reporting rather than silently dropping. */
static int json_check_wrapped_keys(const json_t *set, size_t idx, ss_parse_error *err)
{
    const char *key;
    size_t key_len;
    json_t *v;
    json_object_keylen_foreach((json_t *)set, key, key_len, v) {
        if (json_key_is(key, key_len, "ts") || json_key_is(key, key_len, "values"))
            continue;
        char ex[READING_EXCERPT_SIZE];
        reading_excerpt(ex, key, key_len);
        return json_fail(err, SS_PARSE, idx,
                         "reading %zu: unexpected key \"%s\" beside \"ts\" and \"values\"", idx,
                         ex);
    }
    return SS_OK;
}

static int json_parse_set(const json_t *set, size_t idx, int64_t now_ms, ss_readings *out,
                          ss_parse_error *err)
{
    if (json_is_array(set))
        return json_fail(err, SS_PARSE, idx, "reading %zu: nested arrays are not allowed", idx);
    if (!json_is_object(set))
        return json_fail(err, SS_PARSE, idx, "reading %zu: expected an object", idx);
    int64_t ts = now_ms;
    const json_t *ts_json = json_object_get(set, "ts");
    if (ts_json) {
        int rc = json_parse_ts(ts_json, idx, now_ms, &ts, err);
        if (rc != SS_OK)
            return rc;
    }
    const json_t *values = json_object_get(set, "values");
    if (!values)
        return json_push_channels(set, 1, idx, ts, out, err);
    int rc = json_check_wrapped_keys(set, idx, err);
    if (rc != SS_OK)
        return rc;
    if (!json_is_object(values))
        return json_fail(err, SS_PARSE, idx, "reading %zu: \"values\" is not an object", idx);
    return json_push_channels(values, 0, idx, ts, out, err);
}

static int json_too_large(size_t idx, size_t max_readings, ss_parse_error *err)
{
    return json_fail(err, SS_TOO_LARGE, idx, "reading %zu: more than %zu readings in one request",
                     idx, max_readings);
}

static int json_parse_array(const json_t *arr, int64_t now_ms, size_t max_readings,
                            ss_readings *out, ss_parse_error *err)
{
    size_t n = json_array_size(arr);
    if (n == 0)
        return json_fail(err, SS_PARSE, 0, "no readings");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += json_set_count(json_array_get(arr, i));
        if (total > max_readings)
            return json_too_large(i, max_readings, err);
    }
    for (size_t i = 0; i < n; i++) {
        int rc = json_parse_set(json_array_get(arr, i), i, now_ms, out, err);
        if (rc != SS_OK)
            return rc;
    }
    return SS_OK;
}

static int json_parse_root(const json_t *root, int64_t now_ms, size_t max_readings,
                           ss_readings *out, ss_parse_error *err)
{
    if (json_is_array(root))
        return json_parse_array(root, now_ms, max_readings, out, err);
    if (!json_is_object(root))
        return json_fail(err, SS_PARSE, 0, "expected an object or an array");
    if (json_set_count(root) > max_readings)
        return json_too_large(0, max_readings, err);
    return json_parse_set(root, 0, now_ms, out, err);
}

int parse_json_readings(const char *body, size_t len, int64_t now_ms, size_t max_readings,
                        ss_readings *out, ss_parse_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", body ? len : 0, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return json_load_failed(&jerr, err);
    size_t start = out->len;
    int rc = json_parse_root(root, now_ms, max_readings, out, err);
    json_decref(root);
    if (rc != SS_OK)
        out->len = start;
    return rc;
}
