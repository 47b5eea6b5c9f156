/* trie.h — the tree of topic levels the subscription index (subs.c) and
 * the retained store (retain.c) both walk: one node per level, a node's
 * literal children found by a keyed hash of the level (SipHash, a key
 * drawn per tree: levels are chosen by clients, so no client can make
 * them collide on purpose), and, in a tree of filters, the '+' and '#'
 * children kept apart so a match never scans a level's children.
 *
 * The tree owns its nodes; a node's `data` is its user's. Empty nodes
 * (no data, no children) are the user's to prune. Loop thread only. */
#ifndef SS_MQTT_TRIE_H
#define SS_MQTT_TRIE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mqtt_trie_node mqtt_trie_node;

struct mqtt_trie_node {
    mqtt_trie_node *parent;       /* NULL for the root */
    mqtt_trie_node *sib;          /* next in the parent's bucket */
    mqtt_trie_node **buckets;     /* literal children by hash, cap a power of 2 */
    uint32_t cap, n;              /* buckets, literal children */
    mqtt_trie_node *plus, *hash;  /* the "+" and "#" children (filter trees) */
    uint64_t h;                   /* the hash of key */
    void *data;                   /* the user's */
    uint16_t len;
    char key[];                   /* the level's bytes, NUL-terminated */
};

typedef struct mqtt_trie {
    mqtt_trie_node *root;         /* key "" */
    int wild;                     /* "+" and "#" are wildcards (a filter tree) */
    size_t nodes;                 /* held now, the root included */
    uint8_t hash_key[16];
} mqtt_trie;

/* wild: 1 for a tree of filters. 0, SS_NOMEM or SS_INVAL (libsodium). */
int mqtt_trie_init(mqtt_trie *t, int wild);
/* Frees every node; free_data (may be NULL) is called for each node's
 * non-NULL data first. */
void mqtt_trie_free(mqtt_trie *t, void (*free_data)(void *data));

/* The child of n for the level key[0..len) (in a wild tree "+" and "#"
 * are n->plus / n->hash), or NULL. No allocation. */
mqtt_trie_node *mqtt_trie_find(const mqtt_trie *t, const mqtt_trie_node *n, const char *key,
                               size_t len);
/* The same, created when absent. 0 or SS_NOMEM (then nothing changed). */
int mqtt_trie_add(mqtt_trie *t, mqtt_trie_node *n, const char *key, size_t len,
                  mqtt_trie_node **out);

/* 1 when n holds no data and has no children. */
int mqtt_trie_empty(const mqtt_trie_node *n);
/* Frees n when empty, then each ancestor that is left empty, up to the
 * root (kept). Not while a walk iterates n's parent: use drop then. */
void mqtt_trie_prune(mqtt_trie *t, mqtt_trie_node *n);
/* Unlinks and frees the empty child c of n, leaving n's buckets as they
 * are, so an iteration of n's children (next taken first) goes on. */
void mqtt_trie_drop(mqtt_trie *t, mqtt_trie_node *n, mqtt_trie_node *c);

/* The literal children of n, one by one: first, then next(n, c) until
 * NULL. In no particular order. */
mqtt_trie_node *mqtt_trie_first(const mqtt_trie_node *n);
mqtt_trie_node *mqtt_trie_next(const mqtt_trie_node *n, const mqtt_trie_node *c);

#endif
