/* parse_line.c — the line format of SPEC §3.2, by hand.
 *
 *   <ch>=<value>[,<ch>=<value>…][ <ts>]
 *
 * Strict on purpose: one space before ts, no trailing spaces, values in JSON
 * number syntax. A device that sends something else learns it from the
 * first message, not from a silently wrong series. Never reads past len and
 * allocates nothing beyond `out`. */
#include "ingest/parse.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* Longest value text converted: a double needs 17 significant digits plus
 * sign, point and exponent; 128 leaves room for padding zeros and makes the
 * strtod copy a small stack buffer. */
#define LINE_NUMBER_MAX 128u

typedef struct line_cursor {
    const char *p;
    const char *end;
} line_cursor;

static int line_fail(ss_parse_error *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int line_fail(ss_parse_error *err, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return rc;
}

static int line_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int line_is_channel_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || line_is_digit(c) || c == '_' ||
           c == '.' || c == '-';
}

static const char *line_skip_digits(const char *p, const char *end)
{
    while (p < end && line_is_digit(*p))
        p++;
    return p;
}

/* JSON number syntax: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
 * Returns the end of the number, or NULL when p does not start one. */
static const char *line_scan_number(const char *p, const char *end)
{
    if (p < end && *p == '-')
        p++;
    if (p == end || !line_is_digit(*p))
        return NULL;
    p = (*p == '0') ? p + 1 : line_skip_digits(p, end);
    if (p < end && *p == '.') {
        p++;
        if (p == end || !line_is_digit(*p))
            return NULL;
        p = line_skip_digits(p, end);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !line_is_digit(*p))
            return NULL;
        p = line_skip_digits(p, end);
    }
    return p;
}

/* The bytes a person would read as the value: up to the next separator. */
static size_t line_token_len(const char *p, const char *end)
{
    const char *q = p;
    while (q < end && *q != ',' && *q != ' ')
        q++;
    return (size_t)(q - p);
}

static int line_parse_channel(line_cursor *c, const char **name, size_t *name_len,
                              ss_parse_error *err)
{
    char ex[READING_EXCERPT_SIZE];
    const char *start = c->p;
    while (c->p < c->end && line_is_channel_char(*c->p))
        c->p++;
    size_t n = (size_t)(c->p - start);
    if (n == 0 && c->p == c->end)
        return line_fail(err, SS_PARSE, "expected a channel name at the end of the line");
    if (n == 0) {
        reading_excerpt(ex, c->p, (size_t)(c->end - c->p));
        return line_fail(err, SS_PARSE, "expected a channel name, found \"%s\"", ex);
    }
    /* The excerpt is made only on the way to an error: the success path is
     * the hot path. */
    if (!reading_channel_valid(start, n)) {
        reading_excerpt(ex, start, n);
        return line_fail(err, SS_PARSE,
                         "channel \"%s\" is not a valid name ([A-Za-z0-9_.-]{1,64})", ex);
    }
    if (c->p == c->end || *c->p != '=') {
        reading_excerpt(ex, start, n);
        return line_fail(err, SS_PARSE, "expected '=' after channel \"%s\"", ex);
    }
    c->p++;
    *name = start;
    *name_len = n;
    return SS_OK;
}

/* The powers of ten a double holds exactly (10^22 is the largest). */
static const double line_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Digits of a value converted without strtod: below 10^15 < 2^53, so the
 * digits as an integer are an exact double. */
#define LINE_FAST_DIGITS 15

/* The value of a number line_scan_number accepted, for the common shape
 * (no exponent, at most LINE_FAST_DIGITS digits) without strtod: its
 * digits as an integer m and its k digits after the point give m / 10^k,
 * both exact doubles, so one correctly rounded division: the double strtod
 * gives (Clinger's fast path). 0 for any other shape. */
static int line_fast_number(const char *p, size_t n, double *out)
{
    size_t i = p[0] == '-';
    uint64_t m = 0;
    int digits = 0, frac = -1;
    for (; i < n; i++) {
        char ch = p[i];
        if (ch == '.') {
            frac = 0;
            continue;
        }
        if (ch < '0' || ch > '9' || ++digits > LINE_FAST_DIGITS)
            return 0;
        m = m * 10 + (uint64_t)(ch - '0');
        frac += frac >= 0;
    }
    double v = (double)m;
    if (frac > 0)
        v /= line_pow10[frac];
    *out = p[0] == '-' ? -v : v;
    return 1;
}

static int line_parse_value(line_cursor *c, const char *ch, double *value, ss_parse_error *err)
{
    const char *start = c->p;
    const char *q = line_scan_number(start, c->end);
    if (!q || (q < c->end && *q != ',' && *q != ' ')) {
        char ex[READING_EXCERPT_SIZE];
        reading_excerpt(ex, start, line_token_len(start, c->end));
        return line_fail(err, SS_PARSE, "value of \"%s\" is not a number: \"%s\"", ch, ex);
    }
    size_t n = (size_t)(q - start);
    if (line_fast_number(start, n, value)) {
        c->p = q;
        return SS_OK;
    }
    if (n > LINE_NUMBER_MAX)
        return line_fail(err, SS_PARSE, "value of \"%s\" is longer than %u bytes", ch,
                         LINE_NUMBER_MAX);
    char copy[LINE_NUMBER_MAX + 1];
    memcpy(copy, start, n);
    copy[n] = '\0';
    double v = strtod(copy, NULL);
    if (!isfinite(v))
        return line_fail(err, SS_PARSE, "value of \"%s\" is not a finite number", ch);
    c->p = q;
    *value = v;
    return SS_OK;
}

/* Reads one ch=value into out with ts 0; the line's ts is set once known. */
static int line_parse_pair(line_cursor *c, ss_readings *out, ss_parse_error *err)
{
    const char *name = NULL;
    size_t name_len = 0;
    int rc = line_parse_channel(c, &name, &name_len, err);
    if (rc != SS_OK)
        return rc;
    char ch[SS_CHANNEL_MAX + 1];
    memcpy(ch, name, name_len);
    ch[name_len] = '\0';
    double value = 0;
    rc = line_parse_value(c, ch, &value, err);
    if (rc != SS_OK)
        return rc;
    if (readings_push(out, name, name_len, 0, value) != SS_OK)
        return line_fail(err, SS_NOMEM, "out of memory");
    return SS_OK;
}

/* The rest of the line after the one space: digits only, nothing after. */
static int line_parse_ts(const char *p, const char *end, int64_t now_ms, int64_t *ts,
                         ss_parse_error *err)
{
    char ex[READING_EXCERPT_SIZE];
    if (p == end)
        return line_fail(err, SS_PARSE, "expected a ts after the space");
    int64_t v = 0;
    for (const char *q = p; q < end; q++) {
        if (!line_is_digit(*q)) {
            reading_excerpt(ex, p, (size_t)(end - p));
            return line_fail(err, SS_PARSE, "ts \"%s\" is not an integer (ms since the epoch)",
                             ex);
        }
        int d = *q - '0';
        /* Saturate: any value this large is out of range anyway. */
        v = (v > (INT64_MAX - d) / 10) ? INT64_MAX : v * 10 + d;
    }
    if (reading_ts_check(v, now_ms) != SS_OK) {
        reading_excerpt(ex, p, (size_t)(end - p));
        return line_fail(err, SS_PARSE,
                         "ts %s is before 2000-01-01 or more than 10 minutes in the future", ex);
    }
    *ts = v;
    return SS_OK;
}

static int line_parse_data(const char *line, size_t len, int64_t now_ms, ss_readings *out,
                           size_t start, ss_parse_error *err)
{
    line_cursor c = {line, line + len};
    int64_t ts = now_ms;
    for (;;) {
        int rc = line_parse_pair(&c, out, err);
        if (rc != SS_OK)
            return rc;
        if (c.p == c.end)
            break;
        /* line_parse_value left c.p on ',' or ' '. */
        if (*c.p++ == ',')
            continue;
        rc = line_parse_ts(c.p, c.end, now_ms, &ts, err);
        if (rc != SS_OK)
            return rc;
        break;
    }
    for (size_t i = start; i < out->len; i++)
        out->items[i].ts = ts;
    return SS_OK;
}

int parse_line(const char *line, size_t len, int64_t now_ms, ss_readings *out,
               ss_parse_error *err)
{
    if (len > SS_LINE_MAX)
        return line_fail(err, SS_PARSE, "line is longer than %u bytes", SS_LINE_MAX);
    if (len == 0 || line[0] == '#')
        return SS_OK;
    if (memchr(line, '\r', len))
        return line_fail(err, SS_PARSE, "carriage return inside the line");
    size_t start = out->len;
    int rc = line_parse_data(line, len, now_ms, out, start, err);
    if (rc != SS_OK)
        out->len = start;
    return rc;
}

/* Prefixes parse_line's message with the line number. */
static int line_at(ss_parse_error *err, int rc, size_t lineno)
{
    char msg[sizeof err->message];
    memcpy(msg, err->message, sizeof msg);
    err->position = lineno;
    return line_fail(err, rc, "line %zu: %s", lineno, msg);
}

int parse_line_readings(const char *body, size_t len, int64_t now_ms, size_t max_readings,
                        ss_readings *out, ss_parse_error *err)
{
    size_t start = out->len;
    const char *p = body;
    const char *end = body ? body + len : body;
    size_t lineno = 0;
    while (p < end) {
        lineno++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t llen = (size_t)((nl ? nl : end) - p);
        /* Only "\r\n" ends a line; a '\r' elsewhere is refused by parse_line. */
        if (nl && llen > 0 && p[llen - 1] == '\r')
            llen--;
        int rc = parse_line(p, llen, now_ms, out, err);
        if (rc == SS_OK && out->len - start > max_readings)
            rc = line_fail(err, SS_TOO_LARGE, "more than %zu readings in one request",
                           max_readings);
        if (rc != SS_OK) {
            out->len = start;
            return line_at(err, rc, lineno);
        }
        p = nl ? nl + 1 : end;
    }
    if (out->len == start) {
        err->position = 0;
        return line_fail(err, SS_PARSE, "no readings");
    }
    return SS_OK;
}

static int line_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int parse_value_reading(const char *channel, size_t channel_len, const char *payload, size_t len,
                        int64_t now_ms, ss_readings *out, ss_parse_error *err)
{
    char ex[READING_EXCERPT_SIZE];
    err->position = 0;
    if (!reading_channel_valid(channel, channel_len)) {
        reading_excerpt(ex, channel, channel_len);
        return line_fail(err, SS_PARSE,
                         "channel \"%s\" is not a valid name ([A-Za-z0-9_.-]{1,64})", ex);
    }
    const char *p = payload;
    const char *end = payload ? payload + len : payload;
    while (p < end && line_is_space(*p))
        p++;
    while (end > p && line_is_space(end[-1]))
        end--;
    if (p == end)
        return line_fail(err, SS_PARSE, "no value");
    char ch[SS_CHANNEL_MAX + 1];
    memcpy(ch, channel, channel_len);
    ch[channel_len] = '\0';
    line_cursor c = {p, end};
    double value = 0;
    int rc = line_parse_value(&c, ch, &value, err);
    if (rc == SS_OK && c.p != end) {
        reading_excerpt(ex, p, (size_t)(end - p));
        rc = line_fail(err, SS_PARSE, "value of \"%s\" is not a number: \"%s\"", ch, ex);
    }
    if (rc != SS_OK)
        return rc;
    if (readings_push(out, channel, channel_len, now_ms, value) != SS_OK)
        return line_fail(err, SS_NOMEM, "out of memory");
    return SS_OK;
}
