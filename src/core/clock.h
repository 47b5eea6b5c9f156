/* clock.h — wall-clock and monotonic time in milliseconds. */
#ifndef SS_CLOCK_H
#define SS_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch, UTC (CLOCK_REALTIME). */
int64_t clock_now_ms(void);
/* Milliseconds from an arbitrary start; never goes back (CLOCK_MONOTONIC). */
int64_t clock_mono_ms(void);
/* Parses an integer of ms since the epoch, or RFC 3339
 * ("2024-11-24T20:26:40Z", "…40.123+01:00") into *out_ms. 0 or SS_INVAL. */
int clock_parse_time(const char *text, int64_t *out_ms);

#endif
