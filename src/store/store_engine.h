/* store_engine.h — how an engine plugs into the store: for the store
 * (store.c) and the engines (sqlite_*.c), never for the rest of SensorSpace,
 * which sees store.h only.
 *
 * An engine is a set of functions with its own handle, chosen by the scheme
 * of the store URL (the SQLite VFS habit): the calls that manage its
 * connections and disk, and up to three tables of functions, one per
 * concern (store_accounts.h, store_series.h, store_usage.h). The store
 * keeps, per concern, the table and the engine serving it, and per
 * store_conn one connection of each engine: a store_* call costs one
 * indirect call into its engine, per call and never per reading.
 *
 * The store URL names one engine, which serves all three; a second URL
 * (store_options.series_url) names an engine for the series and the usage
 * together, the accounts staying with the first (store.c, parts_assign).
 * The usage goes with the series because "usage of stored readings is
 * committed with them" (store_series.h) is one transaction, which only
 * the engine that commits the readings can give. What writes across
 * concerns goes through the tables: the delete of a device or an org is
 * the accounts engine's delete, then the series engine's drop_devices;
 * when one engine serves both, its delete also drops the series in the
 * same transaction and store.c makes no second call. */
#ifndef SS_STORE_ENGINE_H
#define SS_STORE_ENGINE_H

#include <stddef.h>

#include "store/store.h"

typedef struct store_engine store_engine;

/* The concerns a store splits into. */
typedef enum {
    STORE_PART_ACCOUNTS = 0,
    STORE_PART_SERIES = 1,
    STORE_PART_USAGE = 2,
    STORE_PARTS
} store_part;

/* A set of concerns, as bits: what one engine instance serves. */
#define STORE_PART_BIT(p) (1u << (p))
#define STORE_PARTS_ALL (STORE_PART_BIT(STORE_PARTS) - 1u)

typedef struct store_engine_kind {
    const char *name;    /* for messages: "SQLite" */
    const char *scheme;  /* the URLs it takes start with this: "sqlite:" */
    /* Opens the engine for opt (opt->url is its own) to serve the concerns
     * in `parts` (STORE_PART_BIT of each; STORE_PARTS_ALL when it serves
     * the whole store), and brings its schema up to date. An engine that
     * keeps the series without the accounts knows no devices: it takes
     * the device ids of batches as given. 0, SS_INVAL (a url or option it
     * cannot take), SS_NOMEM, SS_STORE; errbuf gets a reason a person can
     * act on. */
    int (*open)(const store_options *opt, unsigned parts, store_engine **out, char *errbuf,
                size_t errlen);
    /* Every connection has been closed before. */
    void (*close)(store_engine *e);
    /* A new connection, used by one thread at a time; kept by the store's
     * pool until store_close. 0, SS_NOMEM, SS_STORE (logged). */
    int (*conn_open)(store_engine *e, store_engine_conn **out);
    void (*conn_close)(store_engine_conn *c);
    /* The connection goes back to the pool: nothing of a call may stay
     * open on it (a transaction left by a bug is rolled back). */
    void (*conn_reset)(store_engine_conn *c);
    /* As store_ping, store_checkpoint, store_full, store_room_to_write and
     * store_probe_room (store.h), for this engine alone. */
    int (*ping)(store_engine_conn *c);
    int (*checkpoint)(store_engine_conn *c);
    int (*full)(store_engine *e);
    int (*room_to_write)(store_engine *e);
    int (*probe_room)(store_engine_conn *c);
    /* The concerns it keeps; NULL: not this one. */
    const store_accounts_table *accounts;
    const store_series_table *series;
    const store_usage_table *usage;
    /* Kept with the accounts, never apart (store_broker.h): an engine
     * that keeps the accounts keeps this too. */
    const store_broker_table *broker;
    /* The same (store_dashboards.h). */
    const store_dashboards_table *dashboards;
} store_engine_kind;

/* The engines this build has (store.c lists them). */
extern const store_engine_kind store_sqlite_engine;

/* Writes a reason a person can act on into errbuf (nothing when errbuf is
 * NULL or errlen 0): the message of a failed open. */
void store_engine_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The connection of the engine serving `part` on c: for an engine's own
 * test hooks (store_sqlite_db). */
store_engine_conn *store_conn_engine(store_conn *c, store_part part);

#endif
