/* sqlite_series.c — store_series.h on SQLite: the group commit of readings
 * (with the usage and session records committed with them), the series
 * cache, the channel limit, queries, channels and the purge. */
#include "store/sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#define LOG_MOD SQ_LOG_MOD

/* ---- purge of deleted devices' readings -------------------------------------------- */

/* The oldest series waiting for the purge: SS_NOT_FOUND when none. */
static int purge_next(sq_conn *c, int64_t *series_id)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_PURGE_NEXT, &st);
    if (!err)
        err = sq_step_int64(c, STMT_PURGE_NEXT, series_id);
    return err;
}

/* The ts of the series' reading `skip` places from its oldest: the first
 * one a chunk of `skip` readings leaves. SS_NOT_FOUND when fewer remain. */
static int purge_bound(sq_conn *c, int64_t series_id, size_t skip, int64_t *ts)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_PURGE_BOUND, &st);
    if (!err)
        err = sq_bind_check(c, STMT_PURGE_BOUND,
                            sqlite3_bind_int64(st, 1, series_id) |
                                sqlite3_bind_int64(st, 2, sq_limit_i64(skip)));
    if (!err)
        err = sq_step_int64(c, STMT_PURGE_BOUND, ts);
    return err;
}

/* Runs one of the PURGE_* deletes; *changed gets the rows it deleted. */
static int purge_exec(sq_conn *c, stmt_id id, int64_t series_id, int64_t ts, size_t *changed)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, id, &st);
    if (err)
        return err;
    int rc = sqlite3_bind_int64(st, 1, series_id);
    if (id == STMT_PURGE_BELOW || id == STMT_ROLLUP_PURGE_BELOW)
        rc |= sqlite3_bind_int64(st, 2, ts);
    err = sq_bind_check(c, id, rc);
    if (!err)
        err = sq_step_done(c, id);
    if (!err && changed)
        *changed = (size_t)sqlite3_changes(c->db);
    return err;
}

/* Deletes up to `budget` readings of one purged series, oldest first; the
 * series leaves the list with its last reading. */
static int purge_series_chunk(sq_conn *c, int64_t series_id, size_t budget, size_t *deleted)
{
    int64_t bound = 0;
    int err = purge_bound(c, series_id, budget, &bound);
    if (err == SS_OK) {
        /* The series is gone from every query: a minute half purged may
         * keep its stale rollup until the rest goes. */
        err = purge_exec(c, STMT_PURGE_BELOW, series_id, bound, deleted);
        return err ? err : purge_exec(c, STMT_ROLLUP_PURGE_BELOW, series_id, bound, NULL);
    }
    if (err != SS_NOT_FOUND)
        return err;
    err = purge_exec(c, STMT_PURGE_REST, series_id, 0, deleted);
    if (!err)
        err = purge_exec(c, STMT_ROLLUP_PURGE_REST, series_id, 0, NULL);
    return err ? err : purge_exec(c, STMT_PURGE_DONE, series_id, 0, NULL);
}

static int purge_rows(sq_conn *c, size_t max_rows, size_t *deleted, int *more)
{
    int err = SS_OK;
    while (!err && *deleted < max_rows) {
        int64_t series_id = 0;
        err = purge_next(c, &series_id);
        if (err == SS_NOT_FOUND) {
            *more = 0;
            return SS_OK;
        }
        size_t n = 0;
        if (!err)
            err = purge_series_chunk(c, series_id, max_rows - *deleted, &n);
        *deleted += n;
    }
    return err;
}

static int sq_purge_step(store_engine_conn *ec, size_t max_rows, size_t *deleted, int *more)
{
    sq_conn *c = sq_conn_of(ec);
    *deleted = 0;
    *more = 1;
    if (max_rows == 0)
        return SS_INVAL;
    int err = sq_tx_begin(c);
    if (err)
        return err;
    err = sq_tx_end(c, purge_rows(c, max_rows, deleted, more));
    if (err)
        *deleted = 0;
    return err;
}

static int sq_purge_pending(store_engine_conn *ec, int64_t *series)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_PURGE_COUNT, &st);
    if (err)
        return err;
    err = sq_step_int64(c, STMT_PURGE_COUNT, series);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

/* The accounts are in another engine, which deleted these devices: their
 * series go to the purge list, then go (as in store_device_delete). */
static int sq_drop_devices(store_engine_conn *ec, const char *const *device_ids, size_t n)
{
    static const stmt_id steps[] = {STMT_DEVICE_PURGE_SERIES, STMT_DEVICE_DEL_SERIES};
    sq_conn *c = sq_conn_of(ec);
    int err = sq_tx_begin(c);
    if (err)
        return err;
    /* Inside the write lock: see store.device_generation. */
    atomic_fetch_add(&c->owner->device_generation, 1);
    for (size_t d = 0; d < n && !err; d++) {
        for (size_t i = 0; i < sizeof steps / sizeof steps[0] && !err; i++) {
            sqlite3_stmt *st = NULL;
            err = sq_stmt_get(c, steps[i], &st);
            if (!err)
                err = sq_bind_check(c, steps[i], sq_bind_text(st, 1, device_ids[d]));
            if (!err)
                err = sq_step_done(c, steps[i]);
        }
    }
    return sq_tx_end(c, err);
}

/* ---- series cache ---------------------------------------------------------------- */

static void cache_clear(series_cache *sc)
{
    if (sc->used)
        memset(sc->slots, 0, SERIES_CACHE_SLOTS * sizeof *sc->slots);
    sc->used = 0;
    sc->ntouched = 0;
}

static int cache_ready(series_cache *sc)
{
    if (sc->slots)
        return SS_OK;
    sc->slots = calloc(SERIES_CACHE_SLOTS, sizeof *sc->slots);
    sc->touched = calloc(SERIES_CACHE_FILL_MAX, sizeof *sc->touched);
    if (sc->slots && sc->touched)
        return SS_OK;
    free(sc->slots);
    free(sc->touched);
    sc->slots = NULL;
    sc->touched = NULL;
    return SS_NOMEM;
}

/* The series cache and the channel check's scratch, on the first write. */
static int write_scratch_ready(sq_conn *c)
{
    if (!c->check)
        c->check = calloc(1, sizeof *c->check);
    return c->check ? cache_ready(&c->cache) : SS_NOMEM;
}

/* Called with the write lock held, so no device delete can slip between
 * this check and the commit. */
static void cache_sync_generation(sq_conn *c)
{
    uint64_t gen = atomic_load(&c->owner->device_generation);
    uint64_t writes = atomic_load(&c->owner->reading_writes);
    if (gen == c->cache.generation && writes == c->cache.writes_seen)
        return;
    cache_clear(&c->cache);
    sq_rollup_forget(c);
    c->cache.generation = gen;
    c->cache.writes_seen = writes;
}

/* FNV-1a: short keys, no adversary able to choose them beyond their own
 * channel names, and a miss costs only one indexed query. */
static uint32_t sq_hash_bytes(uint32_t h, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

#define FNV_OFFSET 2166136261u
/* Hashed between device id and channel; no valid id or channel holds it. */
#define HASH_SEPARATOR "/"

/* The slot holding the key, or the empty slot where it belongs. The fill
 * limit guarantees an empty slot exists. */
static series_slot *cache_probe(series_cache *sc, const series_key *k)
{
    uint32_t mask = SERIES_CACHE_SLOTS - 1;
    for (uint32_t i = k->hash & mask;; i = (i + 1) & mask) {
        series_slot *s = &sc->slots[i];
        if (s->series_id == 0)
            return s;
        if (s->hash == k->hash && s->channel_len == k->channel_len &&
            memcmp(s->channel, k->channel, k->channel_len) == 0 &&
            memcmp(s->device_id, k->device_id, k->device_len) == 0 &&
            s->device_id[k->device_len] == '\0')
            return s;
    }
}

static int series_set_last(sq_conn *c, const series_slot *s)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_SERIES_SET_LAST, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_SERIES_SET_LAST,
                        sqlite3_bind_int64(st, 1, s->series_id) |
                            sqlite3_bind_int64(st, 2, s->pend_ts) |
                            sqlite3_bind_double(st, 3, s->pend_value));
    return err ? err : sq_step_done(c, STMT_SERIES_SET_LAST);
}

/* Writes each touched series' newest reading of this call to its row,
 * where it is newer than (or as new as) the stored one: one UPDATE per
 * series, not per reading. */
static int series_flush(sq_conn *c)
{
    series_cache *sc = &c->cache;
    for (size_t i = 0; i < sc->ntouched; i++) {
        series_slot *s = &sc->slots[sc->touched[i]];
        int err = series_set_last(c, s);
        if (err)
            return err;
        s->pending = 0;
    }
    sc->ntouched = 0;
    return SS_OK;
}

/* OUT the series' id and its newest ts stored (last_ts may be NULL). */
static int series_find(sq_conn *c, const series_key *k, int64_t *out, int64_t *last_ts)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_SERIES_FIND, &st);
    if (err)
        return err;
    err =
        sq_bind_check(c, STMT_SERIES_FIND,
                      sqlite3_bind_text(st, 1, k->device_id, (int)k->device_len, SQLITE_STATIC) |
                          sqlite3_bind_text(st, 2, k->channel, (int)k->channel_len, SQLITE_STATIC));
    if (!err)
        err = sq_step_row(c, STMT_SERIES_FIND);
    if (!err) {
        *out = sqlite3_column_int64(st, 0);
        if (last_ts)
            *last_ts = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return err;
}

/* A new series starts with its first reading as the last one. SS_NOT_FOUND
 * (foreign key) when the device does not exist. */
static int series_insert(sq_conn *c, const series_key *k, const ss_reading *r, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_SERIES_INSERT, &st);
    if (err)
        return err;
    err =
        sq_bind_check(c, STMT_SERIES_INSERT,
                      sqlite3_bind_text(st, 1, k->device_id, (int)k->device_len, SQLITE_STATIC) |
                          sqlite3_bind_text(st, 2, k->channel, (int)k->channel_len, SQLITE_STATIC) |
                          sqlite3_bind_int64(st, 3, r->ts) | sqlite3_bind_double(st, 4, r->value));
    if (!err)
        err = sq_step_done(c, STMT_SERIES_INSERT);
    if (!err)
        *out = sqlite3_last_insert_rowid(c->db);
    return err;
}

static void slot_fill(series_slot *s, const series_key *k, int64_t series_id, int64_t known_ts)
{
    s->series_id = series_id;
    s->known_ts = known_ts;
    s->hash = k->hash;
    s->pending = 0;
    s->channel_len = (uint8_t)k->channel_len;
    memcpy(s->device_id, k->device_id, k->device_len);
    s->device_id[k->device_len] = '\0';
    memcpy(s->channel, k->channel, k->channel_len);
    s->channel[k->channel_len] = '\0';
}

/* The reading's series slot: from the cache, else looked up or created
 * (once per series per connection after warm-up). A full cache is flushed
 * and emptied first. */
static int series_resolve(sq_conn *c, const series_key *k, const ss_reading *r, series_slot **out)
{
    series_cache *sc = &c->cache;
    series_slot *s = cache_probe(sc, k);
    if (s->series_id != 0) {
        *out = s;
        return SS_OK;
    }
    if (sc->used >= SERIES_CACHE_FILL_MAX) {
        int err = series_flush(c);
        if (err)
            return err;
        cache_clear(sc);
        s = cache_probe(sc, k);
    }
    int64_t id = 0, known_ts = 0; /* a new series has no reading stored yet */
    int err = series_find(c, k, &id, &known_ts);
    if (err == SS_NOT_FOUND)
        err = series_insert(c, k, r, &id);
    if (err)
        return err;
    slot_fill(s, k, id, known_ts);
    sc->used++;
    *out = s;
    return SS_OK;
}

/* Remembers the call's newest reading of the series; a later reading with
 * the same ts wins, as its value also wins in readings. */
static void series_note(series_cache *sc, series_slot *s, const ss_reading *r)
{
    if (s->pending && r->ts < s->pend_ts)
        return;
    if (!s->pending)
        sc->touched[sc->ntouched++] = (uint32_t)(s - sc->slots);
    s->pending = 1;
    s->pend_ts = r->ts;
    s->pend_value = r->value;
}

/* The key of a reading of the device k already names. SS_INVAL for a
 * channel no parser would let through. */
static int key_of_reading(series_key *k, uint32_t device_hash, const ss_reading *r)
{
    k->channel = r->channel;
    k->channel_len = strnlen(r->channel, sizeof r->channel);
    if (k->channel_len == 0 || k->channel_len > SS_CHANNEL_MAX)
        return SS_INVAL;
    k->hash = sq_hash_bytes(device_hash, k->channel, k->channel_len);
    return SS_OK;
}

/* Whether two readings of one batch name the same channel (so the same
 * series). */
static int same_channel(const ss_reading *a, const ss_reading *b)
{
    return strcmp(a->channel, b->channel) == 0;
}

/* ---- the channel limit ---------------------------------------------------------- */

static int series_count(sq_conn *c, const series_key *k, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_SERIES_COUNT, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_SERIES_COUNT,
                        sqlite3_bind_text(st, 1, k->device_id, (int)k->device_len, SQLITE_STATIC));
    if (!err)
        err = sq_step_int64(c, STMT_SERIES_COUNT, out);
    return err;
}

/* Whether the reading's series exists: a cache hit (the hot path: no query),
 * else looked up, and then cached for the write that follows. */
static int series_known(sq_conn *c, const series_key *k, int *known)
{
    series_cache *sc = &c->cache;
    series_slot *s = cache_probe(sc, k);
    *known = 1;
    if (s->series_id != 0)
        return SS_OK;
    int64_t id = 0, known_ts = 0;
    int err = series_find(c, k, &id, &known_ts);
    if (err == SS_NOT_FOUND)
        *known = 0;
    if (err)
        return err == SS_NOT_FOUND ? SS_OK : err;
    if (sc->used >= SERIES_CACHE_FILL_MAX) {
        err = series_flush(c);
        if (err)
            return err;
        cache_clear(sc);
        s = cache_probe(sc, k);
    }
    slot_fill(s, k, id, known_ts);
    sc->used++;
    return SS_OK;
}

/* The set slot of the reading's channel among the batch's new ones: the
 * slot holding it, or the empty one where it belongs. */
static uint32_t check_probe(const channel_check *cc, const ss_reading *rs, const series_key *k)
{
    uint32_t mask = CHECK_SET_SLOTS - 1;
    for (uint32_t i = k->hash & mask;; i = (i + 1) & mask) {
        uint32_t v = cc->set[i];
        if (v == 0 || strcmp(rs[v - 1].channel, k->channel) == 0)
            return i;
    }
}

/* Takes the set back to its first `mark` additions. */
static void check_undo(channel_check *cc, size_t mark)
{
    while (cc->n_added > mark)
        cc->set[cc->added[--cc->n_added]] = 0;
}

/* Whether readings [from, to) of b may be stored: every new channel they
 * bring, with those accepted before them in the batch, must keep the
 * device within SS_DEVICE_CHANNELS_MAX. A refused group's new channels are
 * taken out of the set again. */
static int check_group(sq_conn *c, const store_batch *b, series_key *k, uint32_t device_hash,
                       size_t from, size_t to, int *refuse)
{
    channel_check *cc = c->check;
    size_t mark = cc->n_added;
    *refuse = 0;
    for (size_t i = from; i < to; i++) {
        if (b->bulk && i > from && same_channel(&b->readings[i], &b->readings[i - 1]))
            continue;  /* the run's first reading was checked */
        int known = 0;
        int err = key_of_reading(k, device_hash, &b->readings[i]);
        if (!err)
            err = series_known(c, k, &known);
        if (err)
            return err;
        if (known)
            continue;
        uint32_t slot = check_probe(cc, b->readings, k);
        if (cc->set[slot] != 0)
            continue;
        if (cc->existing < 0 && (err = series_count(c, k, &cc->existing)) != SS_OK)
            return err;
        if (cc->existing + (int64_t)cc->n_added >= (int64_t)SS_DEVICE_CHANNELS_MAX) {
            check_undo(cc, mark);
            *refuse = 1;
            return SS_OK;
        }
        cc->set[slot] = (uint32_t)i + 1;
        cc->added[cc->n_added++] = slot;
    }
    return SS_OK;
}

/* ---- writing readings ---------------------------------------------------------- */

static int reading_insert(sq_conn *c, sqlite3_stmt *st, int64_t series_id, const ss_reading *r)
{
    int rc = sqlite3_bind_int64(st, 1, series_id) | sqlite3_bind_int64(st, 2, r->ts) |
             sqlite3_bind_double(st, 3, r->value);
    int err = sq_bind_check(c, STMT_READING_UPSERT, rc);
    return err ? err : sq_step_done(c, STMT_READING_UPSERT);
}

static int write_group(sq_conn *c, sqlite3_stmt *ins, const store_batch *b, series_key *k,
                       uint32_t device_hash, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        const ss_reading *r = &b->readings[i];
        series_slot *s;
        int err = key_of_reading(k, device_hash, r);
        if (!err)
            err = series_resolve(c, k, r, &s);
        if (!err)
            err = reading_insert(c, ins, s->series_id, r);
        if (!err)
            err = sq_rollup_note(c, s, r);
        if (!err)
            err = sq_rollup_spill(c);
        if (err)
            return err;
        series_note(&c->cache, s, r);
    }
    return SS_OK;
}

/* Binds one reading as row `row` of the multi-row upsert. */
static int rows_bind(sqlite3_stmt *st, size_t row, int64_t series_id, const ss_reading *r)
{
    int p = (int)(3 * row);
    return sqlite3_bind_int64(st, p + 1, series_id) | sqlite3_bind_int64(st, p + 2, r->ts) |
           sqlite3_bind_double(st, p + 3, r->value);
}

/* write_group for a bulk write: SQ_UPSERT_ROWS readings a statement, the
 * tail one at a time; a run of one channel resolves its series at its
 * first reading. Rows of one statement are upserted in order, so a later
 * reading of the same ts still replaces an earlier one. */
static int write_group_rows(sq_conn *c, sqlite3_stmt *ins, const store_batch *b, series_key *k,
                            uint32_t device_hash, size_t from, size_t to)
{
    sqlite3_stmt *rows = NULL;
    int err = sq_stmt_get(c, STMT_READING_UPSERT_ROWS, &rows);
    if (!err && sqlite3_bind_parameter_count(rows) != 3 * SQ_UPSERT_ROWS)
        err = SS_STORE;  /* the statement's text and SQ_UPSERT_ROWS disagree: a bug */
    size_t full = from + (to - from) / SQ_UPSERT_ROWS * SQ_UPSERT_ROWS;
    size_t row = 0;
    int bound = SQLITE_OK;
    series_slot *s = NULL;
    for (size_t i = from; i < to && !err; i++) {
        const ss_reading *r = &b->readings[i];
        if (!s || !same_channel(r, &b->readings[i - 1])) {
            err = key_of_reading(k, device_hash, r);
            if (!err)
                err = series_resolve(c, k, r, &s);
            if (err)
                break;
        }
        /* Noted when bound: a spill waits for the statement to run. */
        err = sq_rollup_note(c, s, r);
        if (err)
            break;
        if (i >= full) {
            err = reading_insert(c, ins, s->series_id, r);
            if (!err)
                err = sq_rollup_spill(c);
        } else {
            bound |= rows_bind(rows, row++, s->series_id, r);
            if (row == SQ_UPSERT_ROWS) {
                err = sq_bind_check(c, STMT_READING_UPSERT_ROWS, bound);
                if (!err)
                    err = sq_step_done(c, STMT_READING_UPSERT_ROWS);
                if (!err)
                    err = sq_rollup_spill(c);
                row = 0;
                bound = SQLITE_OK;
            }
        }
        if (!err)
            series_note(&c->cache, s, r);
    }
    return err;
}

/* Where group g of b ends; SS_INVAL when the groups do not tile the batch. */
static int group_end(const store_batch *b, size_t g, size_t from, size_t *end)
{
    size_t e = b->group_ends ? b->group_ends[g] : b->len;
    int last = !b->group_ends || g + 1 == b->n_groups;
    if (e < from || e > b->len || (last && e != b->len))
        return SS_INVAL;
    *end = e;
    return SS_OK;
}

/* Checks, then writes, one group at a time. OUT written: readings stored. */
static int batch_groups(sq_conn *c, sqlite3_stmt *ins, const store_batch *b, series_key *k,
                        uint32_t device_hash, size_t *written)
{
    size_t n_groups = b->group_ends ? b->n_groups : 1;
    size_t from = 0;
    for (size_t g = 0; g < n_groups; g++) {
        size_t to = 0;
        int refuse = 0;
        int err = group_end(b, g, from, &to);
        if (!err)
            err = check_group(c, b, k, device_hash, from, to, &refuse);
        if (!err && refuse && !b->refused)
            err = SS_TOO_LARGE;
        if (!err && !refuse)
            err = b->bulk ? write_group_rows(c, ins, b, k, device_hash, from, to)
                          : write_group(c, ins, b, k, device_hash, from, to);
        if (err)
            return err;
        if (b->refused)
            b->refused[g] = (uint8_t)refuse;
        if (!refuse)
            *written += to - from;
        from = to;
    }
    return SS_OK;
}

static int batch_write(sq_conn *c, sqlite3_stmt *ins, const store_batch *b, size_t *written)
{
    *written = 0;
    if (!b->device_id || (!b->readings && b->len > 0) || (b->group_ends && b->n_groups == 0))
        return SS_INVAL;
    series_key k = {.device_id = b->device_id};
    k.device_len = strnlen(b->device_id, SS_ID_LEN + 1);
    if (k.device_len == 0 || k.device_len > SS_ID_LEN)
        return SS_INVAL;
    uint32_t device_hash =
        sq_hash_bytes(sq_hash_bytes(FNV_OFFSET, k.device_id, k.device_len), HASH_SEPARATOR, 1);
    c->check->existing = -1;
    int err = batch_groups(c, ins, b, &k, device_hash, written);
    check_undo(c->check, 0);
    return err;
}

/* ---- usage of a write call ------------------------------------------------------ */

static int usage_slot_match(const usage_slot *u, int64_t hour, const char *org, size_t org_len,
                            const char *protocol, size_t protocol_len)
{
    return u->hour == hour && u->org_len == org_len && u->protocol_len == protocol_len &&
           memcmp(u->org_id, org, org_len) == 0 && memcmp(u->protocol, protocol, protocol_len) == 0;
}

static usage_row_id *usage_id_entry(sq_conn *c, const usage_slot *u)
{
    uint32_t h = sq_hash_bytes(sq_hash_bytes(FNV_OFFSET, u->org_id, u->org_len), u->protocol,
                               u->protocol_len);
    h ^= (uint32_t)(u->hour / STORE_HOUR_MS);
    return &c->usage_ids[h % USAGE_ID_SLOTS];
}

/* UPDATE by the remembered rowid: SS_NOT_FOUND when there is none, or no
 * such row now. */
static int usage_bump_by_id(sq_conn *c, const usage_row_id *e, const usage_slot *u)
{
    if (!e->id ||
        !usage_slot_match(&e->key, u->hour, u->org_id, u->org_len, u->protocol, u->protocol_len))
        return SS_NOT_FOUND;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_USAGE_BUMP_COUNTS, &st);
    if (!err)
        err = sq_bind_check(c, STMT_USAGE_BUMP_COUNTS,
                            sqlite3_bind_int64(st, 1, e->id) |
                                sqlite3_bind_int64(st, 2, u->messages) |
                                sqlite3_bind_int64(st, 3, u->readings));
    return err ? err : sq_step_changed(c, STMT_USAGE_BUMP_COUNTS);
}

/* The upsert by key, which answers the row's id. */
static int usage_upsert_counts(sq_conn *c, const usage_slot *u, int64_t *id)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_USAGE_ADD_COUNTS, &st);
    if (!err)
        err = sq_bind_check(
            c, STMT_USAGE_ADD_COUNTS,
            sqlite3_bind_text(st, 1, u->org_id, u->org_len, SQLITE_STATIC) |
                sqlite3_bind_int64(st, 2, u->hour) |
                sqlite3_bind_text(st, 3, u->protocol, u->protocol_len, SQLITE_STATIC) |
                sqlite3_bind_int64(st, 4, u->messages) | sqlite3_bind_int64(st, 5, u->readings));
    /* The upsert is done by the first step (SQLite makes every change of a
     * statement with RETURNING there), so the reset after its row is safe. */
    if (!err)
        err = sq_step_int64(c, STMT_USAGE_ADD_COUNTS, id);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

/* Adds one summed row: by its remembered rowid (the usual case: the row of
 * this hour exists after the first commit in it), else by the upsert. */
static int usage_write_slot(sq_conn *c, const usage_slot *u)
{
    usage_row_id *e = usage_id_entry(c, u);
    int err = usage_bump_by_id(c, e, u);
    if (err != SS_NOT_FOUND)
        return err;
    int64_t id = 0;
    err = usage_upsert_counts(c, u, &id);
    if (!err) {
        e->key = *u;
        e->id = id;
    }
    return err;
}

/* Writes every summed row and empties the slots. */
static int usage_flush(sq_conn *c)
{
    usage_agg *ua = &c->usage;
    int err = SS_OK;
    for (size_t i = 0; i < ua->used && !err; i++)
        err = usage_write_slot(c, &ua->slots[i]);
    ua->used = 0;
    ua->last = 0;
    return err;
}

/* The slot of the key: the last one hit, else found by a scan of the few
 * used, else a new one (after upserting the sums so far when all are
 * used). */
static int usage_slot_get(sq_conn *c, int64_t hour, const char *org, size_t org_len,
                          const char *protocol, size_t protocol_len, usage_slot **out)
{
    usage_agg *ua = &c->usage;
    if (ua->used &&
        usage_slot_match(&ua->slots[ua->last], hour, org, org_len, protocol, protocol_len)) {
        *out = &ua->slots[ua->last];
        return SS_OK;
    }
    for (size_t i = 0; i < ua->used; i++) {
        if (usage_slot_match(&ua->slots[i], hour, org, org_len, protocol, protocol_len)) {
            ua->last = i;
            *out = &ua->slots[i];
            return SS_OK;
        }
    }
    if (ua->used == USAGE_AGG_SLOTS) {
        int err = usage_flush(c);
        if (err)
            return err;
    }
    usage_slot *u = &ua->slots[ua->used];
    *u = (usage_slot){
        .hour = hour, .org_len = (uint8_t)org_len, .protocol_len = (uint8_t)protocol_len};
    memcpy(u->org_id, org, org_len);
    memcpy(u->protocol, protocol, protocol_len);
    ua->last = ua->used++;
    *out = u;
    return SS_OK;
}

/* Adds the batch's 1 message and the readings it stored to its usage slot.
 * A batch without an org (tests, tools) is counted under the org "", so
 * the usage still adds up to what is stored. */
static int usage_note(sq_conn *c, const store_batch *b, size_t written)
{
    const char *org = b->org_id ? b->org_id : "";
    const char *protocol = b->protocol && b->protocol[0] ? b->protocol : USAGE_PROTOCOL_DEFAULT;
    size_t org_len = strnlen(org, SS_ID_LEN + 1);
    size_t protocol_len = strnlen(protocol, STORE_PROTOCOL_MAX + 1);
    if (org_len > SS_ID_LEN || protocol_len > STORE_PROTOCOL_MAX)
        return SS_INVAL;
    usage_slot *u;
    int err =
        usage_slot_get(c, sq_hour_of(b->received_at), org, org_len, protocol, protocol_len, &u);
    if (err)
        return err;
    u->messages++;
    u->readings += (int64_t)written;
    return SS_OK;
}

/* The session records a transaction counts into, each once: an MQTT
 * client's messages come as many one-reading batches in one group commit,
 * and a write of the record for each would cost more than the readings'
 * own. Past this many distinct records the sums are written and begun
 * again (a group commit rarely holds more distinct senders). */
#define ACCT_SUMS_MAX 32u

typedef struct acct_sum {
    const store_acct_session *session;  /* as it stood before its first batch here */
    int64_t messages, readings;
} acct_sum;

typedef struct acct_sums {
    acct_sum s[ACCT_SUMS_MAX];
    size_t n;
} acct_sums;

/* Writes the sums: each record as it stood plus what its batches stored,
 * whole when the store has none of it yet, added to the one there
 * otherwise (written by the meter's last flush, maybe before these
 * readings). */
static int acct_sums_flush(sq_conn *c, acct_sums *a)
{
    int err = SS_OK;
    for (size_t i = 0; i < a->n && !err; i++) {
        store_acct_session rec = *a->s[i].session;
        rec.messages += a->s[i].messages;
        rec.readings += a->s[i].readings;
        err = sq_acct_check(&rec);
        if (!err)
            err = sq_acct_count_commit(c, &rec, a->s[i].messages, a->s[i].readings);
    }
    a->n = 0;
    return err;
}

/* The batch's session record, when the batch stored something: counted as
 * the usage is, one message and the readings written, in the commit that
 * stores them, so that what the record counts after a crash is what was
 * stored and acknowledged. */
static int batch_session(sq_conn *c, acct_sums *a, const store_batch *b, size_t written)
{
    if (!b->session || written == 0)
        return SS_OK;
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->s[i].session->id, b->session->id) == 0) {
            a->s[i].messages++;
            a->s[i].readings += (int64_t)written;
            return SS_OK;
        }
    }
    if (a->n == ACCT_SUMS_MAX) {
        int err = acct_sums_flush(c, a);
        if (err)
            return err;
    }
    a->s[a->n++] = (acct_sum){.session = b->session, .messages = 1, .readings = (int64_t)written};
    return SS_OK;
}

/* One transaction for all batches. Per reading: a cache probe and one
 * prepared upsert; per series touched: one UPDATE of last_ts/last_value;
 * per distinct (org, hour, protocol): one usage upsert. On any failure
 * everything is rolled back and the cache emptied (it may name series whose
 * insert was just rolled back). A device that does not exist (deleted since
 * its token was checked) fails the call with SS_NOT_FOUND. */
static int sq_write_batches(store_engine_conn *ec, const store_batch *batches, size_t n)
{
    sq_conn *c = sq_conn_of(ec);
    if (n > 0 && !batches)
        return SS_INVAL;
    sqlite3_stmt *ins = NULL;
    int err = write_scratch_ready(c);
    if (!err)
        err = sq_stmt_get(c, STMT_READING_UPSERT, &ins);
    if (!err)
        err = sq_tx_begin(c);
    if (err)
        return err;
    cache_sync_generation(c);
    acct_sums sums = {.n = 0};
    for (size_t i = 0; i < n && !err; i++) {
        size_t written = 0;
        err = batch_write(c, ins, &batches[i], &written);
        if (!err && (written > 0 || batches[i].len == 0))
            err = usage_note(c, &batches[i], written);
        if (!err)
            err = batch_session(c, &sums, &batches[i], written);
    }
    if (!err)
        err = acct_sums_flush(c, &sums);
    if (!err)
        err = sq_rollup_flush(c);
    if (!err)
        err = series_flush(c);
    if (!err)
        err = usage_flush(c);
    c->usage.used = 0; /* a failed call leaves no sums for the next */
    if (!err) /* still under the write lock; undone below if the commit fails */
        c->cache.writes_seen = atomic_fetch_add(&c->owner->reading_writes, 1) + 1;
    err = sq_tx_end(c, err);
    if (err) {
        sq_rollup_discard(c);
        sq_rollup_forget(c);
        cache_clear(&c->cache);
        memset(c->usage_ids, 0, sizeof c->usage_ids);
    }
    return err;
}

/* ---- reading queries -------------------------------------------------------------- */

static int query_series(sq_conn *c, const store_query *q, int64_t *out)
{
    if (!q || !q->device_id || !q->channel || q->limit == 0)
        return SS_INVAL;
    size_t dlen = strlen(q->device_id);
    size_t clen = strlen(q->channel);
    if (dlen > SS_ID_LEN || clen > SS_CHANNEL_MAX)
        return SS_NOT_FOUND;
    series_key k = {
        .device_id = q->device_id, .device_len = dlen, .channel = q->channel, .channel_len = clen};
    return series_find(c, &k, out, NULL);
}

/* Steps a query of (ts, value) rows into the callback. */
static int point_rows(sq_conn *c, stmt_id id, store_point_cb cb, void *ctx)
{
    sqlite3_stmt *st = c->stmts[id];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cb(ctx, sqlite3_column_int64(st, 0), sqlite3_column_double(st, 1)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, id, rc);
}

/* Finds the series of q and readies statement id over it: ?1 the series,
 * ?2 and ?3 the time range (the parameters every range query starts
 * with). SS_NOT_FOUND when there is no such series. */
static int range_stmt(sq_conn *c, const store_query *q, stmt_id id, sqlite3_stmt **st)
{
    int64_t series_id;
    int err = query_series(c, q, &series_id);
    if (!err)
        err = sq_stmt_get(c, id, st);
    if (err)
        return err;
    return sq_bind_check(c, id,
                         sqlite3_bind_int64(*st, 1, series_id) |
                             sqlite3_bind_int64(*st, 2, q->from) | sqlite3_bind_int64(*st, 3, q->to));
}

static int sq_query_points(store_engine_conn *ec, const store_query *q, store_point_cb cb,
                           void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    stmt_id id = q->desc ? STMT_POINTS_DESC : STMT_POINTS_ASC;
    sqlite3_stmt *st = NULL;
    int err = range_stmt(c, q, id, &st);
    if (!err)
        err = sq_bind_check(c, id, sqlite3_bind_int64(st, 4, sq_limit_i64(q->limit)));
    if (!err)
        return point_rows(c, id, cb, ctx);
    return err == SS_NOT_FOUND ? SS_OK : err;
}

static int sq_query_buckets(store_engine_conn *ec, const store_query *q, int64_t every_ms,
                            store_agg fn, store_point_cb cb, void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    if (every_ms <= 0 || (int)fn < (int)STORE_AGG_AVG || (int)fn > (int)STORE_AGG_LAST)
        return SS_INVAL;
    int64_t series_id;
    int err = query_series(c, q, &series_id);
    if (err)
        return err == SS_NOT_FOUND ? SS_OK : err;
    return sq_rollup_query(c, series_id, q, every_ms, fn, cb, ctx);
}

/* ---- channels --------------------------------------------------------------------- */

/* The rows of id (channel, count, last_ts, last_value) to cb. */
static int channel_rows(sq_conn *c, stmt_id id, const char *device_id, store_channel_cb cb,
                        void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, id, device_id, &st);
    if (err)
        return err;
    int rc;
    store_channel ch;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sq_col_text(st, 0, ch.name, sizeof ch.name);
        ch.count = sqlite3_column_int64(st, 1);
        ch.last_ts = sqlite3_column_int64(st, 2);
        ch.last_value = sqlite3_column_double(st, 3);
        if (cb(ctx, &ch) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, id, rc);
}

static int sq_channel_list(store_engine_conn *ec, const char *device_id, store_channel_cb cb,
                           void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    return channel_rows(c, STMT_CHANNEL_LIST, device_id, cb, ctx);
}

static int sq_channel_latest(store_engine_conn *ec, const char *device_id, store_channel_cb cb,
                             void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    return channel_rows(c, STMT_CHANNEL_LATEST, device_id, cb, ctx);
}

static int sq_channel_names(store_engine_conn *ec, const char *device_id,
                            int (*cb)(void *ctx, const char *name), void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, STMT_CHANNEL_NAMES, device_id, &st);
    if (err)
        return err;
    int rc;
    char name[SS_CHANNEL_MAX + 1];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sq_col_text(st, 0, name, sizeof name);
        if (cb(ctx, name) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, STMT_CHANNEL_NAMES, rc);
}

/* ---- export ------------------------------------------------------------------------ */

/* What one export page has taken so far. */
typedef struct export_page {
    sq_conn *c;
    const store_export_scan *s;
    store_export_cursor *cur;
    store_export_cb cb;
    void *ctx;
    size_t rows;
    size_t series;
    int full;  /* a budget is spent: the page ends at the cursor */
} export_page;

static int export_scan_valid(const store_export_scan *s, const store_export_cursor *cur)
{
    return s && cur && s->device_ids && s->n_devices > 0 && s->max_rows > 0 &&
           s->max_series > 0 && (s->n_channels == 0 || s->channels);
}

static int cmp_name(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

/* The first device at or after the cursor's. */
static size_t export_first_device(const store_export_scan *s, const char *device_id)
{
    size_t lo = 0, hi = s->n_devices;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->device_ids[mid], device_id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int export_channel_wanted(const store_export_scan *s, const char *channel)
{
    return s->n_channels == 0 ||
           bsearch(channel, s->channels, s->n_channels, sizeof *s->channels, cmp_name) != NULL;
}

/* The series' readings from the cursor's ts on, up to the page's budget;
 * the cursor moves past each one handed out. */
static int export_series(export_page *p, size_t device, int64_t series_id)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(p->c, STMT_POINTS_ASC, &st);
    int64_t from = p->cur->ts > p->s->from ? p->cur->ts : p->s->from;
    if (!err)
        err = sq_bind_check(p->c, STMT_POINTS_ASC,
                            sqlite3_bind_int64(st, 1, series_id) | sqlite3_bind_int64(st, 2, from) |
                                sqlite3_bind_int64(st, 3, p->s->to) |
                                sqlite3_bind_int64(st, 4, sq_limit_i64(p->s->max_rows - p->rows)));
    if (err)
        return err;
    int rc;
    store_export_row row = {.device = device, .channel = p->cur->channel};
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row.ts = sqlite3_column_int64(st, 0);
        row.value = sqlite3_column_double(st, 1);
        err = p->cb(p->ctx, &row);
        if (err) {
            sqlite3_reset(st);
            return err;
        }
        p->cur->ts = row.ts + 1;  /* row.ts < to: no overflow */
        if (++p->rows == p->s->max_rows)
            p->full = 1;
    }
    return sq_rows_end(p->c, STMT_POINTS_ASC, rc);
}

/* One series row of a device: moves the cursor onto it (a series after the
 * cursor's starts at `from`), then reads it unless a budget is spent. */
static int export_series_row(export_page *p, size_t device, sqlite3_stmt *st)
{
    const char *channel = (const char *)sqlite3_column_text(st, 1);
    if (!channel || !export_channel_wanted(p->s, channel))
        return SS_OK;
    if (strcmp(channel, p->cur->channel) != 0) {
        snprintf(p->cur->channel, sizeof p->cur->channel, "%s", channel);
        p->cur->ts = p->s->from;
    }
    if (p->series == p->s->max_series) {
        p->full = 1;
        return SS_OK;
    }
    p->series++;
    return export_series(p, device, sqlite3_column_int64(st, 0));
}

/* The device's series from the cursor's channel on, by channel. */
static int export_device(export_page *p, size_t device)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(p->c, STMT_EXPORT_SERIES, &st);
    /* Copied: the cursor's channel moves while the statement runs. */
    if (!err)
        err = sq_bind_check(p->c, STMT_EXPORT_SERIES,
                            sq_bind_text(st, 1, p->s->device_ids[device]) |
                                sqlite3_bind_text(st, 2, p->cur->channel, -1, SQLITE_TRANSIENT));
    if (err)
        return err;
    int rc;
    while (!err && !p->full && (rc = sqlite3_step(st)) == SQLITE_ROW)
        err = export_series_row(p, device, st);
    if (err || p->full) {
        sqlite3_reset(st);
        return err;
    }
    return sq_rows_end(p->c, STMT_EXPORT_SERIES, rc);
}

/* The devices from the cursor's on, until a budget is spent. */
static int export_devices(export_page *p)
{
    const store_export_scan *s = p->s;
    store_export_cursor *cur = p->cur;
    for (size_t d = export_first_device(s, cur->device_id); d < s->n_devices; d++) {
        if (strcmp(s->device_ids[d], cur->device_id) != 0) {
            snprintf(cur->device_id, sizeof cur->device_id, "%s", s->device_ids[d]);
            cur->channel[0] = '\0';
            cur->ts = s->from;
        }
        int err = export_device(p, d);
        if (err || p->full)
            return err;
    }
    cur->done = 1;
    return SS_OK;
}

/* An export reads each page of readings once, so a large cache is of no
 * use to it; and since its pages land on whichever pooled connection is
 * free, filling caches would soon leave every connection holding
 * STORE_CACHE_KIB of one scan. A page reads with a small cache, and the
 * connection gets its own size back after (what it held is read again,
 * from the OS's cache, when next needed). */
static int export_cache_size(sq_conn *c, int small)
{
    const char *sql = small ? "PRAGMA cache_size = -" STR(STORE_EXPORT_CACHE_KIB)
                            : "PRAGMA cache_size = -" STR(STORE_CACHE_KIB);
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? SS_OK : sq_err(c, rc, "export cache_size");
}

static int sq_export_page(store_engine_conn *ec, const store_export_scan *s,
                          store_export_cursor *cur, store_export_cb cb, void *ctx)
{
    if (!export_scan_valid(s, cur) || !cb)
        return SS_INVAL;
    export_page p = {.c = sq_conn_of(ec), .s = s, .cur = cur, .cb = cb, .ctx = ctx};
    if (cur->done || s->from >= s->to) {
        cur->done = 1;
        return SS_OK;
    }
    int err = export_cache_size(p.c, 1);
    if (!err)
        err = export_devices(&p);
    int restored = export_cache_size(p.c, 0);
    return err ? err : restored;
}

/* ---- deletion of a range ------------------------------------------------------------ */

typedef struct range_series {
    int64_t id;
    int64_t last_ts;
} range_series;

/* Appends one series to a list grown by doubling. */
static int range_list_add(range_series **list, size_t *n, size_t *cap, int64_t id,
                          int64_t last_ts)
{
    if (*n == *cap) {
        size_t grown_cap = *cap ? *cap * 2 : 16;
        range_series *grown = realloc(*list, grown_cap * sizeof *grown);
        if (!grown)
            return SS_NOMEM;
        *list = grown;
        *cap = grown_cap;
    }
    (*list)[(*n)++] = (range_series){id, last_ts};
    return SS_OK;
}

/* The series the range covers, read whole before any is changed (a series
 * row may be deleted on the way). OUT *list: the caller frees it. */
static int range_series_list(sq_conn *c, const store_range *r, range_series **list, size_t *n)
{
    sqlite3_stmt *st = NULL;
    *list = NULL;
    *n = 0;
    int err = sq_stmt_get(c, STMT_RANGE_SERIES, &st);
    if (err)
        return err;
    int rc = sq_bind_text(st, 1, r->device_id) |
             (r->channel ? sq_bind_text(st, 2, r->channel) : sqlite3_bind_null(st, 2));
    err = sq_bind_check(c, STMT_RANGE_SERIES, rc);
    size_t cap = 0;
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW)
        err = range_list_add(list, n, &cap, sqlite3_column_int64(st, 0),
                             sqlite3_column_int64(st, 1));
    if (err) {
        sqlite3_reset(st);
        return err;
    }
    return sq_rows_end(c, STMT_RANGE_SERIES, rc);
}

/* Binds ?1 the series, ?2 and ?3 a time range. */
static int range_bind(sq_conn *c, stmt_id id, int64_t series_id, int64_t from, int64_t to,
                      sqlite3_stmt **st)
{
    int err = sq_stmt_get(c, id, st);
    if (err)
        return err;
    return sq_bind_check(c, id,
                         sqlite3_bind_int64(*st, 1, series_id) | sqlite3_bind_int64(*st, 2, from) |
                             sqlite3_bind_int64(*st, 3, to));
}

/* Deletes up to `budget` readings of one series in [from, to), oldest
 * first. OUT deleted. */
static int range_series_chunk(sq_conn *c, int64_t series_id, const store_range *r,
                              size_t budget, size_t *deleted)
{
    sqlite3_stmt *st = NULL;
    int64_t end = r->to;
    /* The ts of the first reading past the budget: the chunk ends there. */
    int err = range_bind(c, STMT_RANGE_BOUND, series_id, r->from, r->to, &st);
    if (!err)
        err = sq_bind_check(c, STMT_RANGE_BOUND, sqlite3_bind_int64(st, 4, sq_limit_i64(budget)));
    if (!err)
        err = sq_step_int64(c, STMT_RANGE_BOUND, &end);
    if (err && err != SS_NOT_FOUND)
        return err;
    err = range_bind(c, STMT_RANGE_DELETE, series_id, r->from, end, &st);
    if (!err)
        err = sq_step_done(c, STMT_RANGE_DELETE);
    if (!err)
        *deleted = (size_t)sqlite3_changes(c->db);
    if (!err && *deleted > 0)
        err = sq_rollup_deleted(c, series_id, r->from, end);
    return err;
}

/* The series' newest remaining reading becomes its latest; with none left
 * the series goes. Inside the write lock: its id may sit in a writer's
 * series cache, so the generation moves (see store.device_generation). */
static int range_series_reset(sq_conn *c, int64_t series_id)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_SERIES_NEWEST, &st);
    if (!err)
        err = sq_bind_check(c, STMT_SERIES_NEWEST, sqlite3_bind_int64(st, 1, series_id));
    if (!err)
        err = sq_step_row(c, STMT_SERIES_NEWEST);
    if (err == SS_NOT_FOUND) {
        sqlite3_reset(st);
        atomic_fetch_add(&c->owner->device_generation, 1);
        err = sq_stmt_get(c, STMT_SERIES_DELETE, &st);
        if (!err)
            err = sq_bind_check(c, STMT_SERIES_DELETE, sqlite3_bind_int64(st, 1, series_id));
        return err ? err : sq_step_done(c, STMT_SERIES_DELETE);
    }
    if (err)
        return err;
    int64_t ts = sqlite3_column_int64(st, 0);
    double value = sqlite3_column_double(st, 1);
    sqlite3_reset(st);
    err = sq_stmt_get(c, STMT_SERIES_RESET_LAST, &st);
    if (!err)
        err = sq_bind_check(c, STMT_SERIES_RESET_LAST,
                            sqlite3_bind_int64(st, 1, series_id) | sqlite3_bind_int64(st, 2, ts) |
                                sqlite3_bind_double(st, 3, value));
    return err ? err : sq_step_done(c, STMT_SERIES_RESET_LAST);
}

static int range_rows(sq_conn *c, const store_range *r, size_t max_rows, size_t *deleted)
{
    range_series *list = NULL;
    size_t n = 0;
    int err = range_series_list(c, r, &list, &n);
    for (size_t i = 0; !err && i < n && *deleted < max_rows; i++) {
        size_t k = 0;
        err = range_series_chunk(c, list[i].id, r, max_rows - *deleted, &k);
        *deleted += k;
        /* Only a series whose newest reading lay in the range lost it. */
        if (!err && k > 0 && list[i].last_ts >= r->from && list[i].last_ts < r->to)
            err = range_series_reset(c, list[i].id);
    }
    free(list);
    return err;
}

static int sq_delete_readings(store_engine_conn *ec, const store_range *r, size_t max_rows,
                              size_t *deleted, int *more)
{
    sq_conn *c = sq_conn_of(ec);
    *deleted = 0;
    *more = 0;
    if (!r || !r->device_id || max_rows == 0 || r->from >= r->to)
        return SS_INVAL;
    int err = sq_tx_begin(c);
    if (err)
        return err;
    err = sq_tx_end(c, range_rows(c, r, max_rows, deleted));
    if (err)
        *deleted = 0;
    /* A step that used its whole budget may have left some. */
    *more = !err && *deleted == max_rows;
    return err;
}

/* ---- the table ---------------------------------------------------------------- */

const store_series_table sq_series_table = {
    .purge_step = sq_purge_step,
    .purge_pending = sq_purge_pending,
    .drop_devices = sq_drop_devices,
    .write_batches = sq_write_batches,
    .channel_list = sq_channel_list,
    .channel_latest = sq_channel_latest,
    .channel_names = sq_channel_names,
    .query_points = sq_query_points,
    .query_buckets = sq_query_buckets,
    .export_page = sq_export_page,
    .delete_readings = sq_delete_readings,
};
