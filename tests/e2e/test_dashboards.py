"""Dashboards over REST (SPEC §2, docs/api.md "Dashboards"): an org's
static and dynamic dashboards, created, read, listed by pages, replaced and
deleted; every field checked on write with a message naming it; another
org's dashboard or device answers 404; viewers read, editors write, API keys
by scope; writes audited; gone with their org; bounded per org and in size."""
import os
import sqlite3
import time

import pytest

from conftest import Api, login, module_server

srv = module_server([])
PW = "dashboard-pass-123"


@pytest.fixture(scope="module")
def admin(srv):
    return login(srv.http)


class World:
    """An org with devices, members of each role and keys of each scope;
    another org with a device and an owner."""

    def __init__(self, srv, admin):
        tag = str(time.monotonic_ns())
        self.admin = admin
        self.org = admin.post("/api/v1/orgs", json={"name": "dash-" + tag}).json()["id"]
        self.other = admin.post("/api/v1/orgs", json={"name": "other-" + tag}).json()["id"]
        self.boiler = self.device(self.org, "boiler-a", {"type": "boiler",
                                                         "location": {"lat": 52.1, "lon": 4.3}})
        self.boiler2 = self.device(self.org, "boiler-b", {"type": "boiler", "tags": ["x"]})
        self.pump = self.device(self.org, "pump", {"type": "pump"})
        self.foreign = self.device(self.other, "foreign", {"type": "boiler"})
        self.people = {}
        for role in ["viewer", "editor"]:
            email = "%s-%s@example.com" % (role, tag)
            r = admin.post("/api/v1/orgs/%s/members" % self.org,
                           json={"email": email, "role": role, "password": PW})
            assert r.status_code == 201, r.text
            self.people[role] = login(srv.http, email, PW)
        stranger = "stranger-%s@example.com" % tag
        r = admin.post("/api/v1/orgs/%s/members" % self.other,
                       json={"email": stranger, "role": "owner", "password": PW})
        assert r.status_code == 201, r.text
        self.people["stranger"] = login(srv.http, stranger, PW)
        for scope in ["data:read", "data:write", "manage"]:
            r = admin.post("/api/v1/orgs/%s/apikeys" % self.org,
                           json={"name": scope, "scopes": [scope]})
            assert r.status_code == 201, r.text
            self.people[scope] = Api(srv.http, r.json()["key"])

    def device(self, org, name, attrs):
        r = self.admin.post("/api/v1/orgs/%s/devices" % org,
                            json={"name": name, "attributes": attrs})
        assert r.status_code == 201, r.text
        return r.json()["id"]


@pytest.fixture(scope="module")
def world(srv, admin):
    return World(srv, admin)


def static_body(world, name="Boiler room"):
    return {"name": name, "kind": "static", "widgets": [
        {"type": "line", "title": "Temperature", "device_id": world.boiler,
         "channels": ["temp", "hum"], "range": 86400000,
         "options": {"min": 0, "max": 100, "unit": "°C", "fn": "avg", "every": 60000}},
        {"type": "gauge", "device_id": world.boiler2, "channels": ["pressure"]},
        {"type": "map", "title": "Where"}]}


def dynamic_body(name="Any boiler", **extra):
    body = {"name": name, "kind": "dynamic", "device_filter": {"type": "boiler"},
            "widgets": [{"type": "value", "channels": ["temp"]},
                        {"type": "table", "channels": ["temp", "hum"], "range": 1000}]}
    body.update(extra)
    return body


def create(api, org, body, status=201):
    r = api.post("/api/v1/orgs/%s/dashboards" % org, json=body)
    assert r.status_code == status, r.text
    return r.json()


def test_static_dashboard_round_trip(world, admin):
    before = int(time.time() * 1000)
    d = create(admin, world.org, static_body(world))
    assert d["name"] == "Boiler room" and d["kind"] == "static" and d["org_id"] == world.org
    assert len(d["id"]) == 24 and before <= d["created_at"] == d["updated_at"]
    assert "device_filter" not in d
    w = d["widgets"]
    assert w[0] == {"type": "line", "title": "Temperature", "device_id": world.boiler,
                    "channels": ["temp", "hum"], "range": 86400000,
                    "options": {"min": 0, "max": 100, "unit": "°C", "fn": "avg",
                                "every": 60000}}
    # defaults: no title "", range an hour, options {}
    assert w[1] == {"type": "gauge", "title": "", "device_id": world.boiler2,
                    "channels": ["pressure"], "range": 3600000, "options": {}}
    assert w[2] == {"type": "map", "title": "Where", "range": 3600000, "options": {}}
    got = admin.get("/api/v1/dashboards/" + d["id"])
    assert got.status_code == 200 and got.json() == d

    # PUT replaces it whole; what a GET gave may be sent back as it is
    changed = dict(got.json(), name="Cellar", widgets=got.json()["widgets"][:1])
    time.sleep(0.002)
    r = admin.put("/api/v1/dashboards/" + d["id"], json=changed)
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["name"] == "Cellar" and len(after["widgets"]) == 1
    assert after["created_at"] == d["created_at"] and after["updated_at"] > d["updated_at"]
    assert admin.get("/api/v1/dashboards/" + d["id"]).json() == after
    # to dynamic: its widgets lose their devices
    r = admin.put("/api/v1/dashboards/" + d["id"], json=dynamic_body())
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "dynamic" and r.json()["device_filter"] == {"type": "boiler"}

    assert admin.delete("/api/v1/dashboards/" + d["id"]).status_code == 204
    for method in ("get", "put", "delete"):
        r = getattr(admin, method)("/api/v1/dashboards/" + d["id"], json=dynamic_body())
        assert r.status_code == 404, (method, r.text)
        assert r.json()["error"]["code"] == "not_found"


def test_list_pages_by_name(world, admin):
    tag = str(time.monotonic_ns())
    org = admin.post("/api/v1/orgs", json={"name": "paged-" + tag}).json()["id"]
    for name in ["c", "a", "b"]:
        create(admin, org, dynamic_body(name))
    r = admin.get("/api/v1/orgs/%s/dashboards" % org)
    assert r.status_code == 200 and [d["name"] for d in r.json()] == ["a", "b", "c"]
    assert "Next-Cursor" not in r.headers
    assert r.json()[0]["widgets"][0]["channels"] == ["temp"]
    r = admin.get("/api/v1/orgs/%s/dashboards?limit=2" % org)
    assert [d["name"] for d in r.json()] == ["a", "b"]
    cursor = r.headers["Next-Cursor"]
    r = admin.get("/api/v1/orgs/%s/dashboards" % org, params={"limit": 2, "cursor": cursor})
    assert [d["name"] for d in r.json()] == ["c"] and "Next-Cursor" not in r.headers
    for bad in ["limit=0", "limit=257", "cursor=nope", "colour=red"]:
        r = admin.get("/api/v1/orgs/%s/dashboards?%s" % (org, bad))
        assert r.status_code == 400, bad
        assert bad.split("=")[0] in r.json()["error"]["message"]
    r = admin.get("/api/v1/dashboards/%s?x=1" % admin.get(
        "/api/v1/orgs/%s/dashboards" % org).json()[0]["id"])
    assert r.status_code == 400 and "'x'" in r.json()["error"]["message"]


def test_devices_a_dashboard_may_show(world, admin):
    dyn = create(admin, world.org, dynamic_body())
    r = admin.get("/api/v1/dashboards/%s/devices" % dyn["id"])
    assert r.status_code == 200, r.text
    rows = r.json()
    assert [d["id"] for d in rows] == [world.boiler, world.boiler2]  # by name; not the pump
    assert set(rows[0]) == {"id", "name", "attributes", "last_seen"}
    assert rows[0]["attributes"]["location"] == {"lat": 52.1, "lon": 4.3}
    page = admin.get("/api/v1/dashboards/%s/devices?limit=1" % dyn["id"])
    assert [d["id"] for d in page.json()] == [world.boiler]
    nxt = admin.get("/api/v1/dashboards/%s/devices" % dyn["id"],
                    params={"limit": 1, "cursor": page.headers["Next-Cursor"]})
    assert [d["id"] for d in nxt.json()] == [world.boiler2]
    # no filter: every device of the org (never another org's)
    every = create(admin, world.org, {"name": "all", "kind": "dynamic",
                                      "widgets": [{"type": "line", "channels": ["temp"]}]})
    ids = [d["id"] for d in admin.get("/api/v1/dashboards/%s/devices" % every["id"]).json()]
    assert ids == [world.boiler, world.boiler2, world.pump]
    # a filter value found in a list attribute (tags), numbers by value
    tags = create(admin, world.org, dynamic_body("tags", device_filter={"tags": "x"}))
    ids = [d["id"] for d in admin.get("/api/v1/dashboards/%s/devices" % tags["id"]).json()]
    assert ids == [world.boiler2]
    # static: the devices its widgets name
    st = create(admin, world.org, static_body(world, "static"))
    ids = [d["id"] for d in admin.get("/api/v1/dashboards/%s/devices" % st["id"]).json()]
    assert ids == [world.boiler, world.boiler2]


def widget(**kw):
    w = {"type": "line", "channels": ["temp"]}
    w.update(kw)
    return {k: v for k, v in w.items() if v is not None}


@pytest.mark.parametrize("body,words", [
    ({"kind": "static"}, "name"),
    ({"name": "  ", "kind": "static"}, "name"),
    ({"name": "x" * 201, "kind": "static"}, "name"),
    ({"name": "n"}, "kind"),
    ({"name": "n", "kind": "fancy"}, "kind"),
    ({"name": "n", "kind": "static", "colour": "red"}, "unknown field 'colour'"),
    ({"name": "n", "kind": "static", "device_filter": {"type": "x"}}, "device_filter"),
    ({"name": "n", "kind": "dynamic", "device_filter": ["x"]}, "device_filter"),
    ({"name": "n", "kind": "dynamic", "device_filter": {"bad key": "x"}}, "device_filter"),
    ({"name": "n", "kind": "dynamic", "device_filter": {"t": {"a": 1}}}, "device_filter"),
    ({"name": "n", "kind": "dynamic",
      "device_filter": {"k%d" % i: 1 for i in range(9)}}, "device_filter"),
    ({"name": "n", "kind": "dynamic", "widgets": {}}, "widgets"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget()] * 33}, "at most 32 widgets"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(), 7]}, "widgets[1]"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(), widget(type="pie")]},
     "widgets[1].type"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(type=None)]}, "widgets[0].type"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(colour=1)]},
     "widgets[0]: unknown field 'colour'"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(title=5)]}, "widgets[0].title"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(title="t" * 201)]},
     "widgets[0].title"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(device_id="0" * 24)]},
     "widgets[0].device_id: a dynamic dashboard names no device"),
    ({"name": "n", "kind": "static", "widgets": [widget()]},
     "widgets[0].device_id: required"),
    ({"name": "n", "kind": "static", "widgets": [widget(type="map", channels=None,
                                                        device_id="0" * 24)]},
     "widgets[0].device_id: a map"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(type="map")]},
     "widgets[0].channels: a map"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(channels=None)]},
     "widgets[0].channels"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(channels=[])]}, "widgets[0].channels"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(channels="temp")]},
     "widgets[0].channels"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(channels=["bad name"])]},
     "widgets[0].channels"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(channels=["c" * 65])]},
     "widgets[0].channels"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(channels=["c%d" % i for i in range(9)])]},
     "1 to 8 channel names"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(range=999)]}, "widgets[0].range"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(range=31622400001)]},
     "widgets[0].range"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(range=1500.5)]}, "widgets[0].range"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(range="1h")]}, "widgets[0].range"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(options=[1])]}, "widgets[0].options"),
    ({"name": "n", "kind": "dynamic", "widgets": [widget(options={"x": "y" * 2100})]},
     "at most 2048 bytes"),
])
def test_every_bad_field_is_named(world, admin, body, words):
    r = admin.post("/api/v1/orgs/%s/dashboards" % world.org, json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_request" and words in err["message"], err


def test_limits_at_the_edge_are_taken(world, admin):
    body = {"name": "x" * 200, "kind": "dynamic", "device_filter": {"k%d" % i: i for i in range(8)},
            "widgets": [widget(channels=["c%d" % i for i in range(8)], range=31622400000,
                               title="t" * 200, options={"x": "y" * 2000})] * 32}
    create(admin, world.org, body)
    create(admin, world.org, dict(body, widgets=[widget(range=1000)]))


def test_not_json_or_too_large(world, admin):
    url = "/api/v1/orgs/%s/dashboards" % world.org
    r = admin.post(url, data=b"[1]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    big = dict(dynamic_body(), name="big")
    padding = b" " * (256 * 1024)
    import json as _json
    r = admin.post(url, data=_json.dumps(big).encode() + padding,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "too_large" and "262144" in r.json()["error"]["message"]


def test_device_of_another_org_or_unknown_is_404_alike(world, admin):
    answers = []
    for dev in [world.foreign, "f" * 24, "nonsense"]:
        body = {"name": "n", "kind": "static", "widgets": [
            widget(), widget(device_id=dev)]}
        body["widgets"][0]["device_id"] = world.boiler
        r = admin.post("/api/v1/orgs/%s/dashboards" % world.org, json=body)
        assert r.status_code == 404, r.text
        answers.append(r.json())
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["error"] == {"code": "not_found", "message":
                                   "widgets[1].device_id: no such device in this organisation"}
    # and on a PUT
    d = create(admin, world.org, static_body(world, "put-404"))
    r = admin.put("/api/v1/dashboards/" + d["id"], json={
        "name": "n", "kind": "static", "widgets": [widget(device_id=world.foreign)]})
    assert r.status_code == 404
    assert admin.get("/api/v1/dashboards/" + d["id"]).json() == d


def test_another_orgs_dashboard_is_404(world, admin):
    d = create(admin, world.org, static_body(world, "private"))
    stranger = world.people["stranger"]
    for method, path in [("get", ""), ("put", ""), ("delete", ""), ("get", "/devices")]:
        r = getattr(stranger, method)("/api/v1/dashboards/%s%s" % (d["id"], path),
                                      json=dynamic_body())
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    for method in ("get", "post"):
        r = getattr(stranger, method)("/api/v1/orgs/%s/dashboards" % world.org,
                                      json=dynamic_body())
        assert r.status_code == 404
    assert admin.get("/api/v1/dashboards/" + d["id"]).json() == d


@pytest.mark.parametrize("who,reads,writes", [
    ("viewer", 200, 403), ("editor", 200, 201), ("data:read", 200, 403),
    ("data:write", 403, 403), ("manage", 200, 201),
])
def test_who_reads_and_writes(world, admin, who, reads, writes):
    api = world.people[who]
    d = create(admin, world.org, static_body(world, "roles-" + who))
    for path in ["/api/v1/orgs/%s/dashboards" % world.org, "/api/v1/dashboards/" + d["id"],
                 "/api/v1/dashboards/%s/devices" % d["id"]]:
        assert api.get(path).status_code == reads, path
    r = api.post("/api/v1/orgs/%s/dashboards" % world.org, json=dynamic_body("by-" + who))
    assert r.status_code == writes, r.text
    ok = 200 if writes == 201 else writes
    assert api.put("/api/v1/dashboards/" + d["id"], json=dynamic_body()).status_code == ok
    ok = 204 if writes == 201 else writes
    assert api.delete("/api/v1/dashboards/" + d["id"]).status_code == ok
    if writes != 201:
        r = api.post("/api/v1/orgs/%s/dashboards" % world.org, json={})
        assert r.status_code == 403  # refused before the body is looked at


def test_writes_are_audited(world, admin):
    editor = world.people["editor"]
    d = create(editor, world.org, static_body(world, "audited"))
    assert d["created_by"].startswith("user:")
    assert editor.put("/api/v1/dashboards/" + d["id"],
                      json=dynamic_body("audited-2")).status_code == 200
    assert editor.delete("/api/v1/dashboards/" + d["id"]).status_code == 204
    log = admin.get("/api/v1/orgs/%s/audit" % world.org).json()
    mine = [e for e in log if e["target"] == "dashboard:" + d["id"]]
    by_action = {e["action"]: e for e in mine}
    assert set(by_action) == {"dashboard.create", "dashboard.update", "dashboard.delete"}
    assert by_action["dashboard.create"]["detail"] == {"name": "audited", "kind": "static",
                                                      "widgets": 3}
    assert by_action["dashboard.update"]["detail"] == {"name": "audited-2", "kind": "dynamic",
                                                      "widgets": 2}
    assert by_action["dashboard.delete"]["detail"] == {"name": "audited-2"}
    assert all(e["actor"] == d["created_by"] for e in mine)


def test_an_org_holds_256_and_its_dashboards_go_with_it(srv, admin):
    org = admin.post("/api/v1/orgs", json={"name": "full-%d" % time.monotonic_ns()}).json()["id"]
    small = {"name": "d", "kind": "dynamic"}
    for i in range(256):
        create(admin, org, dict(small, name="d%03d" % i))
    r = admin.post("/api/v1/orgs/%s/dashboards" % org, json=small)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "conflict" and "256 dashboards" in r.json()["error"]["message"]
    listed = admin.get("/api/v1/orgs/%s/dashboards" % org).json()
    assert len(listed) == 256
    assert admin.delete("/api/v1/dashboards/" + listed[0]["id"]).status_code == 204
    create(admin, org, small)

    assert admin.delete("/api/v1/orgs/" + org).status_code == 204
    assert admin.get("/api/v1/dashboards/" + listed[1]["id"]).status_code == 404
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(srv.data_dir, "sensorspace.db"),
                         uri=True)
    try:
        left = db.execute("SELECT count(*) FROM dashboards WHERE org_id = ?", (org,)).fetchone()
    finally:
        db.close()
    assert left == (0,)
