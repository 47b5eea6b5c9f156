/* sqlite_sessions.c — people's sessions on SQLite, and the sessions a full
 * disk holds in memory until there is room to write them. */
#include "store/sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#define LOG_MOD SQ_LOG_MOD

/* ---- sessions ------------------------------------------------------------------ */

static int held_deletes_write(sq_conn *c);
static int held_delete_add(sq_store *s, const held_delete *d);
static int session_delete_db(sq_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES]);

/* Sessions held in memory, for sign-in on a full disk (store.h). Every
 * session call looks here first, under held_lock: a held session is never
 * in the database too, since the write that moves it there and its removal
 * from here happen under the same lock. */

static ssize_t held_find(const sq_store *s, const uint8_t hash[SS_SECRET_HASH_BYTES])
{
    for (size_t i = 0; i < s->n_held; i++) {
        if (memcmp(s->held[i].token_hash, hash, SS_SECRET_HASH_BYTES) == 0)
            return (ssize_t)i;
    }
    return -1;
}

static void held_remove(sq_store *s, size_t i)
{
    s->held[i] = s->held[--s->n_held];
}

/* SS_OK once held, SS_FULL when there is no room left for it either. */
static int held_add(sq_store *s, const store_session *sess)
{
    int err = SS_FULL;
    pthread_mutex_lock(&s->held_lock);
    if (s->n_held < STORE_HELD_SESSIONS_MAX) {
        s->held[s->n_held++] = *sess;
        err = SS_OK;
    }
    pthread_mutex_unlock(&s->held_lock);
    if (!err)
        log_info(LOG_MOD, "disk full: a sign-in is kept in memory until space returns");
    return err;
}

static int session_insert(sq_conn *c, const store_session *s)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_SESSION_INSERT, &st);
    if (err)
        return err;
    err = sq_bind_check(
        c, STMT_SESSION_INSERT,
        sq_bind_blob(st, 1, s->token_hash, sizeof s->token_hash) | sq_bind_text(st, 2, s->id) |
            sq_bind_text(st, 3, s->user_id) | sq_bind_text(st, 4, s->csrf) |
            sq_bind_text(st, 5, s->peer) | sqlite3_bind_int64(st, 6, s->created_at) |
            sqlite3_bind_int64(st, 7, s->last_seen_at) | sqlite3_bind_int64(st, 8, s->expires_at));
    return err ? err : sq_step_done(c, STMT_SESSION_INSERT);
}

int sq_session_create(store_engine_conn *ec, const store_session *s)
{
    sq_conn *c = sq_conn_of(ec);
    int err = session_insert(c, s);
    return err == SS_FULL ? held_add(c->owner, s) : err;
}

/* Takes the oldest held session out of the hold once it is in the
 * database. Anything done to it meanwhile (held_lock was not held while it
 * was written) is carried over: a delete deletes the row written, a touch
 * is written too. */
static int held_settle(sq_conn *c, const store_session *h, int written)
{
    sq_store *s = c->owner;
    pthread_mutex_lock(&s->held_lock);
    ssize_t i = held_find(s, h->token_hash);
    int64_t seen = i >= 0 ? s->held[i].last_seen_at : 0;
    if (i >= 0) {
        memmove(&s->held[i], &s->held[i + 1], (s->n_held - (size_t)i - 1) * sizeof s->held[0]);
        s->n_held--;
    }
    pthread_mutex_unlock(&s->held_lock);
    if (!written)
        return SS_OK;
    if (i < 0) {
        int err = session_delete_db(c, h->token_hash);
        if (err && err != SS_NOT_FOUND) {
            /* ended meanwhile, and its row could not go: refused from here */
            held_delete d = {.by_hash = 1};
            memcpy(d.hash, h->token_hash, sizeof d.hash);
            held_delete_add(s, &d);
        }
        return SS_OK;
    }
    if (seen > h->last_seen_at)
        sq_session_touch(sq_ec(c), h->token_hash, seen);
    return SS_OK;
}

/* Moves held sessions to the database, oldest first, until one does not
 * fit; drops those expired meanwhile. held_lock is taken only to copy and
 * to settle, never across a write, which may wait the busy timeout while
 * every request's session look-up needs the lock. */
int sq_session_write_held(store_engine_conn *ec, int64_t now_ms)
{
    sq_conn *c = sq_conn_of(ec);
    sq_store *s = c->owner;
    pthread_mutex_lock(&s->held_write_lock);
    int err = held_deletes_write(c);
    while (err == SS_OK) {
        pthread_mutex_lock(&s->held_lock);
        size_t n = s->n_held;
        store_session h;
        if (n > 0)
            h = s->held[0];
        pthread_mutex_unlock(&s->held_lock);
        if (n == 0)
            break;
        int write = h.expires_at > now_ms;
        err = write ? session_insert(c, &h) : SS_OK;
        if (err == SS_EXISTS || err == SS_NOT_FOUND) {
            err = SS_OK; /* not to be written: an id taken, a user deleted */
            write = 0;
        }
        if (err == SS_OK)
            err = held_settle(c, &h, write);
    }
    pthread_mutex_unlock(&s->held_write_lock);
    return err;
}

/* The held session of this hash, when it has not expired. 1 when found. */
static int held_get(sq_store *s, const uint8_t hash[SS_SECRET_HASH_BYTES], int64_t now_ms,
                    store_session *out)
{
    pthread_mutex_lock(&s->held_lock);
    ssize_t i = held_find(s, hash);
    int found = i >= 0 && s->held[i].expires_at > now_ms;
    if (found)
        *out = s->held[i];
    pthread_mutex_unlock(&s->held_lock);
    return found;
}

/* Removes the held sessions matching; the number removed. */
static size_t held_drop(sq_store *s, const uint8_t *hash, const char *user_id, const char *id,
                        const uint8_t *keep)
{
    size_t n = 0;
    pthread_mutex_lock(&s->held_lock);
    for (size_t i = s->n_held; i-- > 0;) {
        const store_session *h = &s->held[i];
        int match = hash ? memcmp(h->token_hash, hash, SS_SECRET_HASH_BYTES) == 0
                         : strcmp(h->user_id, user_id) == 0 && (!id || strcmp(h->id, id) == 0) &&
                               !(keep && memcmp(h->token_hash, keep, SS_SECRET_HASH_BYTES) == 0);
        if (match) {
            held_remove(s, i);
            n++;
        }
    }
    pthread_mutex_unlock(&s->held_lock);
    return n;
}

static int session_delete_user_db(sq_conn *c, const char *user_id, const uint8_t *keep);
static int session_delete_id_db(sq_conn *c, const char *user_id, const char *id);

/* 1 when a held delete names the session. Under held_lock. */
static int held_deleted(const sq_store *s, const store_session *sess)
{
    for (size_t i = 0; i < s->n_dels; i++) {
        const held_delete *d = &s->dels[i];
        if (d->by_hash ? memcmp(d->hash, sess->token_hash, SS_SECRET_HASH_BYTES) == 0
                       : strcmp(d->user_id, sess->user_id) == 0 && sess->created_at <= d->at &&
                             (!d->id[0] || strcmp(d->id, sess->id) == 0) &&
                             !(d->has_keep &&
                               memcmp(d->keep, sess->token_hash, SS_SECRET_HASH_BYTES) == 0))
            return 1;
    }
    return 0;
}

/* Holds a delete the disk had no room for. It is in force on this
 * process at once but not durable, so it is never an SS_OK: SS_FULL once
 * held, SS_STORE when there is no room in memory either (the sessions
 * stay valid). */
static int held_delete_add(sq_store *s, const held_delete *d)
{
    int err = SS_STORE;
    pthread_mutex_lock(&s->held_lock);
    if (s->n_dels < STORE_HELD_SESSIONS_MAX) {
        s->dels[s->n_dels++] = *d;
        err = SS_FULL;
    }
    pthread_mutex_unlock(&s->held_lock);
    if (err == SS_FULL)
        log_info(LOG_MOD, "disk full: a sign-out is kept in memory until space returns");
    else
        log_warn(LOG_MOD, "disk full: a sign-out could not be kept in memory either");
    return err;
}

static int held_delete_write(sq_conn *c, const held_delete *d)
{
    int err = d->by_hash ? session_delete_db(c, d->hash)
              : d->id[0] ? session_delete_id_db(c, d->user_id, d->id)
                         : session_delete_user_db(c, d->user_id, d->has_keep ? d->keep : NULL);
    return err == SS_NOT_FOUND ? SS_OK : err;
}

/* Writes the held deletes, oldest first, until one does not fit. Under
 * held_write_lock, the only place deletes leave the hold: the first one
 * stays the first while it is written without held_lock. */
static int held_deletes_write(sq_conn *c)
{
    sq_store *s = c->owner;
    int err = SS_OK;
    for (;;) {
        pthread_mutex_lock(&s->held_lock);
        size_t n = s->n_dels;
        held_delete d;
        if (n > 0)
            d = s->dels[0];
        pthread_mutex_unlock(&s->held_lock);
        if (n == 0 || err)
            break;
        err = held_delete_write(c, &d);
        if (err)
            break;
        pthread_mutex_lock(&s->held_lock);
        memmove(&s->dels[0], &s->dels[1], (s->n_dels - 1) * sizeof s->dels[0]);
        s->n_dels--;
        pthread_mutex_unlock(&s->held_lock);
    }
    return err;
}

static int held_touch(sq_store *s, const uint8_t hash[SS_SECRET_HASH_BYTES], int64_t now_ms)
{
    pthread_mutex_lock(&s->held_lock);
    ssize_t i = held_find(s, hash);
    if (i >= 0 && s->held[i].last_seen_at < now_ms)
        s->held[i].last_seen_at = now_ms;
    pthread_mutex_unlock(&s->held_lock);
    return i >= 0;
}

static int held_list(sq_store *s, const char *user_id, int64_t now_ms, store_session_cb cb,
                     void *ctx)
{
    int stop = 0;
    pthread_mutex_lock(&s->held_lock);
    for (size_t i = 0; i < s->n_held && !stop; i++) {
        if (strcmp(s->held[i].user_id, user_id) == 0 && s->held[i].expires_at > now_ms)
            stop = cb(ctx, &s->held[i]);
    }
    pthread_mutex_unlock(&s->held_lock);
    return stop;
}

static void session_from_row(sqlite3_stmt *st, store_session *s)
{
    sq_col_blob(st, 0, s->token_hash, sizeof s->token_hash);
    sq_col_text(st, 1, s->id, sizeof s->id);
    sq_col_text(st, 2, s->user_id, sizeof s->user_id);
    sq_col_text(st, 3, s->csrf, sizeof s->csrf);
    sq_col_text(st, 4, s->peer, sizeof s->peer);
    s->created_at = sqlite3_column_int64(st, 5);
    s->last_seen_at = sqlite3_column_int64(st, 6);
    s->expires_at = sqlite3_column_int64(st, 7);
}

int sq_session_get(store_engine_conn *ec, const uint8_t hash[SS_SECRET_HASH_BYTES], int64_t now_ms,
                   store_session *out)
{
    sq_conn *c = sq_conn_of(ec);
    if (held_get(c->owner, hash, now_ms, out))
        return SS_OK;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_SESSION_GET, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_SESSION_GET,
                        sq_bind_blob(st, 1, hash, SS_SECRET_HASH_BYTES) |
                            sqlite3_bind_int64(st, 2, now_ms));
    if (err)
        return err;
    err = sq_step_row(c, STMT_SESSION_GET);
    if (!err)
        session_from_row(st, out);
    sqlite3_reset(st);
    if (!err) {
        pthread_mutex_lock(&c->owner->held_lock);
        if (held_deleted(c->owner, out))
            err = SS_NOT_FOUND;
        pthread_mutex_unlock(&c->owner->held_lock);
    }
    return err;
}

int sq_session_delete(store_engine_conn *ec, const uint8_t hash[SS_SECRET_HASH_BYTES])
{
    sq_conn *c = sq_conn_of(ec);
    if (held_drop(c->owner, hash, NULL, NULL, NULL))
        return SS_OK;
    int err = session_delete_db(c, hash);
    if (err != SS_FULL)
        return err;
    held_delete d = {.by_hash = 1};
    memcpy(d.hash, hash, sizeof d.hash);
    return held_delete_add(c->owner, &d);
}

/* A user's sessions: the held ones go at once; on a full disk the delete of
 * the stored ones is held, for sessions created until now. */
static int delete_user_sessions(sq_conn *c, const char *user_id, const char *id,
                                const uint8_t *keep)
{
    size_t held = held_drop(c->owner, NULL, user_id, id, keep);
    if (id && held)
        return SS_OK;
    int err = id ? session_delete_id_db(c, user_id, id) : session_delete_user_db(c, user_id, keep);
    if (err != SS_FULL)
        return err;
    held_delete d = {.has_keep = keep != NULL, .at = clock_now_ms()};
    snprintf(d.user_id, sizeof d.user_id, "%s", user_id);
    snprintf(d.id, sizeof d.id, "%s", id ? id : "");
    if (keep)
        memcpy(d.keep, keep, sizeof d.keep);
    return held_delete_add(c->owner, &d);
}

int sq_session_delete_user(store_engine_conn *ec, const char *user_id, const uint8_t *keep)
{
    sq_conn *c = sq_conn_of(ec);
    return delete_user_sessions(c, user_id, NULL, keep);
}

int sq_session_delete_id(store_engine_conn *ec, const char *user_id, const char *id)
{
    sq_conn *c = sq_conn_of(ec);
    if (!id[0])
        return SS_NOT_FOUND;
    return delete_user_sessions(c, user_id, id, NULL);
}

static int session_delete_db(sq_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES])
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_SESSION_DELETE, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_SESSION_DELETE, sq_bind_blob(st, 1, hash, SS_SECRET_HASH_BYTES));
    return err ? err : sq_step_changed(c, STMT_SESSION_DELETE);
}

/* `token_hash IS NOT NULL` holds for every row, so a NULL keep deletes all
 * of the user's sessions with the same statement. Deleting none is not an
 * error: the user may simply have no other session. */
static int session_delete_user_db(sq_conn *c, const char *user_id, const uint8_t *keep)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_SESSION_DELETE_USER, &st);
    if (err)
        return err;
    int rc = sq_bind_text(st, 1, user_id);
    rc |= keep ? sq_bind_blob(st, 2, keep, SS_SECRET_HASH_BYTES) : sqlite3_bind_null(st, 2);
    err = sq_bind_check(c, STMT_SESSION_DELETE_USER, rc);
    return err ? err : sq_step_done(c, STMT_SESSION_DELETE_USER);
}

/* last_seen_at never moves back: two requests of one session finishing out
 * of order keep the later time. */
int sq_session_touch(store_engine_conn *ec, const uint8_t hash[SS_SECRET_HASH_BYTES],
                     int64_t now_ms)
{
    sq_conn *c = sq_conn_of(ec);
    if (held_touch(c->owner, hash, now_ms))
        return SS_OK;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_SESSION_TOUCH, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_SESSION_TOUCH,
                        sq_bind_blob(st, 1, hash, SS_SECRET_HASH_BYTES) |
                            sqlite3_bind_int64(st, 2, now_ms));
    return err ? err : sq_step_changed(c, STMT_SESSION_TOUCH);
}

int sq_session_list_user(store_engine_conn *ec, const char *user_id, int64_t now_ms,
                         store_session_cb cb, void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    if (held_list(c->owner, user_id, now_ms, cb, ctx))
        return SS_OK;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_SESSION_LIST_USER, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_SESSION_LIST_USER,
                        sq_bind_text(st, 1, user_id) | sqlite3_bind_int64(st, 2, now_ms));
    if (err)
        return err;
    int rc;
    store_session s;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        session_from_row(st, &s);
        /* A held session being written is listed once, from the hold. */
        pthread_mutex_lock(&c->owner->held_lock);
        int gone = held_deleted(c->owner, &s) || held_find(c->owner, s.token_hash) >= 0;
        pthread_mutex_unlock(&c->owner->held_lock);
        if (!gone && cb(ctx, &s) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, STMT_SESSION_LIST_USER, rc);
}

/* Sessions from schema version 1 have the id '': they cannot be named, so
 * an empty id matches none of them. */
static int session_delete_id_db(sq_conn *c, const char *user_id, const char *id)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, STMT_SESSION_DELETE_ID, user_id, id, &st);
    return err ? err : sq_step_changed(c, STMT_SESSION_DELETE_ID);
}
