"""Readings over MQTT (SPEC §3.6, docs/mqtt.md): a device publishes to its
data topics and the reading is stored (acknowledged only after the
commit) and readable over REST; bad payloads and quota refusals in each
version's terms with nothing stored; QoS 2 stores once; every stored
batch, whatever protocol brought it, comes out on readings/<device>; and
the connection's session record and usage."""
import json
import socket
import time

import pytest
import requests

from conftest import login, module_server, new_org_device, now_ms
from mqtt_util import (MQTT_ARGS, PUBCOMP, PUBREC, PUBREL, RC_PAYLOAD_INVALID,
                       RC_QUOTA_EXCEEDED, V5, V311, ack, app_client, device_client, new_key,
                       publish, readings, wait_readings)
from mqtt_util import tls, version  # noqa: F401  (fixtures)

srv = module_server(MQTT_ARGS + ["--listen-tcp", "127.0.0.1:0", "--listen-udp", "127.0.0.1:0"])


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


def data_topic(dev, channel=None):
    return "devices/%s/data%s" % (dev["id"], "/" + channel if channel else "")


def test_publish_stored_and_readable(srv, api, version, tls):
    org, dev = new_org_device(api, prefix="mqtt")
    c = device_client(srv, dev, version, tls, client_id="sensor-1")
    ts = now_ms() - 5000
    a = c.publish(data_topic(dev), json.dumps({"ts": ts, "values": {"temp": 21.5, "rh": 40}}), qos=1)
    assert a.ok, a
    # acknowledged means stored: readable at once, no waiting
    assert readings(api, dev, "temp") == [[ts, 21.5]]
    assert readings(api, dev, "rh") == [[ts, 40]]
    # QoS 2: PUBREC after the commit, then PUBREL / PUBCOMP
    rec = c.publish(data_topic(dev), json.dumps([{"ts": ts + 1, "values": {"temp": 22}},
                                                 {"ts": ts + 2, "values": {"temp": 22.5}}]), qos=2)
    assert rec.ok, rec
    assert readings(api, dev, "temp") == [[ts, 21.5], [ts + 1, 22], [ts + 2, 22.5]]
    # QoS 0: no answer, stored all the same
    c.publish(data_topic(dev), json.dumps({"ts": ts + 3, "values": {"temp": 23}}), qos=0)
    assert wait_readings(api, dev, "temp", 4)[-1] == [ts + 3, 23]
    # the same packet id is a new message after its PUBACK (MQTT-4.3.2-5)
    c.publish(data_topic(dev), "temp=24 %d" % (ts + 4), qos=1, packet_id=1)
    c.publish(data_topic(dev), "temp=25 %d" % (ts + 5), qos=1, packet_id=1)
    assert [v for _, v in readings(api, dev, "temp")][-2:] == [24, 25]
    c.bye()


def test_line_format_and_channel_topic(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    c = device_client(srv, dev, version)
    ts = now_ms() - 5000
    lines = "# a comment\na=1,b=2 %d\r\n\na=3 %d\n" % (ts, ts + 1)
    assert c.publish(data_topic(dev), lines, qos=1).ok
    assert readings(api, dev, "a") == [[ts, 1], [ts + 1, 3]]
    assert readings(api, dev, "b") == [[ts, 2]]
    # one channel, a plain number, the server's time
    before = now_ms()
    assert c.publish(data_topic(dev, "level"), "7.25", qos=1).ok
    got = readings(api, dev, "level")
    assert len(got) == 1 and got[0][1] == 7.25 and before - 1000 <= got[0][0] <= now_ms() + 1000
    assert c.publish(data_topic(dev, "level"), "-3e2", qos=2).ok
    assert [v for _, v in readings(api, dev, "level")] == [7.25, -300]
    c.bye()


def test_devices_me_alias(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    app = app_client(srv, key, version)
    assert app.subscribe(("devices/%s/data" % dev["id"], 1)) == [1]
    d = device_client(srv, dev, version)
    assert d.subscribe(("devices/me/commands/#", 1)) == [1]
    ts = now_ms() - 5000
    assert d.publish("devices/me/data", json.dumps({"ts": ts, "values": {"t": 1}}), qos=1).ok
    assert readings(api, dev, "t") == [[ts, 1]]
    # what the device published under "me" is its own id's topic for others
    m = app.message()
    assert m.topic == "devices/%s/data" % dev["id"]
    assert json.loads(m.payload) == {"ts": ts, "values": {"t": 1}}
    # and a command to its id reaches its "me" subscription
    assert app.publish("devices/%s/commands/reboot" % dev["id"], "now", qos=1).ok
    got = d.message()
    assert got.payload == b"now"
    assert got.topic in ("devices/%s/commands/reboot" % dev["id"], "devices/me/commands/reboot")
    app.no_message(0.3)
    app.bye()
    d.bye()


BAD_PAYLOADS = [
    ("data", "{\"temp\": 21.5"),                         # JSON cut short
    ("data", "{\"temp\": \"warm\"}"),                    # not a number
    ("data", "[{\"a\": 1}, {\"a\": \"x\"}]"),            # one bad item: the batch is refused whole
    ("data", "a=1\nb=oops\n"),                           # line format, second line bad
    ("data", "{\"ts\": 1, \"values\": {\"a\": 1}}"),     # before 2000-01-01
    ("data", "{\"bad channel!\": 1}"),                   # channel name
    ("data", ""),                                        # no readings at all
    ("data/x", "twelve"),                                # a channel topic takes a plain number
    ("data/x", "1 2"),
    ("data/bad channel", "1"),
]


@pytest.mark.parametrize("where,payload", BAD_PAYLOADS, ids=[str(i) for i in range(len(BAD_PAYLOADS))])
def test_bad_payload_refused(srv, api, version, where, payload):
    org, dev = new_org_device(api, prefix="mqtt")
    c = device_client(srv, dev, version)
    topic = "devices/%s/%s" % (dev["id"], where)
    for qos in (1, 2):
        if version == V311:
            c.send(publish(version, topic, payload, qos=qos, packet_id=5))
            assert c.closed() == [], "3.1.1: a bad payload closes the connection, unanswered"
            break
        a = c.publish(topic, payload, qos=qos)
        assert a.reason == RC_PAYLOAD_INVALID, a
        c.ping()  # the connection goes on
    if version == V5:
        # the refused packet id is free again (MQTT-4.3.3-9): reused, it stores
        assert c.publish(data_topic(dev), "ok=1", qos=2, packet_id=1).ok
        c.bye()
    time.sleep(0.2)
    chans = api.get("/api/v1/devices/%s/channels" % dev["id"]).json()
    names = {ch["name"] for ch in chans}
    assert names <= {"ok"}, "a refused message stored something: %r" % chans


def test_over_quota_refused(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    assert api.put("/api/v1/orgs/%s/quota" % org["id"], json={"max_readings_per_day": 2}).status_code == 200
    c = device_client(srv, dev, version)
    ts = now_ms() - 5000
    assert c.publish(data_topic(dev), "q=1 %d\nq=2 %d" % (ts, ts + 1), qos=1).ok
    if version == V5:
        assert c.publish(data_topic(dev), "q=3 %d" % (ts + 2), qos=1).reason == RC_QUOTA_EXCEEDED
        assert c.publish(data_topic(dev, "q"), "4", qos=2).reason == RC_QUOTA_EXCEEDED
        c.ping()
        c.bye()
    else:
        c.send(publish(version, data_topic(dev), "q=3 %d" % (ts + 2), qos=1, packet_id=9))
        assert c.closed() == [], "3.1.1: over quota closes the connection, unanswered"
    assert readings(api, dev, "q") == [[ts, 1], [ts + 1, 2]]
    # raised, the quota lets readings in again without a reconnect of the server
    assert api.put("/api/v1/orgs/%s/quota" % org["id"], json={"max_readings_per_day": 100}).status_code == 200
    c = device_client(srv, dev, version)
    assert c.publish(data_topic(dev), "q=5 %d" % (ts + 4), qos=1).ok
    c.bye()


def test_qos2_resent_publish_stored_once(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    c = device_client(srv, dev, version)
    body = json.dumps({"n": 1})  # no ts: a second store would be a second point
    c.send(publish(version, data_topic(dev), body, qos=2, packet_id=7))
    rec = c.expect(PUBREC)
    assert rec.packet_id == 7 and rec.ok
    time.sleep(0.02)
    # resent before PUBREL (a client that missed the PUBREC): PUBREC again, not stored again
    c.send(publish(version, data_topic(dev), body, qos=2, packet_id=7, dup=True))
    rec = c.expect(PUBREC)
    assert rec.packet_id == 7 and rec.ok
    c.send(ack(PUBREL, version, 7))
    comp = c.expect(PUBCOMP)
    assert comp.packet_id == 7 and comp.reason == 0
    # a PUBREL for an id with no exchange: PUBCOMP, 5.0 with 0x92
    c.send(ack(PUBREL, version, 7))
    comp = c.expect(PUBCOMP)
    assert comp.packet_id == 7 and comp.reason == (0x92 if version == V5 else 0)
    assert len(readings(api, dev, "n")) == 1
    # after PUBCOMP the id is a new message (MQTT-4.3.3-12)
    time.sleep(0.02)
    assert c.publish(data_topic(dev), body, qos=2, packet_id=7).ok
    assert len(readings(api, dev, "n")) == 2
    c.bye()


def tcp_send(srv, token, line):
    host, port = srv.addrs["tcp"].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(("AUTH %s\n%s\n" % (token, line)).encode())
    got = b""
    while got.count(b"\n") < 2:
        chunk = s.recv(1024)
        assert chunk, got
        got += chunk
    s.close()
    assert got == b"OK\nACK 1\n", got


def udp_send(srv, token, line):
    host, port = srv.addrs["udp"].rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(("%s\n%s\n" % (token, line)).encode(), (host, int(port)))
    s.close()


def test_readings_from_every_protocol(srv, api, version, tls):
    org, dev = new_org_device(api, prefix="mqtt")
    app = app_client(srv, new_key(api, org["id"], ["data:read"]), version, tls)
    assert app.subscribe(("readings/#", 1)) == [1]
    ts = now_ms() - 10000
    sent = {
        "https": (ts, {"h": 1.5, "h2": 2}),
        "tcp": (ts + 1, {"t": 2}),
        "udp": (ts + 2, {"u": 3}),
        "mqtt": (ts + 3, {"m": 4.25}),
    }
    r = requests.post(srv.https + "/api/v1/data", json={"ts": ts, "values": sent["https"][1]},
                      headers={"X-Auth-Token": dev["token"]}, verify=srv.cert, timeout=10)
    assert r.status_code == 200, r.text
    tcp_send(srv, dev["token"], "t=2 %d" % (ts + 1))
    udp_send(srv, dev["token"], "u=3 %d" % (ts + 2))
    d = device_client(srv, dev, version, tls)
    assert d.publish(data_topic(dev), json.dumps({"ts": ts + 3, "values": {"m": 4.25}}), qos=1).ok
    d.bye()
    got = {}
    for _ in range(len(sent)):
        m = app.message()
        assert m.topic == "readings/%s" % dev["id"], m
        body = json.loads(m.payload)
        assert set(body) == {"ts", "values"}, body
        got[body["ts"]] = body["values"]
    assert got == {t: v for t, v in sent.values()}
    app.no_message(0.3)
    app.bye()


def test_session_record_and_usage(srv, api, version, tls):
    org, dev = new_org_device(api, prefix="mqtt")
    proto = "mqtts" if tls else "mqtt"
    c = device_client(srv, dev, version, tls)
    ts = now_ms() - 5000
    assert c.publish(data_topic(dev), "s=1 %d\ns=2 %d" % (ts, ts + 1), qos=1).ok
    c.bye()
    deadline = time.time() + 10
    while True:
        rows = [r for r in api.get("/api/v1/orgs/%s/sessions?kind=device" % org["id"]).json()
                if r["protocol"] == proto and r["ended_at"]]
        if rows or time.time() > deadline:
            break
        time.sleep(0.1)
    assert len(rows) == 1, rows
    rec = rows[0]
    assert rec["principal_id"] == dev["id"] and rec["readings"] == 2 and rec["address"] == "127.0.0.1"
    if tls:
        assert rec["bytes_in"] > c.sent and rec["bytes_out"] > c.received
    else:
        assert rec["bytes_in"] == c.sent and rec["bytes_out"] == c.received
    deadline = time.time() + 10
    while True:
        u = api.get("/api/v1/orgs/%s/usage" % org["id"]).json()["usage"]
        mine = sum(b["readings"] for b in u if b["protocol"] == proto)
        if mine == 2 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert mine == 2, u


def test_readings_per_message_bounded(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    c = device_client(srv, dev, version)
    ts = now_ms() - 20000
    full = "\n".join("n=%d %d" % (i, ts + i) for i in range(10000))
    assert c.publish(data_topic(dev), full, qos=1).ok
    assert len(readings(api, dev, "n", limit=20000)) == 10000
    over = "\n".join("o=%d %d" % (i, ts + i) for i in range(10001))
    if version == V5:
        a = c.publish(data_topic(dev), over, qos=1)
        assert a.reason >= 0x80, a
        c.bye()
    else:
        c.send(publish(version, data_topic(dev), over, qos=1, packet_id=9))
        assert c.closed() == []
    assert readings(api, dev, "o") == []


def test_readings_one_message_per_timestamp(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    app = app_client(srv, new_key(api, org["id"], ["data:read"]), version)
    assert app.subscribe(("readings/%s" % dev["id"], 1)) == [1]
    ts = now_ms() - 5000
    body = json.dumps([{"ts": ts + 1, "values": {"a": 2}}, {"ts": ts, "values": {"a": 1, "b": 1}},
                       {"ts": ts + 1, "values": {"b": 2}}])
    r = requests.post(srv.http + "/api/v1/data", data=body, timeout=10,
                      headers={"X-Auth-Token": dev["token"], "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    got = [json.loads(app.message().payload) for _ in range(2)]
    assert got == [{"ts": ts, "values": {"a": 1, "b": 1}}, {"ts": ts + 1, "values": {"a": 2, "b": 2}}]
    app.no_message(0.3)
    app.bye()


@pytest.mark.parametrize("why", ["forbidden", "bad payload", "quota"])
def test_refused_qos0_publish_ends_connection(srv, api, version, why):
    org, dev = new_org_device(api, prefix="mqtt")
    if why == "quota":
        assert api.put("/api/v1/orgs/%s/quota" % org["id"],
                       json={"max_readings_per_day": 1}).status_code == 200
    c = device_client(srv, dev, version)
    if why == "quota":
        assert c.publish(data_topic(dev), "q=1", qos=1).ok
    topic, payload, reason = {
        "forbidden": ("readings/%s" % dev["id"], "x", 0x87),
        "bad payload": (data_topic(dev), "not a reading", RC_PAYLOAD_INVALID),
        "quota": (data_topic(dev), "q=2", RC_QUOTA_EXCEEDED),
    }[why]
    # no acknowledgement to carry the refusal: the connection ends, 5.0 saying why
    c.send(publish(version, topic, payload, qos=0))
    got = c.closed()
    if version == V5:
        assert [p.reason for p in got if p.type == 14] == [reason], got
    else:
        assert got == []
    assert len(readings(api, dev, "q")) == (1 if why == "quota" else 0)


def test_bytes_quota(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    assert api.put("/api/v1/orgs/%s/quota" % org["id"], json={"max_bytes_per_day": 400}).status_code == 200
    c = device_client(srv, dev, version)
    assert c.publish(data_topic(dev), "a=1 " + str(now_ms() - 1000) + "\n#" + "x" * 400, qos=1).ok
    c.bye()
    # bytes reach the quota at the next accounting flush, with the usage rows
    deadline = time.time() + 15
    while time.time() < deadline:
        u = api.get("/api/v1/orgs/%s/usage" % org["id"]).json()["usage"]
        if sum(r["bytes_in"] + r["bytes_out"] for r in u) > 400:
            break
        time.sleep(0.2)
    c = device_client(srv, dev, version)
    if version == V5:
        assert c.publish(data_topic(dev), "b=1", qos=1).reason == RC_QUOTA_EXCEEDED
        c.bye()
    else:
        c.send(publish(version, data_topic(dev), "b=1", qos=1, packet_id=2))
        assert c.closed() == []
    assert readings(api, dev, "b") == []


def test_refused_counted_in_usage(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    c = device_client(srv, dev, version)
    assert c.publish(data_topic(dev), "ok=1", qos=1).ok
    if version == V5:
        assert c.publish(data_topic(dev), "bad", qos=1).reason == RC_PAYLOAD_INVALID
        c.bye()
    else:
        c.send(publish(version, data_topic(dev), "bad", qos=1, packet_id=5))
        c.closed()
    deadline = time.time() + 15
    while True:
        u = [r for r in api.get("/api/v1/orgs/%s/usage" % org["id"]).json()["usage"]
             if r["protocol"] == "mqtt"]
        if sum(r["rejected"] for r in u) >= 1 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert sum(r["rejected"] for r in u) == 1, u
    assert sum(r["readings"] for r in u) == 1, u


def test_app_session_record(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    r = api.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "k", "scopes": ["data:read"]})
    key = r.json()
    c = app_client(srv, key["key"], version)
    c.ping()
    deadline = time.time() + 10
    while True:
        rows = [x for x in api.get("/api/v1/orgs/%s/sessions?active=true" % org["id"]).json()
                if x["protocol"] == "mqtt"]
        if rows or time.time() > deadline:
            break
        time.sleep(0.1)
    assert len(rows) == 1 and rows[0]["principal_id"] == key["id"], rows
    c.bye()


def test_metrics_per_listener(srv, api, version, tls):
    org, dev = new_org_device(api, prefix="mqtt")
    c = device_client(srv, dev, version, tls)
    assert c.publish(data_topic(dev), "m=1", qos=1).ok
    text = requests.get(srv.http + "/metrics", timeout=10).text
    name = "mqtts" if tls else "mqtt"
    lines = [ln for ln in text.splitlines() if not ln.startswith("#") and ('"%s"' % name) in ln]
    assert lines, "no metric names the %s listener" % name
    c.bye()
