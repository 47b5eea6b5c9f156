/* session.c — the broker's sessions by org and principal's client id
 * (session.h: MQTT_SESSION_KEY_MAX): attach and takeover, clean and
 * persistent sessions, 5.0 session expiry, wills and their delay, the
 * bound on stored sessions per principal, revocation, and loading what
 * the store kept. A session's subscriptions and inbound QoS 2 ids are
 * session_subs.c's.
 *
 * A stored session's will is in the store while its delay runs after the
 * connection ended (MQTT 5 §3.1.3.2: it is published when the delay
 * passes or the session ends, whichever comes first), so a crash meanwhile
 * does not lose it: the load gives it back with its due time, and one that
 * fell due while the server was down, or whose session expired then, is
 * published at start. Resuming the session, or sending the will, takes it
 * out of the store again. While the connection lives the will is in
 * memory only: a server that stops or crashes ends no client's connection
 * the way the will stands for (on_conn_stop: no will either). 
 *
 * Deadlines (a will's delay, a session's expiry) sit in one binary heap
 * under one timer for the whole broker, so an idle session costs no
 * handle and a tick does bounded work (SS_MQTT_EXPIRE_BATCH). A session
 * whose expiry interval is not 0 is stored: each change is also recorded
 * in the persister, in order, so the store always holds what memory held
 * a commit ago. */
#include <sodium.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "aaa/principal.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"
#include "mqtt/session.h"

_Static_assert(SS_MQTT_SESSION_SUBS_MAX <= MQTT_SUB_IDS_MAX,
               "every subscription of a session fits one PUBLISH's identifiers");
_Static_assert(SS_MQTT_SESSION_SUBS_MAX < UINT16_MAX && SS_MQTT_SESSION_QUEUE_MAX < UINT16_MAX &&
                   2 * SS_MQTT_RECEIVE_MAX < UINT16_MAX,
               "a session's counts fit its uint16_t fields");

#define SESSIONS_BUCKETS_MIN 64u

/* ---- the table ------------------------------------------------------------------ */

static uint64_t session_hash(const mqtt_sessions *t, const char *org, const char *id, size_t len)
{
    unsigned char key[SS_ID_LEN + 1 + MQTT_SESSION_KEY_MAX];
    size_t org_len = strnlen(org, SS_ID_LEN);
    memcpy(key, org, org_len);
    key[org_len] = 0;
    memcpy(key + org_len + 1, id, len);
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, key, org_len + 1 + len, t->hash_key);
    uint64_t h;
    memcpy(&h, out, sizeof h);
    return h;
}

static mqtt_session *session_find(const mqtt_sessions *t, const char *org, const char *id,
                                  size_t len, uint64_t h)
{
    for (mqtt_session *s = t->buckets[h & (t->n_buckets - 1)]; s; s = s->next) {
        if (s->hash == h && strcmp(s->org_id, org) == 0 && strlen(s->client_id) == len &&
            memcmp(s->client_id, id, len) == 0)
            return s;
    }
    return NULL;
}

static void table_grow(mqtt_sessions *t)
{
    size_t n = t->n_buckets * 2;
    mqtt_session **nb = calloc(n, sizeof *nb);
    if (!nb)
        return;  /* longer chains, still correct */
    for (size_t i = 0; i < t->n_buckets; i++) {
        mqtt_session *s = t->buckets[i];
        while (s) {
            mqtt_session *next = s->next;
            s->next = nb[s->hash & (n - 1)];
            nb[s->hash & (n - 1)] = s;
            s = next;
        }
    }
    free(t->buckets);
    t->buckets = nb;
    t->n_buckets = n;
}

static void table_unlink(mqtt_sessions *t, mqtt_session *s)
{
    mqtt_session **pp = &t->buckets[s->hash & (t->n_buckets - 1)];
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = s->next;
        t->count--;
    }
}

/* ---- stored sessions per principal -------------------------------------------------- */

/* How many stored sessions a principal holds (SS_MQTT_STORED_SESSIONS_
 * PER_PRINCIPAL_MAX); ids are the server's own, so hash_id serves. */
typedef struct mqtt_owner {
    struct mqtt_owner *next;
    unsigned stored;
    char id[SS_ID_LEN + 1];
} mqtt_owner;

static mqtt_owner **owner_slot(mqtt_sessions *t, const char *id)
{
    mqtt_owner **pp = &t->owners[hash_id(id) & (t->n_owner_buckets - 1)];
    while (*pp && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->next;
    return pp;
}

static unsigned owner_stored(mqtt_sessions *t, const char *id)
{
    mqtt_owner *o = *owner_slot(t, id);
    return o ? o->stored : 0;
}

static void owners_grow(mqtt_sessions *t)
{
    size_t n = t->n_owner_buckets * 2;
    mqtt_owner **nb = calloc(n, sizeof *nb);
    if (!nb)
        return;  /* longer chains, still correct */
    for (size_t i = 0; i < t->n_owner_buckets; i++) {
        mqtt_owner *o = t->owners[i];
        while (o) {
            mqtt_owner *next = o->next;
            size_t k = hash_id(o->id) & (n - 1);
            o->next = nb[k];
            nb[k] = o;
            o = next;
        }
    }
    free(t->owners);
    t->owners = nb;
    t->n_owner_buckets = n;
}

/* +1 or -1 stored session for the principal. */
static void owner_count(mqtt_sessions *t, const char *id, int delta)
{
    mqtt_owner **pp = owner_slot(t, id);
    mqtt_owner *o = *pp;
    if (!o && delta > 0) {
        if (!(o = calloc(1, sizeof *o)))
            return;  /* uncounted: the bound is a little looser */
        snprintf(o->id, sizeof o->id, "%s", id);
        *pp = o;
        if (++t->n_owners > t->n_owner_buckets)
            owners_grow(t);
    }
    if (!o)
        return;
    if (delta > 0) {
        o->stored++;
        return;
    }
    if (o->stored > 1) {
        o->stored--;
        return;
    }
    *owner_slot(t, id) = o->next;
    t->n_owners--;
    free(o);
}

static void owners_free(mqtt_sessions *t)
{
    for (size_t i = 0; t->owners && i < t->n_owner_buckets; i++) {
        mqtt_owner *o = t->owners[i];
        while (o) {
            mqtt_owner *next = o->next;
            free(o);
            o = next;
        }
    }
    free(t->owners);
}

void mqtt_session_principal(const mqtt_session *s, char id[SS_ID_LEN + 1])
{
    size_t n = strcspn(s->client_id, "/");
    n = n < SS_ID_LEN ? n : SS_ID_LEN;
    memcpy(id, s->client_id, n);
    id[n] = 0;
}

/* 1 when the session's key starts with "<id>/". */
static int session_owned_by(const mqtt_session *s, const char *id)
{
    size_t n = strlen(id);
    return strncmp(s->client_id, id, n) == 0 && s->client_id[n] == '/';
}

static void set_stored(mqtt_session *s, int stored)
{
    if (s->stored == (stored ? 1 : 0))
        return;
    s->stored = stored ? 1 : 0;
    char principal[SS_ID_LEN + 1];
    mqtt_session_principal(s, principal);
    owner_count(mqtt_sessions_of(s->broker), principal, stored ? 1 : -1);
}

/* ---- deadlines ------------------------------------------------------------------- */

static int64_t session_deadline(const mqtt_session *s)
{
    int64_t w = s->will_at_ms, e = s->expire_at_ms;
    if (w && e)
        return w < e ? w : e;
    return w ? w : e;
}

static void heap_set(mqtt_sessions *t, size_t i, mqtt_session *s)
{
    t->heap[i] = s;
    s->heap_idx = (uint32_t)i;
}

static void heap_up(mqtt_sessions *t, size_t i)
{
    mqtt_session *s = t->heap[i];
    int64_t d = session_deadline(s);
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (session_deadline(t->heap[parent]) <= d)
            break;
        heap_set(t, i, t->heap[parent]);
        i = parent;
    }
    heap_set(t, i, s);
}

static void heap_down(mqtt_sessions *t, size_t i)
{
    mqtt_session *s = t->heap[i];
    int64_t d = session_deadline(s);
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        int64_t md = d;
        if (l < t->heap_len && session_deadline(t->heap[l]) < md)
            m = l, md = session_deadline(t->heap[l]);
        if (l + 1 < t->heap_len && session_deadline(t->heap[l + 1]) < md)
            m = l + 1;
        if (m == i)
            break;
        heap_set(t, i, t->heap[m]);
        i = m;
    }
    heap_set(t, i, s);
}

static void heap_remove(mqtt_sessions *t, mqtt_session *s)
{
    size_t i = s->heap_idx;
    if (i == UINT32_MAX)
        return;
    s->heap_idx = UINT32_MAX;
    mqtt_session *last = t->heap[--t->heap_len];
    if (last == s)
        return;
    heap_set(t, i, last);
    heap_up(t, i);
    heap_down(t, last->heap_idx);
}

static int heap_insert(mqtt_sessions *t, mqtt_session *s)
{
    if (t->heap_len == t->heap_cap) {
        size_t cap = t->heap_cap ? t->heap_cap * 2 : 64;
        mqtt_session **h = realloc(t->heap, cap * sizeof *h);
        if (!h)
            return SS_NOMEM;
        t->heap = h;
        t->heap_cap = cap;
    }
    heap_set(t, t->heap_len++, s);
    heap_up(t, s->heap_idx);
    return SS_OK;
}

static void on_timer(uv_timer_t *timer);

static void timer_rearm(mqtt_sessions *t)
{
    if (t->stopped || !t->timer_init)
        return;
    if (t->heap_len == 0) {
        uv_timer_stop(&t->timer);
        return;
    }
    int64_t wait = session_deadline(t->heap[0]) - clock_now_ms();
    uv_timer_start(&t->timer, on_timer, wait > 0 ? (uint64_t)wait : 0, 0);
}

/* The session's deadline changed: its place in the heap follows. */
static void session_schedule(mqtt_sessions *t, mqtt_session *s)
{
    heap_remove(t, s);
    if (session_deadline(s) && heap_insert(t, s))
        log_error("mqtt", "out of memory: a session's expiry is not scheduled");
    timer_rearm(t);
}

/* ---- the store ------------------------------------------------------------------- */

void mqtt_session_persist_failed(const char *what, int rc)
{
    log_warn("mqtt", "session state not recorded (%s): %s", what, ss_strerror(rc));
}

/* When an offline session's connection ended, as its expiry keeps it (one
 * that never expires: now, which is what the load makes of it anyway). */
static int64_t session_disconnected_ms(const mqtt_session *s)
{
    if (s->conn)
        return 0;
    if (s->expire_at_ms)
        return s->expire_at_ms - (int64_t)s->expiry_s * 1000;
    return clock_now_ms();
}

/* The session's record as the store keeps it; principal: its buffer. Its
 * will goes with it while the will's delay runs (will_at_ms set). */
static mqtt_persist_session session_record(const mqtt_session *s, int64_t disconnected_ms,
                                           char principal[SS_ID_LEN + 1])
{
    mqtt_session_principal(s, principal);
    return (mqtt_persist_session){.org_id = s->org_id,
                                  .client_id = s->client_id,
                                  .principal_id = principal,
                                  .expiry_s = s->expiry_s,
                                  .disconnected_ms = disconnected_ms,
                                  .will = s->will_at_ms ? s->will : NULL,
                                  .will_at_ms = s->will ? s->will_at_ms : 0};
}

static void record_session(mqtt_session *s, int64_t disconnected_ms)
{
    mqtt_persist *p = s->broker->persist;
    if (!p || !s->stored)
        return;
    char principal[SS_ID_LEN + 1];
    mqtt_persist_session ps = session_record(s, disconnected_ms, principal);
    int rc = mqtt_persist_session_put(p, &ps, NULL, NULL);
    if (rc)
        mqtt_session_persist_failed("session", rc);
}

/* A session that becomes stored (its expiry was 0 and is not now): all
 * it holds goes to the store. */
static void record_all(mqtt_session *s)
{
    set_stored(s, 1);
    record_session(s, 0);
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->subs)
        mqtt_session_record_sub(s, ss_list_entry(it, mqtt_session_sub, link));
    mqtt_deliver_store_all(s);
    mqtt_persist *p = s->broker->persist;
    for (unsigned i = 0; p && i < s->n_qos2_in; i++)
        mqtt_persist_inbound_put(p, s->org_id, s->client_id, s->qos2_in[i], NULL, NULL);
}

static void unstore(mqtt_session *s)
{
    mqtt_persist *p = s->broker->persist;
    if (!s->stored)
        return;
    set_stored(s, 0);
    if (!p)
        return;
    int rc = mqtt_persist_session_del(p, s->org_id, s->client_id, NULL, NULL);
    if (rc)
        mqtt_session_persist_failed("session end", rc);
}

/* ---- sessions ---------------------------------------------------------------------- */

/* key: the session key, its principal's id first. */
static mqtt_session *session_new(mqtt_broker *b, const char *org, const char *id, size_t len,
                                 uint64_t h)
{
    mqtt_sessions *t = mqtt_sessions_of(b);
    /* the key ends the struct: no padding after it */
    mqtt_session *s = calloc(1, offsetof(mqtt_session, client_id) + len + 1);
    if (!s)
        return NULL;
    s->broker = b;
    s->hash = h;
    snprintf(s->org_id, sizeof s->org_id, "%s", org);
    memcpy(s->client_id, id, len);
    s->client_id[len] = 0;
    s->serial = ++b->next_serial;
    s->heap_idx = UINT32_MAX;
    ss_list_init(&s->subs);
    s->next_seq = 1;
    if (t->count >= t->n_buckets)
        table_grow(t);
    mqtt_session **bucket = &t->buckets[h & (t->n_buckets - 1)];
    s->next = *bucket;
    *bucket = s;
    t->count++;
    return s;
}

static void session_free(mqtt_session *s)
{
    set_stored(s, 0);
    mqtt_msg_unref(s->will);
    mqtt_session_subs_forget(s);
    mqtt_deliver_clear(s);
    free(s->qos2_in);
    free(s);
}

/* Publishes the session's will now (the broker is not stopping). */
static void will_publish(mqtt_session *s)
{
    mqtt_msg *m = s->will;
    s->will = NULL;
    s->will_at_ms = 0;
    if (!m)
        return;
    int matched = 0;
    int rc = mqtt_route(s->broker, m, s->serial, NULL, NULL, &matched);
    if (rc)
        log_warn("mqtt", "a will was not published: %s", ss_strerror(rc));
    mqtt_msg_unref(m);
}

static void will_drop(mqtt_session *s)
{
    mqtt_msg_unref(s->will);
    s->will = NULL;
    s->will_at_ms = 0;
}

/* The session ends: gone from the table, the index and the store. Its
 * will goes out when `with_will` (and the broker is not stopping), after
 * its subscriptions are gone, so it never comes back to the session. */
static void session_end(mqtt_session *s, int with_will)
{
    mqtt_sessions *t = mqtt_sessions_of(s->broker);
    if (s->conn)
        s->conn->session = NULL;
    s->conn = NULL;
    table_unlink(t, s);
    heap_remove(t, s);
    timer_rearm(t);
    mqtt_session_subs_forget(s);
    unstore(s);
    if (with_will && !t->stopped)
        will_publish(s);
    session_free(s);
}

/* The session key of a principal's client id. OUT key (NUL-terminated).
 * Returns its length. */
static size_t session_key(const char *principal, const char *client_id, size_t len,
                          char key[MQTT_SESSION_KEY_MAX + 1])
{
    int n = snprintf(key, SS_ID_LEN + 2, "%.*s/", (int)SS_ID_LEN, principal);
    memcpy(key + n, client_id, len);
    key[n + len] = 0;
    return (size_t)n + len;
}

/* ---- attach, detach -------------------------------------------------------------- */

/* A new connection takes the session over: the old one is told why and
 * closed. Its will goes out now when it has no delay; one with a delay
 * waits for what the new connection does to the session (resumed: not
 * sent, MQTT-3.1.3-9; ended: sent with the end). */
static void takeover(mqtt_session *s)
{
    mqtt_conn *old = s->conn;
    s->conn = NULL;
    old->session = NULL;
    if (s->will && s->will_delay_s == 0)
        will_publish(s);
    mqtt_conn_disconnect(old, MQTT_RC_SESSION_TAKEN_OVER);
}

int mqtt_session_attach(mqtt_conn *c, const char *client_id, size_t len, int clean_start,
                        uint32_t expiry_s, int *present)
{
    mqtt_broker *b = c->broker;
    mqtt_sessions *t = mqtt_sessions_of(b);
    *present = 0;
    if (len > MQTT_CLIENT_ID_MAX || memchr(client_id, 0, len))
        return SS_INVAL;
    const char *org = c->who.org_id;
    const char *who = c->who.id;
    char key[MQTT_SESSION_KEY_MAX + 1];
    size_t key_len = session_key(who, client_id, len, key);
    uint64_t h = session_hash(t, org, key, key_len);
    mqtt_session *s = session_find(t, org, key, key_len, h);
    if (expiry_s && !(s && s->stored) &&
        owner_stored(t, who) >= SS_MQTT_STORED_SESSIONS_PER_PRINCIPAL_MAX)
        return SS_QUOTA;
    if (s && s->conn)
        takeover(s);
    if (s && clean_start) {
        session_end(s, 1);
        s = NULL;
    }
    if (s) {
        will_drop(s);
        s->resend = 1;
        *present = 1;
    } else {
        s = session_new(b, org, key, key_len, h);
        if (!s)
            return SS_NOMEM;
    }
    s->conn = c;
    c->session = s;
    if (s->out)
        s->out->stall_mark_ms = 0;
    s->expiry_s = expiry_s;
    s->expire_at_ms = 0;
    session_schedule(t, s);
    if (expiry_s == 0)
        unstore(s);
    else if (!s->stored)
        record_all(s);
    else
        record_session(s, 0);
    return SS_OK;
}

void mqtt_session_detach(mqtt_conn *c)
{
    mqtt_session *s = c->session;
    if (!s)
        return;
    mqtt_sessions *t = mqtt_sessions_of(c->broker);
    c->session = NULL;
    s->conn = NULL;
    mqtt_deliver_offline(s);
    if (c->will_suppressed || t->stopped)
        will_drop(s);
    if (s->expiry_s == 0) {
        session_end(s, 1);
        return;
    }
    int64_t now = clock_now_ms();
    if (s->will && s->will_delay_s == 0)
        will_publish(s);
    else if (s->will)
        s->will_at_ms = now + (int64_t)s->will_delay_s * 1000;
    s->expire_at_ms = s->expiry_s == UINT32_MAX ? 0 : now + (int64_t)s->expiry_s * 1000;
    session_schedule(t, s);
    record_session(s, now);
}

void mqtt_session_set_expiry(mqtt_conn *c, uint32_t expiry_s)
{
    mqtt_session *s = c->session;
    if (!s)
        return;
    /* 0 -> nonzero is refused before (MQTT-3.14.2-2): no new stored session. */
    s->expiry_s = expiry_s;
    if (expiry_s == 0)
        unstore(s);
    else if (!s->stored)
        record_all(s);
    else
        record_session(s, 0);
}

void mqtt_session_set_will(mqtt_conn *c, mqtt_msg *m, uint32_t delay_s)
{
    mqtt_session *s = c->session;
    if (!s) {
        mqtt_msg_unref(m);
        return;
    }
    will_drop(s);
    s->will = m;
    s->will_delay_s = delay_s;
}

uint64_t mqtt_session_serial(const mqtt_session *s)
{
    return s->serial;
}

/* The session's own record, put again, is the barrier: its commit comes
 * after every change recorded before it. */
int mqtt_session_committed(mqtt_session *s, mqtt_persist_done_cb done, void *ctx)
{
    mqtt_persist *p = s->broker->persist;
    if (!p || !s->stored) {
        if (done)
            done(ctx, SS_OK);
        return SS_OK;
    }
    char principal[SS_ID_LEN + 1];
    mqtt_persist_session ps = session_record(s, session_disconnected_ms(s), principal);
    return mqtt_persist_session_put(p, &ps, done, ctx);
}

/* ---- the timer --------------------------------------------------------------------- */

static void session_due(mqtt_sessions *t, mqtt_session *s, int64_t now)
{
    int expired = s->expire_at_ms && s->expire_at_ms <= now;
    if (s->will_at_ms && s->will_at_ms <= now) {
        will_publish(s);
        if (!expired)
            record_session(s, session_disconnected_ms(s));  /* the will out of the store */
    }
    if (expired) {
        session_end(s, 1);
        return;
    }
    session_schedule(t, s);
}

static void on_timer(uv_timer_t *timer)
{
    mqtt_sessions *t = timer->data;
    int64_t now = clock_now_ms();
    for (unsigned n = 0; n < SS_MQTT_EXPIRE_BATCH && t->heap_len; n++) {
        mqtt_session *s = t->heap[0];
        if (session_deadline(s) > now)
            break;
        session_due(t, s, now);
    }
    timer_rearm(t);
}

/* ---- revocation --------------------------------------------------------------------- */

void mqtt_sessions_drop_principal(mqtt_broker *b, const char *principal_id)
{
    mqtt_sessions *t = mqtt_sessions_of(b);
    if (!t)
        return;
    for (size_t i = 0; i < t->n_buckets; i++) {
        mqtt_session *s = t->buckets[i];
        while (s) {
            mqtt_session *next = s->next;
            if (session_owned_by(s, principal_id) || strcmp(s->org_id, principal_id) == 0)
                session_end(s, 0);
            s = next;
        }
    }
}

/* ---- loading ------------------------------------------------------------------------ */

static mqtt_session *loaded_find(mqtt_broker *b, const char *org, const char *client_id)
{
    mqtt_sessions *t = mqtt_sessions_of(b);
    size_t len = strlen(client_id);
    if (len > MQTT_SESSION_KEY_MAX)
        return NULL;
    return session_find(t, org, client_id, len, session_hash(t, org, client_id, len));
}

static int load_session(void *ctx, const mqtt_persist_session *ps)
{
    mqtt_broker *b = ctx;
    mqtt_sessions *t = mqtt_sessions_of(b);
    size_t len = strlen(ps->client_id);
    if (len > MQTT_SESSION_KEY_MAX || loaded_find(b, ps->org_id, ps->client_id))
        return SS_OK;
    uint64_t h = session_hash(t, ps->org_id, ps->client_id, len);
    mqtt_session *s = session_new(b, ps->org_id, ps->client_id, len, h);
    if (!s)
        return SS_NOMEM;
    set_stored(s, 1);
    s->expiry_s = ps->expiry_s;
    /* A session whose connection was live when the server died ended
     * then: its expiry runs from now. */
    int64_t since = ps->disconnected_ms ? ps->disconnected_ms : clock_now_ms();
    s->expire_at_ms = s->expiry_s == UINT32_MAX ? 0 : since + (int64_t)s->expiry_s * 1000;
    /* Its will waits for its time, or goes at the first tick when that (or
     * the session's expiry) passed while the server was down. */
    if (ps->will) {
        s->will = mqtt_msg_ref(ps->will);
        s->will_at_ms = ps->will_at_ms;
    }
    session_schedule(t, s);
    return SS_OK;
}

static int load_sub(void *ctx, const mqtt_persist_sub *ps)
{
    mqtt_session *s = loaded_find(ctx, ps->org_id, ps->client_id);
    size_t len = strlen(ps->filter);
    int existed = 0;
    if (!s || len > UINT16_MAX || (s->n_subs >= SS_MQTT_SESSION_SUBS_MAX && !mqtt_session_sub_find(s, ps->filter, len)))
        return SS_OK;
    return mqtt_session_sub_set(s, ps->filter, len, ps->options, ps->sub_id, &existed);
}

static int load_delivery(void *ctx, const mqtt_persist_delivery *d)
{
    mqtt_session *s = loaded_find(ctx, d->org_id, d->client_id);
    return s ? mqtt_deliver_restore(s, d) : SS_OK;
}

static int load_qos2(void *ctx, const char *org_id, const char *client_id, uint16_t packet_id)
{
    mqtt_session *s = loaded_find(ctx, org_id, client_id);
    if (!s || mqtt_session_qos2_find(s, packet_id) >= 0)
        return SS_OK;
    int rc = mqtt_session_qos2_push(s, packet_id);
    return rc == SS_QUOTA ? SS_OK : rc;  /* past the window: not kept */
}

static int load_retained(void *ctx, mqtt_msg *m)
{
    mqtt_broker *b = ctx;
    return b->retain ? mqtt_retain_set(b->retain, m) : SS_OK;
}

static int sessions_load(mqtt_broker *b)
{
    mqtt_persist_loader l = {.ctx = b,
                             .session = load_session,
                             .sub = load_sub,
                             .delivery = load_delivery,
                             .inbound_qos2 = load_qos2,
                             .retained = load_retained};
    int rc = mqtt_persist_load(b->persist, &l, clock_now_ms());
    if (rc)
        log_error("mqtt", "cannot load the broker's sessions: %s", ss_strerror(rc));
    else
        log_info("mqtt", "%zu persistent sessions loaded", mqtt_sessions_of(b)->count);
    return rc;
}

/* ---- life ------------------------------------------------------------------------ */

int mqtt_sessions_new(mqtt_broker *b)
{
    mqtt_sessions *t = calloc(1, sizeof *t);
    if (!t)
        return SS_NOMEM;
    t->n_buckets = SESSIONS_BUCKETS_MIN;
    t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
    if (!t->buckets) {
        free(t);
        return SS_NOMEM;
    }
    t->n_owner_buckets = SESSIONS_BUCKETS_MIN;
    t->owners = calloc(t->n_owner_buckets, sizeof *t->owners);
    if (!t->owners) {
        free(t->buckets);
        free(t);
        return SS_NOMEM;
    }
    randombytes_buf(t->hash_key, sizeof t->hash_key);
    if (b->loop && uv_timer_init(b->loop, &t->timer) == 0) {
        t->timer.data = t;
        t->timer_init = 1;
    }
    b->sessions = t;
    if (!b->persist)
        return SS_OK;
    int rc = sessions_load(b);
    if (rc)
        mqtt_sessions_stop(b);
    return rc;
}

void mqtt_sessions_stop(mqtt_broker *b)
{
    mqtt_sessions *t = mqtt_sessions_of(b);
    if (!t || t->stopped)
        return;
    t->stopped = 1;
    if (t->timer_init)
        uv_close((uv_handle_t *)&t->timer, NULL);
}

/* After the loop ran the timer's close: memory only, the store keeps
 * every stored session. */
void mqtt_sessions_free(mqtt_broker *b)
{
    mqtt_sessions *t = mqtt_sessions_of(b);
    if (!t)
        return;
    mqtt_sessions_stop(b);
    for (size_t i = 0; i < t->n_buckets; i++) {
        mqtt_session *s = t->buckets[i];
        while (s) {
            mqtt_session *next = s->next;
            if (s->conn)
                s->conn->session = NULL;
            session_free(s);
            s = next;
        }
    }
    free(t->buckets);
    free(t->heap);
    owners_free(t);
    free(t);
    b->sessions = NULL;
}
