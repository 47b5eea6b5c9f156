/* subs.c — the subscription index: a tree of filter levels per org (the
 * org id is the first level), each node holding the subscriptions to the
 * filter that ends there, plain ones and shared groups apart. */
#include "mqtt/subs.h"

#include "core/err.h"
#include "mqtt/trie.h"

#include <stdlib.h>
#include <string.h>

/* A subscription array's first size; it doubles as it fills. */
#define SUBS_ARRAY_MIN 4u

static const char share_prefix[] = "$share/";
#define SHARE_PREFIX_LEN (sizeof share_prefix - 1)

/* The members of one shared subscription ($share/<name>/<filter>):
 * each message goes to one of them, in turn. */
typedef struct share_group {
    struct share_group *next;
    mqtt_sub_entry *m;
    uint32_t n, cap;
    uint32_t turn;              /* the member to try first next time */
    char name[];
} share_group;

/* The subscriptions to the filter a node ends. */
typedef struct node_subs {
    mqtt_sub_entry *e;
    uint32_t n, cap;
    share_group *groups;
} node_subs;

struct mqtt_subs {
    mqtt_trie t;                /* root -> org id -> levels of the filter */
    size_t count;
};

/* A filter as the index keys it: the share group (NULL when plain) and
 * the filter proper. */
typedef struct filter_parts {
    const char *group;
    size_t group_len;
    const char *f;
    size_t len;
} filter_parts;

static int split_filter(const char *filter, size_t len, filter_parts *out)
{
    int shared = 0;
    if (!mqtt_topic_filter_valid(filter, len, &shared))
        return SS_INVAL;
    *out = (filter_parts){NULL, 0, filter, len};
    if (!shared)
        return SS_OK;
    const char *g = filter + SHARE_PREFIX_LEN;
    const char *slash = memchr(g, '/', len - SHARE_PREFIX_LEN);
    out->group = g;
    out->group_len = (size_t)(slash - g);
    out->f = slash + 1;
    out->len = len - (size_t)(out->f - filter);
    return SS_OK;
}

static void node_subs_free(void *data)
{
    node_subs *ns = data;
    while (ns->groups) {
        share_group *g = ns->groups;
        ns->groups = g->next;
        free(g->m);
        free(g);
    }
    free(ns->e);
    free(ns);
}

int mqtt_subs_new(mqtt_subs **out)
{
    mqtt_subs *s = calloc(1, sizeof *s);
    if (!s)
        return SS_NOMEM;
    int rc = mqtt_trie_init(&s->t, 1);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return SS_OK;
}

void mqtt_subs_free(mqtt_subs *s)
{
    if (!s)
        return;
    mqtt_trie_free(&s->t, node_subs_free);
    free(s);
}

/* The node of the filter under the org's, created (create 1) or found. */
static int filter_node(mqtt_subs *s, const char *org_id, const filter_parts *fp, int create,
                       mqtt_trie_node **out)
{
    mqtt_trie_node *n = s->t.root, *next = NULL;
    const char *p = fp->f, *end = fp->f + fp->len;
    int rc = SS_OK;
    const char *key = org_id;
    size_t klen = strlen(org_id);
    for (;;) {
        if (create) {
            rc = mqtt_trie_add(&s->t, n, key, klen, &next);
        } else {
            next = mqtt_trie_find(&s->t, n, key, klen);
            rc = next ? SS_OK : SS_NOT_FOUND;
        }
        if (rc)
            break;
        n = next;
        if (key != org_id && key + klen == end)
            break;
        key = key == org_id ? p : key + klen + 1;
        const char *q = memchr(key, '/', (size_t)(end - key));
        klen = (size_t)((q ? q : end) - key);
    }
    if (rc && create)
        mqtt_trie_prune(&s->t, n);
    *out = n;
    return rc;
}

static int array_put(mqtt_sub_entry **a, uint32_t *n, uint32_t *cap, const mqtt_sub_entry *e)
{
    if (*n == *cap) {
        uint32_t c = *cap ? *cap * 2 : SUBS_ARRAY_MIN;
        mqtt_sub_entry *grown = realloc(*a, c * sizeof *grown);
        if (!grown)
            return SS_NOMEM;
        *a = grown;
        *cap = c;
    }
    (*a)[(*n)++] = *e;
    return SS_OK;
}

static mqtt_sub_entry *array_find(mqtt_sub_entry *a, uint32_t n, const void *owner)
{
    for (uint32_t i = 0; i < n; i++)
        if (a[i].owner == owner)
            return &a[i];
    return NULL;
}

static share_group *group_find(node_subs *ns, const filter_parts *fp)
{
    for (share_group *g = ns->groups; g; g = g->next)
        if (strlen(g->name) == fp->group_len && memcmp(g->name, fp->group, fp->group_len) == 0)
            return g;
    return NULL;
}

static share_group *group_add(node_subs *ns, const filter_parts *fp)
{
    share_group *g = group_find(ns, fp);
    if (g)
        return g;
    g = calloc(1, sizeof *g + fp->group_len + 1);
    if (!g)
        return NULL;
    memcpy(g->name, fp->group, fp->group_len);
    g->next = ns->groups;
    ns->groups = g;
    return g;
}

static void group_unlink(node_subs *ns, share_group *g)
{
    share_group **at = &ns->groups;
    while (*at != g)
        at = &(*at)->next;
    *at = g->next;
    free(g->m);
    free(g);
}

/* Frees the node's subscriptions once none is left, then the nodes left
 * empty above it. */
static void node_settle(mqtt_subs *s, mqtt_trie_node *n)
{
    node_subs *ns = n->data;
    if (ns && !ns->n && !ns->groups) {
        node_subs_free(ns);
        n->data = NULL;
    }
    mqtt_trie_prune(&s->t, n);
}

/* Adds or replaces owner's entry at the node (in its share group). */
static int node_put(node_subs *ns, const filter_parts *fp, const mqtt_sub_entry *e,
                    int *replaced)
{
    share_group *g = NULL;
    if (fp->group && !(g = group_add(ns, fp)))
        return SS_NOMEM;
    mqtt_sub_entry **a = g ? &g->m : &ns->e;
    uint32_t *n = g ? &g->n : &ns->n, *cap = g ? &g->cap : &ns->cap;
    mqtt_sub_entry *old = array_find(*a, *n, e->owner);
    if (old) {
        old->options = e->options;
        old->sub_id = e->sub_id;
        *replaced = 1;
        return SS_OK;
    }
    mqtt_sub_entry put = *e;
    put.share_group = g ? g->name : NULL;
    int rc = array_put(a, n, cap, &put);
    if (rc && g && !g->n)
        group_unlink(ns, g);
    return rc;
}

int mqtt_subs_add(mqtt_subs *s, const char *org_id, const char *filter, size_t len, void *owner,
                  uint8_t options, uint32_t sub_id, int *replaced)
{
    int was = 0;
    filter_parts fp;
    mqtt_trie_node *n = NULL;
    int rc = split_filter(filter, len, &fp);
    if (rc == SS_OK)
        rc = filter_node(s, org_id, &fp, 1, &n);
    if (rc)
        return rc;
    if (!n->data && !(n->data = calloc(1, sizeof(node_subs)))) {
        mqtt_trie_prune(&s->t, n);
        return SS_NOMEM;
    }
    mqtt_sub_entry e = {.owner = owner, .options = options, .sub_id = sub_id};
    rc = node_put(n->data, &fp, &e, &was);
    if (rc == SS_OK && !was)
        s->count++;
    if (rc)
        node_settle(s, n);
    if (replaced)
        *replaced = was;
    return rc;
}

/* Takes owner's entry out of the array (order is not kept). */
static int array_take(mqtt_sub_entry *a, uint32_t *n, const void *owner)
{
    mqtt_sub_entry *e = array_find(a, *n, owner);
    if (!e)
        return SS_NOT_FOUND;
    *e = a[--*n];
    return SS_OK;
}

int mqtt_subs_remove(mqtt_subs *s, const char *org_id, const char *filter, size_t len,
                     void *owner)
{
    filter_parts fp;
    mqtt_trie_node *n = NULL;
    if (split_filter(filter, len, &fp) || filter_node(s, org_id, &fp, 0, &n) || !n->data)
        return SS_NOT_FOUND;
    node_subs *ns = n->data;
    share_group *g = fp.group ? group_find(ns, &fp) : NULL;
    if (fp.group && !g)
        return SS_NOT_FOUND;
    int rc = g ? array_take(g->m, &g->n, owner) : array_take(ns->e, &ns->n, owner);
    if (rc)
        return rc;
    s->count--;
    if (g && !g->n)
        group_unlink(ns, g);
    else if (g && g->turn >= g->n)
        g->turn = 0;
    node_settle(s, n);
    return SS_OK;
}

typedef struct walk {
    int (*pick)(void *owner);
    mqtt_subs_cb cb;
    void *ctx;
    const char *end;            /* of the topic */
} walk;

/* One member of the group, in turn among those `pick` accepts. */
static const mqtt_sub_entry *group_pick(share_group *g, int (*pick)(void *owner))
{
    uint32_t chosen = g->turn % g->n;
    for (uint32_t i = 0; pick && i < g->n; i++) {
        uint32_t at = (g->turn + i) % g->n;
        if (pick(g->m[at].owner)) {
            chosen = at;
            break;
        }
    }
    g->turn = (chosen + 1) % g->n;
    return &g->m[chosen];
}

static void emit(const walk *w, const mqtt_trie_node *n)
{
    node_subs *ns = n ? n->data : NULL;
    if (!ns)
        return;
    for (uint32_t i = 0; i < ns->n; i++)
        w->cb(w->ctx, &ns->e[i]);
    for (share_group *g = ns->groups; g; g = g->next)
        w->cb(w->ctx, group_pick(g, w->pick));
}

/* At node n with the topic's level at p still to match (at_end: every
 * level matched). The recursion is as deep as the org's tree, at most
 * MQTT_TOPIC_LEVELS_MAX + 1. */
static void walk_level(const mqtt_subs *s, const walk *w, const mqtt_trie_node *n, const char *p,
                       int at_end, int first)
{
    if (at_end) {
        emit(w, n);
        emit(w, n->hash); /* "sport/#" matches "sport" */
        return;
    }
    const char *q = memchr(p, '/', (size_t)(w->end - p));
    const char *next = q ? q + 1 : w->end;
    /* MQTT-4.7.2-1: wildcards at the first level skip '$' topics. */
    if (!(first && p < w->end && *p == '$')) {
        emit(w, n->hash);
        if (n->plus)
            walk_level(s, w, n->plus, next, q == NULL, 0);
    }
    size_t len = (size_t)((q ? q : w->end) - p);
    const mqtt_trie_node *c = n->n ? mqtt_trie_find(&s->t, n, p, len) : NULL;
    if (c && !(len == 1 && (*p == '+' || *p == '#')))
        walk_level(s, w, c, next, q == NULL, 0);
}

void mqtt_subs_match(mqtt_subs *s, const char *org_id, const char *topic, size_t len,
                     int (*pick)(void *owner), mqtt_subs_cb cb, void *ctx)
{
    const mqtt_trie_node *org = mqtt_trie_find(&s->t, s->t.root, org_id, strlen(org_id));
    if (!org || !len)
        return;
    walk w = {pick, cb, ctx, topic + len};
    walk_level(s, &w, org, topic, 0, 1);
}

size_t mqtt_subs_count(const mqtt_subs *s)
{
    return s->count;
}

size_t mqtt_subs_nodes(const mqtt_subs *s)
{
    return s->t.nodes;
}
