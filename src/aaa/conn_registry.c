/* conn_registry.c — live connections by principal; revocations handed to
 * the loop.
 *
 * Two halves: the entries (an intrusive list touched by the loop thread
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
    char principal[CONN_REG_KEY_MAX + 1];
    struct revoked_id *next;
} revoked_id;

struct conn_registry {
    uv_async_t async;       /* first: the close callback casts back */
    uv_mutex_t mu;
    revoked_id *revoked;    /* under mu; newest first, order does not matter */
    /* Under mu: revocations so far, and the last ones (revocation n is in
     * recent[n % SS_CONN_REG_RECENT_MAX]). */
    uint64_t revocations;
    char recent[SS_CONN_REG_RECENT_MAX][CONN_REG_KEY_MAX + 1];
    ss_list entries;        /* loop thread only */
    conn_revoked_any_cb watch;  /* loop thread only */
    void *watch_ctx;
};

static void revoked_free_all(revoked_id *r)
{
    while (r) {
        revoked_id *next = r->next;
        free(r);
        r = next;
    }
}

static void entry_unlink(conn_reg_entry *e)
{
    ss_list_remove(&e->link);
    e->registered = 0;
}

static conn_reg_entry *entry_find(conn_registry *r, const char *principal)
{
    for (ss_list *it = r->entries.next; it != &r->entries; it = it->next) {
        conn_reg_entry *e = ss_list_entry(it, conn_reg_entry, link);
        if (strcmp(e->principal, principal) == 0)
            return e;
    }
    return NULL;
}

/* Closes every connection of one principal. A callback may close other
 * connections and so unlink other entries, so the walk starts over from the
 * head after each one instead of keeping a `next` that may be gone. */
static void revoke_now(conn_registry *r, const char *principal)
{
    conn_reg_entry *e;
    while ((e = entry_find(r, principal)) != NULL) {
        entry_unlink(e);
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
    for (revoked_id *p = list; p; p = p->next) {
        if (r->watch)
            r->watch(r->watch_ctx, p->principal);
        revoke_now(r, p->principal);
    }
    revoked_free_all(list);
}

int conn_registry_new(uv_loop_t *loop, conn_registry **out)
{
    conn_registry *r = calloc(1, sizeof *r);
    if (!r)
        return SS_NOMEM;
    ss_list_init(&r->entries);
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
    ss_list *first;
    while ((first = ss_list_first(&r->entries)) != NULL)
        entry_unlink(ss_list_entry(first, conn_reg_entry, link));
    uv_close((uv_handle_t *)&r->async, on_closed);
}

void conn_registry_add(conn_registry *r, conn_reg_entry *e, const char *principal)
{
    if (e->registered)
        entry_unlink(e);
    size_t n = strnlen(principal, CONN_REG_KEY_MAX);
    memcpy(e->principal, principal, n);
    e->principal[n] = '\0';
    ss_list_insert_head(&r->entries, &e->link);
    e->registered = 1;
}

void conn_registry_remove(conn_registry *r, conn_reg_entry *e)
{
    (void)r;
    if (e->registered)
        entry_unlink(e);
}

int conn_registry_revoke(conn_registry *r, const char *principal)
{
    revoked_id *p = calloc(1, sizeof *p);
    if (!p)
        return SS_NOMEM;
    size_t n = strnlen(principal, CONN_REG_KEY_MAX);
    memcpy(p->principal, principal, n);
    uv_mutex_lock(&r->mu);
    p->next = r->revoked;
    r->revoked = p;
    memcpy(r->recent[r->revocations % SS_CONN_REG_RECENT_MAX], p->principal,
           sizeof p->principal);
    r->revocations++;
    uv_mutex_unlock(&r->mu);
    uv_async_send(&r->async);
    return SS_OK;
}

uint64_t conn_registry_mark(conn_registry *r)
{
    uv_mutex_lock(&r->mu);
    uint64_t n = r->revocations;
    uv_mutex_unlock(&r->mu);
    return n;
}

int conn_registry_revoked_since(conn_registry *r, const char *principal, uint64_t mark)
{
    int revoked = 0;
    uv_mutex_lock(&r->mu);
    if (r->revocations - mark > SS_CONN_REG_RECENT_MAX)
        revoked = 1;
    for (uint64_t n = mark; !revoked && n < r->revocations; n++)
        revoked = strcmp(r->recent[n % SS_CONN_REG_RECENT_MAX], principal) == 0;
    uv_mutex_unlock(&r->mu);
    return revoked;
}

void conn_registry_watch(conn_registry *r, conn_revoked_any_cb cb, void *ctx)
{
    r->watch = cb;
    r->watch_ctx = ctx;
}

size_t conn_registry_count(conn_registry *r, const char *principal)
{
    size_t n = 0;
    for (ss_list *it = r->entries.next; it != &r->entries; it = it->next)
        n += strcmp(ss_list_entry(it, conn_reg_entry, link)->principal, principal) == 0;
    return n;
}
