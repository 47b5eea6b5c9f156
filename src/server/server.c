#include "server/server.h"
#include "aaa/conn_registry.h"
#include "aaa/device_cache.h"
#include "aaa/meter.h"
#include "aaa/quota.h"
#include "aaa/secret.h"
#include "aaa/throttle.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/api.h"
#include "http/api_live.h"
#include "http/server.h"
#include "ingest/fanout.h"
#include "ingest/last_seen.h"
#include "ingest/gateway.h"
#include "ingest/queue.h"
#include "mqtt/broker.h"
#include "socket/tcp_ingest.h"
#include "socket/udp_ingest.h"
#include "net/err.h"
#include "net/listen.h"
#include "net/stream.h"
#include "net/tls.h"
#include "server/bootstrap.h"
#include "store/maint.h"
#include "store/store.h"

#include <errno.h>
#include <stddef.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_CAP 4096u
#define BOUND_CAP 64u
/* https, http, mqtts, mqtt, tcp, udp. */
#define SERVER_LISTENERS 6
/* How often the write-ahead log is checkpointed off the commit path: often
 * enough that the store thread's own automatic checkpoint, which holds up
 * every acknowledgement of its commit, almost never runs. */
#define SERVER_CHECKPOINT_MS 1000u
_Static_assert(SERVER_CHECKPOINT_MS <= SS_LAST_SEEN_FLUSH_MS,
               "devices' last_seen is written with each checkpoint");
/* The ceiling config_validate allows for the session lifetimes (30 days). */
#define SESSION_SECONDS_MAX (30L * 86400)

/* Everything the running server owns: the one struct, passed by pointer. */
typedef struct server {
    const config *cfg;
    uv_loop_t loop;
    net_loop_buffers bufs;
    store *store;
    device_cache *devices;
    throttle *logins;
    ingest_queue *queue;
    fanout *fanout;       /* every committed batch, to live subscribers */
    last_seen *seen;      /* devices' newest batch, written with each checkpoint */
    gateway *gateway;     /* every protocol's way in */
    conn_registry *conns;
    metrics *metrics;     /* GET /metrics; every part reports here */
    quota *quotas;        /* per-org limits and today's counts */
    meter *meter;         /* accounting written in batches */
    SSL_CTX *tls;
    api_ctx api;
    api_live *live;       /* the live streams: the fan-out's HTTP subscriber */
    api_gate *gate;       /* heavy requests' shares of the worker pool */
    store_maint *maint;   /* store health for /healthz; purge of deleted readings */
    http_server *http;
    http_server *https;
    tcp_ingest *tcp;
    udp_ingest *udp;
    mqtt_broker *mqtt;    /* both MQTT listeners, or NULL when both are off */
    uint64_t first_message_ms;  /* --first-message-timeout */
    int listeners_running;
    /* "listening" lines, printed once every listener is bound. */
    char bound[SERVER_LISTENERS][BOUND_CAP + sizeof "listening mqtts "];
    int bound_count;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_timer_t checkpoint_timer;
    uv_work_t checkpoint_work;
    int checkpointing;    /* checkpoint_work is on the worker pool */
    int64_t stale_at;     /* records a crash left open, to end once the disk has room */
    int stopping;
} server;

/* The data dir exists (created here, mode 0700, when its parent does), is a
 * directory, and we may create files in it: said in those words, rather
 * than as the store's "unable to open database file" later. */
static int ensure_data_dir(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create data dir %s: %s%s\n", dir, strerror(errno),
                errno == ENOENT ? " (its parent directory does not exist)" : "");
        return SS_IO;
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "cannot use data dir %s: %s\n", dir, strerror(errno));
        return SS_IO;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "data dir %s is not a directory\n", dir);
        return SS_IO;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "data dir %s is not writable by this user: %s\n", dir, strerror(errno));
        return SS_IO;
    }
    return SS_OK;
}

/* Every listener address and the given TLS files, checked before the data
 * dir, the store or a certificate is touched: a typo costs nothing. */
static int validate_startup(const config *cfg)
{
    static const struct {
        const char *name;
        size_t offset;
    } listeners[] = {
        {"https", offsetof(config, listen_https)}, {"http", offsetof(config, listen_http)},
        {"mqtts", offsetof(config, listen_mqtts)}, {"mqtt", offsetof(config, listen_mqtt)},
        {"tcp", offsetof(config, listen_tcp)},     {"udp", offsetof(config, listen_udp)},
    };
    for (size_t i = 0; i < sizeof listeners / sizeof listeners[0]; i++) {
        const char *addr = (const char *)cfg + listeners[i].offset;
        net_addr na;
        if (net_addr_parse(addr, &na)) {
            fprintf(stderr, "bad address for listen-%s: %s (expected HOST:PORT or off)\n",
                    listeners[i].name, addr);
            return SS_INVAL;
        }
    }
    const char *files[] = {cfg->tls_cert, cfg->tls_key};
    for (size_t i = 0; i < 2; i++) {
        if (files[i][0] && access(files[i], R_OK) != 0) {
            fprintf(stderr, "cannot read %s: %s\n", files[i], strerror(errno));
            return SS_IO;
        }
    }
    return SS_OK;
}

static int cache_device(void *ctx, const store_device *d)
{
    return device_cache_put(ctx, d->id, d->org_id, d->token_hash, d->disabled) ? 1 : 0;
}

static int open_store(server *sv)
{
    char err[512] = "";
    store_options opt = {
        .url = sv->cfg->store,
        .data_dir = sv->cfg->data_dir,
        .durability = strcmp(sv->cfg->durability, "normal") == 0 ? STORE_DURABILITY_NORMAL
                                                                 : STORE_DURABILITY_FULL,
    };
    if (store_open(&opt, &sv->store, err, sizeof err)) {
        fprintf(stderr, "cannot open the store: %s\n", err);
        return SS_STORE;
    }
    if (bootstrap_superadmin(sv->store, sv->cfg->data_dir)) {
        fprintf(stderr, "cannot create the superadmin\n");
        return SS_STORE;
    }
    store_conn *c;
    int rc = device_cache_new(&sv->devices);
    if (rc == 0)
        rc = store_conn_acquire(sv->store, &c);
    if (rc == 0) {
        rc = store_device_list_all(c, cache_device, sv->devices);
        store_conn_release(sv->store, c);
    }
    if (rc)
        fprintf(stderr, "cannot load devices: %s\n", ss_strerror(rc));
    return rc;
}

static int quota_org(void *ctx, const char *id, const char *parent_id)
{
    return quota_set_org(ctx, id, parent_id) ? 1 : 0;
}

static int quota_limits_of(void *ctx, const store_quota *q)
{
    quota_limits l = {q->max_devices, q->max_readings_per_day, q->max_bytes_per_day};
    quota_set_limits(ctx, q->org_id, &l);
    return 0;
}

static int quota_today(void *ctx, const store_usage *u)
{
    quota_load_usage(ctx, u->org_id, u->readings, u->bytes_in, clock_now_ms());
    return 0;
}

/* Quotas start from the org tree, the limits and what today already used;
 * session records a crash left open are closed, or on a full disk left to
 * the meter's first write that finds room: a full disk still serves reads
 * and sign-in (SPEC §4), so it must not stop the start. */
static int load_accounting(server *sv)
{
    store_conn *c;
    int64_t now = clock_now_ms();
    int rc = quota_new(&sv->quotas);
    if (rc == 0)
        rc = store_conn_acquire(sv->store, &c);
    if (rc)
        return rc;
    rc = store_org_tree(c, quota_org, sv->quotas);
    if (rc == 0)
        rc = store_quota_list(c, quota_limits_of, sv->quotas);
    if (rc == 0)
        rc = store_usage_day(c, now / STORE_DAY_MS * STORE_DAY_MS, quota_today, sv->quotas);
    if (rc == 0)
        rc = store_acct_session_close_stale(c, now);
    if (rc == SS_FULL) {
        fprintf(stderr, "the disk is full: new data is refused until space is freed\n");
        sv->stale_at = now;
        rc = SS_OK;
    }
    store_conn_release(sv->store, c);
    if (rc)
        fprintf(stderr, "cannot load accounting: %s\n", ss_strerror(rc));
    return rc;
}

static int setup_tls(server *sv)
{
    const config *cfg = sv->cfg;
    if (strcmp(cfg->listen_https, "off") == 0 && strcmp(cfg->listen_mqtts, "off") == 0)
        return SS_OK;
    char cert[PATH_CAP], key[PATH_CAP], err[512] = "";
    if (cfg->tls_cert[0]) {
        snprintf(cert, sizeof cert, "%s", cfg->tls_cert);
        snprintf(key, sizeof key, "%s", cfg->tls_key);
    } else {
        int generated = 0;
        if (tls_ensure_self_signed(cfg->data_dir, cert, key, PATH_CAP, &generated)) {
            fprintf(stderr, "cannot create a TLS certificate in %s\n", cfg->data_dir);
            return SS_TLS;
        }
        char fp[96];
        if (tls_cert_fingerprint(cert, fp) == 0)
            printf("tls certificate %s%s sha256 %s\n", cert, generated ? " (generated)" : "", fp);
    }
    sv->tls = tls_server_ctx_new(cert, key, err, sizeof err);
    if (!sv->tls) {
        fprintf(stderr, "cannot use the TLS certificate: %s\n", err);
        return SS_TLS;
    }
    return SS_OK;
}

static void note_bound(server *sv, const char *name, const char *bound)
{
    if (sv->bound_count < SERVER_LISTENERS)
        snprintf(sv->bound[sv->bound_count++], sizeof sv->bound[0], "listening %s %s", name,
                 bound);
}

/* The address of the listener `name` as bound ("0.0.0.0:8443"), or NULL. */
static const char *bound_addr(const server *sv, const char *name)
{
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "listening %s ", name);
    for (int i = 0; i < sv->bound_count; i++)
        if (strncmp(sv->bound[i], prefix, (size_t)n) == 0)
            return sv->bound[i] + n;
    return NULL;
}

/* Where a person on this machine opens the web app: the HTTPS listener
 * (else the plain one), named localhost when bound to a wildcard or
 * loopback, since the generated certificate names localhost. */
static void print_web_app(const server *sv)
{
    const char *scheme = "https", *addr = bound_addr(sv, "https");
    if (!addr) {
        scheme = "http";
        addr = bound_addr(sv, "http");
    }
    const char *port = addr ? strrchr(addr, ':') : NULL;
    if (!port)
        return;
    int local = strncmp(addr, "0.0.0.0:", 8) == 0 || strncmp(addr, "[::]:", 5) == 0 ||
                strncmp(addr, "127.", 4) == 0 || strncmp(addr, "[::1]:", 6) == 0;
    printf("web app %s://%.*s%s/ (sign in as the superadmin)\n", scheme,
           local ? 9 : (int)(port - addr), local ? "localhost" : addr, port);
}

static void print_bound(const server *sv)
{
    for (int i = 0; i < sv->bound_count; i++)
        printf("%s\n", sv->bound[i]);
    print_web_app(sv);
    fflush(stdout);
}

static int start_http(server *sv, const char *name, const char *addr, SSL_CTX *tls,
                      http_server **out)
{
    if (strcmp(addr, "off") == 0)
        return SS_OK;
    http_server_options opt = {
        .name = name, .tls = tls, .on_request = api_handle, .on_head = api_head, .ctx = &sv->api, .bufs = &sv->bufs,
        .metrics = sv->metrics, .on_account = api_account,
        /* config_validate has checked the range (1..60 s). */
        .body_timeout_ms = (uint64_t)strtol(sv->cfg->http_body_timeout, NULL, 10) * 1000u,
        .head_timeout_ms = sv->first_message_ms,
    };
    char bound[BOUND_CAP];
    int rc = http_server_start(&sv->loop, addr, &opt, out, bound, sizeof bound);
    if (rc) {
        fprintf(stderr, "cannot listen %s on %s: %s\n", name, addr,
                rc == SS_INVAL ? "bad address" : ss_strerror(rc));
        return rc;
    }
    sv->listeners_running++;
    note_bound(sv, name, bound);
    return SS_OK;
}

static int start_tcp(server *sv)
{
    const char *addr = sv->cfg->listen_tcp;
    if (strcmp(addr, "off") == 0)
        return SS_OK;
    tcp_ingest_options opt = {
        .gateway = sv->gateway, .conns = sv->conns, .bufs = &sv->bufs,
        /* config_validate has checked the range (1..86400 s). */
        .idle_timeout_ms = (uint64_t)strtol(sv->cfg->tcp_idle_timeout, NULL, 10) * 1000u,
        .metrics = sv->metrics, .meter = sv->meter,
        .auth_timeout_ms = sv->first_message_ms,
    };
    char bound[BOUND_CAP];
    int rc = tcp_ingest_start(&sv->loop, addr, &opt, &sv->tcp, bound, sizeof bound);
    if (rc) {
        fprintf(stderr, "cannot listen tcp on %s: %s\n", addr,
                rc == SS_INVAL ? "bad address" : ss_strerror(rc));
        return rc;
    }
    sv->listeners_running++;
    note_bound(sv, "tcp", bound);
    return SS_OK;
}

static int start_udp(server *sv)
{
    const char *addr = sv->cfg->listen_udp;
    if (strcmp(addr, "off") == 0)
        return SS_OK;
    udp_ingest_options opt = {.gateway = sv->gateway};
    opt.metrics = sv->metrics;
    opt.meter = sv->meter;
    char bound[BOUND_CAP];
    int rc = udp_ingest_start(&sv->loop, addr, &opt, &sv->udp, bound, sizeof bound);
    if (rc) {
        fprintf(stderr, "cannot listen udp on %s: %s\n", addr,
                rc == SS_INVAL ? "bad address" : ss_strerror(rc));
        return rc;
    }
    sv->listeners_running++;
    note_bound(sv, "udp", bound);
    return SS_OK;
}

static int listen_mqtt(server *sv, const char *name, const char *addr, SSL_CTX *tls)
{
    char bound[BOUND_CAP];
    int rc = mqtt_broker_listen(sv->mqtt, name, addr, tls, bound, sizeof bound);
    if (rc) {
        fprintf(stderr, "cannot listen %s on %s: %s\n", name, addr,
                rc == SS_INVAL ? "bad address" : ss_strerror(rc));
        return rc;
    }
    note_bound(sv, name, bound);
    return SS_OK;
}

/* The broker (its persisted state loaded) and its listeners: one broker
 * for both, counted as one listener at the stop, which it reports once
 * every client is answered and its state is committed. */
static int start_mqtt(server *sv)
{
    const config *cfg = sv->cfg;
    int plain = strcmp(cfg->listen_mqtt, "off") != 0;
    int secure = strcmp(cfg->listen_mqtts, "off") != 0;
    if (!plain && !secure)
        return SS_OK;
    mqtt_broker_options opt = {
        .store = sv->store, .gateway = sv->gateway, .fanout = sv->fanout, .conns = sv->conns,
        .quotas = sv->quotas, .meter = sv->meter, .metrics = sv->metrics, .logins = sv->logins,
        .bufs = &sv->bufs, .queue = sv->queue,
        .session_policy = {sv->api.session_idle_ms},
        .connect_timeout_ms = sv->first_message_ms,
    };
    int rc = mqtt_broker_new(&sv->loop, &opt, &sv->mqtt);
    if (rc) {
        fprintf(stderr, "cannot start the MQTT broker: %s\n", ss_strerror(rc));
        return rc;
    }
    sv->listeners_running++;
    if (secure && (rc = listen_mqtt(sv, "mqtts", cfg->listen_mqtts, sv->tls)))
        return rc;
    if (plain && (rc = listen_mqtt(sv, "mqtt", cfg->listen_mqtt, NULL)))
        return rc;
    return SS_OK;
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_checkpoint_work(uv_work_t *w)
{
    server *sv = w->data;
    store_conn *c;
    if (store_conn_acquire(sv->store, &c) == 0) {
        store_session_write_held(c, clock_now_ms());
        last_seen_flush(sv->seen, c);
        store_checkpoint(c);
        store_conn_release(sv->store, c);
    }
}

static void on_checkpoint_done(uv_work_t *w, int status)
{
    (void)status;
    server *sv = w->data;
    sv->checkpointing = 0;
}

static void on_checkpoint_timer(uv_timer_t *t)
{
    server *sv = t->data;
    if (sv->checkpointing)
        return;
    sv->checkpoint_work.data = sv;
    if (uv_queue_work(&sv->loop, &sv->checkpoint_work, on_checkpoint_work, on_checkpoint_done) == 0)
        sv->checkpointing = 1;
}

/* At a clean stop, once the last batch is committed: nothing of
 * last_seen is lost. */
static void flush_last_seen(server *sv)
{
    store_conn *c;
    if (store_conn_acquire(sv->store, &c) != 0)
        return;
    int rc = last_seen_flush(sv->seen, c);
    if (rc)
        log_warn("server", "devices' last_seen not written: %s", ss_strerror(rc));
    store_conn_release(sv->store, c);
}

/* The stop is under way and ends by itself: a SIGINT or SIGTERM after the
 * handlers close (libuv then gives the signals back their default, which
 * kills) is ignored, as one before it is, rather than cutting the last
 * writes short. */
static void close_signals(server *sv)
{
    uv_close((uv_handle_t *)&sv->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&sv->sigterm, on_handle_closed);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
}
static void on_listener_stopped(void *arg)
{
    server *sv = arg;
    if (--sv->listeners_running > 0)
        return;
    /* Every HTTP answer is out; commit what is still queued, then let the
     * loop end. */
    if (sv->udp) {
        udp_ingest_stats st;
        udp_ingest_get_stats(sv->udp, &st);
        log_info("udp", "%llu datagrams stored, %llu refused", (unsigned long long)st.stored,
                 (unsigned long long)st.refused);
    }
    ingest_queue_stop(sv->queue);
    sv->queue = NULL;
    flush_last_seen(sv);
    /* Every connection has ended its session record: write the last counts. */
    meter_stop(sv->meter, "shutdown");
    api_live_stop(sv->live);
    conn_registry_close(sv->conns);
    sv->conns = NULL;
    uv_close((uv_handle_t *)&sv->checkpoint_timer, on_handle_closed);
    close_signals(sv);
}

static void on_signal(uv_signal_t *h, int signum)
{
    server *sv = h->data;
    if (sv->stopping)
        return;
    sv->stopping = 1;
    log_info("server", "signal %d: stopping", signum);
    sv->listeners_running++;  /* held until every listener has been asked */
    if (sv->http)
        http_server_stop(sv->http, on_listener_stopped, sv);
    if (sv->https)
        http_server_stop(sv->https, on_listener_stopped, sv);
    /* TCP and MQTT connections commit and acknowledge what they read
     * before they report stopped, so the ingest queue stops after them. */
    if (sv->mqtt)
        mqtt_broker_stop(sv->mqtt, on_listener_stopped, sv);
    if (sv->tcp)
        tcp_ingest_stop(sv->tcp, on_listener_stopped, sv);
    if (sv->udp)
        udp_ingest_stop(sv->udp, on_listener_stopped, sv);
    on_listener_stopped(sv);
}

static int start_loop_parts(server *sv)
{
    const config *cfg = sv->cfg;
    int rc = fanout_new(&sv->fanout);
    if (rc == 0)
        rc = last_seen_new(&sv->seen);
    if (rc == 0)
        fanout_subscribe(sv->fanout, last_seen_sub(sv->seen));
    if (rc == 0)
        rc = ingest_queue_start(&sv->loop, sv->store, fanout_offer, sv->fanout, &sv->queue);
    if (rc) {
        fprintf(stderr, "cannot start the store thread: %s\n", ss_strerror(rc));
        return rc;
    }
    ingest_queue_set_metrics(sv->queue, sv->metrics);
    rc = meter_new(&sv->loop, sv->store, sv->quotas, &sv->meter);
    if (rc) {
        fprintf(stderr, "cannot start accounting: %s\n", ss_strerror(rc));
        return rc;
    }
    if (sv->stale_at)
        meter_close_stale(sv->meter, sv->stale_at);
    gateway_options gw = {.queue = sv->queue, .devices = sv->devices, .quotas = sv->quotas,
                          .meter = sv->meter, .metrics = sv->metrics};
    rc = gateway_new(&gw, &sv->gateway);
    if (rc) {
        fprintf(stderr, "cannot start the ingest gateway: %s\n", ss_strerror(rc));
        return rc;
    }
    rc = conn_registry_new(&sv->loop, &sv->conns);
    if (rc) {
        fprintf(stderr, "cannot start the connection registry: %s\n", ss_strerror(rc));
        return rc;
    }
    rc = api_gate_new(&sv->gate);
    if (rc == 0)
        rc = store_maint_start(sv->store, &(store_maint_options){.metrics = sv->metrics},
                               &sv->maint);
    if (rc) {
        fprintf(stderr, "cannot start the store housekeeping: %s\n", ss_strerror(rc));
        return rc;
    }
    sv->api = (api_ctx){.loop = &sv->loop, .store = sv->store, .queue = sv->queue,
                        .devices = sv->devices, .logins = sv->logins, .conns = sv->conns,
                        .gateway = sv->gateway};
    sv->api.metrics = sv->metrics;
    sv->api.quotas = sv->quotas;
    sv->api.meter = sv->meter;
    sv->api.gate = sv->gate;
    sv->api.maint = sv->maint;
    sv->api.seen = sv->seen;
    sv->api.data_dir = cfg->data_dir;
    sv->api.import_readings_max = (size_t)strtoull(cfg->import_readings_max, NULL, 10);
    uint64_t heartbeat_ms = 0;
    config_millis(cfg->live_heartbeat, SS_LIVE_HEARTBEAT_MIN_MS, SS_LIVE_HEARTBEAT_MS,
                  &heartbeat_ms);
    rc = api_live_new(&(api_live_options){.loop = &sv->loop, .store = sv->store,
                                          .fanout = sv->fanout, .conns = sv->conns,
                                          .heartbeat_ms = heartbeat_ms},
                      &sv->live);
    if (rc) {
        fprintf(stderr, "cannot start the live streams: %s\n", ss_strerror(rc));
        return rc;
    }
    sv->api.live = sv->live;
    /* config_validate has checked both; 0 (unparsed) means the default. */
    long secs = 0;
    if (config_seconds(cfg->session_ttl, SESSION_SECONDS_MAX, &secs) == 0)
        sv->api.session_ttl_ms = (int64_t)secs * 1000;
    if (config_seconds(cfg->session_idle_timeout, SESSION_SECONDS_MAX, &secs) == 0)
        sv->api.session_idle_ms = (int64_t)secs * 1000;
    if (config_seconds(cfg->heavy_wait, SS_API_HEAVY_WAIT_MS / 1000, &secs) == 0)
        sv->api.heavy_wait_ms = (uint64_t)secs * 1000;
    /* 0 (unparsed) means the listeners' default, SS_FIRST_MESSAGE_TIMEOUT_MS. */
    config_millis(cfg->first_message_timeout, SS_FIRST_MESSAGE_TIMEOUT_MIN_MS,
                  SS_FIRST_MESSAGE_TIMEOUT_MS, &sv->first_message_ms);
    uv_timer_init(&sv->loop, &sv->checkpoint_timer);
    sv->checkpoint_timer.data = sv;
    uv_timer_start(&sv->checkpoint_timer, on_checkpoint_timer, SERVER_CHECKPOINT_MS,
                   SERVER_CHECKPOINT_MS);
    /* Before the first "listening" line: a supervisor may send SIGTERM as
     * soon as it reads one, and that must be a clean stop, not a kill. */
    uv_signal_init(&sv->loop, &sv->sigint);
    uv_signal_init(&sv->loop, &sv->sigterm);
    sv->sigint.data = sv->sigterm.data = sv;
    uv_signal_start(&sv->sigint, on_signal, SIGINT);
    uv_signal_start(&sv->sigterm, on_signal, SIGTERM);
    if ((rc = start_http(sv, "https", cfg->listen_https, sv->tls, &sv->https)) ||
        (rc = start_http(sv, "http", cfg->listen_http, NULL, &sv->http)) ||
        (rc = start_mqtt(sv)) ||
        (rc = start_tcp(sv)) || (rc = start_udp(sv)))
        return rc;
    print_bound(sv);
    return SS_OK;
}

static void free_server(server *sv)
{
    if (sv->http)
        http_server_free(sv->http);
    if (sv->https)
        http_server_free(sv->https);
    if (sv->tcp)
        tcp_ingest_free(sv->tcp);
    if (sv->udp)
        udp_ingest_free(sv->udp);
    if (sv->mqtt)
        mqtt_broker_free(sv->mqtt);
    if (sv->tls)
        SSL_CTX_free(sv->tls);
    /* The housekeeping thread reports to the metrics and reads the store:
     * it stops before either goes. */
    store_maint_stop(sv->maint);
    device_cache_free(sv->devices);
    metrics_free(sv->metrics);
    meter_free(sv->meter);
    gateway_free(sv->gateway);
    api_live_free(sv->live);
    fanout_free(sv->fanout);
    last_seen_free(sv->seen);
    api_gate_free(sv->gate);
    quota_free(sv->quotas);
    throttle_free(sv->logins);
    if (sv->store)
        store_close(sv->store);
    free(sv);
}

/* A start that failed half-way: close what is open and let libuv finish. */
static void abort_start(server *sv)
{
    if (sv->queue)
        ingest_queue_stop(sv->queue);
    sv->queue = NULL;
    if (sv->http && sv->listeners_running)
        http_server_stop(sv->http, NULL, NULL);
    if (sv->https && sv->listeners_running)
        http_server_stop(sv->https, NULL, NULL);
    /* Nothing was accepted yet: these only close their sockets. */
    if (sv->tcp)
        tcp_ingest_stop(sv->tcp, NULL, NULL);
    if (sv->udp)
        udp_ingest_stop(sv->udp, NULL, NULL);
    if (sv->mqtt)
        mqtt_broker_stop(sv->mqtt, NULL, NULL);
    api_live_stop(sv->live);
    if (sv->conns)
        conn_registry_close(sv->conns);
    sv->conns = NULL;
    if (sv->meter)
        meter_stop(sv->meter, "shutdown");
    if (uv_is_active((uv_handle_t *)&sv->checkpoint_timer))
        uv_close((uv_handle_t *)&sv->checkpoint_timer, on_handle_closed);
    if (uv_is_active((uv_handle_t *)&sv->sigint))
        close_signals(sv);
    uv_run(&sv->loop, UV_RUN_DEFAULT);
}

int server_run(const config *cfg)
{
    log_level level = LOG_INFO;
    log_parse_level(cfg->log_level, &level);
    log_set_level(level);
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (secret_init())
        return 1;
    server *sv = calloc(1, sizeof *sv);
    if (!sv)
        return 1;
    sv->cfg = cfg;
    if (validate_startup(cfg)) {
        free_server(sv);
        return 2;
    }
    int rc = ensure_data_dir(cfg->data_dir);
    throttle_limits lim;
    throttle_limits_default(&lim);
    long delay_secs = 0;
    if (config_seconds(cfg->login_delay_max, SS_LOGIN_DELAY_MAX_MS / 1000, &delay_secs) == 0)
        lim.max_ms = (int64_t)delay_secs * 1000;
    if (rc == 0)
        rc = throttle_new(&lim, &sv->logins);
    if (rc == 0)
        rc = metrics_new(&sv->metrics);
    /* The certificate before the store: a bad one stops us before the
     * store and the superadmin are created. */
    if (rc == 0)
        rc = setup_tls(sv);
    if (rc == 0)
        rc = open_store(sv);
    if (rc == 0)
        rc = load_accounting(sv);
    if (rc) {
        free_server(sv);
        return 1;
    }
    rc = net_err_from_uv(uv_loop_init(&sv->loop));
    if (rc) {
        fprintf(stderr, "cannot start the event loop: %s\n", ss_strerror(rc));
        free_server(sv);
        return 1;
    }
    sv->loop.data = &sv->bufs;
    rc = start_loop_parts(sv);
    if (rc) {
        abort_start(sv);
    } else {
        log_info("server", "ready (store %s, durability %s)", cfg->store, cfg->durability);
        uv_run(&sv->loop, UV_RUN_DEFAULT);
        log_info("server", "stopped");
    }
    uv_loop_close(&sv->loop);
    free_server(sv);
    return rc ? 1 : 0;
}
