"""A dashboard user's open live stream lasts while a dashboard shows what
it follows: a dashboard's update that drops a channel, its delete, or a
device's attributes that a dynamic dashboard's filter no longer matches
end it within moments; a viewer's stream of the same device goes on."""
import select
import socket
import time
import urllib.parse

import requests

from conftest import login, module_server, new_org_device, now_ms

PW = "member-password-1"

srv = module_server([])


def member(api, org_id, role):
    email = "recheck-%s-%d@example.com" % (role, time.monotonic_ns())
    r = api.post("/api/v1/orgs/%s/members" % org_id, json={"email": email, "role": role, "password": PW})
    assert r.status_code == 201, r.text
    return login(api.base, email, PW)


def post(base, dev, values):
    r = requests.post(base + "/api/v1/data", json={"ts": now_ms(), "values": values},
                      headers={"X-Auth-Token": dev["token"]}, timeout=30)
    assert r.status_code == 200, r.text


def open_stream(api, org_id, dev_id, channels):
    """A raw connection reading the stream: a read that times out leaves
    it open (a requests stream would be over after one)."""
    host, port = urllib.parse.urlsplit(api.base).netloc.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    path = "/api/v1/orgs/%s/live?device=%s&channel=%s" % (org_id, dev_id, channels)
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n\r\n"
                  % (path, host, api.s.headers["Authorization"])).encode())
    return Stream(sock)


class Stream:
    """An open stream read a little at a time: its bytes so far, and
    whether it has ended (its last chunk, or the connection closed)."""

    def __init__(self, sock):
        self.sock, self.buf, self.ended = sock, b"", False
        self.pump(0.5)
        assert self.buf.startswith(b"HTTP/1.1 200"), self.buf[:200]

    def pump(self, secs):
        t0 = time.monotonic()
        while not self.ended and time.monotonic() - t0 < secs:
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            data = self.sock.recv(65536)
            self.buf += data
            self.ended = not data or self.buf.endswith(b"\r\n0\r\n\r\n")
        return self

    def ends_within(self, secs):
        return self.pump(secs).ended

    def data_seen(self, text):
        return text.encode() in self.buf


def make_board(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="recheck")
    dash = admin.post("/api/v1/orgs/%s/dashboards" % org["id"], json={
        "name": "board", "kind": "static",
        "widgets": [{"type": "line", "device_id": dev["id"], "channels": ["temp", "hum"]}]})
    assert dash.status_code == 201, dash.text
    return admin, org, dev, dash.json()


def test_update_and_delete_end_what_no_dashboard_shows(srv):
    admin, org, dev, dash = make_board(srv)
    user = member(admin, org["id"], "dashboard")
    viewer = member(admin, org["id"], "viewer")
    both = open_stream(user, org["id"], dev["id"], "temp,hum")
    temp = open_stream(user, org["id"], dev["id"], "temp")
    seen = open_stream(viewer, org["id"], dev["id"], "temp,hum")
    for s in (both, temp, seen):
        assert not s.ends_within(0.3)

    dash["widgets"][0]["channels"] = ["temp"]
    r = admin.put("/api/v1/dashboards/%s" % dash["id"], json=dash)
    assert r.status_code == 200, r.text
    assert both.ends_within(2), "a stream of a channel no dashboard shows any more goes on"
    post(srv.http, dev, {"temp": 1111.5, "hum": 2})
    assert not temp.pump(1).ended and temp.data_seen("1111.5")

    r = admin.delete("/api/v1/dashboards/%s" % dash["id"])
    assert r.status_code in (200, 204), r.text
    assert temp.ends_within(2), "a stream of what a deleted dashboard showed goes on"
    post(srv.http, dev, {"temp": 2222.5})
    assert not seen.pump(1).ended and seen.data_seen("2222.5"), "the viewer's stream was touched"
    # New requests are refused, as before.
    r = user.s.get(user.url("/api/v1/orgs/%s/live" % org["id"]),
                   params={"device": dev["id"], "channel": "temp"}, stream=True, timeout=5)
    assert r.status_code == 403


def test_a_device_a_dynamic_dashboard_no_longer_matches(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="recheck-dyn")
    r = admin.patch("/api/v1/devices/%s" % dev["id"], json={"attributes": {"type": "boiler"}})
    assert r.status_code == 200, r.text
    r = admin.post("/api/v1/orgs/%s/dashboards" % org["id"], json={
        "name": "boilers", "kind": "dynamic", "device_filter": {"type": "boiler"},
        "widgets": [{"type": "gauge", "channels": ["temp"]}]})
    assert r.status_code == 201, r.text
    user = member(admin, org["id"], "dashboard")
    s = open_stream(user, org["id"], dev["id"], "temp")
    assert not s.ends_within(0.3)
    r = admin.patch("/api/v1/devices/%s" % dev["id"], json={"attributes": {"type": "pump"}})
    assert r.status_code == 200, r.text
    assert s.ends_within(2), "a stream of a device no dashboard shows any more goes on"
