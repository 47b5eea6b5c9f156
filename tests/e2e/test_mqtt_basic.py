"""MQTT broker smoke tests (SPEC §3.6): the listeners, CONNECT with a device
token or an API key, readings published and read back over REST, refused
credentials, an app seeing what a device publishes, the framing rules
(nothing before CONNECT, one CONNECT, the packet size limit, the time to
CONNECT), bad payloads, revocation and the stop. Each scenario runs for
MQTT 3.1.1 and 5.0. The wide conformance suite is in the other
test_mqtt_*.py files; these prove each step of the broker works."""
import json
import queue
import socket
import ssl
import struct
import time

import paho.mqtt.client as paho
import pytest

from conftest import login, module_server, new_org_device, now_ms

MQTT_ARGS = ["--listen-mqtt", "127.0.0.1:0", "--listen-mqtts", "127.0.0.1:0",
             "--first-message-timeout", "1"]
V311, V5 = 4, 5
VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
PACKET_MAX = 256 * 1024

srv = module_server(MQTT_ARGS)


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


@pytest.fixture
def od(api):
    """(org, device with its token)."""
    return new_org_device(api, prefix="mqtt")


def addr(srv, name="mqtt"):
    host, port = srv.addrs[name].rsplit(":", 1)
    return host, int(port)


def new_key(api, org, scopes):
    r = api.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "app", "scopes": scopes})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def series(api, dev, channel):
    r = api.get("/api/v1/devices/%s/data?channel=%s" % (dev["id"], channel))
    assert r.status_code == 200, r.text
    return r.json()["series"].get(channel, [])


def wait_for(pred, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


# ---- a raw client: the exact bytes ----------------------------------------------

def varint(n):
    out = b""
    while True:
        b = n % 128
        n //= 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def mstr(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(s)) + s


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect_packet(version, password=None, username="dev", client_id="", clean=True, keep_alive=60):
    flags = 0x02 if clean else 0
    payload = mstr(client_id)
    if username is not None:
        flags |= 0x80
        payload += mstr(username)
    if password is not None:
        flags |= 0x40
        payload += mstr(password)
    var = mstr("MQTT") + bytes([version, flags]) + struct.pack("!H", keep_alive)
    if version == V5:
        var += varint(0)
    return packet(0x10, var + payload)


def publish_packet(version, topic, payload, qos=1, packet_id=1, alias=None, dup=False):
    var = mstr(topic)
    if qos:
        var += struct.pack("!H", packet_id)
    if version == V5:
        props = b"\x23" + struct.pack("!H", alias) if alias is not None else b""
        var += varint(len(props)) + props
    payload = payload.encode() if isinstance(payload, str) else payload
    return packet(0x30 | (qos << 1) | (0x08 if dup else 0), var + payload)


def subscribe_packet(version, topic, qos=1, packet_id=1):
    var = struct.pack("!H", packet_id) + (varint(0) if version == V5 else b"")
    return packet(0x82, var + mstr(topic) + bytes([qos]))


def ack_packet(kind, packet_id):
    """PUBACK (4), PUBREC (5), PUBREL (6) or PUBCOMP (7)."""
    return packet((kind << 4) | (0x02 if kind == 6 else 0), struct.pack("!H", packet_id))


class Raw:
    def __init__(self, srv, name="mqtt"):
        self.s = socket.create_connection(addr(srv, name), timeout=10)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            self.s.settimeout(max(0.01, deadline - time.time()))
            try:
                chunk = self.s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read(self, timeout=10):
        """(type, flags, body) of the next packet, or None at EOF."""
        deadline = time.time() + timeout
        if not self._fill(2, deadline):
            return None
        length, mult, i = 0, 1, 1
        while True:
            if not self._fill(i + 1, deadline):
                return None
            b = self.buf[i]
            length += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        if not self._fill(i + length, deadline):
            return None
        first, body = self.buf[0], self.buf[i:i + length]
        self.buf = self.buf[i + length:]
        return first >> 4, first & 0x0F, body

    def closed(self, timeout=10):
        """True once the server closed the connection (packets before it are
        returned too)."""
        seen = []
        while True:
            p = self.read(timeout)
            if p is None:
                return True, seen
            seen.append(p)

    def connect(self, version, token, **kw):
        self.send(connect_packet(version, token, **kw))
        t, _, body = self.read()
        assert t == 2, "expected CONNACK, got %r" % t
        assert body[1] == 0, "refused: 0x%02x" % body[1]
        return body

    def close(self):
        self.s.close()


# ---- paho ----------------------------------------------------------------------

def paho_client(version, tls_cert=None):
    proto = paho.MQTTv5 if version == V5 else paho.MQTTv311
    kw = {"protocol": proto}
    if version == V311:
        kw["clean_session"] = True
    c = paho.Client(client_id="", **kw)
    if tls_cert:
        c.tls_set(ca_certs=tls_cert)
    return c


def paho_connect(srv, version, username, password, name="mqtt", tls_cert=None):
    """Connects and returns (client, CONNACK code, messages queue)."""
    c = paho_client(version, tls_cert)
    c.username_pw_set(username, password)
    got = queue.Queue()
    msgs = queue.Queue()

    def on_connect(client, userdata, flags, rc, properties=None):
        got.put(rc if isinstance(rc, int) else rc.value)

    c.on_connect = on_connect
    c.on_message = lambda client, userdata, m: msgs.put(m)
    host, port = addr(srv, name)
    c.connect("localhost" if tls_cert else host, port, keepalive=30)
    c.loop_start()
    rc = got.get(timeout=10)
    return c, rc, msgs


def done(c):
    c.disconnect()
    c.loop_stop()


# ---- listeners ----------------------------------------------------------------

def test_both_listeners_print_their_address(srv):
    assert "mqtt" in srv.addrs and "mqtts" in srv.addrs
    assert srv.addrs["mqtt"].startswith("127.0.0.1:")


# ---- CONNECT and readings ------------------------------------------------------------

@VERSIONS
def test_device_publishes_json_lines_and_a_channel_and_reads_them_back(srv, api, od, version):
    org, dev = od
    c, rc, _ = paho_connect(srv, version, "anything", dev["token"])
    assert rc == 0
    ts = now_ms() - 5000
    infos = [
        c.publish("devices/me/data", json.dumps({"ts": ts, "values": {"t": 21.5}}), qos=1),
        c.publish("devices/%s/data" % dev["id"], "t=22.5 %d\nrh=40 %d" % (ts + 1, ts + 1), qos=1),
        c.publish("devices/me/data/t", "23.5", qos=2),
    ]
    for i in infos:
        i.wait_for_publish(timeout=10)
        assert i.is_published()
    # Acknowledged only after the commit: readable at once.
    assert [p[1] for p in series(api, dev, "t")][:2] == [21.5, 22.5]
    assert 23.5 in [p[1] for p in series(api, dev, "t")]
    assert [p[1] for p in series(api, dev, "rh")] == [40]
    done(c)


def test_device_publishes_over_tls(srv, api, od):
    org, dev = od
    c, rc, _ = paho_connect(srv, V5, "dev", dev["token"], name="mqtts", tls_cert=srv.cert)
    assert rc == 0
    i = c.publish("devices/me/data", json.dumps({"tls": 1}), qos=1)
    i.wait_for_publish(timeout=10)
    assert [p[1] for p in series(api, dev, "tls")] == [1]
    done(c)


@VERSIONS
def test_wrong_password_is_refused_without_saying_why(srv, od, version):
    org, dev = od
    want = 0x05 if version == V311 else 0x87
    # Three refusals per version: together with the other refusals of this
    # module they stay under the address's free failures (the sign-in
    # throttle, shared with REST sign-in).
    for user, pw in [("dev", dev["token"] + "x"), ("apikey", "ssk_" + "0" * 64),
                     ("apikey", dev["token"])]:
        r = Raw(srv)
        r.send(connect_packet(version, pw, username=user))
        t, _, body = r.read()
        assert t == 2 and body[1] == want, (user, body)
        assert r.closed()[0]
        r.close()


@VERSIONS
def test_no_password_is_refused(srv, version):
    r = Raw(srv)
    r.send(connect_packet(version, None, username=None))
    t, _, body = r.read()
    assert t == 2 and body[1] == (0x05 if version == V311 else 0x87)
    r.close()


def test_failing_address_is_answered_late_but_a_right_token_is_not(fresh_server):
    s = fresh_server(MQTT_ARGS)
    a = login(s.http)
    org, dev = new_org_device(a, prefix="throttle")
    took = []
    # Twelve different wrong tokens: the address's ten free failures, then
    # two late answers. (One token retried is late from its fifth failure,
    # the throttle's per-account count.)
    for i in range(12):
        r = Raw(s)
        t0 = time.time()
        r.send(connect_packet(V5, "ssd_%064x" % i))
        t, _, body = r.read()
        took.append(time.time() - t0)
        assert t == 2 and body[1] == 0x87
        r.close()
    # The address's free failures are answered at once, later ones late.
    assert max(took[:9]) < 0.5 and min(took[10:]) > 0.8, took
    r = Raw(s)
    t0 = time.time()
    r.connect(V5, dev["token"])
    assert time.time() - t0 < 0.5
    r.close()


def test_v5_connack_announces_the_limits_and_assigns_a_client_id(srv, od):
    org, dev = od
    r = Raw(srv)
    body = r.connect(V5, dev["token"])
    # Flags, reason, then properties: the client id is assigned (0x12),
    # receive maximum (0x21) and maximum packet size (0x27) announced.
    props = body[2:]
    assert b"\x12" in props and b"\x21" in props and b"\x27" in props
    assert struct.pack("!I", PACKET_MAX) in props
    r.close()


def test_v311_empty_client_id_needs_a_clean_session(srv, od):
    org, dev = od
    r = Raw(srv)
    r.send(connect_packet(V311, dev["token"], clean=False))
    t, _, body = r.read()
    assert t == 2 and body[1] == 0x02
    r.close()


# ---- an app ----------------------------------------------------------------------

@VERSIONS
def test_app_key_sees_what_a_device_publishes(srv, api, od, version):
    org, dev = od
    key = new_key(api, org, ["data:read"])
    app, rc, msgs = paho_connect(srv, version, "apikey", key)
    assert rc == 0
    sub = queue.Queue()
    app.on_subscribe = lambda *a: sub.put(a)
    app.subscribe("devices/%s/events" % dev["id"], qos=1)
    sub.get(timeout=10)
    d, rc, _ = paho_connect(srv, version, "dev", dev["token"])
    assert rc == 0
    d.publish("devices/me/events", b"door open", qos=1).wait_for_publish(timeout=10)
    m = msgs.get(timeout=10)
    assert m.topic == "devices/%s/events" % dev["id"]
    assert m.payload == b"door open"
    done(d)
    done(app)


def test_app_key_with_data_write_stores_readings_as_a_device(srv, api, od):
    org, dev = od
    key = new_key(api, org, ["data:write"])
    app, rc, _ = paho_connect(srv, V5, "apikey", key)
    assert rc == 0
    app.publish("devices/%s/data/k" % dev["id"], "7", qos=1).wait_for_publish(timeout=10)
    assert [p[1] for p in series(api, dev, "k")] == [7]
    done(app)


@VERSIONS
def test_a_device_may_not_publish_under_another_device(srv, api, od, version):
    org, dev = od
    other = new_org_device(api, prefix="mqtt-other")[1]
    r = Raw(srv)
    r.connect(version, dev["token"])
    r.send(publish_packet(version, "devices/%s/data" % other["id"], '{"x": 1}'))
    if version == V5:
        t, _, body = r.read()
        assert t == 4 and body[2] == 0x87  # PUBACK not authorized
    else:
        assert r.closed()[0]
    r.close()
    assert series(api, other, "x") == []


# ---- bad payloads --------------------------------------------------------------

@VERSIONS
def test_bad_payload_on_a_data_topic(srv, api, od, version):
    org, dev = od
    r = Raw(srv)
    r.connect(version, dev["token"])
    r.send(publish_packet(version, "devices/me/data", "not a reading"))
    if version == V5:
        t, _, body = r.read()
        assert (t, body[:2], body[2]) == (4, b"\x00\x01", 0x99)
        # The connection goes on.
        r.send(publish_packet(version, "devices/me/data/ok", "1", packet_id=2))
        t, _, body = r.read()
        assert (t, body[:2]) == (4, b"\x00\x02") and body[2:3] in (b"", b"\x00")
    else:
        assert r.closed()[0]
    r.close()


# ---- QoS, the in-flight window, topic aliases ---------------------------------------

@VERSIONS
def test_qos2_inbound_flow_stores_once_even_when_retransmitted(srv, api, od, version):
    org, dev = od
    r = Raw(srv)
    r.connect(version, dev["token"])
    r.send(publish_packet(version, "devices/me/data/q2", "5", qos=2, packet_id=9))
    t, _, body = r.read()
    assert (t, body[:2]) == (5, b"\x00\x09")  # PUBREC
    # A retransmission before PUBREL is answered, not stored again.
    r.send(publish_packet(version, "devices/me/data/q2", "5", qos=2, packet_id=9, dup=True))
    t, _, body = r.read()
    assert (t, body[:2]) == (5, b"\x00\x09")
    r.send(ack_packet(6, 9))
    t, _, body = r.read()
    assert (t, body[:2]) == (7, b"\x00\x09")  # PUBCOMP
    # A PUBREL for an id not in flight: PUBCOMP "packet identifier not found".
    r.send(ack_packet(6, 10))
    t, _, body = r.read()
    assert (t, body[:2]) == (7, b"\x00\x0a")
    if version == V5:
        assert body[2] == 0x92
    assert [p[1] for p in series(api, dev, "q2")] == [5]
    r.close()


def test_v5_more_in_flight_than_announced_is_disconnected(srv, od):
    org, dev = od
    r = Raw(srv)
    r.connect(V5, dev["token"])
    # 33 QoS 1 PUBLISHes in one write: the 33rd comes before any answer.
    r.send(b"".join(publish_packet(V5, "devices/me/data/w", str(i), packet_id=i + 1)
                    for i in range(33)))
    closed, seen = r.closed()
    assert closed and seen and seen[-1][0] == 14 and seen[-1][2][0] == 0x93
    r.close()


def test_v311_past_the_window_is_held_back_not_refused(srv, api, od):
    org, dev = od
    r = Raw(srv)
    r.connect(V311, dev["token"])
    ts = now_ms() - 10000
    r.send(b"".join(publish_packet(V311, "devices/me/data", "w=%d %d" % (i, ts + i), packet_id=i + 1)
                    for i in range(100)))
    ids = []
    for _ in range(100):
        t, _, body = r.read()
        assert t == 4
        ids.append(struct.unpack("!H", body[:2])[0])
    # Answered in the order they came (MQTT-4.6.0-2).
    assert ids == list(range(1, 101))
    assert len(series(api, dev, "w")) == 100
    r.close()


def test_v5_topic_alias_sets_and_uses_a_topic(srv, api, od):
    org, dev = od
    key = new_key(api, org, ["data:read"])
    app, rc, msgs = paho_connect(srv, V5, "apikey", key)
    sub = queue.Queue()
    app.on_subscribe = lambda *a: sub.put(a)
    app.subscribe("devices/%s/status" % dev["id"], qos=1)
    sub.get(timeout=10)
    r = Raw(srv)
    r.connect(V5, dev["token"])
    r.send(publish_packet(V5, "devices/me/status", "up", packet_id=1, alias=3))
    assert r.read()[0] == 4
    r.send(publish_packet(V5, "", "still up", packet_id=2, alias=3))
    assert r.read()[0] == 4
    got = [msgs.get(timeout=10), msgs.get(timeout=10)]
    assert [(m.topic, m.payload) for m in got] == [
        ("devices/%s/status" % dev["id"], b"up"), ("devices/%s/status" % dev["id"], b"still up")]
    # An alias never set is a protocol error; one past our maximum 0x94.
    r.send(publish_packet(V5, "", "x", packet_id=3, alias=4))
    closed, seen = r.closed()
    assert closed and seen[-1][0] == 14 and seen[-1][2][0] == 0x82
    r.close()
    r = Raw(srv)
    r.connect(V5, dev["token"])
    r.send(publish_packet(V5, "devices/me/status", "x", packet_id=1, alias=17))
    closed, seen = r.closed()
    assert closed and seen[-1][0] == 14 and seen[-1][2][0] == 0x94
    r.close()
    done(app)


@VERSIONS
def test_keep_alive_ends_a_silent_client(srv, od, version):
    org, dev = od
    r = Raw(srv)
    r.connect(version, dev["token"], keep_alive=1)
    t0 = time.time()
    closed, seen = r.closed(timeout=10)
    assert closed and 1.2 < time.time() - t0 < 5
    if version == V5:
        assert [(t, b[0]) for t, _, b in seen] == [(14, 0x8D)]
    r.close()


@VERSIONS
def test_over_quota_is_refused_and_nothing_stored(srv, api, od, version):
    org, dev = od
    assert api.put("/api/v1/orgs/%s/quota" % org["id"],
                   json={"max_readings_per_day": 1}).status_code == 200
    r = Raw(srv)
    r.connect(version, dev["token"])
    r.send(publish_packet(version, "devices/me/data", "a=1,b=2", packet_id=1))
    if version == V5:
        t, _, body = r.read()
        assert (t, body[2]) == (4, 0x97)
    else:
        assert r.closed()[0]
    r.close()
    assert series(api, dev, "a") == []


@VERSIONS
def test_readings_from_any_protocol_come_out_on_readings_topic(srv, api, od, version):
    org, dev = od
    key = new_key(api, org, ["data:read"])
    app, rc, msgs = paho_connect(srv, version, "apikey", key)
    sub = queue.Queue()
    app.on_subscribe = lambda *a: sub.put(a)
    app.subscribe("readings/#", qos=1)
    sub.get(timeout=10)
    ts = now_ms() - 1000
    r = api.s.post(srv.http + "/api/v1/data", headers={"X-Auth-Token": dev["token"]},
                   json={"ts": ts, "values": {"h": 3}}, timeout=10)
    assert r.status_code == 200, r.text
    m = msgs.get(timeout=10)
    assert m.topic == "readings/%s" % dev["id"]
    assert json.loads(m.payload) == {"ts": ts, "values": {"h": 3}}
    done(app)


# ---- framing ---------------------------------------------------------------------

@VERSIONS
def test_publish_before_connect_closes(srv, version):
    r = Raw(srv)
    r.send(publish_packet(version, "devices/me/data", "t=1"))
    closed, seen = r.closed()
    assert closed and seen == []
    r.close()


@VERSIONS
def test_a_second_connect_closes(srv, od, version):
    org, dev = od
    r = Raw(srv)
    r.connect(version, dev["token"])
    r.send(connect_packet(version, dev["token"]))
    closed, seen = r.closed()
    assert closed
    if version == V5:
        assert [(t, b[0]) for t, _, b in seen] == [(14, 0x82)]
    r.close()


@VERSIONS
def test_a_packet_over_the_maximum_is_refused_before_it_is_read(srv, od, version):
    org, dev = od
    r = Raw(srv)
    r.connect(version, dev["token"])
    # Only the fixed header: the server refuses on the length alone.
    r.send(bytes([0x32]) + varint(PACKET_MAX + 1))
    closed, seen = r.closed()
    assert closed
    if version == V5:
        assert [(t, b[0]) for t, _, b in seen] == [(14, 0x95)]
    r.close()


@VERSIONS
def test_packets_split_anywhere_read_the_same(srv, api, od, version):
    org, dev = od
    r = Raw(srv)
    r.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = connect_packet(version, dev["token"]) + publish_packet(version, "devices/me/data/sp", "4")
    for i in range(len(data)):
        r.send(data[i:i + 1])
        time.sleep(0.001)
    assert r.read()[0] == 2
    t, _, body = r.read()
    assert t == 4 and body[:2] == b"\x00\x01"
    assert [p[1] for p in series(api, dev, "sp")] == [4]
    r.close()


def test_no_connect_in_time_closes(srv):
    r = Raw(srv)
    t0 = time.time()
    closed, seen = r.closed(timeout=10)
    assert closed and seen == [] and time.time() - t0 < 5
    r.close()


def test_unsupported_protocol_level_gets_connack_0x01(srv):
    r = Raw(srv)
    r.send(connect_packet(3, "x"))
    t, _, body = r.read()
    assert t == 2 and body[1] == 0x01
    r.close()


@VERSIONS
def test_ping(srv, od, version):
    org, dev = od
    r = Raw(srv)
    r.connect(version, dev["token"])
    r.send(b"\xc0\x00")
    assert r.read()[0] == 13
    r.close()


# ---- revocation, metrics, accounting -------------------------------------------------

@VERSIONS
def test_rotating_the_token_disconnects_the_device(srv, api, od, version):
    org, dev = od
    r = Raw(srv)
    r.connect(version, dev["token"])
    assert api.post("/api/v1/devices/%s/token" % dev["id"]).status_code == 200
    closed, seen = r.closed()
    assert closed
    if version == V5:
        assert [(t, b[0]) for t, _, b in seen] == [(14, 0x98)]
    r.close()


@VERSIONS
def test_deleting_the_org_disconnects_its_keys_and_devices(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt-gone")
    key = new_key(api, org, ["data:read"])
    app, d = Raw(srv), Raw(srv)
    app.connect(version, key, username="apikey")
    d.connect(version, dev["token"])
    assert api.delete("/api/v1/orgs/%s" % org["id"]).status_code == 204
    for r in (app, d):
        closed, seen = r.closed()
        assert closed
        if version == V5:
            assert [(t, b[0]) for t, _, b in seen] == [(14, 0x98)]
        r.close()


def test_metrics_count_mqtt_connections_and_readings(srv, api, od):
    org, dev = od
    r = Raw(srv)
    r.connect(V311, dev["token"])
    r.send(publish_packet(V311, "devices/me/data/m", "1"))
    assert r.read()[0] == 4
    text = api.get("/metrics").text
    assert 'sensorspace_connections_open{listener="mqtt"} ' in text
    line = [ln for ln in text.splitlines()
            if ln.startswith('sensorspace_readings_stored_total{protocol="mqtt"}')][0]
    assert int(line.split()[1]) >= 1
    r.close()


def test_the_connection_is_a_session_record(srv, api, od):
    org, dev = od
    r = Raw(srv)
    r.connect(V311, dev["token"])
    r.send(publish_packet(V311, "devices/me/data/s", "1"))
    assert r.read()[0] == 4
    r.send(b"\xe0\x00")  # DISCONNECT
    assert r.closed()[0]
    r.close()

    def record():
        rows = api.get("/api/v1/orgs/%s/sessions?kind=device" % org["id"]).json()
        mine = [s for s in rows if s["protocol"] == "mqtt" and s["ended_at"]]
        return mine[0] if mine else None
    s = wait_for(record)
    assert s, "no session record"
    assert s["end_reason"] == "closed" and s["principal_id"] == dev["id"]
    assert s["readings"] == 1 and s["bytes_in"] > 0 and s["bytes_out"] > 0


def test_stop_sends_disconnect_0x8b(fresh_server, api):
    s = fresh_server(MQTT_ARGS)
    a = login(s.http)
    org, dev = new_org_device(a, prefix="stop")
    r = Raw(s)
    r.connect(V5, dev["token"])
    s.proc.send_signal(15)
    closed, seen = r.closed()
    assert closed and [(t, b[0]) for t, _, b in seen] == [(14, 0x8B)]
    r.close()
    assert s.stop() == 0
