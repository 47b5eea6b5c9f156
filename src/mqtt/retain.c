/* retain.c — retained messages in a tree of topic levels per org (the
 * org id is the first level): a subscription's filter walks the tree, so
 * finding the retained messages of "sport/+/score" visits the children of
 * "sport" and no other topic of the org. */
#include "mqtt/retain.h"

#include "core/err.h"
#include "mqtt/topic.h"
#include "mqtt/trie.h"

#include <stdlib.h>
#include <string.h>

/* An org node's data: the org's count of retained messages. A topic
 * node's data is its retained mqtt_msg (one reference). */
typedef struct org_count {
    size_t n;
} org_count;

struct mqtt_retain {
    mqtt_trie t;                /* root -> org id -> topic levels */
};

int mqtt_retain_new(mqtt_retain **out)
{
    mqtt_retain *r = calloc(1, sizeof *r);
    if (!r)
        return SS_NOMEM;
    int rc = mqtt_trie_init(&r->t, 0);
    if (rc) {
        free(r);
        return rc;
    }
    *out = r;
    return SS_OK;
}

static void msg_unref(void *data)
{
    mqtt_msg_unref(data);
}

void mqtt_retain_free(mqtt_retain *r)
{
    if (!r)
        return;
    /* The org nodes hold counts, every node under them a message. */
    for (mqtt_trie_node *o = mqtt_trie_first(r->t.root); o; o = mqtt_trie_next(r->t.root, o)) {
        free(o->data);
        o->data = NULL;
    }
    mqtt_trie_free(&r->t, msg_unref);
    free(r);
}

/* The org's count goes once it is 0, and the org node with it. */
static void org_settle(mqtt_retain *r, mqtt_trie_node *org)
{
    org_count *c = org->data;
    if (c && c->n == 0) {
        free(c);
        org->data = NULL;
    }
    mqtt_trie_prune(&r->t, org);
}

/* The node of the topic under the org's, created or only found. */
static int topic_node(mqtt_retain *r, mqtt_trie_node *org, const char *topic, size_t len,
                      int create, mqtt_trie_node **out)
{
    mqtt_trie_node *n = org;
    const char *p = topic, *end = topic + len;
    for (;;) {
        const char *q = memchr(p, '/', (size_t)(end - p));
        size_t klen = (size_t)((q ? q : end) - p);
        mqtt_trie_node *next = NULL;
        int rc = SS_NOT_FOUND;
        if (create)
            rc = mqtt_trie_add(&r->t, n, p, klen, &next);
        else if ((next = mqtt_trie_find(&r->t, n, p, klen)))
            rc = SS_OK;
        if (rc) {
            *out = n;
            return rc;
        }
        n = next;
        if (!q)
            break;
        p = q + 1;
    }
    *out = n;
    return SS_OK;
}

/* Takes the retained message off its node (count down); the caller
 * prunes. */
static void node_clear(org_count *count, mqtt_trie_node *n)
{
    if (!n->data)
        return;
    mqtt_msg_unref(n->data);
    n->data = NULL;
    count->n--;
}

static int retain_clear(mqtt_retain *r, const mqtt_msg *m)
{
    mqtt_trie_node *org = mqtt_trie_find(&r->t, r->t.root, m->org_id, strlen(m->org_id));
    mqtt_trie_node *n = NULL;
    if (!org || topic_node(r, org, m->topic, m->topic_len, 0, &n) != SS_OK)
        return SS_OK;
    node_clear(org->data, n);
    mqtt_trie_prune(&r->t, n);
    org_settle(r, org);
    return SS_OK;
}

int mqtt_retain_set(mqtt_retain *r, mqtt_msg *m)
{
    /* The tree is as deep as its topics have levels: bounded here. */
    if (!mqtt_topic_name_valid(m->topic, m->topic_len))
        return SS_INVAL;
    if (m->payload_len == 0)
        return retain_clear(r, m);
    mqtt_trie_node *org = NULL, *n = NULL;
    int rc = mqtt_trie_add(&r->t, r->t.root, m->org_id, strlen(m->org_id), &org);
    if (rc)
        return rc;
    if (!org->data && !(org->data = calloc(1, sizeof(org_count)))) {
        org_settle(r, org);
        return SS_NOMEM;
    }
    rc = topic_node(r, org, m->topic, m->topic_len, 1, &n);
    if (rc) {
        mqtt_trie_prune(&r->t, n);
        org_settle(r, org);
        return rc;
    }
    org_count *count = org->data;
    if (n->data)
        mqtt_msg_unref(n->data);
    else
        count->n++;
    n->data = mqtt_msg_ref(m);
    return SS_OK;
}

mqtt_msg *mqtt_retain_get(mqtt_retain *r, const char *org_id, const char *topic, size_t len)
{
    mqtt_trie_node *org = mqtt_trie_find(&r->t, r->t.root, org_id, strlen(org_id));
    mqtt_trie_node *n = NULL;
    if (!org || !len || topic_node(r, org, topic, len, 0, &n) != SS_OK)
        return NULL;
    return n->data;
}

typedef struct walk {
    mqtt_retain *r;
    org_count *count;
    const char *end;            /* of the filter */
    int64_t now_ms;
    void (*cb)(void *ctx, mqtt_msg *m);
    void *ctx;
} walk;

/* Passes the node's message on, or drops it when it has expired. */
static void visit(const walk *w, mqtt_trie_node *n)
{
    mqtt_msg *m = n->data;
    if (!m)
        return;
    if (mqtt_msg_expired(m, w->now_ms))
        node_clear(w->count, n);
    else
        w->cb(w->ctx, m);
}

/* MQTT-4.7.2-1: at the first level a wildcard passes '$' topics over. */
static int hidden(const mqtt_trie_node *c, int first)
{
    return first && c->len && c->key[0] == '$';
}

/* Every message at and below n ('#'); nodes emptied by expiry go. */
static void subtree(const walk *w, mqtt_trie_node *n)
{
    visit(w, n);
    mqtt_trie_node *next = NULL;
    for (mqtt_trie_node *c = mqtt_trie_first(n); c; c = next) {
        next = mqtt_trie_next(n, c);
        subtree(w, c);
        if (mqtt_trie_empty(c))
            mqtt_trie_drop(&w->r->t, n, c);
    }
}

/* At node n with the filter's level at p still to match (at_end: every
 * level matched). As deep as the filter has levels. */
static void walk_level(const walk *w, mqtt_trie_node *n, const char *p, int at_end, int first)
{
    if (at_end) {
        visit(w, n);
        return;
    }
    const char *q = memchr(p, '/', (size_t)(w->end - p));
    size_t len = (size_t)((q ? q : w->end) - p);
    const char *next_p = q ? q + 1 : w->end;
    int wild = len == 1 && (*p == '+' || *p == '#');
    if (wild && *p == '#' && !first)
        visit(w, n); /* "sport/#" matches "sport" */
    mqtt_trie_node *next = NULL;
    for (mqtt_trie_node *c = wild ? mqtt_trie_first(n) : NULL; c; c = next) {
        next = mqtt_trie_next(n, c);
        if (hidden(c, first))
            continue;
        if (*p == '#')
            subtree(w, c);
        else
            walk_level(w, c, next_p, q == NULL, 0);
        if (mqtt_trie_empty(c))
            mqtt_trie_drop(&w->r->t, n, c);
    }
    mqtt_trie_node *c = wild ? NULL : mqtt_trie_find(&w->r->t, n, p, len);
    if (c) {
        walk_level(w, c, next_p, q == NULL, 0);
        if (mqtt_trie_empty(c))
            mqtt_trie_drop(&w->r->t, n, c);
    }
}

void mqtt_retain_match(mqtt_retain *r, const char *org_id, const char *filter, size_t len,
                       int64_t now_ms, void (*cb)(void *ctx, mqtt_msg *m), void *ctx)
{
    mqtt_trie_node *org = mqtt_trie_find(&r->t, r->t.root, org_id, strlen(org_id));
    if (!org || !len)
        return;
    walk w = {r, org->data, filter + len, now_ms, cb, ctx};
    walk_level(&w, org, filter, 0, 1);
    org_settle(r, org);
}

/* Every message at and below n, and the nodes under n; n itself stays
 * for its parent to drop. As deep as the topics have levels. */
static void drop_below(mqtt_retain *r, mqtt_trie_node *n)
{
    mqtt_trie_node *next = NULL;
    for (mqtt_trie_node *c = mqtt_trie_first(n); c; c = next) {
        next = mqtt_trie_next(n, c);
        drop_below(r, c);
        mqtt_msg_unref(c->data);
        c->data = NULL;
        mqtt_trie_drop(&r->t, n, c);
    }
}

void mqtt_retain_drop_org(mqtt_retain *r, const char *org_id)
{
    mqtt_trie_node *org = mqtt_trie_find(&r->t, r->t.root, org_id, strlen(org_id));
    if (!org)
        return;
    drop_below(r, org);
    free(org->data);
    org->data = NULL;
    mqtt_trie_prune(&r->t, org);
}

size_t mqtt_retain_count(const mqtt_retain *r, const char *org_id)
{
    const mqtt_trie_node *org = mqtt_trie_find(&r->t, r->t.root, org_id, strlen(org_id));
    const org_count *c = org ? org->data : NULL;
    return c ? c->n : 0;
}

size_t mqtt_retain_total(const mqtt_retain *r)
{
    size_t n = 0;
    for (mqtt_trie_node *o = mqtt_trie_first(r->t.root); o; o = mqtt_trie_next(r->t.root, o)) {
        const org_count *c = o->data;
        n += c ? c->n : 0;
    }
    return n;
}
