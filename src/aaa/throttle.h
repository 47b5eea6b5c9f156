/* throttle.h — sign-in throttling per account and per address (SPEC §4).
 *
 * Failures are counted per account and per address. Past a few free ones,
 * each failure doubles the wait before the next attempt is even checked,
 * up to limits.max_ms: guessing stays slow, and nobody waits longer than
 * that per attempt. While the account has fewer than limits.account_spread
 * failures, its wait binds only attempts from an address that has been
 * failing itself, so a stranger's few failures elsewhere do not hold the
 * rightful person back at all; from that many on (guessing spread over
 * many addresses) it binds every address, so each new address gets no
 * free guess. Failures are forgotten limits.forget_ms after the last one. A lift (the store's login_unlocked_at, set by the superadmin
 * or `sensorspace reset-password`) forgets the account's failures and lets
 * earlier failures of the address not count against that account.
 *
 * The table has a fixed number of slots, so an attacker spraying keys
 * cannot grow memory: a new key takes the slot of the stalest one it
 * collides with. Thread-safe (sign-ins run on the worker pool). Time is
 * passed in by the caller (ms, any monotonic-enough clock), so tests set it. */
#ifndef SS_THROTTLE_H
#define SS_THROTTLE_H

#include <stdint.h>

typedef struct throttle throttle;

typedef struct throttle_limits {
    unsigned account_free;  /* failures of an account before it waits */
    unsigned addr_free;     /* failures from an address before it waits */
    unsigned account_spread; /* account failures from which every address waits */
    int64_t base_ms;        /* the first wait; each failure after doubles it */
    int64_t max_ms;         /* the longest wait */
    int64_t forget_ms;      /* failures are forgotten this long after the last */
} throttle_limits;

/* The defaults of limits.h (SS_LOGIN_*). */
void throttle_limits_default(throttle_limits *out);

/* lim NULL: the defaults. Values above the defaults' ceilings are lowered to
 * them (max_ms to SS_LOGIN_DELAY_MAX_MS, account_spread to
 * SS_LOGIN_ACCOUNT_SPREAD). 0 or SS_NOMEM. */
int throttle_new(const throttle_limits *lim, throttle **out);
void throttle_free(throttle *t);

/* The ms the attempt to sign in to `account` from `addr` must wait before
 * its password may be checked; 0: check it now. lifted_at: the account's
 * last lift (ms), 0 for never. Never more than limits.max_ms. */
int64_t throttle_login_wait(throttle *t, const char *account, const char *addr,
                            int64_t lifted_at, int64_t now_ms);
/* Counts a failed attempt against the account and the address. */
void throttle_login_failed(throttle *t, const char *account, const char *addr, int64_t now_ms);
/* The right password: the account's failures are forgotten (the address's
 * stay, so signing in to one's own account cannot clear a guesser's
 * record). */
void throttle_login_ok(throttle *t, const char *account);

#endif
