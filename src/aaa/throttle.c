#include "aaa/throttle.h"
#include "core/err.h"
#include "core/limits.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Slots in the table, and how many neighbouring slots a key may use. */
#define THROTTLE_SLOTS 4096u
#define THROTTLE_PROBE 8u
#define THROTTLE_KEY_MAX 300u

typedef struct throttle_slot {
    char key[THROTTLE_KEY_MAX];
    int64_t window_start;
    unsigned failures;
} throttle_slot;

struct throttle {
    pthread_mutex_t lock;
    throttle_slot slots[THROTTLE_SLOTS];
};

int throttle_new(throttle **out)
{
    throttle *t = calloc(1, sizeof *t);
    if (!t)
        return SS_NOMEM;
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

/* The key's slot, or NULL. */
static throttle_slot *find(throttle *t, const char *key)
{
    size_t base = key_hash(key);
    for (size_t i = 0; i < THROTTLE_PROBE; i++) {
        throttle_slot *s = &t->slots[(base + i) % THROTTLE_SLOTS];
        if (s->key[0] && strcmp(s->key, key) == 0)
            return s;
    }
    return NULL;
}

/* A slot for a new key: an empty one, else the one with the oldest window. */
static throttle_slot *claim(throttle *t, const char *key)
{
    size_t base = key_hash(key);
    throttle_slot *oldest = NULL;
    for (size_t i = 0; i < THROTTLE_PROBE; i++) {
        throttle_slot *s = &t->slots[(base + i) % THROTTLE_SLOTS];
        if (!s->key[0])
            return s;
        if (!oldest || s->window_start < oldest->window_start)
            oldest = s;
    }
    return oldest;
}

int64_t throttle_check(throttle *t, const char *key, int64_t now_ms)
{
    int64_t wait = 0;
    pthread_mutex_lock(&t->lock);
    throttle_slot *s = find(t, key);
    if (s && s->failures >= SS_LOGIN_FAILURES_MAX) {
        int64_t end = s->window_start + SS_LOGIN_WINDOW_MS;
        wait = end > now_ms ? end - now_ms : 0;
    }
    pthread_mutex_unlock(&t->lock);
    return wait;
}

void throttle_fail(throttle *t, const char *key, int64_t now_ms)
{
    pthread_mutex_lock(&t->lock);
    throttle_slot *s = find(t, key);
    if (!s) {
        s = claim(t, key);
        snprintf(s->key, sizeof s->key, "%s", key);
        s->failures = 0;
        s->window_start = now_ms;
    }
    if (now_ms - s->window_start >= SS_LOGIN_WINDOW_MS) {
        s->failures = 0;
        s->window_start = now_ms;
    }
    s->failures++;
    pthread_mutex_unlock(&t->lock);
}

void throttle_clear(throttle *t, const char *key)
{
    pthread_mutex_lock(&t->lock);
    throttle_slot *s = find(t, key);
    if (s)
        memset(s, 0, sizeof *s);
    pthread_mutex_unlock(&t->lock);
}
