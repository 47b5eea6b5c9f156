#!/usr/bin/env python3
"""tcp_devices.py — benchmark 6: many devices, each holding a TCP ingest
connection (docs/protocols.md) and sending one reading a second.

  tcp_devices.py --tcp-port P --http-port H --admin TOKEN --devices FILE --pid SERVER_PID

FILE has one `<id> <token>` line per device (tools.py ss-setup's output). One
process, non-blocking sockets and a selector: every device connects and sends
`AUTH <token>`, and once all have their `OK`, device i sends its k-th line
`temp=V <ts>` at t0 + k + i/N seconds (the load spread evenly over each
second) for --seconds seconds. Every `ACK n` is matched to the lines it covers
(latency = ACK arrival - line sent). At the end: ACK totals == lines sent per
connection, and the readings each device holds (GET .../channels counts) ==
its lines. VmRSS of the server before connecting, with all connected (before
any reading) and after the run; per connection = (connected - before) / N.

Bounded: connecting within --connect-budget s, --seconds of sending, then at
most DRAIN_S for the last ACKs. Prints `RESULT key=value ...`.
"""
import argparse
import errno
import http.client
import json
import os
import selectors
import socket
import sys
import time

DRAIN_S = 10.0
SETTLE_S = 1.0
WAVE = 250  # connects in flight at once (listen backlog)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Dev:
    __slots__ = ("id", "token", "sock", "state", "inbuf", "sent", "sent_at", "acked", "acks", "errs")

    def __init__(self, dev_id, token):
        self.id, self.token = dev_id, token
        self.sock, self.state, self.inbuf = None, "connecting", b""
        self.sent, self.sent_at, self.acked, self.acks, self.errs = 0, [], 0, 0, 0


def connect_all(devs, port, budget):
    """Connects and authenticates every device, WAVE at a time."""
    sel = selectors.DefaultSelector()
    deadline = time.monotonic() + budget
    todo, pending = list(devs), 0
    while todo or pending:
        while todo and pending < WAVE:
            d = todo.pop()
            d.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            d.sock.setblocking(False)
            rc = d.sock.connect_ex(("127.0.0.1", port))
            if rc not in (0, errno.EINPROGRESS):
                raise OSError(rc, os.strerror(rc))
            sel.register(d.sock, selectors.EVENT_WRITE, d)
            pending += 1
        if time.monotonic() > deadline:
            raise TimeoutError(f"{pending + len(todo)} devices not connected in {budget}s")
        for key, _ in sel.select(timeout=1.0):
            d = key.data
            if d.state == "connecting":
                err = d.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
                d.sock.send(f"AUTH {d.token}\n".encode())
                d.state = "auth"
                sel.modify(d.sock, selectors.EVENT_READ, d)
                continue
            d.inbuf += d.sock.recv(64)
            if d.inbuf.endswith(b"\n"):
                if d.inbuf != b"OK\n":
                    raise ConnectionError(f"AUTH answered {d.inbuf!r}")
                d.inbuf, d.state = b"", "ready"
                sel.unregister(d.sock)
                pending -= 1
    sel.close()


def on_answer(d, now, lat):
    data = d.sock.recv(4096)
    if not data:
        raise ConnectionError(f"device {d.id}: server closed the connection")
    d.inbuf += data
    while b"\n" in d.inbuf:
        line, d.inbuf = d.inbuf.split(b"\n", 1)
        if line.startswith(b"ACK "):
            n = int(line[4:])
            for k in range(d.acked, min(n, d.sent)):
                lat.append(now - d.sent_at[k])
            d.acked, d.acks = max(d.acked, n), d.acks + 1
        elif line.startswith(b"ERR"):
            d.errs += 1
            print(f"device {d.id}: {line.decode(errors='replace')}", file=sys.stderr)


def stream(devs, seconds):
    """Device i sends its k-th line at t0 + k + i/N; returns ACK latencies."""
    sel = selectors.DefaultSelector()
    for d in devs:
        sel.register(d.sock, selectors.EVENT_READ, d)
    n, lat = len(devs), []
    total = n * seconds
    t0 = time.monotonic() + 0.1
    idx = 0
    drain_end = t0 + seconds + DRAIN_S
    while time.monotonic() < drain_end:
        now = time.monotonic()
        while idx < total and now >= t0 + idx // n + (idx % n) / n:
            d = devs[idx % n]
            ts = int(time.time() * 1000)
            d.sock.send(f"temp={(ts % 400) / 10:.1f} {ts}\n".encode())  # ~25 B: fits any send buffer
            d.sent_at.append(time.monotonic())
            d.sent += 1
            idx += 1
        if idx >= total and all(d.acked >= d.sent for d in devs):
            break
        wait = max(0.0, min(0.05, t0 + idx // n + (idx % n) / n - time.monotonic())) if idx < total else 0.05
        for key, _ in sel.select(timeout=wait):
            on_answer(key.data, time.monotonic(), lat)
    sel.close()
    return lat


def stored_counts(port, admin, devs):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    short = 0
    for d in devs:
        c.request("GET", f"/api/v1/devices/{d.id}/channels", headers={"Authorization": "Bearer " + admin})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise ConnectionError(f"channels of {d.id}: HTTP {r.status}")
        stored = sum(ch["count"] for ch in json.loads(body))
        short += stored != d.sent
    c.close()
    return short


def pct(xs, p):
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tcp-port", type=int, required=True)
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--admin", required=True)
    p.add_argument("--devices", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--connect-budget", type=float, default=60)
    a = p.parse_args()
    with open(a.devices) as f:
        devs = [Dev(*line.split()) for line in f if line.strip() and line.split()[0] not in ("admin", "org")]
    n = len(devs)
    before = rss_kib(a.pid)
    t = time.monotonic()
    connect_all(devs, a.tcp_port, a.connect_budget)
    connect_s = time.monotonic() - t
    time.sleep(SETTLE_S)
    connected = rss_kib(a.pid)
    lat = stream(devs, a.seconds)
    after = rss_kib(a.pid)
    sent = sum(d.sent for d in devs)
    acked = sum(d.acked for d in devs)
    acks = sum(d.acks for d in devs)
    errs = sum(d.errs for d in devs)
    for d in devs:
        d.sock.close()
    time.sleep(0.5)
    short = stored_counts(a.http_port, a.admin, devs)
    ok = acked == sent and errs == 0 and short == 0 and sent == n * a.seconds
    print(f"RESULT ok={int(ok)} devices={n} seconds={a.seconds} lines={sent} acked={acked} ack_messages={acks} "
          f"err_lines={errs} devices_stored_mismatch={short} connect_s={connect_s:.1f} "
          f"rss_before_kib={before} rss_connected_kib={connected} rss_after_kib={after} "
          f"bytes_per_conn={(connected - before) * 1024 / n:.0f} "
          f"bytes_per_conn_after={(after - before) * 1024 / n:.0f} "
          f"ack_p50_ms={pct(lat, 50) * 1e3:.2f} ack_p99_ms={pct(lat, 99) * 1e3:.2f} "
          f"ack_max_ms={max(lat, default=0) * 1e3:.2f}")
    if not ok:
        sys.exit("tcp_devices: not every reading was acknowledged and stored")


if __name__ == "__main__":
    main()
