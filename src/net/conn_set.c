/* conn_set.c — a listener and the connections it accepted.
 *
 * Lifetime of a connection: allocated and linked on accept with both
 * handles open; each handle's close callback counts down; the memory goes
 * when both are closed and the protocol does not hold it (the libuv habit:
 * memory a handle lives in is freed from its close callback, never
 * before). */
#include "net/conn_set.h"

#include "core/err.h"
#include "core/log.h"
#include "net/listen.h"

#include <stdlib.h>

struct net_conn_set {
    uv_tcp_t listener;
    uv_loop_t *loop;
    net_conn_set_options opt;
    ss_list conns;
    size_t count;
    int stopping;
    int listener_closed;
    void (*stopped)(void *arg);
    void *stopped_arg;
};

static void set_maybe_stopped(net_conn_set *s)
{
    if (s->stopping && s->count == 0 && s->listener_closed && s->stopped)
        s->stopped(s->stopped_arg);
}

/* ---- one connection ------------------------------------------------------ */

static void conn_free(net_conn *c)
{
    net_conn_set *s = c->set;
    if (c->opened && s->opt.on_free)
        s->opt.on_free(c);
    ss_list_remove(&c->link);
    s->count--;
    metrics_connection_closed(s->opt.metrics, s->opt.listener);
    free(c);
    set_maybe_stopped(s);
}

static void conn_maybe_free(net_conn *c)
{
    if (c->handles_open > 0)
        return;
    if (c->opened && c->set->opt.held && c->set->opt.held(c))
        return;
    conn_free(c);
}

void net_conn_release(net_conn *c)
{
    conn_maybe_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    net_conn *c = h->data;
    c->handles_open--;
    conn_maybe_free(c);
}

static void conn_close_timer(net_conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->timer))
        return;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void on_stream_closed(net_stream *st)
{
    net_conn *c = (net_conn *)st;
    c->closing = 1;
    if (c->opened && c->set->opt.on_closed)
        c->set->opt.on_closed(c);
    conn_close_timer(c);
    c->handles_open--;
    conn_maybe_free(c);
}

void net_conn_close(net_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    conn_close_timer(c);
    net_stream_close(&c->stream);
}

static void on_linger_expired(uv_timer_t *t)
{
    net_conn *c = t->data;
    log_debug(c->set->opt.name, "a closing connection did not take its last bytes in time");
    net_conn_close(c);
}

void net_conn_close_after_write(net_conn *c, uint64_t linger_ms, size_t discard_max)
{
    if (c->closing || c->ending)
        return;
    c->ending = 1;
    if (discard_max > 0)
        net_stream_close_lingering(&c->stream, discard_max);
    else
        net_stream_close_after_write(&c->stream);
    /* The stream may have closed at once (its shutdown failed): its close
     * callback, later on the loop, closes the timer too. */
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_timer_start(&c->timer, on_linger_expired, linger_ms, 0);
}

void net_conn_timer_start(net_conn *c, uv_timer_cb cb, uint64_t ms)
{
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_timer_start(&c->timer, cb, ms, 0);
}

void net_conn_timer_stop(net_conn *c)
{
    uv_timer_stop(&c->timer);
}

void *net_conn_ctx(const net_conn *c)
{
    return c->set->opt.ctx;
}

/* ---- the listener ------------------------------------------------------- */

static void on_scratch_closed(uv_handle_t *h)
{
    free(h);
}

/* Out of memory for a connection: accept it anyway and close it at once,
 * since a listener whose pending connection is not accepted stops being
 * polled by libuv and would never accept again. */
static void refuse_connection(uv_stream_t *listener)
{
    uv_tcp_t *scratch = malloc(sizeof *scratch);
    if (!scratch || uv_tcp_init(listener->loop, scratch)) {
        free(scratch);
        return;
    }
    uv_accept(listener, (uv_stream_t *)scratch);
    uv_close((uv_handle_t *)scratch, on_scratch_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
    net_conn_set *s = listener->data;
    if (status < 0 || s->stopping)
        return;
    net_conn *c = calloc(1, s->opt.conn_size);
    if (!c) {
        refuse_connection(listener);
        return;
    }
    c->set = s;
    c->stream.on_read = s->opt.on_read;
    c->stream.on_error = s->opt.on_error;
    c->stream.on_drained = s->opt.on_drained;
    c->stream.on_close = on_stream_closed;
    c->stream.data = c;
    ss_list_insert_tail(&s->conns, &c->link);
    s->count++;
    metrics_connection_opened(s->opt.metrics, s->opt.listener);
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    if (net_stream_accept(listener, &c->stream, s->opt.tls, s->opt.bufs)) {
        /* The stream's on_close still runs and frees through the usual path. */
        c->closing = 1;
        conn_close_timer(c);
        return;
    }
    c->opened = 1;
    if (s->opt.on_open)
        s->opt.on_open(c);
}

int net_conn_set_start(uv_loop_t *loop, const char *addr, const net_conn_set_options *opt,
                       net_conn_set **out, char *bound, size_t cap)
{
    net_addr na;
    if (net_addr_parse(addr, &na) || na.off)
        return SS_INVAL;
    net_conn_set *s = calloc(1, sizeof *s);
    if (!s)
        return SS_NOMEM;
    s->loop = loop;
    s->opt = *opt;
    ss_list_init(&s->conns);
    s->listener.data = s;
    *out = s;
    int rc = net_tcp_listen(loop, &s->listener, &na, on_connection, bound, cap);
    if (rc) {
        /* net_tcp_listen closed the handle: free once libuv has let go. */
        s->stopping = 1;
        s->listener_closed = 1;
    }
    return rc;
}

static void on_listener_closed(uv_handle_t *h)
{
    net_conn_set *s = h->data;
    s->listener_closed = 1;
    set_maybe_stopped(s);
}

void net_conn_set_stop(net_conn_set *s, void (*done)(void *arg), void *arg)
{
    s->stopped = done;
    s->stopped_arg = arg;
    s->stopping = 1;
    if (!uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    else
        s->listener_closed = 1;
    /* Freeing waits for close callbacks on a later turn, so no node goes
     * away during the walk; the safe walk costs nothing all the same. */
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->conns) {
        net_conn *c = ss_list_entry(it, net_conn, link);
        if (s->opt.on_stop)
            s->opt.on_stop(c);
    }
    set_maybe_stopped(s);
}

void net_conn_set_free(net_conn_set *s)
{
    free(s);
}

int net_conn_set_stopping(const net_conn_set *s)
{
    return s->stopping;
}

size_t net_conn_set_count(const net_conn_set *s)
{
    return s->count;
}

const ss_list *net_conn_set_list(const net_conn_set *s)
{
    return &s->conns;
}
