/* mqtt_load.c — the MQTT benchmark's client: one load, any broker.
 *
 *   cc -O2 -o /tmp/.../mqtt_load bench/mqtt_load.c -lssl -lcrypto   (mqtt.sh does this)
 *   mqtt_load --mode throughput|latency|idle --port P --devices FILE [options]
 *
 * Publishers are devices: publisher i connects with the i-th line `ID TOKEN`
 * of FILE (username "device", password TOKEN; lines `admin …` and `org …`
 * are skipped) and publishes line-format readings to devices/ID/data. The
 * subscriber connects with --sub-user / --sub-pass (SensorSpace: "apikey"
 * and an API key) and subscribes to devices/+/data. For a broker that
 * checks nothing (mosquitto with allow_anonymous) the file holds made-up
 * ids and tokens: the same bytes go on the wire either way.
 *
 * Every reading carries a timestamp no other reading of the run has:
 * publisher i's k-th reading has ts = BASE_MS + i * PUB_STRIDE + k, so the
 * subscriber tells from the ts alone which message arrived, and a broker
 * that stores readings keeps every one (a repeated ts would replace).
 *
 *  throughput  --pubs N publishers at --qos 0 or 1 for --seconds S, as fast
 *              as the broker takes them (QoS 1: at most --window PUBLISHes
 *              in flight per connection, fewer if the broker's v5 Receive
 *              Maximum says so), `temp=V TS` payloads; one subscriber at the
 *              same QoS receives everything. After S the publishers finish
 *              (QoS 1: every PUBACK back) and the subscriber drains. QoS 1:
 *              every acknowledged message must reach the subscriber (lost =
 *              acknowledged and never received). Published/s = messages
 *              sent (QoS 0) or acknowledged (QoS 1) / time to the last one;
 *              received/s = distinct messages received / time to the last.
 *  latency     the same connections, --rate R messages/s in all, spread
 *              evenly over the publishers and over time (a timer, not a
 *              burst), payload `sent_us=T TS` with T the send time
 *              (CLOCK_MONOTONIC, microseconds; publishers and subscriber
 *              are this one process); the subscriber's receive time minus T
 *              gives p50/p90/p99/max. A message held back (its publisher's
 *              QoS 1 window full) is sent when the window opens, with T the
 *              time it fell due: waiting for the broker's PUBACKs counts.
 *              Messages due in the first LATENCY_WARMUP_S are not counted.
 *  idle        --conns N connections as devices (lines of FILE in turn,
 *              client ids of their own), the first N - --tls-conns to
 *              --port, the rest over TLS to --tls-port, opened in waves;
 *              VmRSS of --pid before, after the plain ones and after the
 *              TLS ones; all must still be open after --hold seconds.
 *
 * One thread, epoll, non-blocking sockets; every wait has a deadline. MQTT
 * 3.1.1 or 5.0 (--mqtt 4|5). Prints one line `RESULT key=value ...`;
 * exit 1 when something went wrong (the line says what).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_PUBS 64
#define PUB_STRIDE (1L << 22)     /* ts values (and messages at most) per publisher */
#define PUB_BUF (256 * 1024)      /* a publisher's unsent bytes at most */
#define PUB_FILL (64 * 1024)      /* QoS 0: refill below this many unsent bytes */
#define SUB_BUF (1024 * 1024)     /* the subscriber's read buffer */
#define IDLE_BUF 512              /* an idle connection's buffers: CONNACK, CONNECT */
#define MAX_PACKET (256 * 1024)   /* anything larger from the broker is an error here */
#define WRITES_PER_TURN 4         /* QoS 0: fills per publisher before serving the others */
#define READY_TIMEOUT_S 30.0      /* connecting (and, idle, each wave) */
#define DRAIN_LIMIT_S 20.0        /* after the publishing time: last PUBACKs, last deliveries */
#define QUIET_S 2.0               /* the subscriber got nothing new for this long: it is over */
#define LATENCY_WARMUP_S 0.5
/* Latency mode wakes at most this often: the messages fallen due since go
 * out together, each stamped when written, so a high rate costs the load
 * tool one write per publisher per tick instead of one per message. */
#define LATENCY_TICK_S 0.0005
#define IDLE_WAVE 500             /* connections being set up at once (listen backlogs) */
#define IDLE_WARMUP 20            /* opened before the first VmRSS: one-time set-up not counted */
#define SETTLE_S 1.0              /* before reading VmRSS */
#define KEEP_ALIVE_S 600          /* longer than any run: no PINGREQ needed */
#define EVENTS 256
#define READS_PER_TURN 8          /* the subscriber's reads before the publishers get a turn */

enum { ST_CONNECTING, ST_TLS, ST_CONNACK, ST_SUBACK, ST_READY, ST_DEAD };
enum { K_PUB, K_SUB, K_IDLE };

typedef struct conn {
    int fd, state, kind, idx;
    SSL *ssl;
    uint32_t events;              /* as registered with epoll */
    uint8_t *in, *out;
    size_t in_len, in_cap, out_off, out_len, out_cap;
    char topic[160];
    size_t topic_len;
    const char *user, *pass;
    char client_id[32];
    /* publisher */
    long next_k, sent, acked, refused;
    unsigned inflight, window;
    long *pid_k;                  /* packet id -> k of the message in flight */
    uint64_t *acked_bits;
    double next_due;
    int held;                     /* latency: messages due, the QoS 1 window full */
} conn;

typedef struct opts {
    const char *mode, *devices, *sub_user, *sub_pass;
    int port, tls_port, mqtt, qos, pubs, pid, conns, tls_conns;
    unsigned window;
    double seconds, rate, hold;
    long base_ms;
} opts;

typedef struct run {
    opts o;
    int ep, tfd;
    SSL_CTX *tls;
    conn *conns;
    int nconns;
    char (*ids)[64], (*tokens)[256];
    int ndevices;
    /* subscriber's counts */
    long received, unique, dups, foreign;
    uint64_t *recv_bits;          /* MAX_PUBS x PUB_STRIDE bits, touched lazily */
    double t0, last_recv, last_pub;
    uint32_t *lat_us;
    size_t nlat, lat_cap;
    double warm_until;
    const char *failure;          /* the first thing that went wrong, in failbuf */
    char failbuf[128];
    int idle_deaths;
} run;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static void fail(run *r, const char *why)
{
    if (r->failure)
        return;
    snprintf(r->failbuf, sizeof r->failbuf, "%s", why);
    r->failure = r->failbuf;
}

/* ---- wire encoding -------------------------------------------------------- */

static size_t put_varint(uint8_t *p, size_t v)
{
    size_t n = 0;
    do {
        uint8_t b = v % 128;
        v /= 128;
        p[n++] = b | (v ? 0x80 : 0);
    } while (v);
    return n;
}

static size_t put_str(uint8_t *p, const char *s, size_t n)
{
    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    memcpy(p + 2, s, n);
    return n + 2;
}

/* Fixed header + body (built at p + 5, moved down behind the header). */
static size_t frame(uint8_t *p, uint8_t type, size_t body)
{
    uint8_t h[5];
    size_t hl = put_varint(h + 1, body) + 1;
    h[0] = type;
    memmove(p + hl, p + 5, body);
    memcpy(p, h, hl);
    return hl + body;
}

static size_t build_connect(uint8_t *p, int ver, const char *cid, const char *user, const char *pass)
{
    uint8_t *b = p + 5;
    size_t n = put_str(b, "MQTT", 4);
    b[n++] = (uint8_t)ver;
    b[n++] = 0x02 | (user ? 0x80 : 0) | (pass ? 0x40 : 0);   /* clean session / clean start */
    b[n++] = KEEP_ALIVE_S >> 8;
    b[n++] = KEEP_ALIVE_S & 0xff;
    if (ver == 5) {                 /* Receive Maximum 65535: the broker's window to us */
        b[n++] = 3;
        b[n++] = 0x21;
        b[n++] = 0xff;
        b[n++] = 0xff;
    }
    n += put_str(b + n, cid, strlen(cid));
    if (user)
        n += put_str(b + n, user, strlen(user));
    if (pass)
        n += put_str(b + n, pass, strlen(pass));
    return frame(p, 0x10, n);
}

static size_t build_subscribe(uint8_t *p, int ver, const char *filter, int qos)
{
    uint8_t *b = p + 5;
    size_t n = 0;
    b[n++] = 0;
    b[n++] = 1;                     /* packet id */
    if (ver == 5)
        b[n++] = 0;                 /* no properties */
    n += put_str(b + n, filter, strlen(filter));
    b[n++] = (uint8_t)qos;
    return frame(p, 0x82, n);
}

static size_t build_publish(uint8_t *p, int ver, int qos, uint16_t pid, const char *topic, size_t tlen,
                            const char *payload, size_t plen)
{
    size_t body = 2 + tlen + (qos ? 2 : 0) + (ver == 5) + plen;
    size_t n = 0;
    p[n++] = (uint8_t)(0x30 | (qos << 1));
    n += put_varint(p + n, body);
    n += put_str(p + n, topic, tlen);
    if (qos) {
        p[n++] = (uint8_t)(pid >> 8);
        p[n++] = (uint8_t)pid;
    }
    if (ver == 5)
        p[n++] = 0;
    memcpy(p + n, payload, plen);
    return n + plen;
}

/* ---- I/O: plain or TLS, one place for SSL_get_error ------------------------ */

enum { IO_AGAIN_READ = -2, IO_AGAIN_WRITE = -3, IO_FAIL = -1 };

static int tls_result(SSL *s, int rc)
{
    switch (SSL_get_error(s, rc)) {
    case SSL_ERROR_WANT_READ:
        return IO_AGAIN_READ;
    case SSL_ERROR_WANT_WRITE:
        return IO_AGAIN_WRITE;
    default:
        return IO_FAIL;
    }
}

/* > 0 bytes, 0 end of stream, or an IO_ code. */
static ssize_t io_read(conn *c, void *b, size_t n)
{
    if (c->ssl) {
        int rc = SSL_read(c->ssl, b, (int)n);
        if (rc > 0)
            return rc;
        return SSL_get_error(c->ssl, rc) == SSL_ERROR_ZERO_RETURN ? 0 : tls_result(c->ssl, rc);
    }
    ssize_t rc = recv(c->fd, b, n, 0);
    if (rc >= 0)
        return rc;
    return errno == EAGAIN || errno == EWOULDBLOCK ? IO_AGAIN_READ : IO_FAIL;
}

static ssize_t io_write(conn *c, const void *b, size_t n)
{
    if (c->ssl) {
        int rc = SSL_write(c->ssl, b, (int)n);
        return rc > 0 ? rc : tls_result(c->ssl, rc);
    }
    ssize_t rc = send(c->fd, b, n, MSG_NOSIGNAL);
    if (rc >= 0)
        return rc;
    return errno == EAGAIN || errno == EWOULDBLOCK ? IO_AGAIN_WRITE : IO_FAIL;
}

static void set_events(run *r, conn *c, uint32_t ev)
{
    if (c->events == ev || c->fd < 0)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

static void conn_dead(run *r, conn *c, const char *why)
{
    if (c->state == ST_DEAD)
        return;
    if (c->kind != K_IDLE || r->idle_deaths++ < 5)
        fprintf(stderr, "mqtt_load: %s %d: %s\n", c->kind == K_PUB ? "publisher" : c->kind == K_SUB ? "subscriber"
                                                                                                  : "connection",
                c->idx, why);
    c->state = ST_DEAD;
    if (c->fd >= 0) {
        epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->kind != K_IDLE)
        fail(r, why);
}

/* Writes what is queued; EPOLLOUT while some is left. */
static void flush(run *r, conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = io_write(c, c->out + c->out_off, c->out_len - c->out_off);
        if (n == IO_AGAIN_WRITE || n == IO_AGAIN_READ)
            break;
        if (n <= 0) {
            conn_dead(r, c, "write failed");
            return;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    set_events(r, c, EPOLLIN | (c->out_len ? EPOLLOUT : 0));
}

static void queue_bytes(conn *c, const uint8_t *b, size_t n)
{
    if (c->out_off && c->out_len + n > c->out_cap) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_len + n <= c->out_cap) {
        memcpy(c->out + c->out_len, b, n);
        c->out_len += n;
    }
}

/* ---- publishing ---------------------------------------------------------- */

static int bit_get(const uint64_t *bits, long i) { return (int)(bits[i / 64] >> (i % 64)) & 1; }
static void bit_set(uint64_t *bits, long i) { bits[i / 64] |= 1ULL << (i % 64); }

/* Appends publisher c's next message; 0, or -1 when it has sent all it may. */
static int publish_one(run *r, conn *c, long sent_us)
{
    if (c->next_k >= PUB_STRIDE)
        return -1;
    long k = c->next_k;
    long ts = r->o.base_ms + (long)c->idx * PUB_STRIDE + k;
    char payload[64];
    int plen = sent_us ? snprintf(payload, sizeof payload, "sent_us=%ld %ld", sent_us, ts)
                       : snprintf(payload, sizeof payload, "temp=%ld.%ld %ld", ts % 400 / 10, ts % 10, ts);
    uint16_t pid = (uint16_t)(k % 65535 + 1);
    uint8_t pkt[256];
    size_t n = build_publish(pkt, r->o.mqtt, r->o.qos, pid, c->topic, c->topic_len, payload, (size_t)plen);
    if (c->out_len - c->out_off + n > c->out_cap)
        return -1;
    queue_bytes(c, pkt, n);
    if (r->o.qos) {
        c->pid_k[pid] = k;
        c->inflight++;
    }
    c->next_k++;
    c->sent++;
    return 0;
}

/* Throughput: as much as the window (QoS 1) or the buffer (QoS 0) allows. */
static void publish_fill(run *r, conn *c)
{
    for (int turn = 0; turn < WRITES_PER_TURN && c->state == ST_READY; turn++) {
        if (r->o.qos)
            while (c->inflight < c->window && publish_one(r, c, 0) == 0) {
            }
        else
            while (c->out_len - c->out_off < PUB_FILL && publish_one(r, c, 0) == 0) {
            }
        flush(r, c);
        if (c->out_len || r->o.qos)
            break;
    }
}

/* ---- packets from the broker --------------------------------------------- */

/* Skips a v5 property block at b (n bytes left); returns its size or -1. */
static long props_len(const uint8_t *b, size_t n, size_t *hdr)
{
    size_t v = 0, i = 0;
    for (unsigned shift = 0; i < n && i < 4; shift += 7) {
        v |= (size_t)(b[i] & 0x7f) << shift;
        if (!(b[i++] & 0x80)) {
            *hdr = i;
            return i + v <= n ? (long)v : -1;
        }
    }
    return -1;
}

/* CONNACK properties: Receive Maximum caps our window. */
static void connack_props(conn *c, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t id = p[i++];
        size_t left = n - i, len;
        switch (id) {
        case 0x24: case 0x25: case 0x28: case 0x29: case 0x2A:
            len = 1;
            break;
        case 0x21: case 0x22: case 0x13:
            len = 2;
            if (id == 0x21 && left >= 2) {
                unsigned rm = (unsigned)p[i] << 8 | p[i + 1];
                if (rm && rm < c->window)
                    c->window = rm;
            }
            break;
        case 0x11: case 0x27:
            len = 4;
            break;
        case 0x12: case 0x1F: case 0x1A: case 0x1C: case 0x15: case 0x16:
            len = left >= 2 ? 2 + ((size_t)p[i] << 8 | p[i + 1]) : left + 1;
            break;
        case 0x26:
            len = left >= 2 ? 2 + ((size_t)p[i] << 8 | p[i + 1]) : left + 1;
            len += left >= len + 2 ? 2 + ((size_t)p[i + len] << 8 | p[i + len + 1]) : left + 1;
            break;
        default:
            return;                 /* unknown: stop reading, keep what we have */
        }
        i += len;
    }
}

static void send_subscribe(run *r, conn *c)
{
    uint8_t pkt[256];
    queue_bytes(c, pkt, build_subscribe(pkt, r->o.mqtt, "devices/+/data", r->o.qos));
    c->state = ST_SUBACK;
    flush(r, c);
}

static void on_connack(run *r, conn *c, const uint8_t *b, size_t n)
{
    if (n < 2 || b[1] != 0) {
        char why[64];
        snprintf(why, sizeof why, "CONNACK refused (code 0x%02x)", n >= 2 ? b[1] : 0xff);
        conn_dead(r, c, why);
        return;
    }
    size_t hdr;
    long pl = r->o.mqtt == 5 && n > 2 ? props_len(b + 2, n - 2, &hdr) : -1;
    if (pl > 0)
        connack_props(c, b + 2 + hdr, (size_t)pl);
    if (c->kind == K_SUB)
        send_subscribe(r, c);
    else
        c->state = ST_READY;
}

static void on_suback(run *r, conn *c, const uint8_t *b, size_t n)
{
    size_t off = 2, hdr;
    if (r->o.mqtt == 5) {
        long pl = n > 2 ? props_len(b + 2, n - 2, &hdr) : -1;
        if (pl < 0) {
            conn_dead(r, c, "malformed SUBACK");
            return;
        }
        off += hdr + (size_t)pl;
    }
    if (off >= n || b[off] >= 0x80) {
        conn_dead(r, c, "SUBSCRIBE to devices/+/data refused");
        return;
    }
    c->state = ST_READY;
}

static void on_puback(run *r, conn *c, const uint8_t *b, size_t n)
{
    if (n < 2 || c->kind != K_PUB || !c->inflight)
        return;
    uint16_t pid = (uint16_t)(b[0] << 8 | b[1]);
    c->inflight--;
    if (n >= 3 && b[2] >= 0x80) {
        if (c->refused++ < 3)
            fprintf(stderr, "mqtt_load: publisher %d: PUBACK reason 0x%02x\n", c->idx, b[2]);
        return;
    }
    bit_set(c->acked_bits, c->pid_k[pid]);
    c->acked++;
    r->last_pub = now_s();
}

/* The decimal number in [p, end): the payload is not NUL-terminated. */
static long parse_long(const uint8_t *p, const uint8_t *end)
{
    long v = 0;
    while (p < end && *p >= '0' && *p <= '9')
        v = v * 10 + (*p++ - '0');
    return v;
}

static void on_message(run *r, const uint8_t *p, size_t n)
{
    double now = now_s();
    const uint8_t *sp = memrchr(p, ' ', n);
    r->received++;
    r->last_recv = now;
    if (!sp) {
        r->foreign++;
        return;
    }
    long ts = parse_long(sp + 1, p + n) - r->o.base_ms;
    long pub = ts / PUB_STRIDE;
    if (ts < 0 || pub >= r->o.pubs) {
        r->foreign++;
        return;
    }
    long idx = pub * PUB_STRIDE + ts % PUB_STRIDE;
    if (bit_get(r->recv_bits, idx)) {
        r->dups++;
        return;
    }
    bit_set(r->recv_bits, idx);
    r->unique++;
    if (n > 8 && memcmp(p, "sent_us=", 8) == 0 && r->nlat < r->lat_cap) {
        long sent = parse_long(p + 8, sp);
        if ((double)sent / 1e6 >= r->warm_until)
            r->lat_us[r->nlat++] = (uint32_t)(now_us() - sent);
    }
}

static void on_publish(run *r, conn *c, uint8_t flags, const uint8_t *b, size_t n)
{
    int qos = (flags >> 1) & 3;
    if (n < 2)
        return;
    size_t off = 2 + ((size_t)b[0] << 8 | b[1]), hdr;
    uint16_t pid = 0;
    if (qos) {
        if (off + 2 > n)
            return;
        pid = (uint16_t)(b[off] << 8 | b[off + 1]);
        off += 2;
    }
    if (r->o.mqtt == 5) {
        long pl = off < n ? props_len(b + off, n - off, &hdr) : -1;
        if (pl < 0)
            return;
        off += hdr + (size_t)pl;
    }
    if (off <= n)
        on_message(r, b + off, n - off);
    if (qos == 1) {
        uint8_t ack[4] = {0x40, 2, (uint8_t)(pid >> 8), (uint8_t)pid};
        if (c->out_len - c->out_off + sizeof ack > c->out_cap)
            flush(r, c);
        if (c->state == ST_DEAD || c->out_len - c->out_off + sizeof ack > c->out_cap) {
            conn_dead(r, c, "the broker does not read our PUBACKs");
            return;
        }
        queue_bytes(c, ack, sizeof ack);
    }
}

static void on_packet(run *r, conn *c, uint8_t type, const uint8_t *b, size_t n)
{
    switch (type >> 4) {
    case 2:
        on_connack(r, c, b, n);
        break;
    case 9:
        on_suback(r, c, b, n);
        break;
    case 4:
        on_puback(r, c, b, n);
        break;
    case 3:
        on_publish(r, c, type & 0x0f, b, n);
        break;
    case 14: {
        char why[64];
        snprintf(why, sizeof why, "DISCONNECT from the broker (reason 0x%02x)", n ? b[0] : 0);
        conn_dead(r, c, why);
        break;
    }
    default:
        break;
    }
}

/* Frames the packets in c->in; keeps a partial one for the next read. */
static void parse_in(run *r, conn *c)
{
    size_t off = 0;
    while (c->state != ST_DEAD && c->in_len - off >= 2) {
        size_t rl = 0, i = 1;
        for (unsigned shift = 0;; shift += 7) {
            if (off + i >= c->in_len)
                goto partial;
            uint8_t byte = c->in[off + i++];
            rl |= (size_t)(byte & 0x7f) << shift;
            if (!(byte & 0x80))
                break;
            if (i > 4) {
                conn_dead(r, c, "malformed remaining length from the broker");
                return;
            }
        }
        if (rl > MAX_PACKET) {
            conn_dead(r, c, "packet from the broker over 256 KiB");
            return;
        }
        if (c->in_len - off < i + rl) {
            if (i + rl > c->in_cap) {   /* an idle connection's buffer is small */
                uint8_t *bigger = realloc(c->in, i + rl);
                if (!bigger) {
                    conn_dead(r, c, "out of memory");
                    return;
                }
                c->in = bigger;
                c->in_cap = i + rl;
            }
            break;
        }
        on_packet(r, c, c->in[off], c->in + off + i, rl);
        off += i + rl;
    }
partial:
    if (c->state == ST_DEAD)
        return;
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
}

static void read_in(run *r, conn *c)
{
    for (int reads = 0; reads < READS_PER_TURN; reads++) {
        if (c->in_len == c->in_cap) {
            conn_dead(r, c, "read buffer full");
            return;
        }
        ssize_t n = io_read(c, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == IO_AGAIN_READ || n == IO_AGAIN_WRITE)
            break;
        if (n <= 0) {
            conn_dead(r, c, n == 0 ? "closed by the broker" : "read failed");
            return;
        }
        c->in_len += (size_t)n;
        parse_in(r, c);
        if (c->state == ST_DEAD)
            return;
    }
    if (c->out_len)                 /* the subscriber's PUBACKs, one write per read */
        flush(r, c);
}

/* ---- connection set-up --------------------------------------------------- */

static void send_connect(run *r, conn *c)
{
    uint8_t pkt[600];
    queue_bytes(c, pkt, build_connect(pkt, r->o.mqtt, c->client_id, c->user, c->pass));
    c->state = ST_CONNACK;
    flush(r, c);
}

static void tls_step(run *r, conn *c)
{
    int rc = SSL_connect(c->ssl);
    if (rc == 1) {
        send_connect(r, c);
        return;
    }
    int io = tls_result(c->ssl, rc);
    if (io == IO_FAIL)
        conn_dead(r, c, "TLS handshake failed");
    else
        set_events(r, c, io == IO_AGAIN_READ ? EPOLLIN : EPOLLOUT);
}

static void on_connected(run *r, conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
        conn_dead(r, c, "connect failed");
        return;
    }
    if (!c->ssl) {
        send_connect(r, c);
        return;
    }
    c->state = ST_TLS;
    tls_step(r, c);
}

static int conn_open(run *r, conn *c, int port, int tls)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        conn_dead(r, c, "socket failed (ulimit -n?)");
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        conn_dead(r, c, "connect failed");
        return -1;
    }
    if (tls) {
        c->ssl = SSL_new(r->tls);
        if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
            conn_dead(r, c, "SSL_new failed");
            return -1;
        }
    }
    c->state = ST_CONNECTING;
    c->events = EPOLLOUT;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &e);
    return 0;
}

static void on_event(run *r, conn *c, uint32_t ev)
{
    if (c->state == ST_DEAD)
        return;
    if (c->state == ST_CONNECTING) {
        on_connected(r, c);
        return;
    }
    if (c->state == ST_TLS) {
        tls_step(r, c);
        return;
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
        read_in(r, c);
    if (c->state != ST_DEAD && (ev & EPOLLOUT))
        flush(r, c);
}

/* One turn of the loop: waits at most timeout_ms. */
static void pump(run *r, int timeout_ms)
{
    struct epoll_event evs[EVENTS];
    int n = epoll_wait(r->ep, evs, EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {   /* the latency timer */
            uint64_t ticks;
            if (read(r->tfd, &ticks, sizeof ticks) < 0) {
            }
            continue;
        }
        on_event(r, evs[i].data.ptr, evs[i].events);
    }
}

static int count_state(const run *r, int from, int to, int state)
{
    int n = 0;
    for (int i = from; i < to; i++)
        n += r->conns[i].state == state;
    return n;
}

/* Pumps until conns[from, to) are all ready (or one died); 0 or -1. */
static int wait_ready(run *r, int from, int to)
{
    double deadline = now_s() + READY_TIMEOUT_S;
    while (now_s() < deadline) {
        int ready = count_state(r, from, to, ST_READY), dead = count_state(r, from, to, ST_DEAD);
        if (dead)
            return -1;
        if (ready == to - from)
            return 0;
        pump(r, 100);
    }
    fail(r, "timed out connecting");
    return -1;
}

static conn *conn_init(run *r, int i, int kind, int idx, size_t in_cap, size_t out_cap)
{
    conn *c = &r->conns[i];
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->kind = kind;
    c->idx = idx;
    c->in = malloc(in_cap);
    c->out = malloc(out_cap);
    c->in_cap = in_cap;
    c->out_cap = out_cap;
    if (!c->in || !c->out) {
        fprintf(stderr, "mqtt_load: out of memory\n");
        exit(1);
    }
    return c;
}

static void conn_device(run *r, conn *c, int device, const char *prefix, int n)
{
    const char *id = r->ids[device % r->ndevices];
    c->topic_len = (size_t)snprintf(c->topic, sizeof c->topic, "devices/%s/data", id);
    snprintf(c->client_id, sizeof c->client_id, "%s-%d", prefix, n);
    c->user = "device";
    c->pass = r->tokens[device % r->ndevices];
}

/* ---- modes --------------------------------------------------------------- */

/* Publishers 0..pubs-1 and the subscriber at index pubs, all connected. */
static int connect_pubsub(run *r)
{
    r->nconns = r->o.pubs + 1;
    r->conns = calloc((size_t)r->nconns, sizeof *r->conns);
    r->recv_bits = calloc((size_t)r->o.pubs * PUB_STRIDE / 64, sizeof(uint64_t));
    if (!r->conns || !r->recv_bits)
        return -1;
    conn *s = conn_init(r, r->o.pubs, K_SUB, 0, SUB_BUF, SUB_BUF);
    snprintf(s->client_id, sizeof s->client_id, "bench-sub");
    s->user = r->o.sub_user;
    s->pass = r->o.sub_pass;
    if (conn_open(r, s, r->o.port, 0) != 0 || wait_ready(r, r->o.pubs, r->o.pubs + 1) != 0)
        return -1;
    for (int i = 0; i < r->o.pubs; i++) {
        conn *c = conn_init(r, i, K_PUB, i, 64 * 1024, PUB_BUF);
        conn_device(r, c, i, "bench-pub", i);
        c->window = r->o.window;
        c->pid_k = calloc(65536, sizeof *c->pid_k);
        c->acked_bits = calloc(PUB_STRIDE / 64, sizeof(uint64_t));
        if (!c->pid_k || !c->acked_bits || conn_open(r, c, r->o.port, 0) != 0)
            return -1;
    }
    return wait_ready(r, 0, r->o.pubs);
}

static int publishers_done(const run *r)
{
    for (int i = 0; i < r->o.pubs; i++) {
        const conn *c = &r->conns[i];
        if (c->state == ST_READY && (c->out_len || c->inflight))
            return 0;
    }
    return 1;
}

/* After the publishing time: the last writes and PUBACKs, then the
 * subscriber's last deliveries (until all arrived or nothing came for a
 * while). */
static void drain(run *r)
{
    double limit = now_s() + DRAIN_LIMIT_S;
    while (!publishers_done(r) && now_s() < limit && !r->failure)
        pump(r, 10);
    if (!r->o.qos)
        r->last_pub = now_s();  /* QoS 0: the last byte went to the kernel */
    if (!publishers_done(r))
        fail(r, "publishers still had messages unacknowledged at the drain limit");
    long expected = 0;
    for (int i = 0; i < r->o.pubs; i++)
        expected += r->o.qos ? r->conns[i].acked : r->conns[i].sent;
    while (r->unique < expected && now_s() < limit && now_s() - r->last_recv < QUIET_S && !r->failure)
        pump(r, 50);
}

static long lost_acked(const run *r)
{
    long lost = 0;
    for (int p = 0; p < r->o.pubs; p++) {
        const conn *c = &r->conns[p];
        for (long w = 0; w < (c->next_k + 63) / 64; w++)
            lost += __builtin_popcountll(c->acked_bits[w] & ~r->recv_bits[p * PUB_STRIDE / 64 + w]);
    }
    return lost;
}

static void totals(const run *r, long *sent, long *acked, long *refused)
{
    *sent = *acked = *refused = 0;
    for (int i = 0; i < r->o.pubs; i++) {
        *sent += r->conns[i].sent;
        *acked += r->conns[i].acked;
        *refused += r->conns[i].refused;
    }
}

static int mode_throughput(run *r)
{
    if (connect_pubsub(r) != 0)
        return -1;
    r->t0 = now_s();
    r->last_recv = r->t0;
    double deadline = r->t0 + r->o.seconds;
    while (now_s() < deadline && !r->failure) {
        int room = 0;               /* QoS 0: a socket took all: fill again at once */
        for (int i = 0; i < r->o.pubs; i++) {
            conn *c = &r->conns[i];
            if (c->state == ST_READY && (r->o.qos || !c->out_len))
                publish_fill(r, c);
            room |= !r->o.qos && c->state == ST_READY && !c->out_len;
        }
        pump(r, room ? 0 : 10);
    }
    drain(r);
    long sent, acked, refused;
    totals(r, &sent, &acked, &refused);
    long published = r->o.qos ? acked : sent, lost = r->o.qos ? lost_acked(r) : sent - r->unique;
    double pub_s = r->last_pub - r->t0, recv_s = r->last_recv - r->t0;
    printf("RESULT mode=throughput mqtt=%d qos=%d pubs=%d window=%u seconds=%.0f sent=%ld acked=%ld refused=%ld "
           "received=%ld unique=%ld dups=%ld foreign=%ld lost=%ld pub_s=%.3f recv_s=%.3f "
           "pub_per_s=%.0f recv_per_s=%.0f ok=%d\n",
           r->o.mqtt, r->o.qos, r->o.pubs, r->conns[0].window, r->o.seconds, sent, acked, refused, r->received,
           r->unique, r->dups, r->foreign, lost, pub_s, recv_s, pub_s > 0 ? (double)published / pub_s : 0,
           recv_s > 0 ? (double)r->unique / recv_s : 0, !r->failure && (!r->o.qos || lost == 0));
    return r->failure || (r->o.qos && lost) ? -1 : 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double pct(const run *r, double q)
{
    if (!r->nlat)
        return 0;
    size_t i = (size_t)(q * (double)(r->nlat - 1) + 0.5);
    return r->lat_us[i] / 1000.0;
}

static void arm_timer(run *r, double at)
{
    struct itimerspec its = {0};
    double now = now_s(), d = at > now ? at - now : 1e-6;
    its.it_value.tv_sec = (time_t)d;
    its.it_value.tv_nsec = (long)((d - (double)(time_t)d) * 1e9);
    if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
        its.it_value.tv_nsec = 1000;
    timerfd_settime(r->tfd, 0, &its, NULL);
}

static int mode_latency(run *r)
{
    if (r->o.rate <= 0) {
        fprintf(stderr, "mqtt_load: --rate is needed for latency\n");
        return -1;
    }
    r->lat_cap = (size_t)(r->o.rate * (r->o.seconds + 1)) + 1024;
    r->lat_us = malloc(r->lat_cap * sizeof *r->lat_us);
    r->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    if (!r->lat_us || r->tfd < 0 || epoll_ctl(r->ep, EPOLL_CTL_ADD, r->tfd, &e) != 0 || connect_pubsub(r) != 0)
        return -1;
    double period = r->o.pubs / r->o.rate;   /* one publisher's interval */
    r->t0 = now_s();
    r->last_recv = r->t0;
    r->warm_until = r->t0 + LATENCY_WARMUP_S;
    double deadline = r->t0 + r->o.seconds;
    long held = 0, unsent = 0;
    for (int i = 0; i < r->o.pubs; i++)
        r->conns[i].next_due = r->t0 + period * i / r->o.pubs;
    while (!r->failure) {
        double now = now_s(), next = deadline;
        long sent_us = now_us();
        if (now >= deadline)
            break;
        for (int i = 0; i < r->o.pubs; i++) {
            conn *c = &r->conns[i];
            while (c->state == ST_READY && c->next_due <= now) {
                if (r->o.qos && c->inflight >= c->window) {
                    c->held = 1;
                    break;
                }
                /* Held back by the window: its latency counts from when it
                 * fell due, not from when the broker's PUBACKs let it go. */
                held += c->held;
                publish_one(r, c, c->held ? (long)(c->next_due * 1e6) : sent_us);
                c->next_due += period;
            }
            if (c->next_due > now)
                c->held = 0;
            if (c->out_len)
                flush(r, c);
            if (c->next_due < next)
                next = c->next_due;
        }
        arm_timer(r, next > now + LATENCY_TICK_S ? next : now + LATENCY_TICK_S);
        pump(r, 100);
    }
    for (int i = 0; i < r->o.pubs; i++)
        for (conn *c = &r->conns[i]; c->next_due < deadline; c->next_due += period)
            unsent++;
    r->last_pub = now_s();
    drain(r);
    qsort(r->lat_us, r->nlat, sizeof *r->lat_us, cmp_u32);
    long sent, acked, refused;
    totals(r, &sent, &acked, &refused);
    long lost = r->o.qos ? lost_acked(r) : sent - r->unique;
    printf("RESULT mode=latency mqtt=%d qos=%d pubs=%d rate=%.0f seconds=%.0f sent=%ld acked=%ld refused=%ld "
           "received=%ld unique=%ld lost=%ld held=%ld unsent=%ld measured=%zu p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f "
           "max_ms=%.3f ok=%d\n",
           r->o.mqtt, r->o.qos, r->o.pubs, r->o.rate, r->o.seconds, sent, acked, refused, r->received, r->unique,
           lost, held, unsent, r->nlat, pct(r, 0.5), pct(r, 0.9), pct(r, 0.99), pct(r, 1.0),
           !r->failure && lost == 0);
    return r->failure || lost ? -1 : 0;
}

static long rss_kib(int pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    fclose(f);
    return kib;
}

/* Opens conns[from, to) (TLS ones to tls_port), IDLE_WAVE set-ups at once. */
static int idle_open(run *r, int from, int to, int tls)
{
    int next = from;
    double deadline = now_s() + READY_TIMEOUT_S + (to - from) / 100.0;
    while (now_s() < deadline) {
        int ready = count_state(r, from, next, ST_READY), dead = count_state(r, from, next, ST_DEAD);
        if (dead) {
            fprintf(stderr, "mqtt_load: %d of the idle connections failed\n", dead);
            fail(r, "idle connections failed");
            return -1;
        }
        if (ready == to - from)
            return 0;
        while (next < to && next - from - ready < IDLE_WAVE) {
            conn *c = conn_init(r, next, K_IDLE, next, IDLE_BUF, IDLE_BUF);
            conn_device(r, c, next, "idle", next);
            if (conn_open(r, c, tls ? r->o.tls_port : r->o.port, tls) != 0)
                return -1;
            next++;
        }
        pump(r, 100);
    }
    fail(r, "timed out opening idle connections");
    return -1;
}

static void settle(run *r, double s)
{
    double until = now_s() + s;
    while (now_s() < until)
        pump(r, 100);
}

static int mode_idle(run *r)
{
    int plain = r->o.conns - r->o.tls_conns, warm = IDLE_WARMUP;
    r->nconns = r->o.conns + 2 * warm;
    r->conns = calloc((size_t)r->nconns, sizeof *r->conns);
    if (!r->conns || r->o.pid <= 0 || plain < 0)
        return -1;
    /* warm-up connections sit after the measured ones */
    int wbase = r->o.conns;
    if (idle_open(r, wbase, wbase + warm, 0) != 0 ||
        (r->o.tls_conns && idle_open(r, wbase + warm, wbase + 2 * warm, 1) != 0))
        return -1;
    settle(r, SETTLE_S);
    long rss0 = rss_kib(r->o.pid);
    double t0 = now_s();
    if (idle_open(r, 0, plain, 0) != 0)
        return -1;
    settle(r, SETTLE_S);
    long rss1 = rss_kib(r->o.pid);
    if (idle_open(r, plain, r->o.conns, 1) != 0)
        return -1;
    settle(r, SETTLE_S);
    long rss2 = rss_kib(r->o.pid);
    settle(r, r->o.hold);
    int alive = count_state(r, 0, r->o.conns, ST_READY);
    double elapsed = now_s() - t0;
    for (int i = 0; i < r->nconns; i++)
        if (r->conns[i].fd >= 0)
            close(r->conns[i].fd);
    usleep((useconds_t)(SETTLE_S * 1e6));
    long rss3 = rss_kib(r->o.pid);
    int ok = alive == r->o.conns && !r->failure;
    printf("RESULT mode=idle mqtt=%d conns=%d tls_conns=%d alive=%d rss_before_kib=%ld rss_plain_kib=%ld "
           "rss_after_kib=%ld rss_closed_kib=%ld bytes_per_conn=%.0f bytes_per_plain=%.0f bytes_per_tls=%.0f "
           "elapsed_s=%.1f ok=%d\n",
           r->o.mqtt, r->o.conns, r->o.tls_conns, alive, rss0, rss1, rss2, rss3,
           (double)(rss2 - rss0) * 1024 / r->o.conns, plain ? (double)(rss1 - rss0) * 1024 / plain : 0,
           r->o.tls_conns ? (double)(rss2 - rss1) * 1024 / r->o.tls_conns : 0, elapsed, ok);
    return ok ? 0 : -1;
}

/* ---- set-up -------------------------------------------------------------- */

static int load_devices(run *r)
{
    FILE *f = fopen(r->o.devices, "r");
    if (!f)
        return -1;
    char line[512];
    int cap = 0;
    while (fgets(line, sizeof line, f)) {
        char id[64], tok[256];
        if (sscanf(line, "%63s %255s", id, tok) != 2 || !strcmp(id, "admin") || !strcmp(id, "org"))
            continue;
        if (r->ndevices == cap) {
            cap = cap ? cap * 2 : 64;
            r->ids = realloc(r->ids, (size_t)cap * sizeof *r->ids);
            r->tokens = realloc(r->tokens, (size_t)cap * sizeof *r->tokens);
            if (!r->ids || !r->tokens)
                return -1;
        }
        memcpy(r->ids[r->ndevices], id, sizeof id);
        memcpy(r->tokens[r->ndevices], tok, sizeof tok);
        r->ndevices++;
    }
    fclose(f);
    return r->ndevices ? 0 : -1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: mqtt_load --mode throughput|latency|idle --port P --devices FILE\n"
            "  [--mqtt 4|5] [--qos 0|1] [--pubs N] [--window W] [--seconds S] [--base-ms MS]\n"
            "  [--sub-user U --sub-pass P] [--rate R]            throughput / latency\n"
            "  [--conns N --tls-conns M --tls-port P --pid PID --hold S]   idle\n");
    exit(2);
}

static void parse_opts(int argc, char **argv, opts *o)
{
    static const struct option lo[] = {
        {"mode", 1, 0, 'm'},    {"port", 1, 0, 'p'},    {"tls-port", 1, 0, 'P'}, {"devices", 1, 0, 'd'},
        {"mqtt", 1, 0, 'V'},    {"qos", 1, 0, 'q'},     {"pubs", 1, 0, 'n'},     {"window", 1, 0, 'w'},
        {"seconds", 1, 0, 's'}, {"base-ms", 1, 0, 'b'}, {"sub-user", 1, 0, 'u'}, {"sub-pass", 1, 0, 'k'},
        {"rate", 1, 0, 'r'},    {"conns", 1, 0, 'c'},   {"tls-conns", 1, 0, 't'}, {"pid", 1, 0, 'i'},
        {"hold", 1, 0, 'h'},    {0, 0, 0, 0}};
    *o = (opts){.mqtt = 5, .pubs = 4, .window = 64, .seconds = 10, .hold = 2};
    o->base_ms = (long)time(NULL) * 1000 - 40L * 86400000;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'm': o->mode = optarg; break;
        case 'p': o->port = atoi(optarg); break;
        case 'P': o->tls_port = atoi(optarg); break;
        case 'd': o->devices = optarg; break;
        case 'V': o->mqtt = atoi(optarg); break;
        case 'q': o->qos = atoi(optarg); break;
        case 'n': o->pubs = atoi(optarg); break;
        case 'w': o->window = (unsigned)atoi(optarg); break;
        case 's': o->seconds = atof(optarg); break;
        case 'b': o->base_ms = atol(optarg); break;
        case 'u': o->sub_user = optarg; break;
        case 'k': o->sub_pass = optarg; break;
        case 'r': o->rate = atof(optarg); break;
        case 'c': o->conns = atoi(optarg); break;
        case 't': o->tls_conns = atoi(optarg); break;
        case 'i': o->pid = atoi(optarg); break;
        case 'h': o->hold = atof(optarg); break;
        default: usage();
        }
    }
    if (!o->mode || !o->port || !o->devices || (o->mqtt != 4 && o->mqtt != 5) || o->qos < 0 || o->qos > 1 ||
        o->pubs < 1 || o->pubs > MAX_PUBS || o->window < 1 || o->window > 65535 || o->seconds <= 0)
        usage();
}

int main(int argc, char **argv)
{
    run r = {.tfd = -1};
    parse_opts(argc, argv, &r.o);
    signal(SIGPIPE, SIG_IGN);
    if (load_devices(&r) != 0) {
        fprintf(stderr, "mqtt_load: no devices in %s\n", r.o.devices);
        return 2;
    }
    r.ep = epoll_create1(0);
    r.tls = SSL_CTX_new(TLS_client_method());
    if (r.ep < 0 || !r.tls)
        return 1;
    SSL_CTX_set_verify(r.tls, SSL_VERIFY_NONE, NULL);   /* memory and speed are measured, not trust */
    int rc;
    if (!strcmp(r.o.mode, "throughput"))
        rc = mode_throughput(&r);
    else if (!strcmp(r.o.mode, "latency"))
        rc = mode_latency(&r);
    else if (!strcmp(r.o.mode, "idle"))
        rc = r.o.conns > 0 && (!r.o.tls_conns || r.o.tls_port) ? mode_idle(&r) : (usage(), 2);
    else
        usage();
    if (r.failure)
        fprintf(stderr, "mqtt_load: %s\n", r.failure);
    return rc == 0 ? 0 : 1;
}
