"""MQTT sessions and delivery, end to end with paho-mqtt, each for 3.1.1 and
5.0: a persistent session gets the QoS 1 messages sent while it was
offline and a clean one does not; a second connection with the same client
id takes the session over; a will goes out when a connection drops, not
after DISCONNECT; a retained message reaches a new subscriber; readings
stored over HTTPS come out on readings/<device>."""
import json
import queue
import select
import socket
import struct
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pytest
import requests

from conftest import login, module_server, new_org_device, now_ms

srv = module_server(["--listen-mqtt", "127.0.0.1:0"])

VERSIONS = [pytest.param(mqtt.MQTTv311, id="v311"), pytest.param(mqtt.MQTTv5, id="v5")]
WAIT = 10


def mqtt_addr(server):
    """(host, port) of the plain MQTT listener, reading the rest of the
    server's "listening" lines when start() returned before it."""
    deadline = time.time() + WAIT
    while "mqtt" not in server.addrs and time.time() < deadline:
        r, _, _ = select.select([server.proc.stdout], [], [], 0.2)
        if not r:
            continue
        for line in server.proc.stdout.readline().decode().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "listening":
                server.addrs[parts[1]] = parts[2]
    host, port = server.addrs["mqtt"].rsplit(":", 1)
    return host, int(port)


def make_tenant(srv):
    """An org with a device and an app key that reads and writes."""
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="mqtt-sess")
    r = admin.post("/api/v1/orgs/%s/apikeys" % org["id"],
                   json={"name": "app", "scopes": ["data:read", "data:write"]})
    assert r.status_code == 201, r.text
    return {"org": org, "device": dev, "key": r.json()["key"], "admin": admin}


@pytest.fixture(scope="module")
def tenant(srv):
    return make_tenant(srv)


class Client:
    """A paho client on its own network thread; what it receives goes to a
    queue."""

    def __init__(self, server, tenant, client_id, version, clean=True, expiry=None, will=None,
                 password=None, username="apikey"):
        self.version = version
        self.messages = queue.Queue()
        self.disconnects = queue.Queue()
        self.connacks = queue.Queue()
        if version == mqtt.MQTTv5:
            self.c = mqtt.Client(client_id=client_id, protocol=version)
        else:
            self.c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=version)
        self.c.username_pw_set(username, password or tenant["key"])
        # A client the server disconnected stays disconnected: paho would
        # otherwise reconnect in a second and take its session back.
        self.c.reconnect_delay_set(3600, 3600)
        if will:
            self.c.will_set(*will)
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = lambda *a: self.subacks.put(a)
        self.subacks = queue.Queue()
        host, port = mqtt_addr(server)
        if version == mqtt.MQTTv5:
            props = None
            if expiry is not None:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = expiry
            self.c.connect(host, port, keepalive=30, clean_start=clean, properties=props)
        else:
            self.c.connect(host, port, keepalive=30)
        self.c.loop_start()
        self.flags, self.rc = self.connacks.get(timeout=WAIT)
        assert getattr(self.rc, "value", self.rc) == 0, "CONNACK %s" % self.rc

    def _on_connect(self, c, u, flags, rc, props=None):
        self.connacks.put((flags, rc))

    def _on_disconnect(self, c, u, rc, props=None):
        self.disconnects.put(rc)

    def subscribe(self, topic, qos=1, **kw):
        if self.version == mqtt.MQTTv5:
            opts = mqtt.SubscribeOptions(qos=qos, **kw)
            self.c.subscribe(topic, options=opts)
        else:
            self.c.subscribe(topic, qos)
        self.subacks.get(timeout=WAIT)

    def publish(self, topic, payload, qos=1, retain=False):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(WAIT)
        assert info.is_published()

    def get(self, timeout=WAIT):
        return self.messages.get(timeout=timeout)

    def nothing(self, wait=0.5):
        try:
            m = self.messages.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError("unexpected message on %s: %r" % (m.topic, m.payload))

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def uid(prefix):
    return "%s-%d" % (prefix, time.monotonic_ns())


@pytest.mark.parametrize("version", VERSIONS)
def test_persistent_session_gets_qos1_sent_while_offline(srv, tenant, version):
    cid, topic = uid("persist"), uid("cmd") + "/x"
    sub = Client(srv, tenant, cid, version, clean=False, expiry=300)
    sub.subscribe(topic, qos=1)
    sub.close()
    pub = Client(srv, tenant, uid("pub"), version)
    for i in range(3):
        pub.publish(topic, "m%d" % i, qos=1)
    pub.close()
    back = Client(srv, tenant, cid, version, clean=False, expiry=300)
    assert back.flags["session present"] == 1
    got = [back.get() for _ in range(3)]
    assert [m.payload for m in got] == [b"m0", b"m1", b"m2"]
    assert all(m.qos == 1 for m in got)
    back.nothing()
    back.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_clean_session_gets_nothing_sent_while_offline(srv, tenant, version):
    cid, topic = uid("clean"), uid("cmd") + "/y"
    sub = Client(srv, tenant, cid, version, clean=True, expiry=0)
    sub.subscribe(topic, qos=1)
    sub.close()
    pub = Client(srv, tenant, uid("pub"), version)
    pub.publish(topic, "lost", qos=1)
    pub.close()
    back = Client(srv, tenant, cid, version, clean=True, expiry=0)
    assert back.flags["session present"] == 0
    back.nothing()
    back.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_second_connection_takes_the_session_over(srv, tenant, version):
    cid, topic = uid("twice"), uid("cmd") + "/z"
    first = Client(srv, tenant, cid, version, clean=False, expiry=300)
    first.subscribe(topic, qos=1)
    second = Client(srv, tenant, cid, version, clean=False, expiry=300)
    assert second.flags["session present"] == 1
    first.disconnects.get(timeout=WAIT)  # the reason: test_taken_over_v5_is_told_why
    pub = Client(srv, tenant, uid("pub"), version)
    pub.publish(topic, "to-the-second", qos=1)
    assert second.get().payload == b"to-the-second"
    first.c.loop_stop()
    second.close()
    pub.close()


def mqtt_str(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack("!H", len(b)) + b


def read_packet(sock):
    """One MQTT packet: (first byte, body)."""
    def exactly(n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed after %r" % out)
            out += chunk
        return out
    first = exactly(1)[0]
    length, shift = 0, 0
    while True:
        b = exactly(1)[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    return first, exactly(length)


def test_taken_over_v5_is_told_why(srv, tenant):
    """MQTT-3.1.4-3: the old connection gets DISCONNECT 0x8E (raw bytes:
    paho 1.6 does not read a DISCONNECT of one byte of reason)."""
    cid = uid("told")
    body = mqtt_str("MQTT") + bytes([5, 0xC0]) + struct.pack("!H", 30) + bytes([0])
    body += mqtt_str(cid) + mqtt_str("apikey") + mqtt_str(tenant["key"])
    old = socket.create_connection(mqtt_addr(srv), timeout=WAIT)
    old.sendall(bytes([0x10, len(body)]) + body)
    first, connack = read_packet(old)
    assert first == 0x20 and connack[1] == 0, connack
    new = Client(srv, tenant, cid, mqtt.MQTTv5)
    first, reason = read_packet(old)
    assert first == 0xE0 and reason[0] == 0x8E, (first, reason)
    old.close()
    new.close()


def connect_packet(client_id, password, will_topic, will_payload):
    """A 3.1.1 CONNECT with a QoS 0 will, username "apikey"."""
    def s(b):
        b = b.encode() if isinstance(b, str) else b
        return struct.pack("!H", len(b)) + b
    flags = 0x80 | 0x40 | 0x04 | 0x02  # username, password, will, clean session
    body = s("MQTT") + bytes([4, flags]) + struct.pack("!H", 30)
    body += s(client_id) + s(will_topic) + s(will_payload) + s("apikey") + s(password)
    return bytes([0x10, len(body)]) + body if len(body) < 128 else \
        bytes([0x10, (len(body) & 0x7F) | 0x80, len(body) >> 7]) + body


@pytest.mark.parametrize("version", VERSIONS)
def test_will_on_abrupt_close_not_on_disconnect(srv, tenant, version):
    base = uid("wills")
    watcher = Client(srv, tenant, uid("watch"), version)
    watcher.subscribe(base + "/#", qos=1)
    # Dropped without DISCONNECT: the will goes out.
    raw = socket.create_connection(mqtt_addr(srv), timeout=WAIT)
    raw.sendall(connect_packet(uid("dies"), tenant["key"], base + "/gone", "bye"))
    assert raw.recv(4)[:2] == b"\x20\x02"  # CONNACK
    raw.close()
    m = watcher.get()
    assert (m.topic, m.payload) == (base + "/gone", b"bye")
    # A normal DISCONNECT: no will.
    polite = Client(srv, tenant, uid("polite"), version, will=(base + "/polite", "never", 1))
    polite.close()
    watcher.nothing(1.0)
    watcher.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_message_reaches_a_new_subscriber(srv, tenant, version):
    topic = uid("status") + "/door"
    pub = Client(srv, tenant, uid("pub"), version)
    pub.publish(topic, "open", qos=1, retain=True)
    pub.close()
    sub = Client(srv, tenant, uid("late"), version)
    sub.subscribe(topic, qos=1)
    m = sub.get()
    assert (m.topic, m.payload, m.retain) == (topic, b"open", 1)
    sub.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_readings_over_https_arrive_on_readings_device(srv, tenant, version):
    dev = tenant["device"]
    sub = Client(srv, tenant, uid("reader"), version)
    sub.subscribe("readings/" + dev["id"], qos=1)
    ts = now_ms() - 1000
    r = requests.post(srv.http + "/api/v1/data", headers={"X-Auth-Token": dev["token"]},
                      json=[{"ts": ts, "values": {"temp": 21.6, "rh": 40}},
                            {"ts": ts + 1, "values": {"temp": 0.1}}], timeout=WAIT)
    assert r.status_code == 200, r.text
    first, second = sub.get(), sub.get()
    assert first.topic == "readings/" + dev["id"] and first.qos == 1
    assert json.loads(first.payload) == {"ts": ts, "values": {"temp": 21.6, "rh": 40}}
    assert json.loads(second.payload) == {"ts": ts + 1, "values": {"temp": 0.1}}
    assert b"21.6" in first.payload and b"0.1" in second.payload  # shortest text
    sub.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_acknowledged_messages_survive_kill_9(fresh_server, version):
    """What the broker acknowledged is in the store: a persistent session's
    queued QoS 1 messages and a retained message come back after kill -9."""
    server = fresh_server(["--listen-mqtt", "127.0.0.1:0"])
    t = make_tenant(server)
    cid, topic, kept = uid("durable"), uid("cmd") + "/d", uid("status") + "/k"
    sub = Client(server, t, cid, version, clean=False, expiry=300)
    sub.subscribe(topic, qos=1)
    sub.close()
    pub = Client(server, t, uid("pub"), version)
    for i in range(3):
        pub.publish(topic, "m%d" % i, qos=1)  # returns once PUBACK came
    pub.publish(kept, "on", qos=1, retain=True)
    pub.c.loop_stop()
    server.kill()
    server.start()
    back = Client(server, t, cid, version, clean=False, expiry=300)
    assert back.flags["session present"] == 1
    assert [back.get().payload for _ in range(3)] == [b"m0", b"m1", b"m2"]
    back.nothing()
    back.close()
    late = Client(server, t, uid("late"), version)
    late.subscribe(kept, qos=1)
    m = late.get()
    assert (m.payload, m.retain) == (b"on", 1)
    late.close()
