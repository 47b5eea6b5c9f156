/* Unit tests of src/aaa/dashboards on a real store in a temporary
 * directory: a body checked field by field (the reason names the field and
 * the widget), another org's device not found, the stored layout rebuilt
 * with its defaults, and the coverage rule (what a dashboard shows: a
 * static one's named device and channels, a dynamic one's filtered
 * devices and every widget's channels; never another org's device). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aaa/dashboards.h"
#include "aaa/secret.h"
#include "core/err.h"
#include "test_dir.h"

#define NOW 1700000000000LL

typedef struct fixture {
    char dir[64];
    store *s;
    store_conn *db;
    store_org org, other;
    store_device boiler, pump, foreign;
    store_user user;
    aaa_principal who;
    store_dashboard *dash;
    char why[AAA_DASHBOARD_WHY_MAX];
} fixture;

static void add_org(fixture *f, store_org *o, const char *name)
{
    memset(o, 0, sizeof *o);
    secret_new_id(o->id);
    snprintf(o->name, sizeof o->name, "%s", name);
    o->created_at = NOW;
    assert_int_equal(store_org_create(f->db, o), SS_OK);
}

static void add_device(fixture *f, store_device *d, const store_org *o, const char *name,
                       const char *attrs)
{
    memset(d, 0, sizeof *d);
    secret_new_id(d->id);
    snprintf(d->org_id, sizeof d->org_id, "%s", o->id);
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->attributes, sizeof d->attributes, "%s", attrs);
    memcpy(d->token_hash, d->id, SS_ID_LEN); /* unique, as the ids are */
    d->created_at = NOW;
    assert_int_equal(store_device_create(f->db, d), SS_OK);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    store_options opt = {.url = "sqlite:", .durability = STORE_DURABILITY_NORMAL};
    if (!f || secret_init())
        return -1;
    strcpy(f->dir, "/tmp/ss_test_dashboards_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    opt.data_dir = f->dir;
    char why[256];
    f->dash = calloc(1, sizeof *f->dash);
    if (!f->dash || store_open(&opt, &f->s, why, sizeof why) ||
        store_conn_acquire(f->s, &f->db))
        return -1;
    add_org(f, &f->org, "home");
    add_org(f, &f->other, "other");
    add_device(f, &f->boiler, &f->org, "boiler", "{\"type\":\"boiler\",\"floor\":2}");
    add_device(f, &f->pump, &f->org, "pump", "{\"type\":\"pump\",\"tags\":[\"wet\",\"loud\"]}");
    add_device(f, &f->foreign, &f->other, "foreign", "{\"type\":\"boiler\"}");
    secret_new_id(f->user.id);
    f->who.kind = AAA_PRINCIPAL_PERSON;
    f->who.user = f->user;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_conn_release(f->s, f->db);
    store_close(f->s);
    rm_dir(f->dir);
    free(f->dash);
    free(f);
    return 0;
}

/* Parses text as a body of org (the fixture's own when NULL). */
static int parse(fixture *f, const char *org_id, const char *text)
{
    json_error_t jerr;
    json_t *body = json_loads(text, 0, &jerr);
    assert_non_null(body);
    f->why[0] = '\0';
    int rc = aaa_dashboard_parse(f->db, org_id ? org_id : f->org.id, body, f->dash, f->why);
    json_decref(body);
    return rc;
}

/* Parses and stores a dashboard of the org. */
static void make(fixture *f, const store_org *o, const char *text)
{
    assert_int_equal(parse(f, o->id, text), SS_OK);
    snprintf(f->dash->org_id, sizeof f->dash->org_id, "%s", o->id);
    aaa_ctx cx = {.db = f->db, .who = &f->who, .addr = "127.0.0.1", .now_ms = NOW};
    assert_int_equal(aaa_dashboard_create(&cx, f->dash), SS_OK);
}

static int covers(fixture *f, const store_device *d, const char *a, const char *b)
{
    const char *channels[2] = {a, b};
    size_t n = b ? 2 : a ? 1 : 0;
    int covered = -1;
    assert_int_equal(aaa_dashboard_covers(f->db, d, channels, n, &covered), SS_OK);
    return covered;
}

static void a_body_is_refused_naming_its_field(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *body;
        const char *words;
    } cases[] = {
        {"{\"kind\":\"static\"}", "name"},
        {"{\"name\":\"n\",\"kind\":\"both\"}", "kind"},
        {"{\"name\":\"n\",\"kind\":\"static\",\"x\":1}", "unknown field 'x'"},
        {"{\"name\":\"n\",\"kind\":\"static\",\"device_filter\":{}}", "device_filter"},
        {"{\"name\":\"n\",\"kind\":\"dynamic\",\"widgets\":[{\"type\":\"line\",\"channels\":"
         "[\"a\"]},{\"type\":\"pie\"}]}",
         "widgets[1].type"},
        {"{\"name\":\"n\",\"kind\":\"dynamic\",\"widgets\":[{\"type\":\"gauge\",\"channels\":"
         "[\"a b\"]}]}",
         "widgets[0].channels"},
        {"{\"name\":\"n\",\"kind\":\"dynamic\",\"widgets\":[{\"type\":\"gauge\",\"channels\":"
         "[\"a\"],\"range\":999}]}",
         "widgets[0].range"},
        {"{\"name\":\"n\",\"kind\":\"static\",\"widgets\":[{\"type\":\"value\",\"channels\":"
         "[\"a\"]}]}",
         "widgets[0].device_id: required"},
        {"{\"name\":\"n\",\"kind\":\"dynamic\",\"widgets\":[{\"type\":\"map\",\"channels\":"
         "[\"a\"]}]}",
         "widgets[0].channels: a map"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(parse(f, NULL, cases[i].body), SS_INVAL);
        assert_non_null(strstr(f->why, cases[i].words));
    }
}

static void another_orgs_device_is_not_found_as_an_unknown_one(void **state)
{
    fixture *f = *state;
    char body[512], first[AAA_DASHBOARD_WHY_MAX];
    snprintf(body, sizeof body,
             "{\"name\":\"n\",\"kind\":\"static\",\"widgets\":[{\"type\":\"line\","
             "\"device_id\":\"%s\",\"channels\":[\"t\"]}]}",
             f->foreign.id);
    assert_int_equal(parse(f, NULL, body), SS_NOT_FOUND);
    snprintf(first, sizeof first, "%s", f->why);
    assert_int_equal(parse(f, NULL,
                           "{\"name\":\"n\",\"kind\":\"static\",\"widgets\":[{\"type\":\"line\","
                           "\"device_id\":\"ffffffffffffffffffffffff\",\"channels\":[\"t\"]}]}"),
                     SS_NOT_FOUND);
    assert_string_equal(f->why, first);
    /* the same device is fine for its own org */
    assert_int_equal(parse(f, f->other.id, body), SS_OK);
}

static void the_stored_layout_is_rebuilt_with_defaults(void **state)
{
    fixture *f = *state;
    char body[512];
    snprintf(body, sizeof body,
             "{\"name\":\"Boiler room\",\"kind\":\"static\",\"id\":\"ignored\","
             "\"widgets\":[{\"type\":\"line\",\"device_id\":\"%s\",\"channels\":[\"t\"]},"
             "{\"type\":\"map\",\"title\":\"where\"}]}",
             f->boiler.id);
    assert_int_equal(parse(f, NULL, body), SS_OK);
    assert_string_equal(f->dash->name, "Boiler room");
    assert_int_equal(f->dash->kind, STORE_DASHBOARD_STATIC);
    char want[512];
    snprintf(want, sizeof want,
             "{\"widgets\":[{\"type\":\"line\",\"title\":\"\",\"device_id\":\"%s\","
             "\"channels\":[\"t\"],\"range\":3600000,\"options\":{}},"
             "{\"type\":\"map\",\"title\":\"where\",\"range\":3600000,\"options\":{}}]}",
             f->boiler.id);
    assert_string_equal(f->dash->spec, want);
}

static void nothing_is_covered_without_dashboards(void **state)
{
    fixture *f = *state;
    assert_int_equal(covers(f, &f->boiler, NULL, NULL), 0);
    assert_int_equal(covers(f, &f->boiler, "temp", NULL), 0);
}

static void a_static_dashboard_covers_its_named_device_and_channels(void **state)
{
    fixture *f = *state;
    char body[512];
    snprintf(body, sizeof body,
             "{\"name\":\"s\",\"kind\":\"static\",\"widgets\":["
             "{\"type\":\"line\",\"device_id\":\"%s\",\"channels\":[\"temp\",\"hum\"]},"
             "{\"type\":\"value\",\"device_id\":\"%s\",\"channels\":[\"flow\"]},"
             "{\"type\":\"map\"}]}",
             f->boiler.id, f->pump.id);
    make(f, &f->org, body);
    assert_int_equal(covers(f, &f->boiler, "temp", NULL), 1);
    assert_int_equal(covers(f, &f->boiler, "temp", "hum"), 1);
    assert_int_equal(covers(f, &f->boiler, NULL, NULL), 1);
    assert_int_equal(covers(f, &f->boiler, "temp", "flow"), 0);  /* flow is the pump's */
    assert_int_equal(covers(f, &f->boiler, "pressure", NULL), 0);
    assert_int_equal(covers(f, &f->pump, "flow", NULL), 1);
    assert_int_equal(covers(f, &f->pump, "temp", NULL), 0);
    assert_int_equal(covers(f, &f->foreign, NULL, NULL), 0);
}

static void a_dynamic_dashboard_covers_the_devices_its_filter_matches(void **state)
{
    fixture *f = *state;
    make(f, &f->org,
         "{\"name\":\"d\",\"kind\":\"dynamic\",\"device_filter\":{\"floor\":2.0},"
         "\"widgets\":[{\"type\":\"gauge\",\"channels\":[\"temp\"]},"
         "{\"type\":\"table\",\"channels\":[\"hum\"]}]}");
    assert_int_equal(covers(f, &f->boiler, "temp", "hum"), 1);
    assert_int_equal(covers(f, &f->boiler, "flow", NULL), 0);
    assert_int_equal(covers(f, &f->pump, "temp", NULL), 0);     /* no floor */
    assert_int_equal(covers(f, &f->foreign, "temp", NULL), 0);  /* another org */
    /* a tag in a list matches; channels covered by two dashboards together */
    make(f, &f->org,
         "{\"name\":\"e\",\"kind\":\"dynamic\",\"device_filter\":{\"tags\":\"loud\"},"
         "\"widgets\":[{\"type\":\"line\",\"channels\":[\"flow\"]}]}");
    assert_int_equal(covers(f, &f->pump, "flow", NULL), 1);
    assert_int_equal(covers(f, &f->pump, "temp", NULL), 0);
    make(f, &f->org,
         "{\"name\":\"f\",\"kind\":\"dynamic\",\"widgets\":[{\"type\":\"line\",\"channels\":"
         "[\"temp\"]}]}");
    assert_int_equal(covers(f, &f->pump, "flow", "temp"), 1);
    assert_int_equal(covers(f, &f->boiler, "flow", NULL), 0);
}

static void a_deleted_dashboard_covers_nothing(void **state)
{
    fixture *f = *state;
    make(f, &f->org,
         "{\"name\":\"d\",\"kind\":\"dynamic\",\"widgets\":[{\"type\":\"line\",\"channels\":"
         "[\"temp\"]}]}");
    assert_int_equal(covers(f, &f->boiler, "temp", NULL), 1);
    aaa_ctx cx = {.db = f->db, .who = &f->who, .addr = "127.0.0.1", .now_ms = NOW};
    assert_int_equal(aaa_dashboard_delete(&cx, f->dash), SS_OK);
    assert_int_equal(covers(f, &f->boiler, "temp", NULL), 0);
}

/* The channels shown, told for all at once: those of two dashboards
 * together, none of another device's or org's. */
static void the_channels_shown_are_told_in_one_pass(void **state)
{
    fixture *f = *state;
    char body[512];
    snprintf(body, sizeof body,
             "{\"name\":\"s\",\"kind\":\"static\",\"widgets\":["
             "{\"type\":\"line\",\"device_id\":\"%s\",\"channels\":[\"temp\"]},"
             "{\"type\":\"value\",\"device_id\":\"%s\",\"channels\":[\"flow\"]}]}",
             f->boiler.id, f->pump.id);
    make(f, &f->org, body);
    make(f, &f->org,
         "{\"name\":\"d\",\"kind\":\"dynamic\",\"device_filter\":{\"floor\":2},"
         "\"widgets\":[{\"type\":\"gauge\",\"channels\":[\"hum\"]}]}");
    const char *names[] = {"temp", "flow", "hum", "pressure"};
    unsigned char shown[4] = {9, 9, 9, 9};
    assert_int_equal(aaa_dashboard_shown(f->db, &f->boiler, names, 4, shown), SS_OK);
    assert_memory_equal(shown, ((unsigned char[]){1, 0, 1, 0}), 4);
    assert_int_equal(aaa_dashboard_shown(f->db, &f->pump, names, 4, shown), SS_OK);
    assert_memory_equal(shown, ((unsigned char[]){0, 1, 0, 0}), 4);
    assert_int_equal(aaa_dashboard_shown(f->db, &f->foreign, names, 4, shown), SS_OK);
    assert_memory_equal(shown, ((unsigned char[]){0, 0, 0, 0}), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(a_body_is_refused_naming_its_field),
        T(another_orgs_device_is_not_found_as_an_unknown_one),
        T(the_stored_layout_is_rebuilt_with_defaults),
        T(nothing_is_covered_without_dashboards),
        T(a_static_dashboard_covers_its_named_device_and_channels),
        T(a_dynamic_dashboard_covers_the_devices_its_filter_matches),
        T(a_deleted_dashboard_covers_nothing),
        T(the_channels_shown_are_told_in_one_pass),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
