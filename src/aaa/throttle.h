/* throttle.h — login throttling per account and per address.
 *
 * Failures are counted per key ("user:<email>", "addr:<ip>") within a
 * window of SS_LOGIN_WINDOW_MS; at SS_LOGIN_FAILURES_MAX the key is refused
 * until the window ends. The table has a fixed number of slots, so an
 * attacker spraying keys cannot grow memory: a new key takes the slot of the
 * oldest one it collides with. Thread-safe (logins run on the worker pool). */
#ifndef SS_THROTTLE_H
#define SS_THROTTLE_H

#include <stdint.h>

typedef struct throttle throttle;

int throttle_new(throttle **out);
void throttle_free(throttle *t);

/* 0 when the key may try now; else the ms until it may (> 0). */
int64_t throttle_check(throttle *t, const char *key, int64_t now_ms);
void throttle_fail(throttle *t, const char *key, int64_t now_ms);
void throttle_clear(throttle *t, const char *key);

#endif
