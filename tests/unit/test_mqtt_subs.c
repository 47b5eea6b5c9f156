/* Unit tests of src/mqtt/subs.c (and the level tree under it, trie.c):
 * matching through the index with the examples of MQTT 5.0 §4.7, '$'
 * topics, shared groups in turn, replace on resubscribe, remove and
 * prune, and two orgs with the same topics never meeting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "mqtt/protocol.h"
#include "mqtt/subs.h"
#include "mqtt/trie.h"

#define ORG_A "aaaaaaaaaaaaaaaaaaaaaaaa"
#define ORG_B "bbbbbbbbbbbbbbbbbbbbbbbb"

/* Owners are small integers cast to pointers; a match records which
 * owners it was called with, in order. */
#define OWNER(i) ((void *)(uintptr_t)(i))
#define SEEN_MAX 64

typedef struct seen {
    int n;
    uintptr_t owner[SEEN_MAX];
    uint8_t options[SEEN_MAX];
    uint32_t sub_id[SEEN_MAX];
    const char *group[SEEN_MAX];
} seen;

static void record(void *ctx, const mqtt_sub_entry *e)
{
    seen *s = ctx;
    assert_true(s->n < SEEN_MAX);
    s->owner[s->n] = (uintptr_t)e->owner;
    s->options[s->n] = e->options;
    s->sub_id[s->n] = e->sub_id;
    s->group[s->n] = e->share_group;
    s->n++;
}

static int add(mqtt_subs *s, const char *org, const char *filter, uintptr_t owner)
{
    return mqtt_subs_add(s, org, filter, strlen(filter), OWNER(owner), 0, 0, NULL);
}

static int del(mqtt_subs *s, const char *org, const char *filter, uintptr_t owner)
{
    return mqtt_subs_remove(s, org, filter, strlen(filter), OWNER(owner));
}

static seen match_with(mqtt_subs *s, const char *org, const char *topic, int (*pick)(void *))
{
    seen got = {0};
    mqtt_subs_match(s, org, topic, strlen(topic), pick, record, &got);
    return got;
}

static seen match(mqtt_subs *s, const char *org, const char *topic)
{
    return match_with(s, org, topic, NULL);
}

/* The owners seen, as a bit set (owners below 64). */
static uint64_t owners(const seen *g)
{
    uint64_t bits = 0;
    for (int i = 0; i < g->n; i++)
        bits |= (uint64_t)1 << g->owner[i];
    return bits;
}

#define BIT(i) ((uint64_t)1 << (i))

static mqtt_subs *fresh(void)
{
    mqtt_subs *s = NULL;
    assert_int_equal(mqtt_subs_new(&s), SS_OK);
    return s;
}

/* §4.7.1.2, §4.7.1.3: one owner per filter; each topic reaches exactly
 * the owners whose filters match it. */
static void subs_match_spec_examples(void **state)
{
    (void)state;
    static const char *filters[] = {
        "sport/tennis/player1/#", /* 0 */
        "sport/#",                /* 1 */
        "#",                      /* 2 */
        "sport/tennis/+",         /* 3 */
        "sport/+",                /* 4 */
        "+/+",                    /* 5 */
        "/+",                     /* 6 */
        "+",                      /* 7 */
        "+/tennis/#",             /* 8 */
        "sport/+/player1",        /* 9 */
        "sport/tennis/player1",   /* 10 */
        "/finance",               /* 11 */
    };
    mqtt_subs *s = fresh();
    for (uintptr_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        assert_int_equal(add(s, ORG_A, filters[i], i), SS_OK);
    assert_int_equal(mqtt_subs_count(s), 12);

    seen g = match(s, ORG_A, "sport/tennis/player1");
    assert_int_equal(g.n, 7);
    assert_int_equal(owners(&g), BIT(0) | BIT(1) | BIT(2) | BIT(3) | BIT(8) | BIT(9) | BIT(10));
    g = match(s, ORG_A, "sport/tennis/player1/ranking");
    assert_int_equal(owners(&g), BIT(0) | BIT(1) | BIT(2) | BIT(8));
    g = match(s, ORG_A, "sport/tennis/player1/score/wimbledon");
    assert_int_equal(owners(&g), BIT(0) | BIT(1) | BIT(2) | BIT(8));
    g = match(s, ORG_A, "sport");
    assert_int_equal(owners(&g), BIT(1) | BIT(2) | BIT(7));
    g = match(s, ORG_A, "sport/");
    assert_int_equal(owners(&g), BIT(1) | BIT(2) | BIT(4) | BIT(5));
    g = match(s, ORG_A, "/finance");
    assert_int_equal(owners(&g), BIT(2) | BIT(5) | BIT(6) | BIT(11));
    g = match(s, ORG_A, "sport/tennis");
    assert_int_equal(owners(&g), BIT(1) | BIT(2) | BIT(4) | BIT(5) | BIT(8));
    g = match(s, ORG_A, "other");
    assert_int_equal(owners(&g), BIT(2) | BIT(7));
    mqtt_subs_free(s);
}

/* MQTT-4.7.2-1: "#" and "+/…" never match a topic starting with '$';
 * "$SYS/#" does. */
static void subs_match_dollar_topics(void **state)
{
    (void)state;
    mqtt_subs *s = fresh();
    assert_int_equal(add(s, ORG_A, "#", 1), SS_OK);
    assert_int_equal(add(s, ORG_A, "+/monitor/Clients", 2), SS_OK);
    assert_int_equal(add(s, ORG_A, "$SYS/#", 3), SS_OK);
    assert_int_equal(add(s, ORG_A, "$SYS/monitor/+", 4), SS_OK);
    assert_int_equal(add(s, ORG_A, "$share/g/#", 5), SS_OK);
    seen g = match(s, ORG_A, "$SYS/monitor/Clients");
    assert_int_equal(owners(&g), BIT(3) | BIT(4));
    g = match(s, ORG_A, "x/monitor/Clients");
    assert_int_equal(owners(&g), BIT(1) | BIT(2) | BIT(5));
    g = match(s, ORG_A, "a/$b");
    assert_int_equal(owners(&g), BIT(1) | BIT(5));
    mqtt_subs_free(s);
}

static int offline_mask;

static int online(void *owner)
{
    return !((offline_mask >> (uintptr_t)owner) & 1);
}

/* 5.0 §4.8.2: each message to a shared subscription goes to one member,
 * in turn; members `pick` refuses (offline) are passed over, and when it
 * refuses them all one member still gets it. Plain subscribers to the
 * same filter all get it; another group gets its own copy. */
static void subs_shared_groups_round_robin(void **state)
{
    (void)state;
    mqtt_subs *s = fresh();
    for (uintptr_t i = 1; i <= 3; i++)
        assert_int_equal(add(s, ORG_A, "$share/g/sensors/+", i), SS_OK);
    assert_int_equal(add(s, ORG_A, "$share/h/sensors/+", 10), SS_OK);
    assert_int_equal(add(s, ORG_A, "sensors/+", 20), SS_OK);
    assert_int_equal(add(s, ORG_A, "$share/g/sensors/#", 30), SS_OK); /* another filter: its own */
    assert_int_equal(mqtt_subs_count(s), 6);

    int turns[3] = {0};
    for (int round = 0; round < 9; round++) {
        seen g = match(s, ORG_A, "sensors/t");
        assert_int_equal(g.n, 4);
        uint64_t bits = owners(&g);
        assert_true(bits & BIT(10));
        assert_true(bits & BIT(20));
        assert_true(bits & BIT(30));
        int member = 0;
        for (int i = 0; i < g.n; i++) {
            if (g.owner[i] >= 1 && g.owner[i] <= 3) {
                member = (int)g.owner[i];
                assert_string_equal(g.group[i], "g");
            }
            if (g.owner[i] == 20)
                assert_null(g.group[i]);
            if (g.owner[i] == 10)
                assert_string_equal(g.group[i], "h");
        }
        assert_true(member >= 1);
        turns[member - 1]++;
    }
    assert_int_equal(turns[0], 3);
    assert_int_equal(turns[1], 3);
    assert_int_equal(turns[2], 3);

    /* 2 offline: 1 and 3 alternate */
    offline_mask = 1 << 2;
    int got[4] = {0};
    for (int round = 0; round < 6; round++) {
        seen g = match_with(s, ORG_A, "sensors/t", online);
        for (int i = 0; i < g.n; i++)
            if (g.owner[i] >= 1 && g.owner[i] <= 3)
                got[g.owner[i]]++;
    }
    assert_int_equal(got[1], 3);
    assert_int_equal(got[2], 0);
    assert_int_equal(got[3], 3);

    /* all offline: still one member each time */
    offline_mask = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 10) | (1 << 30);
    seen g = match_with(s, ORG_A, "sensors/t", online);
    assert_int_equal(g.n, 4);
    offline_mask = 0;

    /* a member leaves: the others share it; the last leaves: no group */
    assert_int_equal(del(s, ORG_A, "$share/g/sensors/+", 2), SS_OK);
    assert_int_equal(del(s, ORG_A, "$share/g/sensors/+", 2), SS_NOT_FOUND);
    assert_int_equal(del(s, ORG_A, "sensors/+", 1), SS_NOT_FOUND); /* shared, not plain */
    memset(got, 0, sizeof got);
    for (int round = 0; round < 4; round++) {
        g = match(s, ORG_A, "sensors/t");
        for (int i = 0; i < g.n; i++)
            if (g.owner[i] >= 1 && g.owner[i] <= 3)
                got[g.owner[i]]++;
    }
    assert_int_equal(got[1], 2);
    assert_int_equal(got[3], 2);
    assert_int_equal(del(s, ORG_A, "$share/g/sensors/+", 1), SS_OK);
    assert_int_equal(del(s, ORG_A, "$share/g/sensors/+", 3), SS_OK);
    assert_int_equal(del(s, ORG_A, "$share/zz/sensors/+", 3), SS_NOT_FOUND);
    g = match(s, ORG_A, "sensors/t");
    assert_int_equal(owners(&g), BIT(10) | BIT(20) | BIT(30));
    mqtt_subs_free(s);
}

/* MQTT-3.8.4-3: subscribing again to the same filter replaces the
 * subscription's options and identifier; it is not a second one. */
static void subs_resubscribe_replaces(void **state)
{
    (void)state;
    mqtt_subs *s = fresh();
    int replaced = 7;
    assert_int_equal(mqtt_subs_add(s, ORG_A, "a/+", 3, OWNER(1), 1, 5, &replaced), SS_OK);
    assert_int_equal(replaced, 0);
    assert_int_equal(mqtt_subs_add(s, ORG_A, "a/+", 3, OWNER(1),
                                   2 | MQTT_SUBOPT_NO_LOCAL, 9, &replaced),
                     SS_OK);
    assert_int_equal(replaced, 1);
    assert_int_equal(mqtt_subs_add(s, ORG_A, "$share/g/a/+", 12, OWNER(1), 0, 0, &replaced),
                     SS_OK);
    assert_int_equal(replaced, 0);
    assert_int_equal(mqtt_subs_add(s, ORG_A, "$share/g/a/+", 12, OWNER(1), 1, 4, &replaced),
                     SS_OK);
    assert_int_equal(replaced, 1);
    assert_int_equal(mqtt_subs_count(s), 2);
    seen g = match(s, ORG_A, "a/b");
    assert_int_equal(g.n, 2);
    for (int i = 0; i < g.n; i++) {
        if (g.group[i]) {
            assert_int_equal(g.options[i], 1);
            assert_int_equal(g.sub_id[i], 4);
        } else {
            assert_int_equal(g.options[i], 2 | MQTT_SUBOPT_NO_LOCAL);
            assert_int_equal(g.sub_id[i], 9);
        }
    }
    /* one owner, two overlapping filters: a call for each */
    assert_int_equal(add(s, ORG_A, "a/#", 1), SS_OK);
    g = match(s, ORG_A, "a/b");
    assert_int_equal(g.n, 3);
    mqtt_subs_free(s);
}

static void subs_refuses_invalid_filters(void **state)
{
    (void)state;
    mqtt_subs *s = fresh();
    assert_int_equal(add(s, ORG_A, "a/#/b", 1), SS_INVAL);
    assert_int_equal(add(s, ORG_A, "", 1), SS_INVAL);
    assert_int_equal(add(s, ORG_A, "$share//a", 1), SS_INVAL);
    assert_int_equal(del(s, ORG_A, "a/#/b", 1), SS_NOT_FOUND);
    assert_int_equal(mqtt_subs_count(s), 0);
    assert_int_equal(mqtt_subs_nodes(s), 1);
    mqtt_subs_free(s);
}

/* Removing every subscription frees every node but the root: nothing of
 * a filter nobody holds stays behind (and nothing leaks, under ASan). */
static void subs_remove_prunes_empty_nodes(void **state)
{
    (void)state;
    mqtt_subs *s = fresh();
    char f[64];
    for (uintptr_t i = 0; i < 2000; i++) {
        snprintf(f, sizeof f, "devices/%lu/commands/%s", (unsigned long)i, i % 2 ? "#" : "+");
        assert_int_equal(add(s, i % 3 ? ORG_A : ORG_B, f, i % 50), SS_OK);
    }
    assert_int_equal(add(s, ORG_A, "devices/1/commands", 1), SS_OK);
    assert_int_equal(add(s, ORG_A, "$share/grp/devices/#", 2), SS_OK);
    assert_int_equal(mqtt_subs_count(s), 2002);
    assert_true(mqtt_subs_nodes(s) > 4000);

    seen g = match(s, ORG_A, "devices/1/commands");
    assert_int_equal(owners(&g), BIT(1) | BIT(2));

    /* the wrong owner or org removes nothing */
    assert_int_equal(del(s, ORG_B, "devices/1/commands/#", 1), SS_NOT_FOUND);
    assert_int_equal(del(s, ORG_A, "devices/1/commands/#", 2), SS_NOT_FOUND);
    assert_int_equal(del(s, ORG_A, "devices/1/commands/+", 1), SS_NOT_FOUND);
    assert_int_equal(del(s, ORG_A, "devices/1", 1), SS_NOT_FOUND);

    for (uintptr_t i = 0; i < 2000; i++) {
        snprintf(f, sizeof f, "devices/%lu/commands/%s", (unsigned long)i, i % 2 ? "#" : "+");
        assert_int_equal(del(s, i % 3 ? ORG_A : ORG_B, f, i % 50), SS_OK);
    }
    /* "devices/1/commands" still holds a subscription: its path stays */
    assert_int_equal(mqtt_subs_count(s), 2);
    g = match(s, ORG_A, "devices/1/commands");
    assert_int_equal(owners(&g), BIT(1) | BIT(2));
    g = match(s, ORG_A, "devices/1/commands/x");
    assert_int_equal(owners(&g), BIT(2));
    assert_int_equal(del(s, ORG_A, "devices/1/commands", 1), SS_OK);
    assert_int_equal(del(s, ORG_A, "$share/grp/devices/#", 2), SS_OK);
    assert_int_equal(mqtt_subs_count(s), 0);
    assert_int_equal(mqtt_subs_nodes(s), 1);
    g = match(s, ORG_A, "devices/1/commands");
    assert_int_equal(g.n, 0);

    /* and it fills again */
    assert_int_equal(add(s, ORG_A, "devices/1/commands", 1), SS_OK);
    g = match(s, ORG_A, "devices/1/commands");
    assert_int_equal(owners(&g), BIT(1));
    mqtt_subs_free(s);
}

/* Each org's tree is its own: the same filters and topics in two orgs
 * never reach each other's subscribers. */
static void subs_orgs_never_meet(void **state)
{
    (void)state;
    mqtt_subs *s = fresh();
    assert_int_equal(add(s, ORG_A, "#", 1), SS_OK);
    assert_int_equal(add(s, ORG_A, "readings/+", 2), SS_OK);
    assert_int_equal(add(s, ORG_B, "#", 3), SS_OK);
    assert_int_equal(add(s, ORG_B, "$share/g/readings/+", 4), SS_OK);
    seen g = match(s, ORG_A, "readings/dev1");
    assert_int_equal(owners(&g), BIT(1) | BIT(2));
    g = match(s, ORG_B, "readings/dev1");
    assert_int_equal(owners(&g), BIT(3) | BIT(4));
    g = match(s, "cccccccccccccccccccccccc", "readings/dev1");
    assert_int_equal(g.n, 0);
    /* removing in one org leaves the other's */
    assert_int_equal(del(s, ORG_B, "readings/+", 2), SS_NOT_FOUND);
    assert_int_equal(del(s, ORG_A, "#", 1), SS_OK);
    g = match(s, ORG_B, "x");
    assert_int_equal(owners(&g), BIT(3));
    mqtt_subs_free(s);
}

/* The level tree itself: literal children by hash across growth, the
 * wildcard slots apart, iteration sees each child once, prune stops at a
 * node still in use. */
static void trie_children_grow_iterate_and_prune(void **state)
{
    (void)state;
    mqtt_trie t;
    assert_int_equal(mqtt_trie_init(&t, 1), SS_OK);
    char key[16];
    mqtt_trie_node *n = NULL;
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(mqtt_trie_add(&t, t.root, key, strlen(key), &n), SS_OK);
    }
    assert_int_equal(t.root->n, 300);
    assert_int_equal(mqtt_trie_add(&t, t.root, "+", 1, &n), SS_OK);
    assert_ptr_equal(n, t.root->plus);
    assert_int_equal(t.root->n, 300);
    int count = 0;
    for (mqtt_trie_node *c = mqtt_trie_first(t.root); c; c = mqtt_trie_next(t.root, c))
        count++;
    assert_int_equal(count, 300);
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%d", i);
        n = mqtt_trie_find(&t, t.root, key, strlen(key));
        assert_non_null(n);
        assert_memory_equal(n->key, key, strlen(key) + 1);
    }
    assert_null(mqtt_trie_find(&t, t.root, "k300", 4));
    /* a chain a/b/c with data at a: pruning c stops at a */
    mqtt_trie_node *a, *b, *c;
    assert_int_equal(mqtt_trie_add(&t, t.root, "a", 1, &a), SS_OK);
    assert_int_equal(mqtt_trie_add(&t, a, "b", 1, &b), SS_OK);
    assert_int_equal(mqtt_trie_add(&t, b, "c", 1, &c), SS_OK);
    a->data = &count;
    size_t before = t.nodes;
    mqtt_trie_prune(&t, c);
    assert_int_equal(t.nodes, before - 2);
    assert_int_equal(a->n, 0);
    assert_null(a->buckets);
    a->data = NULL;
    mqtt_trie_free(&t, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(subs_match_spec_examples),
        cmocka_unit_test(subs_match_dollar_topics),
        cmocka_unit_test(subs_shared_groups_round_robin),
        cmocka_unit_test(subs_resubscribe_replaces),
        cmocka_unit_test(subs_refuses_invalid_filters),
        cmocka_unit_test(subs_remove_prunes_empty_nodes),
        cmocka_unit_test(subs_orgs_never_meet),
        cmocka_unit_test(trie_children_grow_iterate_and_prune),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
