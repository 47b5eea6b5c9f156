/* tcp_client.c — benchmark 5's client: streams line-format readings over N
 * TCP ingest connections (docs/protocols.md) and reports readings/s stored.
 *
 *   cc -O2 -o /tmp/.../tcp_client bench/tcp_client.c      (run.sh does this)
 *   tcp_client PORT TOKEN BASE_MS CONNS LINES TIME_LIMIT_S
 *
 * Every connection sends `AUTH TOKEN`, waits for `OK`, then streams LINES
 * lines `temp=V <ts>` (reading k of connection c has ts BASE_MS + c*LINES + k:
 * no two lines of the run share a ts) in large writes, reading the server's
 * `ACK n` answers as they come. All lines are built before the clock starts,
 * so the client's cost is a write per 64 KiB. When its lines are sent (or
 * TIME_LIMIT_S is reached: it then finishes the line it is in), a connection
 * shuts down its sending side and reads until the server closes; the clock
 * stops at the last ACK that covers every line sent on every connection.
 * readings/s = lines acknowledged / that time.
 *
 * Bounded: LINES per connection, sending stops at TIME_LIMIT_S, and the whole
 * run (including waiting for the last ACKs) ends at TIME_LIMIT_S + 60 s.
 * Prints one line `RESULT key=value ...`; exit 1 when something went wrong.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define WRITE_CHUNK 65536      /* bytes per send(): the client's cost stays small */
#define DRAIN_GRACE_S 60.0     /* after the time limit: waiting for the last ACKs */
#define AUTH_TIMEOUT_MS 10000

typedef struct conn {
    int fd;
    char *buf;          /* every line of this connection */
    size_t len, off;    /* bytes built, bytes sent */
    long lines_sent;    /* lines wholly sent */
    long acked;         /* latest ACK n */
    long acks;          /* ACK messages received */
    long errs;          /* ERR lines received */
    int shut, eof;
    char in[256];
    size_t in_len;
    double done_at;     /* when the ACK covering every sent line arrived */
} conn;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *build_lines(long first_ts, long n, size_t *len)
{
    size_t cap = (size_t)n * 40 + 1;
    char *b = malloc(cap);
    if (!b)
        return NULL;
    size_t off = 0;
    for (long k = 0; k < n; k++) {
        long v = (first_ts + k) % 400;  /* 0.0 .. 39.9, like batch_client.py */
        off += (size_t)snprintf(b + off, cap - off, "temp=%ld.%ld %ld\n", v / 10, v % 10, first_ts + k);
    }
    *len = off;
    return b;
}

static int dial(int port, const char *token)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        return -1;
    }
    char line[512];
    int n = snprintf(line, sizeof line, "AUTH %s\n", token);
    if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n)
        return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    size_t got = 0;
    while (got < 3) {
        if (poll(&p, 1, AUTH_TIMEOUT_MS) != 1)
            return -1;
        ssize_t r = recv(fd, line + got, 3 - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    if (memcmp(line, "OK\n", 3) != 0) {
        fprintf(stderr, "tcp_client: AUTH answered %.3s\n", line);
        return -1;
    }
    return fd;
}

/* Reads what the server sent; returns 0, or -1 on EOF / error. */
static int read_answers(conn *c, double now)
{
    for (;;) {
        ssize_t r = recv(c->fd, c->in + c->in_len, sizeof c->in - 1 - c->in_len, MSG_DONTWAIT);
        if (r < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        if (r == 0)
            return -1;
        c->in_len += (size_t)r;
        char *nl;
        while ((nl = memchr(c->in, '\n', c->in_len)) != NULL) {
            *nl = '\0';
            if (strncmp(c->in, "ACK ", 4) == 0) {
                c->acked = atol(c->in + 4);
                c->acks++;
            } else if (strncmp(c->in, "ERR", 3) == 0) {
                if (c->errs++ < 3)
                    fprintf(stderr, "tcp_client: %s\n", c->in);
            }
            size_t used = (size_t)(nl - c->in) + 1;
            memmove(c->in, c->in + used, c->in_len - used);
            c->in_len -= used;
        }
        if (c->shut && c->acked == c->lines_sent && c->done_at == 0)
            c->done_at = now;
        if (c->in_len == sizeof c->in - 1)
            return -1;  /* an answer line longer than any the protocol has */
    }
}

static void send_some(conn *c, int past_deadline)
{
    size_t end = c->off + WRITE_CHUNK < c->len ? c->off + WRITE_CHUNK : c->len;
    if (past_deadline) {
        /* stop at the end of the line being sent */
        char *nl = c->off > 0 && c->buf[c->off - 1] == '\n' ? c->buf + c->off - 1
                                                            : memchr(c->buf + c->off, '\n', c->len - c->off);
        end = (size_t)(nl - c->buf) + 1;
    }
    if (end > c->off) {
        ssize_t n = send(c->fd, c->buf + c->off, end - c->off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            for (size_t i = c->off; i < c->off + (size_t)n; i++)
                c->lines_sent += c->buf[i] == '\n';
            c->off += (size_t)n;
        }
    }
    if (c->off == c->len || (past_deadline && c->buf[c->off - 1] == '\n')) {
        shutdown(c->fd, SHUT_WR);
        c->shut = 1;
    }
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s PORT TOKEN BASE_MS CONNS LINES TIME_LIMIT_S\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    const char *token = argv[2];
    long base = atol(argv[3]);
    int nconns = atoi(argv[4]);
    long lines = atol(argv[5]);
    double limit = atof(argv[6]);
    if (nconns < 1 || nconns > MAX_CONNS || lines < 1)
        return 2;
    static conn cs[MAX_CONNS];
    for (int i = 0; i < nconns; i++) {
        cs[i].buf = build_lines(base + (long)i * lines, lines, &cs[i].len);
        if (!cs[i].buf)
            return 1;
    }
    for (int i = 0; i < nconns; i++) {
        cs[i].fd = dial(port, token);
        if (cs[i].fd < 0) {
            fprintf(stderr, "tcp_client: connection %d failed to authenticate\n", i);
            return 1;
        }
    }
    double t0 = now_s(), deadline = t0 + limit, hard = deadline + DRAIN_GRACE_S;
    struct pollfd ps[MAX_CONNS];
    int open = nconns, failed = 0;
    while (open > 0 && now_s() < hard) {
        for (int i = 0; i < nconns; i++) {
            ps[i].fd = cs[i].eof ? -1 : cs[i].fd;
            ps[i].events = POLLIN | (cs[i].shut ? 0 : POLLOUT);
            ps[i].revents = 0;
        }
        if (poll(ps, (nfds_t)nconns, 1000) < 0 && errno != EINTR)
            break;
        double now = now_s();
        for (int i = 0; i < nconns; i++) {
            conn *c = &cs[i];
            if (c->eof)
                continue;
            if (ps[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (read_answers(c, now) != 0) {
                    c->eof = 1;
                    open--;
                    if (!c->shut) {
                        failed = 1;
                        fprintf(stderr, "tcp_client: connection %d closed by the server while sending\n", i);
                    }
                    continue;
                }
            }
            if (!c->shut && (ps[i].revents & POLLOUT))
                send_some(c, now >= deadline);
        }
    }
    long sent = 0, acked = 0, acks = 0, errs = 0;
    double last = t0;
    double bytes_per_line = cs[0].lines_sent ? (double)cs[0].off / (double)cs[0].lines_sent : 0.0;
    int complete = 1;
    for (int i = 0; i < nconns; i++) {
        sent += cs[i].lines_sent;
        acked += cs[i].acked;
        acks += cs[i].acks;
        errs += cs[i].errs;
        if (cs[i].done_at == 0)
            complete = 0;
        else if (cs[i].done_at > last)
            last = cs[i].done_at;
        close(cs[i].fd);
        free(cs[i].buf);
    }
    double elapsed = complete ? last - t0 : now_s() - t0;
    printf("RESULT conns=%d lines=%ld acked=%ld ack_messages=%ld err_lines=%ld complete=%d "
           "elapsed_s=%.3f readings_per_s=%.0f bytes_per_line=%.1f\n",
           nconns, sent, acked, acks, errs, complete && !failed, elapsed,
           elapsed > 0 ? (double)acked / elapsed : 0.0,
           bytes_per_line);
    return complete && !failed && acked == sent ? 0 : 1;
}
