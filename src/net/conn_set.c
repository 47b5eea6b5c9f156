/* conn_set.c — a listener and the connections it accepted.
 *
 * Lifetime of a connection: allocated and linked on accept with its stream
 * open; the memory goes once the stream's close callback ran and the
 * protocol does not hold it (the libuv habit: memory a handle lives in is
 * freed from its close callback, never before).
 *
 * Deadlines: a binary heap of the connections that have one, by due time,
 * under the set's one timer, armed for the earliest. Room for every
 * connection's entry is made at its accept, so arming never fails. The
 * set's timer is closed last, once the listener and every connection are:
 * `stopped` runs from its close callback. */
#include "net/conn_set.h"

#include "core/err.h"
#include "core/log.h"
#include "net/listen.h"

#include <stddef.h>
#include <stdlib.h>

struct net_conn_set {
    uv_tcp_t listener;
    net_stream_hooks hooks;    /* every connection's stream's */
    uv_timer_t timer;          /* the earliest deadline; data: the connection whose runs */
    net_conn **heap;           /* connections with a deadline, earliest first */
    size_t heap_len, heap_cap;
    uint64_t armed_due;        /* what the timer is armed for, while `armed` */
    int armed;
    int timer_closing;
    int timer_closed;
    uv_loop_t *loop;
    net_conn_set_options opt;
    ss_list conns;
    size_t count;
    int stopping;
    int listener_closed;
    void (*stopped)(void *arg);
    void *stopped_arg;
};

static net_conn_set *set_of_timer(void *timer)
{
    return (net_conn_set *)((char *)timer - offsetof(net_conn_set, timer));
}

static void on_set_timer_closed(uv_handle_t *h)
{
    net_conn_set *s = set_of_timer(h);
    s->timer_closed = 1;
    if (s->stopped)
        s->stopped(s->stopped_arg);
}

static void set_close_timer(net_conn_set *s)
{
    if (s->timer_closing)
        return;
    s->timer_closing = 1;
    uv_close((uv_handle_t *)&s->timer, on_set_timer_closed);
}

/* The timer goes last: a connection's deadline may run until it is freed. */
static void set_maybe_stopped(net_conn_set *s)
{
    if (!s->stopping || s->count > 0 || !s->listener_closed)
        return;
    if (!s->timer_closed) {
        set_close_timer(s);
        return;
    }
    if (s->stopped)
        s->stopped(s->stopped_arg);
}

/* ---- deadlines ------------------------------------------------------------- */

static void heap_set(net_conn_set *s, size_t i, net_conn *c)
{
    s->heap[i] = c;
    c->heap_idx = (uint32_t)i;
}

static void heap_up(net_conn_set *s, size_t i)
{
    net_conn *c = s->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent]->due_ms <= c->due_ms)
            break;
        heap_set(s, i, s->heap[parent]);
        i = parent;
    }
    heap_set(s, i, c);
}

static void heap_down(net_conn_set *s, size_t i)
{
    net_conn *c = s->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        uint64_t md = c->due_ms;
        if (l < s->heap_len && s->heap[l]->due_ms < md)
            m = l, md = s->heap[l]->due_ms;
        if (l + 1 < s->heap_len && s->heap[l + 1]->due_ms < md)
            m = l + 1;
        if (m == i)
            break;
        heap_set(s, i, s->heap[m]);
        i = m;
    }
    heap_set(s, i, c);
}

static void on_set_timer(uv_timer_t *t);

/* Arms the set's timer for the earliest deadline, when that is earlier than
 * what it is armed for: a deadline pushed back (a keep-alive on every
 * packet) costs no timer restart; a timer that fires early finds nothing
 * due and is armed again for the earliest. */
static void set_timer_rearm(net_conn_set *s)
{
    if (s->timer_closing)
        return;
    if (s->heap_len == 0) {
        if (s->armed)
            uv_timer_stop(&s->timer);
        s->armed = 0;
        return;
    }
    uint64_t due = s->heap[0]->due_ms;
    if (s->armed && s->armed_due <= due)
        return;
    uint64_t now = uv_now(s->loop);
    uv_timer_start(&s->timer, on_set_timer, due > now ? due - now : 0, 0);
    s->armed = 1;
    s->armed_due = due;
}

static void deadline_remove(net_conn *c)
{
    net_conn_set *s = c->set;
    size_t i = c->heap_idx;
    if (i == NET_CONN_UNARMED)
        return;
    c->heap_idx = NET_CONN_UNARMED;
    net_conn *last = s->heap[--s->heap_len];
    if (last != c) {
        heap_set(s, i, last);
        heap_up(s, i);
        heap_down(s, last->heap_idx);
    }
    set_timer_rearm(s);
}

static void deadline_set(net_conn *c, uv_timer_cb cb, uint64_t ms)
{
    net_conn_set *s = c->set;
    c->timer_cb = cb;
    c->due_ms = uv_now(s->loop) + ms;
    if (c->heap_idx == NET_CONN_UNARMED) {
        /* room was made at the accept */
        heap_set(s, s->heap_len++, c);
        heap_up(s, c->heap_idx);
    } else {
        heap_up(s, c->heap_idx);
        heap_down(s, c->heap_idx);
    }
    set_timer_rearm(s);
}

/* Runs the deadlines due, each once (one armed again with 0 ms waits for
 * the next turn of the loop at most once more: the pass is bounded by the
 * heap's length when it started). A callback may close, release or arm
 * any connection: none is touched after its callback. */
static void on_set_timer(uv_timer_t *t)
{
    net_conn_set *s = set_of_timer(t);
    s->armed = 0;
    uint64_t now = uv_now(s->loop);
    for (size_t n = s->heap_len; n > 0 && s->heap_len > 0 && s->heap[0]->due_ms <= now; n--) {
        net_conn *c = s->heap[0];
        uv_timer_cb cb = c->timer_cb;
        deadline_remove(c);
        t->data = c;
        cb(t);
    }
    t->data = NULL;
    set_timer_rearm(s);
}

/* Room for one more connection's deadline. 0 or SS_NOMEM. */
static int heap_reserve(net_conn_set *s)
{
    if (s->count < s->heap_cap)
        return SS_OK;
    size_t cap = s->heap_cap ? 2 * s->heap_cap : 64;
    net_conn **h = realloc(s->heap, cap * sizeof *h);
    if (!h)
        return SS_NOMEM;
    s->heap = h;
    s->heap_cap = cap;
    return SS_OK;
}

/* ---- one connection ------------------------------------------------------ */

static void conn_free(net_conn *c)
{
    net_conn_set *s = c->set;
    if (c->opened && s->opt.on_free)
        s->opt.on_free(c);
    deadline_remove(c);
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

static void conn_close_timer(net_conn *c)
{
    c->timer_off = 1;
    deadline_remove(c);
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
    /* The stream may have closed at once (its shutdown failed): then it
     * has no deadline any more. */
    if (!c->timer_off)
        deadline_set(c, on_linger_expired, linger_ms);
}

void net_conn_timer_start(net_conn *c, uv_timer_cb cb, uint64_t ms)
{
    if (!c->timer_off)
        deadline_set(c, cb, ms);
}

void net_conn_timer_stop(net_conn *c)
{
    deadline_remove(c);
}

int net_conn_timer_armed(const net_conn *c)
{
    return c->heap_idx != NET_CONN_UNARMED;
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
    net_conn *c = heap_reserve(s) ? NULL : calloc(1, s->opt.conn_size);
    if (!c) {
        refuse_connection(listener);
        return;
    }
    c->set = s;
    c->heap_idx = NET_CONN_UNARMED;
    c->stream.hooks = &s->hooks;
    c->stream.data = c;
    ss_list_insert_tail(&s->conns, &c->link);
    s->count++;
    metrics_connection_opened(s->opt.metrics, s->opt.listener);
    c->handles_open = 1;
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
    s->hooks = (net_stream_hooks){.on_read = opt->on_read, .on_error = opt->on_error,
                                  .on_close = on_stream_closed, .on_drained = opt->on_drained};
    ss_list_init(&s->conns);
    s->listener.data = s;
    uv_timer_init(loop, &s->timer);
    *out = s;
    int rc = net_tcp_listen(loop, &s->listener, &na, on_connection, bound, cap);
    if (rc) {
        /* net_tcp_listen closed the handle: free once libuv has let go. */
        s->stopping = 1;
        s->listener_closed = 1;
        set_close_timer(s);
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
    free(s->heap);
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
