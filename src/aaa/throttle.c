#include "aaa/throttle.h"
#include "core/err.h"
#include "core/limits.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Slots in the table, and how many neighbouring slots a key may use. */
#define THROTTLE_SLOTS 4096u
#define THROTTLE_PROBE 8u
/* "user:" + an email, or "addr:" + an address. */
#define THROTTLE_KEY_MAX 300u
/* The doubling stops long before a shift could overflow. */
#define THROTTLE_SHIFT_MAX 30u

_Static_assert(THROTTLE_KEY_MAX > sizeof "user:" + SS_EMAIL_MAX, "a key holds any email");

typedef struct throttle_slot {
    char key[THROTTLE_KEY_MAX];
    int64_t last_fail;
    unsigned failures;
} throttle_slot;

struct throttle {
    pthread_mutex_t lock;
    throttle_limits lim;
    throttle_slot slots[THROTTLE_SLOTS];
};

void throttle_limits_default(throttle_limits *out)
{
    *out = (throttle_limits){.account_free = SS_LOGIN_ACCOUNT_FREE,
                             .addr_free = SS_LOGIN_ADDR_FREE,
                             .account_spread = SS_LOGIN_ACCOUNT_SPREAD,
                             .base_ms = SS_LOGIN_DELAY_BASE_MS,
                             .max_ms = SS_LOGIN_DELAY_MAX_MS,
                             .forget_ms = SS_LOGIN_FORGET_MS};
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

int throttle_new(const throttle_limits *lim, throttle **out)
{
    throttle *t = calloc(1, sizeof *t);
    if (!t)
        return SS_NOMEM;
    throttle_limits_default(&t->lim);
    if (lim) {
        t->lim = *lim;
        t->lim.max_ms = clamp(lim->max_ms, 1, SS_LOGIN_DELAY_MAX_MS);
        if (t->lim.account_spread > SS_LOGIN_ACCOUNT_SPREAD)
            t->lim.account_spread = SS_LOGIN_ACCOUNT_SPREAD;
        t->lim.base_ms = clamp(lim->base_ms, 1, t->lim.max_ms);
        t->lim.forget_ms = clamp(lim->forget_ms, t->lim.max_ms, SS_LOGIN_FORGET_MS);
    }
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return SS_OK;
}

void throttle_free(throttle *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static size_t key_hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 1099511628211ULL;
    return (size_t)h;
}

/* The key's live slot (failures not yet forgotten), or NULL. */
static throttle_slot *find(throttle *t, const char *key, int64_t now_ms)
{
    size_t base = key_hash(key);
    for (size_t i = 0; i < THROTTLE_PROBE; i++) {
        throttle_slot *s = &t->slots[(base + i) % THROTTLE_SLOTS];
        if (!s->key[0] || strcmp(s->key, key) != 0)
            continue;
        if (now_ms - s->last_fail < t->lim.forget_ms)
            return s;
        memset(s, 0, sizeof *s);
        return NULL;
    }
    return NULL;
}

/* A slot for a new key: an empty one, else the stalest it collides with. */
static throttle_slot *claim(throttle *t, const char *key)
{
    size_t base = key_hash(key);
    throttle_slot *pick = NULL;
    for (size_t i = 0; i < THROTTLE_PROBE; i++) {
        throttle_slot *s = &t->slots[(base + i) % THROTTLE_SLOTS];
        if (!s->key[0]) {
            pick = s;
            break;
        }
        if (!pick || s->last_fail < pick->last_fail)
            pick = s;
    }
    memset(pick, 0, sizeof *pick);
    snprintf(pick->key, sizeof pick->key, "%s", key);
    return pick;
}

/* The wait after the slot's failures: none for the first `free_n`, then
 * base_ms doubling with each further failure, up to max_ms. */
static int64_t slot_wait(const throttle *t, const throttle_slot *s, unsigned free_n, int64_t now_ms)
{
    if (!s || s->failures < free_n)
        return 0;
    unsigned shift = s->failures - free_n;
    int64_t delay = t->lim.max_ms;
    if (shift < THROTTLE_SHIFT_MAX && (t->lim.base_ms << shift) < t->lim.max_ms)
        delay = t->lim.base_ms << shift;
    int64_t end = s->last_fail + delay;
    return end > now_ms ? end - now_ms : 0;
}

static void make_key(char *out, const char *kind, const char *name)
{
    snprintf(out, THROTTLE_KEY_MAX, "%s:%s", kind, name);
}

/* An IPv6 client may pick any address of its /64 (privacy addresses), so
 * each would look like a fresh address that has never failed: IPv6 is
 * counted per /64. IPv4, and IPv4 mapped into IPv6, per address. */
static void make_addr_key(char *out, const char *addr)
{
    struct in6_addr a6;
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!strchr(addr, ':') || inet_pton(AF_INET6, addr, &a6) != 1 ||
        memcmp(a6.s6_addr, v4_mapped, sizeof v4_mapped) == 0) {
        make_key(out, "addr", addr);
        return;
    }
    const uint8_t *b = a6.s6_addr;
    snprintf(out, THROTTLE_KEY_MAX, "addr:%02x%02x:%02x%02x:%02x%02x:%02x%02x::/64", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7]);
}

int64_t throttle_login_wait(throttle *t, const char *account, const char *addr,
                            int64_t lifted_at, int64_t now_ms)
{
    char akey[THROTTLE_KEY_MAX], ikey[THROTTLE_KEY_MAX];
    make_key(akey, "user", account);
    make_addr_key(ikey, addr);
    pthread_mutex_lock(&t->lock);
    throttle_slot *acct = find(t, akey, now_ms);
    if (acct && acct->last_fail <= lifted_at) {
        memset(acct, 0, sizeof *acct);
        acct = NULL;
    }
    throttle_slot *from = find(t, ikey, now_ms);
    /* An address counts as failing only with failures since the lift. */
    if (from && from->last_fail <= lifted_at)
        from = NULL;
    int64_t wait = slot_wait(t, from, t->lim.addr_free, now_ms);
    /* A clean address is spared the account's wait while the account's
     * failures are few (a stranger's, or the person's own typos elsewhere);
     * many of them mean guessing from many addresses, and then every
     * address waits, each at most max_ms. */
    int spread = acct && acct->failures >= t->lim.account_spread;
    int64_t acct_wait = from || spread ? slot_wait(t, acct, t->lim.account_free, now_ms) : 0;
    pthread_mutex_unlock(&t->lock);
    return acct_wait > wait ? acct_wait : wait;
}

static void count_failure(throttle *t, const char *key, int64_t now_ms)
{
    throttle_slot *s = find(t, key, now_ms);
    if (!s)
        s = claim(t, key);
    if (s->failures < UINT32_MAX)
        s->failures++;
    s->last_fail = now_ms;
}

void throttle_login_failed(throttle *t, const char *account, const char *addr, int64_t now_ms)
{
    char akey[THROTTLE_KEY_MAX], ikey[THROTTLE_KEY_MAX];
    make_key(akey, "user", account);
    make_addr_key(ikey, addr);
    pthread_mutex_lock(&t->lock);
    count_failure(t, akey, now_ms);
    count_failure(t, ikey, now_ms);
    pthread_mutex_unlock(&t->lock);
}

void throttle_login_ok(throttle *t, const char *account)
{
    char akey[THROTTLE_KEY_MAX];
    make_key(akey, "user", account);
    pthread_mutex_lock(&t->lock);
    size_t base = key_hash(akey);
    for (size_t i = 0; i < THROTTLE_PROBE; i++) {
        throttle_slot *s = &t->slots[(base + i) % THROTTLE_SLOTS];
        if (s->key[0] && strcmp(s->key, akey) == 0)
            memset(s, 0, sizeof *s);
    }
    pthread_mutex_unlock(&t->lock);
}
