"""Accounting (SPEC §5): usage per org, hour and protocol; quotas on every
protocol at once; session records; exact counts after kill -9."""
import csv
import io
import json
import socket
import ssl
import struct
import threading
import time

import pytest
import requests

from conftest import Server, login, module_server, new_org_device, now_ms

ARGS = ["--listen-tcp", "127.0.0.1:0", "--listen-udp", "127.0.0.1:0"]


srv = module_server(ARGS)


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


def http_post(base, token, body, verify=True):
    return requests.post(base + "/api/v1/data", data=body, timeout=30, verify=verify,
                         headers={"X-Auth-Token": token, "Content-Type": "text/plain"})


class Tcp:
    def __init__(self, srv, token):
        host, port = srv.addrs["tcp"].rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=10)
        self.f = self.s.makefile("rb")
        self.sent = 0
        self.send("AUTH %s\n" % token)
        assert self.line() == "OK"

    def send(self, text):
        data = text.encode()
        self.s.sendall(data)
        self.sent += len(data)

    def line(self):
        return self.f.readline().decode().strip()

    def close(self):
        self.f.close()
        self.s.close()


def udp_send(srv, token, lines):
    host, port = srv.addrs["udp"].rsplit(":", 1)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(("%s\n%s\n" % (token, lines)).encode(), (host, int(port)))
    u.close()


def usage(api, org_id, **params):
    q = "&".join("%s=%s" % kv for kv in params.items())
    r = api.get("/api/v1/orgs/%s/usage?%s" % (org_id, q))
    assert r.status_code == 200, r.text
    return r.json()


def by_protocol(rows):
    out = {}
    for row in rows:
        p = out.setdefault(row["protocol"], {k: 0 for k in row if k not in ("bucket", "protocol")})
        for k, v in row.items():
            if k not in ("bucket", "protocol"):
                p[k] += v
    return out


def wait_for(fn, timeout=10):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value or time.time() > deadline:
            return value
        time.sleep(0.2)


@pytest.mark.serial  # reads the session records before they surely settled: run alone (make test)
def test_usage_per_protocol(srv, api):
    org, dev = new_org_device(api)
    tok = dev["token"]
    assert http_post(srv.http, tok, "a=1\nb=2").status_code == 200
    assert http_post(srv.https, tok, "a=3\nb=4", verify=srv.cert).status_code == 200
    t = Tcp(srv, tok)
    t.send("a=1,b=2,c=3\n")
    assert t.line() == "ACK 1"
    t.close()
    udp_send(srv, tok, "a=1\nb=1")

    def settled():
        u = by_protocol(usage(api, org["id"])["usage"])
        return u if "udp" in u and u.get("tcp", {}).get("bytes_in") else None
    u = wait_for(settled)
    assert u, usage(api, org["id"])
    assert u["http"]["readings"] == 2 and u["http"]["messages"] == 1
    assert u["https"]["readings"] == 2 and u["https"]["messages"] == 1
    assert u["tcp"]["readings"] == 3 and u["tcp"]["messages"] == 1
    assert u["udp"]["readings"] == 2 and u["udp"]["messages"] == 1
    assert u["tcp"]["bytes_in"] == t.sent
    assert u["tcp"]["bytes_out"] == len("OK\nACK 1\n")
    # the same request costs more bytes over TLS: records and handshake count
    recs = {r["protocol"]: r for r in api.get("/api/v1/orgs/%s/sessions?kind=device" % org["id"]).json()}
    assert recs["https"]["bytes_in"] > recs["http"]["bytes_in"] > 0
    assert recs["https"]["readings"] == 2 and recs["http"]["readings"] == 2


def test_bad_input_counts_as_rejected(srv, api):
    org, dev = new_org_device(api)
    assert http_post(srv.http, dev["token"], "bad line").status_code == 400
    u = wait_for(lambda: (by_protocol(usage(api, org["id"])["usage"]).get("http") or {}).get("rejected"))
    assert u == 1
    u = by_protocol(usage(api, org["id"])["usage"])["http"]
    assert u["readings"] == 0 and u["messages"] == 0 and u["api_requests"] >= 2


def test_usage_csv_and_days_and_children(srv, api):
    parent, pdev = new_org_device(api)
    child, cdev = new_org_device(api, parent["id"])
    http_post(srv.http, pdev["token"], "x=1")
    http_post(srv.http, cdev["token"], "x=1\ny=2")
    r = api.get("/api/v1/orgs/%s/usage?format=csv&every=day&include_children=true" % parent["id"])
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0].keys()) == ["bucket", "protocol", "bytes_in", "bytes_out", "messages",
                                    "readings", "rejected", "api_requests"]
    assert sum(int(row["readings"]) for row in rows) == 3
    day = int(rows[0]["bucket"])
    assert day % 86400000 == 0
    alone = usage(api, parent["id"], every="day")
    assert sum(row["readings"] for row in alone["usage"]) == 1
    for bad in ["every=week", "format=xml", "from=yesterday", "include_children=maybe"]:
        assert api.get("/api/v1/orgs/%s/usage?%s" % (parent["id"], bad)).status_code == 400


def test_quota_across_protocols(srv, api):
    org, dev = new_org_device(api)
    tok = dev["token"]
    r = api.put("/api/v1/orgs/%s/quota" % org["id"], json={"max_readings_per_day": 5})
    assert r.status_code == 200 and r.json()["max_readings_per_day"] == 5
    assert http_post(srv.http, tok, "a=1\nb=1").status_code == 200  # 2
    t = Tcp(srv, tok)
    t.send("a=1,b=1\n")  # 4
    assert t.line() == "ACK 1"
    udp_send(srv, tok, "c=1")  # 5
    wait_for(lambda: api.get("/api/v1/devices/%s/channels" % dev["id"]).json()
             and sum(c["count"] for c in api.get("/api/v1/devices/%s/channels" % dev["id"]).json()) == 5)
    # the next reading, on every protocol, is refused in the protocol's own terms
    r = http_post(srv.http, tok, "z=1")
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    t.send("z=1\n")
    assert t.line() == "ERR 2 429 quota_exceeded"
    udp_send(srv, tok, "z=1")
    time.sleep(0.5)
    chans = {c["name"] for c in api.get("/api/v1/devices/%s/channels" % dev["id"]).json()}
    assert "z" not in chans
    # raising the quota lets data in again, without a restart
    assert api.put("/api/v1/orgs/%s/quota" % org["id"], json={"max_readings_per_day": 100}).status_code == 200
    assert http_post(srv.http, tok, "z=1").status_code == 200
    t.send("z=2 %d\n" % (now_ms() - 5))
    assert t.line() == "ACK 2"
    t.close()


def test_bytes_quota_across_protocols(srv, api):
    org, dev = new_org_device(api)
    tok = dev["token"]
    q = "/api/v1/orgs/%s/quota" % org["id"]
    assert api.put(q, json={"max_bytes_per_day": 400}).status_code == 200
    t = Tcp(srv, tok)
    t.send("a=2 %d\n" % (now_ms() - 5))
    assert t.line() == "ACK 1"
    assert http_post(srv.http, tok, "a=1").status_code == 200  # ~300 B: over 400 now
    # bytes reach the quota at the next accounting flush, with the usage rows
    assert wait_for(lambda: sum(r["bytes_in"] + r["bytes_out"]
                                for r in usage(api, org["id"])["usage"]) > 400)
    r = http_post(srv.http, tok, "b=1")
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    t.send("b=2\n")
    assert t.line() == "ERR 2 429 quota_exceeded"
    udp_send(srv, tok, "c=1")
    time.sleep(0.5)
    chans = {c["name"] for c in api.get("/api/v1/devices/%s/channels" % dev["id"]).json()}
    assert chans == {"a"}
    assert api.put(q, json={"max_bytes_per_day": 0}).status_code == 200
    assert http_post(srv.http, tok, "b=1").status_code == 200
    t.close()


def test_one_connection_two_orgs_each_its_own_quota(srv, api):
    limited, ldev = new_org_device(api)
    free_org, fdev = new_org_device(api)
    api.put("/api/v1/orgs/%s/quota" % limited["id"], json={"max_readings_per_day": 1})
    s = requests.Session()  # one keep-alive connection carries both devices

    def post(dev, line):
        return s.post(srv.http + "/api/v1/data", data=line, headers={"X-Auth-Token": dev["token"]})
    assert post(ldev, "a=1").status_code == 200
    assert post(fdev, "a=1").status_code == 200
    assert post(ldev, "a=2 %d" % (now_ms() - 5)).status_code == 429
    assert post(fdev, "a=2 %d" % (now_ms() - 5)).status_code == 200
    assert post(fdev, "a=3 %d" % (now_ms() - 3)).status_code == 200
    assert post(ldev, "a=3 %d" % (now_ms() - 3)).status_code == 429
    s.close()


def test_batch_crossing_quota_refused_whole(srv, api):
    org, dev = new_org_device(api)
    api.put("/api/v1/orgs/%s/quota" % org["id"], json={"max_readings_per_day": 3})
    r = http_post(srv.http, dev["token"], "a=1,b=2,c=3,d=4")
    assert r.status_code == 429
    assert api.get("/api/v1/devices/%s/channels" % dev["id"]).json() == []
    assert http_post(srv.http, dev["token"], "a=1,b=2,c=3").status_code == 200


def test_child_usage_counts_toward_parent_quota(srv, api):
    parent, pdev = new_org_device(api)
    child, cdev = new_org_device(api, parent["id"])
    api.put("/api/v1/orgs/%s/quota" % parent["id"], json={"max_readings_per_day": 2})
    assert http_post(srv.http, cdev["token"], "a=1,b=1").status_code == 200
    assert http_post(srv.http, pdev["token"], "a=1").status_code == 429
    assert http_post(srv.http, cdev["token"], "c=1").status_code == 429


def test_device_quota(srv, api):
    org, dev = new_org_device(api)
    api.put("/api/v1/orgs/%s/quota" % org["id"], json={"max_devices": 2})
    assert api.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "2"}).status_code == 201
    r = api.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "3"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"


def test_device_quota_holds_under_concurrent_creates(srv, api):
    org, _ = new_org_device(api)  # 1 device
    api.put("/api/v1/orgs/%s/quota" % org["id"], json={"max_devices": 5})
    statuses = []

    def create(k):
        # each thread on its own connection, so the creates run side by side
        r = requests.post(srv.http + "/api/v1/orgs/%s/devices" % org["id"], json={"name": "c%d" % k},
                          headers={"Authorization": api.s.headers["Authorization"]}, timeout=30)
        statuses.append(r.status_code)
    threads = [threading.Thread(target=create, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201] * 4 + [429] * 12, statuses
    assert len(api.get("/api/v1/orgs/%s/devices" % org["id"]).json()) == 5


def test_quota_set_only_from_above(srv, api):
    parent, _ = new_org_device(api)
    child, _ = new_org_device(api, parent["id"])
    api.post("/api/v1/orgs/%s/members" % child["id"],
             json={"email": "cadmin-%d@example.com" % time.monotonic_ns(), "role": "admin",
                   "password": "member-password-1"})
    members = api.get("/api/v1/orgs/%s/members" % child["id"]).json()
    cadmin = login(srv.http, members[0]["email"], "member-password-1")
    assert cadmin.put("/api/v1/orgs/%s/quota" % child["id"], json={"max_devices": 0}).status_code in (403, 404)
    assert api.put("/api/v1/orgs/%s/quota" % child["id"], json={"max_devices": -1}).status_code == 400
    assert api.put("/api/v1/orgs/%s/quota" % child["id"], json={"max_devices": "x"}).status_code == 400


def test_session_records(srv, api):
    org, dev = new_org_device(api)
    t = Tcp(srv, dev["token"])
    t.send("a=1\n")
    assert t.line() == "ACK 1"

    def active():
        rows = api.get("/api/v1/orgs/%s/sessions?kind=device&active=true" % org["id"]).json()
        return rows if rows and rows[0]["readings"] == 1 else None
    rows = wait_for(active)
    assert rows and rows[0]["protocol"] == "tcp" and rows[0]["principal_id"] == dev["id"]
    assert rows[0]["ended_at"] is None and rows[0]["address"] == "127.0.0.1"
    t.close()

    def ended():
        rows = api.get("/api/v1/orgs/%s/sessions?kind=device" % org["id"]).json()
        return [r for r in rows if r["protocol"] == "tcp" and r["ended_at"]]
    rows = wait_for(ended)
    assert rows and rows[0]["end_reason"] == "closed" and rows[0]["bytes_in"] == t.sent
    for bad in ["kind=robot", "limit=10abc", "limit=0", "active=maybe"]:
        assert api.get("/api/v1/orgs/%s/sessions?%s" % (org["id"], bad)).status_code == 400


def kernel_bytes(sock):
    """Bytes both ways as the kernel counts them (struct tcp_info:
    tcpi_bytes_acked @120, tcpi_bytes_received @128)."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    return sum(struct.unpack_from("<QQ", raw, 120))


def keepalive_device_bytes(addr, token, cafile=None):
    """Three readings on one keep-alive connection, TLS when cafile is given,
    ended with close_notify and FIN: the kernel's count of its bytes."""
    host, port = addr.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=10)
    s = raw
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.check_hostname = False
        s = ctx.wrap_socket(raw)
    for i in range(3):
        body = b"v=%d" % i
        s.sendall(b"POST /api/v1/data HTTP/1.1\r\nHost: x\r\nX-Auth-Token: " + token.encode() +
                  b"\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        got = b""
        while b'"stored"' not in got:
            chunk = s.recv(4096)
            assert chunk, "connection closed before an answer"
            got += chunk
    if cafile:
        s = s.unwrap()
    s.shutdown(socket.SHUT_WR)
    while s.recv(4096):
        pass
    time.sleep(0.2)  # the last ACK
    total = kernel_bytes(s)
    s.close()
    return total


def test_session_bytes_match_the_kernels_count_http_and_https(srv, api):
    """Every byte of a device's keep-alive connection is in its record, the
    TLS close_notify after its last request included: HTTPS differs from the
    kernel's count by exactly what plain HTTP does (the kernel counts the
    SYN and FIN sequence numbers too)."""
    org, dev = new_org_device(api)
    off = {}
    for proto, cafile in (("http", None), ("https", srv.cert)):
        client = keepalive_device_bytes(srv.addrs[proto], dev["token"], cafile)

        def ended():
            rows = api.get("/api/v1/orgs/%s/sessions?kind=device" % org["id"]).json()
            return [r for r in rows if r["protocol"] == proto and r["ended_at"]]
        rows = wait_for(ended)
        assert len(rows) == 1
        off[proto] = client - (rows[0]["bytes_in"] + rows[0]["bytes_out"])
    assert 0 <= off["http"] <= 4
    assert off["https"] == off["http"], off


def test_usage_exact_after_kill9(fresh_server):
    srv = fresh_server(ARGS)
    api = login(srv.http)
    org, dev = new_org_device(api)
    stop = threading.Event()
    base = now_ms() - 400000

    def sender(k):
        s = requests.Session()
        i = 0
        while not stop.is_set() and i < 5000:
            try:
                s.post(srv.http + "/api/v1/data", data="v=%d %d" % (i, base + k * 10000 + i),
                       headers={"X-Auth-Token": dev["token"]}, timeout=5)
            except requests.RequestException:
                return
            i += 1
    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    srv.kill()
    stop.set()
    for t in threads:
        t.join()
    again = Server(srv.data_dir, ARGS).start()
    try:
        api = login(again.http)
        stored = sum(c["count"] for c in api.get("/api/v1/devices/%s/channels" % dev["id"]).json())
        u = by_protocol(usage(api, org["id"])["usage"])
        assert stored > 0 and u["http"]["readings"] == stored and u["http"]["messages"] == stored
        # records left open by the kill are closed as crashed
        rows = api.get("/api/v1/orgs/%s/sessions?active=true" % org["id"]).json()
        assert rows == []
    finally:
        again.stop()


def test_quota_put_keeps_fields_not_given(srv, api):
    org, _ = new_org_device(api)
    q = "/api/v1/orgs/%s/quota" % org["id"]
    assert api.put(q, json={"max_devices": 5, "max_readings_per_day": 100, "max_bytes_per_day": 9999}).status_code == 200
    r = api.put(q, json={"max_readings_per_day": 200})
    assert r.json() == {"org_id": org["id"], "max_devices": 5, "max_readings_per_day": 200,
                        "max_bytes_per_day": 9999}
    assert api.get(q).json() == r.json()
    assert api.get("/api/v1/orgs/%s/usage?to=9223372036854775807" % org["id"]).status_code == 400


def test_person_records_stay_in_their_org(srv, api):
    x, _ = new_org_device(api)
    b, _ = new_org_device(api)
    tag = time.monotonic_ns()
    both = "both-%d@example.com" % tag
    badmin = "badmin-%d@example.com" % tag
    for org, email, role in [(x, both, "admin"), (b, both, "viewer"), (b, badmin, "admin")]:
        r = api.post("/api/v1/orgs/%s/members" % org["id"],
                     json={"email": email, "role": role, "password": "member-password-1"})
        assert r.status_code == 201
    person = login(srv.http, both, "member-password-1")
    for _ in range(3):
        assert person.get("/api/v1/orgs/%s/devices" % x["id"]).status_code == 200
    admin_b = login(srv.http, badmin, "member-password-1")

    def records(org_api, org):
        return org_api.get("/api/v1/orgs/%s/sessions?kind=user" % org["id"]).json()
    uid = person.get("/api/v1/me").json()["id"]
    x_recs = wait_for(lambda: [r for r in records(api, x) if r["principal_id"] == uid])
    assert x_recs and x_recs[0]["org_id"] == x["id"] and x_recs[0]["api_requests"] == 3
    # B's admin sees nothing of what the shared member did in X
    assert all(r["org_id"] == b["id"] for r in records(admin_b, b))
    assert not [r for r in records(admin_b, b) if r["principal_id"] == uid]


def test_password_change_ends_the_other_logins_records_at_once(srv, api):
    org, _ = new_org_device(api)
    email = "twice-%d@example.com" % time.monotonic_ns()
    assert api.post("/api/v1/orgs/%s/members" % org["id"],
                    json={"email": email, "role": "admin", "password": "member-password-1"}).status_code == 201
    first = login(srv.http, email, "member-password-1")
    second = login(srv.http, email, "member-password-1")
    for who in (first, second):
        assert who.get("/api/v1/orgs/%s/devices" % org["id"]).status_code == 200
    uid = first.get("/api/v1/me").json()["id"]

    def mine():
        rows = api.get("/api/v1/orgs/%s/sessions?kind=user" % org["id"]).json()
        return [r for r in rows if r["principal_id"] == uid]
    assert wait_for(lambda: len(mine()) == 2)
    r = first.put("/api/v1/me/password", json={"current_password": "member-password-1",
                                               "new_password": "member-password-2"})
    assert r.status_code == 204
    assert second.get("/api/v1/me").status_code == 401
    # the second login's record ends now (revoked), well before the idle timeout
    ended = wait_for(lambda: [r for r in mine() if r["ended_at"]])
    assert len(ended) == 1 and ended[0]["end_reason"] == "revoked"
    assert len([r for r in mine() if r["ended_at"] is None]) == 1


def test_org_delete_closes_device_connections(srv, api):
    org, dev = new_org_device(api)
    t = Tcp(srv, dev["token"])
    t.send("a=1\n")
    assert t.line() == "ACK 1"
    assert api.delete("/api/v1/orgs/" + org["id"]).status_code == 204
    t.s.settimeout(5)
    assert t.f.readline() == b""  # closed by the server
    t.close()


def test_refused_datagram_counts_in_usage(srv, api):
    org, dev = new_org_device(api)
    udp_send(srv, dev["token"], "this is not a reading")
    rejected = wait_for(lambda: (by_protocol(usage(api, org["id"])["usage"]).get("udp") or {}).get("rejected"))
    assert rejected == 1
    u = by_protocol(usage(api, org["id"])["usage"])["udp"]
    assert u["bytes_in"] == len(dev["token"]) + len("\nthis is not a reading\n") and u["readings"] == 0
