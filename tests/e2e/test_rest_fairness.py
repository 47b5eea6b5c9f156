"""One tenant cannot starve the REST API (SPEC §4): a viewer flooding the
server with large data queries on 150 connections gets 429s for what is
over its share, while /healthz, another organisation's queries and its
device ingest keep answering quickly. And a data query without channel=
keeps to the 32-channel cap of one with it."""
import json
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import ADMIN_EMAIL, burst_heads, login, new_org_device, now_ms
import readings_db

pytestmark = pytest.mark.serial  # asserts on time or memory: run alone (make test)

VIEWER_PASSWORD = "member-password-1"
FLOOD_CONNECTIONS = 150
FLOOD_SECONDS = 8
BIG_READINGS = 200000

# The offender runs in a process of its own, so its 150 connections do not
# take the measuring threads' share of the interpreter. Each connection
# sends a large query, reads the whole answer (discarding it), and sends
# the next, until the deadline.
FLOOD_SCRIPT = r"""
import json, socket, sys, threading, time
host, port, path, token, conns, secs = sys.argv[1:7]
conns, secs = int(conns), float(secs)
req = ("GET %s HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\n\r\n"
       % (path, host, port, token)).encode()
deadline = time.time() + secs
counts = {}
lock = threading.Lock()

def read_answer(s, buf):
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise EOFError
        rest += chunk
    return status, rest[length:]

def run():
    try:
        s = socket.create_connection((host, int(port)), timeout=30)
        buf = b""
        while time.time() < deadline:
            s.sendall(req)
            status, buf = read_answer(s, buf)
            with lock:
                counts[status] = counts.get(status, 0) + 1
        s.close()
    except Exception as e:
        with lock:
            counts["error"] = counts.get("error", 0) + 1

threads = [threading.Thread(target=run) for _ in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(counts))
"""


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


class Sampler(threading.Thread):
    """Calls fn every `every` seconds until stopped; keeps (latency, status)."""

    def __init__(self, fn, every):
        super().__init__(daemon=True)
        self.fn, self.every = fn, every
        self.samples = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                status = self.fn()
            except requests.RequestException as e:
                status = repr(e)
            self.samples.append((time.monotonic() - t0, status))
            self.stop.wait(self.every)

    def latencies(self):
        return [lat for lat, _ in self.samples]

    def statuses(self):
        return {st for _, st in self.samples}


@pytest.fixture(scope="module")
def srv():
    from conftest import running_server
    yield from running_server()


def test_one_viewer_flooding_queries_does_not_starve_others(srv):
    admin = login(srv.http)
    org_a, dev_a = new_org_device(admin, prefix="flood")
    org_b, dev_b = new_org_device(admin, prefix="calm")
    readings_db.fill(srv.data_dir, dev_a["id"], ["v"], BIG_READINGS)
    email = "flooder-%d@example.com" % time.monotonic_ns()
    r = admin.post("/api/v1/orgs/%s/members" % org_a["id"],
                   json={"email": email, "role": "viewer", "password": VIEWER_PASSWORD})
    assert r.status_code == 201, r.text
    viewer = login(srv.http, email, VIEWER_PASSWORD)
    token = viewer.s.headers["Authorization"].split()[1]
    # Org B's own viewer (the admin acting in B is another principal too).
    key = admin.post("/api/v1/orgs/%s/apikeys" % org_b["id"],
                     json={"name": "reader", "scopes": ["data:read"]}).json()["key"]
    reader = requests.Session()
    reader.headers["Authorization"] = "Bearer " + key
    ingest = requests.Session()
    ingest.headers["X-Auth-Token"] = dev_b["token"]
    health = requests.Session()
    assert ingest.post(srv.http + "/api/v1/data", json={"t": 1}, timeout=10).status_code == 200

    host, port = srv.addrs["http"].rsplit(":", 1)
    path = "/api/v1/devices/%s/data?channel=v&limit=100000" % dev_a["id"]
    # One big answer first: the query really is large.
    big = viewer.get(path)
    assert big.status_code == 200 and len(big.json()["series"]["v"]) == 100000

    samplers = [
        Sampler(lambda: health.get(srv.http + "/healthz", timeout=10).status_code, 0.02),
        Sampler(lambda: ingest.post(srv.http + "/api/v1/data", json={"t": 1, "ts": now_ms()},
                                    timeout=10).status_code, 0.05),
        Sampler(lambda: reader.get(srv.http + "/api/v1/devices/%s/data?channel=t&limit=100"
                                   % dev_b["id"], timeout=10).status_code, 0.1),
    ]
    flood = subprocess.Popen([sys.executable, "-c", FLOOD_SCRIPT, host, port, path, token,
                              str(FLOOD_CONNECTIONS), str(FLOOD_SECONDS)],
                             stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)  # let the flood fill the server
    for s in samplers:
        s.start()
    try:
        out, _ = flood.communicate(timeout=FLOOD_SECONDS + 60)
    finally:
        if flood.poll() is None:
            flood.kill()
        for s in samplers:
            s.stop.set()
        for s in samplers:
            s.join(timeout=15)
    counts = {k: v for k, v in json.loads(out).items()}
    health_s, ingest_s, query_s = samplers
    report = ("flood %s; healthz n=%d p99=%.0f ms; ingest n=%d p99=%.0f ms; "
              "other org's query n=%d p99=%.0f ms" % (
                  counts, len(health_s.samples), p99(health_s.latencies()) * 1000,
                  len(ingest_s.samples), p99(ingest_s.latencies()) * 1000,
                  len(query_s.samples), p99(query_s.latencies()) * 1000))
    print(report)
    assert counts.get("429", 0) > 0, report
    assert counts.get("200", 0) > 0, report
    assert "error" not in counts, report
    assert health_s.statuses() == {200}, report
    assert ingest_s.statuses() == {200}, report
    assert query_s.statuses() == {200}, report
    assert len(health_s.samples) > 50, report
    assert p99(health_s.latencies()) < 0.1, report
    assert p99(ingest_s.latencies()) < 0.2, report
    assert p99(query_s.latencies()) < 0.5, report
    # Once the flood is over the offender is served again.
    assert viewer.get(path).status_code == 200


def test_429_names_the_limit_and_retry_after(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="retry")
    readings_db.fill(srv.data_dir, dev["id"], ["v"], 50000)
    tok = admin.s.headers["Authorization"]
    req = ("GET /api/v1/devices/%s/data?channel=v&limit=100000 HTTP/1.1\r\nHost: x\r\n"
           "Authorization: %s\r\n\r\n" % (dev["id"], tok)).encode()
    heads = burst_heads(srv, req, 8)
    refused = [h for h in heads if h.startswith(b"HTTP/1.1 429")]
    assert refused, [h[:40] for h in heads]
    h = refused[0]
    assert b"Retry-After: 1" in h
    assert b"too_many_requests" in h


def test_query_without_channel_keeps_the_channel_cap(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="wide")
    ingest = {"X-Auth-Token": dev["token"]}
    ts = now_ms() - 1000
    r = requests.post(srv.http + "/api/v1/data", headers=ingest, timeout=10,
                      json={"ts": ts, "values": {"c%02d" % i: i for i in range(32)}})
    assert r.status_code == 200, r.text
    data = "/api/v1/devices/%s/data" % dev["id"]
    r = admin.get(data)
    assert r.status_code == 200 and len(r.json()["series"]) == 32
    r = requests.post(srv.http + "/api/v1/data", headers=ingest, timeout=10,
                      json={"ts": ts, "values": {"c32": 32}})
    assert r.status_code == 200, r.text
    r = admin.get(data)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert "channel" in r.json()["error"]["message"]
    names = ",".join("c%02d" % i for i in range(1, 33))
    r = admin.get(data, params={"channel": names})
    assert r.status_code == 200 and len(r.json()["series"]) == 32


def test_an_orgs_requests_over_its_share_wait_their_turn(srv):
    """Five apps of one org query at once: two run, the others wait for the
    org's share instead of being refused, and every one is answered."""
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="queue")
    readings_db.fill(srv.data_dir, dev["id"], ["v"], 100000)
    keys = [admin.post("/api/v1/orgs/%s/apikeys" % org["id"],
                       json={"name": "app%d" % i, "scopes": ["data:read"]}).json()["key"]
            for i in range(5)]
    url = srv.http + "/api/v1/devices/%s/data?channel=v&limit=100000" % dev["id"]
    results = []

    def query(key):
        r = requests.get(url, headers={"Authorization": "Bearer " + key}, timeout=30)
        results.append((r.status_code, len(r.content)))

    threads = [threading.Thread(target=query, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=40)
    assert [st for st, _ in results] == [200] * 5, results
