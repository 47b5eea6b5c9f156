/* reading.c — the growable list of readings every protocol fills. */
#include "core/reading.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* First allocation: a single-line reading set rarely has more channels. */
#define READINGS_INITIAL_CAP 16u

static int readings_grow(ss_readings *r)
{
    size_t cap = r->cap ? r->cap * 2 : READINGS_INITIAL_CAP;
    if (cap < r->cap || cap > SIZE_MAX / sizeof(ss_reading))
        return SS_NOMEM;
    ss_reading *items = realloc(r->items, cap * sizeof(ss_reading));
    if (!items)
        return SS_NOMEM;
    r->items = items;
    r->cap = cap;
    return SS_OK;
}

int readings_push(ss_readings *r, const char *channel, size_t channel_len, int64_t ts,
                  double value)
{
    if (channel_len > SS_CHANNEL_MAX)
        return SS_INVAL;
    if (r->len == r->cap) {
        int rc = readings_grow(r);
        if (rc != SS_OK)
            return rc;
    }
    ss_reading *it = &r->items[r->len++];
    it->ts = ts;
    it->value = value;
    memcpy(it->channel, channel, channel_len);
    it->channel[channel_len] = '\0';
    return SS_OK;
}

void readings_reset(ss_readings *r)
{
    r->len = 0;
}

void readings_free(ss_readings *r)
{
    free(r->items);
    r->items = NULL;
    r->len = 0;
    r->cap = 0;
}

static int channel_char_ok(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

int reading_channel_valid(const char *name, size_t len)
{
    if (len == 0 || len > SS_CHANNEL_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!channel_char_ok((unsigned char)name[i]))
            return 0;
    }
    return 1;
}

int reading_ts_check(int64_t ts, int64_t now_ms)
{
    if (ts < SS_TS_MIN_MS)
        return SS_INVAL;
    /* now_ms comes from the clock, far from INT64_MAX; the guard only keeps a
     * bogus now_ms from overflowing. */
    if (now_ms > INT64_MAX - SS_TS_FUTURE_MAX_MS)
        return SS_OK;
    if (ts > now_ms + SS_TS_FUTURE_MAX_MS)
        return SS_INVAL;
    return SS_OK;
}

void reading_excerpt(char *dst, const char *src, size_t len)
{
    size_t n = len < READING_EXCERPT_MAX ? len : READING_EXCERPT_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len > n) {
        memcpy(dst + n, "...", 4);
        return;
    }
    dst[n] = '\0';
}
