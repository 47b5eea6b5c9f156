/* api_gate.c — per-credential and per-org shares of the worker pool
 * (api_gate.h). The tables hold only what is in flight, so they stay as
 * small as the requests admitted: a linear scan is enough. */
#include "http/api_gate.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/err.h"

typedef struct principal_slot {
    uint8_t key[API_GATE_KEY_BYTES];
    unsigned in_flight;  /* 0: free */
} principal_slot;

typedef struct org_slot {
    char org_id[SS_ID_LEN + 1];
    unsigned running;  /* 0: free */
} org_slot;

struct api_gate {
    uint8_t hash_key[crypto_generichash_KEYBYTES];
    /* Loop thread only. At most SS_API_HEAVY_QUEUED_MAX requests are in
     * flight, so as many slots always suffice. */
    principal_slot principals[SS_API_HEAVY_QUEUED_MAX];
    size_t queued;
    /* Workers: under mu. */
    uv_mutex_t mu;
    org_slot orgs[SS_API_HEAVY_RUNNING_MAX];
    size_t running;
};

int api_gate_new(api_gate **out)
{
    api_gate *g = calloc(1, sizeof *g);
    if (!g)
        return SS_NOMEM;
    if (uv_mutex_init(&g->mu) != 0) {
        free(g);
        return SS_NOMEM;
    }
    randombytes_buf(g->hash_key, sizeof g->hash_key);
    *out = g;
    return SS_OK;
}

void api_gate_free(api_gate *g)
{
    if (!g)
        return;
    uv_mutex_destroy(&g->mu);
    free(g);
}

void api_gate_key(const api_gate *g, const char *text, size_t len,
                  uint8_t out[API_GATE_KEY_BYTES])
{
    crypto_generichash(out, API_GATE_KEY_BYTES, (const unsigned char *)text, len, g->hash_key,
                       sizeof g->hash_key);
}

/* The credential's slot, or a free one when it has none (NULL: no room). */
static principal_slot *principal_find(api_gate *g, const uint8_t key[API_GATE_KEY_BYTES])
{
    principal_slot *free_slot = NULL;
    for (size_t i = 0; i < SS_API_HEAVY_QUEUED_MAX; i++) {
        principal_slot *s = &g->principals[i];
        if (s->in_flight && memcmp(s->key, key, API_GATE_KEY_BYTES) == 0)
            return s;
        if (!s->in_flight && !free_slot)
            free_slot = s;
    }
    return free_slot;
}

int api_gate_enter_principal(api_gate *g, const uint8_t key[API_GATE_KEY_BYTES])
{
    if (g->queued >= SS_API_HEAVY_QUEUED_MAX)
        return SS_BUSY;
    principal_slot *s = principal_find(g, key);
    if (!s || s->in_flight >= SS_API_HEAVY_PER_PRINCIPAL)
        return SS_BUSY;
    if (!s->in_flight)
        memcpy(s->key, key, API_GATE_KEY_BYTES);
    s->in_flight++;
    g->queued++;
    return SS_OK;
}

void api_gate_leave_principal(api_gate *g, const uint8_t key[API_GATE_KEY_BYTES])
{
    principal_slot *s = principal_find(g, key);
    if (!s || !s->in_flight)
        return;
    s->in_flight--;
    g->queued--;
}

static org_slot *org_find(api_gate *g, const char *org_id)
{
    org_slot *free_slot = NULL;
    for (size_t i = 0; i < SS_API_HEAVY_RUNNING_MAX; i++) {
        org_slot *s = &g->orgs[i];
        if (s->running && strcmp(s->org_id, org_id) == 0)
            return s;
        if (!s->running && !free_slot)
            free_slot = s;
    }
    return free_slot;
}

/* How many of org_id's heavy requests may run at once. */
static unsigned org_share(const char *org_id)
{
    return strcmp(org_id, API_GATE_SIGN_IN) == 0 ? SS_API_SIGN_IN_RUNNING_MAX
                                                 : SS_API_HEAVY_PER_ORG;
}

int api_gate_enter_org(api_gate *g, const char *org_id)
{
    int rc = SS_BUSY;
    uv_mutex_lock(&g->mu);
    org_slot *s = g->running < SS_API_HEAVY_RUNNING_MAX ? org_find(g, org_id) : NULL;
    if (s && s->running < org_share(org_id)) {
        if (!s->running)
            snprintf(s->org_id, sizeof s->org_id, "%s", org_id);
        s->running++;
        g->running++;
        rc = SS_OK;
    }
    uv_mutex_unlock(&g->mu);
    return rc;
}

int api_gate_has_room(api_gate *g, const char *org_id)
{
    uv_mutex_lock(&g->mu);
    org_slot *s = g->running < SS_API_HEAVY_RUNNING_MAX ? org_find(g, org_id) : NULL;
    int room = s && s->running < org_share(org_id);
    uv_mutex_unlock(&g->mu);
    return room;
}

void api_gate_leave_org(api_gate *g, const char *org_id)
{
    uv_mutex_lock(&g->mu);
    org_slot *s = org_find(g, org_id);
    if (s && s->running) {
        s->running--;
        g->running--;
    }
    uv_mutex_unlock(&g->mu);
}
