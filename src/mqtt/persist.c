/* persist.c — the broker's durable state: changes recorded on the loop,
 * committed by one writer thread in group commits (store_broker_apply),
 * completed on the loop in the order they were recorded.
 *
 * An operation is one allocation (its strings and subscription ids
 * inline) holding a reference to its message, if any. The loop appends it
 * to `pending` under the mutex; the writer takes the whole list, builds
 * the store's changes from it (the message's properties are encoded here,
 * off the loop, once per message of the commit) and applies them in one
 * transaction, then files the list under `done` and wakes the loop with
 * uv_async_send; libuv may fold several sends into one callback, so the
 * callback drains the whole list (moved out under the lock once, as
 * libuv's uv__work_done does).
 *
 * Bounds are the loop's alone: bytes pending in all and per org (shares,
 * one per org with operations pending, freed with its last). A message's
 * bytes count once, with the operation that gives it its id. */
#include "mqtt/persist.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"
#include "mqtt/codec.h"
#include "mqtt/protocol.h"

#define LOG_MOD "mqtt"

/* Buckets of the org share table (a power of two). A share exists only
 * while its org has operations pending: the table holds the orgs active
 * in the last moments, a few hundred on a busy server. */
#define PERSIST_SHARE_BUCKETS 1024u

_Static_assert((PERSIST_SHARE_BUCKETS & (PERSIST_SHARE_BUCKETS - 1)) == 0, "a power of two");
_Static_assert(STORE_BROKER_SUB_IDS_MAX >= MQTT_SUB_IDS_MAX,
               "the store keeps every subscription id a PUBLISH carries");

typedef struct persist_share persist_share;

typedef struct persist_op {
    struct persist_op *next;
    store_broker_change_kind kind;
    int status;
    mqtt_persist_done_cb done;
    void *ctx;
    persist_share *org;
    size_t cost;
    mqtt_msg *msg;          /* a reference, or NULL */
    size_t msg_slot;        /* the writer's: its message in the commit */
    const char *client_id;  /* in tail */
    const char *str;        /* principal id or filter, in tail; NULL: none */
    uint32_t *sub_ids;      /* in tail */
    uint64_t seq;
    int64_t disconnected_ms;
    int64_t will_at_ms;
    uint32_t expiry_s;
    uint32_t sub_id;
    uint32_t n_sub_ids;
    uint16_t packet_id;
    uint8_t options;
    uint8_t qos;
    uint8_t retain;
    uint8_t state;
    char org_id[SS_ID_LEN + 1];
    uint32_t tail[];        /* sub ids, then client id and str, NUL-terminated */
} persist_op;

typedef struct op_list {
    persist_op *head;
    persist_op *tail;
} op_list;

struct persist_share {
    char id[SS_ID_LEN + 1];
    persist_share *chain;
    size_t ops;
    size_t bytes;
    ss_list waiters;  /* refused while it had operations pending */
};

/* One message of a commit, as the store takes it; props point into the
 * writer's buffer once every message is encoded. */
typedef struct persist_msg {
    store_broker_message rec;
    size_t props_off;
} persist_msg;

struct mqtt_persist {
    uv_loop_t *loop;
    store *st;
    uv_async_t async;
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    /* Under mu. */
    op_list pending;
    op_list done;
    int stopping;

    /* The writer's (and, after the join, the stopping loop's). */
    store_conn *conn;
    store_broker_change *changes;
    persist_msg *msgs;
    size_t cap;
    ss_buf props;

    /* Loop thread only. */
    uint64_t last_id;       /* the last message id given */
    size_t bytes;
    persist_share *shares[PERSIST_SHARE_BUCKETS];
    ss_list waiters;        /* refused with nothing of their org pending */
    persist_op *delivering; /* what is left of the run whose callbacks are running */
    int closing;
    void (*stop_done)(void *arg);
    void *stop_arg;
};

/* ---- lists ---------------------------------------------------------------------- */

static void list_append(op_list *l, persist_op *op)
{
    op->next = NULL;
    if (l->tail)
        l->tail->next = op;
    else
        l->head = op;
    l->tail = op;
}

static void list_append_all(op_list *l, persist_op *first, persist_op *last)
{
    if (l->tail)
        l->tail->next = first;
    else
        l->head = first;
    l->tail = last;
}

static persist_op *list_take(op_list *l)
{
    persist_op *head = l->head;
    l->head = l->tail = NULL;
    return head;
}

/* ---- the commit (writer thread) ----------------------------------------------- */

static int writer_reserve(mqtt_persist *p, size_t n)
{
    if (n <= p->cap)
        return SS_OK;
    size_t cap = p->cap ? p->cap : 64;
    while (cap < n)
        cap *= 2;
    store_broker_change *ch = realloc(p->changes, cap * sizeof *ch);
    if (!ch)
        return SS_NOMEM;
    p->changes = ch;
    persist_msg *m = realloc(p->msgs, cap * sizeof *m);
    if (!m)
        return SS_NOMEM;
    p->msgs = m;
    p->cap = cap;
    return SS_OK;
}

/* The message as the store keeps it, its properties appended to the
 * writer's buffer (pointed at once all are in: the buffer may move). */
static int msg_encode(mqtt_persist *p, const mqtt_msg *m, persist_msg *out)
{
    out->props_off = p->props.len;
    out->rec = (store_broker_message){
        .id = m->id,
        .org_id = m->org_id,
        .topic = m->topic,
        .payload = m->payload,
        .payload_len = m->payload_len,
        .props_len = 0,
        .qos = m->qos,
        .retain = m->retain,
        .published_ms = m->published_ms,
    };
    int err = m->props.has ? mqtt_props_encode(&m->props, MQTT_PUBLISH, &p->props) : SS_OK;
    if (err)
        return err < 0 ? err : SS_INVAL;
    out->rec.props_len = p->props.len - out->props_off;
    return SS_OK;
}

/* Encodes each message of the run once: a fan-out's operations of one
 * message follow each other. OUT n_msgs. */
static int run_messages(mqtt_persist *p, persist_op *run, size_t *n_msgs)
{
    const mqtt_msg *prev = NULL;
    size_t n = 0;
    buf_reset(&p->props);
    for (persist_op *op = run; op; op = op->next) {
        if (!op->msg)
            continue;
        if (op->msg != prev) {
            int err = msg_encode(p, op->msg, &p->msgs[n++]);
            if (err)
                return err;
            prev = op->msg;
        }
        op->msg_slot = n - 1;
    }
    for (size_t i = 0; i < n; i++)
        p->msgs[i].rec.props = (const uint8_t *)p->props.data + p->msgs[i].props_off;
    *n_msgs = n;
    return SS_OK;
}

static store_broker_change change_of(const mqtt_persist *p, const persist_op *op)
{
    store_broker_change ch = {.kind = op->kind};
    const char *topic = op->kind == STORE_BROKER_RETAIN_DEL ? op->str
                        : op->msg                           ? op->msg->topic
                                                            : NULL;
    switch (op->kind) {
    case STORE_BROKER_SESSION_PUT:
    case STORE_BROKER_SESSION_DEL:
    case STORE_BROKER_PRINCIPAL_DEL:
        ch.session = (store_broker_session){
            .org_id = op->org_id, .client_id = op->client_id, .principal_id = op->str,
            .expiry_s = op->expiry_s, .disconnected_ms = op->disconnected_ms,
            .will_msg_id = op->msg ? op->msg->id : 0, .will_at_ms = op->will_at_ms};
        break;
    case STORE_BROKER_SUB_PUT:
    case STORE_BROKER_SUB_DEL:
        ch.sub = (store_broker_sub){.org_id = op->org_id, .client_id = op->client_id,
                                    .filter = op->str, .options = op->options,
                                    .sub_id = op->sub_id};
        break;
    case STORE_BROKER_DELIVERY_PUT:
    case STORE_BROKER_DELIVERY_DEL:
        ch.delivery = (store_broker_delivery){
            .org_id = op->org_id, .client_id = op->client_id, .seq = op->seq,
            .msg_id = op->msg ? op->msg->id : 0, .qos = op->qos, .retain = op->retain,
            .packet_id = op->packet_id, .state = op->state, .sub_ids = op->sub_ids,
            .n_sub_ids = op->n_sub_ids};
        break;
    case STORE_BROKER_INBOUND_PUT:
    case STORE_BROKER_INBOUND_DEL:
        ch.inbound = (store_broker_inbound){.org_id = op->org_id, .client_id = op->client_id,
                                            .packet_id = op->packet_id};
        break;
    case STORE_BROKER_RETAIN_PUT:
    case STORE_BROKER_RETAIN_DEL:
        ch.retained = (store_broker_retained){.org_id = op->org_id, .topic = topic,
                                              .msg_id = op->msg ? op->msg->id : 0};
        break;
    }
    if (op->msg)
        ch.msg = &p->msgs[op->msg_slot].rec;
    return ch;
}

/* One transaction for the run; every operation gets its outcome. */
static void writer_commit(mqtt_persist *p, persist_op *run)
{
    size_t n = 0, n_msgs = 0;
    for (persist_op *op = run; op; op = op->next)
        n++;
    int err = writer_reserve(p, n);
    if (!err)
        err = run_messages(p, run, &n_msgs);
    size_t i = 0;
    for (persist_op *op = run; !err && op; op = op->next)
        p->changes[i++] = change_of(p, op);
    if (!err)
        err = store_broker_apply(p->conn, p->changes, n);
    if (err)
        log_warn(LOG_MOD, "commit of %zu broker changes failed: %s", n, ss_strerror(err));
    for (persist_op *op = run; op; op = op->next)
        op->status = err;
}

/* Takes everything pending, commits it outside the lock and files it
 * under `done`. Called with mu held; returns with mu held. */
static void writer_run(mqtt_persist *p)
{
    persist_op *last = p->pending.tail;
    persist_op *run = list_take(&p->pending);
    uv_mutex_unlock(&p->mu);
    writer_commit(p, run);
    uv_mutex_lock(&p->mu);
    list_append_all(&p->done, run, last);
}

static void writer_main(void *arg)
{
    mqtt_persist *p = arg;
    uv_mutex_lock(&p->mu);
    for (;;) {
        while (!p->pending.head && !p->stopping)
            uv_cond_wait(&p->cond, &p->mu);
        if (!p->pending.head)
            break;
        writer_run(p);
        uv_async_send(&p->async);
    }
    uv_mutex_unlock(&p->mu);
}

/* ---- shares and waiters (loop thread) ---------------------------------------- */

static persist_share **share_slot(mqtt_persist *p, const char *org_id)
{
    persist_share **s = &p->shares[hash_id(org_id) & (PERSIST_SHARE_BUCKETS - 1)];
    while (*s && strcmp((*s)->id, org_id) != 0)
        s = &(*s)->chain;
    return s;
}

static persist_share *share_get(mqtt_persist *p, const char *org_id)
{
    persist_share **s = share_slot(p, org_id);
    if (*s)
        return *s;
    persist_share *sh = calloc(1, sizeof *sh);
    if (!sh)
        return NULL;
    memcpy(sh->id, org_id, sizeof sh->id);
    ss_list_init(&sh->waiters);
    *s = sh;
    return sh;
}

/* Its waiters must have been moved out before. */
static void share_release(mqtt_persist *p, persist_share *sh, size_t cost)
{
    sh->ops--;
    sh->bytes -= cost;
    p->bytes -= cost;
    if (sh->ops > 0)
        return;
    persist_share **s = share_slot(p, sh->id);
    *s = sh->chain;
    free(sh);
}

/* An org with nothing pending fits its own bound whatever the size; the
 * whole bound holds for all, but an empty persister takes anything, so
 * no operation waits for ever. */
static int persist_admits(const mqtt_persist *p, const persist_share *sh, size_t cost)
{
    if (p->bytes == 0)
        return 1;
    if (p->bytes + cost > MQTT_PERSIST_PENDING_MAX)
        return 0;
    return !sh || sh->bytes + cost <= MQTT_PERSIST_ORG_PENDING_MAX;
}

static int waiter_linked(const mqtt_persist_waiter *w)
{
    return w->link.next != NULL && ss_list_linked(&w->link);
}

/* Wakes each waiter of the list once, in order; ready may wait again (in
 * another list) or cancel any waiter. */
static void waiters_wake(ss_list *list)
{
    ss_list *node;
    while ((node = ss_list_first(list)) != NULL) {
        mqtt_persist_waiter *w = ss_list_entry(node, mqtt_persist_waiter, link);
        ss_list_remove(&w->link);
        w->ready(w);
    }
}

void mqtt_persist_wait(mqtt_persist *p, mqtt_persist_waiter *w)
{
    if (waiter_linked(w))
        return;
    persist_share *sh = *share_slot(p, w->org_id);
    ss_list_insert_tail(sh ? &sh->waiters : &p->waiters, &w->link);
}

void mqtt_persist_cancel_wait(mqtt_persist *p, mqtt_persist_waiter *w)
{
    (void)p;
    if (waiter_linked(w))
        ss_list_remove(&w->link);
}

/* ---- completions (loop thread) ------------------------------------------------ */

static void op_free(persist_op *op)
{
    mqtt_msg_unref(op->msg);
    free(op);
}

/* Runs the operations' callbacks in order; each org's waiters, then those
 * of orgs that had nothing pending, are woken after the whole run. The
 * rest of the run is kept in p, not here: a callback that stops the
 * persister has it delivered first, so no later callback overtakes it and
 * what it records is still committed. */
static void deliver_run(mqtt_persist *p, persist_op *run)
{
    ss_list woken;
    ss_list_init(&woken);
    p->delivering = run;
    persist_op *op;
    while ((op = p->delivering) != NULL) {
        p->delivering = op->next;
        persist_share *sh = op->org;
        while (!ss_list_empty(&sh->waiters)) {
            ss_list *node = ss_list_first(&sh->waiters);
            ss_list_remove(node);
            ss_list_insert_tail(&woken, node);
        }
        share_release(p, sh, op->cost);
        if (op->done)
            op->done(op->ctx, op->status);
        op_free(op);
    }
    waiters_wake(&woken);
    ss_list all;
    ss_list_move_all(&p->waiters, &all);
    waiters_wake(&all);
}

static persist_op *take_done(mqtt_persist *p)
{
    uv_mutex_lock(&p->mu);
    persist_op *run = list_take(&p->done);
    uv_mutex_unlock(&p->mu);
    return run;
}

/* A callback may stop the persister, which delivers the rest itself;
 * check `closing` before touching the mutex again. */
static void persist_async_cb(uv_async_t *handle)
{
    mqtt_persist *p = handle->data;
    persist_op *run;
    while (!p->closing && (run = take_done(p)) != NULL)
        deliver_run(p, run);
}

/* ---- recording (loop thread) ------------------------------------------------------ */

/* A new operation of `kind` with its strings and sub ids copied in. NULL:
 * out of memory. */
static persist_op *op_new(store_broker_change_kind kind, const char *org_id,
                          const char *client_id, const char *str, uint32_t n_sub_ids)
{
    size_t client_len = client_id ? strlen(client_id) : 0;
    size_t str_len = str ? strlen(str) : 0;
    size_t tail = n_sub_ids * sizeof(uint32_t) + client_len + 1 + str_len + 1;
    persist_op *op = calloc(1, sizeof *op + tail);
    if (!op)
        return NULL;
    op->kind = kind;
    snprintf(op->org_id, sizeof op->org_id, "%s", org_id ? org_id : "");
    op->sub_ids = op->tail;
    op->n_sub_ids = n_sub_ids;
    char *text = (char *)(op->tail + n_sub_ids);
    memcpy(text, client_id ? client_id : "", client_len + 1);
    op->client_id = text;
    if (str) {
        memcpy(text + client_len + 1, str, str_len + 1);
        op->str = text + client_len + 1;
    }
    op->cost = sizeof *op + tail;
    return op;
}

/* Admits the operation under the bounds and queues it for the writer; a
 * message without an id gets one now, and its bytes count here. On any
 * refusal the operation is freed (its message reference dropped). */
static int persist_record(mqtt_persist *p, persist_op *op, mqtt_persist_done_cb done, void *ctx)
{
    if (p->closing) {
        op_free(op);
        return SS_CLOSED;
    }
    int first_use = op->msg && op->msg->id == 0;
    if (first_use)
        op->cost += mqtt_msg_size(op->msg);
    persist_share **slot = share_slot(p, op->org_id);
    persist_share *sh = *slot;
    if (!persist_admits(p, sh, op->cost)) {
        op_free(op);
        return SS_BUSY;
    }
    sh = sh ? sh : share_get(p, op->org_id);
    if (!sh) {
        op_free(op);
        return SS_NOMEM;
    }
    if (first_use)
        op->msg->id = ++p->last_id;
    sh->ops++;
    sh->bytes += op->cost;
    p->bytes += op->cost;
    op->org = sh;
    op->done = done;
    op->ctx = ctx;
    uv_mutex_lock(&p->mu);
    list_append(&p->pending, op);
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->mu);
    return SS_OK;
}

static int bad_id(const char *org_id)
{
    return !org_id || strlen(org_id) > SS_ID_LEN;
}

int mqtt_persist_session_put(mqtt_persist *p, const mqtt_persist_session *s,
                             mqtt_persist_done_cb done, void *ctx)
{
    if (bad_id(s->org_id) || !s->client_id || bad_id(s->principal_id) ||
        (s->will && s->will_at_ms <= 0))
        return SS_INVAL;
    persist_op *op = op_new(STORE_BROKER_SESSION_PUT, s->org_id, s->client_id, s->principal_id, 0);
    if (!op)
        return SS_NOMEM;
    op->expiry_s = s->expiry_s;
    op->disconnected_ms = s->disconnected_ms;
    op->msg = s->will ? mqtt_msg_ref(s->will) : NULL;
    op->will_at_ms = s->will ? s->will_at_ms : 0;
    return persist_record(p, op, done, ctx);
}

/* An operation keyed by (org, client) and maybe a string, with nothing
 * else to set but its packet id or seq. */
static int record_keyed(store_broker_change_kind kind, const char *org_id, const char *client_id,
                        const char *str, persist_op **out)
{
    if (bad_id(org_id) || !client_id)
        return SS_INVAL;
    *out = op_new(kind, org_id, client_id, str, 0);
    return *out ? SS_OK : SS_NOMEM;
}

int mqtt_persist_session_del(mqtt_persist *p, const char *org_id, const char *client_id,
                             mqtt_persist_done_cb done, void *ctx)
{
    persist_op *op = NULL;
    int err = record_keyed(STORE_BROKER_SESSION_DEL, org_id, client_id, NULL, &op);
    return err ? err : persist_record(p, op, done, ctx);
}

int mqtt_persist_principal_del(mqtt_persist *p, const char *org_id, const char *principal_id,
                               mqtt_persist_done_cb done, void *ctx)
{
    if (bad_id(org_id) || bad_id(principal_id))
        return SS_INVAL;
    persist_op *op = op_new(STORE_BROKER_PRINCIPAL_DEL, org_id, NULL, principal_id, 0);
    return op ? persist_record(p, op, done, ctx) : SS_NOMEM;
}

int mqtt_persist_sub_put(mqtt_persist *p, const mqtt_persist_sub *s, mqtt_persist_done_cb done,
                         void *ctx)
{
    persist_op *op = NULL;
    if (!s->filter)
        return SS_INVAL;
    int err = record_keyed(STORE_BROKER_SUB_PUT, s->org_id, s->client_id, s->filter, &op);
    if (err)
        return err;
    op->options = s->options;
    op->sub_id = s->sub_id;
    return persist_record(p, op, done, ctx);
}

int mqtt_persist_sub_del(mqtt_persist *p, const char *org_id, const char *client_id,
                         const char *filter, mqtt_persist_done_cb done, void *ctx)
{
    persist_op *op = NULL;
    if (!filter)
        return SS_INVAL;
    int err = record_keyed(STORE_BROKER_SUB_DEL, org_id, client_id, filter, &op);
    return err ? err : persist_record(p, op, done, ctx);
}

int mqtt_persist_delivery_put(mqtt_persist *p, const mqtt_persist_delivery *d,
                              mqtt_persist_done_cb done, void *ctx)
{
    if (bad_id(d->org_id) || !d->client_id || !d->msg || d->n_sub_ids > MQTT_SUB_IDS_MAX ||
        (d->n_sub_ids > 0 && !d->sub_ids) || d->seq > (uint64_t)INT64_MAX)
        return SS_INVAL;
    persist_op *op = op_new(STORE_BROKER_DELIVERY_PUT, d->org_id, d->client_id, NULL,
                            d->n_sub_ids);
    if (!op)
        return SS_NOMEM;
    if (d->n_sub_ids > 0)
        memcpy(op->sub_ids, d->sub_ids, d->n_sub_ids * sizeof *d->sub_ids);
    op->msg = mqtt_msg_ref(d->msg);
    op->seq = d->seq;
    op->qos = d->qos;
    op->retain = d->retain;
    op->packet_id = d->packet_id;
    op->state = (uint8_t)d->state;
    return persist_record(p, op, done, ctx);
}

int mqtt_persist_delivery_del(mqtt_persist *p, const char *org_id, const char *client_id,
                              uint64_t seq, mqtt_persist_done_cb done, void *ctx)
{
    persist_op *op = NULL;
    if (seq > (uint64_t)INT64_MAX)
        return SS_INVAL;
    int err = record_keyed(STORE_BROKER_DELIVERY_DEL, org_id, client_id, NULL, &op);
    if (err)
        return err;
    op->seq = seq;
    return persist_record(p, op, done, ctx);
}

static int record_inbound(mqtt_persist *p, store_broker_change_kind kind, const char *org_id,
                          const char *client_id, uint16_t packet_id, mqtt_persist_done_cb done,
                          void *ctx)
{
    persist_op *op = NULL;
    int err = record_keyed(kind, org_id, client_id, NULL, &op);
    if (err)
        return err;
    op->packet_id = packet_id;
    return persist_record(p, op, done, ctx);
}

int mqtt_persist_inbound_put(mqtt_persist *p, const char *org_id, const char *client_id,
                             uint16_t packet_id, mqtt_persist_done_cb done, void *ctx)
{
    return record_inbound(p, STORE_BROKER_INBOUND_PUT, org_id, client_id, packet_id, done, ctx);
}

int mqtt_persist_inbound_del(mqtt_persist *p, const char *org_id, const char *client_id,
                             uint16_t packet_id, mqtt_persist_done_cb done, void *ctx)
{
    return record_inbound(p, STORE_BROKER_INBOUND_DEL, org_id, client_id, packet_id, done, ctx);
}

/* An empty payload clears the topic's retained message: the delete keeps
 * the topic alone, not the message, which gets no id. */
int mqtt_persist_retain_put(mqtt_persist *p, mqtt_msg *m, mqtt_persist_done_cb done, void *ctx)
{
    if (!m || bad_id(m->org_id) || !m->topic)
        return SS_INVAL;
    persist_op *op = m->payload_len == 0
                         ? op_new(STORE_BROKER_RETAIN_DEL, m->org_id, NULL, m->topic, 0)
                         : op_new(STORE_BROKER_RETAIN_PUT, m->org_id, NULL, NULL, 0);
    if (!op)
        return SS_NOMEM;
    if (op->kind == STORE_BROKER_RETAIN_PUT)
        op->msg = mqtt_msg_ref(m);
    return persist_record(p, op, done, ctx);
}

/* ---- start and stop ---------------------------------------------------------------- */

static void persist_free_sync(mqtt_persist *p)
{
    uv_cond_destroy(&p->cond);
    uv_mutex_destroy(&p->mu);
}

static int persist_init_sync(mqtt_persist *p)
{
    if (uv_mutex_init(&p->mu) != 0)
        return SS_NOMEM;
    if (uv_cond_init(&p->cond) != 0) {
        uv_mutex_destroy(&p->mu);
        return SS_NOMEM;
    }
    return SS_OK;
}

static void persist_join(mqtt_persist *p)
{
    uv_mutex_lock(&p->mu);
    p->stopping = 1;
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->mu);
    uv_thread_join(&p->thread);
}

/* The writer starts before the async handle exists; it sends only after a
 * commit, and nothing can be recorded before start returns. */
static int persist_start_thread(mqtt_persist *p)
{
    if (uv_thread_create(&p->thread, writer_main, p) != 0)
        return SS_NOMEM;
    if (uv_async_init(p->loop, &p->async, persist_async_cb) != 0) {
        persist_join(p);
        return SS_NOMEM;
    }
    p->async.data = p;
    return SS_OK;
}

static void persist_release(mqtt_persist *p)
{
    if (p->conn)
        store_conn_release(p->st, p->conn);
    free(p->changes);
    free(p->msgs);
    buf_free(&p->props);
    free(p);
}

/* Message ids go on from the highest stored, read before the writer
 * starts (on its connection). */
int mqtt_persist_start(uv_loop_t *loop, store *st, mqtt_persist **out)
{
    mqtt_persist *p = calloc(1, sizeof *p);
    if (!p)
        return SS_NOMEM;
    p->loop = loop;
    p->st = st;
    ss_list_init(&p->waiters);
    int err = persist_init_sync(p);
    if (err) {
        free(p);
        return err;
    }
    err = store_conn_acquire(st, &p->conn);
    if (!err)
        err = store_broker_message_id_max(p->conn, &p->last_id);
    if (!err)
        err = persist_start_thread(p);
    if (err) {
        persist_free_sync(p);
        persist_release(p);
        return err == SS_NOMEM ? SS_NOMEM : SS_STORE;
    }
    *out = p;
    return SS_OK;
}

/* After the join this thread commits what is left itself: operations a
 * callback or a waiter records during the stop are committed too, and
 * every one completes. */
static void persist_drain_here(mqtt_persist *p)
{
    if (p->delivering)
        deliver_run(p, p->delivering);
    for (;;) {
        uv_mutex_lock(&p->mu);
        if (p->pending.head)
            writer_run(p);
        persist_op *run = list_take(&p->done);
        uv_mutex_unlock(&p->mu);
        if (!run)
            return;
        deliver_run(p, run);
    }
}

static void persist_close_cb(uv_handle_t *handle)
{
    mqtt_persist *p = handle->data;
    if (p->stop_done)
        p->stop_done(p->stop_arg);
}

void mqtt_persist_stop(mqtt_persist *p, void (*done)(void *arg), void *arg)
{
    p->stop_done = done;
    p->stop_arg = arg;
    persist_join(p);
    persist_drain_here(p);
    p->closing = 1;
    uv_close((uv_handle_t *)&p->async, persist_close_cb);
}

/* After stop's `done`: nothing is pending and the handle is closed. A
 * waiter still linked is the caller's to forget. */
void mqtt_persist_free(mqtt_persist *p)
{
    if (!p)
        return;
    persist_free_sync(p);
    persist_release(p);
}

/* ---- the load ---------------------------------------------------------------------- */

/* A session (org, client id), or a retained message (org, topic), whose
 * expiry passed while the server was down. */
typedef struct load_expired {
    char org_id[SS_ID_LEN + 1];
    char *client_id;
} load_expired;

typedef struct load_ctx {
    mqtt_persist *p;
    const mqtt_persist_loader *l;
    int64_t now_ms;
    int rc;                 /* a callback's code, or ours: stops the load */
    mqtt_msg **msgs;        /* by id, as listed: found by binary search */
    size_t n_msgs, cap_msgs;
    load_expired *expired;
    size_t n_expired, cap_expired;
    load_expired *stale;    /* retained messages expired: client_id holds the topic */
    size_t n_stale, cap_stale;
} load_ctx;

/* Grows an array of `size`-byte items to hold one more. */
static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return SS_OK;
    size_t c = *cap ? 2 * *cap : 64;
    void *a = realloc(*arr, c * size);
    if (!a)
        return SS_NOMEM;
    *arr = a;
    *cap = c;
    return SS_OK;
}

/* A payload or property list read back empty may come as NULL. */
static const uint8_t load_empty[1];

static int load_message(void *ctx, const store_broker_message *rec)
{
    load_ctx *lc = ctx;
    mqtt_props props = {0};
    if (rec->props_len > 0 &&
        mqtt_props_decode(rec->props, rec->props_len, MQTT_PUBLISH, &props) != 0) {
        log_warn(LOG_MOD, "stored message %llu: its properties do not decode; left out",
                 (unsigned long long)rec->id);
        return 0;
    }
    if (grow((void **)&lc->msgs, &lc->cap_msgs, lc->n_msgs, sizeof *lc->msgs) != SS_OK) {
        lc->rc = SS_NOMEM;
        return 1;
    }
    mqtt_msg *m = mqtt_msg_new(rec->org_id, rec->topic, strlen(rec->topic),
                               rec->payload ? rec->payload : load_empty, rec->payload_len,
                               rec->qos, rec->retain, rec->props_len ? &props : NULL,
                               rec->published_ms);
    if (!m) {
        lc->rc = SS_NOMEM;
        return 1;
    }
    m->id = rec->id;
    lc->msgs[lc->n_msgs++] = m;
    if (rec->id > lc->p->last_id)
        lc->p->last_id = rec->id;
    return 0;
}

static mqtt_msg *load_find(const load_ctx *lc, uint64_t id)
{
    size_t lo = 0, hi = lc->n_msgs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t at = lc->msgs[mid]->id;
        if (at == id)
            return lc->msgs[mid];
        if (at < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int session_expired(const store_broker_session *s, int64_t now_ms)
{
    return s->expiry_s != UINT32_MAX && s->disconnected_ms > 0 &&
           s->disconnected_ms + (int64_t)s->expiry_s * 1000 <= now_ms;
}

/* Notes (org, key) at the end of a list of load_expired. */
static int load_note(load_expired **arr, size_t *n, size_t *cap, const char *org_id,
                     const char *key)
{
    if (grow((void **)arr, cap, *n, sizeof **arr))
        return SS_NOMEM;
    load_expired *e = &(*arr)[*n];
    snprintf(e->org_id, sizeof e->org_id, "%s", org_id);
    e->client_id = strdup(key);
    if (!e->client_id)
        return SS_NOMEM;
    (*n)++;
    return SS_OK;
}

static int load_note_expired(load_ctx *lc, const store_broker_session *s)
{
    return load_note(&lc->expired, &lc->n_expired, &lc->cap_expired, s->org_id, s->client_id);
}

/* A session connected when the server went down counts as ended at the
 * load: its expiry runs from now. One expired with a will still held is
 * loaded all the same (mqtt_persist_load). */
static int load_session(void *ctx, const store_broker_session *rec)
{
    load_ctx *lc = ctx;
    mqtt_msg *will = rec->will_msg_id ? load_find(lc, rec->will_msg_id) : NULL;
    if (session_expired(rec, lc->now_ms) && !will) {
        lc->rc = load_note_expired(lc, rec);
        return lc->rc != 0;
    }
    mqtt_persist_session s = {
        .org_id = rec->org_id,
        .client_id = rec->client_id,
        .principal_id = rec->principal_id,
        .expiry_s = rec->expiry_s,
        .disconnected_ms = rec->disconnected_ms ? rec->disconnected_ms : lc->now_ms,
        .will = will,
        .will_at_ms = will ? rec->will_at_ms : 0,
    };
    lc->rc = lc->l->session(lc->l->ctx, &s);
    return lc->rc != 0;
}

static int expired_cmp(const load_expired *e, const char *org_id, const char *client_id)
{
    int c = strcmp(e->org_id, org_id);
    return c ? c : strcmp(e->client_id, client_id);
}

/* 1 for a row of an expired session still in the store (its delete met
 * a full disk): it is not loaded. The expired are in the store's order of
 * sessions, which is strcmp's. */
static int load_is_expired(const load_ctx *lc, const char *org_id, const char *client_id)
{
    size_t lo = 0, hi = lc->n_expired;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = expired_cmp(&lc->expired[mid], org_id, client_id);
        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static int load_sub(void *ctx, const store_broker_sub *rec)
{
    load_ctx *lc = ctx;
    if (load_is_expired(lc, rec->org_id, rec->client_id))
        return 0;
    mqtt_persist_sub s = {.org_id = rec->org_id, .client_id = rec->client_id,
                          .filter = rec->filter, .options = rec->options, .sub_id = rec->sub_id};
    lc->rc = lc->l->sub(lc->l->ctx, &s);
    return lc->rc != 0;
}

static int load_delivery(void *ctx, const store_broker_delivery *rec)
{
    load_ctx *lc = ctx;
    mqtt_msg *m = load_find(lc, rec->msg_id);
    if (!m || load_is_expired(lc, rec->org_id, rec->client_id))
        return 0;
    mqtt_persist_delivery d = {
        .org_id = rec->org_id,
        .client_id = rec->client_id,
        .seq = rec->seq,
        .msg = m,
        .qos = rec->qos,
        .retain = rec->retain,
        .packet_id = rec->packet_id,
        .state = (mqtt_delivery_state)rec->state,
        .sub_ids = rec->sub_ids,
        .n_sub_ids = rec->n_sub_ids,
    };
    lc->rc = lc->l->delivery(lc->l->ctx, &d);
    return lc->rc != 0;
}

static int load_inbound(void *ctx, const store_broker_inbound *rec)
{
    load_ctx *lc = ctx;
    if (load_is_expired(lc, rec->org_id, rec->client_id))
        return 0;
    lc->rc = lc->l->inbound_qos2(lc->l->ctx, rec->org_id, rec->client_id, rec->packet_id);
    return lc->rc != 0;
}

/* A retained message whose expiry passed while the server was down is
 * deleted, not loaded: it would count against its org's retained
 * messages until a subscription happened to walk over it. */
static int load_retained(void *ctx, const store_broker_retained *rec)
{
    load_ctx *lc = ctx;
    mqtt_msg *m = load_find(lc, rec->msg_id);
    if (!m)
        return 0;
    if (mqtt_msg_expired(m, lc->now_ms))
        lc->rc = load_note(&lc->stale, &lc->n_stale, &lc->cap_stale, rec->org_id, rec->topic);
    else
        lc->rc = lc->l->retained(lc->l->ctx, m);
    return lc->rc != 0;
}

/* Deletes the expired sessions (with all that hangs on them), or the
 * expired retained messages, in one transaction. */
static int load_drop(store_conn *c, const load_expired *e, size_t n,
                     store_broker_change_kind kind, const char *what)
{
    if (n == 0)
        return SS_OK;
    store_broker_change *ch = calloc(n, sizeof *ch);
    if (!ch)
        return SS_NOMEM;
    for (size_t i = 0; i < n; i++) {
        ch[i].kind = kind;
        if (kind == STORE_BROKER_RETAIN_DEL)
            ch[i].retained = (store_broker_retained){.org_id = e[i].org_id, .topic = e[i].client_id};
        else
            ch[i].session = (store_broker_session){.org_id = e[i].org_id,
                                                   .client_id = e[i].client_id};
    }
    int err = store_broker_apply(c, ch, n);
    free(ch);
    if (!err)
        log_info(LOG_MOD, "%zu %s expired while the server was down: deleted", n, what);
    /* A full disk serves reads: the expired are left out of the load and
     * deleted at a later one. */
    if (err == SS_FULL)
        log_warn(LOG_MOD, "%zu expired %s not deleted: the disk is full", n, what);
    return err == SS_FULL ? SS_OK : err;
}

/* Each step runs while the one before succeeded and no callback stopped
 * the load; a stop leaves its code in lc->rc. */
static int load_steps(store_conn *c, load_ctx *lc)
{
    int err = store_broker_messages(c, load_message, lc);
    if (!err && !lc->rc)
        err = store_broker_sessions(c, load_session, lc);
    if (!err && !lc->rc)
        err = load_drop(c, lc->expired, lc->n_expired, STORE_BROKER_SESSION_DEL,
                        "persistent session(s)");
    if (!err && !lc->rc)
        err = store_broker_subs(c, load_sub, lc);
    if (!err && !lc->rc)
        err = store_broker_deliveries(c, load_delivery, lc);
    if (!err && !lc->rc)
        err = store_broker_inbound_list(c, load_inbound, lc);
    if (!err && !lc->rc)
        err = store_broker_retained_list(c, load_retained, lc);
    if (!err && !lc->rc)
        err = load_drop(c, lc->stale, lc->n_stale, STORE_BROKER_RETAIN_DEL,
                        "retained message(s)");
    if (err)
        return err == SS_NOMEM ? SS_NOMEM : SS_STORE;
    return lc->rc;
}

static void load_ctx_free(load_ctx *lc)
{
    for (size_t i = 0; i < lc->n_msgs; i++)
        mqtt_msg_unref(lc->msgs[i]);
    for (size_t i = 0; i < lc->n_expired; i++)
        free(lc->expired[i].client_id);
    for (size_t i = 0; i < lc->n_stale; i++)
        free(lc->stale[i].client_id);
    free(lc->msgs);
    free(lc->expired);
    free(lc->stale);
}

int mqtt_persist_load(mqtt_persist *p, const mqtt_persist_loader *l, int64_t now_ms)
{
    store_conn *c = NULL;
    int err = store_conn_acquire(p->st, &c);
    if (err)
        return err == SS_NOMEM ? SS_NOMEM : SS_STORE;
    load_ctx lc = {.p = p, .l = l, .now_ms = now_ms};
    err = load_steps(c, &lc);
    store_conn_release(p->st, c);
    load_ctx_free(&lc);
    return err;
}
