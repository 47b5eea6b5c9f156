"""An API key with data:write posts readings over HTTP(S) as any device of
its organisation (or an organisation below it), naming the device with
?device_id=: in JSON or line format, counted under that device (usage and
its session record). Other scopes are refused 403, another org's device
404, a disabled device 403, a revoked key 401 at once, and revoking the key
closes its keep-alive connections."""
import socket
import time

import pytest

from conftest import Api, http_addr, login, module_server, new_org_device, now_ms

srv = module_server([])


@pytest.fixture(scope="module")
def world(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="keys")
    keys = {}
    for scope in ["data:write", "data:read", "manage"]:
        r = admin.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": scope, "scopes": [scope]})
        assert r.status_code == 201, r.text
        keys[scope] = r.json()["key"]
    return admin, org, dev, keys


def post(srv, key, device_id, body, content_type=None, query=None, base=None, verify=True):
    headers = {"Authorization": "Bearer " + key}
    if content_type:
        headers["Content-Type"] = content_type
    q = query if query is not None else "device_id=" + device_id
    import requests
    return requests.post((base or srv.http) + "/api/v1/data?" + q, data=body, headers=headers,
                         timeout=30, verify=verify)


def series(admin, dev, channel):
    r = admin.get("/api/v1/devices/%s/data?channel=%s&from=%d" % (dev["id"], channel, now_ms() - 3600000))
    return r.json()["series"][channel]


def test_key_posts_json_and_lines_as_the_device(srv, world):
    admin, org, dev, keys = world
    ts = now_ms() - 60000
    r = post(srv, keys["data:write"], dev["id"], '{"ts": %d, "values": {"t": 21.5, "h": 40}}' % ts,
             "application/json")
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 2}
    r = post(srv, keys["data:write"], dev["id"], "t=22.5 %d\nt=23.5 %d\n" % (ts + 1, ts + 2), "text/plain")
    assert r.json() == {"stored": 2}
    # No content type: the body's shape decides, as for a device.
    r = post(srv, keys["data:write"], dev["id"], "[{\"ts\": %d, \"values\": {\"t\": 24.5}}]" % (ts + 3))
    assert r.json() == {"stored": 1}
    assert series(admin, dev, "t") == [[ts, 21.5], [ts + 1, 22.5], [ts + 2, 23.5], [ts + 3, 24.5]]
    # Over HTTPS too.
    r = post(srv, keys["data:write"], dev["id"], "h=41 %d" % (ts + 4), base=srv.https, verify=False)
    assert r.json() == {"stored": 1}
    # A bad reading is the device's bad reading: 400 naming its line.
    r = post(srv, keys["data:write"], dev["id"], "t=1\nt=oops\n", "text/plain")
    assert r.status_code == 400 and r.json()["error"]["line"] == 2


def test_counted_under_the_device(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="keys-usage")
    key = admin.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "w", "scopes": ["data:write"]}).json()
    s = Api(srv.http, key["key"])
    for i in range(3):  # one keep-alive connection: one record
        r = s.post("/api/v1/data?device_id=" + dev["id"], data="a=%d,b=%d" % (i, i))
        assert r.status_code == 200, r.text
    s.s.close()
    usage = admin.get("/api/v1/orgs/%s/usage" % org["id"]).json()["usage"]
    http = [u for u in usage if u["protocol"] == "http"]
    assert sum(u["readings"] for u in http) == 6 and sum(u["messages"] for u in http) == 3

    def records():
        rows = admin.get("/api/v1/orgs/%s/sessions?kind=device" % org["id"]).json()
        return [r for r in rows if r["principal_id"] == dev["id"] and r["ended_at"]]
    deadline = time.time() + 10
    while not records() and time.time() < deadline:
        time.sleep(0.1)
    rows = records()
    assert len(rows) == 1, rows
    assert rows[0]["readings"] == 6 and rows[0]["protocol"] == "http" and rows[0]["bytes_in"] > 0
    # Nothing is recorded as the key's own session.
    keyrows = admin.get("/api/v1/orgs/%s/sessions?kind=apikey" % org["id"]).json()
    assert [r for r in keyrows if r["readings"]] == []


def test_scopes_and_orgs(srv, world):
    admin, org, dev, keys = world
    for scope in ["data:read", "manage"]:
        r = post(srv, keys[scope], dev["id"], "t=1")
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
    # Another org's device, a device of no org: not found, nothing stored.
    other_org, other = new_org_device(admin, prefix="keys-other")
    for device_id in [other["id"], "0123456789abcdef0123456789abcdef", "nope"]:
        r = post(srv, keys["data:write"], device_id, "zz=1")
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"
    assert admin.get("/api/v1/devices/%s/latest" % other["id"]).json() == {}
    # A child org's device: the key's org holds it.
    child, cdev = new_org_device(admin, parent=org["id"], prefix="keys-child")
    assert post(srv, keys["data:write"], cdev["id"], "c=1").status_code == 200
    # The other org's key may not write into this one either.
    okey = admin.post("/api/v1/orgs/%s/apikeys" % other_org["id"],
                      json={"name": "w", "scopes": ["data:write"]}).json()["key"]
    assert post(srv, okey, dev["id"], "t=9").status_code == 404


@pytest.mark.parametrize("query", ["", "device_id=", "devce_id=x", "device_id=%s&x=1"])
def test_device_must_be_named(srv, world, query):
    admin, org, dev, keys = world
    r = post(srv, keys["data:write"], dev["id"], "t=1", query=query.replace("%s", dev["id"]))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    # A name the endpoint does not take is refused by name before the rest.
    if err["code"] == "unknown_parameter":
        assert err["parameter"] in ("devce_id", "x"), err
    else:
        assert "device_id" in err["message"], err


def test_bad_credentials(srv, world):
    admin, org, dev, keys = world
    token = admin.s.headers["Authorization"].split(" ", 1)[1]
    for cred in ["ssk_" + "0" * 64, token, "nonsense"]:
        r = post(srv, cred, dev["id"], "t=1")
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "invalid_token"


def test_disabled_and_deleted_device(srv, world):
    admin, org, dev, keys = world
    d = admin.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "soon-off"}).json()
    assert post(srv, keys["data:write"], d["id"], "t=1").status_code == 200
    assert admin.patch("/api/v1/devices/" + d["id"], json={"disabled": True}).status_code == 200
    r = post(srv, keys["data:write"], d["id"], "t=2")
    assert r.status_code == 403 and r.json()["error"]["code"] == "device_disabled"
    assert admin.delete("/api/v1/devices/" + d["id"]).status_code == 204
    assert post(srv, keys["data:write"], d["id"], "t=3").status_code == 404


def raw_post(sock, key, device_id, body):
    req = ("POST /api/v1/data?device_id=%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (device_id, key, len(body), body))
    sock.sendall(req.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    return head


def test_revoked_key_refused_and_its_connection_closed(srv, world):
    admin, org, dev, keys = world
    k = admin.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "to-go", "scopes": ["data:write"]}).json()
    s = socket.create_connection(http_addr(srv), timeout=5)
    assert raw_post(s, k["key"], dev["id"], "r=1").startswith(b"HTTP/1.1 200")
    assert admin.delete("/api/v1/apikeys/" + k["id"]).status_code == 204
    # The keep-alive connection is closed by the server, without a request.
    s.settimeout(5)
    rest = b""
    start = time.monotonic()
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        rest += chunk
    assert time.monotonic() - start < 3
    s.close()
    assert post(srv, k["key"], dev["id"], "r=2").status_code == 401


def test_device_token_with_device_id_of_another_device_is_refused(srv, world):
    """A device token posts as its own device: ?device_id= naming it is
    taken, naming another device is a 400, and nothing is stored."""
    import requests
    admin, org, dev, keys = world
    _, other = new_org_device(admin, parent=org["id"], prefix="keys-tok")
    headers = {"X-Auth-Token": other["token"]}
    url = srv.http + "/api/v1/data?device_id="
    ts = now_ms()
    r = requests.post(url + dev["id"], data="z=1 %d" % ts, headers=headers, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_parameter"
    assert "device_id" in r.json()["error"]["message"]
    assert admin.get("/api/v1/devices/%s/latest" % dev["id"]).json().get("z") is None
    r = requests.post(url + other["id"], data="z=2 %d" % ts, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert admin.get("/api/v1/devices/%s/latest" % other["id"]).json()["z"]["value"] == 2
