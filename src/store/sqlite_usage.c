/* sqlite_usage.c — store_usage.h on SQLite: usage rows per org, hour and
 * protocol, and session records. */
#include "store/sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#define LOG_MOD SQ_LOG_MOD

/* ---- usage ------------------------------------------------------------------------ */

/* SS_INVAL for an unterminated string, an empty protocol or a bucket that
 * is not an hour start. */
static int usage_delta_check(const store_usage *u)
{
    if (!sq_arr_ok(u->org_id, sizeof u->org_id) || !sq_arr_ok(u->protocol, sizeof u->protocol) ||
        u->protocol[0] == '\0')
        return SS_INVAL;
    return sq_hour_of(u->bucket) == u->bucket ? SS_OK : SS_INVAL;
}

static int usage_add_one(sq_conn *c, sqlite3_stmt *st, const store_usage *u)
{
    int err = sq_bind_check(
        c, STMT_USAGE_ADD,
        sq_bind_arr(st, 1, u->org_id, sizeof u->org_id) | sqlite3_bind_int64(st, 2, u->bucket) |
            sq_bind_arr(st, 3, u->protocol, sizeof u->protocol) |
            sqlite3_bind_int64(st, 4, u->bytes_in) | sqlite3_bind_int64(st, 5, u->bytes_out) |
            sqlite3_bind_int64(st, 6, u->messages) | sqlite3_bind_int64(st, 7, u->readings) |
            sqlite3_bind_int64(st, 8, u->rejected) | sqlite3_bind_int64(st, 9, u->api_requests));
    return err ? err : sq_step_done(c, STMT_USAGE_ADD);
}

/* Every delta is checked before the transaction starts: a bad one writes
 * nothing. */
static int sq_usage_add(store_engine_conn *ec, const store_usage *deltas, size_t n)
{
    sq_conn *c = sq_conn_of(ec);
    if (n > 0 && !deltas)
        return SS_INVAL;
    for (size_t i = 0; i < n; i++) {
        if (usage_delta_check(&deltas[i]))
            return SS_INVAL;
    }
    if (n == 0)
        return SS_OK;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_USAGE_ADD, &st);
    if (!err)
        err = sq_tx_begin(c);
    if (err)
        return err;
    for (size_t i = 0; i < n && !err; i++)
        err = usage_add_one(c, st, &deltas[i]);
    return sq_tx_end(c, err);
}

/* The query text for n_orgs orgs (1 <= n_orgs <= USAGE_QUERY_ORGS_MAX):
 * ?1 bucket width, ?2 from, ?3 to, ?4... the org ids. The bucket is the
 * floor of the hour to a multiple of the width. */
static void usage_query_sql(char *sql, size_t cap, size_t n_orgs)
{
    int len = snprintf(sql, cap,
                       "SELECT hour - ((hour %% ?1) + ?1) %% ?1 AS b, protocol,"
                       " sum(bytes_in), sum(bytes_out), sum(messages), sum(readings),"
                       " sum(rejected), sum(api_requests) FROM usage"
                       " WHERE hour >= ?2 AND hour < ?3 AND org_id IN (");
    for (size_t i = 0; i < n_orgs; i++)
        len += snprintf(sql + len, cap - (size_t)len, "%s?%zu", i ? "," : "", i + 4);
    snprintf(sql + len, cap - (size_t)len, ") GROUP BY b, protocol ORDER BY b, protocol");
}

static int usage_query_bind(sqlite3_stmt *st, const char *const *org_ids, size_t n_orgs,
                            int64_t from, int64_t to, int64_t every_ms)
{
    int rc = sqlite3_bind_int64(st, 1, every_ms) | sqlite3_bind_int64(st, 2, from) |
             sqlite3_bind_int64(st, 3, to);
    for (size_t i = 0; i < n_orgs; i++)
        rc |= sq_bind_text(st, (int)i + 4, org_ids[i]);
    return rc;
}

static void usage_from_row(sqlite3_stmt *st, const char *org_id, store_usage *u)
{
    snprintf(u->org_id, sizeof u->org_id, "%s", org_id);
    u->bucket = sqlite3_column_int64(st, 0);
    sq_col_text(st, 1, u->protocol, sizeof u->protocol);
    u->bytes_in = sqlite3_column_int64(st, 2);
    u->bytes_out = sqlite3_column_int64(st, 3);
    u->messages = sqlite3_column_int64(st, 4);
    u->readings = sqlite3_column_int64(st, 5);
    u->rejected = sqlite3_column_int64(st, 6);
    u->api_requests = sqlite3_column_int64(st, 7);
}

/* SQLITE_DONE at the end or when the callback stops, else the step's
 * error. */
static int usage_rows(sqlite3_stmt *st, const char *org_id, store_usage_cb cb, void *ctx)
{
    int rc;
    store_usage u;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        usage_from_row(st, org_id, &u);
        if (cb(ctx, &u) != 0)
            return SQLITE_DONE;
    }
    return rc;
}

static int usage_query_args_check(const char *const *org_ids, size_t n_orgs, int64_t every_ms)
{
    if (every_ms != STORE_HOUR_MS && every_ms != STORE_DAY_MS)
        return SS_INVAL;
    if (n_orgs > USAGE_QUERY_ORGS_MAX || (n_orgs > 0 && !org_ids))
        return SS_INVAL;
    for (size_t i = 0; i < n_orgs; i++) {
        if (!org_ids[i] || strnlen(org_ids[i], SS_ID_LEN + 1) > SS_ID_LEN)
            return SS_INVAL;
    }
    return SS_OK;
}

/* Its text depends on the number of orgs, so the statement is prepared
 * per call: a usage report is a rare request, not the ingest path. No orgs
 * sum to nothing: no rows. */
static int sq_usage_query(store_engine_conn *ec, const char *const *org_ids, size_t n_orgs,
                          int64_t from, int64_t to, int64_t every_ms, store_usage_cb cb, void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    int err = usage_query_args_check(org_ids, n_orgs, every_ms);
    if (err || n_orgs == 0)
        return err;
    char *sql = malloc(USAGE_QUERY_SQL_MAX);
    if (!sql)
        return SS_NOMEM;
    usage_query_sql(sql, USAGE_QUERY_SQL_MAX, n_orgs);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    free(sql);
    if (rc == SQLITE_OK)
        rc = usage_query_bind(st, org_ids, n_orgs, from, to, every_ms);
    if (rc == SQLITE_OK)
        rc = usage_rows(st, org_ids[0], cb, ctx);
    err = rc == SQLITE_DONE ? SS_OK : sq_err(c, rc, "usage query");
    sqlite3_finalize(st);
    return err;
}

static int sq_usage_day(store_engine_conn *ec, int64_t day_start, store_usage_cb cb, void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    if (day_start > INT64_MAX - STORE_DAY_MS)
        return SS_INVAL;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_USAGE_DAY, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_USAGE_DAY,
                        sqlite3_bind_int64(st, 1, day_start) |
                            sqlite3_bind_int64(st, 2, day_start + STORE_DAY_MS));
    if (err)
        return err;
    int rc;
    store_usage u = {.bucket = day_start};
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sq_col_text(st, 0, u.org_id, sizeof u.org_id);
        u.readings = sqlite3_column_int64(st, 1);
        u.bytes_in = sqlite3_column_int64(st, 2);
        if (cb(ctx, &u) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, STMT_USAGE_DAY, rc);
}

/* ---- session records ---------------------------------------------------------------- */

/* SS_INVAL for an empty id or kind, or any unterminated string. */
int sq_acct_check(const store_acct_session *s)
{
    int ok = sq_arr_ok(s->id, sizeof s->id) && sq_arr_ok(s->kind, sizeof s->kind) &&
             sq_arr_ok(s->principal_id, sizeof s->principal_id) &&
             sq_arr_ok(s->org_id, sizeof s->org_id) && sq_arr_ok(s->protocol, sizeof s->protocol) &&
             sq_arr_ok(s->addr, sizeof s->addr) && sq_arr_ok(s->end_reason, sizeof s->end_reason);
    return ok && s->id[0] && s->kind[0] ? SS_OK : SS_INVAL;
}

/* Binds the record's columns (?1 to ?15) and, for STMT_ACCT_COMMIT, the
 * readings (?16) and messages (?17) the batches stored, and runs the
 * statement. */
static int acct_write(sq_conn *c, stmt_id id, const store_acct_session *s, int64_t messages,
                      int64_t stored)
{
    sqlite3_stmt *st = NULL;
    int serr = sq_stmt_get(c, id, &st);
    if (serr)
        return serr;
    int rc = sq_bind_arr(st, 1, s->id, sizeof s->id) | sq_bind_arr(st, 2, s->kind, sizeof s->kind) |
             sq_bind_arr(st, 3, s->principal_id, sizeof s->principal_id) |
             sq_bind_arr(st, 4, s->org_id, sizeof s->org_id) |
             sq_bind_arr(st, 5, s->protocol, sizeof s->protocol) |
             sq_bind_arr(st, 6, s->addr, sizeof s->addr) |
             sqlite3_bind_int64(st, 7, s->started_at) | sqlite3_bind_int64(st, 8, s->ended_at) |
             sq_bind_arr(st, 9, s->end_reason, sizeof s->end_reason);
    rc |= sqlite3_bind_int64(st, 10, s->bytes_in) | sqlite3_bind_int64(st, 11, s->bytes_out) |
          sqlite3_bind_int64(st, 12, s->messages) | sqlite3_bind_int64(st, 13, s->readings) |
          sqlite3_bind_int64(st, 14, s->refused) | sqlite3_bind_int64(st, 15, s->api_requests);
    if (id == STMT_ACCT_COMMIT)
        rc |= sqlite3_bind_int64(st, 16, stored) | sqlite3_bind_int64(st, 17, messages);
    int err = sq_bind_check(c, id, rc);
    return err ? err : sq_step_done(c, id);
}

int sq_acct_count_commit(sq_conn *c, const store_acct_session *s, int64_t messages,
                         int64_t readings)
{
    return acct_write(c, STMT_ACCT_COMMIT, s, messages, readings);
}

/* Every record is checked before the transaction starts. */
static int sq_acct_session_put(store_engine_conn *ec, const store_acct_session *s, size_t n)
{
    sq_conn *c = sq_conn_of(ec);
    if (n > 0 && !s)
        return SS_INVAL;
    for (size_t i = 0; i < n; i++) {
        if (sq_acct_check(&s[i]))
            return SS_INVAL;
    }
    if (n == 0)
        return SS_OK;
    int err = sq_tx_begin(c);
    if (err)
        return err;
    for (size_t i = 0; i < n && !err; i++)
        err = acct_write(c, STMT_ACCT_UPSERT, &s[i], 0, 0);
    return sq_tx_end(c, err);
}

static void acct_from_row(sqlite3_stmt *st, store_acct_session *s)
{
    sq_col_text(st, 0, s->id, sizeof s->id);
    sq_col_text(st, 1, s->kind, sizeof s->kind);
    sq_col_text(st, 2, s->principal_id, sizeof s->principal_id);
    sq_col_text(st, 3, s->org_id, sizeof s->org_id);
    sq_col_text(st, 4, s->protocol, sizeof s->protocol);
    sq_col_text(st, 5, s->addr, sizeof s->addr);
    s->started_at = sqlite3_column_int64(st, 6);
    s->ended_at = sqlite3_column_int64(st, 7);
    sq_col_text(st, 8, s->end_reason, sizeof s->end_reason);
    s->bytes_in = sqlite3_column_int64(st, 9);
    s->bytes_out = sqlite3_column_int64(st, 10);
    s->messages = sqlite3_column_int64(st, 11);
    s->readings = sqlite3_column_int64(st, 12);
    s->refused = sqlite3_column_int64(st, 13);
    s->api_requests = sqlite3_column_int64(st, 14);
}

/* SS_INVAL for a limit of 0, as for the audit log. Records started at the
 * same time come by id, descending. */
static int sq_acct_session_list(store_engine_conn *ec, const char *org_id, const char *kind,
                                int active_only, int64_t before_started, const char *before_id,
                                size_t limit, store_acct_session_cb cb, void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    if (limit == 0)
        return SS_INVAL;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_ACCT_LIST, &st);
    if (err)
        return err;
    int rc = sq_bind_text(st, 1, org_id) |
             (kind ? sq_bind_text(st, 2, kind) : sqlite3_bind_null(st, 2)) |
             sqlite3_bind_int(st, 3, active_only != 0) |
             sqlite3_bind_int64(st, 4, sq_limit_i64(limit)) |
             sqlite3_bind_int64(st, 5, before_started) | sq_bind_text(st, 6, before_id);
    err = sq_bind_check(c, STMT_ACCT_LIST, rc);
    if (err)
        return err;
    store_acct_session s;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        acct_from_row(st, &s);
        if (cb(ctx, &s) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, STMT_ACCT_LIST, rc);
}

static int sq_acct_session_close_stale(store_engine_conn *ec, int64_t now_ms)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_ACCT_CLOSE_STALE, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_ACCT_CLOSE_STALE, sqlite3_bind_int64(st, 1, now_ms));
    return err ? err : sq_step_done(c, STMT_ACCT_CLOSE_STALE);
}

/* ---- the table ---------------------------------------------------------------- */

const store_usage_table sq_usage_table = {
    .usage_add = sq_usage_add,
    .usage_query = sq_usage_query,
    .usage_day = sq_usage_day,
    .acct_session_put = sq_acct_session_put,
    .acct_session_list = sq_acct_session_list,
    .acct_session_close_stale = sq_acct_session_close_stale,
};
