/* import_parse.c — the three import formats (import_parse.h), fed in
 * pieces. Lines are cut here; each format's line is read by its own
 * function, the line format's readings by parse_line (SPEC §3.2) and a
 * CSV value by parse_value_reading, so a reading means the same whichever
 * way it came. */
#include "ingest/import_parse.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

#define IMPORT_CSV_HEADER "device_id,device_name,channel,ts,value"
#define IMPORT_CSV_FIELDS 5u

int import_format_parse(const char *name, import_format *out)
{
    static const struct {
        const char *name;
        import_format format;
    } names[] = {{"line", IMPORT_LINE}, {"csv", IMPORT_CSV}, {"ndjson", IMPORT_NDJSON}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].format;
            return SS_OK;
        }
    }
    return SS_INVAL;
}

static int import_fail(ss_parse_error *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int import_fail(ss_parse_error *err, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return rc;
}

static int import_device_check(const char *device, size_t len, ss_parse_error *err)
{
    if (len == 0)
        return import_fail(err, SS_PARSE, "no device id");
    if (len > SS_ID_LEN) {
        char ex[READING_EXCERPT_SIZE];
        reading_excerpt(ex, device, len);
        return import_fail(err, SS_PARSE, "device id \"%s\" is longer than %u bytes", ex,
                           SS_ID_LEN);
    }
    return SS_OK;
}

/* Digits of a ts past which it is out of range whatever they are: 18
 * digits still fit an int64_t, and any ts of SPEC §3 has 13. */
#define IMPORT_TS_DIGITS_MAX 18u

/* Digits only, within the ts range of SPEC §3. */
static int import_ts(const char *s, size_t len, int64_t now_ms, int64_t *out,
                     ss_parse_error *err)
{
    char ex[READING_EXCERPT_SIZE];
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || len > 19) {
            reading_excerpt(ex, s, len);
            return import_fail(err, SS_PARSE, "ts \"%s\" is not an integer (ms since the epoch)",
                               ex);
        }
        if (len <= IMPORT_TS_DIGITS_MAX)
            v = v * 10 + (s[i] - '0');
    }
    if (len == 0)
        return import_fail(err, SS_PARSE, "no ts (an import needs one on every reading)");
    if (len > IMPORT_TS_DIGITS_MAX || reading_ts_check(v, now_ms) != SS_OK) {
        reading_excerpt(ex, s, len);
        return import_fail(err, SS_PARSE,
                           "ts %s is before 2000-01-01 or more than 10 minutes in the future", ex);
    }
    *out = v;
    return SS_OK;
}

/* ---- csv ---------------------------------------------------------------- */

typedef struct import_slice {
    const char *p;
    size_t len;
} import_slice;

/* One field from s[*at]: quoted (RFC 4180, "" inside; the slice keeps the
 * doubled quotes, which only the ignored device_name may hold) or plain.
 * Leaves *at past the field's comma, or at n at the end. */
static int csv_field(const char *s, size_t n, size_t *at, import_slice *f, ss_parse_error *err)
{
    size_t i = *at;
    if (i < n && s[i] == '"') {
        size_t j = i + 1;
        for (;;) {
            const char *q = memchr(s + j, '"', n - j);
            if (!q)
                return import_fail(err, SS_PARSE, "a quoted field is not closed");
            j = (size_t)(q - s) + 1;
            if (j < n && s[j] == '"') {
                j++;
                continue;
            }
            break;
        }
        if (j < n && s[j] != ',')
            return import_fail(err, SS_PARSE, "a quoted field is followed by more than a comma");
        *f = (import_slice){s + i + 1, j - i - 2};
        *at = j < n ? j + 1 : SIZE_MAX;
        return SS_OK;
    }
    const char *c = memchr(s + i, ',', n - i);
    size_t end = c ? (size_t)(c - s) : n;
    *f = (import_slice){s + i, end - i};
    *at = c ? end + 1 : SIZE_MAX;
    return SS_OK;
}

static int csv_fields(const char *s, size_t n, import_slice f[IMPORT_CSV_FIELDS],
                      ss_parse_error *err)
{
    size_t at = 0, k = 0;
    while (at != SIZE_MAX) {
        if (k == IMPORT_CSV_FIELDS)
            return import_fail(err, SS_PARSE,
                               "more than %u fields (device_id,device_name,channel,ts,value)",
                               IMPORT_CSV_FIELDS);
        int rc = csv_field(s, n, &at, &f[k], err);
        if (rc)
            return rc;
        k++;
    }
    if (k != IMPORT_CSV_FIELDS)
        return import_fail(err, SS_PARSE,
                           "%zu fields where 5 are expected (device_id,device_name,channel,ts,"
                           "value)",
                           k);
    return SS_OK;
}

static int csv_line(const char *line, size_t len, int64_t now_ms, const char **device,
                    size_t *device_len, ss_readings *out, ss_parse_error *err)
{
    import_slice f[IMPORT_CSV_FIELDS];
    int64_t ts = 0;
    int rc = csv_fields(line, len, f, err);
    if (!rc)
        rc = import_device_check(f[0].p, f[0].len, err);
    if (!rc)
        rc = import_ts(f[3].p, f[3].len, now_ms, &ts, err);
    if (!rc)
        rc = parse_value_reading(f[2].p, f[2].len, f[4].p, f[4].len, ts, out, err);
    if (rc)
        return rc;
    *device = f[0].p;
    *device_len = f[0].len;
    return SS_OK;
}

/* ---- ndjson ------------------------------------------------------------- */

typedef struct ndjson_row {
    const char *device, *channel;
    size_t device_len, channel_len;
    int64_t ts;
    double value;
    int has_ts, has_value;
} ndjson_row;

static int ndjson_member(const char *key, json_t *v, ndjson_row *r, ss_parse_error *err)
{
    if (strcmp(key, "device_id") == 0 && json_is_string(v)) {
        r->device = json_string_value(v);
        r->device_len = json_string_length(v);
    } else if (strcmp(key, "channel") == 0 && json_is_string(v)) {
        r->channel = json_string_value(v);
        r->channel_len = json_string_length(v);
    } else if (strcmp(key, "ts") == 0 && json_is_integer(v)) {
        r->ts = (int64_t)json_integer_value(v);
        r->has_ts = 1;
    } else if (strcmp(key, "value") == 0 && json_is_number(v)) {
        r->value = json_number_value(v);
        r->has_value = 1;
    } else if (strcmp(key, "device_name") != 0 || !(json_is_string(v) || json_is_null(v))) {
        char ex[READING_EXCERPT_SIZE];
        reading_excerpt(ex, key, strlen(key));
        return import_fail(err, SS_PARSE,
                           "member \"%s\" is unknown or of the wrong type (device_id, channel: "
                           "strings; ts: integer ms; value: number)",
                           ex);
    }
    return SS_OK;
}

static int ndjson_row_check(const ndjson_row *r, int64_t now_ms, ss_parse_error *err)
{
    if (!r->device || !r->channel || !r->has_ts || !r->has_value)
        return import_fail(err, SS_PARSE, "device_id, channel, ts and value are each required");
    int rc = import_device_check(r->device, r->device_len, err);
    if (rc)
        return rc;
    if (!reading_channel_valid(r->channel, r->channel_len)) {
        char ex[READING_EXCERPT_SIZE];
        reading_excerpt(ex, r->channel, r->channel_len);
        return import_fail(err, SS_PARSE,
                           "channel \"%s\" is not a valid name ([A-Za-z0-9_.-]{1,64})", ex);
    }
    if (!isfinite(r->value))
        return import_fail(err, SS_PARSE, "value is not a finite number");
    if (reading_ts_check(r->ts, now_ms) != SS_OK)
        return import_fail(err, SS_PARSE,
                           "ts %lld is before 2000-01-01 or more than 10 minutes in the future",
                           (long long)r->ts);
    return SS_OK;
}

/* The device id points into the parsed object, which the caller frees
 * after its callback: it is copied to `hold` (SS_ID_LEN + 1 bytes). */
static int ndjson_line(const char *line, size_t len, int64_t now_ms, char *hold,
                       size_t *device_len, ss_readings *out, ss_parse_error *err)
{
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj || !json_is_object(obj)) {
        json_decref(obj);
        return import_fail(err, SS_PARSE, "not a JSON object: %s", obj ? "another value"
                                                                       : jerr.text);
    }
    ndjson_row r = {0};
    const char *key;
    json_t *v;
    int rc = SS_OK;
    json_object_foreach(obj, key, v) {
        if ((rc = ndjson_member(key, v, &r, err)) != SS_OK)
            break;
    }
    if (!rc)
        rc = ndjson_row_check(&r, now_ms, err);
    if (!rc && readings_push(out, r.channel, r.channel_len, r.ts, r.value) != SS_OK)
        rc = import_fail(err, SS_NOMEM, "out of memory");
    if (!rc) {
        memcpy(hold, r.device, r.device_len);
        *device_len = r.device_len;
    }
    json_decref(obj);
    return rc;
}

/* ---- line format -------------------------------------------------------- */

static int lines_line(const char *line, size_t len, int64_t now_ms, const char **device,
                      size_t *device_len, ss_readings *out, ss_parse_error *err)
{
    const char *sp = memchr(line, ' ', len);
    size_t dlen = sp ? (size_t)(sp - line) : len;
    if (!sp || memchr(line, '=', dlen))
        return import_fail(err, SS_PARSE,
                           "expected \"<device_id> <channel>=<value>[,…] <ts>\": the device id "
                           "comes first");
    int rc = import_device_check(line, dlen, err);
    if (rc)
        return rc;
    const char *rest = sp + 1;
    size_t rlen = len - dlen - 1;
    /* Values and channels hold no space: a second one is the ts's. */
    if (!memchr(rest, ' ', rlen))
        return import_fail(err, SS_PARSE, "no ts (an import needs one on every line)");
    size_t start = out->len;
    rc = parse_line(rest, rlen, now_ms, out, err);
    if (rc)
        return rc;
    if (out->len == start)
        return import_fail(err, SS_PARSE, "no readings after the device id");
    *device = line;
    *device_len = dlen;
    return SS_OK;
}

int import_parse_one(import_format format, const char *line, size_t len, int64_t now_ms,
                     const char **device, size_t *device_len, ss_readings *out,
                     ss_parse_error *err)
{
    static _Thread_local char hold[SS_ID_LEN + 1];
    if (len == 0)
        return 1;
    switch (format) {
    case IMPORT_CSV:
        return csv_line(line, len, now_ms, device, device_len, out, err);
    case IMPORT_NDJSON: {
        int rc = ndjson_line(line, len, now_ms, hold, device_len, out, err);
        *device = hold;
        return rc;
    }
    case IMPORT_LINE:
        if (line[0] == '#')
            return 1;
        return lines_line(line, len, now_ms, device, device_len, out, err);
    }
    return import_fail(err, SS_PARSE, "unknown format");
}

/* ---- cutting lines ------------------------------------------------------ */

void import_parser_init(import_parser *p, import_format format, int64_t now_ms,
                        import_line_cb cb, void *ctx)
{
    *p = (import_parser){.format = format, .now_ms = now_ms, .cb = cb, .ctx = ctx};
    p->carry = (ss_buf)SS_BUF_INIT;
    p->scratch = (ss_readings)SS_READINGS_INIT;
}

void import_parser_free(import_parser *p)
{
    buf_free(&p->carry);
    readings_free(&p->scratch);
}

static size_t count_byte(const char *s, size_t n, char c)
{
    size_t k = 0;
    for (const char *q = s; (q = memchr(q, c, (size_t)(s + n - q))) != NULL; q++)
        k++;
    return k;
}

/* Prefixes the message with the line number, and sets it as position. */
static int at_line(ss_parse_error *err, int rc, size_t lineno)
{
    char msg[sizeof err->message];
    memcpy(msg, err->message, sizeof msg);
    err->position = lineno;
    return import_fail(err, rc, "line %zu: %s", lineno, msg);
}

static int csv_header(import_parser *p, const char *line, size_t len, ss_parse_error *err)
{
    if (len == strlen(IMPORT_CSV_HEADER) && memcmp(line, IMPORT_CSV_HEADER, len) == 0) {
        p->header_seen = 1;
        return SS_OK;
    }
    err->position = p->lineno;
    return import_fail(err, SS_PARSE,
                       "line %zu: the first line must be the header \"" IMPORT_CSV_HEADER "\"",
                       p->lineno);
}

/* One record (a line, or CSV lines joined by a quoted field), without its
 * terminator. */
static int take_record(import_parser *p, const char *line, size_t len, ss_parse_error *err)
{
    size_t lineno = ++p->lineno;
    if (p->format == IMPORT_CSV && memchr(line, '"', len))
        p->lineno += count_byte(line, len, '\n');
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len > SS_LINE_MAX) {
        err->position = lineno;
        return import_fail(err, SS_PARSE, "line %zu is longer than %u bytes", lineno,
                           SS_LINE_MAX);
    }
    if (p->format == IMPORT_CSV && !p->header_seen && len > 0)
        return csv_header(p, line, len, err);
    const char *device = NULL;
    size_t device_len = 0;
    p->scratch.len = 0;
    int rc = import_parse_one(p->format, line, len, p->now_ms, &device, &device_len,
                              &p->scratch, err);
    if (rc == 1)
        return SS_OK;
    if (rc)
        return at_line(err, rc, lineno);
    if (p->cb(p->ctx, lineno, device, device_len, &p->scratch, err))
        return SS_CONFLICT;
    return SS_OK;
}

/* Where the record starting at s ends (index of its '\n'), reading CSV
 * quotes: a '\n' inside an open quote does not end it. *quotes carries the
 * parity of quotes seen so far in the record. -1 when the piece ends
 * first. */
static long record_end(const import_parser *p, const char *s, size_t n, unsigned *quotes)
{
    size_t at = 0;
    while (at < n) {
        const char *nl = memchr(s + at, '\n', n - at);
        size_t end = nl ? (size_t)(nl - s) : n;
        if (p->format == IMPORT_CSV)
            *quotes ^= (unsigned)count_byte(s + at, end - at, '"') & 1u;
        if (!nl)
            return -1;
        if (!(*quotes & 1u))
            return (long)end;
        at = end + 1;
    }
    return -1;
}

static int carry_add(import_parser *p, const char *data, size_t len, ss_parse_error *err)
{
    if (p->carry.len + len > SS_LINE_MAX + 1u) {
        err->position = p->lineno + 1;
        return import_fail(err, SS_PARSE, "line %zu is longer than %u bytes", p->lineno + 1,
                           SS_LINE_MAX);
    }
    return buf_append(&p->carry, data, len) ? import_fail(err, SS_NOMEM, "out of memory")
                                            : SS_OK;
}

int import_parser_feed(import_parser *p, const char *data, size_t len, ss_parse_error *err)
{
    size_t off = 0;
    unsigned quotes = 0;
    if (p->carry.len) {
        /* The carried part's quotes are counted again with it. */
        quotes = p->format == IMPORT_CSV
                     ? (unsigned)count_byte(p->carry.data, p->carry.len, '"') & 1u
                     : 0;
        long end = record_end(p, data, len, &quotes);
        size_t take = end < 0 ? len : (size_t)end;
        int rc = carry_add(p, data, take, err);
        if (rc || end < 0)
            return rc;
        rc = take_record(p, p->carry.data, p->carry.len, err);
        buf_reset(&p->carry);
        if (rc)
            return rc;
        off = take + 1;
    }
    while (off < len) {
        quotes = 0;
        long end = record_end(p, data + off, len - off, &quotes);
        if (end < 0)
            return carry_add(p, data + off, len - off, err);
        int rc = take_record(p, data + off, (size_t)end, err);
        if (rc)
            return rc;
        off += (size_t)end + 1;
    }
    return SS_OK;
}

int import_parser_end(import_parser *p, ss_parse_error *err)
{
    if (p->carry.len) {
        int rc = take_record(p, p->carry.data, p->carry.len, err);
        buf_reset(&p->carry);
        if (rc)
            return rc;
    }
    if (p->format == IMPORT_CSV && !p->header_seen) {
        err->position = 1;
        return import_fail(err, SS_PARSE,
                           "line 1: the first line must be the header \"" IMPORT_CSV_HEADER "\"");
    }
    return SS_OK;
}
