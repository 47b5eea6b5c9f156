/* broker.c — the broker the server composes: its parts (subscriptions,
 * retained messages, sessions, the persister), two listeners sharing them,
 * the readings fan-out hook, the once-per-turn write of what connections
 * queued, and the stop.
 *
 * Writes: mqtt_conn_send only appends to the connection's buffer and puts
 * it on b->flush; a check handle (run right after the loop polled, so
 * after every read, timer and commit callback of the turn) hands each
 * buffer to its stream once. A message routed to a subscriber by many
 * publishes of one read costs that subscriber one write, not one each. */
#include "mqtt/broker_internal.h"

#include "core/err.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

#define BROKER_LOG "mqtt"

/* ---- the write of the turn ---------------------------------------------- */

static void on_flush(uv_check_t *h)
{
    mqtt_broker *b = h->data;
    ss_list *n;
    while ((n = ss_list_first(&b->flush)) != NULL) {
        ss_list_remove(n);
        mqtt_conn_flush(ss_list_entry(n, mqtt_conn, flush_link));
    }
    uv_check_stop(h);
}

void mqtt_broker_flush_later(mqtt_broker *b, mqtt_conn *c)
{
    if (ss_list_linked(&c->flush_link) || b->stopping > 1)
        return;
    ss_list_insert_tail(&b->flush, &c->flush_link);
    uv_check_start(&b->flusher, on_flush);
}

/* ---- revocation -------------------------------------------------------------- */

/* Every revoked principal (device, key; an org deleted): its sessions end
 * here, also the stored ones of a client not connected now, which no
 * connection's own revocation would reach. Its connections are told next
 * (conn.c, DISCONNECT 0x98). A deleted org's id also takes its retained
 * messages (ids are never shared, so a device's or key's id names no
 * org's tree). */
static void on_principal_revoked(void *ctx, const char *principal_id)
{
    mqtt_broker *b = ctx;
    mqtt_auth_revoked(b, principal_id);
    mqtt_sessions_drop_principal(b, principal_id);
    mqtt_retain_drop_org(b->retain, principal_id);
}

/* ---- lifetime --------------------------------------------------------------- */

static void broker_free_parts(mqtt_broker *b)
{
    if (b->sessions)
        mqtt_sessions_free(b);
    if (b->retain)
        mqtt_retain_free(b->retain);
    if (b->subs)
        mqtt_subs_free(b->subs);
    if (b->persist)
        mqtt_persist_free(b->persist);
    if (b->plain)
        net_conn_set_free(b->plain);
    if (b->tls)
        net_conn_set_free(b->tls);
    free(b);
}

/* A start that failed after the persister's thread began: the thread is
 * stopped first, then everything goes. */
static void on_failed_persist_stopped(void *arg)
{
    broker_free_parts(arg);
}

int mqtt_broker_new(uv_loop_t *loop, const mqtt_broker_options *opt, mqtt_broker **out)
{
    mqtt_broker *b = calloc(1, sizeof *b);
    if (!b)
        return SS_NOMEM;
    b->loop = loop;
    b->opt = *opt;
    if (b->opt.connect_timeout_ms == 0 || b->opt.connect_timeout_ms > SS_FIRST_MESSAGE_TIMEOUT_MS)
        b->opt.connect_timeout_ms = SS_FIRST_MESSAGE_TIMEOUT_MS;
    b->next_serial = 1;
    ss_list_init(&b->flush);
    int rc = mqtt_subs_new(&b->subs);
    if (rc == SS_OK)
        rc = mqtt_retain_new(&b->retain);
    if (rc == SS_OK)
        rc = mqtt_persist_start(loop, opt->store, &b->persist);
    if (rc != SS_OK) {
        broker_free_parts(b);
        return rc;
    }
    /* Sessions, their subscriptions and queues, and retained messages come
     * back from the store before a client can connect. */
    rc = mqtt_sessions_new(b);
    if (rc != SS_OK) {
        log_error(BROKER_LOG, "cannot load the broker's state: %s", ss_strerror(rc));
        mqtt_persist_stop(b->persist, on_failed_persist_stopped, b);
        return rc;
    }
    uv_check_init(loop, &b->flusher);
    b->flusher.data = b;
    b->readings.on_batch = mqtt_deliver_readings;
    b->readings.data = b;
    fanout_subscribe(opt->fanout, &b->readings);
    if (opt->conns)
        conn_registry_watch(opt->conns, on_principal_revoked, b);
    mqtt_sys_start(b);
    *out = b;
    return SS_OK;
}

int mqtt_broker_listen(mqtt_broker *b, const char *name, const char *addr, SSL_CTX *tls,
                       char *bound, size_t cap)
{
    net_conn_set **slot = tls ? &b->tls : &b->plain;
    if (*slot)
        return SS_INVAL;
    net_conn_set_options so = {
        .name = name, .tls = tls, .bufs = b->opt.bufs, .metrics = b->opt.metrics,
        .listener = metrics_protocol_parse(name), .ctx = b,
    };
    mqtt_conn_hooks(&so);
    return net_conn_set_start(b->loop, addr, &so, slot, bound, cap);
}

static void on_persist_stopped(void *arg)
{
    mqtt_broker *b = arg;
    log_debug(BROKER_LOG, "stopped");
    if (b->stop_done)
        b->stop_done(b->stop_arg);
}

/* Every connection is closed (sessions detached, their changes recorded):
 * the persister commits what is pending, then the broker has stopped. */
static void on_set_stopped(void *arg)
{
    mqtt_broker *b = arg;
    if (--b->stops_pending > 0)
        return;
    /* No connection is left to write to. */
    b->stopping = 2;
    uv_close((uv_handle_t *)&b->flusher, NULL);
    mqtt_persist_stop(b->persist, on_persist_stopped, b);
}

void mqtt_broker_stop(mqtt_broker *b, void (*done)(void *arg), void *arg)
{
    if (b->stopping)
        return;
    b->stopping = 1;
    b->stop_done = done;
    b->stop_arg = arg;
    fanout_unsubscribe(b->opt.fanout, &b->readings);
    if (b->opt.conns)
        conn_registry_watch(b->opt.conns, NULL, NULL);
    mqtt_sys_stop(b);
    mqtt_sessions_stop(b);
    b->stops_pending = 1;  /* held until both sets have been asked */
    if (b->plain) {
        b->stops_pending++;
        net_conn_set_stop(b->plain, on_set_stopped, b);
    }
    if (b->tls) {
        b->stops_pending++;
        net_conn_set_stop(b->tls, on_set_stopped, b);
    }
    on_set_stopped(b);
}

void mqtt_broker_free(mqtt_broker *b)
{
    broker_free_parts(b);
}

size_t mqtt_broker_connections(const mqtt_broker *b)
{
    return (b->plain ? net_conn_set_count(b->plain) : 0) +
           (b->tls ? net_conn_set_count(b->tls) : 0);
}
