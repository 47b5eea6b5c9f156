/* Unit tests of src/mqtt/topic.c: topic names, filters (plain and shared)
 * and matching, with the examples of MQTT 5.0 §4.7.1.2, §4.7.1.3 and
 * §4.7.2 (3.1.1 §4.7 gives the same). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "mqtt/topic.h"

static int name_ok(const char *t)
{
    return mqtt_topic_name_valid(t, strlen(t));
}

static int filter_ok(const char *f, int *shared)
{
    return mqtt_topic_filter_valid(f, strlen(f), shared);
}

static int match(const char *f, const char *t)
{
    return mqtt_topic_match(f, strlen(f), t, strlen(t));
}

/* MQTT-3.3.2-2: no wildcards in a topic name; MQTT-4.7.3-1: at least one
 * character; our own bounds on bytes and levels. */
static void topic_name_rules(void **state)
{
    (void)state;
    assert_true(name_ok("sport/tennis/player1"));
    assert_true(name_ok("/"));
    assert_true(name_ok("$SYS/broker/load"));
    assert_true(name_ok("a b/ü"));
    assert_false(name_ok(""));
    assert_false(name_ok("sport/+/player1"));
    assert_false(name_ok("sport/#"));
    assert_false(name_ok("sport+"));
    assert_false(mqtt_topic_name_valid("a\0b", 3));

    char t[MQTT_TOPIC_MAX + 2];
    memset(t, 'x', sizeof t);
    assert_true(mqtt_topic_name_valid(t, MQTT_TOPIC_MAX));
    assert_false(mqtt_topic_name_valid(t, MQTT_TOPIC_MAX + 1));

    char lv[2 * MQTT_TOPIC_LEVELS_MAX + 2];
    for (size_t i = 0; i < sizeof lv; i++)
        lv[i] = i % 2 ? '/' : 'a';
    assert_true(mqtt_topic_name_valid(lv, 2 * MQTT_TOPIC_LEVELS_MAX - 1));
    assert_false(mqtt_topic_name_valid(lv, 2 * MQTT_TOPIC_LEVELS_MAX + 1));
    /* a trailing '/' opens one more (empty) level */
    assert_false(mqtt_topic_name_valid(lv, 2 * MQTT_TOPIC_LEVELS_MAX));
}

/* §4.7.1.2 and §4.7.1.3: where '#' and '+' may stand. */
static void topic_filter_wildcard_placement(void **state)
{
    (void)state;
    int shared = 7;
    assert_true(filter_ok("sport/tennis/#", &shared));
    assert_int_equal(shared, 0);
    assert_true(filter_ok("#", NULL));
    assert_true(filter_ok("+", NULL));
    assert_true(filter_ok("+/tennis/#", NULL));
    assert_true(filter_ok("sport/+/player1", NULL));
    assert_true(filter_ok("/+", NULL));
    assert_true(filter_ok("+/+", NULL));
    assert_true(filter_ok("/", NULL));
    assert_false(filter_ok("sport/tennis#", NULL));
    assert_false(filter_ok("sport/tennis/#/ranking", NULL));
    assert_false(filter_ok("sport+", NULL));
    assert_false(filter_ok("#/", NULL));
    assert_false(filter_ok("++", NULL));
    assert_false(filter_ok("", NULL));
    assert_false(mqtt_topic_filter_valid("a/\0", 3, NULL));

    char lv[2 * MQTT_TOPIC_LEVELS_MAX + 2];
    for (size_t i = 0; i < sizeof lv; i++)
        lv[i] = i % 2 ? '/' : '+';
    assert_true(mqtt_topic_filter_valid(lv, 2 * MQTT_TOPIC_LEVELS_MAX - 1, NULL));
    assert_false(mqtt_topic_filter_valid(lv, 2 * MQTT_TOPIC_LEVELS_MAX + 1, NULL));
}

/* 5.0 §4.8.2: "$share/<ShareName>/<filter>", a ShareName of at least one
 * character without '/', '+' or '#', then a whole filter. */
static void topic_filter_shared(void **state)
{
    (void)state;
    int shared = 0;
    assert_true(filter_ok("$share/g1/sport/#", &shared));
    assert_int_equal(shared, 1);
    assert_true(filter_ok("$share/g/#", &shared));
    assert_true(filter_ok("$share/g/+/x", &shared));
    shared = 7;
    assert_false(filter_ok("$share//sport", &shared));
    assert_int_equal(shared, 0);
    assert_false(filter_ok("$share/g", NULL));
    assert_false(filter_ok("$share/g/", NULL));
    assert_false(filter_ok("$share/g+/x", NULL));
    assert_false(filter_ok("$share/#/x", NULL));
    assert_false(filter_ok("$share/g/x/#/y", NULL));
    /* not the prefix: a plain filter whose first level is "$sharex" */
    assert_true(filter_ok("$sharex/g", &shared));
    assert_int_equal(shared, 0);
}

/* §4.7.1.2 non-normative examples of '#'. */
static void topic_match_multi_level(void **state)
{
    (void)state;
    assert_true(match("sport/tennis/player1/#", "sport/tennis/player1"));
    assert_true(match("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
    assert_true(match("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
    assert_true(match("sport/#", "sport"));
    assert_true(match("#", "sport/tennis"));
    assert_true(match("#", "/"));
    assert_false(match("sport/tennis/player1/#", "sport/tennis/player2"));
    assert_false(match("sport/#", "sports"));
}

/* §4.7.1.3 non-normative examples of '+'. */
static void topic_match_single_level(void **state)
{
    (void)state;
    assert_true(match("sport/tennis/+", "sport/tennis/player1"));
    assert_true(match("sport/tennis/+", "sport/tennis/player2"));
    assert_false(match("sport/tennis/+", "sport/tennis/player1/ranking"));
    assert_false(match("sport/+", "sport"));
    assert_true(match("sport/+", "sport/"));
    assert_true(match("+/+", "/finance"));
    assert_true(match("/+", "/finance"));
    assert_false(match("+", "/finance"));
    assert_true(match("+", "finance"));
    assert_true(match("+/tennis/#", "sport/tennis/player1"));
    assert_true(match("sport/+/player1", "sport/tennis/player1"));
    assert_true(match("+/+/+", "//"));
    assert_false(match("sport/+/player1", "sport/tennis/player2"));
}

/* MQTT-4.7.2-1 and §4.7.2's examples: '$' topics and wildcards. */
static void topic_match_dollar_topics(void **state)
{
    (void)state;
    assert_false(match("#", "$SYS/monitor/Clients"));
    assert_false(match("+/monitor/Clients", "$SYS/monitor/Clients"));
    assert_true(match("$SYS/#", "$SYS/monitor/Clients"));
    assert_true(match("$SYS/monitor/+", "$SYS/monitor/Clients"));
    assert_true(match("$SYS/#", "$SYS"));
    assert_true(match("a/+", "a/$b"));
    assert_true(match("a/#", "a/$b"));
}

/* Literal levels compare whole and case-sensitive (§4.7.3). */
static void topic_match_literal(void **state)
{
    (void)state;
    assert_true(match("ACCOUNTS", "ACCOUNTS"));
    assert_false(match("ACCOUNTS", "Accounts"));
    assert_false(match("Accounts payable", "Accounts"));
    assert_true(match("/finance", "/finance"));
    assert_false(match("/finance", "finance"));
    assert_false(match("a/b", "a/bc"));
    assert_false(match("a/bc", "a/b"));
    assert_false(match("a/b/c", "a/b"));
    assert_false(match("a/b", "a/b/c"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(topic_name_rules),
        cmocka_unit_test(topic_filter_wildcard_placement),
        cmocka_unit_test(topic_filter_shared),
        cmocka_unit_test(topic_match_multi_level),
        cmocka_unit_test(topic_match_single_level),
        cmocka_unit_test(topic_match_dollar_topics),
        cmocka_unit_test(topic_match_literal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
