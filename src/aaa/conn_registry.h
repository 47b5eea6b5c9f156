/* conn_registry.h — live connections by principal, so a revocation closes
 * them at once.
 *
 * Every authenticated long-lived connection (a TCP ingest connection, an
 * MQTT session, later an SSE stream) registers under its principal's ID (a
 * device, a user, an API key). A revocation (token rotated, device disabled
 * or deleted, key revoked, user disabled) may happen on any thread (REST
 * handlers run on the worker pool); the registry hands it to the loop, which
 * calls `close` on every connection of that principal.
 *
 * Entries live in the connection's own struct (caller storage). */
#ifndef SS_CONN_REGISTRY_H
#define SS_CONN_REGISTRY_H

#include <stdint.h>
#include <uv.h>

#include "core/limits.h"
#include "core/list.h"

/* A registry key: a principal's id, or a key derived from one (a person's
 * standing in orgs, aaa_access_key: "a:<id>"; what an org's dashboards
 * show, aaa_shown_key: "v:<org id>"), which no id can equal (ids
 * are hex). Two bytes over an id keep an entry at 64 bytes, what every
 * idle MQTT and TCP connection holds. */
#define CONN_REG_KEY_MAX (SS_ID_LEN + 2u)

typedef struct conn_registry conn_registry;
typedef struct conn_reg_entry conn_reg_entry;

/* Runs on the loop thread when the entry's principal is revoked; the entry
 * is already removed from the registry. The owner closes its connection. */
typedef void (*conn_revoked_cb)(conn_reg_entry *e);

struct conn_reg_entry {
    conn_revoked_cb on_revoked;
    void *data;                 /* the owner's */
    /* Private to the registry. */
    ss_list link;
    int registered;
    char principal[CONN_REG_KEY_MAX + 1];  /* last: no hole before the pointers */
};

/* Creates the registry and its uv_async on loop. 0 or SS_NOMEM. */
int conn_registry_new(uv_loop_t *loop, conn_registry **out);
/* Closes the async handle; the memory is freed in its close callback, so
 * run the loop once more afterwards. Loop thread only. */
void conn_registry_close(conn_registry *r);

/* Registers e (on_revoked and data set by the caller) under principal.
 * Loop thread only. */
void conn_registry_add(conn_registry *r, conn_reg_entry *e, const char *principal);
/* Unregisters e; harmless when it is not registered. Loop thread only. */
void conn_registry_remove(conn_registry *r, conn_reg_entry *e);
/* Revokes a principal: every connection registered under it now is closed
 * on the loop thread soon after this call. Any thread. 0 or SS_NOMEM. */
int conn_registry_revoke(conn_registry *r, const char *principal);
/* Revocations so far (any thread): take it before checking a principal's
 * access in the store, then, once the stream is registered on the loop,
 * ask conn_registry_revoked_since whether a key of it was revoked in
 * between (the check may have read the store before the change, and the
 * revocation may have reached the loop before the entry). */
uint64_t conn_registry_mark(conn_registry *r);
/* 1 when principal was revoked after mark, or when more than
 * SS_CONN_REG_RECENT_MAX revocations came since (it cannot tell: the
 * caller takes it as revoked); 0 else. Any thread. */
int conn_registry_revoked_since(conn_registry *r, const char *principal, uint64_t mark);
/* One listener of every revocation, connected or not (the MQTT broker: a
 * revoked principal's stored sessions end even while offline). Runs on the
 * loop for each revoked ID before its connections' on_revoked; cb NULL
 * removes it. Loop thread only. */
typedef void (*conn_revoked_any_cb)(void *ctx, const char *principal);
void conn_registry_watch(conn_registry *r, conn_revoked_any_cb cb, void *ctx);
/* Connections registered under principal right now. Loop thread only. */
size_t conn_registry_count(conn_registry *r, const char *principal);

#endif
