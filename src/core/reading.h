/* reading.h — a reading and a growable list of them, as every protocol
 * hands them to the ingest queue. */
#ifndef SS_READING_H
#define SS_READING_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

typedef struct ss_reading {
    int64_t ts;                        /* ms since the epoch, UTC */
    double value;                      /* finite */
    char channel[SS_CHANNEL_MAX + 1];  /* [A-Za-z0-9_.-]{1,64}, NUL-terminated */
} ss_reading;

typedef struct ss_readings {
    ss_reading *items;
    size_t len;
    size_t cap;
} ss_readings;

#define SS_READINGS_INIT {NULL, 0, 0}

/* Appends a reading; the channel must already be valid. 0 or SS_NOMEM. */
int readings_push(ss_readings *r, const char *channel, size_t channel_len, int64_t ts,
                  double value);
void readings_reset(ss_readings *r);
void readings_free(ss_readings *r);

/* 1 when name[0..len) matches [A-Za-z0-9_.-]{1,64}, else 0. */
int reading_channel_valid(const char *name, size_t len);
/* 0 when ts lies within [SS_TS_MIN_MS, now_ms + SS_TS_FUTURE_MAX_MS], else SS_INVAL. */
int reading_ts_check(int64_t ts, int64_t now_ms);

/* A parser's error message never echoes more than this many bytes of the
 * input, so a secret pasted into a body cannot be read back in full. */
#define READING_EXCERPT_MAX 64u
/* Room for an excerpt, its "..." marker and the NUL. */
#define READING_EXCERPT_SIZE (READING_EXCERPT_MAX * 2u)

/* Copies at most READING_EXCERPT_MAX bytes of src into dst
 * (READING_EXCERPT_SIZE bytes) as printable ASCII, anything else as '?', so
 * a message stays valid UTF-8 whatever came in; "..." marks a cut. */
void reading_excerpt(char *dst, const char *src, size_t len);

#endif
