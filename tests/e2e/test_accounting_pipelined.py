"""Accounting of pipelined requests (SPEC §5): each request on a connection
counts under whoever it turned out to be from, never under the request
before it, even when a client sends them all at once and the server
answers them one by one."""
import re
import time

from conftest import login, new_org_device, raw_http


def wait_for(fn, timeout=10):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value or time.time() > deadline:
            return value
        time.sleep(0.2)


def get(path, token=None, close=False):
    auth = "Authorization: Bearer %s\r\n" % token if token else ""
    conn = "Connection: close\r\n" if close else ""
    return "GET %s HTTP/1.1\r\nHost: t\r\n%s%s\r\n" % (path, auth, conn)


def post_data(token, body):
    return ("POST /api/v1/data HTTP/1.1\r\nHost: t\r\nX-Auth-Token: %s\r\n"
            "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (token, len(body), body))


def statuses(raw):
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


def test_pipelined_requests_each_count_under_their_own_principal(server, admin):
    org, dev = new_org_device(admin)
    email = "piped-%d@example.com" % time.monotonic_ns()
    r = admin.post("/api/v1/orgs/%s/members" % org["id"],
                   json={"email": email, "role": "admin", "password": "member-password-1"})
    assert r.status_code == 201
    person = login(server.http, email, "member-password-1")
    token = person.s.headers["Authorization"].split(" ", 1)[1]
    devices = "/api/v1/orgs/%s/devices" % org["id"]

    wire = (get(devices, token) + get(devices) + post_data(dev["token"], "a=1\n")
            + get(devices, token)
            + "GET /api/v1/me HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n")
    assert statuses(raw_http(server, wire.encode())) == [200, 401, 200, 200, 400]

    uid = person.get("/api/v1/me").json()["id"]

    def records(kind):
        rows = admin.get("/api/v1/orgs/%s/sessions?kind=%s" % (org["id"], kind)).json()
        return rows
    mine = wait_for(lambda: [r for r in records("user") if r["principal_id"] == uid
                             and r["api_requests"] >= 2])
    # the two requests of the person: not the unauthenticated one after
    # the first, nor the device's, nor the one the transport refused
    assert len(mine) == 1 and mine[0]["api_requests"] == 2, mine
    device = wait_for(lambda: [r for r in records("device") if r["principal_id"] == dev["id"]
                               and r["ended_at"]])
    assert len(device) == 1 and device[0]["protocol"] == "http"
    assert device[0]["readings"] == 1 and device[0]["api_requests"] == 0, device
