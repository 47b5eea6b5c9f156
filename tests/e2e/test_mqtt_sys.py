"""The broker's $SYS topics and the superadmin over MQTT (SPEC §3.6: broker
topics are the superadmin's alone). The superadmin signs in with their
email and password and reads $SYS/broker/… (counts of the whole broker,
retained, so a subscriber gets them at once); every other person is
refused as a wrong password is; devices and keys never reach $SYS, and the
superadmin reaches nothing else. Each scenario runs for MQTT 3.1.1 and 5.0
with paho, refusals also with the exact bytes."""
import queue
import socket
import struct
import time

import paho.mqtt.client as paho
import pytest

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, module_server, new_org_device

MQTT_ARGS = ["--listen-mqtt", "127.0.0.1:0"]
V311, V5 = 4, 5
VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
PW = "member-password-1"

srv = module_server(MQTT_ARGS)


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


def addr(s):
    host, port = s.addrs["mqtt"].rsplit(":", 1)
    return host, int(port)


def refused(version):
    return 0x05 if version == V311 else 0x87


# ---- the exact bytes --------------------------------------------------------------

def varint(n):
    out = b""
    while True:
        b, n = n % 128, n // 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def mstr(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(s)) + s


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect_packet(version, username, password):
    var = mstr("MQTT") + bytes([version, 0xC2]) + struct.pack("!H", 60)
    if version == V5:
        var += varint(0)
    return packet(0x10, var + mstr("") + mstr(username) + mstr(password))


def read_packet(s, timeout=10):
    """(type, body) of the next packet, or None at EOF."""
    s.settimeout(timeout)
    buf = b""

    def need(n):
        nonlocal buf
        while len(buf) < n:
            try:
                chunk = s.recv(n - len(buf))
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                return False
            buf += chunk
        return True

    if not need(2):
        return None
    length, mult, i = 0, 1, 1
    while True:
        if not need(i + 1):
            return None
        length += (buf[i] & 0x7F) * mult
        mult *= 128
        i += 1
        if not buf[i - 1] & 0x80:
            break
    if not need(i + length):
        return None
    return buf[0] >> 4, buf[i:i + length]


def raw_connack(s, version, username, password):
    """The CONNACK's return code / reason, and whether the server closed."""
    c = socket.create_connection(addr(s), timeout=10)
    try:
        c.sendall(connect_packet(version, username, password))
        t, body = read_packet(c)
        assert t == 2
        return body[1], read_packet(c, timeout=5) is None
    finally:
        c.close()


# ---- paho --------------------------------------------------------------------------

def code(rc):
    """A paho return code or v5 ReasonCodes as a number."""
    return int(getattr(rc, "value", rc))


class Client:
    """A paho client connected (or refused), with what it received."""

    def __init__(self, s, version, username, password):
        proto = paho.MQTTv5 if version == V5 else paho.MQTTv311
        kw = {"clean_session": True} if version == V311 else {}
        self.c = paho.Client(client_id="", protocol=proto, **kw)
        self.c.username_pw_set(username, password)
        self.connack = queue.Queue()
        self.subacks = queue.Queue()
        self.pubacks = queue.Queue()
        self.gone = queue.Queue()
        self.msgs = queue.Queue()
        self.c.on_connect = lambda cl, u, f, rc, p=None: self.connack.put(code(rc))
        self.c.on_subscribe = lambda cl, u, mid, q, p=None: self.subacks.put(
            [code(x) for x in q])
        self.c.on_disconnect = lambda cl, u, rc, p=None: self.gone.put(code(rc))
        self.c.on_message = lambda cl, u, m: self.msgs.put(m)
        host, port = addr(s)
        self.c.connect(host, port, keepalive=30)
        self.c.loop_start()
        self.rc = self.connack.get(timeout=15)

    def subscribe(self, topic):
        self.c.subscribe(topic, qos=1)
        return self.subacks.get(timeout=10)

    def values(self, timeout=10):
        """{topic: payload} of what arrives, once every $SYS count is in it."""
        got, deadline = {}, time.time() + timeout
        while not SYS_TOPICS <= got.keys() and time.time() < deadline:
            try:
                m = self.msgs.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            got[m.topic] = m.payload.decode()
        return got

    def drain(self, wait=0.3):
        got = []
        end = time.time() + wait
        while time.time() < end:
            try:
                got.append(self.msgs.get(timeout=0.05))
            except queue.Empty:
                pass
        return got

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def superadmin(s, version):
    c = Client(s, version, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert c.rc == 0
    return c


SYS_TOPICS = {"$SYS/broker/" + t for t in [
    "version", "uptime", "clients/connected", "clients/total", "messages/received",
    "messages/sent", "subscriptions/count", "store/messages/count", "publish/messages/dropped",
    "load/ingest/queued", "retained messages/count"]}


def sys_values(c):
    assert c.subscribe("$SYS/#") in ([1], [0])
    v = c.values()
    assert SYS_TOPICS <= v.keys(), v
    return v


def new_key(api, org, scopes):
    r = api.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "app", "scopes": scopes})
    assert r.status_code == 201, r.text
    return r.json()["key"]


# ---- the superadmin signs in and reads $SYS ------------------------------------------

@VERSIONS
def test_superadmin_reads_sys_values_that_move_when_clients_connect(srv, api, version):
    a = superadmin(srv, version)
    before = sys_values(a)
    assert before["$SYS/broker/version"].startswith("sensorspace ")
    assert before["$SYS/broker/uptime"].endswith(" seconds")
    connected = int(before["$SYS/broker/clients/connected"])
    assert connected >= 1
    # Three devices connect and one publishes: a second superadmin
    # connection gets current values at once, and the first sees them live.
    org, dev = new_org_device(api, prefix="sys")
    devs = [Client(srv, version, "dev", dev["token"]) for _ in range(3)]
    assert [d.rc for d in devs] == [0, 0, 0]
    devs[0].c.publish("devices/me/data", '{"t": 1}', qos=1).wait_for_publish(timeout=10)
    a.drain(0.2)  # a round the timer published before the devices came
    b = superadmin(srv, version)
    now = sys_values(b)
    assert int(now["$SYS/broker/clients/connected"]) >= connected + 3
    assert int(now["$SYS/broker/messages/received"]) > int(before["$SYS/broker/messages/received"])
    assert int(now["$SYS/broker/subscriptions/count"]) >= 1  # a's $SYS/#
    live = a.values()
    assert int(live["$SYS/broker/clients/connected"]) >= connected + 3
    # Counts only: no org's id, name or device in any value.
    for v in list(before.values()) + list(now.values()):
        assert org["id"] not in v and org["name"] not in v and dev["id"] not in v
    for c in devs + [a, b]:
        c.close()


@VERSIONS
def test_wrong_password_and_unknown_email_get_the_same_refusal(srv, version):
    want = refused(version)
    assert raw_connack(srv, version, ADMIN_EMAIL, "wrong-password-1") == (want, True)
    assert raw_connack(srv, version, "nobody-%d@example.com" % time.monotonic_ns(),
                       ADMIN_PASSWORD) == (want, True)
    c = Client(srv, version, ADMIN_EMAIL, "wrong-password-1")
    assert c.rc == want
    c.close()


@VERSIONS
def test_a_viewer_of_an_org_is_refused(srv, api, version):
    org, _ = new_org_device(api, prefix="sysv")
    email = "viewer-%d@example.com" % time.monotonic_ns()
    r = api.post("/api/v1/orgs/%s/members" % org["id"],
                 json={"email": email, "role": "viewer", "password": PW})
    assert r.status_code == 201, r.text
    login(srv.http, email, PW)  # the password is right
    assert raw_connack(srv, version, email, PW) == (refused(version), True)
    c = Client(srv, version, email, PW)
    assert c.rc == refused(version)
    c.close()


def test_one_password_sign_in_is_checked_at_a_time(srv):
    """Argon2 on the worker pool: a second sign-in while one is checked is
    refused as the server busy (0x89), never queued behind it."""
    socks = [socket.create_connection(addr(srv), timeout=10) for _ in range(2)]
    for c in socks:
        c.sendall(connect_packet(V5, ADMIN_EMAIL, ADMIN_PASSWORD))
    codes = sorted(read_packet(c)[1][1] for c in socks)
    assert codes == [0x00, 0x89], codes
    for c in socks:
        c.close()


# ---- nobody else reaches $SYS, the superadmin nothing else --------------------------------

@VERSIONS
def test_devices_and_keys_cannot_subscribe_to_sys_and_hash_never_delivers_it(srv, api, version):
    no = 0x80 if version == V311 else 0x87
    org, dev = new_org_device(api, prefix="sysk")
    d = Client(srv, version, "dev", dev["token"])
    k = Client(srv, version, "apikey", new_key(api, org, ["data:read", "data:write"]))
    assert d.rc == 0 and k.rc == 0
    assert d.subscribe("$SYS/#") == [no]
    assert k.subscribe("$SYS/#") == [no]
    assert k.subscribe("$SYS/broker/version") == [no]
    assert k.subscribe("#") == [1]
    # The broker publishes its counts (a superadmin signs in) while the
    # key listens to all of its tree: it gets its own org's message only.
    k.c.publish("app/hello", "hi", qos=1).wait_for_publish(timeout=10)
    a = superadmin(srv, version)
    sys_values(a)
    got = k.drain(0.5)
    assert [m.topic for m in got] == ["app/hello"], [m.topic for m in got]
    for c in (d, k, a):
        c.close()


@VERSIONS
def test_the_superadmin_cannot_publish(srv, version):
    c = socket.create_connection(addr(srv), timeout=10)
    c.sendall(connect_packet(version, ADMIN_EMAIL, ADMIN_PASSWORD))
    assert read_packet(c)[0] == 2
    body = mstr("$SYS/broker/version") + struct.pack("!H", 7)
    if version == V5:
        body += varint(0)
    c.sendall(packet(0x32, body + b"forged"))
    p = read_packet(c)
    if version == V5:
        assert p[0] == 4 and p[1][:3] == struct.pack("!HB", 7, 0x87), p
    else:
        assert p is None  # 3.1.1: a forbidden PUBLISH closes the connection
    c.close()
    a = superadmin(srv, version)
    assert sys_values(a)["$SYS/broker/version"].startswith("sensorspace ")
    a.c.publish("devices/x/data", "1", qos=1)
    if version == V5:
        assert a.gone.empty()
    a.close()


@VERSIONS
def test_the_superadmin_sees_no_orgs_topics(srv, api, version):
    no = 0x80 if version == V311 else 0x87
    org, dev = new_org_device(api, prefix="syso")
    a = superadmin(srv, version)
    for f in ["#", "+/+", "devices/#", "readings/#", "devices/%s/data" % dev["id"], "app/x"]:
        assert a.subscribe(f) == [no], f
    sys_values(a)
    a.drain(0.1)
    d = Client(srv, version, "dev", dev["token"])
    d.c.publish("devices/me/data", '{"t": 2}', qos=1).wait_for_publish(timeout=10)
    d.c.publish("devices/me/state", "on", qos=1, retain=True).wait_for_publish(timeout=10)
    got = a.drain(0.5)
    assert all(m.topic.startswith("$SYS/") for m in got), [m.topic for m in got]
    d.close()
    a.close()


# ---- revocation ----------------------------------------------------------------------

def test_a_password_change_disconnects_the_superadmin(fresh_server):
    s = fresh_server(MQTT_ARGS)
    a = socket.create_connection(addr(s), timeout=10)
    a.sendall(connect_packet(V5, ADMIN_EMAIL, ADMIN_PASSWORD))
    t, body = read_packet(a)
    assert t == 2 and body[1] == 0
    api = login(s.http)
    r = api.put("/api/v1/me/password",
                json={"current_password": ADMIN_PASSWORD, "new_password": "new-password-22"})
    assert r.status_code in (200, 204), r.text
    # Server-sent DISCONNECT 0x98 (administrative action), then the close.
    t, body = read_packet(a)
    assert t == 14 and body[0] == 0x98, (t, body)
    assert read_packet(a) is None
    a.close()
    old = Client(s, V311, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert old.rc == 0x05
    old.close()
    new = Client(s, V311, ADMIN_EMAIL, "new-password-22")
    assert new.rc == 0
    new.close()
