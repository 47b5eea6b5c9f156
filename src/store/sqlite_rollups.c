/* sqlite_rollups.c — per-minute rollups of the readings, and the bucketed
 * queries that read them.
 *
 * A rollup row holds, for one series and one minute of ts, the count, sum,
 * min, max, first and last value of its readings. A bucketed query whose
 * width is a whole number of minutes reads one row a minute instead of
 * every reading (a chart of a month at one reading a second: 43,200 rows
 * instead of 2.6 million); the partial minutes at the ends of its range
 * come from the readings.
 *
 * The rollups are written in the readings' own transaction, so they are
 * never behind nor ahead of them:
 * - a reading newer than every stored one of its series (the common case:
 *   a device sends in order) adds to its minute's row;
 * - any other may replace a stored reading, or fall between two: its
 *   minute is summed again from the readings before the commit;
 * - a range delete drops the minutes it covers and sums the two at its
 *   edges again; a purged series loses its rollups with its readings. */
#include "store/sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* Written out once this full, at a point where no reading of the
 * transaction waits in a half-bound statement (a minute summed again must
 * see them all): a multi-row upsert holds at most SQ_UPSERT_ROWS. */
#define ROLLUP_SPILL_AT (SQ_ROLLUP_FILL_MAX - SQ_UPSERT_ROWS)
_Static_assert(SQ_ROLLUP_FILL_MAX > 2 * SQ_UPSERT_ROWS, "a spill leaves room for a statement");

/* One minute's sums: gathered in memory, or read back from a row. */
typedef struct rollup_sums {
    int64_t n;
    long double total;  /* wider than the values, as the raw buckets sum */
    double lo, hi, first, last;
} rollup_sums;

typedef struct rollup_slot {
    int64_t series_id;  /* 0: empty */
    int64_t minute;     /* the minute's first ms */
    int64_t last_ts;    /* the newest ts added: a reading after it adds too */
    int resum;          /* sum the minute again from the readings */
    rollup_sums sums;
} rollup_slot;

/* A minute's newest ts as this connection last wrote it: never older than
 * what is stored (it only grows, and is forgotten when another connection
 * may have written). */
typedef struct minute_mark {
    int64_t series_id;  /* 0: none */
    int64_t minute;
    int64_t last_ts;    /* 0: the minute has no reading */
} minute_mark;

struct rollup_acc {
    rollup_slot slots[SQ_ROLLUP_SLOTS];
    uint32_t filled[SQ_ROLLUP_FILL_MAX];  /* slot indexes, to write and clear */
    size_t used;
    minute_mark marks[SQ_ROLLUP_MARKS];
};

static int64_t minute_of(int64_t ts)
{
    return ts - ts % SQ_ROLLUP_MS;  /* ts >= SS_TS_MIN_MS > 0 */
}

/* The end of the minute starting at m (exclusive), saturated: a range
 * may end at the largest ts (a delete of all). */
static int64_t minute_end(int64_t m)
{
    return m > INT64_MAX - SQ_ROLLUP_MS ? INT64_MAX : m + SQ_ROLLUP_MS;
}

static void sums_one(rollup_sums *s, double v)
{
    *s = (rollup_sums){.n = 1, .total = v, .lo = v, .hi = v, .first = v, .last = v};
}

/* Adds readings later than every one in s. */
static void sums_add_later(rollup_sums *s, const rollup_sums *later)
{
    if (s->n == 0) {
        *s = *later;
        return;
    }
    s->n += later->n;
    s->total += later->total;
    if (later->lo < s->lo)
        s->lo = later->lo;
    if (later->hi > s->hi)
        s->hi = later->hi;
    s->last = later->last;
}

/* ---- gathering in a write transaction ----------------------------------------- */

static int acc_ready(sq_conn *c)
{
    if (!c->rollups)
        c->rollups = calloc(1, sizeof *c->rollups);
    return c->rollups ? SS_OK : SS_NOMEM;
}

static uint32_t slot_hash(int64_t series_id, int64_t minute)
{
    uint64_t k = (uint64_t)series_id * 0x9E3779B97F4A7C15u ^ (uint64_t)(minute / SQ_ROLLUP_MS);
    k ^= k >> 29;
    k *= 0xBF58476D1CE4E5B9u;
    return (uint32_t)(k >> 32);
}

/* The slot of (series, minute), or the empty one where it belongs. */
static rollup_slot *acc_probe(rollup_acc *a, int64_t series_id, int64_t minute)
{
    uint32_t mask = SQ_ROLLUP_SLOTS - 1;
    for (uint32_t i = slot_hash(series_id, minute) & mask;; i = (i + 1) & mask) {
        rollup_slot *s = &a->slots[i];
        if (s->series_id == 0 || (s->series_id == series_id && s->minute == minute))
            return s;
    }
}

static minute_mark *mark_of(rollup_acc *a, int64_t series_id, int64_t minute)
{
    return &a->marks[slot_hash(series_id, minute) & (SQ_ROLLUP_MARKS - 1)];
}

/* The minute's newest ts as last written here; INT64_MAX: not known. */
static int64_t mark_get(rollup_acc *a, int64_t series_id, int64_t minute)
{
    const minute_mark *m = mark_of(a, series_id, minute);
    return m->series_id == series_id && m->minute == minute ? m->last_ts : INT64_MAX;
}

static void mark_set(rollup_acc *a, int64_t series_id, int64_t minute, int64_t last_ts)
{
    *mark_of(a, series_id, minute) =
        (minute_mark){.series_id = series_id, .minute = minute, .last_ts = last_ts};
}

void sq_rollup_forget(sq_conn *c)
{
    if (c->rollups)
        memset(c->rollups->marks, 0, sizeof c->rollups->marks);
}

int sq_rollup_note(sq_conn *c, series_slot *s, const ss_reading *r)
{
    int err = acc_ready(c);
    if (err)
        return err;
    rollup_acc *a = c->rollups;
    int64_t minute = minute_of(r->ts);
    /* After every stored reading of its minute: newer than its series' or
     * than the minute's as written here last. Else it may replace one. */
    int after = r->ts > s->known_ts || r->ts > mark_get(a, s->series_id, minute);
    if (r->ts > s->known_ts)
        s->known_ts = r->ts;
    rollup_slot *slot = acc_probe(a, s->series_id, minute);
    if (slot->series_id == 0) {
        if (a->used >= SQ_ROLLUP_FILL_MAX)
            return SS_STORE;  /* a caller skipped sq_rollup_spill: a bug */
        a->filled[a->used++] = (uint32_t)(slot - a->slots);
        slot->series_id = s->series_id;
        slot->minute = minute;
        slot->last_ts = r->ts;
        slot->resum = !after;
        sums_one(&slot->sums, r->value);
        return SS_OK;
    }
    /* The slot holds what this transaction added after the stored ones. */
    if (slot->resum || r->ts <= slot->last_ts) {
        slot->resum = 1;
        return SS_OK;
    }
    slot->last_ts = r->ts;
    rollup_sums one;
    sums_one(&one, r->value);
    sums_add_later(&slot->sums, &one);
    return SS_OK;
}

static int sums_bind(sq_conn *c, stmt_id id, int64_t series_id, int64_t minute,
                     const rollup_sums *s)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, id, &st);
    if (err)
        return err;
    return sq_bind_check(c, id,
                         sqlite3_bind_int64(st, 1, series_id) | sqlite3_bind_int64(st, 2, minute) |
                             sqlite3_bind_int64(st, 3, s->n) |
                             sqlite3_bind_double(st, 4, (double)s->total) |
                             sqlite3_bind_double(st, 5, s->lo) | sqlite3_bind_double(st, 6, s->hi) |
                             sqlite3_bind_double(st, 7, s->first) |
                             sqlite3_bind_double(st, 8, s->last));
}

static int range_bind(sq_conn *c, stmt_id id, int64_t series_id, int64_t from, int64_t to)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, id, &st);
    if (err)
        return err;
    return sq_bind_check(c, id,
                         sqlite3_bind_int64(st, 1, series_id) | sqlite3_bind_int64(st, 2, from) |
                             sqlite3_bind_int64(st, 3, to));
}

/* The minute's row from its readings as they stand; none left, no row.
 * The connection marks the minute's newest ts. */
static int rollup_resum(sq_conn *c, int64_t series_id, int64_t minute)
{
    int err = range_bind(c, STMT_SCAN_ASC, series_id, minute, minute_end(minute));
    if (err)
        return err;
    sqlite3_stmt *st = c->stmts[STMT_SCAN_ASC];
    rollup_sums sums = {.n = 0};
    int64_t last_ts = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rollup_sums one;
        last_ts = sqlite3_column_int64(st, 0);
        sums_one(&one, sqlite3_column_double(st, 1));
        sums_add_later(&sums, &one);
    }
    err = sq_rows_end(c, STMT_SCAN_ASC, rc);
    if (err)
        return err;
    if (c->rollups)
        mark_set(c->rollups, series_id, minute, last_ts);
    if (sums.n == 0) {
        err = range_bind(c, STMT_ROLLUP_DROP, series_id, minute, minute_end(minute));
        return err ? err : sq_step_done(c, STMT_ROLLUP_DROP);
    }
    err = sums_bind(c, STMT_ROLLUP_PUT, series_id, minute, &sums);
    return err ? err : sq_step_done(c, STMT_ROLLUP_PUT);
}

static int slot_write(sq_conn *c, const rollup_slot *s)
{
    if (s->resum)
        return rollup_resum(c, s->series_id, s->minute);
    int err = sums_bind(c, STMT_ROLLUP_ADD, s->series_id, s->minute, &s->sums);
    if (!err)
        err = sq_step_done(c, STMT_ROLLUP_ADD);
    if (!err)
        mark_set(c->rollups, s->series_id, s->minute, s->last_ts);
    return err;
}

void sq_rollup_discard(sq_conn *c)
{
    rollup_acc *a = c->rollups;
    if (!a)
        return;
    for (size_t i = 0; i < a->used; i++)
        a->slots[a->filled[i]].series_id = 0;
    a->used = 0;
}

int sq_rollup_flush(sq_conn *c)
{
    rollup_acc *a = c->rollups;
    int err = SS_OK;
    for (size_t i = 0; a && i < a->used && !err; i++)
        err = slot_write(c, &a->slots[a->filled[i]]);
    sq_rollup_discard(c);
    return err;
}

int sq_rollup_spill(sq_conn *c)
{
    if (!c->rollups || c->rollups->used < ROLLUP_SPILL_AT)
        return SS_OK;
    return sq_rollup_flush(c);
}

void sq_rollup_free(sq_conn *c)
{
    free(c->rollups);
    c->rollups = NULL;
}

int sq_rollup_deleted(sq_conn *c, int64_t series_id, int64_t from, int64_t to)
{
    if (from >= to)
        return SS_OK;
    int64_t first = minute_of(from), last = minute_of(to - 1);
    int err = range_bind(c, STMT_ROLLUP_DROP, series_id, first, minute_end(last));
    if (!err)
        err = sq_step_done(c, STMT_ROLLUP_DROP);
    if (!err)
        err = rollup_resum(c, series_id, first);
    if (!err && last != first)
        err = rollup_resum(c, series_id, last);
    return err;
}

/* ---- bucketed queries ------------------------------------------------------- */

/* The buckets of one query as its rows stream by in ts order (desc when
 * asked): readings, and minutes' rollups, which never straddle a bucket
 * (its width is a whole number of minutes when they are read). SQL's
 * GROUP BY ts - ts % every cannot know the bucket grows with ts, so it
 * would sort every row of the range in a temp B-tree; a scan of the
 * primary key meets each bucket's rows together, in order. */
typedef struct bucket_run {
    store_agg fn;
    int desc;
    int64_t every;
    int64_t start;  /* of the bucket being gathered */
    rollup_sums sums;  /* n == 0: none yet */
    size_t sent, limit;
    int stop;
    store_point_cb cb;
    void *ctx;
} bucket_run;

static double bucket_value(const bucket_run *b)
{
    const rollup_sums *s = &b->sums;
    switch (b->fn) {
    case STORE_AGG_AVG:
        return (double)(s->total / (long double)s->n);
    case STORE_AGG_SUM:
        return (double)s->total;
    case STORE_AGG_COUNT:
        return (double)s->n;
    case STORE_AGG_MIN:
        return s->lo;
    case STORE_AGG_MAX:
        return s->hi;
    case STORE_AGG_FIRST:
        return s->first;
    case STORE_AGG_LAST:
        return s->last;
    }
    return 0;
}

/* Rows at ts come next: the bucket before theirs goes to the callback. */
static void bucket_move(bucket_run *b, int64_t ts)
{
    if (b->sums.n > 0 && (ts < b->start || ts - b->start >= b->every)) {
        b->stop = b->cb(b->ctx, b->start, bucket_value(b)) != 0 || ++b->sent >= b->limit;
        b->sums.n = 0;
    }
    if (b->sums.n == 0) /* a division per bucket rather than per row */
        b->start = ts - ts % b->every;
}

/* Adds rows in scan order: a desc scan meets the earlier ones after. */
static void bucket_add(bucket_run *b, const rollup_sums *s)
{
    if (!b->desc) {
        sums_add_later(&b->sums, s);
        return;
    }
    rollup_sums later = b->sums;
    b->sums = *s;
    if (later.n > 0)
        sums_add_later(&b->sums, &later);
}

/* The rollup scan of fn's sum, in the run's order. */
static stmt_id rollup_scan(const bucket_run *b)
{
    static const stmt_id asc[] = {
        [STORE_AGG_AVG] = STMT_ROLLUP_TOTAL_ASC, [STORE_AGG_SUM] = STMT_ROLLUP_TOTAL_ASC,
        [STORE_AGG_COUNT] = STMT_ROLLUP_TOTAL_ASC, [STORE_AGG_MIN] = STMT_ROLLUP_LO_ASC,
        [STORE_AGG_MAX] = STMT_ROLLUP_HI_ASC, [STORE_AGG_FIRST] = STMT_ROLLUP_FIRST_ASC,
        [STORE_AGG_LAST] = STMT_ROLLUP_LAST_ASC,
    };
    static const stmt_id desc[] = {
        [STORE_AGG_AVG] = STMT_ROLLUP_TOTAL_DESC, [STORE_AGG_SUM] = STMT_ROLLUP_TOTAL_DESC,
        [STORE_AGG_COUNT] = STMT_ROLLUP_TOTAL_DESC, [STORE_AGG_MIN] = STMT_ROLLUP_LO_DESC,
        [STORE_AGG_MAX] = STMT_ROLLUP_HI_DESC, [STORE_AGG_FIRST] = STMT_ROLLUP_FIRST_DESC,
        [STORE_AGG_LAST] = STMT_ROLLUP_LAST_DESC,
    };
    return b->desc ? desc[b->fn] : asc[b->fn];
}

/* Steps [from, to) of the series into the run, in its order: the readings
 * (rows of ts, value), or the rollups (rows of minute, n and fn's sum, which
 * stands in every field of the sums: bucket_value reads only fn's own). */
static int bucket_scan(sq_conn *c, bucket_run *b, int rollups, int64_t series_id, int64_t from,
                       int64_t to)
{
    stmt_id id = rollups ? rollup_scan(b) : b->desc ? STMT_SCAN_DESC : STMT_SCAN_ASC;
    if (from >= to || b->stop)
        return SS_OK;
    int err = range_bind(c, id, series_id, from, to);
    if (err)
        return err;
    sqlite3_stmt *st = c->stmts[id];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        bucket_move(b, sqlite3_column_int64(st, 0));
        if (b->stop)
            break;
        double v = sqlite3_column_double(st, rollups ? 2 : 1);
        rollup_sums s = {.n = rollups ? sqlite3_column_int64(st, 1) : 1, .total = v, .lo = v,
                         .hi = v, .first = v, .last = v};
        bucket_add(b, &s);
    }
    return sq_rows_end(c, id, b->stop ? SQLITE_DONE : rc);
}

/* The range's whole minutes [*lo, *hi); none when lo >= hi. */
static void whole_minutes(const store_query *q, int64_t every_ms, int64_t *lo, int64_t *hi)
{
    *lo = *hi = q->from;
    if (every_ms % SQ_ROLLUP_MS != 0 || q->from < 0 || q->to <= 0 ||
        q->from > INT64_MAX - SQ_ROLLUP_MS)
        return;
    int64_t up = minute_of(q->from);
    *lo = up == q->from ? up : up + SQ_ROLLUP_MS;
    *hi = minute_of(q->to);
    if (*hi < *lo)
        *hi = *lo;
}

int sq_rollup_query(sq_conn *c, int64_t series_id, const store_query *q, int64_t every_ms,
                    store_agg fn, store_point_cb cb, void *ctx)
{
    bucket_run b = {.fn = fn, .desc = q->desc, .every = every_ms, .limit = q->limit,
                    .cb = cb, .ctx = ctx};
    int64_t lo, hi;
    whole_minutes(q, every_ms, &lo, &hi);
    int err;
    if (lo >= hi) {
        err = bucket_scan(c, &b, 0, series_id, q->from, q->to);
    } else if (!q->desc) {
        err = bucket_scan(c, &b, 0, series_id, q->from, lo);
        if (!err)
            err = bucket_scan(c, &b, 1, series_id, lo, hi);
        if (!err)
            err = bucket_scan(c, &b, 0, series_id, hi, q->to);
    } else {
        err = bucket_scan(c, &b, 0, series_id, hi, q->to);
        if (!err)
            err = bucket_scan(c, &b, 1, series_id, lo, hi);
        if (!err)
            err = bucket_scan(c, &b, 0, series_id, q->from, lo);
    }
    if (!err && !b.stop && b.sums.n > 0)
        cb(ctx, b.start, bucket_value(&b));
    return err;
}
