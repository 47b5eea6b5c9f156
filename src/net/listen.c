/* listen.c — listener addresses and sockets. */
#include "net/listen.h"

#include "core/err.h"
#include "net/err.h"

#include <stdio.h>
#include <string.h>

/* Connections the kernel queues between two turns of the loop: a burst of a
 * thousand connects (a benchmark's start, devices after an outage) must not be
 * dropped. Linux caps it at net.core.somaxconn. */
#define NET_LISTEN_BACKLOG 1024
/* "65535": more digits than this is junk, even with leading zeros. */
#define NET_PORT_DIGITS_MAX 5
#define NET_PORT_MAX 65535
/* The longest host we parse: an IPv6 address with a scope ("fe80::1%eth0"). */
#define NET_HOST_MAX 64

static int parse_port(const char *text, int *port)
{
    size_t n = strlen(text);
    if (n == 0 || n > NET_PORT_DIGITS_MAX)
        return SS_INVAL;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9')
            return SS_INVAL;
        v = v * 10 + (text[i] - '0');
    }
    if (v > NET_PORT_MAX)
        return SS_INVAL;
    *port = v;
    return SS_OK;
}

/* Splits "HOST:PORT" or "[V6]:PORT" into host (without brackets) and port
 * text. *v6 is 1 for the bracketed form. */
static int split_host_port(const char *text, char host[NET_HOST_MAX], const char **port, int *v6)
{
    const char *end;
    *v6 = text[0] == '[';
    if (*v6) {
        text++;
        end = strchr(text, ']');
        if (!end || end[1] != ':')
            return SS_INVAL;
        *port = end + 2;
    } else {
        end = strrchr(text, ':');
        if (!end)
            return SS_INVAL;
        *port = end + 1;
    }
    size_t len = (size_t)(end - text);
    if (len == 0 || len >= NET_HOST_MAX)
        return SS_INVAL;
    memcpy(host, text, len);
    host[len] = '\0';
    return SS_OK;
}

int net_addr_parse(const char *text, net_addr *out)
{
    memset(out, 0, sizeof *out);
    if (!text)
        return SS_INVAL;
    if (strcmp(text, "off") == 0) {
        out->off = 1;
        return SS_OK;
    }
    char host[NET_HOST_MAX];
    const char *port_text;
    int v6, port;
    if (split_host_port(text, host, &port_text, &v6) || parse_port(port_text, &port))
        return SS_INVAL;
    if (v6)
        return uv_ip6_addr(host, port, (struct sockaddr_in6 *)&out->sa) ? SS_INVAL : SS_OK;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    return uv_ip4_addr(host, port, (struct sockaddr_in *)&out->sa) ? SS_INVAL : SS_OK;
}

void net_addr_format(const struct sockaddr *sa, char *out, size_t cap)
{
    char host[NET_HOST_MAX] = "?";
    int port = 0;
    if (cap == 0)
        return;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        uv_ip4_name(in, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(out, cap, "%s:%d", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(in6, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(out, cap, "[%s]:%d", host, port);
    } else {
        snprintf(out, cap, "?");
    }
}

/* The address a handle is bound to, formatted; 0 or a libuv error. */
static int bound_name(const uv_handle_t *h, char *bound, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int rc = h->type == UV_TCP
                 ? uv_tcp_getsockname((const uv_tcp_t *)h, (struct sockaddr *)&ss, &len)
                 : uv_udp_getsockname((const uv_udp_t *)h, (struct sockaddr *)&ss, &len);
    if (rc == 0 && bound && cap)
        net_addr_format((const struct sockaddr *)&ss, bound, cap);
    return rc;
}

int net_tcp_listen(uv_loop_t *loop, uv_tcp_t *tcp, const net_addr *addr, uv_connection_cb cb,
                   char *bound, size_t cap)
{
    if (addr->off)
        return SS_INVAL;
    int rc = uv_tcp_init(loop, tcp);
    if (rc)
        return net_err_from_uv(rc);
    /* libuv defers a bind error (EADDRINUSE) to uv_listen. */
    rc = uv_tcp_bind(tcp, (const struct sockaddr *)&addr->sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)tcp, NET_LISTEN_BACKLOG, cb);
    if (rc == 0)
        rc = bound_name((const uv_handle_t *)tcp, bound, cap);
    if (rc)
        uv_close((uv_handle_t *)tcp, NULL);
    return net_err_from_uv(rc);
}

int net_udp_bind(uv_loop_t *loop, uv_udp_t *udp, const net_addr *addr, char *bound, size_t cap)
{
    if (addr->off)
        return SS_INVAL;
    int rc = uv_udp_init(loop, udp);
    if (rc)
        return net_err_from_uv(rc);
    rc = uv_udp_bind(udp, (const struct sockaddr *)&addr->sa, 0);
    if (rc == 0)
        rc = bound_name((const uv_handle_t *)udp, bound, cap);
    if (rc)
        uv_close((uv_handle_t *)udp, NULL);
    return net_err_from_uv(rc);
}
