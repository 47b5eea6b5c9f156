#!/usr/bin/env python3
"""idle_conns.py — memory per idle HTTP keep-alive connection of a server.

Opens --conns connections to 127.0.0.1:--port, sends one `GET --path` on each
and reads the whole answer, then leaves them all open and idle, and reads
VmRSS of --pid (one or more pids, summed: nginx's worker) from /proc before
and after (and once more after closing them all: how much the server gives
back). Prints `RESULT key=value ...`.

With --tls every connection first completes a TLS handshake (whatever version
the server picks, no client certificate, no session resumption), so the
figure is what an idle HTTPS device costs: the TLS session established, one
request answered, the connection kept alive. The certificate is not checked:
only memory is measured.

Bounded: connects in waves of --wave (the listen backlog is 1024), every wait
has a deadline, and the whole measurement must end within --budget seconds of
the first request, well inside the server's 75 s keep-alive idle timeout,
else it reports failure instead of a number.
"""
import argparse
import errno
import os
import selectors
import socket
import ssl
import sys
import time

SETTLE_S = 1.0  # let the server finish its per-connection bookkeeping
# Connections opened (and kept) before the first reading: what the server
# sets up once, on its first request or handshake (OpenSSL loads its
# providers and error strings lazily), is not a per-connection cost.
WARMUP_CONNS = 20


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def open_fds(pids):
    return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def step(sel, s, st, request, tls):
    """Moves one connection on: connected -> (TLS handshake) -> request sent
    -> answer read. Returns the socket object now in use (TLS wraps it) and
    whether its answer is complete."""
    if st["state"] == "connect":
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        if tls:
            sel.unregister(s)
            s = tls.wrap_socket(s, do_handshake_on_connect=False)
            sel.register(s, selectors.EVENT_WRITE, st)
            st["state"] = "handshake"
        else:
            st["state"] = "send"
    if st["state"] == "handshake":
        try:
            s.do_handshake()
        except ssl.SSLWantReadError:
            sel.modify(s, selectors.EVENT_READ, st)
            return s, False
        except ssl.SSLWantWriteError:
            sel.modify(s, selectors.EVENT_WRITE, st)
            return s, False
        st["state"] = "send"
    if st["state"] == "send":
        s.send(request)  # tiny: fits the empty send buffer at once
        st["state"] = "read"
        sel.modify(s, selectors.EVENT_READ, st)
        return s, False
    try:
        chunk = s.recv(4096)
    except ssl.SSLWantReadError:  # a TLS 1.3 session ticket, no data yet
        return s, False
    if not chunk:
        raise ConnectionError("server closed a connection before answering")
    st["got"] += chunk
    if not answered(st["got"]):
        return s, False
    if not st["got"].startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"unexpected answer {st['got'][:60]!r}")
    return s, True


def connect_wave(port, n, request, deadline, tls=None):
    """Opens n sockets (TLS ones when tls is an SSLContext), sends request on
    each and reads each full answer. Returns the sockets (all answered) or
    raises."""
    sel = selectors.DefaultSelector()
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex(("127.0.0.1", port))
        if rc not in (0, errno.EINPROGRESS):
            raise OSError(rc, os.strerror(rc))
        sel.register(s, selectors.EVENT_WRITE, {"state": "connect", "got": b""})
    socks = []
    while len(socks) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{n - len(socks)} of {n} connections not answered in time")
        for key, _ in sel.select(timeout=1.0):
            s, done = step(sel, key.fileobj, key.data, request, tls)
            if done:
                sel.unregister(s)
                socks.append(s)
    sel.close()
    return socks


def answered(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v.strip())
    return True


def still_open(socks):
    """Counts sockets the server has not closed (no EOF pending). A TLS
    socket is peeked at below TLS: a close_notify or FIN both show."""
    alive = 0
    for s in socks:
        raw = socket.socket(fileno=os.dup(s.fileno()))
        try:
            alive += raw.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
        finally:
            raw.close()
    return alive


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, action="append", required=True)
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--wave", type=int, default=500)
    p.add_argument("--path", default="/healthz")
    p.add_argument("--budget", type=float, default=60.0)
    p.add_argument("--tls", action="store_true", help="HTTPS: a TLS session on every connection")
    a = p.parse_args()
    request = f"GET {a.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    tls = tls_context() if a.tls else None

    t0 = time.monotonic()
    deadline = t0 + a.budget
    warm = connect_wave(a.port, WARMUP_CONNS, request, deadline, tls)
    time.sleep(SETTLE_S)
    before = rss_kib(a.pid)
    fds_before = open_fds(a.pid)
    socks = []
    while len(socks) < a.conns:
        socks += connect_wave(a.port, min(a.wave, a.conns - len(socks)), request, deadline, tls)
    time.sleep(SETTLE_S)
    after = rss_kib(a.pid)
    fds_after = open_fds(a.pid)
    alive = still_open(socks)
    elapsed = time.monotonic() - t0
    ok = alive == a.conns and elapsed < a.budget
    for s in socks + warm:
        s.close()
    time.sleep(SETTLE_S)
    closed = rss_kib(a.pid)
    per_conn = (after - before) * 1024 / a.conns
    print(f"RESULT ok={int(ok)} proto={'https' if tls else 'http'} conns={a.conns} alive={alive} "
          f"rss_before_kib={before} "
          f"rss_after_kib={after} rss_closed_kib={closed} bytes_per_conn={per_conn:.0f} "
          f"fds_before={fds_before} "
          f"fds_after={fds_after} elapsed_s={elapsed:.1f}")
    if not ok:
        sys.exit(f"idle_conns: only {alive}/{a.conns} connections open after {elapsed:.1f}s")


if __name__ == "__main__":
    main()
