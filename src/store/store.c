/* store.c — the store: the engine of each concern, chosen by the store URL,
 * and the pool of connections.
 *
 * A store_conn holds one connection of each engine the store uses, and
 * beside it the table and connection of each concern, so a store_* call
 * (store_calls.c) is one indirect call into its engine. A connection goes
 * back to the pool whole and keeps its engine connections (with their
 * prepared statements and caches) until store_close. */
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

struct store {
    /* The engines in use, each once; a concern names one by index. */
    const store_engine_kind *kind[STORE_PARTS];
    store_engine *engine[STORE_PARTS];
    size_t n_engines;
    size_t engine_of[STORE_PARTS];
    const store_accounts_table *accounts;
    const store_series_table *series;
    const store_usage_table *usage;
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

/* One engine serves every concern: the url names it. A concern the engine
 * does not keep fails the open, as no other engine is named to keep it. */
static int parts_assign(store *s, const store_engine_kind *k, char *errbuf, size_t errlen)
{
    if (!k->accounts || !k->series || !k->usage) {
        store_engine_err(errbuf, errlen,
                         "the %s store keeps only part of the data: it cannot be the "
                         "only store",
                         k->name);
        return SS_INVAL;
    }
    s->accounts = k->accounts;
    s->series = k->series;
    s->usage = k->usage;
    for (size_t p = 0; p < STORE_PARTS; p++)
        s->engine_of[p] = 0;
    return SS_OK;
}

static void engines_close(store *s)
{
    for (size_t i = 0; i < s->n_engines; i++)
        s->kind[i]->close(s->engine[i]);
    s->n_engines = 0;
}

int store_open(const store_options *opt, store **out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!opt || !out || !opt->url) {
        store_engine_err(errbuf, errlen, "no store url");
        return SS_INVAL;
    }
    const store_engine_kind *k = kind_of_url(opt->url);
    if (!k) {
        unknown_url(opt->url, errbuf, errlen);
        return SS_INVAL;
    }
    store *s = calloc(1, sizeof *s);
    if (!s)
        return SS_NOMEM;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return SS_NOMEM;
    }
    int err = parts_assign(s, k, errbuf, errlen);
    if (!err)
        err = k->open(opt, &s->engine[0], errbuf, errlen);
    if (err) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        return err;
    }
    s->kind[0] = k;
    s->n_engines = 1;
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
