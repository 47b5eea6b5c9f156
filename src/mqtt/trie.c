/* trie.c — topic levels as a tree, children by keyed hash. */
#include "mqtt/trie.h"

#include "core/err.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(((mqtt_trie *)0)->hash_key) == crypto_shorthash_KEYBYTES,
               "a SipHash key");

/* Buckets a node starts with once it has a literal child; they double
 * when children outnumber them (a load of at most one per bucket). */
#define TRIE_BUCKETS_MIN 4u

static uint64_t level_hash(const mqtt_trie *t, const char *key, size_t len)
{
    uint8_t out[crypto_shorthash_BYTES];
    uint64_t h;
    crypto_shorthash(out, (const unsigned char *)key, len, t->hash_key);
    memcpy(&h, out, sizeof h);
    return h;
}

static mqtt_trie_node *node_new(mqtt_trie *t, mqtt_trie_node *parent, const char *key,
                                size_t len, uint64_t h)
{
    mqtt_trie_node *n = calloc(1, sizeof *n + len + 1);
    if (!n)
        return NULL;
    t->nodes++;
    n->parent = parent;
    n->h = h;
    n->len = (uint16_t)len;
    if (len)
        memcpy(n->key, key, len);
    return n;
}

int mqtt_trie_init(mqtt_trie *t, int wild)
{
    memset(t, 0, sizeof *t);
    if (sodium_init() < 0)
        return SS_INVAL;
    randombytes_buf(t->hash_key, sizeof t->hash_key);
    t->wild = wild;
    t->root = node_new(t, NULL, "", 0, 0);
    return t->root ? SS_OK : SS_NOMEM;
}

static void node_free_all(mqtt_trie_node *n, void (*free_data)(void *data))
{
    if (!n)
        return;
    for (uint32_t i = 0; i < n->cap; i++) {
        mqtt_trie_node *c = n->buckets[i];
        while (c) {
            mqtt_trie_node *next = c->sib;
            node_free_all(c, free_data);
            c = next;
        }
    }
    node_free_all(n->plus, free_data);
    node_free_all(n->hash, free_data);
    if (n->data && free_data)
        free_data(n->data);
    free(n->buckets);
    free(n);
}

void mqtt_trie_free(mqtt_trie *t, void (*free_data)(void *data))
{
    node_free_all(t->root, free_data);
    t->root = NULL;
    t->nodes = 0;
}

/* The slot of a wildcard child, or NULL for a literal level. */
static mqtt_trie_node **wild_slot(const mqtt_trie *t, mqtt_trie_node *n, const char *key,
                                  size_t len)
{
    if (!t->wild || len != 1)
        return NULL;
    if (key[0] == '+')
        return &n->plus;
    if (key[0] == '#')
        return &n->hash;
    return NULL;
}

static mqtt_trie_node *find_literal(const mqtt_trie_node *n, const char *key, size_t len,
                                    uint64_t h)
{
    if (!n->cap)
        return NULL;
    for (mqtt_trie_node *c = n->buckets[h & (n->cap - 1)]; c; c = c->sib)
        if (c->h == h && c->len == len && memcmp(c->key, key, len) == 0)
            return c;
    return NULL;
}

mqtt_trie_node *mqtt_trie_find(const mqtt_trie *t, const mqtt_trie_node *n, const char *key,
                               size_t len)
{
    mqtt_trie_node **slot = wild_slot(t, (mqtt_trie_node *)n, key, len);
    if (slot)
        return *slot;
    if (!n->n)
        return NULL;
    return find_literal(n, key, len, level_hash(t, key, len));
}

static int grow(mqtt_trie_node *n)
{
    uint32_t cap = n->cap ? n->cap * 2 : TRIE_BUCKETS_MIN;
    mqtt_trie_node **b = calloc(cap, sizeof *b);
    if (!b)
        return SS_NOMEM;
    for (uint32_t i = 0; i < n->cap; i++) {
        mqtt_trie_node *c = n->buckets[i];
        while (c) {
            mqtt_trie_node *next = c->sib;
            c->sib = b[c->h & (cap - 1)];
            b[c->h & (cap - 1)] = c;
            c = next;
        }
    }
    free(n->buckets);
    n->buckets = b;
    n->cap = cap;
    return SS_OK;
}

int mqtt_trie_add(mqtt_trie *t, mqtt_trie_node *n, const char *key, size_t len,
                  mqtt_trie_node **out)
{
    if (len > UINT16_MAX)
        return SS_INVAL;
    mqtt_trie_node **slot = wild_slot(t, n, key, len);
    if (slot) {
        if (!*slot)
            *slot = node_new(t, n, key, len, 0);
        *out = *slot;
        return *out ? SS_OK : SS_NOMEM;
    }
    uint64_t h = level_hash(t, key, len);
    *out = find_literal(n, key, len, h);
    if (*out)
        return SS_OK;
    if (n->n >= n->cap && grow(n) != SS_OK)
        return SS_NOMEM;
    mqtt_trie_node *c = node_new(t, n, key, len, h);
    if (!c)
        return SS_NOMEM;
    c->sib = n->buckets[h & (n->cap - 1)];
    n->buckets[h & (n->cap - 1)] = c;
    n->n++;
    *out = c;
    return SS_OK;
}

int mqtt_trie_empty(const mqtt_trie_node *n)
{
    return !n->data && !n->n && !n->plus && !n->hash;
}

void mqtt_trie_drop(mqtt_trie *t, mqtt_trie_node *n, mqtt_trie_node *c)
{
    t->nodes--;
    if (n->plus == c) {
        n->plus = NULL;
    } else if (n->hash == c) {
        n->hash = NULL;
    } else {
        mqtt_trie_node **at = &n->buckets[c->h & (n->cap - 1)];
        while (*at != c)
            at = &(*at)->sib;
        *at = c->sib;
        n->n--;
    }
    free(c->buckets);
    free(c);
}

void mqtt_trie_prune(mqtt_trie *t, mqtt_trie_node *n)
{
    while (n && n != t->root && mqtt_trie_empty(n)) {
        mqtt_trie_node *parent = n->parent;
        mqtt_trie_drop(t, parent, n);
        n = parent;
    }
    /* The first node kept lets its buckets go once it has no literal
     * child left, so a level that emptied holds no table. */
    if (n && !n->n && n->buckets) {
        free(n->buckets);
        n->buckets = NULL;
        n->cap = 0;
    }
}

static mqtt_trie_node *first_from(const mqtt_trie_node *n, uint32_t i)
{
    for (; i < n->cap; i++)
        if (n->buckets[i])
            return n->buckets[i];
    return NULL;
}

mqtt_trie_node *mqtt_trie_first(const mqtt_trie_node *n)
{
    return n->n ? first_from(n, 0) : NULL;
}

mqtt_trie_node *mqtt_trie_next(const mqtt_trie_node *n, const mqtt_trie_node *c)
{
    if (c->sib)
        return c->sib;
    return first_from(n, (uint32_t)(c->h & (n->cap - 1)) + 1);
}
