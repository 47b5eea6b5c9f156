/* dashboards.h — an organisation's dashboards: their JSON (checked on
 * write), their lifecycle (audited), and what a dashboard shows, as an
 * access rule (SPEC §2).
 *
 * A dashboard, as the API takes it (docs/api.md, "Dashboards"):
 *   {"name":…, "kind":"static"|"dynamic",
 *    "device_filter":{"type":"boiler"},      dynamic only: attribute equalities
 *    "widgets":[{"type":"line"|"gauge"|"value"|"table"|"map", "title":…,
 *                "device_id":…,               static (not map) only
 *                "channels":[…],              1..8 names; a map has none
 *                "range":ms, "options":{…}}]}
 * and stores its device filter and widgets as one compact JSON text, the
 * spec (store_dashboards.h).
 *
 * A person with the `dashboard` role in an org sees its dashboards and the
 * data their widgets show, nothing else. A (device, channel) pair is shown
 * by a dashboard of the device's org when a widget of a static dashboard
 * names the device and the channel, or when a dynamic dashboard lets the
 * viewer pick the device (its device filter matches the device's
 * attributes) and one of its widgets names the channel. */
#ifndef SS_AAA_DASHBOARDS_H
#define SS_AAA_DASHBOARDS_H

#include <jansson.h>
#include <stddef.h>

#include "aaa/principal.h"
#include "aaa/service.h"
#include "store/store.h"

/* Room for the reason a body is refused. */
#define AAA_DASHBOARD_WHY_MAX 192

/* Checks a dashboard body and fills out's name, kind and spec (the rest
 * untouched). The devices a static dashboard's widgets name must be
 * devices of org_id. 0; SS_INVAL with why (a sentence naming the field,
 * and the widget by its index); SS_NOT_FOUND with why for a device that
 * is unknown or of another org (the same words either way); or a store
 * error. why: AAA_DASHBOARD_WHY_MAX bytes. */
int aaa_dashboard_parse(store_conn *db, const char *org_id, json_t *body, store_dashboard *out,
                        char *why);

/* The answer for a dashboard: its fields, device filter and widgets, with
 * id, org_id, created_at, updated_at and created_by. NULL on no memory. */
json_t *aaa_dashboard_json(const store_dashboard *d);

/* Lifecycle, each audited (dashboard.create, .update, .delete). create:
 * d has org_id, name, kind and spec; its id, times and creator are set
 * here. update: d as loaded, with the new name, kind and spec; its
 * updated_at is set here. 0, SS_CONFLICT (the org has
 * SS_DASHBOARDS_PER_ORG_MAX), SS_NOT_FOUND or a store error. */
int aaa_dashboard_create(aaa_ctx *cx, store_dashboard *d);
int aaa_dashboard_update(aaa_ctx *cx, store_dashboard *d);
int aaa_dashboard_delete(aaa_ctx *cx, const store_dashboard *d);

/* Loads the dashboard and checks the principal holds at least `min` in
 * its org: the answers of aaa_device_access. */
int aaa_dashboard_access(store_conn *db, const aaa_principal *p, const char *id, store_role min,
                         store_dashboard *out);

/* The spec of d parsed (a new reference: json_decref it); NULL when it is
 * not JSON, which no write leaves. */
json_t *aaa_dashboard_spec(const store_dashboard *d);

/* 1 when the dashboard (spec: aaa_dashboard_spec of it) may show device
 * dev of its org: a static one names it in a widget; a dynamic one's
 * device filter matches its attributes (no filter: every device). */
int aaa_dashboard_shows_device(const store_dashboard *d, json_t *spec, const store_device *dev);

/* *covered = 1 when every one of the n channels of device d (as loaded;
 * its org is d->org_id) is shown by some dashboard of that org; n 0 asks
 * whether any channel of d is. 0 with *covered, or a store error. */
int aaa_dashboard_covers(store_conn *db, const store_device *d, const char *const *channels,
                         size_t n, int *covered);

/* shown[i] = 1 when channel i of the n (n >= 1) of device d is shown by
 * some dashboard of its org, else 0: one reading of the org's dashboards
 * for all n, where a check per channel would read them n times. 0 or a
 * store error. */
int aaa_dashboard_shown(store_conn *db, const store_device *d, const char *const *channels,
                        size_t n, unsigned char *shown);

#endif
