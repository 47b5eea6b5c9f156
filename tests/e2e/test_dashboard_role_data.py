"""A dashboard user reads the org's dashboards and exactly the (device,
channel) pairs they show (SPEC §2): a static dashboard's widgets name
them, a dynamic one's filter picks the devices and its widgets the
channels. Everything else of a device stays refused; what a deleted
dashboard showed is no longer theirs."""
import json
import time

import pytest
import requests

from conftest import login, module_server, new_org_device, now_ms

PW = "member-password-1"

srv = module_server([])


def post(base, dev, body):
    r = requests.post(base + "/api/v1/data", json=body, headers={"X-Auth-Token": dev["token"]}, timeout=30)
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def world(srv):
    admin = login(srv.http)
    org, fixed = new_org_device(admin, prefix="dashdata")
    oid = org["id"]
    boiler = admin.post("/api/v1/orgs/%s/devices" % oid, json={"name": "boiler"}).json()
    r = admin.patch("/api/v1/devices/%s" % boiler["id"], json={"attributes": {"type": "boiler"}})
    assert r.status_code == 200, r.text
    hidden = admin.post("/api/v1/orgs/%s/devices" % oid, json={"name": "hidden"}).json()
    for dev in (fixed, boiler, hidden):
        post(srv.http, dev, {"temp": 20, "hum": 40, "co2": 400})
    static = admin.post("/api/v1/orgs/%s/dashboards" % oid, json={
        "name": "fixed", "kind": "static",
        "widgets": [{"type": "line", "device_id": fixed["id"], "channels": ["temp"]}]})
    assert static.status_code == 201, static.text
    dynamic = admin.post("/api/v1/orgs/%s/dashboards" % oid, json={
        "name": "boilers", "kind": "dynamic", "device_filter": {"type": "boiler"},
        "widgets": [{"type": "gauge", "channels": ["hum"]}]})
    assert dynamic.status_code == 201, dynamic.text
    email = "dashdata-%d@example.com" % time.monotonic_ns()
    r = admin.post("/api/v1/orgs/%s/members" % oid, json={"email": email, "role": "dashboard", "password": PW})
    assert r.status_code == 201, r.text
    return {"admin": admin, "org": org, "fixed": fixed, "boiler": boiler, "hidden": hidden,
            "static": static.json(), "dynamic": dynamic.json(), "me": login(srv.http, email, PW)}


def test_they_read_the_orgs_dashboards_and_write_none(world):
    me, oid = world["me"], world["org"]["id"]
    listed = me.get("/api/v1/orgs/%s/dashboards" % oid)
    assert listed.status_code == 200, listed.text
    assert {d["id"] for d in listed.json()} == {world["static"]["id"], world["dynamic"]["id"]}
    for d in (world["static"], world["dynamic"]):
        assert me.get("/api/v1/dashboards/%s" % d["id"]).json()["name"] == d["name"]
        assert me.get("/api/v1/dashboards/%s/devices" % d["id"]).status_code == 200
    picker = me.get("/api/v1/dashboards/%s/devices" % world["dynamic"]["id"]).json()
    assert [d["id"] for d in picker] == [world["boiler"]["id"]]
    body = {"name": "mine", "kind": "static",
            "widgets": [{"type": "value", "device_id": world["hidden"]["id"], "channels": ["co2"]}]}
    assert me.post("/api/v1/orgs/%s/dashboards" % oid, json=body).status_code == 403
    assert me.put("/api/v1/dashboards/%s" % world["static"]["id"], json=body).status_code == 403
    assert me.delete("/api/v1/dashboards/%s" % world["static"]["id"]).status_code == 403


def test_data_of_the_pairs_shown_only(world):
    me = world["me"]
    fixed, boiler, hidden = world["fixed"]["id"], world["boiler"]["id"], world["hidden"]["id"]
    for dev, ch in [(fixed, "temp"), (boiler, "hum")]:
        r = me.get("/api/v1/devices/%s/data" % dev, params={"channel": ch})
        assert r.status_code == 200, r.text
        assert list(r.json()["series"]) == [ch]
    for dev, ch in [(fixed, "hum"), (fixed, "temp,hum"), (boiler, "temp"), (hidden, "temp"), (hidden, "hum")]:
        r = me.get("/api/v1/devices/%s/data" % dev, params={"channel": ch})
        assert r.status_code == 403, (dev, ch, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    assert me.get("/api/v1/devices/%s/data" % fixed).status_code == 403   # every channel: no
    assert set(me.get("/api/v1/devices/%s/latest" % fixed).json()) == {"temp"}
    assert set(me.get("/api/v1/devices/%s/latest" % boiler).json()) == {"hum"}
    assert me.get("/api/v1/devices/%s/latest" % hidden).json() == {}
    # The rest of a device stays refused, shown or not.
    for path in ["/api/v1/devices/%s" % fixed, "/api/v1/devices/%s/channels" % fixed,
                 "/api/v1/orgs/%s/devices" % world["org"]["id"], "/api/v1/orgs/%s/export" % world["org"]["id"]]:
        assert me.get(path).status_code == 403, path


def sse_next(r, within=5):
    buf, t0 = b"", time.monotonic()
    for chunk in r.iter_content(chunk_size=None):
        buf += chunk
        while b"\n\n" in buf:
            frame, buf = buf.split(b"\n\n", 1)
            data = [l[5:].strip() for l in frame.split(b"\n") if l.startswith(b"data:")]
            if data and not frame.startswith(b"event:"):
                return json.loads(b"\n".join(data))
        assert time.monotonic() - t0 < within
    raise AssertionError("the stream ended")


def test_live_of_the_pairs_shown_only(srv, world):
    me, oid = world["me"], world["org"]["id"]
    url = srv.http + "/api/v1/orgs/%s/live" % oid
    for q in [{"device": world["fixed"]["id"], "channel": "hum"}, {"device": world["hidden"]["id"], "channel": "temp"},
              {"device": world["fixed"]["id"]}, {"channel": "temp"}]:
        r = me.s.get(url, params=q, stream=True, timeout=(5, 5))
        assert r.status_code == 403, (q, r.text)
        r.close()
    r = me.s.get(url, params={"device": world["fixed"]["id"], "channel": "temp"}, stream=True, timeout=(5, 5))
    assert r.status_code == 200, r.text
    post(srv.http, world["hidden"], {"temp": 1})
    post(srv.http, world["fixed"], {"hum": 2})
    post(srv.http, world["fixed"], {"temp": 3, "hum": 4})
    assert sse_next(r)["values"] == {"temp": 3}
    r.close()


def test_a_deleted_dashboard_shows_nothing_more(srv, world):
    admin, oid = world["admin"], world["org"]["id"]
    org, dev = new_org_device(admin, prefix="dashdata-del")
    d = admin.post("/api/v1/orgs/%s/dashboards" % org["id"], json={
        "name": "gone", "kind": "static",
        "widgets": [{"type": "value", "device_id": dev["id"], "channels": ["x"]}]}).json()
    post(srv.http, dev, {"x": 1})
    email = "dashdata-del-%d@example.com" % time.monotonic_ns()
    r = admin.post("/api/v1/orgs/%s/members" % org["id"], json={"email": email, "role": "dashboard", "password": PW})
    assert r.status_code == 201, r.text
    me = login(srv.http, email, PW)
    assert me.get("/api/v1/devices/%s/data?channel=x" % dev["id"]).status_code == 200
    assert admin.delete("/api/v1/dashboards/%s" % d["id"]).status_code == 204
    assert me.get("/api/v1/devices/%s/data?channel=x" % dev["id"]).status_code == 403
    assert me.get("/api/v1/devices/%s/latest" % dev["id"]).json() == {}
