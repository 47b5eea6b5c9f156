"""Device ingest over HTTP and HTTPS (SPEC §3.1-3.3) and reading it back."""
import json
import subprocess
import time

import requests

from conftest import now_ms


def post(base, token, body, ctype="application/json", verify=True):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(base + "/api/v1/data", data=data, timeout=30, verify=verify,
                         headers={"X-Auth-Token": token, "Content-Type": ctype})


def test_json_single_set_server_time(server, admin, device):
    before = now_ms()
    r = post(server.http, device["token"], {"temp": 21.5, "rh": 40})
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 2}
    latest = admin.get("/api/v1/devices/%s/latest" % device["id"]).json()
    assert latest["temp"]["value"] == 21.5 and latest["rh"]["value"] == 40
    assert before <= latest["temp"]["ts"] <= now_ms()


def test_json_forms_and_batch_over_https(server, admin, device):
    ts = now_ms() - 60000
    body = [{"ts": ts, "values": {"temp": 1.0}}, {"temp": 2.0, "ts": ts + 1}, {"ts": ts + 2, "values": {"temp": 3, "rh": 9}}]
    r = post(server.https, device["token"], body, verify=server.cert)
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 4}
    r = admin.get("/api/v1/devices/%s/data?channel=temp&from=%d" % (device["id"], ts))
    assert r.json() == {"series": {"temp": [[ts, 1.0], [ts + 1, 2.0], [ts + 2, 3.0]]}}


def test_line_format(server, admin, device):
    ts = now_ms() - 5000
    body = "# a comment\r\ntemp=21.5,rh=40 %d\r\n\ntemp=21.6\n" % ts
    r = post(server.http, device["token"], body, ctype="text/plain")
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 3}
    chans = {c["name"]: c for c in admin.get("/api/v1/devices/%s/channels" % device["id"]).json()}
    assert chans["temp"]["count"] == 2 and chans["rh"]["count"] == 1
    assert chans["temp"]["last_value"] == 21.6


def test_curl_without_content_type(server, admin, device):
    out = subprocess.run(["curl", "-sS", "-H", "X-Auth-Token: " + device["token"],
                          "-d", '{"v": 7}', server.http + "/api/v1/data"],
                         capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout) == {"stored": 1}
    out = subprocess.run(["curl", "-sS", "--cacert", server.cert, "-H", "X-Auth-Token: " + device["token"],
                          "--data-binary", "w=8", server.https + "/api/v1/data"],
                         capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout) == {"stored": 1}


def test_bad_reading_stores_nothing(server, admin, device):
    ts = now_ms() - 1000
    body = [{"ts": ts, "values": {"good": 1}}, {"ts": ts, "values": {"bad name": 2}}]
    r = post(server.http, device["token"], body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "bad_reading" and err["index"] == 1
    r = post(server.http, device["token"], "good=1 %d\ngood=oops\n" % ts, ctype="text/plain")
    assert r.status_code == 400 and r.json()["error"]["line"] == 2
    assert admin.get("/api/v1/devices/%s/channels" % device["id"]).json() == []


def test_refusals(server, device):
    tok = device["token"]
    cases = [
        ('{"temp": "hot"}', "application/json"),
        ('{"temp": true}', "application/json"),
        ('{"temp": 1e999}', "application/json"),
        ('{"temp": NaN}', "application/json"),
        ('{"temp": 1', "application/json"),
        (b'{"t\xff": 1}', "application/json"),
        ('{"ts": 946684799999, "values": {"t": 1}}', "application/json"),
        ('{"ts": %d, "values": {"t": 1}}' % (now_ms() + 11 * 60 * 1000), "application/json"),
        ('{"%s": 1}' % ("c" * 65), "application/json"),
        ("[]", "application/json"),
        ("{}", "application/json"),
        ("temp=inf", "text/plain"),
        ("temp=nan", "text/plain"),
        ("temp 1", "text/plain"),
        ("t=1 12x", "text/plain"),
    ]
    for body, ctype in cases:
        r = post(server.http, tok, body, ctype)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == "bad_reading", body


def test_invalid_token(server):
    r = post(server.http, "ssd_" + "0" * 64, {"t": 1})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    r = requests.post(server.http + "/api/v1/data", json={"t": 1}, timeout=10)
    assert r.status_code == 401


def test_too_many_readings(server, device):
    body = "\n".join("c=%d" % i for i in range(10001))
    r = post(server.http, device["token"], body, "text/plain")
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    body = "\n".join("c%d=%d %d" % (i % 50, i, now_ms() - 100000 + i) for i in range(10000))
    assert post(server.http, device["token"], body, "text/plain").json() == {"stored": 10000}


def test_body_too_large(server, device):
    body = "x" * (1024 * 1024 + 1)
    r = post(server.http, device["token"], body, "text/plain")
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def test_query_order_limit_and_aggregates(server, admin, device):
    base = (now_ms() // 60000 - 10) * 60000
    body = [{"ts": base + i * 10000, "values": {"v": float(i)}} for i in range(12)]
    assert post(server.http, device["token"], body).status_code == 200
    d = "/api/v1/devices/%s/data" % device["id"]
    r = admin.get(d + "?channel=v&order=desc&limit=3").json()
    assert r["series"]["v"] == [[base + 110000, 11.0], [base + 100000, 10.0], [base + 90000, 9.0]]
    frm = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base / 1000))
    r = admin.get(d + "?channel=v&from=%s&to=%d" % (frm, base + 30000)).json()
    assert [p[1] for p in r["series"]["v"]] == [0.0, 1.0, 2.0]
    expect = {"avg": [2.5, 8.5], "min": [0, 6], "max": [5, 11], "sum": [15, 51],
              "count": [6, 6], "first": [0, 6], "last": [5, 11]}
    for fn, vals in expect.items():
        r = admin.get(d + "?channel=v&every=60000&fn=" + fn).json()
        assert r["series"]["v"] == [[base, vals[0]], [base + 60000, vals[1]]], fn
    assert admin.get(d + "?channel=v&fn=median&every=1000").status_code == 400
    assert admin.get(d + "?channel=v&limit=0").status_code == 400
    assert admin.get(d + "?channel=v&from=yesterday").status_code == 400


def test_same_ts_replaces(server, admin, device):
    ts = now_ms() - 3000
    post(server.http, device["token"], {"ts": ts, "values": {"x": 1}})
    post(server.http, device["token"], {"ts": ts, "values": {"x": 2}})
    r = admin.get("/api/v1/devices/%s/data?channel=x" % device["id"]).json()
    assert r["series"]["x"] == [[ts, 2.0]]
