/* Unit tests of src/mqtt/acl.c and aaa_check_data_own: every rule of
 * SPEC §3.6 for a device, for keys of each scope and for the superadmin:
 * "devices/me", another device's topics and filters, readings/…, the
 * rest of the tree, '$' topics and shared filters; and data topics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "aaa/access.h"
#include "core/err.h"
#include "mqtt/acl.h"

#define ORG "0123456789abcdef01234567"
#define OTHER_ORG "fedcba9876543210fedcba98"
#define DEV "aaaaaaaaaaaaaaaaaaaaaaaa"
#define DEV2 "bbbbbbbbbbbbbbbbbbbbbbbb"

static aaa_principal device_principal(int disabled)
{
    aaa_principal p;
    aaa_principal_device(&p, DEV, ORG, disabled);
    return p;
}

static aaa_principal key_principal(unsigned scopes)
{
    aaa_principal p;
    memset(&p, 0, sizeof p);
    p.kind = AAA_PRINCIPAL_KEY;
    snprintf(p.key.id, sizeof p.key.id, "%s", "cccccccccccccccccccccccc");
    snprintf(p.key.org_id, sizeof p.key.org_id, "%s", ORG);
    p.key.scopes = scopes;
    return p;
}

static aaa_principal person_principal(int superadmin)
{
    aaa_principal p;
    memset(&p, 0, sizeof p);
    p.kind = AAA_PRINCIPAL_PERSON;
    snprintf(p.user.id, sizeof p.user.id, "%s", "dddddddddddddddddddddddd");
    p.user.superadmin = superadmin;
    return p;
}

/* What a connection keeps of the principal it signed in as. */
static mqtt_who who_of(aaa_principal p)
{
    mqtt_who w;
    mqtt_who_set(&w, &p);
    return w;
}

static mqtt_who device(int disabled)
{
    return who_of(device_principal(disabled));
}

static mqtt_who key(unsigned scopes)
{
    return who_of(key_principal(scopes));
}

static mqtt_who person(int superadmin)
{
    return who_of(person_principal(superadmin));
}

static int pub(const mqtt_who *p, const char *t)
{
    return mqtt_acl_check(p, MQTT_ACL_PUBLISH, t, strlen(t));
}

static int sub(const mqtt_who *p, const char *f)
{
    return mqtt_acl_check(p, MQTT_ACL_SUBSCRIBE, f, strlen(f));
}

/* "devices/me" as the first two levels is the device's own id; nothing
 * else is rewritten, and a key has no "me". */
static void acl_resolve_devices_me(void **state)
{
    (void)state;
    mqtt_who d = device(0), k = key(STORE_SCOPE_DATA_READ);
    char out[MQTT_ACL_TOPIC_CAP];
    size_t n = 0;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"devices/me/data", "devices/" DEV "/data"},
        {"devices/me", "devices/" DEV},
        {"devices/me/#", "devices/" DEV "/#"},
        {"$share/g/devices/me/commands/+", "$share/g/devices/" DEV "/commands/+"},
        {"devices/meter/data", "devices/meter/data"},
        {"devices/m", "devices/m"},
        {"x/devices/me", "x/devices/me"},
        {"devices/" DEV2 "/me", "devices/" DEV2 "/me"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(mqtt_acl_resolve(&d, cases[i].in, strlen(cases[i].in), out, sizeof out,
                                          &n),
                         SS_OK);
        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
    }
    assert_int_equal(mqtt_acl_resolve(&k, "devices/me/x", 12, out, sizeof out, &n), SS_OK);
    assert_string_equal(out, "devices/me/x");

    /* the cap counts the NUL */
    char small[9 + SS_ID_LEN];
    assert_int_equal(mqtt_acl_resolve(&d, "devices/me", 10, small, sizeof small, &n), SS_OK);
    assert_int_equal(mqtt_acl_resolve(&d, "devices/me/", 11, small, sizeof small, &n),
                     SS_TOO_LARGE);
    assert_int_equal(mqtt_acl_resolve(&k, "abcdefgh", 8, small, 8, &n), SS_TOO_LARGE);
    assert_int_equal(mqtt_acl_resolve(&k, "abcdefg", 7, small, 8, &n), SS_OK);
}

/* A device: publish and subscribe under devices/<its id>/ only. */
static void acl_device_own_subtree_only(void **state)
{
    (void)state;
    mqtt_who d = device(0);
    assert_int_equal(pub(&d, "devices/" DEV "/data"), 0);
    assert_int_equal(pub(&d, "devices/" DEV "/data/temp"), 0);
    assert_int_equal(pub(&d, "devices/" DEV "/status"), 0);
    assert_int_equal(pub(&d, "devices/" DEV), 0);
    assert_int_equal(sub(&d, "devices/" DEV "/commands/#"), 0);
    assert_int_equal(sub(&d, "devices/" DEV "/#"), 0);
    assert_int_equal(sub(&d, "devices/" DEV "/+/x"), 0);
    assert_int_equal(sub(&d, "$share/g/devices/" DEV "/commands"), 0);

    /* another device's topics, and filters that could reach them */
    assert_int_equal(pub(&d, "devices/" DEV2 "/data"), SS_FORBIDDEN);
    assert_int_equal(sub(&d, "devices/" DEV2 "/commands/#"), SS_FORBIDDEN);
    assert_int_equal(sub(&d, "devices/+/commands"), SS_FORBIDDEN);
    assert_int_equal(sub(&d, "devices/#"), SS_FORBIDDEN);
    assert_int_equal(sub(&d, "devices"), SS_FORBIDDEN);
    assert_int_equal(pub(&d, "devices"), SS_FORBIDDEN);
    assert_int_equal(sub(&d, "#"), SS_FORBIDDEN);
    assert_int_equal(sub(&d, "+/" DEV "/#"), SS_FORBIDDEN);
    assert_int_equal(sub(&d, "$share/g/devices/+/data"), SS_FORBIDDEN);
    assert_int_equal(sub(&d, "devices/" DEV "x/#"), SS_FORBIDDEN);
    /* unresolved "me" is nobody's id */
    assert_int_equal(pub(&d, "devices/me/data"), SS_FORBIDDEN);

    /* readings and the rest of the tree: nothing */
    assert_int_equal(sub(&d, "readings/" DEV), SS_FORBIDDEN);
    assert_int_equal(pub(&d, "readings/" DEV), SS_FORBIDDEN);
    assert_int_equal(pub(&d, "commands/x"), SS_FORBIDDEN);
    assert_int_equal(sub(&d, "commands/x"), SS_FORBIDDEN);
    assert_int_equal(sub(&d, "$SYS/#"), SS_FORBIDDEN);

    /* a disabled device: nothing at all */
    mqtt_who off = device(1);
    assert_int_equal(pub(&off, "devices/" DEV "/data"), SS_FORBIDDEN);
    assert_int_equal(sub(&off, "devices/" DEV "/#"), SS_FORBIDDEN);
}

/* "devices/me/…" resolved, then checked: the alias reaches only its own. */
static void acl_device_me_then_check(void **state)
{
    (void)state;
    mqtt_who d = device(0);
    char out[MQTT_ACL_TOPIC_CAP];
    size_t n = 0;
    static const char *const allowed[] = {"devices/me/data", "devices/me/commands/#",
                                          "devices/me/#", "devices/me"};
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        assert_int_equal(mqtt_acl_resolve(&d, allowed[i], strlen(allowed[i]), out, sizeof out,
                                          &n),
                         SS_OK);
        assert_int_equal(sub(&d, out), 0);
    }
    assert_int_equal(mqtt_acl_resolve(&d, "devices/me/data", 15, out, sizeof out, &n), SS_OK);
    assert_int_equal(pub(&d, out), 0);
}

/* Keys: data:read (or manage) subscribes anywhere in the org's tree,
 * data:write publishes anywhere but readings/…; neither reaches $SYS. */
static void acl_key_scopes(void **state)
{
    (void)state;
    mqtt_who r = key(STORE_SCOPE_DATA_READ), w = key(STORE_SCOPE_DATA_WRITE);
    mqtt_who m = key(STORE_SCOPE_MANAGE);
    mqtt_who rw = key(STORE_SCOPE_DATA_READ | STORE_SCOPE_DATA_WRITE);
    mqtt_who none = key(0);
    static const char *const filters[] = {
        "#", "+", "readings/#", "readings/" DEV, "devices/+/data", "devices/#",
        "devices/" DEV "/commands/#", "apps/x", "$share/g/readings/+", "devices",
    };
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
        assert_int_equal(sub(&r, filters[i]), 0);
        assert_int_equal(sub(&m, filters[i]), 0);
        assert_int_equal(sub(&rw, filters[i]), 0);
        assert_int_equal(sub(&w, filters[i]), SS_FORBIDDEN);
        assert_int_equal(sub(&none, filters[i]), SS_FORBIDDEN);
    }
    static const char *const names[] = {
        "devices/" DEV "/commands/reboot", "devices/" DEV "/data", "apps/x", "devices",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        assert_int_equal(pub(&w, names[i]), 0);
        assert_int_equal(pub(&rw, names[i]), 0);
        assert_int_equal(pub(&r, names[i]), SS_FORBIDDEN);
        assert_int_equal(pub(&m, names[i]), SS_FORBIDDEN);
        assert_int_equal(pub(&none, names[i]), SS_FORBIDDEN);
    }
    /* nobody publishes readings: the broker does */
    assert_int_equal(pub(&w, "readings/" DEV), SS_FORBIDDEN);
    assert_int_equal(pub(&rw, "readings"), SS_FORBIDDEN);
    /* broker topics and other '$' topics */
    assert_int_equal(sub(&rw, "$SYS/#"), SS_FORBIDDEN);
    assert_int_equal(pub(&rw, "$SYS/x"), SS_FORBIDDEN);
    assert_int_equal(sub(&rw, "$other/x"), SS_FORBIDDEN);
    assert_int_equal(pub(&rw, "$share/g/x"), SS_FORBIDDEN);
    assert_int_equal(sub(&rw, "$share/g/$SYS/#"), SS_FORBIDDEN);
    /* a filter is no topic name */
    assert_int_equal(pub(&rw, "devices/+/commands"), SS_FORBIDDEN);
    assert_int_equal(pub(&rw, "#"), SS_FORBIDDEN);
    /* malformed shared filters */
    assert_int_equal(sub(&rw, "$share/g/"), SS_FORBIDDEN);
    assert_int_equal(sub(&rw, "$share/g"), SS_FORBIDDEN);
    assert_int_equal(sub(&rw, ""), SS_FORBIDDEN);
}

/* "$SYS/…" is the superadmin's alone to read, and the broker's alone to
 * publish; the superadmin's tree holds nothing else, so they subscribe
 * nowhere else and publish nowhere; a person who is not the superadmin
 * gets nothing here. */
static void acl_superadmin_and_persons(void **state)
{
    (void)state;
    mqtt_who su = person(1), pe = person(0);
    assert_int_equal(sub(&su, "$SYS/#"), 0);
    assert_int_equal(sub(&su, "$SYS/broker/clients/+"), 0);
    assert_int_equal(pub(&su, "$SYS/broker/x"), SS_FORBIDDEN);
    assert_int_equal(sub(&su, "$share/g/$SYS/#"), 0);
    assert_int_equal(sub(&su, "$other/x"), SS_FORBIDDEN);
    assert_int_equal(sub(&su, "readings/#"), SS_FORBIDDEN);
    assert_int_equal(sub(&su, "#"), SS_FORBIDDEN);
    assert_int_equal(sub(&su, "+/broker/#"), SS_FORBIDDEN);
    assert_int_equal(sub(&su, "devices/" DEV "/data"), SS_FORBIDDEN);
    assert_int_equal(pub(&su, "apps/x"), SS_FORBIDDEN);
    assert_int_equal(pub(&su, "devices/" DEV "/commands"), SS_FORBIDDEN);
    assert_int_equal(sub(&pe, "$SYS/#"), SS_FORBIDDEN);
    assert_int_equal(sub(&pe, "readings/#"), SS_FORBIDDEN);
    assert_int_equal(sub(&pe, "#"), SS_FORBIDDEN);
    assert_int_equal(pub(&pe, "apps/x"), SS_FORBIDDEN);
}

/* The store-free check agrees with the rule of aaa_check_data: another
 * org is not found, a device reads nothing and writes its own only. */
static void access_check_data_own(void **state)
{
    (void)state;
    aaa_principal d = device_principal(0), off = device_principal(1);
    aaa_principal r = key_principal(STORE_SCOPE_DATA_READ), w = key_principal(STORE_SCOPE_DATA_WRITE);
    aaa_principal m = key_principal(STORE_SCOPE_MANAGE), su = person_principal(1),
                  pe = person_principal(0);
    assert_int_equal(aaa_check_data_own(&d, ORG, DEV, AAA_DATA_WRITE), 0);
    assert_int_equal(aaa_check_data_own(&d, ORG, DEV, AAA_DATA_SUBSCRIBE), 0);
    assert_int_equal(aaa_check_data_own(&d, ORG, DEV, AAA_DATA_READ), SS_FORBIDDEN);
    assert_int_equal(aaa_check_data_own(&d, ORG, DEV2, AAA_DATA_WRITE), SS_FORBIDDEN);
    assert_int_equal(aaa_check_data_own(&d, ORG, NULL, AAA_DATA_WRITE), SS_FORBIDDEN);
    assert_int_equal(aaa_check_data_own(&d, OTHER_ORG, DEV, AAA_DATA_WRITE), SS_NOT_FOUND);
    assert_int_equal(aaa_check_data_own(&off, ORG, DEV, AAA_DATA_WRITE), SS_AUTH);

    assert_int_equal(aaa_check_data_own(&r, ORG, NULL, AAA_DATA_READ), 0);
    assert_int_equal(aaa_check_data_own(&r, ORG, NULL, AAA_DATA_SUBSCRIBE), 0);
    assert_int_equal(aaa_check_data_own(&r, ORG, NULL, AAA_DATA_WRITE), SS_FORBIDDEN);
    assert_int_equal(aaa_check_data_own(&m, ORG, NULL, AAA_DATA_READ), 0);
    assert_int_equal(aaa_check_data_own(&m, ORG, NULL, AAA_DATA_WRITE), SS_FORBIDDEN);
    assert_int_equal(aaa_check_data_own(&w, ORG, DEV, AAA_DATA_WRITE), 0);
    assert_int_equal(aaa_check_data_own(&w, ORG, NULL, AAA_DATA_READ), SS_FORBIDDEN);
    assert_int_equal(aaa_check_data_own(&w, OTHER_ORG, NULL, AAA_DATA_WRITE), SS_NOT_FOUND);
    assert_int_equal(aaa_check_data_own(&r, OTHER_ORG, NULL, AAA_DATA_READ), SS_NOT_FOUND);

    assert_int_equal(aaa_check_data_own(&su, OTHER_ORG, NULL, AAA_DATA_READ), 0);
    assert_int_equal(aaa_check_data_own(&su, ORG, NULL, AAA_DATA_WRITE), SS_FORBIDDEN);
    assert_int_equal(aaa_check_data_own(&pe, ORG, NULL, AAA_DATA_READ), SS_NOT_FOUND);
}

/* devices/<id>/data and devices/<id>/data/<channel>, nothing else. */
static void acl_data_topics(void **state)
{
    (void)state;
    mqtt_str id = {0}, ch = {0};
    const char *t = "devices/" DEV "/data";
    assert_int_equal(mqtt_acl_data_topic(t, strlen(t), &id, &ch), 1);
    assert_int_equal(id.len, SS_ID_LEN);
    assert_memory_equal(id.p, DEV, SS_ID_LEN);
    assert_int_equal(ch.len, 0);
    t = "devices/" DEV "/data/temp";
    assert_int_equal(mqtt_acl_data_topic(t, strlen(t), &id, &ch), 1);
    assert_int_equal(ch.len, 4);
    assert_memory_equal(ch.p, "temp", 4);
    assert_memory_equal(id.p, DEV, SS_ID_LEN);
    static const char *const not_data[] = {
        "devices/" DEV "/data/",  "devices/" DEV "/data/a/b", "devices/" DEV "/datas",
        "devices/" DEV "/status", "devices/" DEV,             "devices//data",
        "devices/data",           "device/x/data",            "readings/" DEV,
        "devices/",               "x/devices/" DEV "/data",
    };
    for (size_t i = 0; i < sizeof not_data / sizeof not_data[0]; i++)
        assert_int_equal(mqtt_acl_data_topic(not_data[i], strlen(not_data[i]), &id, &ch), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(acl_resolve_devices_me),
        cmocka_unit_test(acl_device_own_subtree_only),
        cmocka_unit_test(acl_device_me_then_check),
        cmocka_unit_test(acl_key_scopes),
        cmocka_unit_test(acl_superadmin_and_persons),
        cmocka_unit_test(access_check_data_own),
        cmocka_unit_test(acl_data_topics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
