/* sqlite_broker.c — the SQLite engine's broker table (store_broker.h): the
 * MQTT broker's sessions, subscriptions, deliveries, inbound QoS 2 ids,
 * retained entries and the messages they point at.
 *
 * A batch of changes is one BEGIN IMMEDIATE transaction of prepared
 * statements. A put whose parent is gone (its org, principal or session)
 * is an INSERT … SELECT … WHERE EXISTS that inserts nothing, never a
 * constraint error that would fail every other change of the group
 * commit. Every change that may leave a message unreferenced (a delivery
 * or retained entry gone or never written, a session dropped or its will
 * replaced) notes its
 * id; before the commit each noted id is deleted unless something still
 * points at it. */
#include "store/sqlite_internal.h"

#include <stdlib.h>

#define LOG_MOD SQ_LOG_MOD

/* The first allocation of a connection's list of noted message ids; it
 * doubles as needed (a batch's deletes bound it). */
#define BROKER_GC_FIRST 64u

/* A zero-length blob must be bound from a non-NULL pointer: SQLite binds
 * NULL for a NULL one, which NOT NULL refuses. */
static const uint8_t broker_empty[1];

static inline int bind_bytes(sqlite3_stmt *st, int i, const uint8_t *b, size_t len)
{
    return sqlite3_bind_blob(st, i, b && len ? b : broker_empty, (int)len, SQLITE_STATIC);
}

static inline int64_t col_u64(sqlite3_stmt *st, int i)
{
    return sqlite3_column_int64(st, i);
}

/* ---- messages left unreferenced ----------------------------------------------- */

static int gc_note(sq_conn *c, uint64_t id)
{
    if (c->gc_n == c->gc_cap) {
        size_t cap = c->gc_cap ? 2 * c->gc_cap : BROKER_GC_FIRST;
        uint64_t *ids = realloc(c->gc_ids, cap * sizeof *ids);
        if (!ids)
            return SS_NOMEM;
        c->gc_ids = ids;
        c->gc_cap = cap;
    }
    c->gc_ids[c->gc_n++] = id;
    return SS_OK;
}

/* Notes the first column of every row of a bound statement; resets it. */
static int gc_note_rows(sq_conn *c, stmt_id id)
{
    sqlite3_stmt *st = c->stmts[id];
    int rc, err = SS_OK;
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW)
        err = gc_note(c, (uint64_t)col_u64(st, 0));
    if (err) {
        sqlite3_reset(st);
        return err;
    }
    return sq_rows_end(c, id, rc);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Deletes each noted message nothing points at any more, once. */
static int gc_run(sq_conn *c)
{
    sqlite3_stmt *st = NULL;
    int err = c->gc_n ? sq_stmt_get(c, STMT_BROKER_MSG_GC, &st) : SS_OK;
    if (c->gc_n > 1)
        qsort(c->gc_ids, c->gc_n, sizeof c->gc_ids[0], cmp_u64);
    for (size_t i = 0; i < c->gc_n && !err; i++) {
        if (i > 0 && c->gc_ids[i] == c->gc_ids[i - 1])
            continue;
        err = sq_bind_check(c, STMT_BROKER_MSG_GC,
                            sqlite3_bind_int64(st, 1, (int64_t)c->gc_ids[i]));
        if (!err)
            err = sq_step_done(c, STMT_BROKER_MSG_GC);
    }
    c->gc_n = 0;
    return err;
}

/* ---- statements by key --------------------------------------------------------- */

/* Binds (org, client) as ?1, ?2 and steps a statement without rows. */
static int run_key2(sq_conn *c, stmt_id id, const char *org_id, const char *client_id)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, id, org_id, client_id, &st);
    return err ? err : sq_step_done(c, id);
}

static int run_key1(sq_conn *c, stmt_id id, const char *key)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, id, key, &st);
    return err ? err : sq_step_done(c, id);
}

/* Changes of the last statement: 0 when a put found no parent. */
static int changed(sq_conn *c)
{
    return sqlite3_changes(c->db) > 0;
}

/* ---- the changes ------------------------------------------------------------------- */

/* The will the session had, when another or none replaces it: noted. */
static int session_note_old_will(sq_conn *c, const store_broker_session *s)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, STMT_BROKER_SESSION_WILL_OLD, s->org_id, s->client_id, &st);
    if (!err)
        err = sq_bind_check(c, STMT_BROKER_SESSION_WILL_OLD,
                            sqlite3_bind_int64(st, 3, (int64_t)s->will_msg_id));
    return err ? err : gc_note_rows(c, STMT_BROKER_SESSION_WILL_OLD);
}

/* A session whose principal is gone writes nothing: its will's message is
 * noted, as it may hang on nothing. */
static int session_put(sq_conn *c, const store_broker_session *s)
{
    sqlite3_stmt *st = NULL;
    int err = session_note_old_will(c, s);
    if (!err)
        err = sq_stmt_get(c, STMT_BROKER_SESSION_PUT, &st);
    if (err)
        return err;
    int rc = sq_bind_text(st, 1, s->org_id) | sq_bind_text(st, 2, s->client_id) |
             sq_bind_text(st, 3, s->principal_id) | sqlite3_bind_int64(st, 4, s->expiry_s) |
             sqlite3_bind_int64(st, 5, s->disconnected_ms) |
             sqlite3_bind_int64(st, 6, (int64_t)s->will_msg_id) |
             sqlite3_bind_int64(st, 7, s->will_at_ms);
    err = sq_bind_check(c, STMT_BROKER_SESSION_PUT, rc);
    if (!err)
        err = sq_step_done(c, STMT_BROKER_SESSION_PUT);
    if (!err && s->will_msg_id && !changed(c))
        err = gc_note(c, s->will_msg_id);
    return err;
}

/* The session's deliveries' messages are noted, then its rows go. */
static int session_del(sq_conn *c, const char *org_id, const char *client_id)
{
    static const stmt_id steps[] = {STMT_BROKER_SESSION_DEL_DELIVERIES,
                                    STMT_BROKER_SESSION_DEL_SUBS,
                                    STMT_BROKER_SESSION_DEL_INBOUND, STMT_BROKER_SESSION_DEL};
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, STMT_BROKER_SESSION_MSGS, org_id, client_id, &st);
    if (!err)
        err = gc_note_rows(c, STMT_BROKER_SESSION_MSGS);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && !err; i++)
        err = run_key2(c, steps[i], org_id, client_id);
    return err;
}

static int sub_put(sq_conn *c, const store_broker_sub *s)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_BROKER_SUB_PUT, &st);
    if (err)
        return err;
    int rc = sq_bind_text(st, 1, s->org_id) | sq_bind_text(st, 2, s->client_id) |
             sq_bind_text(st, 3, s->filter) | sqlite3_bind_int(st, 4, s->options) |
             sqlite3_bind_int64(st, 5, s->sub_id);
    err = sq_bind_check(c, STMT_BROKER_SUB_PUT, rc);
    return err ? err : sq_step_done(c, STMT_BROKER_SUB_PUT);
}

static int sub_del(sq_conn *c, const store_broker_sub *s)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, STMT_BROKER_SUB_DEL, s->org_id, s->client_id, &st);
    if (!err)
        err = sq_bind_check(c, STMT_BROKER_SUB_DEL, sq_bind_text(st, 3, s->filter));
    return err ? err : sq_step_done(c, STMT_BROKER_SUB_DEL);
}

/* Writes the message unless it is the one this batch wrote last (a
 * fan-out's deliveries of one message come together); one stored before
 * is left as it is. */
static int msg_put(sq_conn *c, const store_broker_message *m, uint64_t *last)
{
    if (m->id == *last)
        return SS_OK;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_BROKER_MSG_PUT, &st);
    if (err)
        return err;
    int rc = sqlite3_bind_int64(st, 1, (int64_t)m->id) | sq_bind_text(st, 2, m->org_id) |
             sq_bind_text(st, 3, m->topic) | bind_bytes(st, 4, m->payload, m->payload_len) |
             bind_bytes(st, 5, m->props, m->props_len) | sqlite3_bind_int(st, 6, m->qos) |
             sqlite3_bind_int(st, 7, m->retain) | sqlite3_bind_int64(st, 8, m->published_ms);
    err = sq_bind_check(c, STMT_BROKER_MSG_PUT, rc);
    if (!err)
        err = sq_step_done(c, STMT_BROKER_MSG_PUT);
    if (!err)
        *last = m->id;
    return err;
}

/* Subscription ids as 4 bytes each, little-endian. */
static size_t sub_ids_encode(const store_broker_delivery *d,
                             uint8_t out[STORE_BROKER_SUB_IDS_MAX * 4])
{
    for (uint32_t i = 0; i < d->n_sub_ids; i++) {
        uint32_t v = d->sub_ids[i];
        out[4 * i] = (uint8_t)v;
        out[4 * i + 1] = (uint8_t)(v >> 8);
        out[4 * i + 2] = (uint8_t)(v >> 16);
        out[4 * i + 3] = (uint8_t)(v >> 24);
    }
    return (size_t)d->n_sub_ids * 4;
}

static uint32_t sub_ids_decode(const uint8_t *b, size_t len, uint32_t out[STORE_BROKER_SUB_IDS_MAX])
{
    uint32_t n = 0;
    for (size_t i = 0; i + 4 <= len && n < STORE_BROKER_SUB_IDS_MAX; i += 4)
        out[n++] = (uint32_t)b[i] | (uint32_t)b[i + 1] << 8 | (uint32_t)b[i + 2] << 16 |
                   (uint32_t)b[i + 3] << 24;
    return n;
}

/* A delivery put again with another message (its seq used again after
 * its session's delete failed) lets go of the one it pointed at: noted. */
static int delivery_note_old(sq_conn *c, const store_broker_delivery *d)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, STMT_BROKER_DELIVERY_OLD, d->org_id, d->client_id, &st);
    if (!err)
        err = sq_bind_check(c, STMT_BROKER_DELIVERY_OLD,
                            sqlite3_bind_int64(st, 3, (int64_t)d->seq) |
                                sqlite3_bind_int64(st, 4, (int64_t)d->msg_id));
    return err ? err : gc_note_rows(c, STMT_BROKER_DELIVERY_OLD);
}

/* A delivery whose session is gone writes nothing: its message is noted,
 * as it may now hang on nothing. */
static int delivery_put(sq_conn *c, const store_broker_delivery *d)
{
    sqlite3_stmt *st = NULL;
    int err = delivery_note_old(c, d);
    if (!err)
        err = sq_stmt_get(c, STMT_BROKER_DELIVERY_PUT, &st);
    if (err)
        return err;
    uint8_t ids[STORE_BROKER_SUB_IDS_MAX * 4];
    size_t ids_len = sub_ids_encode(d, ids);
    int rc = sq_bind_text(st, 1, d->org_id) | sq_bind_text(st, 2, d->client_id) |
             sqlite3_bind_int64(st, 3, (int64_t)d->seq) |
             sqlite3_bind_int64(st, 4, (int64_t)d->msg_id) | sqlite3_bind_int(st, 5, d->qos) |
             sqlite3_bind_int(st, 6, d->retain) | sqlite3_bind_int(st, 7, d->packet_id) |
             sqlite3_bind_int(st, 8, d->state) | bind_bytes(st, 9, ids, ids_len);
    err = sq_bind_check(c, STMT_BROKER_DELIVERY_PUT, rc);
    if (!err)
        err = sq_step_done(c, STMT_BROKER_DELIVERY_PUT);
    if (!err && !changed(c))
        err = gc_note(c, d->msg_id);
    return err;
}

static int delivery_del(sq_conn *c, const store_broker_delivery *d)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, STMT_BROKER_DELIVERY_DEL, d->org_id, d->client_id, &st);
    if (!err)
        err = sq_bind_check(c, STMT_BROKER_DELIVERY_DEL,
                            sqlite3_bind_int64(st, 3, (int64_t)d->seq));
    return err ? err : gc_note_rows(c, STMT_BROKER_DELIVERY_DEL);
}

static int inbound_run(sq_conn *c, stmt_id id, const store_broker_inbound *in)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, id, in->org_id, in->client_id, &st);
    if (!err)
        err = sq_bind_check(c, id, sqlite3_bind_int(st, 3, in->packet_id));
    return err ? err : sq_step_done(c, id);
}

/* The topic's message before is noted, as is the new one when the org is
 * gone and nothing was written. */
static int retain_put(sq_conn *c, const store_broker_retained *r)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, STMT_BROKER_RETAIN_OLD, r->org_id, r->topic, &st);
    if (!err)
        err = gc_note_rows(c, STMT_BROKER_RETAIN_OLD);
    if (!err)
        err = sq_stmt_key2(c, STMT_BROKER_RETAIN_PUT, r->org_id, r->topic, &st);
    if (!err)
        err = sq_bind_check(c, STMT_BROKER_RETAIN_PUT, sqlite3_bind_int64(st, 3, (int64_t)r->msg_id));
    if (!err)
        err = sq_step_done(c, STMT_BROKER_RETAIN_PUT);
    if (!err && !changed(c))
        err = gc_note(c, r->msg_id);
    return err;
}

static int retain_del(sq_conn *c, const store_broker_retained *r)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, STMT_BROKER_RETAIN_DEL, r->org_id, r->topic, &st);
    return err ? err : gc_note_rows(c, STMT_BROKER_RETAIN_DEL);
}

/* Notes the messages of the principal's sessions' deliveries, then
 * deletes the sessions and what hangs on them. */
static int principal_del(sq_conn *c, const char *principal_id)
{
    static const stmt_id steps[] = {STMT_BROKER_PRINCIPAL_DEL_DELIVERIES,
                                    STMT_BROKER_PRINCIPAL_DEL_SUBS,
                                    STMT_BROKER_PRINCIPAL_DEL_INBOUND, STMT_BROKER_PRINCIPAL_DEL};
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, STMT_BROKER_PRINCIPAL_MSGS, principal_id, &st);
    if (!err)
        err = gc_note_rows(c, STMT_BROKER_PRINCIPAL_MSGS);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && !err; i++)
        err = run_key1(c, steps[i], principal_id);
    return err;
}

int sq_broker_drop_principal(sq_conn *c, const char *principal_id)
{
    int err = principal_del(c, principal_id);
    if (!err)
        err = gc_run(c);
    c->gc_n = 0;
    return err;
}

/* Every broker row carries its org: one key range per table, messages
 * with them. */
int sq_broker_drop_org(sq_conn *c, const char *org_id)
{
    static const stmt_id steps[] = {STMT_ORG_DEL_BROKER_DELIVERIES, STMT_ORG_DEL_BROKER_SUBS,
                                    STMT_ORG_DEL_BROKER_INBOUND,    STMT_ORG_DEL_BROKER_SESSIONS,
                                    STMT_ORG_DEL_BROKER_RETAINED,   STMT_ORG_DEL_BROKER_MESSAGES};
    int err = SS_OK;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && !err; i++)
        err = run_key1(c, steps[i], org_id);
    return err;
}

static int change_apply(sq_conn *c, const store_broker_change *ch, uint64_t *last_msg)
{
    switch (ch->kind) {
    case STORE_BROKER_SESSION_PUT: {
        int err = ch->session.will_msg_id ? msg_put(c, ch->msg, last_msg) : SS_OK;
        return err ? err : session_put(c, &ch->session);
    }
    case STORE_BROKER_SESSION_DEL:
        return session_del(c, ch->session.org_id, ch->session.client_id);
    case STORE_BROKER_SUB_PUT:
        return sub_put(c, &ch->sub);
    case STORE_BROKER_SUB_DEL:
        return sub_del(c, &ch->sub);
    case STORE_BROKER_DELIVERY_PUT: {
        int err = msg_put(c, ch->msg, last_msg);
        return err ? err : delivery_put(c, &ch->delivery);
    }
    case STORE_BROKER_DELIVERY_DEL:
        return delivery_del(c, &ch->delivery);
    case STORE_BROKER_INBOUND_PUT:
        return inbound_run(c, STMT_BROKER_INBOUND_PUT, &ch->inbound);
    case STORE_BROKER_INBOUND_DEL:
        return inbound_run(c, STMT_BROKER_INBOUND_DEL, &ch->inbound);
    case STORE_BROKER_RETAIN_PUT: {
        int err = msg_put(c, ch->msg, last_msg);
        return err ? err : retain_put(c, &ch->retained);
    }
    case STORE_BROKER_RETAIN_DEL:
        return retain_del(c, &ch->retained);
    case STORE_BROKER_PRINCIPAL_DEL:
        return principal_del(c, ch->session.principal_id);
    }
    return SS_INVAL;
}

/* ---- checks before the transaction ---------------------------------------------------- */

static int two_keys(const char *org_id, const char *client_id)
{
    return org_id && client_id;
}

static int msg_ok(const store_broker_message *m, uint64_t msg_id)
{
    return m && m->id > 0 && m->id == msg_id && m->org_id && m->topic &&
           m->id <= (uint64_t)INT64_MAX;
}

/* 1 when the change has every string and bound its kind needs. */
static int change_ok(const store_broker_change *ch)
{
    switch (ch->kind) {
    case STORE_BROKER_SESSION_PUT:
        return two_keys(ch->session.org_id, ch->session.client_id) && ch->session.principal_id &&
               (ch->session.will_msg_id == 0 ||
                (ch->session.will_at_ms > 0 && msg_ok(ch->msg, ch->session.will_msg_id)));
    case STORE_BROKER_SESSION_DEL:
        return two_keys(ch->session.org_id, ch->session.client_id);
    case STORE_BROKER_SUB_PUT:
    case STORE_BROKER_SUB_DEL:
        return two_keys(ch->sub.org_id, ch->sub.client_id) && ch->sub.filter;
    case STORE_BROKER_DELIVERY_PUT:
        return two_keys(ch->delivery.org_id, ch->delivery.client_id) &&
               ch->delivery.n_sub_ids <= STORE_BROKER_SUB_IDS_MAX &&
               (ch->delivery.n_sub_ids == 0 || ch->delivery.sub_ids) &&
               ch->delivery.seq <= (uint64_t)INT64_MAX && msg_ok(ch->msg, ch->delivery.msg_id);
    case STORE_BROKER_DELIVERY_DEL:
        return two_keys(ch->delivery.org_id, ch->delivery.client_id) &&
               ch->delivery.seq <= (uint64_t)INT64_MAX;
    case STORE_BROKER_INBOUND_PUT:
    case STORE_BROKER_INBOUND_DEL:
        return two_keys(ch->inbound.org_id, ch->inbound.client_id);
    case STORE_BROKER_RETAIN_PUT:
        return two_keys(ch->retained.org_id, ch->retained.topic) &&
               msg_ok(ch->msg, ch->retained.msg_id);
    case STORE_BROKER_RETAIN_DEL:
        return two_keys(ch->retained.org_id, ch->retained.topic);
    case STORE_BROKER_PRINCIPAL_DEL:
        return ch->session.principal_id != NULL;
    }
    return 0;
}

/* ---- the table ------------------------------------------------------------------------- */

static int apply_all(sq_conn *c, const store_broker_change *changes, size_t n)
{
    uint64_t last_msg = 0;
    int err = SS_OK;
    for (size_t i = 0; i < n && !err; i++)
        err = change_apply(c, &changes[i], &last_msg);
    /* Only now: a message one change left unreferenced may be pointed at
     * again by a later one. */
    return err ? err : gc_run(c);
}

static int sq_broker_apply(store_engine_conn *ec, const store_broker_change *changes, size_t n)
{
    sq_conn *c = sq_conn_of(ec);
    for (size_t i = 0; i < n; i++)
        if (!change_ok(&changes[i]))
            return SS_INVAL;
    if (n == 0)
        return SS_OK;
    int err = sq_tx_begin(c);
    if (err)
        return err;
    err = apply_all(c, changes, n);
    c->gc_n = 0;
    return sq_tx_end(c, err);
}

static int sq_broker_message_id_max(store_engine_conn *ec, uint64_t *out)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_BROKER_MSG_MAX, &st);
    int64_t max = 0;
    if (!err)
        err = sq_step_int64(c, STMT_BROKER_MSG_MAX, &max);
    if (!err)
        *out = max > 0 ? (uint64_t)max : 0;
    return err;
}

/* ---- the lists ------------------------------------------------------------------------- */

static const char *col_str(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? (const char *)s : "";
}

/* Runs a list statement, handing each row to `row`, which calls the
 * caller's callback; its nonzero answer stops the list (no error). */
static int list_rows(sq_conn *c, stmt_id id, int (*row)(sqlite3_stmt *st, void *cb, void *ctx),
                     void *cb, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, id, &st);
    if (err)
        return err;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (row(st, cb, ctx) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, id, rc);
}

typedef int (*session_cb)(void *ctx, const store_broker_session *s);
typedef int (*sub_cb)(void *ctx, const store_broker_sub *s);
typedef int (*message_cb)(void *ctx, const store_broker_message *m);
typedef int (*delivery_cb)(void *ctx, const store_broker_delivery *d);
typedef int (*inbound_cb)(void *ctx, const store_broker_inbound *i);
typedef int (*retained_cb)(void *ctx, const store_broker_retained *r);

/* The callbacks travel as data pointers through list_rows. */
typedef struct broker_cbs {
    session_cb session;
    sub_cb sub;
    message_cb message;
    delivery_cb delivery;
    inbound_cb inbound;
    retained_cb retained;
} broker_cbs;

static int session_row(sqlite3_stmt *st, void *cb, void *ctx)
{
    store_broker_session s = {
        .org_id = col_str(st, 0),
        .client_id = col_str(st, 1),
        .principal_id = col_str(st, 2),
        .expiry_s = (uint32_t)sqlite3_column_int64(st, 3),
        .disconnected_ms = sqlite3_column_int64(st, 4),
        .will_msg_id = (uint64_t)col_u64(st, 5),
        .will_at_ms = sqlite3_column_int64(st, 6),
    };
    return ((broker_cbs *)cb)->session(ctx, &s);
}

static int sub_row(sqlite3_stmt *st, void *cb, void *ctx)
{
    store_broker_sub s = {
        .org_id = col_str(st, 0),
        .client_id = col_str(st, 1),
        .filter = col_str(st, 2),
        .options = (uint8_t)sqlite3_column_int(st, 3),
        .sub_id = (uint32_t)sqlite3_column_int64(st, 4),
    };
    return ((broker_cbs *)cb)->sub(ctx, &s);
}

static int message_row(sqlite3_stmt *st, void *cb, void *ctx)
{
    store_broker_message m = {
        .id = (uint64_t)col_u64(st, 0),
        .org_id = col_str(st, 1),
        .topic = col_str(st, 2),
        .payload = sqlite3_column_blob(st, 3),
        .payload_len = (size_t)sqlite3_column_bytes(st, 3),
        .props = sqlite3_column_blob(st, 4),
        .props_len = (size_t)sqlite3_column_bytes(st, 4),
        .qos = (uint8_t)sqlite3_column_int(st, 5),
        .retain = (uint8_t)sqlite3_column_int(st, 6),
        .published_ms = sqlite3_column_int64(st, 7),
    };
    return ((broker_cbs *)cb)->message(ctx, &m);
}

static int delivery_row(sqlite3_stmt *st, void *cb, void *ctx)
{
    uint32_t ids[STORE_BROKER_SUB_IDS_MAX];
    const uint8_t *blob = sqlite3_column_blob(st, 8);
    uint32_t n = sub_ids_decode(blob, blob ? (size_t)sqlite3_column_bytes(st, 8) : 0, ids);
    store_broker_delivery d = {
        .org_id = col_str(st, 0),
        .client_id = col_str(st, 1),
        .seq = (uint64_t)col_u64(st, 2),
        .msg_id = (uint64_t)col_u64(st, 3),
        .qos = (uint8_t)sqlite3_column_int(st, 4),
        .retain = (uint8_t)sqlite3_column_int(st, 5),
        .packet_id = (uint16_t)sqlite3_column_int(st, 6),
        .state = (uint8_t)sqlite3_column_int(st, 7),
        .sub_ids = n ? ids : NULL,
        .n_sub_ids = n,
    };
    return ((broker_cbs *)cb)->delivery(ctx, &d);
}

static int inbound_row(sqlite3_stmt *st, void *cb, void *ctx)
{
    store_broker_inbound in = {
        .org_id = col_str(st, 0),
        .client_id = col_str(st, 1),
        .packet_id = (uint16_t)sqlite3_column_int(st, 2),
    };
    return ((broker_cbs *)cb)->inbound(ctx, &in);
}

static int retained_row(sqlite3_stmt *st, void *cb, void *ctx)
{
    store_broker_retained r = {
        .org_id = col_str(st, 0),
        .topic = col_str(st, 1),
        .msg_id = (uint64_t)col_u64(st, 2),
    };
    return ((broker_cbs *)cb)->retained(ctx, &r);
}

static int sq_broker_sessions(store_engine_conn *ec, session_cb cb, void *ctx)
{
    broker_cbs cbs = {.session = cb};
    return list_rows(sq_conn_of(ec), STMT_BROKER_SESSIONS, session_row, &cbs, ctx);
}

static int sq_broker_subs(store_engine_conn *ec, sub_cb cb, void *ctx)
{
    broker_cbs cbs = {.sub = cb};
    return list_rows(sq_conn_of(ec), STMT_BROKER_SUBS, sub_row, &cbs, ctx);
}

static int sq_broker_messages(store_engine_conn *ec, message_cb cb, void *ctx)
{
    broker_cbs cbs = {.message = cb};
    return list_rows(sq_conn_of(ec), STMT_BROKER_MESSAGES, message_row, &cbs, ctx);
}

static int sq_broker_deliveries(store_engine_conn *ec, delivery_cb cb, void *ctx)
{
    broker_cbs cbs = {.delivery = cb};
    return list_rows(sq_conn_of(ec), STMT_BROKER_DELIVERIES, delivery_row, &cbs, ctx);
}

static int sq_broker_inbound_list(store_engine_conn *ec, inbound_cb cb, void *ctx)
{
    broker_cbs cbs = {.inbound = cb};
    return list_rows(sq_conn_of(ec), STMT_BROKER_INBOUND, inbound_row, &cbs, ctx);
}

static int sq_broker_retained_list(store_engine_conn *ec, retained_cb cb, void *ctx)
{
    broker_cbs cbs = {.retained = cb};
    return list_rows(sq_conn_of(ec), STMT_BROKER_RETAINED, retained_row, &cbs, ctx);
}

const store_broker_table sq_broker_table = {
    .apply = sq_broker_apply,
    .message_id_max = sq_broker_message_id_max,
    .sessions = sq_broker_sessions,
    .subs = sq_broker_subs,
    .messages = sq_broker_messages,
    .deliveries = sq_broker_deliveries,
    .inbound_list = sq_broker_inbound_list,
    .retained_list = sq_broker_retained_list,
};
