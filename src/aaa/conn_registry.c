/* conn_registry.c — live connections by principal; revocations handed to
 * the loop.
 *
 * Two halves: the entries (a doubly linked list touched by the loop thread
 * only) and the revocations (a list of principal IDs under a mutex, filled
 * on any thread and drained by the loop in the uv_async callback). libuv may
 * fold several uv_async_send into one callback, so the callback drains the
 * whole list each time.
 *
 * Lookups walk the one list of entries: a revocation is an admin action
 * (seconds apart at most), so a walk over every live connection costs less
 * than keeping an index current on every connect and disconnect. */
#include "aaa/conn_registry.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* One principal waiting for the loop. */
typedef struct revoked_id {
    char principal[SS_ID_LEN + 1];
    struct revoked_id *next;
} revoked_id;

struct conn_registry {
    uv_async_t async;       /* first: the close callback casts back */
    uv_mutex_t mu;
    revoked_id *revoked;    /* under mu; newest first, order does not matter */
    conn_reg_entry *head;   /* loop thread only */
};

static void revoked_free_all(revoked_id *r)
{
    while (r) {
        revoked_id *next = r->next;
        free(r);
        r = next;
    }
}

static void entry_unlink(conn_registry *r, conn_reg_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        r->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    e->prev = e->next = NULL;
    e->registered = 0;
}

static conn_reg_entry *entry_find(conn_registry *r, const char *principal)
{
    for (conn_reg_entry *e = r->head; e; e = e->next)
        if (strcmp(e->principal, principal) == 0)
            return e;
    return NULL;
}

/* Closes every connection of one principal. A callback may close other
 * connections and so unlink other entries, so the walk starts over from the
 * head after each one instead of keeping a `next` that may be gone. */
static void revoke_now(conn_registry *r, const char *principal)
{
    conn_reg_entry *e;
    while ((e = entry_find(r, principal)) != NULL) {
        entry_unlink(r, e);
        if (e->on_revoked)
            e->on_revoked(e);
    }
}

static void on_async(uv_async_t *h)
{
    conn_registry *r = (conn_registry *)h;
    uv_mutex_lock(&r->mu);
    revoked_id *list = r->revoked;
    r->revoked = NULL;
    uv_mutex_unlock(&r->mu);
    for (revoked_id *p = list; p; p = p->next)
        revoke_now(r, p->principal);
    revoked_free_all(list);
}

int conn_registry_new(uv_loop_t *loop, conn_registry **out)
{
    conn_registry *r = calloc(1, sizeof *r);
    if (!r)
        return SS_NOMEM;
    if (uv_mutex_init(&r->mu)) {
        free(r);
        return SS_NOMEM;
    }
    if (uv_async_init(loop, &r->async, on_async)) {
        uv_mutex_destroy(&r->mu);
        free(r);
        return SS_NOMEM;
    }
    *out = r;
    return SS_OK;
}

static void on_closed(uv_handle_t *h)
{
    conn_registry *r = (conn_registry *)h;
    revoked_free_all(r->revoked);
    uv_mutex_destroy(&r->mu);
    free(r);
}

void conn_registry_close(conn_registry *r)
{
    /* Entries still registered belong to their connections: only unlink. */
    while (r->head)
        entry_unlink(r, r->head);
    uv_close((uv_handle_t *)&r->async, on_closed);
}

void conn_registry_add(conn_registry *r, conn_reg_entry *e, const char *principal)
{
    if (e->registered)
        entry_unlink(r, e);
    size_t n = strnlen(principal, SS_ID_LEN);
    memcpy(e->principal, principal, n);
    e->principal[n] = '\0';
    e->prev = NULL;
    e->next = r->head;
    if (r->head)
        r->head->prev = e;
    r->head = e;
    e->registered = 1;
}

void conn_registry_remove(conn_registry *r, conn_reg_entry *e)
{
    if (e->registered)
        entry_unlink(r, e);
}

int conn_registry_revoke(conn_registry *r, const char *principal)
{
    revoked_id *p = calloc(1, sizeof *p);
    if (!p)
        return SS_NOMEM;
    size_t n = strnlen(principal, SS_ID_LEN);
    memcpy(p->principal, principal, n);
    uv_mutex_lock(&r->mu);
    p->next = r->revoked;
    r->revoked = p;
    uv_mutex_unlock(&r->mu);
    uv_async_send(&r->async);
    return SS_OK;
}

size_t conn_registry_count(conn_registry *r, const char *principal)
{
    size_t n = 0;
    for (conn_reg_entry *e = r->head; e; e = e->next)
        n += strcmp(e->principal, principal) == 0;
    return n;
}
