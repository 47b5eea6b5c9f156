"""Organisations, devices and their tokens, guarded by roles."""
import requests

from conftest import login


def ingest(server, token, body='{"t": 1}'):
    return requests.post(server.http + "/api/v1/data", data=body, timeout=30,
                         headers={"X-Auth-Token": token, "Content-Type": "application/json"})


def test_device_lifecycle(server, admin, org):
    r = admin.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "d1", "description": "roof"})
    assert r.status_code == 201
    dev = r.json()
    assert dev["token"].startswith("ssd_") and len(dev["token"]) >= 36
    got = admin.get("/api/v1/devices/" + dev["id"]).json()
    assert got["name"] == "d1" and got["description"] == "roof" and "token" not in got
    listed = admin.get("/api/v1/orgs/%s/devices" % org["id"]).json()
    assert [d["id"] for d in listed] == [dev["id"]] and "token" not in listed[0]
    assert ingest(server, dev["token"]).status_code == 200

    r = admin.patch("/api/v1/devices/" + dev["id"], json={"disabled": True, "name": "d1b"})
    assert r.status_code == 200 and r.json()["disabled"] is True and r.json()["name"] == "d1b"
    assert ingest(server, dev["token"]).status_code == 401
    admin.patch("/api/v1/devices/" + dev["id"], json={"disabled": False})
    assert ingest(server, dev["token"]).status_code == 200

    r = admin.post("/api/v1/devices/%s/token" % dev["id"])
    assert r.status_code == 200
    new = r.json()["token"]
    assert new != dev["token"]
    assert ingest(server, dev["token"]).status_code == 401
    assert ingest(server, new).status_code == 200

    assert admin.delete("/api/v1/devices/" + dev["id"]).status_code == 204
    assert ingest(server, new).status_code == 401
    assert admin.get("/api/v1/devices/" + dev["id"]).status_code == 404


def test_bad_device_input(admin, org):
    base = "/api/v1/orgs/%s/devices" % org["id"]
    assert admin.post(base, json={}).status_code == 400
    assert admin.post(base, json={"name": ""}).status_code == 400
    assert admin.post(base, json={"name": 5}).status_code == 400
    assert admin.post(base, json={"name": "x" * 201}).status_code == 400
    assert admin.post(base, data="not json", headers={"Content-Type": "application/json"}).status_code == 400
    assert admin.get("/api/v1/devices/nope").status_code == 404


def test_roles_and_other_orgs(server, admin, org):
    other = admin.post("/api/v1/orgs", json={"name": "other"}).json()
    foreign = admin.post("/api/v1/orgs/%s/devices" % other["id"], json={"name": "f"}).json()
    for email, role in [("viewer@example.com", "viewer"), ("editor@example.com", "editor")]:
        r = admin.post("/api/v1/orgs/%s/members" % org["id"],
                       json={"email": email, "role": role, "password": "a-long-password-1"})
        assert r.status_code == 201, r.text
    viewer = login(server.http, "viewer@example.com", "a-long-password-1")
    editor = login(server.http, "editor@example.com", "a-long-password-1")
    devs = "/api/v1/orgs/%s/devices" % org["id"]
    assert viewer.post(devs, json={"name": "x"}).status_code == 403
    r = editor.post(devs, json={"name": "x"})
    assert r.status_code == 201
    dev = r.json()
    assert viewer.get("/api/v1/devices/" + dev["id"]).status_code == 200
    assert viewer.patch("/api/v1/devices/" + dev["id"], json={"name": "y"}).status_code == 403
    assert viewer.post("/api/v1/devices/%s/token" % dev["id"]).status_code == 403
    assert viewer.delete("/api/v1/devices/" + dev["id"]).status_code == 403
    # another organisation's things answer 404, never revealing they exist
    for api in (viewer, editor):
        assert api.get("/api/v1/devices/" + foreign["id"]).status_code == 404
        assert api.get("/api/v1/devices/%s/data" % foreign["id"]).status_code == 404
        assert api.get("/api/v1/orgs/" + other["id"]).status_code == 404
        assert api.get("/api/v1/orgs/%s/devices" % other["id"]).status_code == 404
        assert api.post("/api/v1/orgs/%s/devices" % other["id"], json={"name": "z"}).status_code == 404
        assert api.post("/api/v1/devices/%s/token" % foreign["id"]).status_code == 404
    assert [o["id"] for o in viewer.get("/api/v1/orgs").json()] == [org["id"]]
    me = viewer.get("/api/v1/me").json()
    assert me["memberships"] == [{"org_id": org["id"], "role": "viewer"}]
    # only the superadmin makes top-level orgs; an editor is no admin of a child
    assert editor.post("/api/v1/orgs", json={"name": "top"}).status_code == 403
    assert editor.post("/api/v1/orgs", json={"name": "c", "parent_id": org["id"]}).status_code == 403


def test_child_org_inherits_roles(server, admin, org):
    r = admin.post("/api/v1/orgs/%s/members" % org["id"],
                   json={"email": "boss@example.com", "role": "admin", "password": "a-long-password-2"})
    assert r.status_code == 201
    boss = login(server.http, "boss@example.com", "a-long-password-2")
    r = boss.post("/api/v1/orgs", json={"name": "customer", "parent_id": org["id"]})
    assert r.status_code == 201
    child = r.json()
    assert child["parent_id"] == org["id"]
    assert boss.post("/api/v1/orgs/%s/devices" % child["id"], json={"name": "c1"}).status_code == 201
    ids = {o["id"] for o in boss.get("/api/v1/orgs").json()}
    assert ids == {org["id"], child["id"]}


def test_unauthenticated(server, org):
    for path in ["/api/v1/me", "/api/v1/orgs", "/api/v1/orgs/%s/devices" % org["id"]]:
        r = requests.get(server.http + path, timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    r = requests.get(server.http + "/api/v1/me", headers={"Authorization": "Bearer sss_bogus"}, timeout=10)
    assert r.status_code == 401


def test_cookie_session_needs_csrf(server):
    r = requests.post(server.http + "/api/v1/auth/login", timeout=30,
                      json={"email": "admin@example.com", "password": "correct-horse-battery"})
    cookie = r.cookies.get("ss_session")
    csrf = r.json()["csrf"]
    assert cookie and r.json()["csrf_header"] == "X-CSRF-Token"
    assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
    jar = {"ss_session": cookie}
    assert requests.get(server.http + "/api/v1/me", cookies=jar, timeout=10).status_code == 200
    r = requests.post(server.http + "/api/v1/orgs", cookies=jar, json={"name": "x"}, timeout=10)
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = requests.post(server.http + "/api/v1/orgs", cookies=jar, json={"name": "x"}, timeout=10,
                      headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201


def test_https_cookie_is_secure(server):
    r = requests.post(server.https + "/api/v1/auth/login", timeout=30, verify=server.cert,
                      json={"email": "admin@example.com", "password": "correct-horse-battery"})
    assert "Secure" in r.headers["Set-Cookie"]
