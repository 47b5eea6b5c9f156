/* test_http.c — the HTTP/1.1 server: requests, answers, limits, lifetime.
 *
 * Each test starts http_server_start on 127.0.0.1:0 on a private loop and
 * drives it from one client thread with blocking sockets. The client thread
 * never asserts: it records the raw responses it read, and whether it saw EOF;
 * the server side records what the handler saw. The main thread checks after
 * the loop has ended, the server is stopped and freed and uv_loop_close() == 0.
 * "Late" answers come from a uv_timer, to stand for a slow handler. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/err.h"
#include "core/limits.h"
#include "http/framing.h"
#include "http/server.h"
#include "net/stream.h"
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

/* A loop still running after this has hung: stop it and fail. */
#define TEST_GUARD_MS 8000
/* A client blocked this long on its socket gives up (below the guard). */
#define CLIENT_IO_TIMEOUT_S 3
/* A slow handler answers after this long. */
#define LATE_MS 100
/* Long enough for the server to read the first of two writes on its own. */
#define SPLIT_PAUSE_US 50000
#define MAX_LATE 16
#define MAX_RESP 8
#define RESP_CAP 8192
#define SEEN_CAP 8192
#define EVENTS_CAP 1024
#define CLI_BUF (128u * 1024u)
/* A short send stall and body timeout, so their tests take a second. */
#define SHORT_TIMEOUT_MS 300u
/* An answer far larger than the socket buffers of a peer that reads nothing. */
#define BIG_ANSWER (8u * 1024u * 1024u)

/* Small body limit so the N / N+1 edges are cheap to send. */
#define SMALL_BODY_MAX 100u

typedef struct fixture fixture;
/* Sees each request first; returns 1 when it has answered it itself. */
typedef int (*inspect_fn)(fixture *f, http_request *req);

struct fixture {
    uv_loop_t loop;
    http_server *srv;
    net_loop_buffers *bufs;
    uv_async_t client_done;
    uv_timer_t guard;
    uv_timer_t late_timer;
    int port;
    /* loop thread */
    inspect_fn inspect;
    http_request *late[MAX_LATE];
    size_t late_n;
    int requests;
    atomic_int dispatched; /* requests, for the client to wait on */
    int stop_called, done_calls, client_finished, finishing, timed_out;
    size_t conns_at_stop, conns_at_done, conns_before_late, conns_after_late;
    char events[EVENTS_CAP];
    char seen[SEEN_CAP];
    /* client thread, read by the main thread after join */
    void (*client_fn)(fixture *);
    char resp[MAX_RESP][RESP_CAP];
    int nresp;
    int eof[4];
    int reconnect_refused;
    int flood_answers;
    int statuses[64];  /* client thread: one status per connection of a table */
    int early_eof_ms;  /* client thread: time from head sent to answer read */
    uintptr_t stack_low, stack_high; /* loop thread */
    /* A streamed answer's producer (loop thread). */
    uv_idle_t prod_idle;
    http_request *sreq;
    size_t sent, total;       /* body bytes written; total 0: endless */
    size_t max_unsent;        /* the most http_stream_unsent showed after a write */
    int endless, revoke, gone_calls, ends, drained_calls, begin_rc;
    int accounted;            /* accounting calls after an answer (closing 0) */
    uint64_t account_out;     /* their bytes_out */
    /* client thread: a streamed body read back */
    long sbody[4];            /* its length, -1 on a framing or byte error */
    int sdone[4];             /* 1 when it ended with its last chunk */
    int cli_rcvbuf;           /* nonzero: the clients' receive buffer */
    /* TLS (setup_tls): the server's context, the client's, their files. */
    SSL_CTX *srv_tls, *cli_tls;
    char tls_dir[64], tls_cert[128], tls_key[128];
    /* A streamed request body's handler (loop thread). */
    uv_timer_t resume_timer;
    http_request *breq;
    size_t body_got, next_pause;
    int body_bad, body_pauses, body_paused, pieces_while_paused, body_gone_calls;
};

typedef struct cli {
    int fd;
    SSL *ssl;       /* NULL for plaintext */
    size_t len;
    char buf[CLI_BUF];
} cli;

static void appendf(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void appendf(char *dst, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(dst);
    if (n + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst + n, cap - n, fmt, ap);
    va_end(ap);
}

/* ---- server side ---------------------------------------------------------- */

static void maybe_finish(fixture *f);

static void on_stopped(void *arg)
{
    fixture *f = arg;
    f->done_calls++;
    f->conns_at_done = http_server_connections(f->srv);
    appendf(f->events, sizeof f->events, "done;");
}

static void stop_server(fixture *f)
{
    f->stop_called = 1;
    appendf(f->events, sizeof f->events, "stop;");
    http_server_stop(f->srv, on_stopped, f);
    f->conns_at_stop = http_server_connections(f->srv);
}

/* The default answer: names the path and the body length, so the client can
 * tell answers apart and see they came in order. */
static void answer(fixture *f, http_request *req)
{
    char body[256];
    int n = snprintf(body, sizeof body, "path=%s body=%zu", req->path, req->body.len);
    appendf(f->events, sizeof f->events, "resp%s;", req->path);
    http_respond(req, 200, "text/plain", body, (size_t)n, "X-Test: 1\r\n");
}

static void on_late(uv_timer_t *t)
{
    fixture *f = t->data;
    /* Answering may dispatch a pipelined request that is late too: take the
     * list out first. */
    http_request *todo[MAX_LATE];
    size_t n = f->late_n;
    memcpy(todo, f->late, n * sizeof *todo);
    f->late_n = 0;
    f->conns_before_late = http_server_connections(f->srv);
    for (size_t i = 0; i < n; i++)
        answer(f, todo[i]);
    f->conns_after_late = http_server_connections(f->srv);
    maybe_finish(f);
}

static void answer_late(fixture *f, http_request *req)
{
    if (f->late_n == MAX_LATE) {
        answer(f, req);
        return;
    }
    f->late[f->late_n++] = req;
    if (!uv_is_active((uv_handle_t *)&f->late_timer))
        uv_timer_start(&f->late_timer, on_late, LATE_MS, 0);
}

static void stream_start(fixture *f, http_request *req);
static int body_start(fixture *f, http_request *req);
static void body_answer(fixture *f, http_request *req);

static void on_request(void *ctx, http_request *req)
{
    fixture *f = ctx;
    f->requests++;
    atomic_fetch_add(&f->dispatched, 1);
    appendf(f->events, sizeof f->events, "req%s;", req->path);
    if (f->inspect && f->inspect(f, req))
        return;
    if (strcmp(req->path, "/stream-stopping") == 0) {
        stop_server(f);
        stream_start(f, req);
    } else if (strncmp(req->path, "/stream", 7) == 0) {
        stream_start(f, req);
    } else if (strncmp(req->path, "/upload", 7) == 0) {
        body_answer(f, req);
    } else if (strncmp(req->path, "/slow", 5) == 0) {
        answer_late(f, req);
    } else if (strcmp(req->path, "/stop-now") == 0) {
        answer(f, req);
        stop_server(f);
    } else if (strcmp(req->path, "/stop-slow") == 0) {
        stop_server(f);
        answer_late(f, req);
    } else if (strcmp(req->path, "/huge") == 0) {
        char *big = calloc(1, BIG_ANSWER);
        http_respond(req, 200, "text/plain", big, big ? BIG_ANSWER : 0, NULL);
        free(big);
    } else if (strcmp(req->path, "/count") == 0) {
        char body[32];
        int n = snprintf(body, sizeof body, "%zu", http_server_connections(f->srv));
        appendf(f->events, sizeof f->events, "resp%s;", req->path);
        http_respond(req, 200, "text/plain", body, (size_t)n, NULL);
    } else {
        answer(f, req);
    }
}

/* Refuses /early from its head, as a bad credential would be. */
static int on_head(void *ctx, http_request *req)
{
    fixture *f = ctx;
    if (strncmp(req->path, "/upload", 7) == 0)
        return body_start(f, req);
    if (strcmp(req->path, "/early") != 0)
        return 0;
    appendf(f->events, sizeof f->events, "early;");
    http_respond_error(req, 401, "invalid_token", "refused from the head", NULL);
    return 1;
}

static void on_account(void *ctx, http_request *req, uint64_t bytes_in, uint64_t bytes_out,
                       int closing)
{
    fixture *f = ctx;
    (void)req;
    (void)bytes_in;
    /* What was still unsent at an answer's end is counted at the close. */
    f->account_out += bytes_out;
    if (!closing)
        f->accounted++;
}

static void maybe_finish(fixture *f)
{
    if (!f->client_finished || f->late_n > 0 || f->finishing)
        return;
    f->finishing = 1;
    if (!f->stop_called)
        stop_server(f);
    uv_close((uv_handle_t *)&f->client_done, NULL);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_close((uv_handle_t *)&f->late_timer, NULL);
    uv_close((uv_handle_t *)&f->prod_idle, NULL);
    uv_close((uv_handle_t *)&f->resume_timer, NULL);
}

static void on_client_done(uv_async_t *a)
{
    fixture *f = a->data;
    f->client_finished = 1;
    maybe_finish(f);
}

static void on_guard(uv_timer_t *t)
{
    fixture *f = t->data;
    f->timed_out = 1;
    uv_stop(&f->loop);
}

/* ---- client side ---------------------------------------------------------- */

static int cli_open(fixture *f, cli *c)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = CLIENT_IO_TIMEOUT_S};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Before connect: the window scale is agreed on by then. */
    if (f->cli_rcvbuf)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &f->cli_rcvbuf, sizeof f->cli_rcvbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->ssl = NULL;
    if (!f->cli_tls)
        return 0;
    c->ssl = SSL_new(f->cli_tls);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1) {
        SSL_free(c->ssl);
        c->ssl = NULL;
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static cli *cli_new(fixture *f)
{
    cli *c = calloc(1, sizeof *c);
    if (c && cli_open(f, c) != 0)
        c->fd = -1;
    return c;
}

static void cli_free(cli *c)
{
    SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

/* send(2) or SSL_write: bytes taken, or <= 0. */
static ssize_t cli_write(cli *c, const char *data, size_t len)
{
    if (!c->ssl)
        return send(c->fd, data, len, MSG_NOSIGNAL);
    size_t n = 0;
    return SSL_write_ex(c->ssl, data, len, &n) == 1 ? (ssize_t)n : -1;
}

/* recv(2) or SSL_read: bytes read, 0 at the end, -1 on an error. */
static ssize_t cli_recv(cli *c, char *out, size_t cap)
{
    if (!c->ssl)
        return recv(c->fd, out, cap, 0);
    size_t n = 0;
    if (SSL_read_ex(c->ssl, out, cap, &n) == 1)
        return (ssize_t)n;
    return SSL_get_error(c->ssl, 0) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

static void cli_send(cli *c, const char *data, size_t len)
{
    while (c->fd >= 0 && len) {
        ssize_t n = cli_write(c, data, len);
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

static void cli_sends(cli *c, const char *text)
{
    cli_send(c, text, strlen(text));
}

/* >0 bytes read, 0 EOF, -1 error or timeout. */
static int cli_fill(cli *c)
{
    if (c->fd < 0 || c->len == CLI_BUF)
        return -1;
    ssize_t n = cli_recv(c, c->buf + c->len, CLI_BUF - c->len);
    if (n < 0)
        return -1;
    c->len += (size_t)n;
    return (int)n;
}

static size_t content_length_of(const char *head, size_t len)
{
    char tmp[RESP_CAP];
    size_t n = len < sizeof tmp - 1 ? len : sizeof tmp - 1;
    memcpy(tmp, head, n);
    tmp[n] = '\0';
    const char *p = strcasestr(tmp, "\r\ncontent-length:");
    return p ? (size_t)strtoul(p + 17, NULL, 10) : 0;
}

/* Reads one response (head and Content-Length body) into f->resp. The
 * status, or -1 when the connection ended or timed out first. */
static int cli_read_resp(fixture *f, cli *c)
{
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (cli_fill(c) <= 0)
            return -1;
    size_t head = (size_t)(end - c->buf) + 4;
    size_t total = head + content_length_of(c->buf, head);
    while (c->len < total)
        if (cli_fill(c) <= 0)
            return -1;
    if (f->nresp < MAX_RESP) {
        size_t keep = total < RESP_CAP - 1 ? total : RESP_CAP - 1;
        memcpy(f->resp[f->nresp], c->buf, keep);
        f->resp[f->nresp][keep] = '\0';
        f->nresp++;
    }
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
    return atoi(f->resp[f->nresp - 1] + 9);
}

/* 1 when the server closed (clean EOF with nothing unread), 0 on extra
 * bytes, -1 on an error or timeout. */
static int cli_wait_eof(cli *c)
{
    if (c->len)
        return 0;
    int n = cli_fill(c);
    return n == 0 ? 1 : n > 0 ? 0 : -1;
}

/* Waits (bounded) until the handler has been given n requests in all. */
static void cli_wait_dispatched(fixture *f, int n)
{
    for (int i = 0; i < CLIENT_IO_TIMEOUT_S * 1000 && atomic_load(&f->dispatched) < n; i++)
        usleep(1000);
}

static void *client_main(void *arg)
{
    fixture *f = arg;
    f->client_fn(f);
    uv_async_send(&f->client_done);
    return NULL;
}

/* ---- fixture -------------------------------------------------------------- */

static int setup_opts(void **state, size_t body_max, SSL_CTX *tls)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->bufs = calloc(1, sizeof *f->bufs);
    assert_non_null(f->bufs);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->client_done.data = f->guard.data = f->late_timer.data = f;
    assert_int_equal(uv_async_init(&f->loop, &f->client_done, on_client_done), 0);
    uv_timer_init(&f->loop, &f->guard);
    uv_timer_init(&f->loop, &f->late_timer);
    uv_idle_init(&f->loop, &f->prod_idle);
    f->prod_idle.data = f;
    uv_timer_init(&f->loop, &f->resume_timer);
    f->resume_timer.data = f;
    uv_timer_start(&f->guard, on_guard, TEST_GUARD_MS, 0);
    http_server_options opt = {
        .name = "http", .tls = tls, .on_request = on_request, .on_head = on_head, .ctx = f, .bufs = f->bufs,
        .body_max = body_max, .body_timeout_ms = SHORT_TIMEOUT_MS,
        .send_stall_ms = SHORT_TIMEOUT_MS, .on_account = on_account,
    };
    char bound[64] = "";
    assert_int_equal(http_server_start(&f->loop, "127.0.0.1:0", &opt, &f->srv, bound, sizeof bound),
                     0);
    assert_non_null(f->srv);
    assert_true(strncmp(bound, "127.0.0.1:", 10) == 0);
    f->port = atoi(bound + 10);
    assert_true(f->port > 0);
    assert_int_equal(http_server_connections(f->srv), 0);
    *state = f;
    return 0;
}

static int setup_with(void **state, size_t body_max)
{
    return setup_opts(state, body_max, NULL);
}

static int setup(void **state)
{
    return setup_with(state, 0);
}

/* The same server over TLS, with a certificate made for the test. */
static int setup_tls(void **state)
{
    char dir[64] = "/tmp/test_http.XXXXXX", cert[128], key[128];
    assert_non_null(mkdtemp(dir));
    int generated = 0;
    assert_int_equal(tls_ensure_self_signed(dir, cert, key, sizeof cert, &generated), 0);
    char err[256] = "";
    SSL_CTX *srv = tls_server_ctx_new(cert, key, err, sizeof err);
    assert_non_null(srv);
    SSL_CTX *peer = SSL_CTX_new(TLS_client_method());
    assert_non_null(peer);
    /* A close without close_notify reads as an end, as a browser takes it. */
    SSL_CTX_set_options(peer, SSL_OP_IGNORE_UNEXPECTED_EOF);
    setup_opts(state, 0, srv);
    fixture *f = *state;
    f->srv_tls = srv;
    f->cli_tls = peer;
    memcpy(f->tls_dir, dir, sizeof dir);
    memcpy(f->tls_cert, cert, sizeof cert);
    memcpy(f->tls_key, key, sizeof key);
    return 0;
}

static int setup_small(void **state)
{
    return setup_with(state, SMALL_BODY_MAX);
}

static int teardown(void **state)
{
    fixture *f = *state;
    http_server_free(f->srv);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    SSL_CTX_free(f->srv_tls);
    SSL_CTX_free(f->cli_tls);
    if (f->tls_dir[0]) {
        unlink(f->tls_cert);
        unlink(f->tls_key);
        rmdir(f->tls_dir);
    }
    free(f->bufs);
    free(f);
    return 0;
}

/* Runs the loop with client_fn in a thread until the client is done, every
 * late answer is out and the server has stopped with every handle closed. */
static void run(fixture *f, void (*client_fn)(fixture *))
{
    pthread_t th;
    f->client_fn = client_fn;
    assert_int_equal(pthread_create(&th, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    assert_false(f->timed_out);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(f->conns_at_done, 0);
    assert_int_equal(http_server_connections(f->srv), 0);
}

/* ---- response checks (main thread) ---------------------------------------- */

static int resp_status(const fixture *f, int i)
{
    return i < f->nresp ? atoi(f->resp[i] + 9) : -1;
}

static const char *resp_body(const fixture *f, int i)
{
    const char *end = i < f->nresp ? strstr(f->resp[i], "\r\n\r\n") : NULL;
    return end ? end + 4 : "";
}

/* 1 when response i has the header line exactly (e.g. "Connection: close"). */
static int resp_has(const fixture *f, int i, const char *line)
{
    if (i >= f->nresp)
        return 0;
    char needle[256];
    snprintf(needle, sizeof needle, "\r\n%s\r\n", line);
    const char *end = strstr(f->resp[i], "\r\n\r\n");
    const char *hit = strstr(f->resp[i], needle);
    return hit && end && hit <= end;
}

/* ---- a simple GET, keep-alive, HTTP/1.0 ---------------------------------- */

static int inspect_simple(fixture *f, http_request *req)
{
    appendf(f->seen, sizeof f->seen, "%s|%s|[%s]|%s|tls=%d|ka=%d|body=%zu|t=%d", http_method_str(req->method),
            req->path, req->query, req->peer, req->tls, req->keep_alive, req->body.len,
            req->started_ms > 0);
    return 0;
}

static void cli_simple_get(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_free(c);
}

static void test_simple_get_gets_status_headers_and_body(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_simple;
    run(f, cli_simple_get);
    assert_string_equal(f->seen, "GET|/hello|[]|127.0.0.1|tls=0|ka=1|body=0|t=1");
    assert_int_equal(f->nresp, 1);
    assert_true(strncmp(f->resp[0], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_true(resp_has(f, 0, "Content-Length: 18"));
    assert_true(resp_has(f, 0, "Content-Type: text/plain"));
    assert_true(resp_has(f, 0, "X-Test: 1"));
    assert_false(resp_has(f, 0, "Connection: close"));
    assert_string_equal(resp_body(f, 0), "path=/hello body=0");
}

static void cli_keep_alive(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_sends(c, "POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    cli_read_resp(f, c);
    cli_free(c);
}

static int inspect_count(fixture *f, http_request *req)
{
    appendf(f->seen, sizeof f->seen, "%s=%zu;", req->path, http_server_connections(f->srv));
    return 0;
}

static void test_keep_alive_serves_two_requests_on_one_connection(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_count;
    run(f, cli_keep_alive);
    assert_string_equal(f->seen, "/one=1;/two=1;");
    assert_int_equal(f->nresp, 2);
    assert_string_equal(resp_body(f, 0), "path=/one body=0");
    assert_string_equal(resp_body(f, 1), "path=/two body=3");
    assert_false(resp_has(f, 1, "Connection: close"));
}

static void cli_http10(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /old HTTP/1.0\r\n\r\n");
    cli_read_resp(f, c);
    f->eof[0] = cli_wait_eof(c);
    cli_free(c);
    c = cli_new(f);
    cli_sends(c, "GET /ka1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    cli_read_resp(f, c);
    cli_sends(c, "GET /ka2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cli_read_resp(f, c);
    f->eof[1] = cli_wait_eof(c);
    cli_free(c);
}

static void test_http10_closes_after_answer_unless_keep_alive(void **state)
{
    fixture *f = *state;
    run(f, cli_http10);
    assert_int_equal(f->nresp, 3);
    assert_int_equal(resp_status(f, 0), 200);
    assert_true(resp_has(f, 0, "Connection: close"));
    assert_int_equal(f->eof[0], 1);
    assert_false(resp_has(f, 1, "Connection: close"));
    assert_string_equal(resp_body(f, 1), "path=/ka1 body=0");
    assert_true(resp_has(f, 2, "Connection: close"));
    assert_string_equal(resp_body(f, 2), "path=/ka2 body=0");
    assert_int_equal(f->eof[1], 1);
}

/* ---- pipelining: one request in flight, answers in order ------------------- */

static void cli_pipeline(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    for (int i = 0; i < 3; i++)
        cli_read_resp(f, c);
    cli_free(c);
}

static void test_pipelined_requests_wait_for_the_late_first_answer(void **state)
{
    fixture *f = *state;
    run(f, cli_pipeline);
    assert_string_equal(f->events, "req/slow;resp/slow;req/a;resp/a;req/b;resp/b;stop;done;");
    assert_int_equal(f->nresp, 3);
    assert_string_equal(resp_body(f, 0), "path=/slow body=0");
    assert_string_equal(resp_body(f, 1), "path=/a body=0");
    assert_string_equal(resp_body(f, 2), "path=/b body=2");
}

/* Pipelined bytes that arrive while the first request is in flight, with the
 * second request split across the two writes; the second is slow too. */
static void cli_pipeline_split(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /slow1 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow2 HT");
    usleep(SPLIT_PAUSE_US);
    cli_sends(c, "TP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 3; i++)
        cli_read_resp(f, c);
    cli_free(c);
}

static void test_pipelined_request_split_across_writes_is_answered_in_order(void **state)
{
    fixture *f = *state;
    run(f, cli_pipeline_split);
    assert_string_equal(f->events,
                        "req/slow1;resp/slow1;req/slow2;resp/slow2;req/c;resp/c;stop;done;");
    assert_int_equal(f->nresp, 3);
    assert_string_equal(resp_body(f, 0), "path=/slow1 body=0");
    assert_string_equal(resp_body(f, 1), "path=/slow2 body=0");
    assert_string_equal(resp_body(f, 2), "path=/c body=0");
}

/* Many small requests in one read, each answered at once: the answers must
 * not nest inside one another (stack and buffered copies would grow with
 * the number of requests a client packs into one write). */
#define FLOOD_REQUESTS 2000
/* The handler's stack may move by a few frames between requests, not by a
 * frame set per pipelined request. */
#define FLOOD_STACK_SPREAD_MAX (64u * 1024u)

static int inspect_stack(fixture *f, http_request *req)
{
    (void)req;
    char marker;
    uintptr_t here = (uintptr_t)&marker;
    if (!f->stack_low || here < f->stack_low)
        f->stack_low = here;
    if (here > f->stack_high)
        f->stack_high = here;
    return 0;
}

static void cli_flood(fixture *f)
{
    static const char one[] = "GET /p HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t n = sizeof one - 1;
    char *all = malloc(n * FLOOD_REQUESTS);
    cli *c = cli_new(f);
    if (!all)
        return;
    for (size_t i = 0; i < FLOOD_REQUESTS; i++)
        memcpy(all + i * n, one, n);
    cli_send(c, all, n * FLOOD_REQUESTS);
    for (int i = 0; i < FLOOD_REQUESTS; i++) {
        int before = f->nresp;
        if (cli_read_resp(f, c) != 200)
            break;
        f->flood_answers++;
        f->nresp = before;
    }
    cli_free(c);
    free(all);
}

static void test_pipelined_flood_is_answered_without_nesting(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_stack;
    run(f, cli_flood);
    assert_int_equal(f->requests, FLOOD_REQUESTS);
    assert_int_equal(f->flood_answers, FLOOD_REQUESTS);
    assert_true(f->stack_high - f->stack_low < FLOOD_STACK_SPREAD_MAX);
}

/* More pipelined bytes than the server buffers behind a slow request: it
 * stops reading, then resumes after the answer, and every request is
 * answered in order. Large requests keep the count (and nesting) small. */
#define BULK_REQUESTS 100
#define BULK_BODY 2000

static void cli_bulk_behind_slow(fixture *f)
{
    size_t cap = (size_t)BULK_REQUESTS * (BULK_BODY + 128) + 64;
    char *all = malloc(cap);
    char *body = malloc(BULK_BODY + 1);
    cli *c = cli_new(f);
    if (!all || !body) {
        free(all);
        free(body);
        cli_free(c);
        return;
    }
    memset(body, 'q', BULK_BODY);
    body[BULK_BODY] = '\0';
    size_t len = (size_t)snprintf(all, cap, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < BULK_REQUESTS; i++)
        len += (size_t)snprintf(all + len, cap - len,
                                "POST /p%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", i, BULK_BODY,
                                body);
    cli_send(c, all, len);
    if (cli_read_resp(f, c) == 200)
        f->flood_answers++;
    for (int i = 0; i < BULK_REQUESTS; i++) {
        char expect[64];
        snprintf(expect, sizeof expect, "path=/p%d body=%d", i, BULK_BODY);
        int before = f->nresp;
        if (cli_read_resp(f, c) != 200 || strcmp(resp_body(f, before), expect) != 0)
            break;
        f->flood_answers++;
        f->nresp = before;
    }
    cli_free(c);
    free(all);
    free(body);
}

static void test_pipelined_bytes_past_the_buffer_wait_and_are_all_answered(void **state)
{
    fixture *f = *state;
    run(f, cli_bulk_behind_slow);
    assert_int_equal(f->requests, BULK_REQUESTS + 1);
    assert_int_equal(f->flood_answers, BULK_REQUESTS + 1);
}

/* A HEAD answer carries the GET headers but never a body (RFC 9110 §9.3.2):
 * a keep-alive client reads the next answer right after the head. */
static void cli_head(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n");
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (cli_fill(c) <= 0)
            break;
    if (end) {
        size_t head = (size_t)(end - c->buf) + 4;
        snprintf(f->resp[0], RESP_CAP, "%.*s", (int)head, c->buf);
        f->nresp = 1;
        memmove(c->buf, c->buf + head, c->len - head);
        c->len -= head;
        cli_read_resp(f, c);
    }
    cli_free(c);
}

static void test_head_answer_has_no_body(void **state)
{
    fixture *f = *state;
    run(f, cli_head);
    assert_int_equal(f->nresp, 2);
    assert_int_equal(resp_status(f, 0), 200);
    assert_true(strncmp(f->resp[1], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_string_equal(resp_body(f, 1), "path=/g body=0");
}

/* An Upgrade request is a plain request to us: answered, and the connection
 * goes on with HTTP. */
static void cli_upgrade(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                 "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_read_resp(f, c);
    cli_free(c);
}

static void test_upgrade_request_is_answered_as_plain_http(void **state)
{
    fixture *f = *state;
    run(f, cli_upgrade);
    assert_int_equal(f->nresp, 2);
    assert_string_equal(resp_body(f, 0), "path=/up body=0");
    assert_string_equal(resp_body(f, 1), "path=/after body=0");
}

/* ---- headers ---------------------------------------------------------------- */

static void seen_header(fixture *f, http_request *req, const char *name)
{
    const char *v = http_request_header(req, name);
    appendf(f->seen, sizeof f->seen, "%s=%s;", name, v ? v : "(null)");
}

static int inspect_headers(fixture *f, http_request *req)
{
    seen_header(f, req, "x-custom-header");
    seen_header(f, req, "content-type");
    seen_header(f, req, "x-split");
    seen_header(f, req, "x-split-name");
    seen_header(f, req, "x-empty");
    seen_header(f, req, "missing");
    appendf(f->seen, sizeof f->seen, "n=%zu", req->header_count);
    return 0;
}

static void cli_headers(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /h HTTP/1.1\r\nHost: x\r\nX-CUSTOM-Header: Value1\r\n"
                 "content-TYPE: text/plain\r\nX-Empty:\r\nX-Split: hel");
    usleep(SPLIT_PAUSE_US);
    cli_sends(c, "lo world\r\nX-Split-Na");
    usleep(SPLIT_PAUSE_US);
    cli_sends(c, "me: v2\r\n\r\n");
    cli_read_resp(f, c);
    cli_free(c);
}

static void test_header_lookup_by_lowercase_name_and_split_value(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_headers;
    run(f, cli_headers);
    assert_string_equal(f->seen, "x-custom-header=Value1;content-type=text/plain;"
                                 "x-split=hello world;x-split-name=v2;x-empty=;missing=(null);n=6");
    assert_int_equal(resp_status(f, 0), 200);
}

static int inspect_many_headers(fixture *f, http_request *req)
{
    seen_header(f, req, "h0");
    seen_header(f, req, "h62");
    seen_header(f, req, "h63");
    appendf(f->seen, sizeof f->seen, "n=%zu", req->header_count);
    return 0;
}

/* SS_HTTP_HEADERS_MAX headers are kept (Host and h0..h62), the next is
 * dropped — also when the dropped header's value arrives in two pieces. */
static void cli_many_headers(fixture *f)
{
    char head[4096] = "GET /many HTTP/1.1\r\nHost: x\r\n";
    for (unsigned i = 0; i < SS_HTTP_HEADERS_MAX - 1; i++)
        appendf(head, sizeof head, "h%u: v%u\r\n", i, i);
    appendf(head, sizeof head, "h63: aa");
    cli *c = cli_new(f);
    cli_sends(c, head);
    usleep(SPLIT_PAUSE_US);
    cli_sends(c, "a\r\n\r\n");
    cli_read_resp(f, c);
    cli_free(c);
}

static void test_headers_past_the_limit_are_dropped_even_when_split(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_many_headers;
    run(f, cli_many_headers);
    assert_int_equal(resp_status(f, 0), 200);
    assert_string_equal(f->seen, "h0=v0;h62=v62;h63=(null);n=64");
}

/* ---- query strings ---------------------------------------------------------- */

static void seen_query(fixture *f, http_request *req, const char *name, size_t cap)
{
    char out[64];
    memset(out, 'X', sizeof out);
    int rc = http_query_get(req, name, out, cap);
    appendf(f->seen, sizeof f->seen, "%s:%d:%s;", name, rc, rc == 1 ? out : "-");
}

static int inspect_query(fixture *f, http_request *req)
{
    appendf(f->seen, sizeof f->seen, "%s?%s;", req->path, req->query);
    seen_query(f, req, "a", 64);
    seen_query(f, req, "name", 64);
    seen_query(f, req, "plus", 64);
    seen_query(f, req, "empty", 64);
    seen_query(f, req, "flag", 64);
    seen_query(f, req, "missing", 64);
    seen_query(f, req, "long", 11); /* 10 bytes and the NUL: fits */
    seen_query(f, req, "long", 10); /* one short */
    seen_query(f, req, "enckey", 64);
    seen_query(f, req, "utf", 64);
    seen_query(f, req, "twice", 64);
    /* A prefix of a name is not the name. */
    seen_query(f, req, "fla", 64);
    seen_query(f, req, "lon", 64);
    return 0;
}

static void cli_query(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /q?a=1&name=hello%20world&plus=a+b%2Bc&empty=&flag"
                 "&long=abcdefghij&enc%6Bey=v%3d1&utf=%C3%A9&twice=1&tw%69ce=2 HTTP/1.1\r\n"
                 "Host: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_free(c);
}

static void test_query_get_decodes_and_reports_absent_and_too_long(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_query;
    run(f, cli_query);
    assert_int_equal(resp_status(f, 0), 200);
    assert_string_equal(resp_body(f, 0), "path=/q body=0");
    char expect[1024];
    snprintf(expect, sizeof expect,
             "/q?a=1&name=hello%%20world&plus=a+b%%2Bc&empty=&flag&long=abcdefghij"
             "&enc%%6Bey=v%%3d1&utf=%%C3%%A9&twice=1&tw%%69ce=2;"
             "a:1:1;name:1:hello world;plus:1:a b+c;empty:1:;flag:1:;missing:0:-;"
             "long:1:abcdefghij;long:%d:-;enckey:1:v=1;utf:1:\xc3\xa9;twice:%d:-;fla:0:-;lon:0:-;",
             SS_TOO_LARGE, SS_INVAL);
    assert_string_equal(f->seen, expect);
}

static int inspect_no_query(fixture *f, http_request *req)
{
    char out[8];
    appendf(f->seen, sizeof f->seen, "%s|[%s]|%d", req->path, req->query,
            http_query_get(req, "a", out, sizeof out));
    return 0;
}

static void cli_no_query(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /plain HTTP/1.1\r\nHost: x\r\n\r\nGET /empty? HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_read_resp(f, c);
    cli_free(c);
}

static void test_query_absent_or_empty_has_no_parameters(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_no_query;
    run(f, cli_no_query);
    assert_string_equal(f->seen, "/plain|[]|0/empty|[]|0");
}

static int inspect_query_cap0(fixture *f, http_request *req)
{
    char out[4] = "XYZ";
    int rc = http_query_get(req, "empty", out, 0);
    appendf(f->seen, sizeof f->seen, "%d:%c", rc, out[0] ? out[0] : '0');
    return 0;
}

static void cli_query_cap0(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /q?empty= HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_free(c);
}

/* cap 0 has no room even for the terminating NUL: nothing may be written. */
static void test_query_get_with_cap_zero_writes_nothing(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_query_cap0;
    run(f, cli_query_cap0);
    char expect[32];
    snprintf(expect, sizeof expect, "%d:X", SS_TOO_LARGE);
    assert_string_equal(f->seen, expect);
}

/* ---- bodies ------------------------------------------------------------------- */

static int inspect_body(fixture *f, http_request *req)
{
    appendf(f->seen, sizeof f->seen, "%s:%zu:%.*s;", req->path, req->body.len, (int)req->body.len,
            req->body.data ? req->body.data : "");
    return 0;
}

static void cli_bodies(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello");
    usleep(SPLIT_PAUSE_US);
    cli_sends(c, " world");
    cli_read_resp(f, c);
    cli_sends(c, "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n6\r\n wo");
    usleep(SPLIT_PAUSE_US);
    cli_sends(c, "rld\r\n0\r\n\r\n");
    cli_read_resp(f, c);
    cli_sends(c, "POST /zero HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    cli_read_resp(f, c);
    cli_free(c);
}

static void test_content_length_and_chunked_bodies_arrive_whole(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_body;
    run(f, cli_bodies);
    assert_string_equal(f->seen, "/len:11:hello world;/chunked:11:hello world;/zero:0:;");
    assert_int_equal(f->nresp, 3);
    assert_string_equal(resp_body(f, 1), "path=/chunked body=11");
}

static void cli_body_at_limit(fixture *f)
{
    char body[SMALL_BODY_MAX + 1];
    memset(body, 'b', sizeof body);
    cli *c = cli_new(f);
    cli_sends(c, "POST /at HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
    cli_send(c, body, SMALL_BODY_MAX);
    cli_read_resp(f, c);
    /* Over by one: refused from the head alone, the body is never sent. */
    cli_sends(c, "POST /over HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n");
    cli_read_resp(f, c);
    f->eof[0] = cli_wait_eof(c);
    cli_free(c);
}

static void test_content_length_over_body_max_gets_413_before_the_body(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_body;
    run(f, cli_body_at_limit);
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->nresp, 2);
    assert_string_equal(resp_body(f, 0), "path=/at body=100");
    assert_int_equal(resp_status(f, 1), 413);
    assert_true(strncmp(f->resp[1], "HTTP/1.1 413 Content Too Large\r\n", 32) == 0);
    assert_true(resp_has(f, 1, "Connection: close"));
    assert_true(resp_has(f, 1, "Content-Type: application/json"));
    assert_non_null(strstr(resp_body(f, 1), "\"code\":\"too_large\""));
    assert_int_equal(f->eof[0], 1);
}

static void cli_chunked_limit(fixture *f)
{
    char chunk[SMALL_BODY_MAX + 1];
    memset(chunk, 'c', SMALL_BODY_MAX);
    chunk[SMALL_BODY_MAX] = '\0';
    char msg[512];
    cli *c = cli_new(f);
    /* Two chunks adding up to the limit exactly. */
    snprintf(msg, sizeof msg,
             "POST /at HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n%.50s\r\n"
             "32\r\n%.50s\r\n0\r\n\r\n", chunk, chunk);
    cli_sends(c, msg);
    cli_read_resp(f, c);
    /* One byte over, sent whole so the server has read everything it refuses. */
    snprintf(msg, sizeof msg,
             "POST /over HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n%s\r\n"
             "1\r\nc\r\n0\r\n\r\n", chunk);
    cli_sends(c, msg);
    cli_read_resp(f, c);
    f->eof[0] = cli_wait_eof(c);
    cli_free(c);
}

static void test_chunked_body_over_body_max_gets_413(void **state)
{
    fixture *f = *state;
    run(f, cli_chunked_limit);
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->nresp, 2);
    assert_string_equal(resp_body(f, 0), "path=/at body=100");
    assert_int_equal(resp_status(f, 1), 413);
    assert_true(resp_has(f, 1, "Connection: close"));
    assert_non_null(strstr(resp_body(f, 1), "\"too_large\""));
    assert_int_equal(f->eof[0], 1);
}

static void cli_expect_continue(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n");
    cli_read_resp(f, c);
    cli_sends(c, "hello");
    cli_read_resp(f, c);
    /* Too large: the refusal comes instead of the 100. */
    cli_sends(c, "POST /e2 HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\nExpect: 100-continue\r\n\r\n");
    cli_read_resp(f, c);
    f->eof[0] = cli_wait_eof(c);
    cli_free(c);
}

static void test_expect_100_continue_comes_before_the_final_answer(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_body;
    run(f, cli_expect_continue);
    assert_int_equal(f->nresp, 3);
    assert_string_equal(f->resp[0], "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(resp_status(f, 1), 200);
    assert_string_equal(resp_body(f, 1), "path=/e body=5");
    assert_string_equal(f->seen, "/e:5:hello;");
    assert_int_equal(resp_status(f, 2), 413);
    assert_int_equal(f->eof[0], 1);
}

/* ---- malformed and oversized requests ---------------------------------------- */

static void cli_bad_line(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GARBAGE\r\n\r\n");
    cli_read_resp(f, c);
    f->eof[0] = cli_wait_eof(c);
    cli_free(c);
    c = cli_new(f);
    cli_sends(c, "GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n");
    cli_read_resp(f, c);
    f->eof[1] = cli_wait_eof(c);
    cli_free(c);
    /* A good request, then garbage pipelined behind it: the good one is
     * answered, then the garbage is refused. */
    c = cli_new(f);
    cli_sends(c, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\nBAD\x01 / HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_read_resp(f, c);
    f->eof[2] = cli_wait_eof(c);
    cli_free(c);
}

static void test_malformed_request_gets_400_json_and_close(void **state)
{
    fixture *f = *state;
    run(f, cli_bad_line);
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->nresp, 4);
    for (int i = 0; i < 4; i++) {
        if (i == 2)
            continue;
        assert_int_equal(resp_status(f, i), 400);
        assert_true(resp_has(f, i, "Connection: close"));
        assert_true(resp_has(f, i, "Content-Type: application/json"));
        json_error_t err;
        json_t *j = json_loads(resp_body(f, i), 0, &err);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                            "bad_request");
        json_decref(j);
    }
    assert_string_equal(resp_body(f, 2), "path=/ok body=0");
    assert_int_equal(f->eof[0], 1);
    assert_int_equal(f->eof[1], 1);
    assert_int_equal(f->eof[2], 1);
}

/* A head of `total` bytes: request line, one padding header, the blank line
 * (SS_HTTP_HEAD_MAX counts them all: exactly 64 KiB passes, one more fails). */
static char *make_head(size_t total)
{
    const char *start = "GET /big HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    const char *end = "\r\n\r\n";
    char *h = malloc(total + 1);
    if (!h)
        return NULL;
    size_t s = strlen(start), e = strlen(end);
    memcpy(h, start, s);
    memset(h + s, 'p', total - s - e);
    memcpy(h + total - e, end, e);
    h[total] = '\0';
    return h;
}

static void cli_big_heads(fixture *f)
{
    char *ok = make_head(SS_HTTP_HEAD_MAX);
    char *big = make_head(SS_HTTP_HEAD_MAX + 1);
    cli *c = cli_new(f);
    if (ok)
        cli_sends(c, ok);
    cli_read_resp(f, c);
    cli_free(c);
    c = cli_new(f);
    if (big)
        cli_sends(c, big);
    cli_read_resp(f, c);
    f->eof[0] = cli_wait_eof(c);
    cli_free(c);
    free(ok);
    free(big);
}

static void test_head_of_64k_passes_and_one_byte_more_gets_431(void **state)
{
    fixture *f = *state;
    run(f, cli_big_heads);
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->nresp, 2);
    assert_int_equal(resp_status(f, 0), 200);
    assert_int_equal(resp_status(f, 1), 431);
    assert_true(resp_has(f, 1, "Connection: close"));
    assert_non_null(strstr(resp_body(f, 1), "\"code\":\"head_too_large\""));
    assert_int_equal(f->eof[0], 1);
}

/* ---- http_respond_error -------------------------------------------------------- */

static void cli_errors(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /err HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_sends(c, "GET /err401 HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_free(c);
}

#define ERR_MESSAGE "say \"hi\"\\ \n\t\x01 \xc3\xa9"

/* Answers with http_respond_error instead of the default answer. */
static int inspect_error(fixture *f, http_request *req)
{
    f->requests++;
    if (strcmp(req->path, "/err") == 0)
        http_respond_error(req, 422, "invalid", ERR_MESSAGE, "\"index\":3");
    else
        http_respond_error(req, 401, "unauthorized", "no token", NULL);
    return 1;
}

static void test_respond_error_escapes_message_and_adds_fragment(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_error;
    run(f, cli_errors);
    assert_int_equal(f->nresp, 2);
    assert_true(strncmp(f->resp[0], "HTTP/1.1 422 Unprocessable Content\r\n", 36) == 0);
    assert_true(resp_has(f, 0, "Content-Type: application/json"));
    assert_false(resp_has(f, 0, "Connection: close"));
    const char *body = resp_body(f, 0);
    /* Raw control characters never appear in the JSON text. */
    for (const char *p = body; *p; p++)
        assert_true((unsigned char)*p >= 0x20);
    json_error_t err;
    json_t *j = json_loads(body, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 1);
    json_t *e = json_object_get(j, "error");
    assert_int_equal(json_object_size(e), 3);
    assert_string_equal(json_string_value(json_object_get(e, "code")), "invalid");
    assert_string_equal(json_string_value(json_object_get(e, "message")), ERR_MESSAGE);
    assert_int_equal(json_integer_value(json_object_get(e, "index")), 3);
    json_decref(j);
    assert_int_equal(resp_status(f, 1), 401);
    assert_true(resp_has(f, 1, "WWW-Authenticate: Bearer"));
    assert_string_equal(resp_body(f, 1),
                        "{\"error\":{\"code\":\"unauthorized\",\"message\":\"no token\"}}");
}

static void test_status_text(void **state)
{
    (void)state;
    assert_string_equal(http_status_text(200), "OK");
    assert_string_equal(http_status_text(404), "Not Found");
    assert_string_equal(http_status_text(413), "Content Too Large");
    assert_string_equal(http_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_text(599), "Unknown");
}

/* ---- the peer goes while the handler holds the request -------------------------- */

static void cli_close_while_slow(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_wait_dispatched(f, 1);
    cli_free(c);
}

static void test_peer_close_while_handler_holds_request_is_safe(void **state)
{
    fixture *f = *state;
    run(f, cli_close_while_slow);
    /* The connection lived until the late answer, which was dropped and freed
     * it; the pipelined request behind it never ran. */
    assert_string_equal(f->events, "req/slow;resp/slow;stop;done;");
    assert_int_equal(f->conns_before_late, 1);
    assert_int_equal(f->conns_after_late, 0);
}

static void cli_reset_while_slow(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    cli_wait_dispatched(f, 1);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    cli_free(c);
}

static void test_peer_reset_while_handler_holds_request_is_safe(void **state)
{
    fixture *f = *state;
    run(f, cli_reset_while_slow);
    assert_string_equal(f->events, "req/slow;resp/slow;stop;done;");
    assert_int_equal(f->conns_after_late, 0);
}

/* ---- stop ------------------------------------------------------------------------ */

static void cli_stop_idle(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /stop-now HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    f->eof[0] = cli_wait_eof(c);
    cli_free(c);
    cli probe;
    f->reconnect_refused = cli_open(f, &probe) != 0;
    if (probe.fd >= 0)
        close(probe.fd);
}

static void test_stop_closes_idle_connection_and_listener(void **state)
{
    fixture *f = *state;
    run(f, cli_stop_idle);
    assert_int_equal(f->nresp, 1);
    assert_int_equal(resp_status(f, 0), 200);
    assert_int_equal(f->eof[0], 1);
    assert_true(f->reconnect_refused);
    assert_string_equal(f->events, "req/stop-now;resp/stop-now;stop;done;");
}

static void cli_stop_in_flight(fixture *f)
{
    cli *idle = cli_new(f);
    cli_sends(idle, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, idle);
    cli *busy = cli_new(f);
    cli_sends(busy, "GET /stop-slow HTTP/1.1\r\nHost: x\r\n\r\n");
    f->eof[0] = cli_wait_eof(idle);
    cli_read_resp(f, busy);
    f->eof[1] = cli_wait_eof(busy);
    cli_free(idle);
    cli_free(busy);
}

static void test_stop_lets_in_flight_request_finish_then_calls_done(void **state)
{
    fixture *f = *state;
    run(f, cli_stop_in_flight);
    assert_string_equal(f->events, "req/first;resp/first;req/stop-slow;stop;resp/stop-slow;done;");
    /* At stop the idle connection is closing, not yet closed. */
    assert_int_equal(f->conns_at_stop, 2);
    assert_int_equal(f->conns_before_late, 1);
    assert_int_equal(f->eof[0], 1);
    assert_int_equal(f->nresp, 2);
    assert_string_equal(resp_body(f, 1), "path=/stop-slow body=0");
    assert_true(resp_has(f, 1, "Connection: close"));
    assert_int_equal(f->eof[1], 1);
}

/* ---- connection counts ------------------------------------------------------------ */

static void cli_counts(fixture *f)
{
    cli *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = cli_new(f);
        cli_sends(c[i], "GET /count HTTP/1.1\r\nHost: x\r\n\r\n");
        cli_read_resp(f, c[i]);
    }
    cli_free(c[0]);
    /* The server notices the close on its next loop turn: ask until it has. */
    for (int tries = 0; tries < 50; tries++) {
        int before = f->nresp;
        cli_sends(c[2], "GET /count HTTP/1.1\r\nHost: x\r\n\r\n");
        cli_read_resp(f, c[2]);
        if (f->nresp == before || strcmp(resp_body(f, f->nresp - 1), "2") == 0)
            break;
        f->nresp--;
        usleep(10000);
    }
    cli_free(c[1]);
    cli_free(c[2]);
}

static void test_connections_counts_open_connections(void **state)
{
    fixture *f = *state;
    run(f, cli_counts);
    assert_int_equal(f->nresp, 4);
    assert_string_equal(resp_body(f, 0), "1");
    assert_string_equal(resp_body(f, 1), "2");
    assert_string_equal(resp_body(f, 2), "3");
    assert_string_equal(resp_body(f, 3), "2");
}

/* ---- start errors -------------------------------------------------------------------- */

static void test_start_refuses_bad_address_and_address_in_use(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    net_loop_buffers *bufs = calloc(1, sizeof *bufs);
    assert_non_null(bufs);
    http_server_options opt = {.name = "http", .on_request = on_request, .bufs = bufs};
    http_server *a = NULL, *b = NULL;
    char bound[64];
    assert_int_equal(http_server_start(&loop, "nonsense", &opt, &a, bound, sizeof bound), SS_INVAL);
    assert_null(a);
    assert_int_equal(http_server_start(&loop, "127.0.0.1:0", &opt, &a, bound, sizeof bound), 0);
    char taken[64];
    snprintf(taken, sizeof taken, "%s", bound);
    int rc = http_server_start(&loop, taken, &opt, &b, bound, sizeof bound);
    assert_int_equal(rc, SS_IN_USE);
    /* On a libuv error the half-made server is handed out to be freed once
     * the loop has let go of its listener. */
    http_server_stop(a, NULL, NULL);
    if (b)
        http_server_stop(b, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    http_server_free(a);
    http_server_free(b);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(bufs);
}


/* ---- RFC 9112 framing ------------------------------------------------------- */

static void test_framing_field_names_values_and_hosts(void **state)
{
    (void)state;
    assert_true(http_field_name_valid("Content-Length", 14));
    assert_false(http_field_name_valid("Content-Length ", 15));
    assert_false(http_field_name_valid(" Host", 5));
    assert_false(http_field_name_valid("", 0));
    assert_false(http_field_name_valid("a:b", 3));
    assert_true(http_field_value_valid("a b\tc\x80\xff~", 8));
    assert_false(http_field_value_valid("a\x01", 2));
    assert_false(http_field_value_valid("a\x7f", 2));
    assert_false(http_field_value_valid("a\0b", 3));
    const char *good[] = {"x", "localhost:8080", "127.0.0.1", "[::1]", "[::1]:443",
                          "a-b.c_d~e", "%41b", "h:", "h:65535", "!$&'()*+,;="};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(http_host_valid(good[i], strlen(good[i])));
    const char *bad[] = {"", ":80", "a b", "a/b", "u@h", "h:x", "h:65536", "h:123456",
                         "h:1:2", "[::1", "[zz]", "[::1]x", "[]", "%4", "h%zz", "[::1]:8x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(http_host_valid(bad[i], strlen(bad[i])));
}

static void test_framing_targets(void **state)
{
    (void)state;
    http_target t;
    const char *abs = "HTTP://h:1/a/b?c=d?e";
    assert_int_equal(http_target_parse(abs, strlen(abs), &t), 0);
    assert_int_equal(t.path_off, 10);
    assert_int_equal(t.path_len, 4);
    assert_true(t.has_query);
    assert_string_equal(abs + t.query_off, "c=d?e");
    assert_int_equal(http_target_parse("https://h?q", 11, &t), 0);
    assert_int_equal(t.path_len, 0);
    assert_int_equal(t.query_len, 1);
    assert_int_equal(http_target_parse("*", 1, &t), 0);
    assert_true(t.asterisk);
    assert_int_equal(http_target_parse("/p%20q?a=%C3%A9&b=:@/", 21, &t), 0);
    const char *bad[] = {"", "p", "/a#f", "/a b", "/a\"", "/%zz", "/%4", "/a?b=<", "/\x80",
                         "ftp://h/", "http://u@h/", "http:///", "http://h#x", "**"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(http_target_parse(bad[i], strlen(bad[i]), &t), SS_INVAL);
}

static int scan_all(const char *text)
{
    http_head_scan s;
    http_head_scan_reset(&s);
    /* Byte by byte: a head split anywhere scans alike. */
    for (size_t i = 0; text[i]; i++)
        if (http_head_scan_feed(&s, text + i, 1))
            return -1;
    return 0;
}

static void test_framing_head_scan(void **state)
{
    (void)state;
    assert_int_equal(scan_all("\r\nGET / HTTP/1.1\r\nA: b c\r\nB:\r\n\r\n x\n\tbody"), 0);
    assert_int_equal(scan_all("GET / HTTP/1.1\nA: b\n\n"), 0);
    assert_int_equal(scan_all("GET  / HTTP/1.1\r\n\r\n"), -1);
    assert_int_equal(scan_all(" GET / HTTP/1.1\r\n\r\n"), -1);
    assert_int_equal(scan_all("GET\t/ HTTP/1.1\r\n\r\n"), -1);
    assert_int_equal(scan_all("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), -1);
    assert_int_equal(scan_all("GET / HTTP/1.1\r\n\tA: b\r\n\r\n"), -1);
}

/* Each request on its own connection, and the status it must get. */
static const struct {
    const char *request;
    int status;
} framing_cases[] = {
    {"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello", 400},
    {"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: x\r\nX-Auth-Token: a\r\nx-auth-token: a\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\nAuthorization: a\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n", 400},
    {"GET /x#f HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"GET /x HTTP/2.0\r\nHost: x\r\n\r\n", 505},
    {"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
    {"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
    {"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
    {"GET http://h:1/abs?q=1 HTTP/1.1\r\nHost: y\r\nConnection: close\r\n\r\n", 200},
    {"GET /x HTTP/1.0\r\n\r\n", 200},
    {"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 90\r\n\r\n", 401},
};
#define FRAMING_CASES (sizeof framing_cases / sizeof framing_cases[0])

static void cli_framing(fixture *f)
{
    for (size_t i = 0; i < FRAMING_CASES; i++) {
        cli *c = cli_new(f);
        cli_sends(c, framing_cases[i].request);
        f->nresp = 0;
        f->statuses[i] = cli_read_resp(f, c);
        /* Every refusal closes the connection. */
        if (f->statuses[i] != 200 && cli_wait_eof(c) != 1)
            f->statuses[i] = -2;
        cli_free(c);
    }
}

static int inspect_abs(fixture *f, http_request *req)
{
    appendf(f->seen, sizeof f->seen, "%s?%s;", req->path, req->query);
    return 0;
}

static void test_framing_errors_get_their_status_and_close(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_abs;
    run(f, cli_framing);
    for (size_t i = 0; i < FRAMING_CASES; i++) {
        if (f->statuses[i] != framing_cases[i].status)
            fail_msg("case %zu (%s): got %d", i, framing_cases[i].request, f->statuses[i]);
    }
    assert_string_equal(f->seen, "/abs?q=1;/x?;");
}

static int inspect_trim(fixture *f, http_request *req)
{
    seen_header(f, req, "a");
    seen_header(f, req, "b");
    static const char *const names[] = {"token", "key"};
    appendf(f->seen, sizeof f->seen, "cred=%d;", http_query_has_name(req, names, 2));
    return 0;
}

static void cli_trim(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /t?x=1&%20Key+=2 HTTP/1.1\r\nHost: x\r\nA: \t v w \t\r\nB:   \r\n\r\n");
    cli_read_resp(f, c);
    cli_sends(c, "GET /t?TOKEN HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_sends(c, "GET /t?keys=1&tokenx&k%20ey HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_free(c);
}

static void test_values_are_trimmed_and_query_names_compare_loosely(void **state)
{
    fixture *f = *state;
    f->inspect = inspect_trim;
    run(f, cli_trim);
    assert_string_equal(f->seen, "a=v w;b=;cred=1;a=(null);b=(null);cred=1;"
                                 "a=(null);b=(null);cred=0;");
}

/* A request refused from its head: the answer comes though the body is
 * never sent, and the handler never sees the request. */
static void cli_early(fixture *f)
{
    cli *c = cli_new(f);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cli_sends(c, "POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    cli_read_resp(f, c);
    clock_gettime(CLOCK_MONOTONIC, &b);
    f->early_eof_ms = (int)((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000);
    f->eof[0] = cli_wait_eof(c);
    cli_free(c);
}

static void test_head_hook_answers_before_the_body(void **state)
{
    fixture *f = *state;
    run(f, cli_early);
    assert_int_equal(f->requests, 0);
    assert_int_equal(resp_status(f, 0), 401);
    assert_true(resp_has(f, 0, "Connection: close"));
    assert_true(f->early_eof_ms < 1000);
    assert_int_equal(f->eof[0], 1);
}

/* A peer that never reads its answer is closed once the answer has not
 * moved for the stall time; a body that stops coming gets 408. */
static void cli_stall(fixture *f)
{
    cli *c = cli_new(f);
    int small = 4096;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    cli_sends(c, "GET /huge HTTP/1.1\r\nHost: x\r\n\r\n");
    usleep(4 * SHORT_TIMEOUT_MS * 1000);
    f->eof[0] = http_server_connections(f->srv) == 0 ? 1 : 0;
    cli_free(c);
    c = cli_new(f);
    cli_sends(c, "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    f->statuses[0] = cli_read_resp(f, c);
    f->eof[1] = cli_wait_eof(c);
    cli_free(c);
}

static void test_unread_answer_stalls_close_and_short_body_gets_408(void **state)
{
    fixture *f = *state;
    run(f, cli_stall);
    assert_int_equal(f->eof[0], 1);
    assert_int_equal(f->statuses[0], 408);
    assert_int_equal(f->eof[1], 1);
}

/* ---- streamed answers ------------------------------------------------------------ */

/* A streamed body is long and has no pattern a bug could keep by chance:
 * the byte at offset k is k mod 251. */
#define STREAM_TOTAL (6u * 1024u * 1024u)
#define PIECE_MAX 20000u
/* Pieces written per loop turn at most: a producer yields to the loop. */
#define PIECES_PER_TURN 8
/* Body bytes a stream carries before it is revoked. */
#define REVOKE_AFTER (256u * 1024u)

static unsigned char stream_byte(size_t k)
{
    return (unsigned char)(k % 251u);
}

/* Sizes from 1 byte to PIECE_MAX, so chunks of every size class go out
 * (from the stack and from an allocation). */
static size_t piece_size(size_t sent)
{
    return 1 + (sent * 7919u) % PIECE_MAX;
}

static void produce(fixture *f);

static void on_prod_idle(uv_idle_t *h)
{
    produce(h->data);
}

static void stream_drained(http_request *req)
{
    fixture *f = req->data;
    f->drained_calls++;
    uv_idle_start(&f->prod_idle, on_prod_idle);
}

static void stream_finish(fixture *f)
{
    http_request *req = f->sreq;
    f->sreq = NULL;
    f->ends++;
    uv_idle_stop(&f->prod_idle);
    appendf(f->events, sizeof f->events, "end;");
    http_stream_end(req);
}

static void stream_gone_hook(http_request *req)
{
    fixture *f = req->data;
    f->gone_calls++;
    appendf(f->events, sizeof f->events, "gone;");
    stream_finish(f);
}

/* Writes while less than the low water is unsent, a few pieces a turn;
 * then waits for `drained`. */
static void produce(fixture *f)
{
    if (!f->sreq) {
        uv_idle_stop(&f->prod_idle);
        return;
    }
    for (int i = 0; i < PIECES_PER_TURN; i++) {
        if (f->revoke && f->sent >= REVOKE_AFTER) {
            http_request_close(f->sreq);  /* `gone` ends the stream */
            return;
        }
        if (!f->endless && f->sent == f->total) {
            stream_finish(f);
            return;
        }
        if (http_stream_unsent(f->sreq) >= SS_HTTP_STREAM_LOW_WATER) {
            uv_idle_stop(&f->prod_idle);
            return;
        }
        char piece[PIECE_MAX];
        size_t n = piece_size(f->sent);
        if (!f->endless && n > f->total - f->sent)
            n = f->total - f->sent;
        for (size_t k = 0; k < n; k++)
            piece[k] = (char)stream_byte(f->sent + k);
        if (http_stream_write(f->sreq, piece, n) != 0) {
            uv_idle_stop(&f->prod_idle);  /* `gone` comes */
            return;
        }
        f->sent += n;
        size_t unsent = http_stream_unsent(f->sreq);
        if (unsent > f->max_unsent)
            f->max_unsent = unsent;
    }
}

/* /stream: STREAM_TOTAL bytes; /stream-endless: until the client goes or
 * the server stops; /stream-revoke: closed as a revocation would. */
static void stream_start(fixture *f, http_request *req)
{
    static const http_stream_hooks hooks = {.drained = stream_drained, .gone = stream_gone_hook};
    req->data = f;
    f->endless = strcmp(req->path, "/stream") != 0;
    f->revoke = strcmp(req->path, "/stream-revoke") == 0;
    f->total = STREAM_TOTAL;
    f->sent = 0;
    f->begin_rc = http_stream_begin(req, 200, "application/octet-stream", "X-Test: 1\r\n", &hooks);
    appendf(f->events, sizeof f->events, "begin%d;", f->begin_rc);
    f->sreq = req;
    if (f->begin_rc != 0) {
        stream_finish(f);
        return;
    }
    uv_idle_start(&f->prod_idle, on_prod_idle);
}

static void cli_consume(cli *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Reads until "\r\n" is buffered; its offset + 2, or 0 on EOF/error. */
static size_t cli_line(cli *c)
{
    char *nl;
    while (!(nl = memmem(c->buf, c->len, "\r\n", 2)))
        if (cli_fill(c) <= 0)
            return 0;
    return (size_t)(nl - c->buf) + 2;
}

/* Checks body bytes against the pattern from offset *at. 0, or -1. */
static int cli_check(cli *c, size_t n, size_t *at)
{
    for (size_t k = 0; k < n; k++)
        if ((unsigned char)c->buf[k] != stream_byte(*at + k))
            return -1;
    *at += n;
    cli_consume(c, n);
    return 0;
}

/* Reads a chunked body (after its head) from body offset `from`, checking
 * every byte; stops at a chunk's end once past `limit` when limit > 0. Sets f->sbody[i] to the length read
 * (-1 on an error) and f->sdone[i] when the last chunk came. */
static void cli_read_chunked(fixture *f, cli *c, int i, size_t from, size_t limit)
{
    size_t at = from;
    f->sbody[i] = -1;
    for (;;) {
        size_t line = cli_line(c);
        if (line == 0)
            return;
        size_t size = strtoul(c->buf, NULL, 16);
        cli_consume(c, line);
        if (size == 0) {
            if (cli_line(c) != 2)
                return;
            cli_consume(c, 2);
            f->sdone[i] = 1;
            break;
        }
        while (size > 0) {
            if (c->len == 0 && cli_fill(c) <= 0)
                return;
            size_t n = size < c->len ? size : c->len;
            if (cli_check(c, n, &at))
                return;
            size -= n;
        }
        if (cli_line(c) != 2)
            return;
        cli_consume(c, 2);
        if (limit && at >= limit)
            break;
    }
    f->sbody[i] = (long)at;
}

/* A long chunked answer comes back whole and byte-exact, and the request
 * pipelined behind it is served on the same connection. */
static void cli_stream_long(fixture *f)
{
    /* A small window, so that the producer has to wait for the reader. */
    f->cli_rcvbuf = 16384;
    cli *c = cli_new(f);
    cli_sends(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    /* Reading nothing for a while fills the socket buffers however fast
     * the reader is: the producer must wait for `drained`. */
    usleep(2 * SPLIT_PAUSE_US);
    cli_read_chunked(f, c, 0, 0, 0);
    cli_read_resp(f, c);
    cli_free(c);
}

static void test_stream_long_chunked_answer_is_byte_exact_and_keeps_alive(void **state)
{
    fixture *f = *state;
    run(f, cli_stream_long);
    assert_int_equal(f->begin_rc, 0);
    assert_int_equal(f->nresp, 2);
    assert_int_equal(resp_status(f, 0), 200);
    assert_true(resp_has(f, 0, "Transfer-Encoding: chunked"));
    assert_true(resp_has(f, 0, "Content-Type: application/octet-stream"));
    assert_true(resp_has(f, 0, "X-Test: 1"));
    assert_null(strcasestr(f->resp[0], "content-length"));
    assert_false(resp_has(f, 0, "Connection: close"));
    assert_int_equal(f->sbody[0], STREAM_TOTAL);
    assert_int_equal(f->sdone[0], 1);
    assert_string_equal(resp_body(f, 1), "path=/after body=0");
    assert_int_equal(f->ends, 1);
    assert_int_equal(f->gone_calls, 0);
    /* The producer waited for the client, and was woken. */
    assert_true(f->drained_calls > 0);
    assert_true(f->max_unsent < SS_HTTP_STREAM_LOW_WATER + PIECE_MAX + 16);
    /* Accounted once per answer (and at the close), the stream's bytes
     * included. */
    assert_int_equal(f->accounted, 2);
    assert_true(f->account_out > STREAM_TOTAL);
    assert_string_equal(f->events, "req/stream;begin0;end;req/after;resp/after;stop;done;");
}

/* A client that stops reading: what the stream holds unsent stays at the
 * low water (the producer waits), and the send stall cuts the connection. */
static void cli_stream_unread(fixture *f)
{
    cli *c = cli_new(f);
    int small = 4096;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    cli_sends(c, "GET /stream-endless HTTP/1.1\r\nHost: x\r\n\r\n");
    usleep(6 * SHORT_TIMEOUT_MS * 1000);
    f->eof[0] = http_server_connections(f->srv) == 0 ? 1 : 0;
    cli_free(c);
}

static void test_stream_to_a_client_that_stops_reading_is_bounded_then_cut(void **state)
{
    fixture *f = *state;
    run(f, cli_stream_unread);
    assert_int_equal(f->begin_rc, 0);
    assert_int_equal(f->eof[0], 1);
    assert_int_equal(f->gone_calls, 1);
    assert_int_equal(f->ends, 1);
    assert_true(f->max_unsent >= SS_HTTP_STREAM_LOW_WATER);
    assert_true(f->max_unsent < SS_HTTP_STREAM_LOW_WATER + PIECE_MAX + 16);
    /* Only what the socket buffers took was produced. */
    assert_true(f->sent < 16u * 1024u * 1024u);
    assert_string_equal(f->events, "req/stream-endless;begin0;gone;end;stop;done;");
}

/* A client that goes mid-stream: `gone` runs once, the producer ends. */
static void cli_stream_leave(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /stream-endless HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_read_chunked(f, c, 0, 0, 300000);
    cli_free(c);
    c = cli_new(f);
    cli_sends(c, "GET /stream-endless HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_read_chunked(f, c, 1, 0, 100000);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    cli_free(c);
    /* The server sees the reset; then it is idle again. */
    for (int i = 0; i < 2000 && http_server_connections(f->srv) > 0; i++)
        usleep(1000);
    f->eof[0] = http_server_connections(f->srv) == 0;
}

static void test_stream_client_leaving_midway_calls_gone_once(void **state)
{
    fixture *f = *state;
    run(f, cli_stream_leave);
    assert_true(f->sbody[0] >= 300000);
    assert_true(f->sbody[1] >= 100000);
    assert_int_equal(f->eof[0], 1);
    assert_int_equal(f->gone_calls, 2);
    assert_int_equal(f->ends, 2);
    assert_string_equal(f->events, "req/stream-endless;begin0;gone;end;"
                                   "req/stream-endless;begin0;gone;end;stop;done;");
}

/* Stopping the server during an endless stream: `gone`, the producer ends,
 * the client gets the last chunk and the close, and the stop completes. */
static void cli_stream_stop(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /stream-endless HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_read_chunked(f, c, 0, 0, 100000);
    cli *s = cli_new(f);
    cli_sends(s, "GET /stop-now HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, s);
    cli_free(s);
    cli_read_chunked(f, c, 1, (size_t)f->sbody[0], 0);
    f->eof[0] = cli_wait_eof(c);
    cli_free(c);
}

static void test_stream_server_stop_ends_an_endless_stream(void **state)
{
    fixture *f = *state;
    run(f, cli_stream_stop);
    assert_int_equal(f->gone_calls, 1);
    assert_int_equal(f->ends, 1);
    assert_int_equal(f->sdone[1], 1);
    assert_int_equal(f->eof[0], 1);
    assert_string_equal(f->events, "req/stream-endless;begin0;req/stop-now;resp/stop-now;stop;"
                                   "gone;end;done;");
}

/* A revocation (http_request_close) cuts the stream: `gone` once, EOF. */
static void cli_stream_revoke(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /stream-revoke HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_read_chunked(f, c, 0, 0, 0);
    cli_free(c);
}

static void test_stream_revoked_request_calls_gone_and_closes(void **state)
{
    fixture *f = *state;
    run(f, cli_stream_revoke);
    assert_int_equal(f->gone_calls, 1);
    assert_int_equal(f->ends, 1);
    assert_int_equal(f->sbody[0], -1);  /* cut: no last chunk */
    assert_int_equal(f->sdone[0], 0);
    assert_string_equal(f->events, "req/stream-revoke;begin0;gone;end;stop;done;");
}

/* HEAD gets the head alone and the connection goes on; HTTP/1.0 gets the
 * body unframed and the close ends it. */
static void cli_stream_head_and_10(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_read_resp(f, c);
    cli_free(c);
    c = cli_new(f);
    cli_sends(c, "GET /stream HTTP/1.0\r\n\r\n");
    cli_read_resp(f, c);
    size_t at = 0;
    int n;
    while ((n = cli_fill(c)) > 0 || c->len) {
        if (cli_check(c, c->len, &at)) {
            at = 0;
            break;
        }
        if (n <= 0)
            break;
    }
    f->sbody[0] = (long)at;
    f->eof[0] = n == 0;
    cli_free(c);
}

static void test_stream_head_gets_no_body_and_http10_is_close_delimited(void **state)
{
    fixture *f = *state;
    run(f, cli_stream_head_and_10);
    assert_int_equal(f->nresp, 3);
    assert_true(resp_has(f, 0, "Transfer-Encoding: chunked"));
    assert_string_equal(resp_body(f, 0), "");
    assert_string_equal(resp_body(f, 1), "path=/next body=0");
    assert_int_equal(resp_status(f, 2), 200);
    assert_false(resp_has(f, 2, "Transfer-Encoding: chunked"));
    assert_true(resp_has(f, 2, "Connection: close"));
    assert_int_equal(f->sbody[0], STREAM_TOTAL);
    assert_int_equal(f->eof[0], 1);
    assert_int_equal(f->ends, 2);
    assert_int_equal(f->gone_calls, 0);
}

/* ---- streamed request bodies --------------------------------------------------- */

#define UPLOAD_TOTAL (50u * 1024u * 1024u)
#define CHUNKED_TOTAL (3u * 1024u * 1024u)
#define EARLY_TOTAL (8u * 1024u * 1024u)
/* The handler pauses after each this many bytes, for PAUSE_MS. */
#define PAUSE_EVERY (4u * 1024u * 1024u)
#define PAUSE_MS 5
/* /upload-early answers once this much has come. */
#define EARLY_AFTER 100000u

static void on_resume(uv_timer_t *t)
{
    fixture *f = t->data;
    f->body_paused = 0;
    if (f->breq)
        http_body_resume(f->breq);
}

static void on_revoke(uv_timer_t *t)
{
    fixture *f = t->data;
    if (f->breq)
        http_request_close(f->breq);
}

static int body_piece_hook(http_request *req, const char *data, size_t len)
{
    fixture *f = req->data;
    if (f->body_paused)
        f->pieces_while_paused++;
    for (size_t k = 0; k < len; k++)
        if ((unsigned char)data[k] != stream_byte(f->body_got + k))
            f->body_bad++;
    f->body_got += len;
    if (strcmp(req->path, "/upload-early") == 0 && f->body_got >= EARLY_AFTER) {
        appendf(f->events, sizeof f->events, "early-answer;");
        f->breq = NULL;
        http_respond_error(req, 422, "invalid", "a bad line", NULL);
        return 1;
    }
    if (strcmp(req->path, "/upload-revoke") == 0 && f->body_got >= EARLY_AFTER &&
        !f->body_paused) {
        /* Its principal is revoked while the handler works on a piece. */
        f->body_paused = 1;
        http_body_pause(req);
        uv_timer_start(&f->resume_timer, on_revoke, PAUSE_MS, 0);
    }
    if (strcmp(req->path, "/upload-pause") == 0 && f->body_got >= f->next_pause) {
        f->next_pause += PAUSE_EVERY;
        f->body_pauses++;
        f->body_paused = 1;
        http_body_pause(req);
        uv_timer_start(&f->resume_timer, on_resume, PAUSE_MS, 0);
    }
    return 0;
}

static void body_gone_hook(http_request *req)
{
    fixture *f = req->data;
    f->body_gone_calls++;
    f->breq = NULL;
    appendf(f->events, sizeof f->events, "body-gone;");
    /* The answer is still owed, and dropped. */
    http_respond(req, 500, NULL, NULL, 0, NULL);
}

static int body_start(fixture *f, http_request *req)
{
    static const http_body_hooks hooks = {.piece = body_piece_hook, .gone = body_gone_hook};
    req->data = f;
    f->breq = req;
    f->body_got = 0;
    f->next_pause = PAUSE_EVERY;
    assert_int_equal(http_body_stream(req, &hooks), 0);
    return 0;
}

static void body_answer(fixture *f, http_request *req)
{
    f->breq = NULL;
    char body[128];
    int n = snprintf(body, sizeof body, "got=%zu bad=%d body=%zu", f->body_got, f->body_bad,
                     req->body.len);
    appendf(f->events, sizeof f->events, "resp%s;", req->path);
    http_respond(req, 200, "text/plain", body, (size_t)n, NULL);
}

/* Sends n body bytes of the pattern from offset `from`, in blocks. */
static void cli_send_pattern(cli *c, size_t from, size_t n)
{
    static char block[65536];
    while (n > 0) {
        size_t len = n < sizeof block ? n : sizeof block;
        for (size_t k = 0; k < len; k++)
            block[k] = (char)stream_byte(from + k);
        cli_send(c, block, len);
        from += len;
        n -= len;
    }
}

/* 50 MB (fifty times the body limit) taken in pieces, with pauses; the
 * request pipelined behind it is served next. */
static void cli_upload(fixture *f)
{
    cli *c = cli_new(f);
    char head[128];
    snprintf(head, sizeof head, "POST /upload-pause HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n",
             UPLOAD_TOTAL);
    cli_sends(c, head);
    cli_send_pattern(c, 0, UPLOAD_TOTAL);
    cli_sends(c, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_read_resp(f, c);
    cli_free(c);
}

static void test_body_streamed_in_pieces_with_pauses_past_the_limit(void **state)
{
    fixture *f = *state;
    run(f, cli_upload);
    assert_int_equal(f->nresp, 2);
    assert_int_equal(resp_status(f, 0), 200);
    char want[128];
    snprintf(want, sizeof want, "got=%u bad=0 body=0", UPLOAD_TOTAL);
    assert_string_equal(resp_body(f, 0), want);
    assert_false(resp_has(f, 0, "Connection: close"));
    assert_string_equal(resp_body(f, 1), "path=/after body=0");
    assert_true(f->body_pauses >= (int)(UPLOAD_TOTAL / PAUSE_EVERY) - 1);
    assert_int_equal(f->pieces_while_paused, 0);
    assert_int_equal(f->body_gone_calls, 0);
}

/* A chunked body past the limit, in chunks of many sizes. */
static void cli_upload_chunked(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    size_t at = 0;
    while (at < CHUNKED_TOTAL) {
        size_t n = piece_size(at) * 3;
        if (n > CHUNKED_TOTAL - at)
            n = CHUNKED_TOTAL - at;
        char size[32];
        snprintf(size, sizeof size, "%zx\r\n", n);
        cli_sends(c, size);
        cli_send_pattern(c, at, n);
        cli_sends(c, "\r\n");
        at += n;
    }
    cli_sends(c, "0\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_read_resp(f, c);
    cli_free(c);
}

static void test_body_streamed_chunked_past_the_limit(void **state)
{
    fixture *f = *state;
    run(f, cli_upload_chunked);
    assert_int_equal(f->nresp, 2);
    char want[128];
    snprintf(want, sizeof want, "got=%u bad=0 body=0", CHUNKED_TOTAL);
    assert_string_equal(resp_body(f, 0), want);
    assert_string_equal(resp_body(f, 1), "path=/after body=0");
    assert_string_equal(f->events, "req/upload;resp/upload;req/after;resp/after;stop;done;");
}

/* The handler answers mid-body: the client, still sending, gets that
 * answer and the close; the rest is never handed to the handler. An
 * oversized body whose handler does not stream it still gets 413 before
 * anything its head callback says. */
static void cli_upload_early(fixture *f)
{
    cli *c = cli_new(f);
    char head[128];
    snprintf(head, sizeof head, "POST /upload-early HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n",
             EARLY_TOTAL);
    cli_sends(c, head);
    cli_send_pattern(c, 0, EARLY_TOTAL);
    f->statuses[0] = cli_read_resp(f, c);
    f->eof[0] = cli_wait_eof(c);
    cli_free(c);
    c = cli_new(f);
    cli_sends(c, "POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n");
    f->statuses[1] = cli_read_resp(f, c);
    f->eof[1] = cli_wait_eof(c);
    cli_free(c);
}

static void test_body_answered_early_discards_the_rest_and_closes(void **state)
{
    fixture *f = *state;
    run(f, cli_upload_early);
    assert_int_equal(f->statuses[0], 422);
    assert_true(resp_has(f, 0, "Connection: close"));
    assert_int_equal(f->eof[0], 1);
    assert_true(f->body_got >= EARLY_AFTER && f->body_got < EARLY_TOTAL);
    assert_int_equal(f->body_bad, 0);
    assert_int_equal(f->requests, 0);
    assert_int_equal(f->body_gone_calls, 0);
    assert_int_equal(f->statuses[1], 413);
    assert_int_equal(f->eof[1], 1);
    assert_string_equal(f->events, "early-answer;early;stop;done;");
}

/* A client that vanishes mid-body: `gone` once, the handler's answer is
 * dropped. One that stalls mid-body gets 408 and the close, and `gone`. */
static void cli_upload_vanish(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n");
    cli_send_pattern(c, 0, 1000000);
    cli_free(c);
    for (int i = 0; i < 2000 && http_server_connections(f->srv) > 0; i++)
        usleep(1000);
    f->eof[0] = http_server_connections(f->srv) == 0;
    c = cli_new(f);
    cli_sends(c, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "10\r\n0123456789abcdef\r\n");
    f->statuses[0] = cli_read_resp(f, c);
    f->eof[1] = cli_wait_eof(c);
    cli_free(c);
}

static void test_body_client_vanishing_or_stalling_calls_gone_once(void **state)
{
    fixture *f = *state;
    run(f, cli_upload_vanish);
    assert_int_equal(f->eof[0], 1);
    assert_int_equal(f->statuses[0], 408);
    assert_true(resp_has(f, 0, "Connection: close"));
    assert_int_equal(f->eof[1], 1);
    assert_int_equal(f->body_gone_calls, 2);
    assert_int_equal(f->requests, 0);
    assert_string_equal(f->events, "body-gone;body-gone;stop;done;");
}

/* Stopping the server mid-body: 503 and the close, `gone`, and the stop
 * completes without waiting for the rest. */
static void cli_upload_stop(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n");
    cli_send_pattern(c, 0, 100000);
    cli *s = cli_new(f);
    cli_sends(s, "GET /stop-now HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, s);
    cli_free(s);
    f->statuses[0] = cli_read_resp(f, c);
    f->eof[0] = cli_wait_eof(c);
    cli_free(c);
}

/* A revocation (http_request_close) mid-body cuts it: `gone`, no answer. */
static void cli_upload_revoke(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "POST /upload-revoke HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n");
    cli_send_pattern(c, 0, 200000);
    /* Cut with bytes unread: a reset, or an end. */
    char b;
    ssize_t n = recv(c->fd, &b, 1, 0);
    f->eof[0] = n == 0 || (n < 0 && errno == ECONNRESET);
    cli_free(c);
}

static void test_body_revoked_mid_body_calls_gone_and_closes(void **state)
{
    fixture *f = *state;
    run(f, cli_upload_revoke);
    assert_int_equal(f->eof[0], 1);
    assert_int_equal(f->body_gone_calls, 1);
    assert_int_equal(f->requests, 0);
    assert_string_equal(f->events, "body-gone;stop;done;");
}

static void test_body_server_stop_refuses_the_rest_with_503(void **state)
{
    fixture *f = *state;
    run(f, cli_upload_stop);
    assert_int_equal(f->statuses[0], 503);
    assert_int_equal(f->eof[0], 1);
    assert_int_equal(f->body_gone_calls, 1);
    assert_string_equal(f->events, "req/stop-now;resp/stop-now;stop;body-gone;done;");
}

/* Over TLS: a streamed body with pauses (what TLS had decrypted waits
 * with the socket), then a streamed answer pipelined behind it. */
static void cli_tls_both(fixture *f)
{
    cli *c = cli_new(f);
    char head[128];
    snprintf(head, sizeof head, "POST /upload-pause HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n",
             UPLOAD_TOTAL);
    cli_sends(c, head);
    cli_send_pattern(c, 0, UPLOAD_TOTAL);
    cli_sends(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_read_resp(f, c);
    cli_read_resp(f, c);
    cli_read_chunked(f, c, 0, 0, 0);
    cli_free(c);
}

static void test_tls_streamed_body_then_streamed_answer(void **state)
{
    fixture *f = *state;
    run(f, cli_tls_both);
    assert_int_equal(f->nresp, 2);
    char want[128];
    snprintf(want, sizeof want, "got=%u bad=0 body=0", UPLOAD_TOTAL);
    assert_string_equal(resp_body(f, 0), want);
    assert_true(f->body_pauses > 0);
    assert_int_equal(f->pieces_while_paused, 0);
    assert_true(resp_has(f, 1, "Transfer-Encoding: chunked"));
    assert_int_equal(f->sbody[0], STREAM_TOTAL);
    assert_int_equal(f->sdone[0], 1);
    assert_int_equal(f->gone_calls + f->body_gone_calls, 0);
}

/* A stream that would start once the server is stopping is refused at
 * its head: nothing is sent, no `gone`, the end closes. */
static void cli_stream_stopping(fixture *f)
{
    cli *c = cli_new(f);
    cli_sends(c, "GET /stream-stopping HTTP/1.1\r\nHost: x\r\n\r\n");
    f->eof[0] = cli_wait_eof(c);
    cli_free(c);
}

static void test_stream_refused_at_its_head_while_stopping(void **state)
{
    fixture *f = *state;
    run(f, cli_stream_stopping);
    assert_int_equal(f->begin_rc, SS_CLOSED);
    assert_int_equal(f->eof[0], 1);
    assert_int_equal(f->gone_calls, 0);
    assert_int_equal(f->ends, 1);
    assert_string_equal(f->events, "req/stream-stopping;stop;begin-14;end;done;");
}

int main(void)
{
    /* As the server does: a write to a peer that reset fails, not kills. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_text),
        cmocka_unit_test(test_start_refuses_bad_address_and_address_in_use),
        cmocka_unit_test(test_framing_field_names_values_and_hosts),
        cmocka_unit_test(test_framing_targets),
        cmocka_unit_test(test_framing_head_scan),
        cmocka_unit_test_setup_teardown(test_framing_errors_get_their_status_and_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_values_are_trimmed_and_query_names_compare_loosely,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_hook_answers_before_the_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unread_answer_stalls_close_and_short_body_gets_408,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_simple_get_gets_status_headers_and_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_serves_two_requests_on_one_connection,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_http10_closes_after_answer_unless_keep_alive, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_requests_wait_for_the_late_first_answer,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_pipelined_request_split_across_writes_is_answered_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_flood_is_answered_without_nesting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_pipelined_bytes_past_the_buffer_wait_and_are_all_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_answer_has_no_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_request_is_answered_as_plain_http, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_header_lookup_by_lowercase_name_and_split_value,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers_past_the_limit_are_dropped_even_when_split,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_query_get_decodes_and_reports_absent_and_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_absent_or_empty_has_no_parameters, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_query_get_with_cap_zero_writes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_content_length_and_chunked_bodies_arrive_whole,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_content_length_over_body_max_gets_413_before_the_body, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body_over_body_max_gets_413, setup_small,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_expect_100_continue_comes_before_the_final_answer,
                                        setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_request_gets_400_json_and_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_head_of_64k_passes_and_one_byte_more_gets_431, setup, teardown),
        cmocka_unit_test_setup_teardown(test_respond_error_escapes_message_and_adds_fragment,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_close_while_handler_holds_request_is_safe,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_reset_while_handler_holds_request_is_safe,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_closes_idle_connection_and_listener, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_stop_lets_in_flight_request_finish_then_calls_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connections_counts_open_connections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_stream_long_chunked_answer_is_byte_exact_and_keeps_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_stream_to_a_client_that_stops_reading_is_bounded_then_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_client_leaving_midway_calls_gone_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_server_stop_ends_an_endless_stream, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_revoked_request_calls_gone_and_closes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_stream_head_gets_no_body_and_http10_is_close_delimited, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_body_streamed_in_pieces_with_pauses_past_the_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_streamed_chunked_past_the_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_body_answered_early_discards_the_rest_and_closes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_client_vanishing_or_stalling_calls_gone_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_server_stop_refuses_the_rest_with_503, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_body_revoked_mid_body_calls_gone_and_closes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tls_streamed_body_then_streamed_answer, setup_tls,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_refused_at_its_head_while_stopping, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
