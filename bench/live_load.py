"""bench/live_load.py — benchmark 10: live stream latency, commit to
Server-Sent Event, with N SSE clients connected and R readings/s arriving.

Readers: `--procs` processes, each holding its share of the `--clients`
streams (GET /api/v1/orgs/{org}/live over HTTP/1.0, so the body is the raw
event stream), read with selectors. The sender posts `--rate` readings a
second to /api/v1/data in requests of `--per-request` readings, each
reading at a ts of its own (one event each) whose value is when it was sent
(ms since the run began). A reader takes an event's latency as its arrival time
minus that value; the sender also notes when each request was
acknowledged (after the commit). The commit happens between the send and
the acknowledgement, and the server hands the event to the streams before
it acknowledges, so the latency commit -> event lies between
`ack_event_*` (event arrival - acknowledgement arrival; negative when the
event came first) and `p50/p99` (event arrival - send); `commit_*` is the
request's own round trip (send -> acknowledgement).

Prints one line of key=value tokens for run.sh's records."""
import argparse
import array
import http.client
import json
import multiprocessing
import re
import selectors
import socket
import threading
import time

VALUE = re.compile(rb'"v":([0-9.]+)')


def open_stream(port, token, org):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall((f"GET /api/v1/orgs/{org}/live HTTP/1.0\r\nHost: bench\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("stream refused: %r" % head)
        head += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("stream refused: %r" % head[:200])
    s.setblocking(False)
    return s, head.split(b"\r\n\r\n", 1)[1]


def reader(port, token, org, n, seconds, base, ready, out):
    sel = selectors.DefaultSelector()
    bufs = {}
    for _ in range(n):
        s, rest = open_stream(port, token, org)
        bufs[s] = rest
        sel.register(s, selectors.EVENT_READ)
    ready.put(n)
    sent_at, arrived, counts = array.array("d"), array.array("d"), {s: 0 for s in bufs}
    end = time.time() + seconds
    while time.time() < end:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            data = s.recv(1 << 18)
            now = time.time() * 1000 - base
            if not data:
                sel.unregister(s)
                continue
            buf = bufs[s] + data
            cut = buf.rfind(b"\n\n") + 2
            done, bufs[s] = buf[:cut], buf[cut:]
            for m in VALUE.finditer(done):
                sent_at.append(float(m.group(1)))
                arrived.append(now)
                counts[s] += 1
    for s in bufs:
        s.close()
    out.put((sent_at, arrived, sorted(counts.values())))


def sender(port, token, rate, per_request, seconds, base, first_ts, acks):
    """Posts rate readings/s; acks[t] = when the request sent at t was acknowledged."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    interval = per_request / rate
    sent, k, start = 0, 0, time.time()
    while time.time() - start < seconds:
        pause = start + k * interval - time.time()
        if pause > 0:
            time.sleep(pause)
        t = round(time.time() * 1000 - base, 3)
        body = json.dumps([{"ts": first_ts + sent + i, "values": {"v": t}} for i in range(per_request)])
        conn.request("POST", "/api/v1/data", body, {"X-Auth-Token": token, "Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError("POST %d" % r.status)
        acks[t] = time.time() * 1000 - base
        sent += per_request
        k += 1
    return sent


def send_all(a, base):
    """--senders connections, each its share of the rate and a ts range of its own."""
    acks, counts, threads = {}, [], []
    ts0 = int(time.time() * 1000) - 30 * 86_400_000  # a day of ts per sender, all past
    for i in range(a.senders):
        def run(i=i):
            counts.append(sender(a.port, a.device_token, a.rate / a.senders, a.per_request, a.seconds,
                                 base, ts0 + i * 86_400_000, acks))
        threads.append(threading.Thread(target=run))
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), acks, time.time() - start


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("port", type=int)
    p.add_argument("--token", required=True, help="a session or data:read key of the org")
    p.add_argument("--org", required=True)
    p.add_argument("--device-token", required=True)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--per-request", type=int, default=10)
    p.add_argument("--senders", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10)
    a = p.parse_args()
    ready, out = multiprocessing.Queue(), multiprocessing.Queue()
    base = time.time() * 1000  # values are ms since: small numbers, written exactly
    shares = [a.clients // a.procs + (i < a.clients % a.procs) for i in range(a.procs)]
    procs = [multiprocessing.Process(target=reader, args=(a.port, a.token, a.org, n, a.seconds + 3, base, ready, out))
             for n in shares if n]
    for pr in procs:
        pr.start()
    connected = sum(ready.get(timeout=60) for _ in procs)
    time.sleep(0.5)
    sent, acks, took = send_all(a, base)
    send_lat, ack_lat, counts = [], [], []
    for _ in procs:
        sent_at, arrived, c = out.get(timeout=120)
        counts += c
        for t, now in zip(sent_at, arrived):
            send_lat.append(now - t)
            if t in acks:
                ack_lat.append(now - acks[t])
    for pr in procs:
        pr.join()
    commit = [v - t for t, v in acks.items()]
    print(f"clients={connected} sent={sent} seconds={took:.1f} rate={sent / took:.0f} "
          f"events={len(send_lat)} expected={sent * connected} min_per_client={min(counts) if counts else 0} "
          f"p50_ms={pct(send_lat, 50):.2f} p99_ms={pct(send_lat, 99):.2f} max_ms={max(send_lat, default=0):.2f} "
          f"ack_event_p50_ms={pct(ack_lat, 50):.2f} ack_event_p99_ms={pct(ack_lat, 99):.2f} "
          f"commit_p50_ms={pct(commit, 50):.2f} commit_p99_ms={pct(commit, 99):.2f}")


if __name__ == "__main__":
    main()
