/* store_calls.c — the store_* functions of store_accounts.h, store_series.h,
 * store_usage.h, store_broker.h and store_dashboards.h: each hands its call to the table of the engine serving
 * its concern, with that engine's connection. Nothing else happens here:
 * the calls that write across concerns are in store.c. */
#include "store/store.h"

#include "store/store_internal.h"

/* ---- accounts and metadata --------------------------------------------------- */

int store_user_count(store_conn *c, int64_t *out)
{
    return c->accounts->user_count(c->acc, out);
}

int store_user_create(store_conn *c, const store_user *u)
{
    return c->accounts->user_create(c->acc, u);
}

int store_user_get(store_conn *c, const char *id, store_user *out)
{
    return c->accounts->user_get(c->acc, id, out);
}

int store_user_get_by_email(store_conn *c, const char *email, store_user *out)
{
    return c->accounts->user_get_by_email(c->acc, email, out);
}

int store_user_set_password(store_conn *c, const char *id, const char *pw_hash)
{
    return c->accounts->user_set_password(c->acc, id, pw_hash);
}

int store_user_set_disabled(store_conn *c, const char *id, int disabled)
{
    return c->accounts->user_set_disabled(c->acc, id, disabled);
}

int store_user_unlock_login(store_conn *c, const char *id, int64_t now_ms)
{
    return c->accounts->user_unlock_login(c->acc, id, now_ms);
}

int store_user_in_reach(store_conn *c, const char *admin_id, const char *key_org_id,
                        const char *user_id, int *out)
{
    return c->accounts->user_in_reach(c->acc, admin_id, key_org_id, user_id, out);
}

int store_session_create(store_conn *c, const store_session *s)
{
    return c->accounts->session_create(c->acc, s);
}

int store_session_write_held(store_conn *c, int64_t now_ms)
{
    return c->accounts->session_write_held(c->acc, now_ms);
}

int store_session_get(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES], int64_t now_ms,
                      store_session *out)
{
    return c->accounts->session_get(c->acc, hash, now_ms, out);
}

int store_session_delete(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES])
{
    return c->accounts->session_delete(c->acc, hash);
}

int store_session_delete_user(store_conn *c, const char *user_id,
                              const uint8_t *keep /* SS_SECRET_HASH_BYTES or NULL */)
{
    return c->accounts->session_delete_user(c->acc, user_id, keep);
}

int store_session_touch(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES], int64_t now_ms)
{
    return c->accounts->session_touch(c->acc, hash, now_ms);
}

int store_session_list_user(store_conn *c, const char *user_id, int64_t now_ms, store_session_cb cb,
                            void *ctx)
{
    return c->accounts->session_list_user(c->acc, user_id, now_ms, cb, ctx);
}

int store_session_delete_id(store_conn *c, const char *user_id, const char *id)
{
    return c->accounts->session_delete_id(c->acc, user_id, id);
}

int store_org_create(store_conn *c, const store_org *org)
{
    return c->accounts->org_create(c->acc, org);
}

int store_org_get(store_conn *c, const char *id, store_org *out)
{
    return c->accounts->org_get(c->acc, id, out);
}

int store_org_list(store_conn *c, const char *user_id, store_org_cb cb, void *ctx)
{
    return c->accounts->org_list(c->acc, user_id, cb, ctx);
}

int store_membership_set(store_conn *c, const char *org_id, const char *user_id, store_role role)
{
    return c->accounts->membership_set(c->acc, org_id, user_id, role);
}

int store_role_effective(store_conn *c, const char *user_id, const char *org_id, store_role *out)
{
    return c->accounts->role_effective(c->acc, user_id, org_id, out);
}

int store_org_device_ids(store_conn *c, const char *org_id,
                         int (*cb)(void *ctx, const char *device_id), void *ctx)
{
    return c->accounts->org_device_ids(c->acc, org_id, cb, ctx);
}

int store_org_rename(store_conn *c, const char *id, const char *name)
{
    return c->accounts->org_rename(c->acc, id, name);
}

int store_member_list(store_conn *c, const char *org_id, store_member_cb cb, void *ctx)
{
    return c->accounts->member_list(c->acc, org_id, cb, ctx);
}

int store_membership_change(store_conn *c, const char *org_id, const char *user_id, store_role role)
{
    return c->accounts->membership_change(c->acc, org_id, user_id, role);
}

int store_membership_get(store_conn *c, const char *org_id, const char *user_id, store_role *out)
{
    return c->accounts->membership_get(c->acc, org_id, user_id, out);
}

int store_member_count(store_conn *c, const char *org_id, store_role role, int64_t *out)
{
    return c->accounts->member_count(c->acc, org_id, role, out);
}

int store_membership_list(store_conn *c, const char *user_id, store_membership_cb cb, void *ctx)
{
    return c->accounts->membership_list(c->acc, user_id, cb, ctx);
}

int store_invitation_put(store_conn *c, const store_invitation *inv)
{
    return c->accounts->invitation_put(c->acc, inv);
}

int store_invitation_invite(store_conn *c, const store_user *new_user, store_invitation *inv)
{
    return c->accounts->invitation_invite(c->acc, new_user, inv);
}

int store_invitation_get(store_conn *c, const char *id, store_invitation *out)
{
    return c->accounts->invitation_get(c->acc, id, out);
}

int store_invitation_list_user(store_conn *c, const char *user_id, store_invitation_cb cb,
                               void *ctx)
{
    return c->accounts->invitation_list_user(c->acc, user_id, cb, ctx);
}

int store_invitation_list_org(store_conn *c, const char *org_id, store_invitation_cb cb, void *ctx)
{
    return c->accounts->invitation_list_org(c->acc, org_id, cb, ctx);
}

int store_invitation_delete(store_conn *c, const char *id)
{
    return c->accounts->invitation_delete(c->acc, id);
}

int store_invitation_accept(store_conn *c, const char *id, const char *user_id,
                            store_invitation *out)
{
    return c->accounts->invitation_accept(c->acc, id, user_id, out);
}

int store_org_tree(store_conn *c, int (*cb)(void *ctx, const char *id, const char *parent_id),
                   void *ctx)
{
    return c->accounts->org_tree(c->acc, cb, ctx);
}

int store_org_subtree(store_conn *c, const char *org_id, int (*cb)(void *ctx, const char *id),
                      void *ctx)
{
    return c->accounts->org_subtree(c->acc, org_id, cb, ctx);
}

int store_quota_set(store_conn *c, const store_quota *q)
{
    return c->accounts->quota_set(c->acc, q);
}

int store_quota_get(store_conn *c, const char *org_id, store_quota *out)
{
    return c->accounts->quota_get(c->acc, org_id, out);
}

int store_quota_list(store_conn *c, int (*cb)(void *ctx, const store_quota *q), void *ctx)
{
    return c->accounts->quota_list(c->acc, cb, ctx);
}

int store_apikey_create(store_conn *c, const store_apikey *k)
{
    return c->accounts->apikey_create(c->acc, k);
}

int store_apikey_get(store_conn *c, const char *id, store_apikey *out)
{
    return c->accounts->apikey_get(c->acc, id, out);
}

int store_apikey_get_by_hash(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES],
                             store_apikey *out)
{
    return c->accounts->apikey_get_by_hash(c->acc, hash, out);
}

int store_apikey_list(store_conn *c, const char *org_id, store_apikey_cb cb, void *ctx)
{
    return c->accounts->apikey_list(c->acc, org_id, cb, ctx);
}

int store_apikey_delete(store_conn *c, const char *id)
{
    return c->accounts->apikey_delete(c->acc, id);
}

int store_audit_append(store_conn *c, const store_audit *a)
{
    return c->accounts->audit_append(c->acc, a);
}

int store_audit_list(store_conn *c, const char *org_id, int64_t from, int64_t to, size_t limit,
                     store_audit_cb cb, void *ctx)
{
    return c->accounts->audit_list(c->acc, org_id, from, to, INT64_MAX, INT64_MAX, limit, cb,
                                   ctx);
}

int store_audit_list_before(store_conn *c, const char *org_id, int64_t from, int64_t to,
                            int64_t before_ts, int64_t before_id, size_t limit,
                            store_audit_cb cb, void *ctx)
{
    return c->accounts->audit_list(c->acc, org_id, from, to, before_ts, before_id, limit, cb,
                                   ctx);
}

int store_device_create(store_conn *c, const store_device *d)
{
    return c->accounts->device_create(c->acc, d);
}

int store_device_get(store_conn *c, const char *id, store_device *out)
{
    return c->accounts->device_get(c->acc, id, out);
}

int store_device_list(store_conn *c, const char *org_id, store_device_cb cb, void *ctx)
{
    return c->accounts->device_list(c->acc, org_id, cb, ctx);
}

int store_device_list_all(store_conn *c, store_device_cb cb, void *ctx)
{
    return c->accounts->device_list_all(c->acc, cb, ctx);
}

int store_device_list_after(store_conn *c, const char *org_id, const char *after_name,
                            const char *after_id, store_device_cb cb, void *ctx)
{
    return c->accounts->device_list_after(c->acc, org_id, after_name, after_id, cb, ctx);
}

int store_device_set_seen(store_conn *c, const store_device_seen *rows, size_t n)
{
    return c->accounts->device_set_seen(c->acc, rows, n);
}

int store_device_update(store_conn *c, const store_device *d)
{
    return c->accounts->device_update(c->acc, d);
}

int store_device_set_token(store_conn *c, const char *id, const uint8_t hash[SS_SECRET_HASH_BYTES])
{
    return c->accounts->device_set_token(c->acc, id, hash);
}


/* ---- series and readings ----------------------------------------------------- */

int store_purge_step(store_conn *c, size_t max_rows, size_t *deleted, int *more)
{
    return c->series->purge_step(c->ser, max_rows, deleted, more);
}

int store_purge_pending(store_conn *c, int64_t *series)
{
    return c->series->purge_pending(c->ser, series);
}

int store_write_batches(store_conn *c, const store_batch *batches, size_t n)
{
    return c->series->write_batches(c->ser, batches, n);
}

int store_channel_list(store_conn *c, const char *device_id, store_channel_cb cb, void *ctx)
{
    return c->series->channel_list(c->ser, device_id, cb, ctx);
}

int store_channel_latest(store_conn *c, const char *device_id, store_channel_cb cb, void *ctx)
{
    return c->series->channel_latest(c->ser, device_id, cb, ctx);
}

int store_channel_names(store_conn *c, const char *device_id,
                        int (*cb)(void *ctx, const char *name), void *ctx)
{
    return c->series->channel_names(c->ser, device_id, cb, ctx);
}

int store_query_points(store_conn *c, const store_query *q, store_point_cb cb, void *ctx)
{
    return c->series->query_points(c->ser, q, cb, ctx);
}

int store_query_buckets(store_conn *c, const store_query *q, int64_t every_ms, store_agg fn,
                        store_point_cb cb, void *ctx)
{
    return c->series->query_buckets(c->ser, q, every_ms, fn, cb, ctx);
}

int store_export_page(store_conn *c, const store_export_scan *s, store_export_cursor *cur,
                      store_export_cb cb, void *ctx)
{
    return c->series->export_page(c->ser, s, cur, cb, ctx);
}

int store_delete_readings(store_conn *c, const store_range *r, size_t max_rows, size_t *deleted,
                          int *more)
{
    return c->series->delete_readings(c->ser, r, max_rows, deleted, more);
}

/* ---- usage and session records ----------------------------------------------- */

int store_usage_add(store_conn *c, const store_usage *deltas, size_t n)
{
    return c->usage->usage_add(c->use, deltas, n);
}

int store_usage_query(store_conn *c, const char *const *org_ids, size_t n_orgs, int64_t from,
                      int64_t to, int64_t every_ms, store_usage_cb cb, void *ctx)
{
    return c->usage->usage_query(c->use, org_ids, n_orgs, from, to, every_ms, cb, ctx);
}

int store_usage_day(store_conn *c, int64_t day_start, store_usage_cb cb, void *ctx)
{
    return c->usage->usage_day(c->use, day_start, cb, ctx);
}

int store_acct_session_put(store_conn *c, const store_acct_session *s, size_t n)
{
    return c->usage->acct_session_put(c->use, s, n);
}

int store_acct_session_list(store_conn *c, const char *org_id, const char *kind, int active_only,
                            size_t limit, store_acct_session_cb cb, void *ctx)
{
    return c->usage->acct_session_list(c->use, org_id, kind, active_only, INT64_MAX, "", limit,
                                       cb, ctx);
}

int store_acct_session_list_before(store_conn *c, const char *org_id, const char *kind,
                                   int active_only, int64_t before_started,
                                   const char *before_id, size_t limit,
                                   store_acct_session_cb cb, void *ctx)
{
    return c->usage->acct_session_list(c->use, org_id, kind, active_only, before_started,
                                       before_id, limit, cb, ctx);
}

int store_acct_session_close_stale(store_conn *c, int64_t now_ms)
{
    return c->usage->acct_session_close_stale(c->use, now_ms);
}

/* ---- the broker's state (kept by the accounts engine) ---------------------- */

int store_broker_apply(store_conn *c, const store_broker_change *changes, size_t n)
{
    return c->broker->apply(c->acc, changes, n);
}

int store_broker_message_id_max(store_conn *c, uint64_t *out)
{
    return c->broker->message_id_max(c->acc, out);
}

int store_broker_sessions(store_conn *c, int (*cb)(void *ctx, const store_broker_session *s),
                          void *ctx)
{
    return c->broker->sessions(c->acc, cb, ctx);
}

int store_broker_subs(store_conn *c, int (*cb)(void *ctx, const store_broker_sub *s), void *ctx)
{
    return c->broker->subs(c->acc, cb, ctx);
}

int store_broker_messages(store_conn *c, int (*cb)(void *ctx, const store_broker_message *m),
                          void *ctx)
{
    return c->broker->messages(c->acc, cb, ctx);
}

int store_broker_deliveries(store_conn *c, int (*cb)(void *ctx, const store_broker_delivery *d),
                            void *ctx)
{
    return c->broker->deliveries(c->acc, cb, ctx);
}

int store_broker_inbound_list(store_conn *c, int (*cb)(void *ctx, const store_broker_inbound *i),
                              void *ctx)
{
    return c->broker->inbound_list(c->acc, cb, ctx);
}

int store_broker_retained_list(store_conn *c,
                               int (*cb)(void *ctx, const store_broker_retained *r), void *ctx)
{
    return c->broker->retained_list(c->acc, cb, ctx);
}

/* ---- dashboards (kept by the accounts engine) ------------------------------- */

int store_dashboard_create(store_conn *c, const store_dashboard *d)
{
    return c->dashboards->create(c->acc, d);
}

int store_dashboard_get(store_conn *c, const char *id, store_dashboard *out)
{
    return c->dashboards->get(c->acc, id, out);
}

int store_dashboard_update(store_conn *c, const store_dashboard *d)
{
    return c->dashboards->update(c->acc, d);
}

int store_dashboard_delete(store_conn *c, const char *id)
{
    return c->dashboards->delete_(c->acc, id);
}

int store_dashboard_list(store_conn *c, const char *org_id, const char *after_name,
                         const char *after_id, store_dashboard_cb cb, void *ctx)
{
    return c->dashboards->list(c->acc, org_id, after_name, after_id, cb, ctx);
}
