/* api_params.h — the query parameters of the data endpoints: each read
 * and checked in one place, a bad one answered 400 bad_request naming it
 * (SPEC §2). Private to src/http. */
#ifndef SS_HTTP_API_PARAMS_H
#define SS_HTTP_API_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "http/api_call.h"

/* Longest value of a scalar parameter (a time, a number, a word). */
#define API_PARAM_MAX 64
/* Channels one data request may name: a dashboard's widget shows a few;
 * more is an export's job. */
#define API_CHANNELS_MAX 32
/* Room for a channel list: 32 names of 64 and commas. */
#define API_CHANNEL_LIST_MAX (API_CHANNELS_MAX * (SS_CHANNEL_MAX + 1))

/* The channels a request names (channel=a,b). */
typedef struct api_channels {
    char text[API_CHANNEL_LIST_MAX];
    const char *names[API_CHANNELS_MAX];  /* into text */
    size_t n;                             /* 0: none named */
} api_channels;

/* A time, ms since the epoch or RFC 3339. 0 with *out set, or unchanged
 * when absent (*present, may be NULL, tells which); nonzero after
 * answering 400. */
int api_param_time(api_call *call, const char *name, int64_t *out, int *present);

/* An integer in [min, max]: as api_param_time. */
int api_param_int(api_call *call, const char *name, int64_t min, int64_t max, int64_t *out);

/* One of choices[0..n): its index in *out, as api_param_time; `message`
 * says what is allowed. */
int api_param_choice(api_call *call, const char *name, const char *const *choices, int n,
                     int *out, const char *message);

/* Text of at most cap - 1 bytes: 1 present, 0 absent, -1 after answering
 * 400 (too long, or given twice; `message` says what is allowed). */
int api_param_text(api_call *call, const char *name, char *out, size_t cap,
                   const char *message);

/* channel=a,b: up to API_CHANNELS_MAX valid channel names, split in
 * place. Absent: out->n is 0. Present but empty ("channel=" never means
 * every channel), malformed, too many or given twice: nonzero after
 * answering 400 naming channel. */
int api_param_channels(api_call *call, api_channels *out);

#endif
