/* Unit tests of src/aaa's principals, access checks and lifecycle
 * services, on a real store in a temporary directory: roles through the
 * org tree, key scopes, the superadmin, grant rules, another org's things
 * not found, and a device's and an org's lifecycle (token cache, live
 * connections revoked, audit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "aaa/access.h"
#include "aaa/devices.h"
#include "aaa/keys.h"
#include "aaa/members.h"
#include "aaa/password.h"
#include "aaa/orgs.h"
#include "aaa/principal.h"
#include "aaa/secret.h"
#include "aaa/service.h"
#include "aaa/sessions.h"
#include "aaa/users.h"
#include "core/err.h"

#define NOW 1700000000000LL
#define ABSENT_ID "0123456789abcdef01234567"

typedef struct fixture {
    char dir[64];
    store *s;
    store_conn *db;
    uv_loop_t loop;
    conn_registry *conns;
    device_cache *devices;
    quota *quotas;
    /* the tree: top > mid > leaf, and a stranger org beside it */
    store_org top, mid, leaf, other;
    store_user super, admin, viewer, outsider;
} fixture;

/* One live connection of a test: counts how often it was told to close. */
typedef struct fake_conn {
    conn_reg_entry entry;
    int revoked;
} fake_conn;

static void on_revoked(conn_reg_entry *e)
{
    ((fake_conn *)e->data)->revoked++;
}

static void conn_open(fixture *f, fake_conn *c, const char *principal)
{
    memset(c, 0, sizeof *c);
    c->entry.on_revoked = on_revoked;
    c->entry.data = c;
    conn_registry_add(f->conns, &c->entry, principal);
}

static void add_org(fixture *f, store_org *o, const char *name, const char *parent)
{
    memset(o, 0, sizeof *o);
    secret_new_id(o->id);
    snprintf(o->name, sizeof o->name, "%s", name);
    snprintf(o->parent_id, sizeof o->parent_id, "%s", parent ? parent : "");
    o->created_at = NOW;
    assert_int_equal(store_org_create(f->db, o), SS_OK);
    assert_int_equal(quota_set_org(f->quotas, o->id, o->parent_id), SS_OK);
}

static void add_user(fixture *f, store_user *u, const char *email, int superadmin)
{
    memset(u, 0, sizeof *u);
    secret_new_id(u->id);
    snprintf(u->email, sizeof u->email, "%s", email);
    snprintf(u->pw_hash, sizeof u->pw_hash, "%s", "$argon2id$not-a-real-hash");
    u->superadmin = superadmin;
    u->created_at = NOW;
    assert_int_equal(store_user_create(f->db, u), SS_OK);
}

static aaa_principal person(const store_user *u)
{
    aaa_principal p = {.kind = AAA_PRINCIPAL_PERSON, .user = *u};
    return p;
}

static aaa_principal key_of(const char *org_id, unsigned scopes)
{
    aaa_principal p = {.kind = AAA_PRINCIPAL_KEY};
    secret_new_id(p.key.id);
    snprintf(p.key.org_id, sizeof p.key.org_id, "%s", org_id);
    snprintf(p.key.name, sizeof p.key.name, "%s", "app");
    p.key.scopes = scopes;
    return p;
}

static aaa_ctx ctx_of(fixture *f, const aaa_principal *who)
{
    aaa_ctx cx = {.db = f->db, .devices = f->devices, .conns = f->conns, .quotas = f->quotas,
                  .who = who, .addr = "192.0.2.1", .now_ms = NOW};
    return cx;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    store_options opt = {.url = "sqlite:", .durability = STORE_DURABILITY_NORMAL};
    strcpy(f->dir, "/tmp/ss_test_access_XXXXXX");
    if (!f || secret_init() || !mkdtemp(f->dir))
        return -1;
    opt.data_dir = f->dir;
    char why[256];
    if (store_open(&opt, &f->s, why, sizeof why) || store_conn_acquire(f->s, &f->db) ||
        uv_loop_init(&f->loop) || conn_registry_new(&f->loop, &f->conns) ||
        device_cache_new(&f->devices) || quota_new(&f->quotas))
        return -1;
    add_org(f, &f->top, "top", NULL);
    add_org(f, &f->mid, "mid", f->top.id);
    add_org(f, &f->leaf, "leaf", f->mid.id);
    add_org(f, &f->other, "other", NULL);
    add_user(f, &f->super, "root@example.com", 1);
    add_user(f, &f->admin, "admin@example.com", 0);
    add_user(f, &f->viewer, "viewer@example.com", 0);
    add_user(f, &f->outsider, "outsider@example.com", 0);
    assert_int_equal(store_membership_set(f->db, f->top.id, f->admin.id, STORE_ROLE_ADMIN), 0);
    assert_int_equal(store_membership_set(f->db, f->mid.id, f->viewer.id, STORE_ROLE_VIEWER), 0);
    assert_int_equal(store_membership_set(f->db, f->other.id, f->outsider.id, STORE_ROLE_OWNER),
                     0);
    *state = f;
    return 0;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    fixture *f = *state;
    conn_registry_close(f->conns);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    device_cache_free(f->devices);
    quota_free(f->quotas);
    store_conn_release(f->s, f->db);
    store_close(f->s);
    rm_dir(f->dir);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void role_holds_in_every_descendant(void **state)
{
    fixture *f = *state;
    aaa_principal admin = person(&f->admin), viewer = person(&f->viewer);
    store_role r;
    assert_int_equal(aaa_role_in(f->db, &admin, f->leaf.id, &r), SS_OK);
    assert_int_equal(r, STORE_ROLE_ADMIN);
    assert_int_equal(aaa_role_in(f->db, &viewer, f->leaf.id, &r), SS_OK);
    assert_int_equal(r, STORE_ROLE_VIEWER);
    /* never upward */
    assert_int_equal(aaa_role_in(f->db, &viewer, f->top.id, &r), SS_NOT_FOUND);
    assert_int_equal(aaa_require_role(f->db, &viewer, f->leaf.id, STORE_ROLE_VIEWER, &r), SS_OK);
    assert_int_equal(aaa_require_role(f->db, &viewer, f->leaf.id, STORE_ROLE_EDITOR, NULL),
                     SS_FORBIDDEN);
    assert_int_equal(aaa_require_role(f->db, &admin, f->mid.id, STORE_ROLE_OWNER, NULL),
                     SS_FORBIDDEN);
}

static void another_orgs_things_are_not_found(void **state)
{
    fixture *f = *state;
    aaa_principal admin = person(&f->admin), outsider = person(&f->outsider);
    aaa_ctx cx = ctx_of(f, &admin);
    store_device d, got;
    char token[SECRET_TEXT_MAX];
    assert_int_equal(aaa_device_create(&cx, f->leaf.id, "probe", NULL, NULL, &d, token), SS_OK);
    /* an owner elsewhere: as if neither the org nor the device existed */
    assert_int_equal(aaa_require_role(f->db, &outsider, f->leaf.id, STORE_ROLE_VIEWER, NULL),
                     SS_NOT_FOUND);
    assert_int_equal(aaa_device_access(f->db, &outsider, d.id, STORE_ROLE_VIEWER, &got),
                     SS_NOT_FOUND);
    assert_int_equal(aaa_device_access(f->db, &outsider, ABSENT_ID, STORE_ROLE_VIEWER, &got),
                     SS_NOT_FOUND);
    assert_int_equal(aaa_device_access(f->db, &outsider, "not-an-id", STORE_ROLE_VIEWER, &got),
                     SS_NOT_FOUND);
    assert_int_equal(aaa_check_data(f->db, &outsider, f->leaf.id, d.id, AAA_DATA_READ),
                     SS_NOT_FOUND);
    /* a member of the org: found, and refused only for what the role lacks */
    aaa_principal viewer = person(&f->viewer);
    assert_int_equal(aaa_device_access(f->db, &viewer, d.id, STORE_ROLE_VIEWER, &got), SS_OK);
    assert_string_equal(got.name, "probe");
    assert_int_equal(aaa_device_access(f->db, &viewer, d.id, STORE_ROLE_EDITOR, &got),
                     SS_FORBIDDEN);
    /* a device reaches its own data only */
    aaa_principal dev;
    aaa_principal_device(&dev, d.id, d.org_id, 0);
    assert_int_equal(aaa_check_data(f->db, &dev, d.org_id, d.id, AAA_DATA_WRITE), SS_OK);
    /* SPEC gives a device no read access; on MQTT it subscribes under its
     * own topics only. */
    assert_int_equal(aaa_check_data(f->db, &dev, d.org_id, d.id, AAA_DATA_READ), SS_FORBIDDEN);
    assert_int_equal(aaa_check_data(f->db, &dev, d.org_id, NULL, AAA_DATA_READ), SS_FORBIDDEN);
    assert_int_equal(aaa_check_data(f->db, &dev, d.org_id, d.id, AAA_DATA_SUBSCRIBE), SS_OK);
    assert_int_equal(aaa_check_data(f->db, &dev, d.org_id, ABSENT_ID, AAA_DATA_SUBSCRIBE),
                     SS_FORBIDDEN);
    assert_int_equal(aaa_check_data(f->db, &dev, d.org_id, ABSENT_ID, AAA_DATA_READ),
                     SS_FORBIDDEN);
    assert_int_equal(aaa_check_data(f->db, &dev, f->other.id, NULL, AAA_DATA_READ),
                     SS_NOT_FOUND);
    assert_int_equal(aaa_role_in(f->db, &dev, f->mid.id, &(store_role){0}), SS_NOT_FOUND);
}

static void key_scopes_give_their_roles_in_its_tree(void **state)
{
    fixture *f = *state;
    store_role r;
    aaa_principal reader = key_of(f->mid.id, STORE_SCOPE_DATA_READ);
    aaa_principal manager = key_of(f->mid.id, STORE_SCOPE_MANAGE);
    aaa_principal writer = key_of(f->mid.id, STORE_SCOPE_DATA_WRITE);
    assert_int_equal(aaa_role_in(f->db, &reader, f->leaf.id, &r), SS_OK);
    assert_int_equal(r, STORE_ROLE_VIEWER);
    assert_int_equal(aaa_require_role(f->db, &reader, f->leaf.id, STORE_ROLE_EDITOR, NULL),
                     SS_FORBIDDEN);
    assert_int_equal(aaa_require_role(f->db, &manager, f->mid.id, STORE_ROLE_ADMIN, &r), SS_OK);
    assert_int_equal(r, STORE_ROLE_ADMIN);
    assert_int_equal(aaa_require_role(f->db, &manager, f->mid.id, STORE_ROLE_OWNER, NULL),
                     SS_FORBIDDEN);
    /* above or beside its org: not there at all */
    assert_int_equal(aaa_role_in(f->db, &manager, f->top.id, &r), SS_NOT_FOUND);
    assert_int_equal(aaa_role_in(f->db, &manager, f->other.id, &r), SS_NOT_FOUND);
    assert_int_equal(aaa_role_in(f->db, &manager, ABSENT_ID, &r), SS_NOT_FOUND);
    /* data:write posts and publishes, and reads nothing */
    assert_int_equal(aaa_role_in(f->db, &writer, f->leaf.id, &r), SS_OK);
    assert_int_equal(r, STORE_ROLE_NONE);
    assert_int_equal(aaa_check_data(f->db, &writer, f->leaf.id, NULL, AAA_DATA_WRITE), SS_OK);
    assert_int_equal(aaa_check_data(f->db, &writer, f->leaf.id, NULL, AAA_DATA_READ),
                     SS_FORBIDDEN);
    assert_int_equal(aaa_check_data(f->db, &reader, f->leaf.id, NULL, AAA_DATA_READ), SS_OK);
    assert_int_equal(aaa_check_data(f->db, &reader, f->leaf.id, NULL, AAA_DATA_SUBSCRIBE), SS_OK);
    assert_int_equal(aaa_check_data(f->db, &writer, f->leaf.id, NULL, AAA_DATA_SUBSCRIBE),
                     SS_FORBIDDEN);
    /* the same rule on the loop thread, from the org tree in memory */
    quota *tree;
    assert_int_equal(quota_new(&tree), SS_OK);
    assert_int_equal(quota_set_org(tree, f->top.id, ""), SS_OK);
    assert_int_equal(quota_set_org(tree, f->mid.id, f->top.id), SS_OK);
    assert_int_equal(quota_set_org(tree, f->leaf.id, f->mid.id), SS_OK);
    assert_int_equal(quota_set_org(tree, f->other.id, ""), SS_OK);
    assert_int_equal(aaa_key_may_write(tree, f->mid.id, STORE_SCOPE_DATA_WRITE, f->leaf.id), 0);
    assert_int_equal(aaa_key_may_write(tree, f->mid.id, STORE_SCOPE_DATA_WRITE, f->mid.id), 0);
    assert_int_equal(aaa_key_may_write(tree, f->mid.id, STORE_SCOPE_DATA_WRITE, f->top.id),
                     SS_NOT_FOUND);
    assert_int_equal(aaa_key_may_write(tree, f->mid.id, STORE_SCOPE_DATA_WRITE, f->other.id),
                     SS_NOT_FOUND);
    assert_int_equal(aaa_key_may_write(tree, f->mid.id, STORE_SCOPE_DATA_READ, f->leaf.id),
                     SS_FORBIDDEN);
    quota_free(tree);
    assert_int_equal(aaa_check_data(f->db, &reader, f->leaf.id, NULL, AAA_DATA_WRITE),
                     SS_FORBIDDEN);
    assert_int_equal(aaa_check_data(f->db, &writer, f->top.id, NULL, AAA_DATA_WRITE),
                     SS_NOT_FOUND);
    /* what an ingest gateway acting for the key reads */
    assert_string_equal(aaa_principal_org(&writer), f->mid.id);
    assert_int_equal(aaa_principal_scopes(&writer), STORE_SCOPE_DATA_WRITE);
    assert_int_equal(aaa_key_role(STORE_SCOPE_DATA_READ | STORE_SCOPE_MANAGE), STORE_ROLE_ADMIN);
    assert_int_equal(aaa_scope_parse("data:write"), STORE_SCOPE_DATA_WRITE);
    assert_int_equal(aaa_scope_parse("admin"), 0);
}

static void superadmin_owns_every_org_that_exists(void **state)
{
    fixture *f = *state;
    aaa_principal root = person(&f->super);
    store_role r;
    assert_true(aaa_principal_superadmin(&root));
    assert_int_equal(aaa_require_role(f->db, &root, f->other.id, STORE_ROLE_OWNER, &r), SS_OK);
    assert_int_equal(r, STORE_ROLE_OWNER);
    assert_int_equal(aaa_role_in(f->db, &root, ABSENT_ID, &r), SS_NOT_FOUND);
    assert_int_equal(aaa_role_in(f->db, &root, "../etc", &r), SS_NOT_FOUND);
    aaa_principal admin = person(&f->admin);
    assert_false(aaa_principal_superadmin(&admin));
}

static void grant_rules(void **state)
{
    (void)state;
    assert_null(aaa_grant_refusal(STORE_ROLE_ADMIN, STORE_ROLE_VIEWER, STORE_ROLE_ADMIN));
    assert_null(aaa_grant_refusal(STORE_ROLE_ADMIN, STORE_ROLE_EDITOR, STORE_ROLE_NONE));
    assert_null(aaa_grant_refusal(STORE_ROLE_OWNER, STORE_ROLE_OWNER, STORE_ROLE_VIEWER));
    assert_string_equal(aaa_grant_refusal(STORE_ROLE_ADMIN, STORE_ROLE_NONE, STORE_ROLE_OWNER),
                        "you cannot grant a role above your own");
    assert_string_equal(aaa_grant_refusal(STORE_ROLE_EDITOR, STORE_ROLE_NONE, STORE_ROLE_ADMIN),
                        "you cannot grant a role above your own");
    assert_string_equal(aaa_grant_refusal(STORE_ROLE_ADMIN, STORE_ROLE_OWNER, STORE_ROLE_VIEWER),
                        "only an owner manages owners");
}

/* SPEC §2: owner > admin > editor > viewer > dashboard, each by its name. */
static void roles_in_order_by_name(void **state)
{
    (void)state;
    static const char *const names[] = {"dashboard", "viewer", "editor", "admin", "owner"};
    store_role prev = STORE_ROLE_NONE;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        store_role r = STORE_ROLE_NONE;
        assert_int_equal(aaa_role_parse(names[i], &r), SS_OK);
        assert_true(r > prev);
        assert_string_equal(aaa_role_name(r), names[i]);
        prev = r;
    }
    assert_int_equal(prev, STORE_ROLE_OWNER);
    assert_int_equal(STORE_ROLE_DASHBOARD, STORE_ROLE_NONE + 1);
    store_role r = STORE_ROLE_VIEWER;
    assert_int_equal(aaa_role_parse("none", &r), SS_INVAL);
    assert_int_equal(aaa_role_parse("Dashboard", &r), SS_INVAL);
    assert_string_equal(aaa_role_name(STORE_ROLE_NONE), "none");
    assert_string_equal(aaa_role_name((store_role)(STORE_ROLE_OWNER + 1)), "none");
    /* A dashboard user grants nothing; an admin may grant the role. */
    assert_null(aaa_grant_refusal(STORE_ROLE_ADMIN, STORE_ROLE_NONE, STORE_ROLE_DASHBOARD));
    assert_null(aaa_grant_refusal(STORE_ROLE_ADMIN, STORE_ROLE_VIEWER, STORE_ROLE_DASHBOARD));
    assert_non_null(aaa_grant_refusal(STORE_ROLE_DASHBOARD, STORE_ROLE_NONE, STORE_ROLE_VIEWER));
    /* Keys keep their roles: data:read reads as a viewer. */
    assert_int_equal(aaa_key_role(STORE_SCOPE_DATA_READ), STORE_ROLE_VIEWER);
}

static void member_changes_keep_the_rules(void **state)
{
    fixture *f = *state;
    aaa_principal admin = person(&f->admin);
    aaa_ctx cx = ctx_of(f, &admin);
    /* an admin cannot make an owner, nor lower one */
    assert_int_equal(aaa_member_set_role(&cx, f->mid.id, STORE_ROLE_ADMIN, &f->viewer,
                                         STORE_ROLE_VIEWER, STORE_ROLE_OWNER),
                     SS_FORBIDDEN);
    assert_int_equal(aaa_member_set_role(&cx, f->mid.id, STORE_ROLE_ADMIN, &f->viewer,
                                         STORE_ROLE_VIEWER, STORE_ROLE_EDITOR),
                     SS_OK);
    store_user u;
    store_role role;
    assert_int_equal(aaa_member_load(&cx, f->mid.id, f->viewer.id, &u, &role), SS_OK);
    assert_int_equal(role, STORE_ROLE_EDITOR);
    assert_int_equal(aaa_member_load(&cx, f->leaf.id, f->viewer.id, &u, &role), SS_NOT_FOUND);
    /* the last owner stays */
    aaa_principal owner = person(&f->outsider);
    aaa_ctx ocx = ctx_of(f, &owner);
    assert_int_equal(aaa_member_set_role(&ocx, f->other.id, STORE_ROLE_OWNER, &f->outsider,
                                         STORE_ROLE_OWNER, STORE_ROLE_ADMIN),
                     SS_CONFLICT);
    /* a person no longer there has no role to back an invitation */
    assert_int_equal(aaa_member_set_role(&cx, f->mid.id, STORE_ROLE_ADMIN, &f->viewer,
                                         STORE_ROLE_EDITOR, STORE_ROLE_NONE),
                     SS_OK);
    char actor[48];
    snprintf(actor, sizeof actor, "user:%s", f->viewer.id);
    assert_int_equal(aaa_actor_role(f->db, actor, f->leaf.id, &role), SS_OK);
    assert_int_equal(role, STORE_ROLE_NONE);
    snprintf(actor, sizeof actor, "user:%s", f->admin.id);
    assert_int_equal(aaa_actor_role(f->db, actor, f->leaf.id, &role), SS_OK);
    assert_int_equal(role, STORE_ROLE_ADMIN);
}

typedef struct audit_seen {
    char actions[8][48];
    char actors[8][48];
    size_t n;
} audit_seen;

static int note_audit(void *ctx, const store_audit *a)
{
    audit_seen *seen = ctx;
    if (seen->n < 8) {
        snprintf(seen->actions[seen->n], sizeof seen->actions[0], "%s", a->action);
        snprintf(seen->actors[seen->n], sizeof seen->actors[0], "%s", a->actor);
        seen->n++;
    }
    return 0;
}

static int cache_has(fixture *f, const char *token, device_cache_entry *e)
{
    uint8_t hash[SS_SECRET_HASH_BYTES];
    secret_hash(token, strlen(token), hash);
    return device_cache_lookup(f->devices, hash, e);
}

static void device_lifecycle_follows_cache_and_connections(void **state)
{
    fixture *f = *state;
    aaa_principal admin = person(&f->admin);
    aaa_ctx cx = ctx_of(f, &admin);
    store_device d;
    char token[SECRET_TEXT_MAX];
    device_cache_entry e;
    assert_int_equal(aaa_device_create(&cx, f->leaf.id, "boiler", "cellar", NULL, &d, token), SS_OK);
    assert_int_equal(cache_has(f, token, &e), SS_OK);
    assert_string_equal(e.device_id, d.id);
    assert_string_equal(e.org_id, f->leaf.id);
    assert_false(e.disabled);

    /* disabled: refused by ingest and its connection closed */
    fake_conn live;
    conn_open(f, &live, d.id);
    aaa_device_patch off = {.set_disabled = 1, .disabled = 1};
    assert_int_equal(aaa_device_update(&cx, &d, &off), SS_OK);
    assert_true(d.disabled);
    assert_int_equal(cache_has(f, token, &e), SS_OK);
    assert_true(e.disabled);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(live.revoked, 1);
    assert_false(cx.revoked_self);

    /* rotated: the old token is gone, the new one found */
    char fresh[SECRET_TEXT_MAX];
    assert_int_equal(aaa_device_rotate(&cx, &d, fresh), SS_OK);
    assert_int_equal(cache_has(f, token, &e), SS_NOT_FOUND);
    assert_int_equal(cache_has(f, fresh, &e), SS_OK);

    /* deleted: nothing left to find, the connection closed */
    conn_open(f, &live, d.id);
    assert_int_equal(aaa_device_delete(&cx, &d), SS_OK);
    assert_int_equal(cache_has(f, fresh, &e), SS_NOT_FOUND);
    store_device gone;
    assert_int_equal(store_device_get(f->db, d.id, &gone), SS_NOT_FOUND);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(live.revoked, 1);
    assert_int_equal(conn_registry_count(f->conns, d.id), 0);

    audit_seen seen = {0};
    assert_int_equal(store_audit_list(f->db, f->leaf.id, 0, INT64_MAX, 8, note_audit, &seen), 0);
    assert_int_equal(seen.n, 4);  /* newest first */
    assert_string_equal(seen.actions[0], "device.delete");
    assert_string_equal(seen.actions[1], "device.rotate_token");
    assert_string_equal(seen.actions[2], "device.update");
    assert_string_equal(seen.actions[3], "device.create");
    char actor[48];
    snprintf(actor, sizeof actor, "user:%s", f->admin.id);
    assert_string_equal(seen.actors[0], actor);
}

static void org_delete_takes_its_devices_along(void **state)
{
    fixture *f = *state;
    aaa_principal admin = person(&f->admin);
    aaa_ctx cx = ctx_of(f, &admin);
    store_org branch, twig;
    assert_int_equal(aaa_org_create(&cx, "branch", f->top.id, &branch), SS_OK);
    assert_int_equal(aaa_org_create(&cx, "twig", branch.id, &twig), SS_OK);
    store_device d;
    char token[SECRET_TEXT_MAX];
    assert_int_equal(aaa_device_create(&cx, branch.id, "meter", NULL, NULL, &d, token), SS_OK);
    /* a quota set from above holds in the tree at once */
    store_quota q = {.max_readings_per_day = 10};
    memcpy(q.org_id, twig.id, sizeof q.org_id);
    assert_int_equal(aaa_org_set_quota(&cx, &q), SS_OK);
    assert_int_equal(quota_reserve_readings(f->quotas, twig.id, 11, NOW, NULL), SS_QUOTA);
    assert_int_equal(quota_reserve_readings(f->quotas, twig.id, 10, NOW, NULL), SS_OK);
    quota_finish_readings(f->quotas, twig.id, 10, 0, NOW, NULL);
    store_quota back;
    assert_int_equal(store_quota_get(f->db, twig.id, &back), SS_OK);
    assert_int_equal(back.max_readings_per_day, 10);
    quota_limits limits = {.max_readings_per_day = 10};
    fake_conn live;
    conn_open(f, &live, d.id);
    /* a child org first */
    assert_int_equal(aaa_org_delete(&cx, branch.id), SS_CONFLICT);
    assert_int_equal(aaa_org_delete(&cx, twig.id), SS_OK);
    assert_int_equal(aaa_org_delete(&cx, branch.id), SS_OK);
    device_cache_entry e;
    assert_int_equal(cache_has(f, token, &e), SS_NOT_FOUND);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(live.revoked, 1);
    /* gone from the store and from the quota tree */
    store_org o;
    assert_int_equal(store_org_get(f->db, branch.id, &o), SS_NOT_FOUND);
    assert_int_equal(quota_set_limits(f->quotas, twig.id, &limits), SS_NOT_FOUND);
}

static void revoking_ones_own_key_closes_ones_connection(void **state)
{
    fixture *f = *state;
    aaa_principal admin = person(&f->admin);
    aaa_ctx cx = ctx_of(f, &admin);
    store_apikey k;
    char key[SECRET_TEXT_MAX];
    assert_int_equal(aaa_key_create(&cx, f->mid.id, "ci", STORE_SCOPE_MANAGE, &k, key), SS_OK);
    assert_string_equal(k.created_by, f->admin.id);

    /* the key signs in */
    aaa_principal who;
    assert_int_equal(aaa_authenticate(f->db, NULL, key, strlen(key), 0, NOW, &who), SS_OK);
    assert_int_equal(who.kind, AAA_PRINCIPAL_KEY);
    assert_string_equal(aaa_principal_id(&who), k.id);
    /* never from a cookie, and a wrong one is no credential */
    assert_int_equal(aaa_authenticate(f->db, NULL, key, strlen(key), 1, NOW, &who), SS_AUTH);
    key[strlen(key) - 1] = key[strlen(key) - 1] == '0' ? '1' : '0';
    assert_int_equal(aaa_authenticate(f->db, NULL, key, strlen(key), 0, NOW, &who), SS_AUTH);
    assert_int_equal(who.kind, AAA_PRINCIPAL_KEY);

    /* another org's key is not there; a viewer of its org may not revoke it */
    store_apikey got;
    aaa_principal outsider = person(&f->outsider), viewer = person(&f->viewer);
    assert_int_equal(aaa_key_access(f->db, &outsider, k.id, STORE_ROLE_ADMIN, &got),
                     SS_NOT_FOUND);
    assert_int_equal(aaa_key_access(f->db, &viewer, k.id, STORE_ROLE_ADMIN, &got), SS_FORBIDDEN);
    assert_int_equal(aaa_key_access(f->db, &admin, k.id, STORE_ROLE_ADMIN, &got), SS_OK);

    /* the key revokes itself: its own connection must close too */
    aaa_principal self = {.kind = AAA_PRINCIPAL_KEY, .key = k};
    aaa_ctx kcx = ctx_of(f, &self);
    fake_conn live;
    conn_open(f, &live, k.id);
    assert_int_equal(aaa_key_revoke(&kcx, &k), SS_OK);
    assert_true(kcx.revoked_self);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(live.revoked, 1);
    store_role r;
    char actor[48];
    snprintf(actor, sizeof actor, "apikey:%s", k.id);
    assert_int_equal(aaa_actor_role(f->db, actor, f->mid.id, &r), SS_OK);
    assert_int_equal(r, STORE_ROLE_NONE);
}

static void sessions_sign_in_until_idle(void **state)
{
    fixture *f = *state;
    char token[SECRET_TEXT_MAX];
    store_session s = {.created_at = NOW, .last_seen_at = NOW, .expires_at = NOW + 3600000};
    secret_new(SECRET_PREFIX_SESSION, token, s.token_hash);
    secret_new_id(s.id);
    memcpy(s.user_id, f->viewer.id, sizeof s.user_id);
    assert_int_equal(store_session_create(f->db, &s), SS_OK);
    aaa_session_policy policy = {.idle_ms = 60000};
    aaa_principal who;
    assert_int_equal(aaa_authenticate(f->db, &policy, token, strlen(token), 1, NOW + 1000, &who),
                     SS_OK);
    assert_int_equal(who.kind, AAA_PRINCIPAL_PERSON);
    assert_string_equal(who.user.email, "viewer@example.com");
    assert_string_equal(aaa_principal_org(&who), "");
    /* touched on use, so idle counts from the last use */
    assert_int_equal(aaa_authenticate(f->db, &policy, token, strlen(token), 1, NOW + 50000, &who),
                     SS_OK);
    assert_int_equal(aaa_authenticate(f->db, &policy, token, strlen(token), 1, NOW + 100000,
                                      &who),
                     SS_OK);
    assert_int_equal(aaa_authenticate(f->db, &policy, token, strlen(token), 1, NOW + 200000,
                                      &who),
                     SS_AUTH);
    assert_int_equal(aaa_authenticate(f->db, &policy, "", 0, 0, NOW, &who), SS_AUTH);
}

static void disabling_a_person_ends_their_sessions_and_connections(void **state)
{
    fixture *f = *state;
    aaa_principal root = person(&f->super);
    aaa_ctx cx = ctx_of(f, &root);
    char token[SECRET_TEXT_MAX];
    store_session s = {.created_at = NOW, .last_seen_at = NOW, .expires_at = NOW + 3600000};
    secret_new(SECRET_PREFIX_SESSION, token, s.token_hash);
    secret_new_id(s.id);
    memcpy(s.user_id, f->viewer.id, sizeof s.user_id);
    assert_int_equal(store_session_create(f->db, &s), SS_OK);
    fake_conn live;
    conn_open(f, &live, f->viewer.id);
    int ended = 0;
    assert_int_equal(aaa_user_set_disabled(&cx, &f->super, 1, &ended), SS_CONFLICT);
    assert_int_equal(aaa_user_set_disabled(&cx, &f->viewer, 1, &ended), SS_OK);
    assert_true(ended);
    assert_true(f->viewer.disabled);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(live.revoked, 1);
    aaa_principal who;
    assert_int_equal(aaa_authenticate(f->db, NULL, token, strlen(token), 1, NOW, &who), SS_AUTH);
    /* a disabled person backs no invitation */
    char actor[48];
    store_role r;
    snprintf(actor, sizeof actor, "user:%s", f->viewer.id);
    assert_int_equal(aaa_actor_role(f->db, actor, f->mid.id, &r), SS_OK);
    assert_int_equal(r, STORE_ROLE_NONE);
    /* enabling ends nothing */
    assert_int_equal(aaa_user_set_disabled(&cx, &f->viewer, 0, &ended), SS_OK);
    assert_false(ended);
}

#define PASSWORD "correct horse battery"
#define PEER "192.0.2.7"
#define TTL_MS 3600000LL

/* A throttle that holds back the attempt after a failure, for one second. */
static throttle *strict_throttle(void)
{
    throttle_limits lim = {.account_free = 1, .addr_free = 1, .account_spread = 1,
                           .base_ms = 1000, .max_ms = 1000, .forget_ms = 60000};
    throttle *t = NULL;
    assert_int_equal(throttle_new(&lim, &t), SS_OK);
    return t;
}

static void set_password(fixture *f, const store_user *u)
{
    char hash[STORE_PW_HASH_MAX];
    assert_int_equal(password_hash(PASSWORD, hash), 0);
    assert_int_equal(store_user_set_password(f->db, u->id, hash), SS_OK);
}

static int sign_in(fixture *f, throttle *t, const char *email, const char *password, int64_t now,
                   aaa_principal *out, char token[SECRET_TEXT_MAX], int64_t *retry_ms)
{
    aaa_sign_in_req in = {email, password, PEER, TTL_MS, now};
    return aaa_sign_in(f->db, t, &in, out, token, retry_ms);
}

static int count_session(void *ctx, const store_session *s)
{
    (void)s;
    (*(int *)ctx)++;
    return 0;
}

static int sessions_of(fixture *f, const store_user *u)
{
    int n = 0;
    assert_int_equal(store_session_list_user(f->db, u->id, NOW, count_session, &n), SS_OK);
    return n;
}

static void sign_in_with_the_right_password_starts_a_session(void **state)
{
    fixture *f = *state;
    throttle *t = strict_throttle();
    set_password(f, &f->viewer);
    aaa_principal me, who;
    char token[SECRET_TEXT_MAX];
    int64_t wait = -1;
    /* emails compare in lowercase */
    assert_int_equal(sign_in(f, t, "Viewer@Example.COM", PASSWORD, NOW, &me, token, &wait), SS_OK);
    assert_int_equal(wait, 0);
    assert_int_equal(me.kind, AAA_PRINCIPAL_PERSON);
    assert_string_equal(me.user.id, f->viewer.id);
    assert_string_equal(me.session.user_id, f->viewer.id);
    assert_string_equal(me.session.peer, PEER);
    assert_int_equal(me.session.expires_at, NOW + TTL_MS);
    assert_int_equal(strlen(me.session.csrf), 2 * SS_SECRET_BYTES);
    assert_int_equal(aaa_authenticate(f->db, NULL, token, strlen(token), 0, NOW + 1, &who), SS_OK);
    assert_int_equal(who.kind, AAA_PRINCIPAL_PERSON);
    assert_string_equal(who.session.id, me.session.id);
    assert_int_equal(sessions_of(f, &f->viewer), 1);
    throttle_free(t);
}

static void sign_in_with_a_wrong_password_or_email_is_refused_alike(void **state)
{
    fixture *f = *state;
    throttle *t = NULL;
    assert_int_equal(throttle_new(NULL, &t), SS_OK);
    set_password(f, &f->viewer);
    aaa_principal me;
    char token[SECRET_TEXT_MAX];
    int64_t wait = -1;
    assert_int_equal(sign_in(f, t, "viewer@example.com", "not the password", NOW, &me, token,
                             &wait),
                     SS_AUTH);
    /* loaded, so a PERSON: the union holds its user */
    assert_int_equal(me.kind, AAA_PRINCIPAL_PERSON);
    assert_int_equal(sign_in(f, t, "nobody@example.com", PASSWORD, NOW, &me, token, &wait),
                     SS_AUTH);
    assert_int_equal(me.kind, AAA_PRINCIPAL_NONE);
    assert_int_equal(sessions_of(f, &f->viewer), 0);
    throttle_free(t);
}

static void sign_in_is_throttled_before_the_password_is_checked(void **state)
{
    fixture *f = *state;
    throttle *t = strict_throttle();
    set_password(f, &f->viewer);
    aaa_principal me;
    char token[SECRET_TEXT_MAX];
    int64_t wait = 0;
    assert_int_equal(sign_in(f, t, "viewer@example.com", "wrong one", NOW, &me, token, &wait),
                     SS_AUTH);
    /* even the right password waits now, and no session starts */
    assert_int_equal(sign_in(f, t, "viewer@example.com", PASSWORD, NOW + 1, &me, token, &wait),
                     SS_BUSY);
    assert_true(wait > 0 && wait <= 1000);
    assert_int_equal(sessions_of(f, &f->viewer), 0);
    assert_int_equal(sign_in(f, t, "viewer@example.com", PASSWORD, NOW + 1 + wait, &me, token,
                             &wait),
                     SS_OK);
    assert_int_equal(wait, 0);
    throttle_free(t);
}

static void a_disabled_person_cannot_sign_in(void **state)
{
    fixture *f = *state;
    throttle *t = strict_throttle();
    set_password(f, &f->viewer);
    assert_int_equal(store_user_set_disabled(f->db, f->viewer.id, 1), SS_OK);
    aaa_principal me;
    char token[SECRET_TEXT_MAX];
    int64_t wait = 0;
    assert_int_equal(sign_in(f, t, "viewer@example.com", PASSWORD, NOW, &me, token, &wait),
                     SS_AUTH);
    assert_int_equal(sessions_of(f, &f->viewer), 0);
    throttle_free(t);
}

static void sign_out_and_session_end(void **state)
{
    fixture *f = *state;
    throttle *t = strict_throttle();
    set_password(f, &f->viewer);
    aaa_principal one, two, who;
    char token_one[SECRET_TEXT_MAX], token_two[SECRET_TEXT_MAX];
    int64_t wait = 0;
    assert_int_equal(sign_in(f, t, "viewer@example.com", PASSWORD, NOW, &one, token_one, &wait),
                     SS_OK);
    assert_int_equal(sign_in(f, t, "viewer@example.com", PASSWORD, NOW, &two, token_two, &wait),
                     SS_OK);
    assert_int_equal(sessions_of(f, &f->viewer), 2);
    /* only one's own sessions, by a well-formed id */
    aaa_principal other = person(&f->outsider);
    assert_int_equal(aaa_session_end(f->db, &other, two.session.id), SS_NOT_FOUND);
    assert_int_equal(aaa_session_end(f->db, &one, "not-an-id"), SS_NOT_FOUND);
    assert_int_equal(aaa_session_end(f->db, &one, two.session.id), SS_OK);
    assert_int_equal(aaa_authenticate(f->db, NULL, token_two, strlen(token_two), 0, NOW, &who),
                     SS_AUTH);
    assert_int_equal(aaa_session_end(f->db, &one, two.session.id), SS_NOT_FOUND);
    assert_int_equal(aaa_sign_out(f->db, &one), SS_OK);
    assert_int_equal(aaa_authenticate(f->db, NULL, token_one, strlen(token_one), 0, NOW, &who),
                     SS_AUTH);
    assert_int_equal(aaa_sign_out(f->db, &one), SS_OK);  /* ended already */
    assert_int_equal(sessions_of(f, &f->viewer), 0);
    /* a key has no login session */
    aaa_principal k = key_of(f->top.id, STORE_SCOPE_MANAGE);
    assert_int_equal(aaa_sign_out(f->db, &k), SS_FORBIDDEN);
    assert_int_equal(aaa_session_end(f->db, &k, one.session.id), SS_FORBIDDEN);
    throttle_free(t);
}

static void change_password_refuses_a_key(void **state)
{
    fixture *f = *state;
    aaa_principal k = key_of(f->top.id, STORE_SCOPE_MANAGE);
    aaa_ctx cx = ctx_of(f, &k);
    int ended = 1;
    assert_int_equal(aaa_user_change_password(&cx, PASSWORD, "a new long password", &ended),
                     SS_FORBIDDEN);
    assert_false(ended);
}

static void only_the_superadmin(void **state)
{
    fixture *f = *state;
    aaa_principal root = person(&f->super), admin = person(&f->admin);
    aaa_principal k = key_of(f->top.id, STORE_SCOPE_MANAGE);
    assert_int_equal(aaa_require_superadmin(&root), SS_OK);
    assert_int_equal(aaa_require_superadmin(&admin), SS_FORBIDDEN);
    assert_int_equal(aaa_require_superadmin(&k), SS_FORBIDDEN);
}

static void only_the_superadmin_creates_top_level_orgs(void **state)
{
    fixture *f = *state;
    aaa_principal root = person(&f->super), admin = person(&f->admin);
    aaa_principal viewer = person(&f->viewer), outsider = person(&f->outsider);
    aaa_principal k = key_of(f->top.id, STORE_SCOPE_MANAGE);
    const char *why = "unset";
    assert_int_equal(aaa_may_create_org(f->db, &root, NULL, &why), SS_OK);
    assert_null(why);
    assert_int_equal(aaa_may_create_org(f->db, &admin, NULL, &why), SS_FORBIDDEN);
    assert_string_equal(why, "only the superadmin creates top-level organisations");
    assert_int_equal(aaa_may_create_org(f->db, &k, NULL, &why), SS_FORBIDDEN);
    /* below an org: its admins (and a manage key of it) */
    assert_int_equal(aaa_may_create_org(f->db, &admin, f->mid.id, &why), SS_OK);
    assert_int_equal(aaa_may_create_org(f->db, &k, f->leaf.id, &why), SS_OK);
    assert_int_equal(aaa_may_create_org(f->db, &viewer, f->mid.id, &why), SS_FORBIDDEN);
    assert_null(why);
    assert_int_equal(aaa_may_create_org(f->db, &outsider, f->top.id, &why), SS_NOT_FOUND);
    assert_int_equal(aaa_may_create_org(f->db, &root, ABSENT_ID, &why), SS_NOT_FOUND);
}

static void a_quota_is_set_from_above(void **state)
{
    fixture *f = *state;
    aaa_principal root = person(&f->super), admin = person(&f->admin);
    aaa_principal viewer = person(&f->viewer), outsider = person(&f->outsider);
    aaa_principal manage = key_of(f->top.id, STORE_SCOPE_MANAGE);
    aaa_principal writer = key_of(f->top.id, STORE_SCOPE_DATA_WRITE);
    char in[SS_ID_LEN + 1];
    const char *why = "unset";
    assert_int_equal(aaa_may_set_quota(f->db, &root, &f->top, in, &why), SS_OK);
    assert_string_equal(in, "");
    assert_null(why);
    /* an admin of the parent, acting there */
    assert_int_equal(aaa_may_set_quota(f->db, &admin, &f->mid, in, &why), SS_OK);
    assert_string_equal(in, f->top.id);
    assert_int_equal(aaa_may_set_quota(f->db, &manage, &f->leaf, in, &why), SS_OK);
    assert_string_equal(in, f->mid.id);
    /* never the org's own admins at the top */
    assert_int_equal(aaa_may_set_quota(f->db, &admin, &f->top, in, &why), SS_FORBIDDEN);
    assert_string_equal(why, "only the superadmin sets a top-level quota");
    assert_string_equal(in, f->top.id);
    /* a viewer of the parent: standing in the org, refused by role */
    assert_int_equal(aaa_may_set_quota(f->db, &viewer, &f->leaf, in, &why), SS_FORBIDDEN);
    assert_null(why);
    assert_string_equal(in, f->leaf.id);
    /* no standing in the org: nothing to see */
    assert_int_equal(aaa_may_set_quota(f->db, &outsider, &f->mid, in, &why), SS_NOT_FOUND);
    assert_string_equal(in, "");
    assert_int_equal(aaa_may_set_quota(f->db, &writer, &f->top, in, &why), SS_FORBIDDEN);
    assert_null(why);
    assert_string_equal(in, "");
}

typedef struct seen_orgs {
    int n;
    char ids[8][SS_ID_LEN + 1];
} seen_orgs;

static int see_org(void *ctx, const store_org *org)
{
    seen_orgs *s = ctx;
    if (s->n < 8)
        snprintf(s->ids[s->n], sizeof s->ids[0], "%s", org->id);
    s->n++;
    return 0;
}

static int seen(const seen_orgs *s, const store_org *org)
{
    for (int i = 0; i < s->n && i < 8; i++)
        if (strcmp(s->ids[i], org->id) == 0)
            return 1;
    return 0;
}

static void a_key_lists_its_org_and_the_orgs_below(void **state)
{
    fixture *f = *state;
    aaa_principal root = person(&f->super), viewer = person(&f->viewer);
    aaa_principal k = key_of(f->mid.id, STORE_SCOPE_DATA_READ);
    aaa_principal dev;
    aaa_principal_device(&dev, ABSENT_ID, f->mid.id, 0);
    seen_orgs s = {0};
    assert_int_equal(aaa_list_orgs(f->db, &k, see_org, &s), SS_OK);
    assert_int_equal(s.n, 2);
    assert_true(seen(&s, &f->mid) && seen(&s, &f->leaf));
    memset(&s, 0, sizeof s);
    assert_int_equal(aaa_list_orgs(f->db, &viewer, see_org, &s), SS_OK);
    assert_int_equal(s.n, 2);
    assert_true(seen(&s, &f->mid) && seen(&s, &f->leaf));
    memset(&s, 0, sizeof s);
    assert_int_equal(aaa_list_orgs(f->db, &root, see_org, &s), SS_OK);
    assert_int_equal(s.n, 4);
    assert_int_equal(aaa_list_orgs(f->db, &dev, see_org, &s), SS_FORBIDDEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(role_holds_in_every_descendant, setup, teardown),
        cmocka_unit_test_setup_teardown(another_orgs_things_are_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(key_scopes_give_their_roles_in_its_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(superadmin_owns_every_org_that_exists, setup, teardown),
        cmocka_unit_test(grant_rules),
        cmocka_unit_test(roles_in_order_by_name),
        cmocka_unit_test_setup_teardown(member_changes_keep_the_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(device_lifecycle_follows_cache_and_connections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(org_delete_takes_its_devices_along, setup, teardown),
        cmocka_unit_test_setup_teardown(revoking_ones_own_key_closes_ones_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(sessions_sign_in_until_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(disabling_a_person_ends_their_sessions_and_connections,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(sign_in_with_the_right_password_starts_a_session, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(sign_in_with_a_wrong_password_or_email_is_refused_alike,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(sign_in_is_throttled_before_the_password_is_checked,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_disabled_person_cannot_sign_in, setup, teardown),
        cmocka_unit_test_setup_teardown(sign_out_and_session_end, setup, teardown),
        cmocka_unit_test_setup_teardown(change_password_refuses_a_key, setup, teardown),
        cmocka_unit_test_setup_teardown(only_the_superadmin, setup, teardown),
        cmocka_unit_test_setup_teardown(only_the_superadmin_creates_top_level_orgs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_quota_is_set_from_above, setup, teardown),
        cmocka_unit_test_setup_teardown(a_key_lists_its_org_and_the_orgs_below, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
