/* store_internal.h — the store connection as store.c and store_calls.c
 * share it; nothing else looks inside. */
#ifndef SS_STORE_INTERNAL_H
#define SS_STORE_INTERNAL_H

#include "store/store_engine.h"

/* The table and engine connection of each concern side by side, so a call
 * loads both from the one struct it is given. */
struct store_conn {
    const store_accounts_table *accounts;
    store_engine_conn *acc;
    const store_series_table *series;
    store_engine_conn *ser;
    const store_usage_table *usage;
    store_engine_conn *use;
    const store_broker_table *broker;  /* its connection is acc's */
    const store_dashboards_table *dashboards;  /* the same */
    store *owner;
    store_engine_conn *conn[STORE_PARTS];  /* one per engine in use */
    store_conn *next_idle;
};

#endif
