"""GET /metrics (SPEC §2: superadmin, or anyone on loopback) in the
Prometheus text format, parsed with prometheus_client's own parser.

The session server listens on 127.0.0.1 only, so every test but the last
reads from loopback. The last checks the non-loopback rule on a server of
its own inside a network namespace of its own (unshare -n), listening on a
documentation address (192.0.2.1) given to that namespace's lo: no packet
leaves the namespace, and the peer is not loopback to the server."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import login, new_server, now_ms  # noqa: E402

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NETNS_ADDR = "192.0.2.1"
FAMILIES = {
    "sensorspace_connections_open": "gauge",
    "sensorspace_http_requests": "counter",
    "sensorspace_readings_stored": "counter",
    "sensorspace_readings_refused": "counter",
    "sensorspace_bytes_received": "counter",
    "sensorspace_bytes_sent": "counter",
    "sensorspace_ingest_queue_depth": "gauge",
    "sensorspace_commit_batch_readings": "histogram",
    "sensorspace_commit_duration_seconds": "histogram",
    "sensorspace_store_errors": "counter",
    "sensorspace_process_resident_memory_bytes": "gauge",
    "sensorspace_process_start_time_seconds": "gauge",
}


def parse(text):
    """{family name: (type, {(sample name, sorted labels): value})}."""
    out = {}
    for fam in text_string_to_metric_families(text):
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples}
        out[fam.name] = (fam.type, samples)
    return out


def scrape(base, session=None, **kw):
    r = (session or requests).get(base + "/metrics", timeout=30, **kw)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == CONTENT_TYPE
    return parse(r.text)


def value(m, family, sample, **labels):
    return m[family][1][(sample, tuple(sorted(labels.items())))]


def post(base, token, body, ctype="text/plain", **kw):
    return requests.post(base + "/api/v1/data", data=body, timeout=30,
                         headers={"X-Auth-Token": token, "Content-Type": ctype}, **kw)


def test_every_series_is_there_with_its_type(server):
    m = scrape(server.http)
    for name, typ in FAMILIES.items():
        assert name in m, name
        assert m[name][0] == typ, name
    for listener in ("http", "https", "tcp"):
        value(m, "sensorspace_connections_open", "sensorspace_connections_open", listener=listener)
    for listener in ("http", "https"):
        for cls in ("2xx", "3xx", "4xx", "5xx"):
            value(m, "sensorspace_http_requests", "sensorspace_http_requests_total",
                  listener=listener, code_class=cls)
    for proto in ("http", "https", "tcp", "udp"):
        for fam in ("readings_stored", "bytes_received", "bytes_sent"):
            value(m, "sensorspace_" + fam, "sensorspace_%s_total" % fam, protocol=proto)
    for reason in ("bad_reading", "too_large", "invalid_token", "quota_exceeded", "store_unavailable",
                   "ingest_busy"):
        value(m, "sensorspace_readings_refused", "sensorspace_readings_refused_total", reason=reason)
    assert value(m, "sensorspace_process_resident_memory_bytes",
                 "sensorspace_process_resident_memory_bytes") > 1 << 20
    start = value(m, "sensorspace_process_start_time_seconds", "sensorspace_process_start_time_seconds")
    assert 0 < start <= time.time() + 1


def test_metrics_over_https_from_loopback(server):
    m = scrape(server.https, verify=server.cert)
    assert "sensorspace_readings_stored" in m


def test_only_get_reads_metrics(server):
    r = requests.post(server.http + "/metrics", data="x", timeout=30)
    assert r.status_code == 405


def test_ingest_moves_the_counters(server, device):
    before = scrape(server.http)
    ts = now_ms() - 10000
    bodies = ["a=1\n", "a=2,b=3 %d\n" % ts, "a=4\nb=5\nc=6\n"]  # 1 + 2 + 3 = 6 readings
    for body in bodies:
        r = post(server.http, device["token"], body)
        assert r.status_code == 200, r.text
    r = post(server.https, device["token"], "x=1,y=2\n", verify=server.cert)
    assert r.status_code == 200, r.text
    assert post(server.http, device["token"], "a=\n").status_code == 400
    assert post(server.http, "ssd_" + "0" * 40, "a=1\n").status_code == 401
    after = scrape(server.http)

    def delta(family, sample, **labels):
        return value(after, family, sample, **labels) - value(before, family, sample, **labels)

    assert delta("sensorspace_readings_stored", "sensorspace_readings_stored_total", protocol="http") == 6
    assert delta("sensorspace_readings_stored", "sensorspace_readings_stored_total", protocol="https") == 2
    assert delta("sensorspace_readings_refused", "sensorspace_readings_refused_total",
                 reason="bad_reading") == 1
    assert delta("sensorspace_readings_refused", "sensorspace_readings_refused_total",
                 reason="invalid_token") == 1
    # The three stores, and the first scrape (counted once it was answered).
    assert delta("sensorspace_http_requests", "sensorspace_http_requests_total",
                 listener="http", code_class="2xx") >= 4
    assert delta("sensorspace_http_requests", "sensorspace_http_requests_total",
                 listener="http", code_class="4xx") >= 2
    assert delta("sensorspace_http_requests", "sensorspace_http_requests_total",
                 listener="https", code_class="2xx") >= 1
    for proto in ("http", "https"):
        assert delta("sensorspace_bytes_received", "sensorspace_bytes_received_total", protocol=proto) > 0
        assert delta("sensorspace_bytes_sent", "sensorspace_bytes_sent_total", protocol=proto) > 0
    assert delta("sensorspace_commit_batch_readings", "sensorspace_commit_batch_readings_count") >= 1
    assert delta("sensorspace_commit_batch_readings", "sensorspace_commit_batch_readings_sum") == 8
    assert value(after, "sensorspace_ingest_queue_depth", "sensorspace_ingest_queue_depth") == 0


def test_histograms_are_consistent(server, device):
    assert post(server.http, device["token"], "h=1\n").status_code == 200
    m = scrape(server.http)
    for fam in ("sensorspace_commit_batch_readings", "sensorspace_commit_duration_seconds"):
        typ, samples = m[fam]
        buckets = sorted(((float(dict(labels)["le"]), v) for (name, labels), v in samples.items()
                          if name == fam + "_bucket"))
        assert buckets[-1][0] == float("inf")
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), "buckets are cumulative"
        count = samples[(fam + "_count", ())]
        assert count >= 1 and counts[-1] == count
        assert samples[(fam + "_sum", ())] > 0
    bounds = [float(dict(l)["le"]) for (n, l) in m["sensorspace_commit_batch_readings"][1]
              if n.endswith("_bucket")]
    assert sorted(bounds) == [1, 10, 100, 1000, 10000, 100000, float("inf")]


def test_open_connection_shows_in_the_gauge(server):
    with requests.Session() as s:
        m = scrape(server.http, session=s)
        assert value(m, "sensorspace_connections_open", "sensorspace_connections_open",
                     listener="http") >= 1


# ---- the non-loopback rule, inside a network namespace -------------------

def netns_probe():
    """Runs inside `unshare -n`: a server on NETNS_ADDR, then GET /metrics
    as nobody, a viewer and the superadmin. Prints the outcome as JSON."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", NETNS_ADDR + "/32", "dev", "lo"], check=True)
    srv = new_server(["--listen-http", NETNS_ADDR + ":0"]).start()
    out = {}
    try:
        base = "http://" + srv.addrs["http"]
        out["bound"] = srv.addrs["http"]
        out["anonymous"] = requests.get(base + "/metrics", timeout=30).status_code
        admin = login(base)
        org = admin.post("/api/v1/orgs", json={"name": "metrics-org"}).json()
        r = admin.post("/api/v1/orgs/%s/members" % org["id"],
                       json={"email": "viewer@example.com", "role": "viewer",
                             "password": "member-password-1"})
        assert r.status_code == 201, r.text
        viewer = login(base, "viewer@example.com", "member-password-1")
        out["viewer"] = viewer.get("/metrics").status_code
        r = admin.get("/metrics")
        out["superadmin"] = r.status_code
        out["superadmin_type"] = r.headers.get("Content-Type")
        out["superadmin_families"] = sorted(parse(r.text)) if r.status_code == 200 else []
        out["loopback_https"] = requests.get(srv.https + "/metrics", timeout=30,
                                             verify=srv.cert).status_code
    finally:
        out["rc"] = srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)
    print(json.dumps(out))


def test_non_loopback_needs_the_superadmin():
    if not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs unshare and ip (util-linux, iproute2) for a network namespace")
    ok = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=30)
    if ok.returncode != 0:
        pytest.skip("cannot make a network namespace here: %s" % ok.stderr.decode().strip())
    p = subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__), "netns-probe"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["bound"].startswith(NETNS_ADDR + ":")
    assert out["anonymous"] == 401
    assert out["viewer"] == 403
    assert out["superadmin"] == 200
    assert out["superadmin_type"] == CONTENT_TYPE
    assert set(FAMILIES) <= set(out["superadmin_families"])
    assert out["loopback_https"] == 200
    assert out["rc"] == 0


if __name__ == "__main__" and sys.argv[1:] == ["netns-probe"]:
    netns_probe()
