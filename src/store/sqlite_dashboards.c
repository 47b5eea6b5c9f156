/* sqlite_dashboards.c — store_dashboards.h on SQLite: one row a
 * dashboard, its layout a JSON text column. */
#include "store/sqlite_internal.h"

#include <stdlib.h>

static void dashboard_from_row(sqlite3_stmt *st, store_dashboard *d)
{
    sq_col_text(st, 0, d->id, sizeof d->id);
    sq_col_text(st, 1, d->org_id, sizeof d->org_id);
    sq_col_text(st, 2, d->name, sizeof d->name);
    d->kind = sqlite3_column_int(st, 3) == STORE_DASHBOARD_DYNAMIC ? STORE_DASHBOARD_DYNAMIC
                                                                  : STORE_DASHBOARD_STATIC;
    d->created_at = sqlite3_column_int64(st, 4);
    d->updated_at = sqlite3_column_int64(st, 5);
    sq_col_text(st, 6, d->created_by, sizeof d->created_by);
    sq_col_text(st, 7, d->spec, sizeof d->spec);
}

/* Under the write lock: two creates at once cannot both take the last
 * place. */
static int dashboard_room(sq_conn *c, const char *org_id)
{
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    int err = sq_stmt_key(c, STMT_DASHBOARD_COUNT, org_id, &st);
    if (!err)
        err = sq_step_int64(c, STMT_DASHBOARD_COUNT, &n);
    if (!err && n >= (int64_t)SS_DASHBOARDS_PER_ORG_MAX)
        err = SS_CONFLICT;
    return err;
}

static int dashboard_insert(sq_conn *c, const store_dashboard *d)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_DASHBOARD_INSERT, &st);
    if (err)
        return err;
    err = sq_bind_check(
        c, STMT_DASHBOARD_INSERT,
        sq_bind_arr(st, 1, d->id, sizeof d->id) | sq_bind_arr(st, 2, d->org_id, sizeof d->org_id) |
            sq_bind_arr(st, 3, d->name, sizeof d->name) | sqlite3_bind_int(st, 4, (int)d->kind) |
            sqlite3_bind_int64(st, 5, d->created_at) | sqlite3_bind_int64(st, 6, d->updated_at) |
            sq_bind_arr(st, 7, d->created_by, sizeof d->created_by) |
            sq_bind_arr(st, 8, d->spec, sizeof d->spec));
    return err ? err : sq_step_done(c, STMT_DASHBOARD_INSERT);
}

static int sq_dashboard_create(store_engine_conn *ec, const store_dashboard *d)
{
    sq_conn *c = sq_conn_of(ec);
    int err = sq_tx_begin(c);
    if (err)
        return err;
    err = dashboard_room(c, d->org_id);
    if (!err)
        err = dashboard_insert(c, d);
    return sq_tx_end(c, err);
}

static int sq_dashboard_get(store_engine_conn *ec, const char *id, store_dashboard *out)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_row_by_key(c, STMT_DASHBOARD_GET, id, &st);
    if (!err)
        dashboard_from_row(st, out);
    sqlite3_reset(st);
    return err;
}

static int sq_dashboard_update(store_engine_conn *ec, const store_dashboard *d)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_DASHBOARD_UPDATE, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_DASHBOARD_UPDATE,
                        sq_bind_arr(st, 1, d->id, sizeof d->id) |
                            sq_bind_arr(st, 2, d->name, sizeof d->name) |
                            sqlite3_bind_int(st, 3, (int)d->kind) |
                            sq_bind_arr(st, 4, d->spec, sizeof d->spec) |
                            sqlite3_bind_int64(st, 5, d->updated_at));
    return err ? err : sq_step_changed(c, STMT_DASHBOARD_UPDATE);
}

static int sq_dashboard_delete(store_engine_conn *ec, const char *id)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, STMT_DASHBOARD_DELETE, id, &st);
    return err ? err : sq_step_changed(c, STMT_DASHBOARD_DELETE);
}

/* A record is 192 KiB: one on the heap per list call, not per row. */
static int dashboard_rows(sq_conn *c, stmt_id id, store_dashboard_cb cb, void *ctx)
{
    store_dashboard *d = malloc(sizeof *d);
    if (!d) {
        sqlite3_reset(c->stmts[id]);
        return SS_NOMEM;
    }
    int rc;
    while ((rc = sqlite3_step(c->stmts[id])) == SQLITE_ROW) {
        dashboard_from_row(c->stmts[id], d);
        if (cb(ctx, d) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    free(d);
    return sq_rows_end(c, id, rc);
}

static int sq_dashboard_list(store_engine_conn *ec, const char *org_id, const char *after_name,
                             const char *after_id, store_dashboard_cb cb, void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    stmt_id id = after_id ? STMT_DASHBOARD_LIST_AFTER : STMT_DASHBOARD_LIST;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, id, org_id, &st);
    if (!err && after_id)
        err = sq_bind_check(c, id,
                            sq_bind_text(st, 2, after_name ? after_name : "") |
                                sq_bind_text(st, 3, after_id));
    return err ? err : dashboard_rows(c, id, cb, ctx);
}

const store_dashboards_table sq_dashboards_table = {
    .create = sq_dashboard_create,
    .get = sq_dashboard_get,
    .update = sq_dashboard_update,
    .delete_ = sq_dashboard_delete,
    .list = sq_dashboard_list,
};
