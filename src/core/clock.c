#include "core/clock.h"
#include "core/err.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so that no time zone state is touched. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return SS_INVAL;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return SS_OK;
}

static int expect_char(const char **p, const char *set)
{
    if (**p == '\0' || !strchr(set, **p))
        return SS_INVAL;
    (*p)++;
    return SS_OK;
}

static int parse_integer_ms(const char *text, int64_t *out_ms)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0')
        return SS_INVAL;
    *out_ms = v;
    return SS_OK;
}

static int parse_fraction_ms(const char **p)
{
    int ms = 0, digits = 0;
    if (**p != '.')
        return 0;
    (*p)++;
    while (isdigit((unsigned char)**p)) {
        if (digits < 3)
            ms = ms * 10 + (**p - '0');
        digits++;
        (*p)++;
    }
    for (; digits < 3; digits++)
        ms *= 10;
    return ms;
}

static int parse_offset_s(const char **p, int64_t *offset_s)
{
    if (**p == 'Z' || **p == 'z') {
        (*p)++;
        *offset_s = 0;
        return SS_OK;
    }
    int sign = **p == '-' ? -1 : 1;
    int oh, om;
    if (expect_char(p, "+-") || read_digits(p, 2, &oh) || expect_char(p, ":") ||
        read_digits(p, 2, &om) || oh > 23 || om > 59)
        return SS_INVAL;
    *offset_s = sign * (oh * 3600 + om * 60);
    return SS_OK;
}

int clock_parse_time(const char *text, int64_t *out_ms)
{
    if (!text || !*text)
        return SS_INVAL;
    if (strlen(text) < 20 || text[4] != '-')
        return parse_integer_ms(text, out_ms);
    const char *p = text;
    int y, mo, d, h, mi, s;
    int64_t offset_s;
    if (read_digits(&p, 4, &y) || expect_char(&p, "-") || read_digits(&p, 2, &mo) ||
        expect_char(&p, "-") || read_digits(&p, 2, &d) || expect_char(&p, "Tt ") ||
        read_digits(&p, 2, &h) || expect_char(&p, ":") || read_digits(&p, 2, &mi) ||
        expect_char(&p, ":") || read_digits(&p, 2, &s))
        return SS_INVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return SS_INVAL;
    int ms = parse_fraction_ms(&p);
    if (parse_offset_s(&p, &offset_s) || *p != '\0')
        return SS_INVAL;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset_s;
    *out_ms = secs * 1000 + ms;
    return SS_OK;
}
