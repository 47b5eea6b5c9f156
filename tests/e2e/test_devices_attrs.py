"""Devices describe themselves (SPEC §2): `attributes` (a small JSON object)
on create and PATCH (RFC 7396 merge), in every device answer, audited, with
documented limits; `last_seen` and `last_protocol` from the newest stored
batch, whatever protocol brought it, surviving a restart; the device list
filtered by attribute."""
import json
import socket
import time

import pytest
import requests

from conftest import login, module_server, new_org_device, now_ms
from mqtt_util import MQTT_ARGS, device_client

ARGS = MQTT_ARGS + ["--listen-tcp", "127.0.0.1:0", "--listen-udp", "127.0.0.1:0"]
srv = module_server(ARGS)

LOCATION = {"lat": 52.37, "lon": 4.89, "site": "cellar"}


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


@pytest.fixture
def org(api):
    r = api.post("/api/v1/orgs", json={"name": "attrs-%d" % time.monotonic_ns()})
    assert r.status_code == 201
    return r.json()["id"]


def create(api, org, name="boiler", **body):
    r = api.post("/api/v1/orgs/%s/devices" % org, json=dict(body, name=name))
    assert r.status_code == 201, r.text
    return r.json()


def test_attributes_on_create_are_in_every_answer(api, org):
    attrs = {"type": "sensor", "location": LOCATION, "tags": ["roof", "north"]}
    d = create(api, org, attributes=attrs)
    assert d["attributes"] == attrs and "token" in d
    assert api.get("/api/v1/devices/%s" % d["id"]).json()["attributes"] == attrs
    listed = api.get("/api/v1/orgs/%s/devices" % org).json()
    assert [x["attributes"] for x in listed] == [attrs]
    plain = create(api, org, name="plain")
    assert plain["attributes"] == {}
    assert plain["last_seen"] is None and plain["last_protocol"] is None


def test_patch_merges_as_rfc7396(api, org):
    d = create(api, org, attributes={"type": "sensor", "location": LOCATION, "tags": ["a"]})
    url = "/api/v1/devices/%s" % d["id"]
    r = api.patch(url, json={"attributes": {"location": {"site": "attic", "lat": None},
                                            "tags": ["b", "c"], "floor": 3, "type": None}})
    assert r.status_code == 200, r.text
    want = {"location": {"lon": 4.89, "site": "attic"}, "tags": ["b", "c"], "floor": 3}
    assert r.json()["attributes"] == want
    assert api.get(url).json()["attributes"] == want
    # Other fields leave the attributes as they are.
    assert api.patch(url, json={"name": "boiler-2"}).json()["attributes"] == want
    # null clears them all.
    assert api.patch(url, json={"attributes": None}).json()["attributes"] == {}


def test_attribute_changes_are_audited(api, org):
    d = create(api, org, attributes={"type": "meter"})
    assert api.patch("/api/v1/devices/%s" % d["id"],
                     json={"attributes": {"floor": 2}}).status_code == 200
    log = api.get("/api/v1/orgs/%s/audit" % org).json()
    by_action = {e["action"]: e for e in log}
    assert json.loads(by_action["device.create"]["detail"]["attributes"]) == {"type": "meter"}
    assert json.loads(by_action["device.update"]["detail"]["attributes"]) == {
        "type": "meter", "floor": 2}


@pytest.mark.parametrize("attrs,code,words", [
    ({"blob": "x" * 5000}, "attributes_too_large", "4096 bytes"),
    ({"k%d" % i: i for i in range(65)}, "attributes_too_large", "64 names"),
    ({"a": {"b": {"c": {"d": 1}}}}, "attributes_too_large", "3 levels"),
    ({"a": [[[1]]]}, "attributes_too_large", "3 levels"),
    ({"bad key": 1}, "attributes_too_large", "attribute names"),
    ([1, 2], "bad_request", "JSON object"),
    ("sensor", "bad_request", "JSON object"),
])
def test_attributes_over_the_limits_are_refused(api, org, attrs, code, words):
    r = api.post("/api/v1/orgs/%s/devices" % org, json={"name": "big", "attributes": attrs})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code and words in r.json()["error"]["message"], r.text
    assert api.get("/api/v1/orgs/%s/devices" % org).json() == []
    d = create(api, org, attributes={"ok": True})
    r = api.patch("/api/v1/devices/%s" % d["id"], json={"attributes": attrs})
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
    assert api.get("/api/v1/devices/%s" % d["id"]).json()["attributes"] == {"ok": True}


def test_merge_that_grows_past_the_limit_is_refused(api, org):
    d = create(api, org, attributes={"a": "x" * 3000})
    r = api.patch("/api/v1/devices/%s" % d["id"], json={"attributes": {"b": "y" * 1500}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "attributes_too_large"
    assert api.get("/api/v1/devices/%s" % d["id"]).json()["attributes"] == {"a": "x" * 3000}


def test_list_filtered_by_attribute(api, org):
    a = create(api, org, "a", attributes={"type": "sensor", "tags": ["roof", "north"], "floor": 3})
    b = create(api, org, "b", attributes={"type": "sensor", "tags": ["cellar"], "on": True})
    create(api, org, "c", attributes={"type": "gateway"})
    create(api, org, "d")

    def names(**params):
        r = api.get("/api/v1/orgs/%s/devices" % org,
                    params={"attr." + k: v for k, v in params.items()})
        assert r.status_code == 200, r.text
        return [d["name"] for d in r.json()]

    assert names(type="sensor") == ["a", "b"]
    assert names(tags="roof") == ["a"]
    assert names(type="sensor", tags="cellar") == ["b"]
    assert names(floor="3") == ["a"]
    assert names(on="true") == ["b"]
    assert names(type="nothing") == []
    # Paged, the filter holds on every page.
    r = api.get("/api/v1/orgs/%s/devices" % org, params={"attr.type": "sensor", "limit": 1})
    assert [d["id"] for d in r.json()] == [a["id"]]
    r = api.get("/api/v1/orgs/%s/devices" % org,
                params={"attr.type": "sensor", "limit": 1, "cursor": r.headers["Next-Cursor"]})
    assert [d["id"] for d in r.json()] == [b["id"]] and "Next-Cursor" not in r.headers
    # A filter on a name no attribute may have is refused, naming it.
    r = api.get("/api/v1/orgs/%s/devices?attr.bad%%20name=x" % org)
    assert r.status_code == 400 and "attr.bad name" in r.json()["error"]["message"]


def wait_seen(api, dev_id, protocol, after, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        d = api.get("/api/v1/devices/%s" % dev_id).json()
        if d["last_protocol"] == protocol and d["last_seen"] and d["last_seen"] >= after:
            return d
        assert time.monotonic() < deadline, d
        time.sleep(0.05)


def test_last_seen_follows_every_protocol(srv, api):
    _, dev = new_org_device(api, prefix="seen")
    t0 = now_ms()
    r = requests.post(srv.http + "/api/v1/data", headers={"X-Auth-Token": dev["token"]},
                      data="t=1", timeout=10)
    assert r.status_code == 200
    d = wait_seen(api, dev["id"], "http", t0)
    assert d["last_seen"] <= now_ms()
    r = requests.post(srv.https + "/api/v1/data", headers={"X-Auth-Token": dev["token"]},
                      data="t=2", timeout=10, verify=srv.cert)
    assert r.status_code == 200
    wait_seen(api, dev["id"], "https", t0)
    host, port = srv.addrs["tcp"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(("AUTH %s\nt=3\n" % dev["token"]).encode())
        got = b""
        while b"ACK 1" not in got:
            chunk = s.recv(4096)
            assert chunk, got
            got += chunk
    wait_seen(api, dev["id"], "tcp", t0)
    host, port = srv.addrs["udp"].rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(("%s\nt=4" % dev["token"]).encode(), (host, int(port)))
    wait_seen(api, dev["id"], "udp", t0)
    for tls, name in ((False, "mqtt"), (True, "mqtts")):
        c = device_client(srv, dev, tls=tls)
        c.publish("devices/%s/data" % dev["id"], b"t=5", qos=1)
        c.close()
        wait_seen(api, dev["id"], name, t0)
    # In the list too.
    listed = [x for x in api.get("/api/v1/orgs/%s/devices" % dev["org_id"]).json()
              if x["id"] == dev["id"]]
    assert [x["last_protocol"] for x in listed] == ["mqtts"]


def post(base, token, body="t=1", **kw):
    r = requests.post(base + "/api/v1/data", headers={"X-Auth-Token": token}, data=body,
                      timeout=10, **kw)
    assert r.status_code == 200, r.text


def test_last_seen_survives_a_clean_stop_at_once(fresh_server):
    s = fresh_server()
    api = login(s.http)
    _, dev = new_org_device(api, prefix="restart")
    t0 = now_ms()
    post(s.http, dev["token"])
    s.stop()  # at once: the flush at the stop writes it
    s.start()
    d = login(s.http).get("/api/v1/devices/%s" % dev["id"]).json()
    assert d["last_protocol"] == "http" and d["last_seen"] >= t0


def test_last_seen_survives_a_crash_within_its_bound(fresh_server):
    s = fresh_server()
    api = login(s.http)
    _, dev = new_org_device(api, prefix="crash")
    t0 = now_ms()
    post(s.http, dev["token"])
    time.sleep(2.5)  # more than the write interval (1 s) and a checkpoint
    s.kill()
    s.start()
    d = login(s.http).get("/api/v1/devices/%s" % dev["id"]).json()
    assert d["last_protocol"] == "http" and d["last_seen"] >= t0
