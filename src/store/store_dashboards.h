/* store_dashboards.h — an organisation's dashboards (SPEC §2): a name, a
 * kind and a layout (its device filter and widgets, as JSON text the
 * caller has checked: aaa/dashboards.h), with who made it and when.
 *
 * Served by the engine that keeps the accounts (store_engine.h), like the
 * broker's state: an org's delete (store_org_delete) removes its
 * dashboards in its own transaction. Conventions: store_base.h. */
#ifndef SS_STORE_DASHBOARDS_H
#define SS_STORE_DASHBOARDS_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "store/store_base.h"

typedef enum {
    STORE_DASHBOARD_STATIC = 0,   /* its widgets name their devices */
    STORE_DASHBOARD_DYNAMIC = 1,  /* the viewer picks the device */
} store_dashboard_kind;

/* About 192 KiB (the layout): callers keep one on the heap. */
typedef struct store_dashboard {
    char id[SS_ID_LEN + 1];
    char org_id[SS_ID_LEN + 1];
    char name[SS_NAME_MAX + 1];
    store_dashboard_kind kind;
    int64_t created_at;
    int64_t updated_at;
    char created_by[48];                    /* an audit actor: "user:<id>", "apikey:<id>" */
    char spec[SS_DASHBOARD_SPEC_MAX + 1];   /* {"device_filter":…,"widgets":[…]} */
} store_dashboard;

typedef int (*store_dashboard_cb)(void *ctx, const store_dashboard *d);

/* SS_NOT_FOUND when org_id names no org; SS_CONFLICT when the org has
 * SS_DASHBOARDS_PER_ORG_MAX already (counted in the insert's
 * transaction); SS_EXISTS for a taken id. */
int store_dashboard_create(store_conn *c, const store_dashboard *d);
int store_dashboard_get(store_conn *c, const char *id, store_dashboard *out);
/* Writes name, kind, spec and updated_at of `d` (matched by d->id; its
 * org, creator and creation time stay). SS_NOT_FOUND when absent. */
int store_dashboard_update(store_conn *c, const store_dashboard *d);
int store_dashboard_delete(store_conn *c, const char *id);
/* The org's dashboards, by name then id: all of them (at most
 * SS_DASHBOARDS_PER_ORG_MAX) when after_id is NULL, else from the one
 * after (after_name, after_id) in that order on (keyset: a page resumes
 * there whatever was added meanwhile). */
int store_dashboard_list(store_conn *c, const char *org_id, const char *after_name,
                         const char *after_id, store_dashboard_cb cb, void *ctx);

/* What an engine that keeps the accounts provides for them: one entry per
 * function above, with the same contract, its own connection first. */
typedef struct store_dashboards_table {
    int (*create)(store_engine_conn *c, const store_dashboard *d);
    int (*get)(store_engine_conn *c, const char *id, store_dashboard *out);
    int (*update)(store_engine_conn *c, const store_dashboard *d);
    int (*delete_)(store_engine_conn *c, const char *id);
    int (*list)(store_engine_conn *c, const char *org_id, const char *after_name,
                const char *after_id, store_dashboard_cb cb, void *ctx);
} store_dashboards_table;

#endif
