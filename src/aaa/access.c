/* access.c — roles through the org tree, key scopes, grant rules. */
#include "aaa/access.h"

#include "aaa/dashboards.h"
#include "aaa/secret.h"
#include "core/err.h"
#include "core/limits.h"

#include <stdio.h>
#include <string.h>

store_role aaa_key_role(unsigned scopes)
{
    if (scopes & STORE_SCOPE_MANAGE)
        return STORE_ROLE_ADMIN;
    if (scopes & STORE_SCOPE_DATA_READ)
        return STORE_ROLE_VIEWER;
    return STORE_ROLE_NONE;
}

int aaa_org_within(store_conn *db, const char *org_id, const char *ancestor, int *within)
{
    char id[SS_ID_LEN + 1];
    snprintf(id, sizeof id, "%s", org_id);
    *within = 0;
    for (int depth = 0; depth < SS_ORG_DEPTH_MAX && id[0]; depth++) {
        if (strcmp(id, ancestor) == 0) {
            *within = 1;
            return 0;
        }
        store_org org;
        int rc = store_org_get(db, id, &org);
        if (rc)
            return rc;
        memcpy(id, org.parent_id, sizeof id);
    }
    return 0;
}

/* The superadmin holds owner in every org that exists. */
static int person_role_in(store_conn *db, const store_user *u, const char *org_id, store_role *r)
{
    if (u->superadmin) {
        store_org org;
        *r = STORE_ROLE_OWNER;
        return store_org_get(db, org_id, &org);
    }
    int rc = store_role_effective(db, u->id, org_id, r);
    return rc == 0 && *r == STORE_ROLE_NONE ? SS_NOT_FOUND : rc;
}

/* A key stands in its org and the orgs below it, nowhere else. */
static int key_role_in(store_conn *db, const store_apikey *k, const char *org_id, store_role *r)
{
    int within = 0;
    int rc = aaa_org_within(db, org_id, k->org_id, &within);
    if (rc == 0 && !within)
        rc = SS_NOT_FOUND;
    *r = rc == 0 ? aaa_key_role(k->scopes) : STORE_ROLE_NONE;
    return rc;
}

int aaa_role_in(store_conn *db, const aaa_principal *p, const char *org_id, store_role *role)
{
    *role = STORE_ROLE_NONE;
    if (!secret_id_valid(org_id))
        return SS_NOT_FOUND;
    switch (p->kind) {
    case AAA_PRINCIPAL_PERSON:
        return person_role_in(db, &p->user, org_id, role);
    case AAA_PRINCIPAL_KEY:
        return key_role_in(db, &p->key, org_id, role);
    case AAA_PRINCIPAL_DEVICE:
        return strcmp(org_id, p->device.org_id) == 0 ? 0 : SS_NOT_FOUND;
    default:
        return SS_NOT_FOUND;
    }
}

int aaa_require_role(store_conn *db, const aaa_principal *p, const char *org_id, store_role min,
                     store_role *role)
{
    store_role r = STORE_ROLE_NONE;
    int rc = aaa_role_in(db, p, org_id, &r);
    if (rc)
        return rc;
    if (r < min)
        return SS_FORBIDDEN;
    if (role)
        *role = r;
    return 0;
}

int aaa_actor_role(store_conn *db, const char *actor, const char *org_id, store_role *out)
{
    static const char user_kind[] = "user:", key_kind[] = "apikey:";
    aaa_principal p = {0};
    int rc = SS_NOT_FOUND;
    *out = STORE_ROLE_NONE;
    if (strncmp(actor, user_kind, sizeof user_kind - 1) == 0) {
        p.kind = AAA_PRINCIPAL_PERSON;
        rc = store_user_get(db, actor + sizeof user_kind - 1, &p.user);
        if (rc == 0 && p.user.disabled)
            return 0;
    } else if (strncmp(actor, key_kind, sizeof key_kind - 1) == 0) {
        p.kind = AAA_PRINCIPAL_KEY;
        rc = store_apikey_get(db, actor + sizeof key_kind - 1, &p.key);
    }
    if (rc == 0)
        rc = aaa_role_in(db, &p, org_id, out);
    return rc == SS_NOT_FOUND ? 0 : rc;
}

const char *aaa_grant_refusal(store_role mine, store_role from, store_role to)
{
    if (to > mine)
        return "you cannot grant a role above your own";
    if ((from == STORE_ROLE_OWNER || to == STORE_ROLE_OWNER) && mine < STORE_ROLE_OWNER)
        return "only an owner manages owners";
    return NULL;
}

/* SPEC gives a device no read access: it writes its readings and, on
 * MQTT, subscribes under its own topics (commands sent to it). */
static int device_checks_data(const aaa_principal *p, const char *org_id, const char *device_id,
                              aaa_data_op op)
{
    if (strcmp(org_id, p->device.org_id) != 0)
        return SS_NOT_FOUND;
    if (p->device.disabled)
        return SS_AUTH;
    if (op == AAA_DATA_READ)
        return SS_FORBIDDEN;
    return device_id && strcmp(device_id, p->device.device_id) == 0 ? 0 : SS_FORBIDDEN;
}

/* A key writes readings with data:write; manage and data:read do not. */
static int key_writes(unsigned scopes)
{
    return (scopes & STORE_SCOPE_DATA_WRITE) != 0;
}

int aaa_key_may_write(quota *orgs, const char *key_org_id, unsigned scopes, const char *org_id)
{
    /* Outside its tree a key stands nowhere: not found, whatever its
     * scopes, as aaa_check_data answers. */
    int within = orgs ? quota_org_within(orgs, org_id, key_org_id)
                      : strcmp(org_id, key_org_id) == 0;
    if (!within)
        return SS_NOT_FOUND;
    return key_writes(scopes) ? 0 : SS_FORBIDDEN;
}

/* The data rule for a key or person holding `r` in the org: read and
 * subscribe as a viewer; write with a key's data:write only. */
static int role_checks_data(const aaa_principal *p, store_role r, aaa_data_op op)
{
    if (op != AAA_DATA_WRITE)
        return r >= STORE_ROLE_VIEWER ? 0 : SS_FORBIDDEN;
    return p->kind == AAA_PRINCIPAL_KEY && key_writes(p->key.scopes) ? 0 : SS_FORBIDDEN;
}

int aaa_check_data(store_conn *db, const aaa_principal *p, const char *org_id,
                   const char *device_id, aaa_data_op op)
{
    if (p->kind == AAA_PRINCIPAL_DEVICE)
        return device_checks_data(p, org_id, device_id, op);
    store_role r = STORE_ROLE_NONE;
    int rc = aaa_role_in(db, p, org_id, &r);
    if (rc)
        return rc;
    return role_checks_data(p, r, op);
}

int aaa_check_data_own(const aaa_principal *p, const char *org_id, const char *device_id,
                       aaa_data_op op)
{
    if (p->kind == AAA_PRINCIPAL_DEVICE)
        return device_checks_data(p, org_id, device_id, op);
    store_role r = STORE_ROLE_NONE;
    if (aaa_principal_superadmin(p))
        r = STORE_ROLE_OWNER;
    else if (p->kind == AAA_PRINCIPAL_KEY && strcmp(org_id, p->key.org_id) == 0)
        r = aaa_key_role(p->key.scopes);
    else
        return SS_NOT_FOUND;
    return role_checks_data(p, r, op);
}

int aaa_check_dashboard_data(store_conn *db, const aaa_principal *p, const store_device *d,
                             const char *const *channels, size_t n)
{
    if (p->kind != AAA_PRINCIPAL_PERSON)
        return aaa_check_data(db, p, d->org_id, d->id, AAA_DATA_READ);
    store_role r = STORE_ROLE_NONE;
    int rc = aaa_role_in(db, p, d->org_id, &r);
    if (rc)
        return rc;
    if (r >= STORE_ROLE_VIEWER)
        return 0;
    /* A dashboard user reads what a dashboard shows, channel by channel:
     * "every channel" is more than any dashboard can be known to show. */
    if (r != STORE_ROLE_DASHBOARD || n == 0)
        return SS_FORBIDDEN;
    int covered = 0;
    rc = aaa_dashboard_covers(db, d, channels, n, &covered);
    if (rc)
        return rc;
    return covered ? 0 : SS_FORBIDDEN;
}

int aaa_device_access(store_conn *db, const aaa_principal *p, const char *device_id,
                      store_role min, store_device *out)
{
    int rc = secret_id_valid(device_id) ? store_device_get(db, device_id, out) : SS_NOT_FOUND;
    if (rc)
        return rc;
    return aaa_require_role(db, p, out->org_id, min, NULL);
}

int aaa_key_access(store_conn *db, const aaa_principal *p, const char *key_id, store_role min,
                   store_apikey *out)
{
    int rc = secret_id_valid(key_id) ? store_apikey_get(db, key_id, out) : SS_NOT_FOUND;
    if (rc)
        return rc;
    return aaa_require_role(db, p, out->org_id, min, NULL);
}

static const char *const role_names[] = {"none", "dashboard", "viewer", "editor", "admin",
                                         "owner"};

const char *aaa_role_name(store_role role)
{
    return role >= STORE_ROLE_NONE && role <= STORE_ROLE_OWNER ? role_names[role] : "none";
}

int aaa_role_parse(const char *name, store_role *out)
{
    for (int i = STORE_ROLE_DASHBOARD; i <= STORE_ROLE_OWNER; i++) {
        if (strcmp(name, role_names[i]) == 0) {
            *out = (store_role)i;
            return SS_OK;
        }
    }
    return SS_INVAL;
}

typedef struct scope_name {
    const char *name;
    unsigned bit;
} scope_name;

static const scope_name scope_names[] = {
    {"data:read", STORE_SCOPE_DATA_READ},
    {"data:write", STORE_SCOPE_DATA_WRITE},
    {"manage", STORE_SCOPE_MANAGE},
};
#define SCOPES (sizeof scope_names / sizeof scope_names[0])

unsigned aaa_scope_parse(const char *name)
{
    for (size_t i = 0; i < SCOPES; i++)
        if (strcmp(name, scope_names[i].name) == 0)
            return scope_names[i].bit;
    return 0;
}

const char *aaa_scope_name(size_t i, unsigned *bit)
{
    if (i >= SCOPES)
        return NULL;
    *bit = scope_names[i].bit;
    return scope_names[i].name;
}

int aaa_require_superadmin(const aaa_principal *p)
{
    return aaa_principal_superadmin(p) ? 0 : SS_FORBIDDEN;
}

static void set_why(const char **why, const char *text)
{
    if (why)
        *why = text;
}

int aaa_may_create_org(store_conn *db, const aaa_principal *p, const char *parent_id,
                       const char **why)
{
    set_why(why, NULL);
    if (parent_id)
        return aaa_require_role(db, p, parent_id, STORE_ROLE_ADMIN, NULL);
    if (aaa_principal_superadmin(p))
        return 0;
    set_why(why, "only the superadmin creates top-level organisations");
    return SS_FORBIDDEN;
}

int aaa_may_set_quota(store_conn *db, const aaa_principal *p, const store_org *org,
                      char *acting_in, const char **why)
{
    acting_in[0] = '\0';
    set_why(why, NULL);
    if (aaa_principal_superadmin(p))
        return 0;
    /* Standing in the org comes first: a stranger learns nothing more. */
    int rc = aaa_require_role(db, p, org->id, STORE_ROLE_DASHBOARD, NULL);
    if (rc)
        return rc;
    snprintf(acting_in, SS_ID_LEN + 1, "%s", org->id);
    if (!org->parent_id[0]) {
        set_why(why, "only the superadmin sets a top-level quota");
        return SS_FORBIDDEN;
    }
    rc = aaa_require_role(db, p, org->parent_id, STORE_ROLE_ADMIN, NULL);
    if (rc == 0)
        snprintf(acting_in, SS_ID_LEN + 1, "%s", org->parent_id);
    return rc;
}

typedef struct key_orgs {
    store_conn *db;
    const char *key_org;
    store_org_cb cb;
    void *ctx;
} key_orgs;

/* An org the key stands in: its own or one below it. */
static int pass_org_of_key(void *ctx, const store_org *org)
{
    key_orgs *k = ctx;
    int within = 0;
    if (aaa_org_within(k->db, org->id, k->key_org, &within) == 0 && within)
        return k->cb(k->ctx, org);
    return 0;
}

int aaa_list_orgs(store_conn *db, const aaa_principal *p, store_org_cb cb, void *ctx)
{
    if (p->kind == AAA_PRINCIPAL_KEY) {
        key_orgs k = {db, p->key.org_id, cb, ctx};
        return store_org_list(db, NULL, pass_org_of_key, &k);
    }
    if (p->kind != AAA_PRINCIPAL_PERSON)
        return SS_FORBIDDEN;
    return store_org_list(db, p->user.superadmin ? NULL : p->user.id, cb, ctx);
}
