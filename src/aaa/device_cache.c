#include "aaa/device_cache.h"
#include "aaa/secret.h"
#include "core/err.h"
#include "core/hash.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Buckets start small and double when the table is fuller than one entry
 * per bucket on average, keeping chains short. */
#define CACHE_INITIAL_BUCKETS 64u

typedef struct cache_node {
    struct cache_node *next_by_hash;
    struct cache_node *next_by_id;
    uint8_t hash[SS_SECRET_HASH_BYTES];
    device_cache_entry entry;
} cache_node;

struct device_cache {
    pthread_mutex_t lock;
    cache_node **by_hash;
    cache_node **by_id;
    size_t nbuckets;
    size_t count;
};

/* Token hashes are uniformly random already: their first bytes index. */
static size_t hash_slot(const uint8_t *hash, size_t nbuckets)
{
    uint64_t v;
    memcpy(&v, hash, sizeof v);
    return (size_t)(v & (nbuckets - 1));
}

static size_t id_slot(const char *id, size_t nbuckets)
{
    return (size_t)(hash_id(id) & (nbuckets - 1));
}

int device_cache_new(device_cache **out)
{
    device_cache *c = calloc(1, sizeof *c);
    if (!c)
        return SS_NOMEM;
    c->nbuckets = CACHE_INITIAL_BUCKETS;
    c->by_hash = calloc(c->nbuckets, sizeof *c->by_hash);
    c->by_id = calloc(c->nbuckets, sizeof *c->by_id);
    if (!c->by_hash || !c->by_id) {
        free(c->by_hash);
        free(c->by_id);
        free(c);
        return SS_NOMEM;
    }
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return SS_OK;
}

void device_cache_free(device_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        cache_node *n = c->by_id[i];
        while (n) {
            cache_node *next = n->next_by_id;
            free(n);
            n = next;
        }
    }
    free(c->by_hash);
    free(c->by_id);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static cache_node *find_by_id(device_cache *c, const char *id, cache_node ***link_out)
{
    cache_node **link = &c->by_id[id_slot(id, c->nbuckets)];
    for (; *link; link = &(*link)->next_by_id) {
        if (strcmp((*link)->entry.device_id, id) == 0) {
            if (link_out)
                *link_out = link;
            return *link;
        }
    }
    return NULL;
}

static void unlink_by_hash(device_cache *c, cache_node *node)
{
    cache_node **link = &c->by_hash[hash_slot(node->hash, c->nbuckets)];
    for (; *link; link = &(*link)->next_by_hash) {
        if (*link == node) {
            *link = node->next_by_hash;
            return;
        }
    }
}

static void link_by_hash(device_cache *c, cache_node *node)
{
    size_t slot = hash_slot(node->hash, c->nbuckets);
    node->next_by_hash = c->by_hash[slot];
    c->by_hash[slot] = node;
}

static int grow(device_cache *c)
{
    size_t n = c->nbuckets * 2;
    cache_node **by_hash = calloc(n, sizeof *by_hash);
    cache_node **by_id = calloc(n, sizeof *by_id);
    if (!by_hash || !by_id) {
        free(by_hash);
        free(by_id);
        return SS_NOMEM;
    }
    for (size_t i = 0; i < c->nbuckets; i++) {
        cache_node *node = c->by_id[i];
        while (node) {
            cache_node *next = node->next_by_id;
            size_t hs = hash_slot(node->hash, n), is = id_slot(node->entry.device_id, n);
            node->next_by_hash = by_hash[hs];
            by_hash[hs] = node;
            node->next_by_id = by_id[is];
            by_id[is] = node;
            node = next;
        }
    }
    free(c->by_hash);
    free(c->by_id);
    c->by_hash = by_hash;
    c->by_id = by_id;
    c->nbuckets = n;
    return SS_OK;
}

static int put_locked(device_cache *c, const char *device_id, const char *org_id,
                      const uint8_t hash[SS_SECRET_HASH_BYTES], int disabled)
{
    cache_node *node = find_by_id(c, device_id, NULL);
    if (node) {
        unlink_by_hash(c, node);
    } else {
        if (c->count >= c->nbuckets && grow(c))
            return SS_NOMEM;
        node = calloc(1, sizeof *node);
        if (!node)
            return SS_NOMEM;
        snprintf(node->entry.device_id, sizeof node->entry.device_id, "%s", device_id);
        size_t slot = id_slot(device_id, c->nbuckets);
        node->next_by_id = c->by_id[slot];
        c->by_id[slot] = node;
        c->count++;
    }
    snprintf(node->entry.org_id, sizeof node->entry.org_id, "%s", org_id);
    memcpy(node->hash, hash, SS_SECRET_HASH_BYTES);
    node->entry.disabled = disabled;
    link_by_hash(c, node);
    return SS_OK;
}

int device_cache_put(device_cache *c, const char *device_id, const char *org_id,
                     const uint8_t hash[SS_SECRET_HASH_BYTES], int disabled)
{
    pthread_mutex_lock(&c->lock);
    int rc = put_locked(c, device_id, org_id, hash, disabled);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int device_cache_set_token(device_cache *c, const char *device_id,
                           const uint8_t hash[SS_SECRET_HASH_BYTES])
{
    pthread_mutex_lock(&c->lock);
    cache_node *node = find_by_id(c, device_id, NULL);
    if (node) {
        unlink_by_hash(c, node);
        memcpy(node->hash, hash, SS_SECRET_HASH_BYTES);
        link_by_hash(c, node);
    }
    pthread_mutex_unlock(&c->lock);
    return node ? SS_OK : SS_NOT_FOUND;
}

int device_cache_set_disabled(device_cache *c, const char *device_id, int disabled)
{
    pthread_mutex_lock(&c->lock);
    cache_node *node = find_by_id(c, device_id, NULL);
    if (node)
        node->entry.disabled = disabled;
    pthread_mutex_unlock(&c->lock);
    return node ? SS_OK : SS_NOT_FOUND;
}

int device_cache_remove(device_cache *c, const char *device_id)
{
    pthread_mutex_lock(&c->lock);
    cache_node **link = NULL;
    cache_node *node = find_by_id(c, device_id, &link);
    if (node) {
        *link = node->next_by_id;
        unlink_by_hash(c, node);
        c->count--;
        free(node);
    }
    pthread_mutex_unlock(&c->lock);
    return node ? SS_OK : SS_NOT_FOUND;
}

int device_cache_lookup(device_cache *c, const uint8_t hash[SS_SECRET_HASH_BYTES],
                        device_cache_entry *out)
{
    int rc = SS_NOT_FOUND;
    pthread_mutex_lock(&c->lock);
    for (cache_node *n = c->by_hash[hash_slot(hash, c->nbuckets)]; n; n = n->next_by_hash) {
        if (secret_hash_equal(n->hash, hash)) {
            *out = n->entry;
            rc = SS_OK;
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int device_cache_find(device_cache *c, const char *device_id, device_cache_entry *out)
{
    pthread_mutex_lock(&c->lock);
    cache_node *node = find_by_id(c, device_id, NULL);
    if (node)
        *out = node->entry;
    pthread_mutex_unlock(&c->lock);
    return node ? SS_OK : SS_NOT_FOUND;
}

size_t device_cache_count(device_cache *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}
