"""Multi-AAA: who may do what (SPEC §2), revocations taking effect on the
very next request, API keys, the audit log, throttling, sessions."""
import time

import pytest
import requests

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, login, now_ms

PW = "member-password-1"


class World:
    """Two organisations with one member of each role in the first, a child
    org, API keys of each scope, and the things the endpoints act on."""

    def __init__(self, server, admin):
        self.server = server
        self.admin = admin
        tag = str(time.monotonic_ns())
        self.org = admin.post("/api/v1/orgs", json={"name": "home-" + tag}).json()
        self.other = admin.post("/api/v1/orgs", json={"name": "other-" + tag}).json()
        self.child = admin.post("/api/v1/orgs", json={"name": "child", "parent_id": self.org["id"]}).json()
        self.users = {}
        for role in ["viewer", "editor", "admin", "owner"]:
            email = "%s-%s@example.com" % (role, tag)
            r = admin.post("/api/v1/orgs/%s/members" % self.org["id"],
                           json={"email": email, "role": role, "password": PW})
            assert r.status_code == 201, r.text
            self.users[role] = (email, r.json()["user_id"])
        stranger = "stranger-%s@example.com" % tag
        admin.post("/api/v1/orgs/%s/members" % self.other["id"],
                   json={"email": stranger, "role": "owner", "password": PW})
        self.users["stranger"] = (stranger, None)
        self.keys = {}
        for scope in ["data:read", "data:write", "manage"]:
            r = admin.post("/api/v1/orgs/%s/apikeys" % self.org["id"], json={"name": scope, "scopes": [scope]})
            assert r.status_code == 201, r.text
            self.keys[scope] = r.json()
        # a member whose account is then disabled, and a key then revoked
        gone = "disabled-%s@example.com" % tag
        uid = admin.post("/api/v1/orgs/%s/members" % self.org["id"],
                         json={"email": gone, "role": "owner", "password": PW}).json()["user_id"]
        self.disabled = login(server.http, gone, PW)
        assert admin.patch("/api/v1/users/" + uid, json={"disabled": True}).status_code == 200
        key = admin.post("/api/v1/orgs/%s/apikeys" % self.org["id"], json={"name": "old", "scopes": ["manage"]}).json()
        assert admin.delete("/api/v1/apikeys/" + key["id"]).status_code == 204
        self.revoked_key = key["key"]
        self.device = admin.post("/api/v1/orgs/%s/devices" % self.org["id"], json={"name": "d"}).json()
        self.foreign = admin.post("/api/v1/orgs/%s/devices" % self.other["id"], json={"name": "f"}).json()

    def client(self, who):
        if who == "superadmin":
            return self.admin
        if who == "anonymous":
            return Api(self.server.http)
        if who == "disabled":
            return self.disabled
        if who == "revoked-key":
            return Api(self.server.http, self.revoked_key)
        if who.startswith("key:"):
            return Api(self.server.http, self.keys[who[4:]]["key"])
        return login(self.server.http, self.users[who][0], PW)


@pytest.fixture(scope="module")
def world(server, admin):
    return World(server, admin)


WHO = ["anonymous", "viewer", "editor", "admin", "owner", "stranger", "superadmin",
       "key:data:read", "key:data:write", "key:manage"]

# (method, path template, body) → expected status for each principal in WHO.
# {org} home org, {other} another org, {dev} a device of home, {fdev} a device
# of other. Mutating rows use bodies that fail validation (400) once past
# authorisation, so the table can run in any order without side effects.
MATRIX = [
    ("GET", "/api/v1/orgs/{org}", None,              [401, 200, 200, 200, 200, 404, 200, 200, 403, 200]),
    ("PATCH", "/api/v1/orgs/{org}", {"name": ""},    [401, 403, 403, 400, 400, 404, 400, 403, 403, 400]),
    ("GET", "/api/v1/orgs/{other}", None,            [401, 404, 404, 404, 404, 200, 200, 404, 404, 404]),
    ("GET", "/api/v1/orgs/{org}/members", None,      [401, 403, 403, 200, 200, 404, 200, 403, 403, 200]),
    ("POST", "/api/v1/orgs/{org}/members", {},       [401, 403, 403, 400, 400, 404, 400, 403, 403, 400]),
    ("GET", "/api/v1/orgs/{org}/devices", None,      [401, 200, 200, 200, 200, 404, 200, 200, 403, 200]),
    ("POST", "/api/v1/orgs/{org}/devices", {},       [401, 403, 400, 400, 400, 404, 400, 403, 403, 400]),
    ("GET", "/api/v1/orgs/{other}/devices", None,    [401, 404, 404, 404, 404, 200, 200, 404, 404, 404]),
    ("GET", "/api/v1/devices/{dev}", None,           [401, 200, 200, 200, 200, 404, 200, 200, 403, 200]),
    ("PATCH", "/api/v1/devices/{dev}", {"name": ""}, [401, 403, 400, 400, 400, 404, 400, 403, 403, 400]),
    ("GET", "/api/v1/devices/{fdev}", None,          [401, 404, 404, 404, 404, 200, 200, 404, 404, 404]),
    ("PATCH", "/api/v1/devices/{fdev}", {"name": ""},[401, 404, 404, 404, 404, 400, 400, 404, 404, 404]),
    ("POST", "/api/v1/devices/{fdev}/token", None,   [401, 404, 404, 404, 404, None, None, 404, 404, 404]),
    ("DELETE", "/api/v1/devices/{fdev}", None,       [401, 404, 404, 404, 404, None, None, 404, 404, 404]),
    ("GET", "/api/v1/devices/{dev}/channels", None,  [401, 200, 200, 200, 200, 404, 200, 200, 403, 200]),
    ("GET", "/api/v1/devices/{dev}/latest", None,    [401, 200, 200, 200, 200, 404, 200, 200, 403, 200]),
    ("GET", "/api/v1/devices/{dev}/data", None,      [401, 200, 200, 200, 200, 404, 200, 200, 403, 200]),
    ("GET", "/api/v1/devices/{fdev}/data", None,     [401, 404, 404, 404, 404, 200, 200, 404, 404, 404]),
    ("GET", "/api/v1/orgs/{org}/apikeys", None,      [401, 403, 403, 200, 200, 404, 200, 403, 403, 200]),
    ("POST", "/api/v1/orgs/{org}/apikeys", {},       [401, 403, 403, 400, 400, 404, 400, 403, 403, 400]),
    ("GET", "/api/v1/orgs/{other}/apikeys", None,    [401, 404, 404, 404, 404, 200, 200, 404, 404, 404]),
    ("GET", "/api/v1/orgs/{org}/audit", None,        [401, 403, 403, 200, 200, 404, 200, 403, 403, 200]),
    ("GET", "/api/v1/orgs/{other}/audit", None,      [401, 404, 404, 404, 404, 200, 200, 404, 404, 404]),
    ("POST", "/api/v1/orgs", {"name": "top"},        [401, 403, 403, 403, 403, 403, None, 403, 403, 403]),
    ("POST", "/api/v1/orgs", {"name": "", "parent_id": "{org}"}, [401, 403, 403, 400, 400, 404, 400, 403, 403, 400]),
    ("DELETE", "/api/v1/orgs/{other}", None,         [401, 404, 404, 404, 404, None, None, 404, 404, 404]),
    ("GET", "/api/v1/me", None,                      [401, 200, 200, 200, 200, 200, 200, 403, 403, 403]),
    ("GET", "/api/v1/audit", None,                   [401, 403, 403, 403, 403, 403, 200, 403, 403, 403]),
    ("PATCH", "/api/v1/users/{uid}", {},             [401, 403, 403, 403, 403, 403, 400, 403, 403, 403]),
]


def fill(template, world):
    return (template.replace("{org}", world.org["id"]).replace("{other}", world.other["id"])
            .replace("{dev}", world.device["id"]).replace("{fdev}", world.foreign["id"])
            .replace("{uid}", world.users["viewer"][1]))


def fill_body(body, world):
    if body is None:
        return None
    return {k: fill(v, world) if isinstance(v, str) else v for k, v in body.items()}


# Credentials that were good once: every endpoint answers 401.
GONE = ["disabled", "revoked-key"]


@pytest.mark.parametrize("who", WHO + GONE)
def test_authorization_matrix(world, who):
    api = world.client(who)
    wrong = []
    for method, path, body, expected in MATRIX:
        want = 401 if who in GONE else expected[WHO.index(who)]
        if want is None:
            continue  # would really change something; covered elsewhere
        r = api.s.request(method, api.url(fill(path, world)), json=fill_body(body, world), timeout=30)
        if r.status_code != want:
            wrong.append("%s %s: %d, want %d (%s)" % (method, path, r.status_code, want, r.text[:80]))
        if r.status_code == 404:
            assert r.json()["error"]["code"] == "not_found"
    assert not wrong, "\n".join(wrong)


def test_disabled_user_and_revoked_key_refused(server, admin, world):
    email, uid = world.users["viewer"]
    viewer = login(server.http, email, PW)
    key = admin.post("/api/v1/orgs/%s/apikeys" % world.org["id"], json={"name": "k", "scopes": ["data:read"]}).json()
    app = Api(server.http, key["key"])
    assert app.get("/api/v1/orgs/%s" % world.org["id"]).status_code == 200
    assert admin.delete("/api/v1/apikeys/" + key["id"]).status_code == 204
    assert app.get("/api/v1/orgs/%s" % world.org["id"]).status_code == 401
    assert admin.patch("/api/v1/users/" + uid, json={"disabled": True}).status_code == 200
    try:
        assert viewer.get("/api/v1/me").status_code == 401
        r = requests.post(server.http + "/api/v1/auth/login", json={"email": email, "password": PW}, timeout=30)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    finally:
        assert admin.patch("/api/v1/users/" + uid, json={"disabled": False}).status_code == 200
    login(server.http, email, PW)


def test_member_role_change_and_removal_take_effect_at_once(server, admin):
    org = admin.post("/api/v1/orgs", json={"name": "roles"}).json()
    r = admin.post("/api/v1/orgs/%s/members" % org["id"],
                   json={"email": "mover@example.com", "role": "editor", "password": PW})
    uid = r.json()["user_id"]
    mover = login(server.http, "mover@example.com", PW)
    devs = "/api/v1/orgs/%s/devices" % org["id"]
    assert mover.post(devs, json={"name": "a"}).status_code == 201
    assert admin.patch("/api/v1/orgs/%s/members/%s" % (org["id"], uid), json={"role": "viewer"}).status_code == 200
    assert mover.post(devs, json={"name": "b"}).status_code == 403
    assert mover.get(devs).status_code == 200
    assert admin.delete("/api/v1/orgs/%s/members/%s" % (org["id"], uid)).status_code == 204
    assert mover.get(devs).status_code == 404
    assert admin.delete("/api/v1/orgs/%s/members/%s" % (org["id"], uid)).status_code == 404


def test_role_ceilings_and_last_owner(server, admin):
    org = admin.post("/api/v1/orgs", json={"name": "ceil"}).json()
    base = "/api/v1/orgs/%s/members" % org["id"]
    owner_id = admin.post(base, json={"email": "own@example.com", "role": "owner", "password": PW}).json()["user_id"]
    admin.post(base, json={"email": "adm@example.com", "role": "admin", "password": PW})
    adm = login(server.http, "adm@example.com", PW)
    own = login(server.http, "own@example.com", PW)
    r = adm.post(base, json={"email": "x1@example.com", "role": "owner", "password": PW})
    assert r.status_code == 403
    # an admin invites (test_members_consent.py): the person joins on accepting
    assert adm.post(base, json={"email": "x2@example.com", "role": "admin", "password": PW}).status_code == 202
    assert adm.patch(base + "/" + owner_id, json={"role": "viewer"}).status_code == 403
    assert adm.delete(base + "/" + owner_id).status_code == 403
    r = own.patch(base + "/" + owner_id, json={"role": "admin"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_owner"
    assert own.delete(base + "/" + owner_id).status_code == 409
    r = own.post(base, json={"email": "own2@example.com", "role": "owner", "password": PW})
    assert r.status_code == 202
    own2 = login(server.http, "own2@example.com", PW)
    assert own2.post("/api/v1/invitations/%s/accept" % r.json()["invitation"]["id"]).status_code == 200
    assert own.patch(base + "/" + owner_id, json={"role": "admin"}).status_code == 200
    assert adm.patch(base + "/" + owner_id, json={"role": "owner"}).status_code == 403


def test_api_key_scopes_and_show_once(server, admin, world):
    key = world.keys["manage"]
    assert key["key"].startswith("ssk_")
    listed = admin.get("/api/v1/orgs/%s/apikeys" % world.org["id"]).json()
    assert all("key" not in k for k in listed)
    assert {k["id"] for k in listed} >= {k["id"] for k in world.keys.values()}
    app = Api(server.http, key["key"])
    r = app.post("/api/v1/orgs/%s/devices" % world.org["id"], json={"name": "by-app"})
    assert r.status_code == 201
    assert app.get("/api/v1/orgs/%s/devices" % world.child["id"]).status_code == 200
    ids = {o["id"] for o in app.get("/api/v1/orgs").json()}
    assert ids == {world.org["id"], world.child["id"]}
    bad = [{"name": "k"}, {"name": "k", "scopes": []}, {"name": "k", "scopes": ["root"]},
           {"name": "k", "scopes": "manage"}, {"scopes": ["manage"]}]
    for body in bad:
        assert admin.post("/api/v1/orgs/%s/apikeys" % world.org["id"], json=body).status_code == 400


def test_audit_log_records_changes(server, admin):
    org = admin.post("/api/v1/orgs", json={"name": "audited"}).json()
    dev = admin.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "d"}).json()
    admin.post("/api/v1/devices/%s/token" % dev["id"])
    admin.patch("/api/v1/orgs/" + org["id"], json={"name": "audited2"})
    entries = admin.get("/api/v1/orgs/%s/audit" % org["id"]).json()
    actions = [e["action"] for e in entries]
    assert actions[:4] == ["org.rename", "device.rotate_token", "device.create", "org.create"]
    me = admin.get("/api/v1/me").json()
    for e in entries:
        assert e["actor"] == "user:" + me["id"] and e["address"] == "127.0.0.1"
        assert dev["token"] not in str(e)
    # read-only: no method writes or deletes entries
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = admin.s.request(method, admin.url("/api/v1/orgs/%s/audit" % org["id"]), json={}, timeout=10)
        assert r.status_code == 405


def test_org_delete(server, admin):
    org = admin.post("/api/v1/orgs", json={"name": "doomed"}).json()
    child = admin.post("/api/v1/orgs", json={"name": "kid", "parent_id": org["id"]}).json()
    dev = admin.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "d"}).json()
    r = admin.delete("/api/v1/orgs/" + org["id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "org_has_children"
    assert admin.delete("/api/v1/orgs/" + child["id"]).status_code == 204
    assert admin.delete("/api/v1/orgs/" + org["id"]).status_code == 204
    assert admin.get("/api/v1/orgs/" + org["id"]).status_code == 404
    r = requests.post(server.http + "/api/v1/data", json={"t": 1}, headers={"X-Auth-Token": dev["token"]}, timeout=10)
    assert r.status_code == 401


def test_password_change_ends_other_sessions(server, admin):
    org = admin.post("/api/v1/orgs", json={"name": "pw"}).json()
    admin.post("/api/v1/orgs/%s/members" % org["id"], json={"email": "pw@example.com", "role": "viewer", "password": PW})
    a = login(server.http, "pw@example.com", PW)
    b = login(server.http, "pw@example.com", PW)
    sessions = a.get("/api/v1/me/sessions").json()
    assert len(sessions) == 2 and sum(s["current"] for s in sessions) == 1
    r = a.put("/api/v1/me/password", json={"current_password": "wrong-password-9", "new_password": "x" * 12})
    assert r.status_code == 403
    r = a.put("/api/v1/me/password", json={"current_password": PW, "new_password": "short"})
    assert r.status_code == 400
    assert a.put("/api/v1/me/password", json={"current_password": PW, "new_password": "new-password-22"}).status_code == 204
    assert a.get("/api/v1/me").status_code == 200
    assert b.get("/api/v1/me").status_code == 401
    c = login(server.http, "pw@example.com", "new-password-22")
    other = [s for s in c.get("/api/v1/me/sessions").json() if not s["current"]][0]
    assert c.delete("/api/v1/me/sessions/" + other["id"]).status_code == 204
    assert a.get("/api/v1/me").status_code == 401
    uid = c.get("/api/v1/me").json()["id"]
    assert admin.put("/api/v1/users/%s/password" % uid, json={"new_password": "reset-password-3"}).status_code == 204
    assert c.get("/api/v1/me").status_code == 401
    login(server.http, "pw@example.com", "reset-password-3")


def test_login_throttle(fresh_server):
    srv = fresh_server()
    base = srv.http + "/api/v1/auth/login"
    # an account may fail 5 times (SS_LOGIN_ACCOUNT_FREE), then waits
    for _ in range(5):
        r = requests.post(base, json={"email": "nobody@example.com", "password": "wrong-password-1"}, timeout=30)
        assert r.status_code == 401
    r = requests.post(base, json={"email": "nobody@example.com", "password": "wrong-password-1"}, timeout=30)
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_attempts"
    assert int(r.headers["Retry-After"]) > 0
    # an address may fail 10 times (SS_LOGIN_ADDR_FREE): then even the right
    # password of another account waits (test_login_throttle.py has more)
    for i in range(5):
        email = "nobody%d@example.com" % i
        r = requests.post(base, json={"email": email, "password": "wrong-password-1"}, timeout=30)
        assert r.status_code == 401
    r = requests.post(base, json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=30)
    assert r.status_code == 429


@pytest.mark.serial  # compares two timings: run alone (make test)
def test_unknown_user_costs_like_wrong_password(server):
    base = server.http + "/api/v1/auth/login"

    def timed(email):
        t = time.perf_counter()
        requests.post(base, json={"email": email, "password": "wrong-password-x"}, timeout=30)
        return time.perf_counter() - t
    known = sorted(timed(ADMIN_EMAIL) for _ in range(3))[1]
    unknown = sorted(timed("ghost@example.com") for _ in range(3))[1]
    assert 0.5 < unknown / known < 2.0


def test_session_idle_and_absolute_expiry(fresh_server):
    srv = fresh_server(["--session-idle-timeout", "2", "--session-ttl", "4"])
    a = login(srv.http)
    assert a.get("/api/v1/me").status_code == 200
    time.sleep(2.5)
    assert a.get("/api/v1/me").status_code == 401
    # used every second, it outlives the idle timeout, not the absolute one
    t0 = time.time()
    b = login(srv.http)
    while time.time() < t0 + 3:
        assert b.get("/api/v1/me").status_code == 200
        time.sleep(1)
    time.sleep(max(0, t0 + 4.5 - time.time()))
    assert b.get("/api/v1/me").status_code == 401


def test_offline_password_reset(fresh_server):
    import subprocess
    from conftest import BIN
    srv = fresh_server()
    admin_api = login(srv.http)
    me = admin_api.get("/api/v1/me").json()
    # lock the only admin out: a forgotten password
    out = subprocess.run([BIN, "reset-password", "--data-dir", srv.data_dir, "--email", ADMIN_EMAIL],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    new_password = out.stdout.strip().split()[-1]
    assert admin_api.get("/api/v1/me").status_code == 401  # its sessions ended
    r = requests.post(srv.http + "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=30)
    assert r.status_code == 401
    again = login(srv.http, ADMIN_EMAIL, new_password)
    assert again.get("/api/v1/me").json()["id"] == me["id"]
    out = subprocess.run([BIN, "reset-password", "--data-dir", srv.data_dir, "--email", "nobody@x.org"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "no user" in out.stderr
    out = subprocess.run([BIN, "reset-password", "--data-dir", srv.data_dir, "--email", ADMIN_EMAIL],
                         capture_output=True, text=True, timeout=60,
                         env={"SENSORSPACE_NEW_PASSWORD": "chosen-password-77", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and "chosen-password-77" not in out.stdout
    login(srv.http, ADMIN_EMAIL, "chosen-password-77")
