/* listen.h — listener addresses and sockets.
 *
 * An address is "HOST:PORT" (HOST an IPv4 address, "[v6]" or "localhost"),
 * or "off". Port 0 picks a free port; the bound address is reported back. */
#ifndef SS_NET_LISTEN_H
#define SS_NET_LISTEN_H

#include <stddef.h>
#include <uv.h>

typedef struct net_addr {
    int off;                         /* 1 for "off" */
    struct sockaddr_storage sa;      /* valid when !off */
} net_addr;

/* Parses "HOST:PORT" or "off". 0 or SS_INVAL. */
int net_addr_parse(const char *text, net_addr *out);

/* Formats an address as "127.0.0.1:8080" or "[::1]:8080". */
void net_addr_format(const struct sockaddr *sa, char *out, size_t cap);

/* Binds and listens a TCP handle (caller storage, initialised here) on addr.
 * OUT bound: the address actually bound ("HOST:PORT", cap bytes).
 * 0, SS_INVAL ("off"), SS_IN_USE, SS_UNAVAILABLE, SS_FORBIDDEN (a port
 * below 1024 unprivileged), SS_NOMEM or SS_IO; on error the handle is
 * closed by this function (the caller must still not free it before the
 * loop has run its close callbacks, it uses no close_cb). */
int net_tcp_listen(uv_loop_t *loop, uv_tcp_t *tcp, const net_addr *addr, uv_connection_cb cb,
                   char *bound, size_t cap);

/* Same for a UDP handle (bound, not receiving yet). */
int net_udp_bind(uv_loop_t *loop, uv_udp_t *udp, const net_addr *addr, char *bound, size_t cap);

#endif
