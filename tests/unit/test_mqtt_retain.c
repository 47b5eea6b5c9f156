/* Unit tests of src/mqtt/retain.c and src/mqtt/message.c: retained
 * messages set, replaced, cleared by an empty payload, found by filters
 * (the §4.7 examples, '$' topics), expired ones dropped while matching,
 * orgs apart; a message's one allocation, references, forwarded
 * properties and expiry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "mqtt/message.h"
#include "mqtt/retain.h"
#include "mqtt/topic.h"

#define ORG_A "aaaaaaaaaaaaaaaaaaaaaaaa"
#define ORG_B "bbbbbbbbbbbbbbbbbbbbbbbb"
#define NOW 1700000000000LL
#define FOUND_MAX 64

static mqtt_msg *msg(const char *org, const char *topic, const char *payload)
{
    mqtt_msg *m = mqtt_msg_new(org, topic, strlen(topic), (const uint8_t *)payload,
                               strlen(payload), 1, 1, NULL, NOW);
    assert_non_null(m);
    return m;
}

/* Sets a retained message, the store's reference only. */
static void put(mqtt_retain *r, const char *org, const char *topic, const char *payload)
{
    mqtt_msg *m = msg(org, topic, payload);
    assert_int_equal(mqtt_retain_set(r, m), SS_OK);
    mqtt_msg_unref(m);
}

typedef struct found {
    int n;
    char topics[FOUND_MAX][64];
} found;

static void collect(void *ctx, mqtt_msg *m)
{
    found *f = ctx;
    assert_true(f->n < FOUND_MAX);
    snprintf(f->topics[f->n++], sizeof f->topics[0], "%s", m->topic);
}

static int has(const found *f, const char *topic)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->topics[i], topic) == 0)
            return 1;
    return 0;
}

static found match_at(mqtt_retain *r, const char *org, const char *filter, int64_t now)
{
    found f = {0};
    mqtt_retain_match(r, org, filter, strlen(filter), now, collect, &f);
    return f;
}

static found match(mqtt_retain *r, const char *org, const char *filter)
{
    return match_at(r, org, filter, NOW);
}

static mqtt_retain *fresh(void)
{
    mqtt_retain *r = NULL;
    assert_int_equal(mqtt_retain_new(&r), SS_OK);
    return r;
}

/* MQTT-3.3.1-5/-7: a retained message replaces the one before on its
 * topic; MQTT-3.3.1-6 (-10 in 3.1.1): an empty payload removes it. */
static void retain_set_replace_clear(void **state)
{
    (void)state;
    mqtt_retain *r = fresh();
    put(r, ORG_A, "a/b", "1");
    put(r, ORG_A, "a/b", "2");
    put(r, ORG_A, "a", "3");
    assert_int_equal(mqtt_retain_count(r, ORG_A), 2);
    mqtt_msg *m = mqtt_retain_get(r, ORG_A, "a/b", 3);
    assert_non_null(m);
    assert_memory_equal(m->payload, "2", 1);
    assert_int_equal(m->refs, 1);
    assert_null(mqtt_retain_get(r, ORG_A, "a/c", 3));
    assert_null(mqtt_retain_get(r, ORG_A, "a/b/c", 5));

    put(r, ORG_A, "a/b", "");
    assert_null(mqtt_retain_get(r, ORG_A, "a/b", 3));
    assert_int_equal(mqtt_retain_count(r, ORG_A), 1);
    put(r, ORG_A, "never/set", ""); /* clearing nothing is harmless */
    put(r, ORG_B, "a", "");
    assert_int_equal(mqtt_retain_count(r, ORG_A), 1);
    assert_int_equal(mqtt_retain_count(r, ORG_B), 0);
    put(r, ORG_A, "a", "");
    assert_int_equal(mqtt_retain_count(r, ORG_A), 0);
    found f = match(r, ORG_A, "#");
    assert_int_equal(f.n, 0);
    put(r, ORG_A, "a", "again");
    assert_int_equal(mqtt_retain_count(r, ORG_A), 1);

    /* not a topic name: refused, nothing kept */
    mqtt_msg *bad = msg(ORG_A, "a/+", "x");
    assert_int_equal(mqtt_retain_set(r, bad), SS_INVAL);
    assert_int_equal(bad->refs, 1);
    mqtt_msg_unref(bad);
    char deep[2 * MQTT_TOPIC_LEVELS_MAX + 2];
    for (size_t i = 0; i < sizeof deep - 1; i++)
        deep[i] = i % 2 ? '/' : 'a';
    deep[sizeof deep - 1] = '\0';
    bad = msg(ORG_A, deep, "x");
    assert_int_equal(mqtt_retain_set(r, bad), SS_INVAL);
    mqtt_msg_unref(bad);
    assert_int_equal(mqtt_retain_count(r, ORG_A), 1);
    mqtt_retain_free(r);
}

/* The retained messages a new subscription's filter finds, with the
 * §4.7 wildcard rules. */
static void retain_match_by_filter(void **state)
{
    (void)state;
    mqtt_retain *r = fresh();
    static const char *topics[] = {
        "sport",
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/tennis/player2",
        "sport/",
        "/finance",
        "finance",
        "$SYS/monitor/Clients",
    };
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
        put(r, ORG_A, topics[i], "x");

    found f = match(r, ORG_A, "sport/tennis/player1/#");
    assert_int_equal(f.n, 2);
    assert_true(has(&f, "sport/tennis/player1"));
    assert_true(has(&f, "sport/tennis/player1/ranking"));

    f = match(r, ORG_A, "sport/#");
    assert_int_equal(f.n, 5);
    assert_true(has(&f, "sport"));
    assert_true(has(&f, "sport/"));

    f = match(r, ORG_A, "#");
    assert_int_equal(f.n, 7);
    assert_false(has(&f, "$SYS/monitor/Clients"));

    f = match(r, ORG_A, "sport/tennis/+");
    assert_int_equal(f.n, 2);
    assert_true(has(&f, "sport/tennis/player2"));

    f = match(r, ORG_A, "sport/+");
    assert_int_equal(f.n, 1);
    assert_true(has(&f, "sport/"));

    f = match(r, ORG_A, "+");
    assert_int_equal(f.n, 2);
    assert_true(has(&f, "sport"));
    assert_true(has(&f, "finance"));

    f = match(r, ORG_A, "+/+");
    assert_int_equal(f.n, 2);
    assert_true(has(&f, "sport/"));
    assert_true(has(&f, "/finance"));

    f = match(r, ORG_A, "+/tennis/#");
    assert_int_equal(f.n, 3);

    f = match(r, ORG_A, "+/monitor/Clients");
    assert_int_equal(f.n, 0);
    f = match(r, ORG_A, "$SYS/#");
    assert_int_equal(f.n, 1);
    f = match(r, ORG_A, "$SYS/monitor/+");
    assert_int_equal(f.n, 1);

    f = match(r, ORG_A, "sport/tennis/player1");
    assert_int_equal(f.n, 1);
    f = match(r, ORG_A, "sport/tennis");
    assert_int_equal(f.n, 0);
    mqtt_retain_free(r);
}

/* Two orgs with the same topics: each sees its own. */
static void retain_orgs_apart(void **state)
{
    (void)state;
    mqtt_retain *r = fresh();
    put(r, ORG_A, "devices/1/state", "A");
    put(r, ORG_B, "devices/1/state", "B");
    put(r, ORG_B, "devices/2/state", "B");
    assert_int_equal(mqtt_retain_count(r, ORG_A), 1);
    assert_int_equal(mqtt_retain_count(r, ORG_B), 2);
    assert_int_equal(mqtt_retain_count(r, "cccccccccccccccccccccccc"), 0);
    found f = match(r, ORG_A, "#");
    assert_int_equal(f.n, 1);
    mqtt_msg *m = mqtt_retain_get(r, ORG_A, "devices/1/state", 15);
    assert_memory_equal(m->payload, "A", 1);
    assert_string_equal(m->org_id, ORG_A);
    f = match(r, "cccccccccccccccccccccccc", "#");
    assert_int_equal(f.n, 0);
    put(r, ORG_A, "devices/1/state", "");
    f = match(r, ORG_B, "devices/+/state");
    assert_int_equal(f.n, 2);
    mqtt_retain_free(r);
}

static mqtt_msg *msg_expiring(const char *topic, uint32_t seconds)
{
    mqtt_props p = {0};
    p.message_expiry = seconds;
    MQTT_SET(&p, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
    mqtt_msg *m = mqtt_msg_new(ORG_A, topic, strlen(topic), (const uint8_t *)"v", 1, 0, 1, &p,
                               NOW);
    assert_non_null(m);
    return m;
}


/* The broker's total ($SYS/broker/retained messages/count) is every org's,
 * the superadmin's tree ("": no org's id) too, which no org's filter
 * reaches. */
static void retain_total_of_every_org(void **state)
{
    (void)state;
    mqtt_retain *r = fresh();
    assert_int_equal(mqtt_retain_total(r), 0);
    put(r, ORG_A, "a", "1");
    put(r, ORG_B, "b", "1");
    put(r, ORG_B, "c", "1");
    put(r, "", "$SYS/broker/uptime", "1 seconds");
    assert_int_equal(mqtt_retain_total(r), 4);
    assert_int_equal(mqtt_retain_count(r, ""), 1);
    assert_int_equal(match(r, ORG_A, "#").n, 1);
    assert_int_equal(match(r, ORG_A, "$SYS/#").n, 0);
    found f = match(r, "", "$SYS/#");
    assert_int_equal(f.n, 1);
    assert_true(has(&f, "$SYS/broker/uptime"));
    put(r, ORG_B, "b", "");
    put(r, "", "$SYS/broker/uptime", "");
    assert_int_equal(mqtt_retain_total(r), 2);
    mqtt_retain_free(r);
}
/* A deleted org's retained messages go with it at once, its whole tree,
 * and no other org's. */
static void retain_drop_org_takes_its_tree(void **state)
{
    (void)state;
    mqtt_retain *r = fresh();
    put(r, ORG_A, "a", "1");
    put(r, ORG_A, "a/b/c", "1");
    put(r, ORG_A, "d/e", "1");
    put(r, ORG_B, "a", "1");
    assert_int_equal(mqtt_retain_total(r), 4);
    mqtt_retain_drop_org(r, ORG_A);
    assert_int_equal(mqtt_retain_count(r, ORG_A), 0);
    assert_int_equal(match(r, ORG_A, "#").n, 0);
    assert_null(mqtt_retain_get(r, ORG_A, "a/b/c", 5));
    assert_int_equal(mqtt_retain_total(r), 1);
    assert_int_equal(match(r, ORG_B, "#").n, 1);
    mqtt_retain_drop_org(r, ORG_A);
    mqtt_retain_drop_org(r, "nobody");
    put(r, ORG_A, "a", "2");
    assert_int_equal(mqtt_retain_total(r), 2);
    mqtt_retain_free(r);
}

/* MQTT-3.3.2-5: a retained message past its expiry is not sent to a new
 * subscriber, and the match that finds it expired drops it. */
static void retain_expired_dropped_while_matching(void **state)
{
    (void)state;
    mqtt_retain *r = fresh();
    mqtt_msg *shortm = msg_expiring("a/short", 10);
    mqtt_msg *longm = msg_expiring("a/long", 100);
    mqtt_msg *deep = msg_expiring("a/deep/er/still", 10);
    assert_int_equal(mqtt_retain_set(r, shortm), SS_OK);
    assert_int_equal(mqtt_retain_set(r, longm), SS_OK);
    assert_int_equal(mqtt_retain_set(r, deep), SS_OK);
    put(r, ORG_A, "a/forever", "x");
    mqtt_msg_unref(longm);
    mqtt_msg_unref(deep);
    assert_int_equal(shortm->refs, 2);

    found f = match_at(r, ORG_A, "a/+", NOW + 9999);
    assert_int_equal(f.n, 3);
    assert_int_equal(mqtt_retain_count(r, ORG_A), 4);

    f = match_at(r, ORG_A, "a/+", NOW + 10000);
    assert_int_equal(f.n, 2);
    assert_false(has(&f, "a/short"));
    assert_int_equal(mqtt_retain_count(r, ORG_A), 3);
    assert_int_equal(shortm->refs, 1); /* the store let it go */
    assert_null(mqtt_retain_get(r, ORG_A, "a/short", 7));
    mqtt_msg_unref(shortm);

    /* through '#', deep in the tree */
    f = match_at(r, ORG_A, "#", NOW + 20000);
    assert_int_equal(f.n, 2);
    assert_int_equal(mqtt_retain_count(r, ORG_A), 2);
    f = match_at(r, ORG_A, "a/long", NOW + 100000);
    assert_int_equal(f.n, 0);
    assert_int_equal(mqtt_retain_count(r, ORG_A), 1);
    put(r, ORG_A, "a/forever", "");
    assert_int_equal(mqtt_retain_count(r, ORG_A), 0);
    mqtt_retain_free(r);
}

/* Many topics set and cleared, and freeing with messages still held:
 * ASan finds any node or message left behind. */
static void retain_many_topics_set_and_cleared(void **state)
{
    (void)state;
    mqtt_retain *r = fresh();
    char t[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(t, sizeof t, "devices/%d/state/%d", i % 300, i);
        put(r, i % 2 ? ORG_A : ORG_B, t, "on");
    }
    assert_int_equal(mqtt_retain_count(r, ORG_A) + mqtt_retain_count(r, ORG_B), 3000);
    found f = match(r, ORG_A, "devices/7/state/+");
    assert_int_equal(f.n, 10);
    for (int i = 0; i < 3000; i += 2) {
        snprintf(t, sizeof t, "devices/%d/state/%d", i % 300, i);
        put(r, ORG_B, t, "");
    }
    assert_int_equal(mqtt_retain_count(r, ORG_B), 0);
    assert_int_equal(mqtt_retain_count(r, ORG_A), 1500);
    mqtt_retain_free(r);
}

/* One allocation with everything; properties other than the forwarded
 * ones stay behind; the copy outlives the publisher's buffers. */
static void message_copies_topic_payload_and_forwarded_props(void **state)
{
    (void)state;
    char topic[] = "devices/x/cmd";
    uint8_t payload[] = {0, 1, 2, 3};
    char ctype[] = "application/json", rtopic[] = "replies/1";
    uint8_t corr[] = {9, 8, 7};
    uint8_t user[] = {0x26, 0, 1, 'k', 0, 1, 'v'};
    mqtt_props p = {0};
    p.payload_format = 1;
    MQTT_SET(&p, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR);
    p.content_type = (mqtt_str){ctype, (uint16_t)strlen(ctype)};
    MQTT_SET(&p, MQTT_PROP_CONTENT_TYPE);
    p.response_topic = (mqtt_str){rtopic, (uint16_t)strlen(rtopic)};
    MQTT_SET(&p, MQTT_PROP_RESPONSE_TOPIC);
    p.correlation_data = (mqtt_bin){corr, sizeof corr};
    MQTT_SET(&p, MQTT_PROP_CORRELATION_DATA);
    p.user = user;
    p.user_len = sizeof user;
    p.n_user = 1;
    MQTT_SET(&p, MQTT_PROP_USER_PROPERTY);
    p.topic_alias = 3;
    MQTT_SET(&p, MQTT_PROP_TOPIC_ALIAS);
    p.sub_ids[0] = 5;
    p.n_sub_ids = 1;
    MQTT_SET(&p, MQTT_PROP_SUBSCRIPTION_IDENTIFIER);

    mqtt_msg *m = mqtt_msg_new(ORG_A, topic, strlen(topic), payload, sizeof payload, 2, 0, &p,
                               NOW);
    assert_non_null(m);
    memset(topic, 'z', sizeof topic - 1);
    memset(payload, 0xff, sizeof payload);
    memset(ctype, 'z', sizeof ctype - 1);
    memset(rtopic, 'z', sizeof rtopic - 1);
    memset(corr, 0, sizeof corr);
    memset(user, 0, sizeof user);

    assert_string_equal(m->topic, "devices/x/cmd");
    assert_int_equal(m->topic_len, 13);
    assert_memory_equal(m->payload, "\0\1\2\3", 4);
    assert_int_equal(m->payload_len, 4);
    assert_int_equal(m->qos, 2);
    assert_int_equal(m->retain, 0);
    assert_string_equal(m->org_id, ORG_A);
    assert_int_equal(m->refs, 1);
    assert_true(MQTT_HAS(&m->props, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR));
    assert_int_equal(m->props.payload_format, 1);
    assert_memory_equal(m->props.content_type.p, "application/json", 16);
    assert_memory_equal(m->props.response_topic.p, "replies/1", 9);
    assert_memory_equal(m->props.correlation_data.p, "\11\10\7", 3);
    assert_int_equal(m->props.user_len, 7);
    assert_int_equal(m->props.n_user, 1);
    assert_memory_equal(m->props.user, "\x26\0\1k\0\1v", 7);
    assert_false(MQTT_HAS(&m->props, MQTT_PROP_TOPIC_ALIAS));
    assert_false(MQTT_HAS(&m->props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER));
    assert_false(MQTT_HAS(&m->props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL));
    /* every byte is inside the one allocation */
    const uint8_t *lo = (const uint8_t *)m, *hi = lo + mqtt_msg_size(m);
    assert_true((const uint8_t *)m->props.user + 7 <= hi);
    assert_true(mqtt_msg_size(m) == sizeof *m + 14 + 4 + 16 + 9 + 3 + 7);

    assert_ptr_equal(mqtt_msg_ref(m), m);
    assert_int_equal(m->refs, 2);
    mqtt_msg_unref(m);
    assert_int_equal(m->refs, 1);
    mqtt_msg_unref(m);
    mqtt_msg_unref(NULL);

    mqtt_msg *bare = mqtt_msg_new(ORG_A, "t", 1, NULL, 0, 0, 0, NULL, NOW);
    assert_non_null(bare);
    assert_int_equal(bare->payload_len, 0);
    assert_int_equal(bare->props.has, 0);
    assert_int_equal(mqtt_msg_size(bare), sizeof *bare + 2);
    mqtt_msg_unref(bare);
}

/* MQTT-3.3.2-6: a delivery carries what is left of the interval; none
 * without one (and 0 sets none, as Mosquitto has it). */
static void message_expiry_left_and_expired(void **state)
{
    (void)state;
    mqtt_msg *m = msg_expiring("t", 10);
    assert_false(mqtt_msg_expired(m, NOW));
    assert_int_equal(mqtt_msg_expiry_left(m, NOW), 10);
    assert_int_equal(mqtt_msg_expiry_left(m, NOW + 1), 10);  /* rounded up */
    assert_int_equal(mqtt_msg_expiry_left(m, NOW + 1000), 9);
    assert_int_equal(mqtt_msg_expiry_left(m, NOW + 9999), 1);
    assert_false(mqtt_msg_expired(m, NOW + 9999));
    assert_true(mqtt_msg_expired(m, NOW + 10000));
    assert_int_equal(mqtt_msg_expiry_left(m, NOW + 10000), 1); /* never "none" */
    mqtt_msg_unref(m);

    m = msg_expiring("t", 0);
    assert_false(MQTT_HAS(&m->props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL));
    assert_false(mqtt_msg_expired(m, NOW + 1000000000));
    assert_int_equal(mqtt_msg_expiry_left(m, NOW), 0);
    mqtt_msg_unref(m);

    m = msg("o", "t", "p");
    assert_false(mqtt_msg_expired(m, INT64_MAX - 1));
    assert_int_equal(mqtt_msg_expiry_left(m, NOW), 0);
    mqtt_msg_unref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(retain_set_replace_clear),
        cmocka_unit_test(retain_match_by_filter),
        cmocka_unit_test(retain_orgs_apart),
        cmocka_unit_test(retain_total_of_every_org),
        cmocka_unit_test(retain_drop_org_takes_its_tree),
        cmocka_unit_test(retain_expired_dropped_while_matching),
        cmocka_unit_test(retain_many_topics_set_and_cleared),
        cmocka_unit_test(message_copies_topic_payload_and_forwarded_props),
        cmocka_unit_test(message_expiry_left_and_expired),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
