"""DELETE /api/v1/devices/{id}/data deletes a device's readings in a range
(from and to, or all=true), of some channels or all; queries, latest and
channels are right at once; it is audited; usage already counted stays; an
editor (or a manage key) may, a viewer may not, another org's device is not
found; a bad range is a 400 naming it."""
import threading
import time

import pytest

from conftest import Api, login, module_server, new_org_device, now_ms

srv = module_server([])

PW = "member-password-1"
N = 100
T0 = (now_ms() - 3600 * 1000) // 60000 * 60000


def post_lines(api, token, lines):
    r = api.s.post(api.base + "/api/v1/data", data=lines,
                   headers={"X-Auth-Token": token, "Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    return r.json()["stored"]


def fill(api, token, channels=("a", "b"), n=N, t0=T0):
    for start in range(0, n, 5000):
        lines = "".join("%s %d\n" % (",".join("%s=%d" % (c, i) for c in channels), t0 + i * 1000)
                        for i in range(start, min(n, start + 5000)))
        post_lines(api, token, lines)


def points(api, dev, channel):
    r = api.get("/api/v1/devices/%s/data?channel=%s&limit=100000&from=%d" % (dev["id"], channel, T0 - 1))
    assert r.status_code == 200, r.text
    return [ts for ts, _ in r.json()["series"][channel]]


def readings_used(api, org):
    r = api.get("/api/v1/orgs/%s/usage?from=%d" % (org["id"], T0 - 24 * 3600 * 1000))
    assert r.status_code == 200, r.text
    return sum(row["readings"] for row in r.json()["usage"])


@pytest.fixture
def world(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="delete")
    fill(admin, dev["token"])
    return admin, org, dev


def delete(api, dev, query):
    return api.delete("/api/v1/devices/%s/data?%s" % (dev["id"], query))


def test_range_of_every_channel_gone_rest_kept(world):
    admin, org, dev = world
    used = readings_used(admin, org)
    r = delete(admin, dev, "from=%d&to=%d" % (T0 + 20000, T0 + 50000))
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": 60}
    want = [T0 + i * 1000 for i in range(N) if not 20 <= i < 50]
    assert points(admin, dev, "a") == want
    assert points(admin, dev, "b") == want
    # Nothing in the range, whatever the query.
    r = admin.get("/api/v1/devices/%s/data?from=%d&to=%d" % (dev["id"], T0 + 20000, T0 + 50000))
    assert r.json()["series"] == {"a": [], "b": []}
    # Usage is history: what was counted stays.
    assert readings_used(admin, org) == used
    # Again: nothing left to delete.
    assert delete(admin, dev, "from=%d&to=%d" % (T0 + 20000, T0 + 50000)).json() == {"deleted": 0}


def test_one_channel_and_latest_at_once(world):
    admin, org, dev = world
    # The newest readings of a: latest falls back to the newest left.
    r = delete(admin, dev, "channel=a&from=%d&to=%d" % (T0 + 90000, T0 + 200000))
    assert r.json() == {"deleted": 10}
    latest = admin.get("/api/v1/devices/%s/latest" % dev["id"]).json()
    assert latest == {"a": {"ts": T0 + 89000, "value": 89}, "b": {"ts": T0 + (N - 1) * 1000, "value": N - 1}}
    chans = {c["name"]: c for c in admin.get("/api/v1/devices/%s/channels" % dev["id"]).json()}
    assert chans["a"]["count"] == 90 and chans["a"]["last_ts"] == T0 + 89000
    assert chans["b"]["count"] == N
    assert points(admin, dev, "b") == [T0 + i * 1000 for i in range(N)]
    # all=true of b: the channel goes from latest and channels; a stays.
    r = delete(admin, dev, "channel=b&all=true")
    assert r.json() == {"deleted": N}
    assert list(admin.get("/api/v1/devices/%s/latest" % dev["id"]).json()) == ["a"]
    assert [c["name"] for c in admin.get("/api/v1/devices/%s/channels" % dev["id"]).json()] == ["a"]
    # A new reading of b starts it again.
    post_lines(admin, dev["token"], "b=7 %d\n" % (T0 + 5))
    assert admin.get("/api/v1/devices/%s/latest" % dev["id"]).json()["b"] == {"ts": T0 + 5, "value": 7}
    # RFC 3339 bounds too.
    r = delete(admin, dev, "channel=b&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z")
    assert r.json() == {"deleted": 1}


def test_audited_with_actor_range_and_count(world):
    admin, org, dev = world
    me = admin.get("/api/v1/me").json()
    assert delete(admin, dev, "channel=a,b&from=%d&to=%d" % (T0, T0 + 3000)).json() == {"deleted": 6}
    assert delete(admin, dev, "all=true").json() == {"deleted": 2 * (N - 3)}
    got = [e for e in admin.get("/api/v1/orgs/%s/audit" % org["id"]).json() if e["action"] == "data.delete"]
    assert len(got) == 2
    whole, ranged = got  # newest first
    assert ranged["actor"] == "user:" + me["id"]
    assert ranged["target"] == "device:" + dev["id"]
    assert ranged["detail"] == {"channels": ["a", "b"], "from": T0, "to": T0 + 3000, "deleted": 6}
    assert whole["detail"] == {"channels": "all", "range": "all", "deleted": 2 * (N - 3)}


def test_who_may(srv, world):
    admin, org, dev = world
    _, foreign = new_org_device(admin, prefix="delete-foreign")
    tag = time.monotonic_ns()
    users = {}
    for role in ["viewer", "editor"]:
        email = "del-%s-%d@example.com" % (role, tag)
        r = admin.post("/api/v1/orgs/%s/members" % org["id"], json={"email": email, "role": role, "password": PW})
        assert r.status_code == 201, r.text
        users[role] = login(srv.http, email, PW)
    keys = {}
    for scope in ["data:read", "data:write", "manage"]:
        r = admin.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": scope, "scopes": [scope]})
        keys[scope] = Api(srv.http, r.json()["key"])
    rng = "from=%d&to=%d" % (T0, T0 + 1000)
    assert delete(Api(srv.http), dev, rng).status_code == 401
    for who in [users["viewer"], keys["data:read"], keys["data:write"]]:
        r = delete(who, dev, rng)
        assert r.status_code == 403, r.text
    assert points(admin, dev, "a")[0] == T0
    assert delete(users["editor"], dev, rng).json() == {"deleted": 2}
    assert delete(keys["manage"], dev, "from=%d&to=%d" % (T0 + 1000, T0 + 2000)).json() == {"deleted": 2}
    # Another org's device: not found, whoever asks, and nothing deleted.
    fill(admin, foreign["token"], n=3)
    for who in [users["editor"], keys["manage"]]:
        r = delete(who, foreign, "all=true")
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"
    assert len(points(admin, foreign, "a")) == 3
    assert delete(admin, {"id": "no-such-device"}, "all=true").status_code == 404


@pytest.mark.parametrize("query, name", [
    ("", "from"),
    ("channel=a", "from"),
    ("from=%d" % T0, "to"),
    ("to=%d" % T0, "from"),
    ("from=%d&to=%d" % (T0 + 5, T0 + 5), "from"),
    ("from=%d&to=%d" % (T0 + 5, T0), "from"),
    ("from=yesterday&to=%d" % T0, "from"),
    ("from=%d&to=later" % T0, "to"),
    ("all=true&from=%d" % T0, "all"),
    ("all=true&to=%d" % T0, "all"),
    ("all=yes", "all"),
    ("all=false", "from"),
    ("chanel=a&all=true", "chanel"),
    ("channel=bad!name&all=true", "channel"),
    ("channel=&all=true", "channel"),
    ("all=true&all=true", "all"),
])
def test_bad_ranges_named_and_nothing_deleted(world, query, name):
    admin, org, dev = world
    r = delete(admin, dev, query)
    assert r.status_code == 400, (query, r.text)
    err = r.json()["error"]
    assert err["code"] in ("bad_parameter", "unknown_parameter"), err
    assert name in err["message"], (query, err)
    assert len(points(admin, dev, "a")) == N


def test_large_delete_in_steps_while_ingest_goes_on(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="delete-large")
    _, busy = new_org_device(admin, prefix="delete-busy")
    n = 25000  # past two steps of 10,000
    t0 = T0 - 10 * 3600 * 1000
    fill(admin, dev["token"], channels=("v",), n=n, t0=t0)
    stored, stop = [], threading.Event()

    def ingest():
        i = 0
        while not stop.is_set():
            stored.append(post_lines(admin, busy["token"], "w=%d %d\n" % (i, T0 + i)))
            i += 1

    t = threading.Thread(target=ingest)
    t.start()
    try:
        r = delete(admin, dev, "from=%d&to=%d" % (t0, t0 + n * 1000))
    finally:
        stop.set()
        t.join()
    assert r.json() == {"deleted": n}
    assert stored and all(x == 1 for x in stored)
    r = admin.get("/api/v1/devices/%s/data?channel=v&from=%d" % (dev["id"], t0))
    assert r.json()["series"] == {"v": []}
    assert admin.get("/api/v1/devices/%s/latest" % dev["id"]).json() == {}
