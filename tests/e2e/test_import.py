"""Bulk import of history (SPEC §2): POST /api/v1/orgs/{org}/import, one
streamed request, all or nothing, in line format, CSV and NDJSON.

Bodies are generated as they are sent (a generator: chunked transfer), so
the test stays light however many readings it imports. IMPORT_READINGS sets
the size of the big import (10 million by default; the sanitizer pass of
`make test` runs 200,000)."""
import json
import os
import socket
import threading
import time

import pytest
import requests

from conftest import http_addr, login, new_org_device, now_ms

BIG = int(os.environ.get("IMPORT_READINGS", "200000" if os.environ.get("ASAN_OPTIONS") else "10000000"))
SMALL = 20000
PW = "a-long-password-1"
# History ends an hour ago, one reading a second per channel before it.
END_TS = now_ms() - 3600 * 1000


def path(org_id, fmt=None):
    return "/api/v1/orgs/%s/import%s" % (org_id, "?format=" + fmt if fmt else "")


def value(d, c, i):
    """Exact in a double and in its shortest text."""
    return (i % 100000) / 4 + d * 1000 + c


def ts_of(i, per_device):
    return END_TS - (per_device - i) * 1000


def lines_body(devices, channels, per_device, chunk=2000):
    """Line format, a line per device and second, every channel on it."""
    names = ["c%d" % c for c in range(channels)]
    for start in range(0, per_device, chunk):
        out = []
        for i in range(start, min(per_device, start + chunk)):
            t = ts_of(i, per_device)
            for d, dev in enumerate(devices):
                out.append("%s %s %d\n" % (dev, ",".join("%s=%r" % (names[c], value(d, c, i)) for c in range(channels)), t))
        yield "".join(out).encode()


def csv_body(devices, channels, per_device, chunk=2000):
    yield b"device_id,device_name,channel,ts,value\n"
    for start in range(0, per_device, chunk):
        out = []
        for i in range(start, min(per_device, start + chunk)):
            t = ts_of(i, per_device)
            for d, dev in enumerate(devices):
                for c in range(channels):
                    out.append('%s,"dev, %d",c%d,%d,%r\n' % (dev, d, c, t, value(d, c, i)))
        yield "".join(out).encode()


def ndjson_body(devices, channels, per_device, chunk=2000):
    for start in range(0, per_device, chunk):
        out = []
        for i in range(start, min(per_device, start + chunk)):
            t = ts_of(i, per_device)
            for d, dev in enumerate(devices):
                for c in range(channels):
                    out.append(json.dumps({"device_id": dev, "device_name": None, "channel": "c%d" % c,
                                           "ts": t, "value": value(d, c, i)}) + "\n")
        yield "".join(out).encode()


BODIES = {"line": lines_body, "csv": csv_body, "ndjson": ndjson_body}


def new_devices(api, n, prefix="imp"):
    org, dev = new_org_device(api, prefix=prefix)
    devs = [dev["id"]]
    for k in range(n - 1):
        r = api.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "%s-%d" % (prefix, k)})
        assert r.status_code == 201, r.text
        devs.append(r.json()["id"])
    return org, devs


def post_import(api, org_id, body, fmt=None, headers=None, timeout=600):
    return api.s.post(api.url(path(org_id, fmt)), data=body, headers=headers or {}, timeout=timeout)


def channel_counts(api, dev):
    r = api.get("/api/v1/devices/%s/channels" % dev)
    assert r.status_code == 200, r.text
    return {c["name"]: c for c in r.json()}


def check_stored(api, devices, channels, per_device, sample=500):
    """Counts and newest of every series; a sample of points value for value."""
    for d, dev in enumerate(devices):
        got = channel_counts(api, dev)
        assert sorted(got) == ["c%d" % c for c in range(channels)], got
        for c in range(channels):
            ch = got["c%d" % c]
            assert ch["count"] == per_device, (dev, ch)
            assert ch["last_ts"] == ts_of(per_device - 1, per_device)
            assert ch["last_value"] == value(d, c, per_device - 1)
        mid = per_device // 2
        lo, hi = ts_of(mid, per_device), ts_of(min(per_device, mid + sample), per_device)
        r = api.get("/api/v1/devices/%s/data" % dev,
                    params={"channel": "c0", "from": lo, "to": hi, "limit": sample + 10})
        assert r.status_code == 200, r.text
        pts = r.json()["series"]["c0"]
        want = [[ts_of(i, per_device), value(d, 0, i)] for i in range(mid, min(per_device, mid + sample))]
        assert pts == want


def stored_nothing(api, devices):
    for dev in devices:
        assert channel_counts(api, dev) == {}, dev


class Victim:
    """Another organisation's device posting one reading per request while
    the import runs: its latencies are what the import costs others."""

    def __init__(self, server, api):
        _, dev = new_org_device(api, prefix="victim")
        self.url = server.http + "/api/v1/data"
        self.headers = {"X-Auth-Token": dev["token"], "Content-Type": "text/plain"}
        self.lat = []
        self.errors = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        s = requests.Session()
        while not self.stop.is_set():
            t0 = time.monotonic()
            r = s.post(self.url, data="v=1 %d" % now_ms(), headers=self.headers, timeout=30)
            self.lat.append((time.monotonic() - t0) * 1000)
            if r.status_code != 200:
                self.errors.append(r.status_code)
            time.sleep(0.02)

    def pct(self, p):
        v = sorted(self.lat)
        return v[min(len(v) - 1, int(len(v) * p))] if v else 0.0


@pytest.mark.serial  # measures the rate and another org's latency meanwhile
def test_big_import_line_format(server, admin):
    devices_n, channels = 10, 4
    per_device = max(1, BIG // (devices_n * channels))
    org, devs = new_devices(admin, devices_n, "big")
    victim = Victim(server, admin)
    victim.t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    r = post_import(admin, org["id"], lines_body(devs, channels, per_device), "line")
    secs = time.monotonic() - t0
    victim.stop.set()
    victim.t.join()
    assert r.status_code == 200, r.text
    n = per_device * devices_n * channels
    assert r.json() == {"readings": n, "devices": devices_n, "from": ts_of(0, per_device),
                        "to": ts_of(per_device - 1, per_device) + 1}
    print("\nimport: %d readings in %.1f s = %.0f readings/s; victim (another org, one reading per "
          "HTTP request, %d requests): p50 %.1f ms, p99 %.1f ms, max %.1f ms"
          % (n, secs, n / secs, len(victim.lat), victim.pct(0.5), victim.pct(0.99), max(victim.lat or [0])))
    assert not victim.errors, victim.errors[:5]
    # One commit of the import is at most SS_COMMIT_READINGS_MAX readings:
    # the victim's requests wait for one, never for the import.
    assert victim.pct(0.99) < 1000, victim.lat
    check_stored(admin, devs, channels, per_device)


@pytest.mark.parametrize("fmt", ["line", "csv", "ndjson"])
def test_each_format_and_idempotent(server, admin, fmt):
    org, devs = new_devices(admin, 3, fmt)
    per_device = SMALL // 6
    for attempt in range(2):  # the second is the same import again: same readings replace
        r = post_import(admin, org["id"], BODIES[fmt](devs, 2, per_device), fmt)
        assert r.status_code == 200, r.text
        assert r.json()["readings"] == per_device * 3 * 2
        assert r.json()["devices"] == 3
        check_stored(admin, devs, 2, per_device, sample=100)


def test_format_by_content_type_and_whole_body(server, admin):
    org, devs = new_devices(admin, 1, "ct")
    body = b"".join(csv_body(devs, 1, 50))
    r = post_import(admin, org["id"], body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["readings"] == 50
    body = b"".join(ndjson_body(devs, 1, 60))
    r = post_import(admin, org["id"], body, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200 and r.json()["readings"] == 60, r.text
    r = post_import(admin, org["id"], body)
    assert r.status_code == 400 and "format" in r.json()["error"]["message"], r.text
    r = admin.s.post(admin.url(path(org["id"]) + "?fromat=csv"), data=body)
    assert r.status_code == 400 and "fromat" in r.json()["error"]["message"], r.text
    assert r.json()["error"]["code"] == "unknown_parameter"
    r = post_import(admin, org["id"], body, "xml")
    assert r.status_code == 400, r.text


def bad_in_the_middle(devs, per_device, bad_line):
    first = True
    n = 0
    for chunk in lines_body(devs, 2, per_device, chunk=500):
        lines = chunk.split(b"\n")
        out = []
        for ln in lines[:-1]:
            n += 1
            out.append(b"%s temp=oops 1" % devs[0].encode() if n == bad_line else ln)
        yield b"\n".join(out) + b"\n"
        first = False
    assert not first


def test_bad_line_in_the_middle_stores_nothing(server, admin):
    org, devs = new_devices(admin, 2, "bad")
    per_device = 5000
    bad = 7001
    r = post_import(admin, org["id"], bad_in_the_middle(devs, per_device, bad), "line")
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_reading"
    assert err["line"] == bad
    assert ("line %d" % bad) in err["message"]
    stored_nothing(admin, devs)


def test_device_of_another_org(server, admin):
    org, devs = new_devices(admin, 1, "mine")
    _, foreign = new_org_device(admin, prefix="theirs")
    body = "%s a=1 %d\n%s a=2 %d\n" % (devs[0], END_TS, foreign["id"], END_TS)
    r = post_import(admin, org["id"], body, "line")
    assert r.status_code == 404, r.text
    assert r.json()["error"]["line"] == 2
    stored_nothing(admin, devs)
    r = post_import(admin, org["id"], "nosuchdevice a=1 %d\n" % END_TS, "line")
    assert r.status_code == 404 and r.json()["error"]["line"] == 1, r.text


def test_who_may_import(server, admin):
    org, devs = new_devices(admin, 1, "who")
    other, _ = new_org_device(admin, prefix="who-other")
    body = "%s a=1 %d\n" % (devs[0], END_TS)
    tag = str(time.monotonic_ns())
    people = {}
    for role in ["viewer", "editor"]:
        email = "imp-%s-%s@example.com" % (role, tag)
        r = admin.post("/api/v1/orgs/%s/members" % org["id"], json={"email": email, "role": role, "password": PW})
        assert r.status_code == 201, r.text
        people[role] = login(server.http, email, PW)
    stranger = "imp-stranger-%s@example.com" % tag
    admin.post("/api/v1/orgs/%s/members" % other["id"], json={"email": stranger, "role": "owner", "password": PW})
    people["stranger"] = login(server.http, stranger, PW)
    keys = {}
    for scope in ["data:read", "data:write", "manage"]:
        r = admin.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": scope, "scopes": [scope]})
        keys[scope] = r.json()["key"]

    def post(token):
        h = {"Authorization": "Bearer " + token} if token else {}
        return requests.post(server.http + path(org["id"], "line"), data=body, headers=h, timeout=30)

    assert post(None).status_code == 401
    assert post("ssk_" + "0" * 40).status_code == 401
    assert post(people["viewer"].s.headers["Authorization"][7:]).status_code == 403
    assert post(people["stranger"].s.headers["Authorization"][7:]).status_code == 404
    assert post(keys["data:read"]).status_code == 403
    assert post(keys["manage"]).status_code == 403
    stored_nothing(admin, devs)
    r = post(people["editor"].s.headers["Authorization"][7:])
    assert r.status_code == 200, r.text
    r = post(keys["data:write"])
    assert r.status_code == 200, r.text
    assert channel_counts(admin, devs[0])["a"]["count"] == 1


def test_over_quota_stores_nothing(server, admin):
    org, devs = new_devices(admin, 1, "quota")
    r = admin.put("/api/v1/orgs/%s/quota" % org["id"],
                  json={"max_devices": 0, "max_readings_per_day": 100, "max_bytes_per_day": 0})
    assert r.status_code in (200, 204), r.text
    r = post_import(admin, org["id"], lines_body(devs, 1, 101), "line")
    assert r.status_code == 429, r.text
    stored_nothing(admin, devs)
    r = post_import(admin, org["id"], lines_body(devs, 1, 100), "line")
    assert r.status_code == 200, r.text


def spool_fds(srv):
    """Descriptors of the server open on files of its data dir that were
    deleted: an import's spool."""
    out = []
    fd_dir = "/proc/%d/fd" % srv.proc.pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith(srv.data_dir) and target.endswith("(deleted)"):
            out.append(target)
    return out


def wait_for(cond, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_client_gone_mid_body(fresh_server):
    srv = fresh_server()
    api = login(srv.http)
    org, devs = new_devices(api, 1, "gone")
    body = b"".join(lines_body(devs, 2, 200000))
    s = socket.create_connection(http_addr(srv), timeout=10)
    token = api.s.headers["Authorization"]
    s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n"
               % (path(org["id"], "line"), token, len(body))).encode())
    s.sendall(body[: len(body) // 2])
    assert wait_for(lambda: len(spool_fds(srv)) == 1), "the import never spooled"
    s.close()
    assert wait_for(lambda: spool_fds(srv) == []), spool_fds(srv)
    assert os.listdir(srv.data_dir) == [n for n in os.listdir(srv.data_dir) if not n.startswith("import-")]
    stored_nothing(api, devs)
    # The org may import again at once.
    r = post_import(api, org["id"], lines_body(devs, 1, 10), "line")
    assert r.status_code == 200, r.text


def test_body_over_the_limit(fresh_server):
    srv = fresh_server(["--import-readings-max", "1000"])
    api = login(srv.http)
    org, devs = new_devices(api, 1, "limit")
    r = post_import(api, org["id"], lines_body(devs, 1, 1000), "line")
    assert r.status_code == 200, r.text
    r = post_import(api, org["id"], lines_body(devs, 2, 501), "line")
    assert r.status_code == 413, r.text
    assert r.json()["error"]["line"] == 501
    assert channel_counts(api, devs[0])["c0"]["count"] == 1000
    assert "c1" not in channel_counts(api, devs[0])


def test_server_stop_mid_body_leaves_no_spool(fresh_server):
    srv = fresh_server()
    api = login(srv.http)
    org, devs = new_devices(api, 1, "stop")
    s = socket.create_connection(http_addr(srv), timeout=10)
    s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
               % (path(org["id"], "line"), api.s.headers["Authorization"])).encode())
    chunk = b"".join(lines_body(devs, 1, 1000))
    s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    assert wait_for(lambda: len(spool_fds(srv)) == 1)
    assert srv.stop() == 0
    s.close()
    assert [n for n in os.listdir(srv.data_dir) if n.startswith("import-")] == []


def test_channel_limit_checked_before_anything_is_stored(server, admin):
    org, devs = new_devices(admin, 2, "chan")
    dev = admin.get("/api/v1/devices/%s" % devs[0]).json()
    # The first device has 1020 channels already (SS_DEVICE_CHANNELS_MAX 1024).
    r = admin.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "token-holder"})
    assert r.status_code == 201
    token_dev = r.json()
    line = ",".join("s%d=1" % c for c in range(1020)) + " %d\n" % END_TS
    r = requests.post(server.http + "/api/v1/data", data=line,
                      headers={"X-Auth-Token": token_dev["token"], "Content-Type": "text/plain"}, timeout=30)
    assert r.status_code == 200, r.text
    full = token_dev["id"]
    # Five new channels for it, among readings of another device: refused whole.
    body = "%s a=1 %d\n" % (devs[1], END_TS) + "".join(
        "%s n%d=1 %d\n" % (full, c, END_TS) for c in range(5))
    r = post_import(admin, org["id"], body, "line")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "too_many_channels"
    assert full in r.json()["error"]["message"]
    stored_nothing(admin, [devs[1]])
    assert len(channel_counts(admin, full)) == 1020
    # Channels it has already, and four new ones, fit.
    body = "".join("%s s%d=2 %d\n" % (full, c, END_TS + 1) for c in range(1020)) + "".join(
        "%s n%d=1 %d\n" % (full, c, END_TS) for c in range(4))
    r = post_import(admin, org["id"], body, "line")
    assert r.status_code == 200, r.text
    assert len(channel_counts(admin, full)) == 1024
    # One import naming 1025 channels of one device is refused at that line.
    body = "".join("%s m%d=1 %d\n" % (dev["id"], c, END_TS) for c in range(1025))
    r = post_import(admin, org["id"], body, "line")
    assert r.status_code == 400 and r.json()["error"]["line"] == 1025, r.text
    stored_nothing(admin, [dev["id"]])


def test_usage_counts_imported_readings_under_import(server, admin):
    org, devs = new_devices(admin, 2, "usage")
    r = post_import(admin, org["id"], lines_body(devs, 3, 500), "line")
    assert r.status_code == 200, r.text
    r = admin.get("/api/v1/orgs/%s/usage?every=day" % org["id"])
    assert r.status_code == 200, r.text
    rows = [u for u in r.json()["usage"] if u["protocol"] == "import"]
    assert sum(u["readings"] for u in rows) == 3000, r.json()
    assert sum(u["messages"] for u in rows) >= 2
    # The request itself: an API request by the admin over http.
    deadline = time.time() + 5
    while time.time() < deadline:
        http = [u for u in admin.get("/api/v1/orgs/%s/usage?every=day" % org["id"]).json()["usage"]
                if u["protocol"] == "http"]
        if sum(u["api_requests"] for u in http) >= 1 and sum(u["bytes_in"] for u in http) > 50000:
            break
        time.sleep(0.2)
    assert sum(u["bytes_in"] for u in http) > 50000, http
