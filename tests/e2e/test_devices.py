"""Organisations, devices and their tokens, guarded by roles."""
import socket

import pytest
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


def raw_request(sock, method, path, headers, body=b""):
    """One request on a kept-alive raw socket; returns the answer's head and
    body (Content-Length framed)."""
    head = "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % (method, path, len(body))
    head += "".join("%s: %s\r\n" % kv for kv in headers.items())
    sock.sendall(head.encode() + b"\r\n" + body)
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before an answer"
        got += chunk
    head, rest = got.split(b"\r\n\r\n", 1)
    lengths = [l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")]
    length = int(lengths[0]) if lengths else 0
    while len(rest) < length:
        chunk = sock.recv(4096)
        assert chunk, "connection closed inside an answer"
        rest += chunk
    return head.decode(), rest


def closed_by_server(sock, timeout=5):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        return False


@pytest.mark.parametrize("how", ["rotate", "disable", "delete"])
def test_revoking_a_device_closes_its_keepalive_connections(server, admin, org, how):
    dev = admin.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "ka"}).json()
    other = admin.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "kb"}).json()
    host, port = server.addrs["http"].rsplit(":", 1)
    socks = {}
    for d in (dev, other):
        socks[d["id"]] = socket.create_connection((host, int(port)), timeout=10)
        head, _ = raw_request(socks[d["id"]], "POST", "/api/v1/data", {"X-Auth-Token": d["token"]}, b"t=1")
        assert head.startswith("HTTP/1.1 200")
    if how == "rotate":
        assert admin.post("/api/v1/devices/%s/token" % dev["id"]).status_code == 200
    elif how == "disable":
        assert admin.patch("/api/v1/devices/" + dev["id"], json={"disabled": True}).status_code == 200
    else:
        assert admin.delete("/api/v1/devices/" + dev["id"]).status_code == 204
    assert closed_by_server(socks[dev["id"]])
    # the other device's connection goes on
    head, _ = raw_request(socks[other["id"]], "POST", "/api/v1/data", {"X-Auth-Token": other["token"]},
                          b"t=2 %d" % 1732480000000)
    assert head.startswith("HTTP/1.1 200")
    for s in socks.values():
        s.close()


def test_a_key_revoking_itself_gets_its_answer_then_the_close(server, admin, org):
    key = admin.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "self", "scopes": ["manage"]}).json()
    host, port = server.addrs["http"].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    auth = {"Authorization": "Bearer " + key["key"]}
    head, _ = raw_request(s, "GET", "/api/v1/orgs/%s/devices" % org["id"], auth)
    assert head.startswith("HTTP/1.1 200")
    head, _ = raw_request(s, "DELETE", "/api/v1/apikeys/" + key["id"], auth)
    assert head.startswith("HTTP/1.1 204")
    assert closed_by_server(s)
    s.close()


def test_a_key_revoking_itself_on_its_first_request_closes_that_connection(server, admin, org):
    """The DELETE is the connection's first request, so nothing had
    registered it under the key yet: it still closes after the 204."""
    key = admin.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "self", "scopes": ["manage"]}).json()
    host, port = server.addrs["http"].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    head, _ = raw_request(s, "DELETE", "/api/v1/apikeys/" + key["id"], {"Authorization": "Bearer " + key["key"]})
    assert head.startswith("HTTP/1.1 204")
    assert "Connection: close" in head
    assert closed_by_server(s)
    s.close()


def test_disabling_a_user_closes_their_keepalive_connections(server, admin, org):
    email = "ka-user-%s@example.com" % org["id"]
    r = admin.post("/api/v1/orgs/%s/members" % org["id"],
                   json={"email": email, "role": "viewer", "password": "member-password-1"})
    assert r.status_code == 201
    token = requests.post(server.http + "/api/v1/auth/login", timeout=30,
                          json={"email": email, "password": "member-password-1"}).json()["token"]
    host, port = server.addrs["http"].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    head, _ = raw_request(s, "GET", "/api/v1/orgs/%s/devices" % org["id"], {"Authorization": "Bearer " + token})
    assert head.startswith("HTTP/1.1 200")
    uid = [m for m in admin.get("/api/v1/orgs/%s/members" % org["id"]).json() if m["email"] == email][0]["user_id"]
    assert admin.patch("/api/v1/users/" + uid, json={"disabled": True}).status_code == 200
    assert closed_by_server(s)
    s.close()
