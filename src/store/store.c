/* store.c — the store: the engine of each concern, chosen by the store URL,
 * and the pool of connections.
 *
 * A store_conn holds one connection of each engine the store uses, and
 * beside it the table and connection of each concern, so a store_* call
 * (store_calls.c) is one indirect call into its engine. A connection goes
 * back to the pool whole and keeps its engine connections (with their
 * prepared statements and caches) until store_close.
 *
 * The calls that write across concerns are here too, as the accounts
 * engine's call followed by the series engine's: store_device_delete and
 * store_org_delete. */
#include "store/store.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "store/store_engine.h"
#include "store/store_internal.h"

#define LOG_MOD "store"

/* The engines this build has, tried in order by the scheme of the URL: the
 * next engine is added here. */
static const store_engine_kind *const store_engines[] = {
    &store_sqlite_engine,
};
#define STORE_ENGINE_KINDS (sizeof store_engines / sizeof store_engines[0])

/* Room for the list of known schemes in the error of an unknown one. */
#define STORE_SCHEMES_TEXT_MAX 256
/* Device ids of an org collected before its delete, first allocation; it
 * doubles as needed (an org's devices are bounded by its quota alone). */
#define STORE_DROP_IDS_FIRST 16

struct store {
    /* The engines in use, each once; a concern names one by index. */
    const store_engine_kind *kind[STORE_PARTS];
    store_engine *engine[STORE_PARTS];
    size_t n_engines;
    size_t engine_of[STORE_PARTS];
    const store_accounts_table *accounts;
    const store_series_table *series;
    const store_usage_table *usage;
    const store_broker_table *broker;
    const store_dashboards_table *dashboards;
    pthread_mutex_t lock; /* guards idle and open_count */
    store_conn *idle;
    size_t open_count;
};

void store_engine_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static const store_engine_kind *kind_of_url(const char *url)
{
    for (size_t i = 0; i < STORE_ENGINE_KINDS; i++) {
        const char *scheme = store_engines[i]->scheme;
        if (strncmp(url, scheme, strlen(scheme)) == 0)
            return store_engines[i];
    }
    return NULL;
}

static void unknown_url(const char *url, char *errbuf, size_t errlen)
{
    char schemes[STORE_SCHEMES_TEXT_MAX] = "";
    size_t used = 0;
    for (size_t i = 0; i < STORE_ENGINE_KINDS && used < sizeof schemes; i++) {
        int n = snprintf(schemes + used, sizeof schemes - used, "%s\"%s\" (%s)", i ? ", " : "",
                         store_engines[i]->scheme, store_engines[i]->name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    store_engine_err(errbuf, errlen,
                     "unknown store url \"%s\": the known schemes are %s, as in "
                     "\"sqlite:\" or \"sqlite:/path/file.db\"",
                     url, schemes);
}

/* A series URL that names a second engine: NULL, empty or equal to the
 * main URL leave one engine serving every concern. */
static int split_url(const store_options *opt)
{
    return opt->series_url && opt->series_url[0] && strcmp(opt->series_url, opt->url) != 0;
}

/* The engines each concern needs: accounts from the first, series and
 * usage from the last (the same one when there is one). A concern an
 * engine does not keep fails the open, as no other engine is named to
 * keep it. */
static int parts_assign(store *s, const store_engine_kind *first, const store_engine_kind *last,
                        int split, char *errbuf, size_t errlen)
{
    if (!first->accounts || !first->broker || !first->dashboards || !last->series ||
        !last->usage) {
        store_engine_err(errbuf, errlen,
                         "the %s store keeps only part of the data: name an engine for the "
                         "%s",
                         !first->accounts ? first->name : last->name,
                         !first->accounts ? "accounts" : "series and usage");
        return SS_INVAL;
    }
    s->accounts = first->accounts;
    s->broker = first->broker;
    s->dashboards = first->dashboards;
    s->series = last->series;
    s->usage = last->usage;
    size_t series_engine = split ? 1 : 0;
    s->engine_of[STORE_PART_ACCOUNTS] = 0;
    s->engine_of[STORE_PART_SERIES] = series_engine;
    s->engine_of[STORE_PART_USAGE] = series_engine;
    return SS_OK;
}

static void engines_close(store *s)
{
    for (size_t i = 0; i < s->n_engines; i++)
        s->kind[i]->close(s->engine[i]);
    s->n_engines = 0;
}

static const store_engine_kind *kind_or_err(const char *url, char *errbuf, size_t errlen)
{
    const store_engine_kind *k = kind_of_url(url);
    if (!k)
        unknown_url(url, errbuf, errlen);
    return k;
}

/* Opens the engine of each URL: one serving all, or the accounts engine
 * and the series engine. */
static int engines_open(store *s, const store_options *opt, char *errbuf, size_t errlen)
{
    int split = split_url(opt);
    const store_engine_kind *first = kind_or_err(opt->url, errbuf, errlen);
    const store_engine_kind *last = split ? kind_or_err(opt->series_url, errbuf, errlen) : first;
    if (!first || !last)
        return SS_INVAL;
    int err = parts_assign(s, first, last, split, errbuf, errlen);
    if (err)
        return err;
    unsigned accounts = STORE_PART_BIT(STORE_PART_ACCOUNTS);
    err = first->open(opt, split ? accounts : STORE_PARTS_ALL, &s->engine[0], errbuf, errlen);
    if (err)
        return err;
    s->kind[s->n_engines++] = first;
    if (!split)
        return SS_OK;
    store_options series_opt = *opt;
    series_opt.url = opt->series_url;
    series_opt.series_url = NULL;
    err = last->open(&series_opt, STORE_PARTS_ALL & ~accounts, &s->engine[1], errbuf, errlen);
    if (err) {
        engines_close(s);
        return err;
    }
    s->kind[s->n_engines++] = last;
    return SS_OK;
}

int store_open(const store_options *opt, store **out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!opt || !out || !opt->url) {
        store_engine_err(errbuf, errlen, "no store url");
        return SS_INVAL;
    }
    store *s = calloc(1, sizeof *s);
    if (!s)
        return SS_NOMEM;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return SS_NOMEM;
    }
    int err = engines_open(s, opt, errbuf, errlen);
    if (err) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        return err;
    }
    *out = s;
    return SS_OK;
}

static void conn_free(store *s, store_conn *c)
{
    for (size_t i = 0; i < s->n_engines; i++)
        if (c->conn[i])
            s->kind[i]->conn_close(c->conn[i]);
    free(c);
}

void store_close(store *s)
{
    if (!s)
        return;
    size_t closed = 0;
    while (s->idle) {
        store_conn *c = s->idle;
        s->idle = c->next_idle;
        conn_free(s, c);
        closed++;
    }
    /* A connection still out is a bug in the caller; freeing under it
     * would turn that into a use after free, so it leaks instead. */
    if (closed != s->open_count)
        log_error(LOG_MOD, "closed with %zu connection(s) still acquired", s->open_count - closed);
    engines_close(s);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int conn_new(store *s, store_conn **out)
{
    store_conn *c = calloc(1, sizeof *c);
    if (!c)
        return SS_NOMEM;
    c->owner = s;
    int err = SS_OK;
    for (size_t i = 0; i < s->n_engines && !err; i++)
        err = s->kind[i]->conn_open(s->engine[i], &c->conn[i]);
    if (err) {
        conn_free(s, c);
        return err == SS_NOMEM ? SS_NOMEM : SS_STORE;
    }
    c->accounts = s->accounts;
    c->acc = c->conn[s->engine_of[STORE_PART_ACCOUNTS]];
    c->broker = s->broker;
    c->dashboards = s->dashboards;
    c->series = s->series;
    c->ser = c->conn[s->engine_of[STORE_PART_SERIES]];
    c->usage = s->usage;
    c->use = c->conn[s->engine_of[STORE_PART_USAGE]];
    *out = c;
    return SS_OK;
}

int store_conn_acquire(store *s, store_conn **out)
{
    pthread_mutex_lock(&s->lock);
    store_conn *c = s->idle;
    if (c)
        s->idle = c->next_idle;
    pthread_mutex_unlock(&s->lock);
    if (c) {
        c->next_idle = NULL;
        *out = c;
        return SS_OK;
    }
    int err = conn_new(s, &c);
    if (err)
        return err;
    pthread_mutex_lock(&s->lock);
    s->open_count++;
    pthread_mutex_unlock(&s->lock);
    *out = c;
    return SS_OK;
}

void store_conn_release(store *s, store_conn *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < s->n_engines; i++)
        s->kind[i]->conn_reset(c->conn[i]);
    pthread_mutex_lock(&s->lock);
    c->next_idle = s->idle;
    s->idle = c;
    pthread_mutex_unlock(&s->lock);
}

store_engine_conn *store_conn_engine(store_conn *c, store_part part)
{
    return c->conn[c->owner->engine_of[part]];
}

/* The calls below ask every engine, each of them even when one fails: the
 * store is as healthy, as full and as roomy as the worst of them. */

typedef int (*engine_conn_call)(const store_engine_kind *k, store_engine_conn *ec);

static int each_engine_conn(store_conn *c, engine_conn_call call)
{
    store *s = c->owner;
    int worst = SS_OK;
    for (size_t i = 0; i < s->n_engines; i++) {
        int err = call(s->kind[i], c->conn[i]);
        if (err && !worst)
            worst = err;
    }
    return worst;
}

static int call_ping(const store_engine_kind *k, store_engine_conn *ec)
{
    return k->ping(ec);
}

static int call_checkpoint(const store_engine_kind *k, store_engine_conn *ec)
{
    return k->checkpoint(ec);
}

static int call_probe_room(const store_engine_kind *k, store_engine_conn *ec)
{
    return k->probe_room(ec);
}

int store_ping(store_conn *c)
{
    return each_engine_conn(c, call_ping);
}

int store_checkpoint(store_conn *c)
{
    return each_engine_conn(c, call_checkpoint);
}

int store_probe_room(store_conn *c)
{
    return each_engine_conn(c, call_probe_room);
}

int store_full(store *s)
{
    for (size_t i = 0; i < s->n_engines; i++)
        if (s->kind[i]->full(s->engine[i]))
            return 1;
    return 0;
}

int store_room_to_write(store *s)
{
    for (size_t i = 0; i < s->n_engines; i++)
        if (!s->kind[i]->room_to_write(s->engine[i]))
            return 0;
    return 1;
}

/* ---- calls across concerns -------------------------------------------------- */

/* When one engine serves the accounts and the series, its delete drops the
 * series in the same transaction (store_accounts.h): nothing to add. Else
 * the series engine drops them after the accounts delete, also when that
 * delete found no such device, so a delete repeated after a failed drop
 * finishes it. */
int store_device_delete(store_conn *c, const char *id)
{
    int err = c->accounts->device_delete(c->acc, id);
    if (c->acc == c->ser || (err && err != SS_NOT_FOUND))
        return err;
    int dropped = c->series->drop_devices(c->ser, &id, 1);
    return err ? err : dropped;
}

typedef struct device_ids {
    char (*id)[SS_ID_LEN + 1];
    const char **ptr;
    size_t n, cap;
    int nomem; /* the list stopped short */
} device_ids;

static int device_ids_grow(device_ids *d)
{
    size_t cap = d->cap ? 2 * d->cap : STORE_DROP_IDS_FIRST;
    char(*id)[SS_ID_LEN + 1] = realloc(d->id, cap * sizeof *id);
    if (!id)
        return SS_NOMEM;
    d->id = id;
    d->cap = cap;
    return SS_OK;
}

static int device_ids_add(void *ctx, const char *device_id)
{
    device_ids *d = ctx;
    if (d->n == d->cap && device_ids_grow(d) != SS_OK) {
        d->nomem = 1;
        return 1;
    }
    snprintf(d->id[d->n++], sizeof d->id[0], "%s", device_id);
    return 0;
}

/* The pointers drop_devices takes, once the list is whole. */
static int device_ids_index(device_ids *d)
{
    d->ptr = calloc(d->n ? d->n : 1, sizeof *d->ptr);
    if (!d->ptr)
        return SS_NOMEM;
    for (size_t i = 0; i < d->n; i++)
        d->ptr[i] = d->id[i];
    return SS_OK;
}

/* The org's device ids are read before its delete, which takes them from
 * the accounts; the series engine then drops their series. A device added
 * to the org between the two calls goes with the org without its series
 * being dropped: it has none yet unless a batch for it committed in that
 * moment (docs/roadmap.md). */
int store_org_delete(store_conn *c, const char *id)
{
    if (c->acc == c->ser)
        return c->accounts->org_delete(c->acc, id);
    device_ids d = {0};
    int err = c->accounts->org_device_ids(c->acc, id, device_ids_add, &d);
    if (!err && d.nomem)
        err = SS_NOMEM;
    if (!err)
        err = device_ids_index(&d);
    if (!err)
        err = c->accounts->org_delete(c->acc, id);
    if (!err && d.n > 0)
        err = c->series->drop_devices(c->ser, d.ptr, d.n);
    free(d.ptr);
    free(d.id);
    return err;
}
