#!/usr/bin/env python3
"""wire_bytes.py — benchmark 7: bytes on the wire per reading, per protocol,
for a device sending one reading of two channels (`temp=V,rh=W <ts>`, or
without the ts with --server-time).

  wire_bytes.py --http-port H --https-port S --tcp-port T --udp-port U \
                --admin TOKEN --devices FILE --readings N

Scenarios, each on its own device (one line of FILE, `<id> <token>`):
  https-keepalive  one TLS connection, N requests `POST /api/v1/data`
  https-fresh      a new TCP + TLS connection per reading (a sleeping cellular
                   device that reconnects), N/4 of them
  https-resumed    the same, resuming the TLS session (ticket) of the last one
  http-keepalive   plaintext HTTP/1.1, one connection, N requests
  tcp              the TCP ingest socket: AUTH once, then one line per reading,
                   each answered by `ACK n`
  udp              one datagram `<token>\\n<line>\\n` per reading, no answer

Bytes are the kernel's own count on the client socket (TCP_INFO:
tcpi_bytes_acked + tcpi_bytes_received, i.e. TCP payload both ways, TLS
records included) and segments likewise (tcpi_segs_out + tcpi_segs_in: SYN,
pure ACKs and FIN included). Each phase is measured apart: setup (connect,
TLS handshake, AUTH), the readings, teardown (close_notify, FIN). Between
readings the client pauses PAUSE_S, longer than the kernel's delayed-ACK
timer, so the server's answer is acknowledged by its own segment as on a real
link where the next reading comes 10 s later. Afterwards the server's own
accounting (session records' bytes_in + bytes_out per device; usage bytes for
udp) is read as a cross-check. Prints one `RESULT` line per scenario.
"""
import argparse
import json
import socket
import ssl
import struct
import sys
import time
import urllib.request

PAUSE_S = 0.05           # > Linux's 40 ms minimum delayed ACK
TCP_INFO_LEN = 232
IO_TIMEOUT_S = 10
METER_WAIT_S = 2.5       # the server writes session and usage counts every 1 s (METER_FLUSH_MS)


def tcp_counts(sock):
    """(payload bytes both ways, segments both ways) of a TCP socket so far.
    struct tcp_info: tcpi_bytes_acked @120, tcpi_bytes_received @128 (u64),
    tcpi_segs_out @136, tcpi_segs_in @140 (u32)."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)
    acked, received = struct.unpack_from("<QQ", raw, 120)
    segs_out, segs_in = struct.unpack_from("<II", raw, 136)
    return acked + received, segs_out + segs_in


def diff(a, b):
    return b[0] - a[0], b[1] - a[1]


SERVER_TIME = False      # --server-time: lines without a ts, the server's clock decides


def line(ts):
    values = f"temp={(ts % 400) / 10:.1f},rh={(ts % 97) / 2:.1f}"
    return values if SERVER_TIME else f"{values} {ts}"


def http_request(token, body):
    # The least a device must send: no Content-Type (line format is the default).
    return (f"POST /api/v1/data HTTP/1.1\r\nHost: sensorspace\r\nX-Auth-Token: {token}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def read_http_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for h in head.split(b"\r\n")[1:]:
        k, _, v = h.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        body += s.recv(4096)
    status = int(head.split(b" ", 2)[1])
    if status // 100 != 2:
        raise ConnectionError(f"HTTP {status}: {body[:100]!r}")


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the bench server's self-signed certificate
    return ctx


def close_counted(s, is_tls):
    """Tears the connection down (close_notify for TLS, then FIN both ways)
    and returns the socket's final counts."""
    raw = s
    if is_tls:
        try:
            raw = s.unwrap()  # close_notify; waits for the server's
        except (ssl.SSLError, OSError):
            raw = s
    try:
        raw.shutdown(socket.SHUT_WR)
        while raw.recv(4096):
            pass
    except OSError:
        pass
    time.sleep(PAUSE_S)  # the last ACK of our FIN's answer
    counts = tcp_counts(raw)
    raw.close()
    return counts


def connect(port, ctx=None, session=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
    c0 = tcp_counts(s)
    if ctx:
        s = ctx.wrap_socket(s, session=session)
    return s, c0


def keepalive(port, token, n, ts, ctx=None):
    s, c0 = connect(port, ctx)
    time.sleep(PAUSE_S)
    c1 = tcp_counts(s)
    for i in range(n):
        s.sendall(http_request(token, line(ts + i)))
        read_http_response(s)
        time.sleep(PAUSE_S)
    c2 = tcp_counts(s)
    c3 = close_counted(s, ctx is not None)
    return {"setup": diff((0, 0), c1), "readings": diff(c1, c2), "end": diff(c2, c3), "n": n, "conns": 1}


def fresh(port, token, n, ts, ctx, resume):
    tot, session, everything, resumed = (0, 0), None, (0, 0), 0
    setup = (0, 0)
    for i in range(n):
        s, _ = connect(port, ctx, session if resume else None)
        c1 = tcp_counts(s)
        s.sendall(http_request(token, line(ts + i)))
        read_http_response(s)
        time.sleep(PAUSE_S)
        session = s.session
        resumed += s.session_reused
        c3 = close_counted(s, True)
        everything = (everything[0] + c3[0], everything[1] + c3[1])
        if i > 0 or not resume:  # the first resumed-mode connection is a full handshake
            tot = (tot[0] + c3[0], tot[1] + c3[1])
            setup = (setup[0] + c1[0], setup[1] + c1[1])
    m = n - 1 if resume else n
    return {"setup": (0, 0), "readings": tot, "end": (0, 0), "n": m, "conns": m, "sent": n,
            "all": everything, "resumed": resumed, "handshake": (setup[0] // m, setup[1] // m)}


def tcp_ingest(port, token, n, ts):
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
    s.sendall(f"AUTH {token}\n".encode())
    if s.recv(16) != b"OK\n":
        raise ConnectionError("AUTH refused")
    time.sleep(PAUSE_S)
    c1 = tcp_counts(s)
    for i in range(n):
        s.sendall((line(ts + i) + "\n").encode())
        got = b""
        while not got.endswith(b"\n"):
            got += s.recv(64)
        if got != f"ACK {i + 1}\n".encode():
            raise ConnectionError(f"answer {got!r}, expected ACK {i + 1}")
        time.sleep(PAUSE_S)
    c2 = tcp_counts(s)
    c3 = close_counted(s, False)
    return {"setup": c1, "readings": diff(c1, c2), "end": diff(c2, c3), "n": n, "conns": 1}


def udp(port, token, n, ts):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    total = 0
    for i in range(n):
        d = f"{token}\n{line(ts + i)}\n".encode()
        total += s.sendto(d, ("127.0.0.1", port))
        time.sleep(0.002)
    s.close()
    return {"setup": (0, 0), "readings": (total, n), "end": (0, 0), "n": n, "conns": 0}


def api(port, admin, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1{path}",
                                 headers={"Authorization": "Bearer " + admin})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def server_bytes(a, org, dev_id, protocol):
    """The server's count of this device's bytes (in + out)."""
    if protocol == "udp":
        u = api(a.http_port, a.admin, f"/orgs/{org}/usage")
        return sum(b["bytes_in"] + b["bytes_out"] for b in u["usage"] if b["protocol"] == "udp")
    rows = api(a.http_port, a.admin, f"/orgs/{org}/sessions?kind=device")
    rows = rows.get("sessions", rows) if isinstance(rows, dict) else rows
    return sum(r["bytes_in"] + r["bytes_out"] for r in rows if r["principal_id"] == dev_id)


def stored(a, dev_id):
    return sum(c["count"] for c in api(a.http_port, a.admin, f"/devices/{dev_id}/channels"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for k in ("http-port", "https-port", "tcp-port", "udp-port"):
        p.add_argument("--" + k, type=int, required=True)
    p.add_argument("--admin", required=True)
    p.add_argument("--devices", required=True)
    p.add_argument("--readings", type=int, default=40)
    p.add_argument("--server-time", action="store_true",
                   help="send readings without a ts (server time), on every protocol alike")
    a = p.parse_args()
    global SERVER_TIME
    SERVER_TIME = a.server_time
    with open(a.devices) as f:
        rows = [ln.split() for ln in f if ln.strip()]
    org = next(r[1] for r in rows if r[0] == "org")
    devs = [r for r in rows if r[0] not in ("admin", "org")]
    n, ts = a.readings, int(time.time() * 1000) - 3_600_000
    ctx = tls_context()
    scen = [
        ("https-keepalive", "https", lambda t: keepalive(a.https_port, t, n, ts, ctx)),
        ("https-fresh", "https", lambda t: fresh(a.https_port, t, max(2, n // 4), ts, ctx, False)),
        ("https-resumed", "https", lambda t: fresh(a.https_port, t, max(2, n // 4) + 1, ts, ctx, True)),
        ("http-keepalive", "http", lambda t: keepalive(a.http_port, t, n, ts)),
        ("tcp", "tcp", lambda t: tcp_ingest(a.tcp_port, t, n, ts)),
        ("udp", "udp", lambda t: udp(a.udp_port, t, n, ts)),
    ]
    if len(devs) < len(scen):
        sys.exit(f"wire_bytes: needs {len(scen)} devices")
    done = []
    for (name, proto, run), (dev_id, token) in zip(scen, devs):
        done.append((name, proto, dev_id, run(token)))
    time.sleep(METER_WAIT_S)
    for name, proto, dev_id, r in done:
        total, segs = r.get("all") or tuple(sum(r[k][j] for k in ("setup", "readings", "end")) for j in (0, 1))
        hs = r.get("handshake", (0, 0))
        print(f"RESULT scenario={name} protocol={proto} readings={r['n']} sent={r.get('sent', r['n'])} "
              f"connections={r['conns']} "
              f"setup_bytes={r['setup'][0]} setup_segs={r['setup'][1]} "
              f"reading_bytes={r['readings'][0] / r['n']:.1f} reading_segs={r['readings'][1] / r['n']:.2f} "
              f"end_bytes={r['end'][0]} end_segs={r['end'][1]} handshake_bytes={hs[0]} handshake_segs={hs[1]} "
              f"total_bytes={total} total_segs={segs} server_bytes={server_bytes(a, org, dev_id, proto)} "
              f"stored={stored(a, dev_id)} channels=2 tls_resumed={r.get('resumed', '-')} "
              f"ts={'server' if SERVER_TIME else 'device'}")

if __name__ == "__main__":
    main()
