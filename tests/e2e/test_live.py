"""The live stream (SPEC §2, docs/api.md "Live stream"): GET
/api/v1/orgs/{org}/live as Server-Sent Events, read by a real SSE reader
(requests with stream=True, parsing the event stream as a browser's
EventSource does)."""
import json
import socket
import threading
import time

import pytest
import requests

from conftest import login, module_server, new_org_device, now_ms, rss_kb
from mqtt_util import device_client

PW = "member-password-1"
ARGS = ["--listen-tcp", "127.0.0.1:0", "--listen-udp", "127.0.0.1:0",
        "--listen-mqtt", "127.0.0.1:0", "--live-heartbeat", "0.2"]
srv = module_server(ARGS)

# An org's window (SS_LIVE_ORG_EVENTS_MAX) and the most readings a request takes.
WINDOW = 16384
BATCH_MAX = 10000


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


class Sse:
    """One Server-Sent Events stream: events as (event, id, data), comments
    counted, parsed from the bytes as they come."""

    def __init__(self, base, token, org_id, device=None, last_id=None, timeout=5, query=None,
                 verify=True):
        headers = {"Authorization": "Bearer " + token, "Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        url = "%s/api/v1/orgs/%s/live" % (base, org_id)
        params = dict(query or {})
        if device:
            params["device"] = device
        self.r = requests.get(url, headers=headers, params=params, stream=True,
                              timeout=(5, timeout), verify=verify)
        self.status = self.r.status_code
        self.chunks = self.r.iter_content(chunk_size=None) if self.status == 200 else iter(())
        self.buf = b""
        self.comments = 0
        self.retry = None
        self.ended = False

    def _line(self):
        while b"\n" not in self.buf:
            try:
                chunk = next(self.chunks)
            except StopIteration:
                self.ended = True
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode()

    def event(self):
        """The next event, or None when the stream ended."""
        ev = {"event": "message", "id": None, "data": []}
        seen = False
        while True:
            line = self._line()
            if line is None:
                return None
            if line == "":
                if seen:
                    ev["data"] = "\n".join(ev["data"])
                    return ev
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "retry":
                self.retry = int(value)
                continue
            seen = True
            if field == "data":
                ev["data"].append(value)
            elif field in ("event", "id"):
                ev[field] = value

    def reading(self):
        ev = self.event()
        assert ev is not None, "the stream ended"
        assert ev["event"] == "message", ev
        return ev["id"], json.loads(ev["data"])

    def ends(self, within=3):
        """The stream ends (cleanly or cut) within `within` seconds."""
        t0 = time.monotonic()
        try:
            while self.event() is not None:
                assert time.monotonic() - t0 < within, "the stream goes on"
        except requests.exceptions.RequestException:
            pass
        return time.monotonic() - t0

    def quiet(self, seconds):
        """Nothing but comments (heartbeats) for `seconds`."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            line = self._line()
            assert line is not None, "the stream ended"
            assert line == "" or line.startswith(":"), line

    def close(self):
        self.r.close()


def member(api, org_id, role="viewer"):
    email = "live-%d@example.com" % time.monotonic_ns()
    r = api.post("/api/v1/orgs/%s/members" % org_id, json={"email": email, "role": role, "password": PW})
    assert r.status_code == 201, r.text
    return email, r.json()["user_id"]


def viewer(srv, api, org_id):
    email, uid = member(api, org_id)
    return login(srv.http, email, PW), uid


def token_of(client):
    return client.s.headers["Authorization"].split(" ", 1)[1]


def post(srv, dev, body):
    r = requests.post(srv.http + "/api/v1/data", json=body, headers={"X-Auth-Token": dev["token"]},
                      timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["stored"]


def post_many(srv, dev, n, ts0, channel="n"):
    """n readings, each of its own ts (n events), in requests of BATCH_MAX."""
    for start in range(0, n, BATCH_MAX):
        body = [{"ts": ts0 + i, "values": {channel: i}} for i in range(start, min(n, start + BATCH_MAX))]
        post(srv, dev, body)


def tcp_send(srv, token, lines):
    host, port = srv.addrs["tcp"].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(("AUTH %s\n%s\n" % (token, "\n".join(lines))).encode())
    got = b""
    while b"ACK %d\n" % len(lines) not in got:
        chunk = s.recv(1024)
        assert chunk, got
        got += chunk
    s.close()


def udp_send(srv, token, line):
    host, port = srv.addrs["udp"].rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(("%s\n%s\n" % (token, line)).encode(), (host, int(port)))
    s.close()


def seq_of(event_id):
    return int(event_id.rsplit("-", 1)[1])


# ---- readings from every protocol ---------------------------------------------------


def test_every_protocol_arrives_within_a_second(srv, api):
    org, dev = new_org_device(api, prefix="live")
    person, _ = viewer(srv, api, org["id"])
    sse = Sse(srv.https, token_of(person), org["id"], verify=srv.cert)
    assert sse.status == 200
    assert sse.r.headers["Content-Type"].startswith("text/event-stream")
    ts = now_ms() - 60000

    def https():
        r = requests.post(srv.https + "/api/v1/data", verify=srv.cert, timeout=10,
                          json=[{"ts": ts, "values": {"a": 1.5, "b": 2}}, {"ts": ts + 1, "values": {"a": 3}}],
                          headers={"X-Auth-Token": dev["token"]})
        assert r.status_code == 200, r.text
        return [(ts, {"a": 1.5, "b": 2}), (ts + 1, {"a": 3})]

    def tcp():
        tcp_send(srv, dev["token"], ["t=2 %d" % (ts + 2)])
        return [(ts + 2, {"t": 2})]

    def udp():
        udp_send(srv, dev["token"], "u=3,v=-0.25 %d" % (ts + 3))
        return [(ts + 3, {"u": 3, "v": -0.25})]

    def mqtt():
        c = device_client(srv, dev)
        assert c.publish("devices/me/data", json.dumps({"ts": ts + 4, "values": {"m": 4.25}}), qos=1).ok
        c.bye()
        return [(ts + 4, {"m": 4.25})]

    last = 0
    for send in (https, tcp, udp, mqtt):
        t0 = time.monotonic()
        want = send()
        for wts, values in want:
            eid, body = sse.reading()
            assert time.monotonic() - t0 < 1.0, send.__name__
            assert body == {"device_id": dev["id"], "ts": wts, "values": values}, send.__name__
            assert seq_of(eid) == last + 1  # ids increase by one within the org
            last = seq_of(eid)
    assert sse.retry == 2000
    sse.close()


def test_heartbeats_on_an_idle_stream(srv, api):
    org, _ = new_org_device(api, prefix="live-hb")
    sse = Sse(srv.http, token_of(api), org["id"], timeout=2)
    t0 = time.monotonic()
    comments = 0
    while comments < 2:  # --live-heartbeat 0.2: two within a second
        line = sse._line()
        assert line is not None
        comments += line.startswith(":")
        assert time.monotonic() - t0 < 1
    sse.close()


def test_api_key_with_data_read(srv, api):
    org, dev = new_org_device(api, prefix="live-key")
    key = api.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "r", "scopes": ["data:read"]}).json()
    sse = Sse(srv.http, key["key"], org["id"])
    assert sse.status == 200
    post(srv, dev, {"k": 1})
    _, body = sse.reading()
    assert body["values"] == {"k": 1}
    writer = api.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "w", "scopes": ["data:write"]}).json()
    assert Sse(srv.http, writer["key"], org["id"]).status == 403
    sse.close()


# ---- resume ----------------------------------------------------------------------------


def test_resume_after_a_disconnect_without_a_gap(srv, api):
    org, dev = new_org_device(api, prefix="live-resume")
    ts = now_ms() - 100000
    sse = Sse(srv.http, token_of(api), org["id"])
    post(srv, dev, [{"ts": ts + i, "values": {"n": i}} for i in range(3)])
    ids = [sse.reading()[0] for _ in range(3)]
    sse.close()
    post(srv, dev, [{"ts": ts + i, "values": {"n": i}} for i in range(3, 8)])
    post(srv, dev, {"ts": ts + 8, "values": {"n": 8}})
    again = Sse(srv.http, token_of(api), org["id"], last_id=ids[-1])
    got = [again.reading() for _ in range(6)]
    assert [b["values"]["n"] for _, b in got] == list(range(3, 9))
    assert [seq_of(i) for i, _ in got] == list(range(seq_of(ids[-1]) + 1, seq_of(ids[-1]) + 7))
    post(srv, dev, {"ts": ts + 9, "values": {"n": 9}})
    assert again.reading()[1]["values"] == {"n": 9}  # no duplicate before it
    again.close()
    # From the middle: the rest of them, once each.
    mid = Sse(srv.http, token_of(api), org["id"], last_id=ids[0])
    assert [mid.reading()[1]["values"]["n"] for _ in range(9)] == list(range(1, 10))
    mid.close()


def test_an_id_beyond_the_window_gets_reset(srv, api):
    org, dev = new_org_device(api, prefix="live-window")
    sse = Sse(srv.http, token_of(api), org["id"])
    post(srv, dev, {"w": 0})
    first, _ = sse.reading()
    sse.close()
    post_many(srv, dev, WINDOW + 100, now_ms() - 500000)
    again = Sse(srv.http, token_of(api), org["id"], last_id=first)
    ev = again.event()
    assert ev["event"] == "reset", ev
    assert seq_of(ev["id"]) == seq_of(first) + WINDOW + 100
    post(srv, dev, {"w": 1})
    eid, body = again.reading()
    assert body["values"] == {"w": 1} and seq_of(eid) == seq_of(ev["id"]) + 1
    again.close()
    # A well-formed id of another window (another org's, a restart's).
    other = Sse(srv.http, token_of(api), org["id"], last_id="0123456789abcdef-3")
    assert other.event()["event"] == "reset"
    other.close()


@pytest.mark.parametrize("bad", ["zz", "12", "0123456789abcdef-", "0123456789abcdef-x1",
                                 "0123456789ABCDEF-1", "0123456789abcdef-99999999999999999999999",
                                 "x" * 200])
def test_malformed_last_event_id(srv, api, bad):
    org, _ = new_org_device(api, prefix="live-badid")
    sse = Sse(srv.http, token_of(api), org["id"], last_id=bad)
    assert sse.status == 400
    assert sse.r.json()["error"]["code"] == "bad_last_event_id"


# ---- what a stream sees ----------------------------------------------------------------


def test_device_filter(srv, api):
    org, dev = new_org_device(api, prefix="live-filter")
    dev2 = api.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "second"}).json()
    sse = Sse(srv.http, token_of(api), org["id"], device=dev2["id"])
    assert sse.status == 200
    post(srv, dev, {"a": 1})
    post(srv, dev2, {"b": 2})
    post(srv, dev, {"a": 3})
    post(srv, dev2, {"b": 4})
    assert [sse.reading()[1]["values"] for _ in range(2)] == [{"b": 2}, {"b": 4}]
    sse.close()


def test_device_filter_bad_input(srv, api):
    org, dev = new_org_device(api, prefix="live-filter-bad")
    other, foreign = new_org_device(api, prefix="live-filter-other")
    tok = token_of(api)
    for device in [foreign["id"], "0" * 24, "nonsense", "x" * 100]:
        r = Sse(srv.http, tok, org["id"], device=device)
        assert r.status == 404, device
        assert r.r.json()["error"]["code"] == "not_found"
    r = requests.get(srv.http + "/api/v1/orgs/%s/live?device=%s&device=%s" % (org["id"], dev["id"], dev["id"]),
                     headers={"Authorization": "Bearer " + tok}, timeout=5)
    assert r.status_code == 400
    r = Sse(srv.http, tok, org["id"], query={"devce": dev["id"]})
    assert r.status == 400 and "devce" in r.r.json()["error"]["message"]
    assert r.r.json()["error"]["code"] == "unknown_parameter"
    r = Sse(srv.http, tok, org["id"], query={"device": ""})
    assert r.status == 400


def test_another_orgs_viewer_gets_404_and_sees_nothing_of_it(srv, api):
    org, dev = new_org_device(api, prefix="live-mine")
    theirs, their_dev = new_org_device(api, prefix="live-theirs")
    stranger, _ = viewer(srv, api, theirs["id"])
    refused = Sse(srv.http, token_of(stranger), org["id"])
    assert refused.status == 404
    assert Sse(srv.http, token_of(stranger), "0" * 24).status == 404
    own = Sse(srv.http, token_of(stranger), theirs["id"])
    post(srv, dev, {"secret": 1})
    post(srv, their_dev, {"own": 2})
    assert own.reading()[1]["values"] == {"own": 2}
    post(srv, dev, {"secret": 3})
    own.quiet(0.6)
    own.close()
    assert Sse(srv.http, "", org["id"]).status == 401


def test_a_child_orgs_stream_for_a_viewer_of_the_parent(srv, api):
    parent, _ = new_org_device(api, prefix="live-parent")
    child, dev = new_org_device(api, parent=parent["id"], prefix="live-child")
    person, _ = viewer(srv, api, parent["id"])
    sse = Sse(srv.http, token_of(person), child["id"])
    assert sse.status == 200
    post(srv, dev, {"c": 1})
    assert sse.reading()[1]["device_id"] == dev["id"]
    sse.close()


# ---- access ends the stream ------------------------------------------------------------


def test_removing_the_member_ends_their_stream(srv, api):
    org, dev = new_org_device(api, prefix="live-rm")
    elsewhere, dev2 = new_org_device(api, prefix="live-stay")
    email, uid = member(api, org["id"])
    assert api.post("/api/v1/orgs/%s/members" % elsewhere["id"],
                    json={"email": email, "role": "viewer"}).status_code in (200, 201)
    person = login(srv.http, email, PW)
    gone = Sse(srv.http, token_of(person), org["id"])
    stays = Sse(srv.http, token_of(person), elsewhere["id"])
    assert gone.status == 200 and stays.status == 200
    post(srv, dev, {"before": 1})
    assert gone.reading()[1]["values"] == {"before": 1}
    # A role change keeps the stream: the role still reads.
    assert api.patch("/api/v1/orgs/%s/members/%s" % (org["id"], uid), json={"role": "editor"}).status_code == 200
    post(srv, dev, {"still": 1})
    assert gone.reading()[1]["values"] == {"still": 1}
    assert api.delete("/api/v1/orgs/%s/members/%s" % (org["id"], uid)).status_code == 204
    assert gone.ends(within=1.0) < 1.0
    # Their other stream and their session go on.
    post(srv, dev2, {"other": 1})
    assert stays.reading()[1]["values"] == {"other": 1}
    assert person.get("/api/v1/me").status_code == 200
    assert Sse(srv.http, token_of(person), org["id"]).status == 404
    stays.close()


def test_removing_the_member_of_the_parent_ends_a_child_stream(srv, api):
    parent, _ = new_org_device(api, prefix="live-rm-parent")
    child, _ = new_org_device(api, parent=parent["id"], prefix="live-rm-child")
    person, uid = viewer(srv, api, parent["id"])
    sse = Sse(srv.http, token_of(person), child["id"])
    assert sse.status == 200
    assert api.delete("/api/v1/orgs/%s/members/%s" % (parent["id"], uid)).status_code == 204
    assert sse.ends(within=1.0) < 1.0


def test_revoking_the_key_ends_its_stream(srv, api):
    org, dev = new_org_device(api, prefix="live-key-rev")
    key = api.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "r", "scopes": ["data:read"]}).json()
    other = api.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "o", "scopes": ["data:read"]}).json()
    sse = Sse(srv.http, key["key"], org["id"])
    stays = Sse(srv.http, other["key"], org["id"])
    assert api.delete("/api/v1/apikeys/" + key["id"]).status_code == 204
    assert sse.ends(within=1.0) < 1.0
    post(srv, dev, {"k": 1})
    assert stays.reading()[1]["values"] == {"k": 1}
    stays.close()


def test_sign_out_disable_and_org_delete_end_streams(srv, api):
    org, dev = new_org_device(api, prefix="live-end")
    email, uid = member(api, org["id"])
    a, b = login(srv.http, email, PW), login(srv.http, email, PW)
    sa, sb = Sse(srv.http, token_of(a), org["id"]), Sse(srv.http, token_of(b), org["id"])
    assert a.post("/api/v1/auth/logout").status_code == 204
    assert sa.ends(within=1.0) < 1.0
    post(srv, dev, {"x": 1})
    assert sb.reading()[1]["values"] == {"x": 1}  # the other session's goes on
    assert api.patch("/api/v1/users/" + uid, json={"disabled": True}).status_code == 200
    assert sb.ends(within=1.0) < 1.0
    mine = Sse(srv.http, token_of(api), org["id"])
    assert api.delete("/api/v1/devices/" + dev["id"]).status_code == 204
    assert api.delete("/api/v1/orgs/" + org["id"]).status_code == 204
    assert mine.ends(within=1.0) < 1.0


def test_ending_a_session_and_a_password_reset_end_streams(srv, api):
    org, dev = new_org_device(api, prefix="live-sess")
    email, uid = member(api, org["id"])
    a, b = login(srv.http, email, PW), login(srv.http, email, PW)
    sa, sb = Sse(srv.http, token_of(a), org["id"]), Sse(srv.http, token_of(b), org["id"])
    sessions = b.get("/api/v1/me/sessions").json()
    other = [x["id"] for x in sessions if not x["current"]]
    assert len(other) == 1
    assert b.delete("/api/v1/me/sessions/" + other[0]).status_code == 204  # a's session
    assert sa.ends(within=1.0) < 1.0
    post(srv, dev, {"x": 1})
    assert sb.reading()[1]["values"] == {"x": 1}
    r = api.put("/api/v1/users/%s/password" % uid, json={"new_password": "reset-password-3"})
    assert r.status_code == 204, r.text
    assert sb.ends(within=1.0) < 1.0


# ---- slow clients, limits, the stop -----------------------------------------------------


def sanitized(pid):
    """AddressSanitizer keeps freed memory in quarantine: RSS then says
    nothing of what the server holds."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def test_a_client_that_never_reads_is_cut_off(srv, api):
    org, dev = new_org_device(api, prefix="live-slow")
    host, port = srv.addrs["http"].rsplit(":", 1)
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect((host, int(port)))
    slow.sendall(("GET /api/v1/orgs/%s/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                  % (org["id"], token_of(api))).encode())
    fast = Sse(srv.http, token_of(api), org["id"], timeout=10)
    got = []
    n = 6 * BATCH_MAX

    def read_all():
        while len(got) < n:
            got.append(fast.reading())

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    time.sleep(0.3)
    before = rss_kb(srv.proc.pid)
    post_many(srv, dev, n, now_ms() - 900000)
    peak = rss_kb(srv.proc.pid)
    deadline = time.monotonic() + 20
    reader.join(timeout=max(0, deadline - time.monotonic()))
    assert len(got) == n  # the reader that keeps up had everything, in order
    assert [b["values"]["n"] for _, b in got] == list(range(n))
    # The one that never read: its last event says why, then the end.
    slow.settimeout(10)
    data = b""
    while True:
        chunk = slow.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    assert b"event: overflow" in data[-400:], data[-400:]
    # The org's window (4 MiB at most) and the store's cache, not the
    # 7 MB of events the slow client was never able to take.
    if not sanitized(srv.proc.pid):
        assert peak - before < 64 * 1024, (before, peak)
    fast.close()


def test_streams_per_org_are_bounded(srv, api):
    org, dev = new_org_device(api, prefix="live-many")
    host, port = srv.addrs["http"].rsplit(":", 1)
    req = ("GET /api/v1/orgs/%s/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
           % (org["id"], token_of(api))).encode()
    socks = []
    try:
        for _ in range(256):
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(req)
            socks.append(s)
        for s in socks:
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            assert head.startswith(b"HTTP/1.1 200"), head
        r = Sse(srv.http, token_of(api), org["id"])
        assert r.status == 429
        assert r.r.json()["error"]["code"] == "too_many_streams"
        assert "Retry-After" in r.r.headers
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 5
    while Sse(srv.http, token_of(api), org["id"]).status != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_stop_ends_streams_cleanly_and_ids_do_not_survive_it(fresh_server):
    s = fresh_server()
    admin = login(s.http)
    org, dev = new_org_device(admin, prefix="live-stop")
    sse = Sse(s.http, token_of(admin), org["id"])
    post(s, dev, {"a": 1})
    eid, _ = sse.reading()
    assert s.stop() == 0
    assert sse.event() is None and sse.ended  # the last chunk came: a clean end
    s.start()
    admin = login(s.http)
    again = Sse(s.http, token_of(admin), org["id"], last_id=eid)
    assert again.event()["event"] == "reset"
    again.close()


def key_record(api, org_id, key_id):
    rows = api.get("/api/v1/orgs/%s/sessions" % org_id).json()
    rows = rows.get("sessions", rows) if isinstance(rows, dict) else rows
    mine = [x for x in rows if x["principal_id"] == key_id]
    return mine[0] if mine else None


def test_head_and_accounting(srv, api):
    org, dev = new_org_device(api, prefix="live-acct")
    head_key = api.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "h", "scopes": ["data:read"]}).json()
    r = requests.head(srv.http + "/api/v1/orgs/%s/live" % org["id"],
                      headers={"Authorization": "Bearer " + head_key["key"]}, timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    key = api.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "r", "scopes": ["data:read"]}).json()
    sse = Sse(srv.http, key["key"], org["id"])
    post(srv, dev, {"a": 1})
    sse.reading()
    sse.close()
    # A stream is an API request of its credential, its bytes counted as
    # sent, in the session record of its connection.
    deadline = time.monotonic() + 10
    while True:
        h, k = key_record(api, org["id"], head_key["id"]), key_record(api, org["id"], key["id"])
        if (h and h["api_requests"] == 1 and k and k["ended_at"] and k["api_requests"] == 1
                and k["bytes_out"] > 150):
            break
        assert time.monotonic() < deadline, (h, k)
        time.sleep(0.3)
    # A person's stream, closed by the client, in their login's record.
    person, uid = viewer(srv, api, org["id"])
    sse = Sse(srv.http, token_of(person), org["id"])
    post(srv, dev, {"a": 2})
    sse.reading()
    sse.close()
    deadline = time.monotonic() + 10
    while True:
        p = key_record(api, org["id"], uid)
        if p and p["api_requests"] == 1 and p["bytes_out"] > 150:
            break
        assert time.monotonic() < deadline, p
        time.sleep(0.3)
