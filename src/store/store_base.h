/* store_base.h — what the store's three interfaces share: the handles and
 * the conventions every function of store_accounts.h, store_series.h and
 * store_usage.h keeps.
 *
 * Threads: a `store` is shared by every thread. Each thread that talks to it
 * takes a `store_conn` with store_conn_acquire and gives it back with
 * store_conn_release; a connection is used by one thread at a time.
 *
 * Returns: every function returns 0 on success or a negative SS_* code:
 * SS_NOT_FOUND (no such thing), SS_EXISTS (unique key taken), SS_FULL (disk
 * full: writes refused, reads still served), SS_STORE (any other store
 * failure, logged with its cause), SS_NOMEM. A failed write leaves nothing
 * behind (each call is one transaction).
 *
 * Lists: callbacks of list functions return 0 to go on, nonzero to stop
 * early (the list function then returns 0). Records passed are valid only
 * during the call.
 *
 * Strings: IDs are SS_ID_LEN lowercase hex characters; every char array of a
 * record is NUL-terminated; an empty parent_id means "no parent". */
#ifndef SS_STORE_BASE_H
#define SS_STORE_BASE_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

typedef struct store store;
typedef struct store_conn store_conn;
/* One engine's own connection, which only that engine looks inside: the
 * tables' functions take it where the store_* functions take a store_conn. */
typedef struct store_engine_conn store_engine_conn;

/* Protocols, as usage and session records name them. */
#define STORE_PROTOCOL_MAX 8   /* "https", "http", "tcp", "udp", "mqtt", "mqtts" */

#endif
