"""The dashboard role (SPEC §2): below viewer, a "dashboard user" sees the
org's dashboards and the data their widgets show, nothing else. Every
route of the REST API is called as one, and each refuses them but the few
they need; roles stored by an earlier release keep their powers; the live
stream's channel filter."""
import json
import os
import re
import socket
import sqlite3
import struct
import time

import pytest
import requests

from conftest import login, module_server, new_org_device, now_ms, rewind_schema

PW = "member-password-1"
ROUTER_C = os.path.join(os.path.dirname(__file__), "../../src/http/router.c")

srv = module_server([])


def member(api, org_id, role, email=None):
    email = email or "dash-%s-%d@example.com" % (role, time.monotonic_ns())
    r = api.post("/api/v1/orgs/%s/members" % org_id, json={"email": email, "role": role, "password": PW})
    assert r.status_code == 201, r.text
    return email, r.json()["user_id"]


def post(base, dev, body):
    r = requests.post(base + "/api/v1/data", json=body, headers={"X-Auth-Token": dev["token"]}, timeout=30)
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def world(srv):
    """An org with a device with readings, a dashboard user of it, and
    things of every kind in it for the routes to name; another org the
    user has nothing to do with."""
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="dash")
    other, other_dev = new_org_device(admin, prefix="dash-other")
    post(srv.http, dev, {"temp": 21.5, "hum": 40})
    email, uid = member(admin, org["id"], "dashboard")
    _, viewer_id = member(admin, org["id"], "viewer")
    # A dashboard of the org shows another device: `dev` is one no
    # dashboard shows.
    shown = admin.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "shown"}).json()
    dash = admin.post("/api/v1/orgs/%s/dashboards" % org["id"], json={
        "name": "board", "kind": "static",
        "widgets": [{"type": "line", "device_id": shown["id"], "channels": ["temp"]}]})
    assert dash.status_code == 201, dash.text
    key = admin.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "k", "scopes": ["data:read"]})
    assert key.status_code == 201, key.text
    # An invitation pending in the org: an admin of it invites a person
    # who has an account elsewhere.
    org_admin_email, _ = member(admin, org["id"], "admin")
    elsewhere_email, _ = member(admin, other["id"], "viewer")
    inv = login(srv.http, org_admin_email, PW).post(
        "/api/v1/orgs/%s/members" % org["id"], json={"email": elsewhere_email, "role": "viewer", "password": PW})
    assert inv.status_code in (201, 202), inv.text
    return {
        "admin": admin, "org": org, "dev": dev, "other": other, "other_dev": other_dev,
        "email": email, "uid": uid, "viewer_id": viewer_id, "key_id": key.json()["id"],
        "inv_id": inv.json()["invitation"]["id"], "dash_id": dash.json()["id"],
    }


# ---- every route ------------------------------------------------------------------------

# Every route of src/http/router.c's table, and the import (routed before
# it), with what a dashboard user of org {org} gets. "me": the person's own
# account (any person, whatever their roles); "dash": opened to the role;
# "public": no credential needed; a number: the refusal.
ROUTES = [
    ("GET", "/healthz", "public"),
    ("GET", "/metrics", "public"),              # open on loopback only (operators)
    ("POST", "/api/v1/auth/login", "me"),
    ("POST", "/api/v1/auth/logout", "me"),
    ("GET", "/api/v1/me", "me"),
    ("PUT", "/api/v1/me/password", "me"),
    ("GET", "/api/v1/me/sessions", "me"),
    ("DELETE", "/api/v1/me/sessions/{session}", "me"),
    ("PATCH", "/api/v1/users/{uid}", 403),
    ("PUT", "/api/v1/users/{uid}/password", 403),
    ("POST", "/api/v1/users/{uid}/unlock", 403),
    ("GET", "/api/v1/audit", 403),
    ("GET", "/api/v1/orgs", "dash"),
    ("POST", "/api/v1/orgs", 403),
    ("GET", "/api/v1/orgs/{org}", "dash"),
    ("PATCH", "/api/v1/orgs/{org}", 403),
    ("DELETE", "/api/v1/orgs/{org}", 403),
    ("PATCH", "/api/v1/orgs/{org}/members/{viewer}", 403),
    ("DELETE", "/api/v1/orgs/{org}/members/{viewer}", 403),
    ("GET", "/api/v1/orgs/{org}/apikeys", 403),
    ("POST", "/api/v1/orgs/{org}/apikeys", 403),
    ("DELETE", "/api/v1/apikeys/{key}", 403),
    ("GET", "/api/v1/orgs/{org}/audit", 403),
    ("GET", "/api/v1/orgs/{org}/usage", 403),
    ("GET", "/api/v1/orgs/{org}/sessions", 403),
    ("GET", "/api/v1/orgs/{org}/quota", 403),
    ("PUT", "/api/v1/orgs/{org}/quota", 403),
    ("GET", "/api/v1/orgs/{org}/members", 403),
    ("POST", "/api/v1/orgs/{org}/members", 403),
    ("GET", "/api/v1/orgs/{org}/invitations", 403),
    ("DELETE", "/api/v1/orgs/{org}/invitations/{inv}", 403),
    ("GET", "/api/v1/me/invitations", "me"),
    ("POST", "/api/v1/invitations/{inv}/accept", "me"),    # not theirs: 404
    ("POST", "/api/v1/invitations/{inv}/decline", "me"),   # not theirs: 404
    ("GET", "/api/v1/orgs/{org}/devices", 403),
    ("POST", "/api/v1/orgs/{org}/devices", 403),
    ("GET", "/api/v1/orgs/{org}/dashboards", "dash"),
    ("POST", "/api/v1/orgs/{org}/dashboards", 403),
    ("GET", "/api/v1/dashboards/{dash}", "dash"),
    ("PUT", "/api/v1/dashboards/{dash}", 403),
    ("DELETE", "/api/v1/dashboards/{dash}", 403),
    ("GET", "/api/v1/dashboards/{dash}/devices", "dash"),
    ("GET", "/api/v1/devices/{dev}", 403),
    ("PATCH", "/api/v1/devices/{dev}", 403),
    ("DELETE", "/api/v1/devices/{dev}", 403),
    ("POST", "/api/v1/devices/{dev}/token", 403),
    ("GET", "/api/v1/devices/{dev}/channels", 403),
    ("GET", "/api/v1/devices/{dev}/latest", "dash"),
    ("GET", "/api/v1/devices/{dev}/data", "dash"),
    ("DELETE", "/api/v1/devices/{dev}/data", 403),
    ("GET", "/api/v1/orgs/{org}/export", 403),
    ("GET", "/api/v1/orgs/{org}/live", "dash"),
    ("POST", "/api/v1/orgs/{org}/import", 403),
]

# The bodies that would be accepted from someone allowed: a refusal is then
# for who asks, never for what they sent.
BODIES = {
    ("PATCH", "/api/v1/users/{uid}"): {"disabled": True},
    ("PUT", "/api/v1/users/{uid}/password"): {"new_password": "a-long-password-2"},
    ("POST", "/api/v1/orgs"): {"name": "dash-made", "parent_id": "{org}"},
    ("PATCH", "/api/v1/orgs/{org}"): {"name": "renamed"},
    ("PATCH", "/api/v1/orgs/{org}/members/{viewer}"): {"role": "dashboard"},
    ("POST", "/api/v1/orgs/{org}/apikeys"): {"name": "mine", "scopes": ["data:read"]},
    ("PUT", "/api/v1/orgs/{org}/quota"): {"max_devices": 10},
    ("POST", "/api/v1/orgs/{org}/members"): {"email": "x-dash@example.com", "role": "dashboard",
                                            "password": PW},
    ("POST", "/api/v1/orgs/{org}/devices"): {"name": "mine"},
    ("PATCH", "/api/v1/devices/{dev}"): {"name": "renamed"},
    ("POST", "/api/v1/orgs/{org}/dashboards"): {"name": "mine", "kind": "dynamic",
                                               "widgets": [{"type": "value", "channels": ["temp"]}]},
    ("PUT", "/api/v1/dashboards/{dash}"): {"name": "mine", "kind": "dynamic",
                                          "widgets": [{"type": "value", "channels": ["temp"]}]},
}


def router_routes():
    with open(ROUTER_C) as f:
        text = f.read()
    table = text[text.index("static const route routes[]"):]
    table = table[:table.index("};")]
    return {(m, p.replace("{}", "{}")) for m, p in re.findall(r'\{HTTP_(\w+), "([^"]+)"', table)}


def test_the_table_names_every_route():
    mine = {(m, re.sub(r"\{\w+\}", "{}", p)) for m, p, _ in ROUTES}
    router = router_routes() | {("POST", "/api/v1/orgs/{}/import")}
    assert mine == router, "routes not in this test: %s; gone: %s" % (router - mine, mine - router)


def fill(text, ids):
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], text)


def test_every_route_refuses_a_dashboard_user_but_their_own(srv, world):
    admin = world["admin"]
    me = login(srv.http, world["email"], PW)
    spare = login(srv.http, world["email"], PW)   # a session of theirs to end
    sessions = me.get("/api/v1/me/sessions").json()
    mine = me.get("/api/v1/me").json()
    ids = {"org": world["org"]["id"], "dev": world["dev"]["id"], "uid": world["viewer_id"],
           "viewer": world["viewer_id"], "key": world["key_id"], "inv": world["inv_id"],
           "dash": world["dash_id"]}
    ids["session"] = [s["id"] for s in sessions if not s.get("current")][0]
    seen = []
    for method, path, want in ROUTES:
        if (method, path) in [("POST", "/api/v1/auth/logout"), ("PUT", "/api/v1/me/password")]:
            continue   # below, once the rest is done
        body = BODIES.get((method, path))
        if body:
            body = json.loads(fill(json.dumps(body), ids))
        if path.endswith("/import"):
            r = me.s.post(me.url(fill(path, ids)) + "?format=ndjson", timeout=30,
                          data=b'{"ts":1700000000000,"values":{"temp":1}}\n')
        elif path == "/api/v1/auth/login":
            r = requests.post(srv.http + path, json={"email": world["email"], "password": PW}, timeout=30)
        else:
            r = me.s.request(method, me.url(fill(path, ids)), json=body, timeout=30)
        seen.append((method, path, r.status_code))
        if isinstance(want, int):
            assert r.status_code == want, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "forbidden", (method, path, r.text)
        elif path in ("/api/v1/invitations/{inv}/accept", "/api/v1/invitations/{inv}/decline"):
            assert r.status_code == 404, (method, path, r.text)   # another person's
        elif path in ("/api/v1/devices/{dev}/data", "/api/v1/orgs/{org}/live"):
            # Opened to what a dashboard shows: asked for everything, refused.
            assert r.status_code == 403, (method, path, r.text)
            assert "dashboard" in r.json()["error"]["message"]
        else:
            assert r.status_code in (200, 201, 204), (method, path, r.status_code, r.text)
    assert len(seen) == len(ROUTES) - 2
    # Nothing changed by any of it.
    assert admin.get("/api/v1/orgs/%s" % ids["org"]).json()["name"] == world["org"]["name"]
    assert admin.get("/api/v1/devices/%s" % ids["dev"]).status_code == 200
    assert admin.get("/api/v1/dashboards/%s" % ids["dash"]).json()["name"] == "board"
    roles = {m["user_id"]: m["role"] for m in admin.get("/api/v1/orgs/%s/members" % ids["org"]).json()}
    assert roles[world["viewer_id"]] == "viewer" and roles[world["uid"]] == "dashboard"
    assert spare.get("/api/v1/me").status_code == 401
    assert {"org_id": ids["org"], "role": "dashboard"} in mine["memberships"]
    # Their own password and sign-out are theirs.
    r = me.put("/api/v1/me/password", json={"current_password": PW, "new_password": "a-long-password-1"})
    assert r.status_code == 204, r.text
    r = me.put("/api/v1/me/password", json={"current_password": "a-long-password-1", "new_password": PW})
    assert r.status_code == 204, r.text
    assert me.post("/api/v1/auth/logout").status_code == 204


def test_the_orgs_they_see(srv, world):
    me = login(srv.http, world["email"], PW)
    orgs = me.get("/api/v1/orgs").json()
    assert [o["id"] for o in orgs] == [world["org"]["id"]]
    assert me.get("/api/v1/orgs/%s" % world["org"]["id"]).json()["name"] == world["org"]["name"]


def test_outside_their_org_everything_is_not_found(srv, world):
    me = login(srv.http, world["email"], PW)
    oid, did = world["other"]["id"], world["other_dev"]["id"]
    for path in ["/api/v1/orgs/%s" % oid, "/api/v1/orgs/%s/devices" % oid, "/api/v1/devices/%s" % did,
                 "/api/v1/devices/%s/latest" % did, "/api/v1/devices/%s/data?channel=x" % did,
                 "/api/v1/orgs/%s/live?device=%s&channel=x" % (oid, did), "/api/v1/orgs/%s/export" % oid]:
        r = me.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == "not_found"


def test_a_device_no_dashboard_shows_is_not_theirs(srv, world):
    """A dashboard user reads nothing of a device no dashboard shows,
    whatever they name; a viewer reads it all. (What a dashboard shows:
    test_dashboard_role_data.py.)"""
    me = login(srv.http, world["email"], PW)
    did, oid = world["dev"]["id"], world["org"]["id"]
    r = me.get("/api/v1/devices/%s/latest" % did)
    assert r.status_code == 200 and r.json() == {}, r.text
    for q in ["channel=temp", "channel=temp,hum", ""]:
        r = me.get("/api/v1/devices/%s/data?%s" % (did, q))
        assert r.status_code == 403, (q, r.text)
    for q in ["device=%s&channel=temp" % did, "device=%s" % did, "channel=temp"]:
        r = me.get("/api/v1/orgs/%s/live?%s" % (oid, q), stream=True)
        assert r.status_code == 403, (q, r.text)
        r.close()
    viewer = world["admin"]
    assert set(viewer.get("/api/v1/devices/%s/latest" % did).json()) == {"temp", "hum"}


def test_admin_grants_and_changes_the_role(srv, world):
    admin = world["admin"]
    oid = world["org"]["id"]
    email, uid = member(admin, oid, "viewer")
    r = admin.patch("/api/v1/orgs/%s/members/%s" % (oid, uid), json={"role": "dashboard"})
    assert r.status_code == 200, r.text
    api = login(srv.http, email, PW)
    assert api.get("/api/v1/orgs/%s/devices" % oid).status_code == 403
    assert admin.patch("/api/v1/orgs/%s/members/%s" % (oid, uid), json={"role": "viewer"}).status_code == 200
    assert api.get("/api/v1/orgs/%s/devices" % oid).status_code == 200
    r = admin.post("/api/v1/orgs/%s/members" % oid, json={"email": email, "role": "dashbored"})
    assert r.status_code == 400


def mqtt_connack(server, username, password):
    """The return code of an MQTT 3.1.1 CONNECT with these credentials."""
    def mstr(v):
        return struct.pack("!H", len(v.encode())) + v.encode()
    body = mstr("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 60) + mstr("") + mstr(username) + mstr(password)
    host, port = server.addrs["mqtt"].rsplit(":", 1)
    c = socket.create_connection((host, int(port)), timeout=10)
    try:
        c.sendall(bytes([0x10, len(body)]) + body)
        ack = b""
        while len(ack) < 4:
            chunk = c.recv(4 - len(ack))
            assert chunk, ack
            ack += chunk
        assert ack[0] >> 4 == 2, ack
        return ack[3]
    finally:
        c.close()


def test_mqtt_refuses_a_dashboard_user(fresh_server):
    """A person signs in to MQTT only as the superadmin: a dashboard user
    is refused as a wrong password is, so subscribes to no data topic."""
    server = fresh_server(["--listen-mqtt", "127.0.0.1:0"])
    admin = login(server.http)
    org, _ = new_org_device(admin, prefix="dash-mqtt")
    email, _ = member(admin, org["id"], "dashboard")
    login(server.http, email, PW)   # the password is right
    assert mqtt_connack(server, email, PW) == 0x05


# ---- the live stream's channel filter -----------------------------------------------------


def sse_events(r, n, within=5):
    """The data of the next n message events of a stream."""
    out, buf, t0 = [], b"", time.monotonic()
    chunks = r.iter_content(chunk_size=None)
    while len(out) < n:
        assert time.monotonic() - t0 < within, out
        buf += next(chunks)
        while b"\n\n" in buf:
            frame, buf = buf.split(b"\n\n", 1)
            data = [l[5:].strip() for l in frame.split(b"\n") if l.startswith(b"data:")]
            if data and not frame.startswith(b"event:"):
                out.append(json.loads(b"\n".join(data)))
    return out


def test_live_channel_filter(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="dash-live")
    dev2 = admin.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "second"}).json()
    email, _ = member(admin, org["id"], "viewer")
    viewer = login(srv.http, email, PW)
    url = srv.http + "/api/v1/orgs/%s/live" % org["id"]
    both = viewer.s.get(url, params={"channel": "a,c"}, stream=True, timeout=(5, 5))
    one = viewer.s.get(url, params={"channel": "b", "device": dev2["id"]}, stream=True, timeout=(5, 5))
    plain = viewer.s.get(url, stream=True, timeout=(5, 5))
    assert both.status_code == one.status_code == plain.status_code == 200
    ts = now_ms()
    post(srv.http, dev, [{"ts": ts, "values": {"a": 1, "b": 2}}, {"ts": ts + 1, "values": {"b": 3}}])
    post(srv.http, dev2, {"ts": ts + 2, "values": {"b": 4, "c": 5}})
    post(srv.http, dev, {"ts": ts + 3, "values": {"c": 6, "a": 7}})
    assert [e["values"] for e in sse_events(both, 3)] == [{"a": 1}, {"c": 5}, {"a": 7, "c": 6}]
    assert [e["values"] for e in sse_events(one, 1)] == [{"b": 4}]
    assert [e["values"] for e in sse_events(plain, 4)] == [{"a": 1, "b": 2}, {"b": 3}, {"b": 4, "c": 5},
                                                           {"a": 7, "c": 6}]
    for r in (both, one, plain):
        r.close()
    for bad in [",", "bad channel", "a/b", ",".join("c%d" % i for i in range(33))]:
        r = viewer.s.get(url, params={"channel": bad}, stream=True, timeout=(5, 5))
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "bad_parameter"


# ---- roles an earlier release stored ------------------------------------------------------


# The stores before the dashboard role (migration 11) held viewer..owner
# as 1..4 under CHECK (role BETWEEN 1 AND 4). A data dir of today's binary
# is put back in that shape, tables and numbers, and marked as migrated up
# to 10; the next start must migrate it again.
REWIND_TO_10 = """
DROP TABLE rollups;
ALTER TABLE memberships RENAME TO memberships_now;
CREATE TABLE memberships (
  org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 4),
  PRIMARY KEY (org_id, user_id)
) WITHOUT ROWID, STRICT;
INSERT INTO memberships SELECT org_id, user_id, role - 1 FROM memberships_now;
DROP TABLE memberships_now;
CREATE INDEX memberships_by_user ON memberships(user_id);
ALTER TABLE invitations RENAME TO invitations_now;
CREATE TABLE invitations (
  id TEXT PRIMARY KEY NOT NULL,
  org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 4),
  invited_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (org_id, user_id)
) STRICT;
INSERT INTO invitations SELECT id, org_id, user_id, role - 1, invited_by, created_at
  FROM invitations_now;
DROP TABLE invitations_now;
CREATE INDEX invitations_by_user ON invitations(user_id, created_at);
PRAGMA user_version = 10;
"""


def rewind_to_before_dashboard_role(data_dir):
    # Migration 12 (rollups) is undone first, then 11.
    assert rewind_schema(data_dir, 12, REWIND_TO_10) == 10
    db = sqlite3.connect(os.path.join(data_dir, "sensorspace.db"))
    try:
        assert db.execute("SELECT max(role) FROM memberships").fetchone()[0] == 4
    finally:
        db.close()


def test_roles_stored_before_keep_their_powers(fresh_server):
    old = fresh_server()
    admin = login(old.http)
    org, dev = new_org_device(admin, prefix="mig")
    elsewhere, _ = new_org_device(admin, prefix="mig-else")
    people = {role: member(admin, org["id"], role) for role in ["viewer", "editor", "admin", "owner"]}
    # A pending invitation to editor, made by the org's admin.
    invitee, _ = member(admin, elsewhere["id"], "viewer")
    r = login(old.http, people["admin"][0], PW).post(
        "/api/v1/orgs/%s/members" % org["id"], json={"email": invitee, "role": "editor", "password": PW})
    assert r.status_code in (201, 202), r.text
    assert old.stop() == 0
    rewind_to_before_dashboard_role(old.data_dir)
    new = old.start()
    oid = org["id"]
    api = {role: login(new.http, email, PW) for role, (email, _) in people.items()}
    for role, a in api.items():
        assert {"org_id": oid, "role": role} in a.get("/api/v1/me").json()["memberships"], role
    inv = login(new.http, invitee, PW).get("/api/v1/me/invitations").json()
    assert [i["role"] for i in inv] == ["editor"]
    # viewer reads, editor writes devices, admin manages members, owner the org.
    assert api["viewer"].get("/api/v1/orgs/%s/devices" % oid).status_code == 200
    assert api["viewer"].get("/api/v1/devices/%s/latest" % dev["id"]).status_code == 200
    assert api["viewer"].post("/api/v1/orgs/%s/devices" % oid, json={"name": "v"}).status_code == 403
    assert api["editor"].post("/api/v1/orgs/%s/devices" % oid, json={"name": "e"}).status_code == 201
    assert api["editor"].get("/api/v1/orgs/%s/members" % oid).status_code == 403
    assert api["admin"].get("/api/v1/orgs/%s/members" % oid).status_code == 200
    r = api["admin"].post("/api/v1/orgs/%s/members" % oid,
                          json={"email": "mig-dash@example.com", "role": "dashboard", "password": PW})
    assert r.status_code == 202 and r.json()["invitation"]["role"] == "dashboard", r.text
    assert api["admin"].patch("/api/v1/orgs/%s/members/%s" % (oid, people["owner"][1]),
                              json={"role": "viewer"}).status_code == 403
    assert api["admin"].delete("/api/v1/orgs/%s" % oid).status_code == 403
    assert api["owner"].patch("/api/v1/orgs/%s" % oid, json={"name": "mig-renamed"}).status_code == 200
    members = {m["user_id"]: m["role"] for m in api["owner"].get("/api/v1/orgs/%s/members" % oid).json()}
    assert members[people["owner"][1]] == "owner" and members[people["viewer"][1]] == "viewer"
    assert api["owner"].patch("/api/v1/orgs/%s/members/%s" % (oid, people["viewer"][1]),
                              json={"role": "dashboard"}).status_code == 200
    assert api["viewer"].get("/api/v1/orgs/%s/devices" % oid).status_code == 403
