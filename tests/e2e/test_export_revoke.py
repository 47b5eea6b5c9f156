"""An export in progress ends when its access is revoked (docs/api.md:
a streamed answer that ends without its last chunk was cut, "the
credential was revoked"): the key deleted, the member removed. Each export
here is longer than the sockets between client and server hold, read
slowly, so it is still running when the access goes."""
import socket
import time

import pytest

from conftest import http_addr, login, module_server, now_ms

srv = module_server(["--durability", "normal"])

READINGS = 300_000      # about 18 MB of CSV: more than loopback buffers hold
PER_POST = 10_000       # the batch limit of one request
PW = "member-password-1"


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


@pytest.fixture(scope="module")
def big_org(srv, api):
    import requests
    org = api.post("/api/v1/orgs", json={"name": "revoke-%d" % time.monotonic_ns()}).json()
    dev = api.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "d"}).json()
    base = now_ms() - READINGS * 10 - 60_000
    s = requests.Session()
    for start in range(0, READINGS, PER_POST):
        body = "".join("v=%d %d\n" % (i, base + 10 * i) for i in range(start, start + PER_POST))
        r = s.post(srv.http + "/api/v1/data", data=body,
                   headers={"X-Auth-Token": dev["token"], "Content-Type": "text/plain"}, timeout=120)
        assert r.status_code == 200, r.text
    return org


def start_export(srv, org_id, token):
    """A raw HTTP/1.1 export request; returns the socket once the head is
    in."""
    s = socket.create_connection(http_addr(srv), timeout=10)
    s.sendall(("GET /api/v1/orgs/%s/export HTTP/1.1\r\nHost: x\r\n"
               "Authorization: Bearer %s\r\nAccept-Encoding: identity\r\n\r\n"
               % (org_id, token)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return s


def read_rest(s, limit_s=30):
    """Reads until the answer's last chunk or the server's close: (bytes
    read, whether the last chunk came). The connection is kept alive after
    a whole answer, so that is its end."""
    got = 0
    tail = b""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        chunk = s.recv(1 << 20)
        if not chunk:
            return got, False
        got += len(chunk)
        tail = (tail + chunk)[-16:]
        if tail.endswith(b"\r\n0\r\n\r\n"):
            return got, True
    raise AssertionError("the export neither ended nor was cut in %d s" % limit_s)


def assert_cut(s):
    got, whole = read_rest(s)
    s.close()
    assert not whole, "the export ran to its end (%d bytes after the revocation)" % got


def test_key_deleted_cuts_its_export(srv, api, big_org):
    key = api.post("/api/v1/orgs/%s/apikeys" % big_org["id"],
                   json={"name": "reader", "scopes": ["data:read"]}).json()
    s = start_export(srv, big_org["id"], key["key"])
    assert api.delete("/api/v1/apikeys/" + key["id"]).status_code == 204
    time.sleep(0.3)
    assert_cut(s)


def test_member_removed_cuts_their_export(srv, api, big_org):
    email = "export-%d@example.com" % time.monotonic_ns()
    r = api.post("/api/v1/orgs/%s/members" % big_org["id"],
                 json={"email": email, "role": "viewer", "password": PW})
    assert r.status_code == 201, r.text
    uid = r.json()["user_id"]
    member = login(srv.http, email, PW)
    token = member.s.headers["Authorization"][len("Bearer "):]
    s = start_export(srv, big_org["id"], token)
    assert api.delete("/api/v1/orgs/%s/members/%s" % (big_org["id"], uid)).status_code == 204
    time.sleep(0.3)
    assert_cut(s)


def test_role_change_elsewhere_keeps_the_export(srv, api, big_org):
    """A change that leaves the reader's access as it was does not cut it:
    the export runs to its last chunk."""
    email = "export-%d@example.com" % time.monotonic_ns()
    r = api.post("/api/v1/orgs/%s/members" % big_org["id"],
                 json={"email": email, "role": "viewer", "password": PW})
    uid = r.json()["user_id"]
    member = login(srv.http, email, PW)
    token = member.s.headers["Authorization"][len("Bearer "):]
    s = start_export(srv, big_org["id"], token)
    assert api.patch("/api/v1/orgs/%s/members/%s" % (big_org["id"], uid),
                     json={"role": "editor"}).status_code == 200
    time.sleep(0.3)
    got, whole = read_rest(s)
    s.close()
    assert whole, "the export was cut after %d bytes" % got
