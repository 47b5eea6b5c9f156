"""What the broker acknowledged is never lost (SPEC §3.6): persistent
sessions keep their subscriptions and QoS 1/2 messages across a client's
reconnect, a server restart and a kill -9; in-flight messages are resent
with DUP; inbound QoS 2 state keeps a resent PUBLISH from being stored
twice, also across a crash."""
import json
import threading
import time

import pytest

from conftest import Server, login, module_server, new_org_device, now_ms, rss_kb
from mqtt_util import (MQTT_ARGS, PUBCOMP, PUBLISH, PUBREC, PUBREL, V5, Raw, ack, app_client,
                       device_client, new_key, publish, readings, session_props)
from mqtt_util import tls, version  # noqa: F401  (fixtures)

srv = module_server(MQTT_ARGS)


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


@pytest.fixture(params=[1, 2], ids=["qos1", "qos2"])
def qos(request):
    return request.param


def keeper(srv, key, version, cid, tls=False):
    """An app's persistent session (3.1.1 CleanSession 0; 5.0 Clean Start 0
    and a session that never expires)."""
    return app_client(srv, key, version, tls, client_id=cid, clean=False,
                      properties=session_props(version))


def restart(srv, kill=False):
    if kill:
        srv.kill()
    else:
        assert srv.stop() == 0, srv.read_log()
    return Server(srv.data_dir, srv.extra_args).start()


def stop(srv):
    rc = srv.stop()
    assert rc == 0, srv.read_log()


def test_queued_messages_survive_reconnect(srv, api, version, tls, qos):
    org, _ = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    cid = "keeper-%d" % time.monotonic_ns()
    k = keeper(srv, key, version, cid, tls)
    assert k.connack.session_present == 0
    assert k.subscribe(("cmd/#", qos)) == [qos]
    k.bye()
    pub = app_client(srv, key, version, tls)
    for i in range(3):
        a = pub.publish("cmd/%d" % i, "m%d" % i, qos=qos)
        assert a.ok, a
    pub.bye()
    k = keeper(srv, key, version, cid, tls)
    assert k.connack.session_present == 1
    got = [k.message() for _ in range(3)]
    assert [(m.topic, m.payload, m.qos, m.dup) for m in got] == \
        [("cmd/%d" % i, b"m%d" % i, qos, 0) for i in range(3)]
    k.no_message(0.3)
    # the subscription is still there
    pub = app_client(srv, key, version, tls)
    pub.publish("cmd/live", "now", qos=qos)
    assert k.message().payload == b"now"
    pub.bye()
    k.bye()


def test_queued_messages_survive_restart(fresh_server, version, tls, qos):
    s = fresh_server(MQTT_ARGS)
    api = login(s.http)
    org, _ = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    k = keeper(s, key, version, "keeper", tls)
    assert k.subscribe(("cmd/#", qos), ("alarm", 1)) == [qos, 1]
    k.bye()
    pub = app_client(s, key, version, tls)
    for i in range(3):
        assert pub.publish("cmd/%d" % i, "m%d" % i, qos=qos).ok
    pub.bye()
    again = restart(s)
    try:
        k = keeper(again, key, version, "keeper", tls)
        assert k.connack.session_present == 1
        got = [k.message() for _ in range(3)]
        assert [(m.topic, m.payload, m.qos) for m in got] == [("cmd/%d" % i, b"m%d" % i, qos) for i in range(3)]
        k.no_message(0.3)
        # its subscriptions came back with it
        pub = app_client(again, key, version)
        assert pub.publish("alarm", "ring", qos=1).ok
        assert k.message().payload == b"ring"
        pub.bye()
        k.bye()
    finally:
        stop(again)


def test_kill9_after_puback_loses_nothing(fresh_server, version, tls):
    s = fresh_server(MQTT_ARGS)
    api = login(s.http)
    org, dev = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    k = keeper(s, key, version, "keeper", tls)
    assert k.subscribe(("cmd/#", 1)) == [1]
    k.bye()
    d = device_client(s, dev, version, tls)
    pub = app_client(s, key, version, tls)
    ts = now_ms() - 5000
    assert d.publish("devices/me/data", json.dumps({"ts": ts, "values": {"t": 42.5}}), qos=1).ok
    assert pub.publish("cmd/x", "queued", qos=1).ok
    assert pub.publish("state/x", "retained", qos=1, retain=True).ok
    again = restart(s, kill=True)
    try:
        api = login(again.http)
        assert readings(api, dev, "t") == [[ts, 42.5]]
        k = keeper(again, key, version, "keeper", tls)
        assert k.connack.session_present == 1
        m = k.message()
        assert (m.topic, m.payload) == ("cmd/x", b"queued")
        k.bye()
        late = app_client(again, key, version)
        assert late.subscribe(("state/#", 1)) == [1]
        m = late.message()
        assert (m.topic, m.payload, m.retain) == ("state/x", b"retained", 1)
        late.bye()
    finally:
        stop(again)


def test_kill9_under_load_loses_no_acked_reading(fresh_server, version):
    s = fresh_server(MQTT_ARGS + ["--durability", "normal"])
    api = login(s.http)
    org, dev = new_org_device(api, prefix="mqtt")
    acked = []
    base = now_ms() - 100000
    c = device_client(s, dev, version)
    stop_at = time.time() + 0.7

    def sender():
        i = 0
        try:
            while time.time() < stop_at + 10:
                c.send(publish(version, "devices/me/data", "v=%d %d" % (i, base + i), qos=1,
                               packet_id=i % 65535 + 1))
                a = c.recv(10)
                if a is None:
                    return
                assert a.packet_id == i % 65535 + 1 and a.ok, a
                acked.append(base + i)
                i += 1
        except (OSError, TimeoutError, AssertionError):
            return

    t = threading.Thread(target=sender)
    t.start()
    while time.time() < stop_at:
        time.sleep(0.05)
    again = restart(s, kill=True)
    t.join(15)
    try:
        assert len(acked) > 10, "too few acknowledged before the kill to mean anything"
        stored = {ts for ts, _ in readings(login(again.http), dev, "v", limit=100000)}
        lost = [ts for ts in acked if ts not in stored]
        assert not lost, "%d acknowledged readings lost, first %r" % (len(lost), lost[:3])
    finally:
        stop(again)


def test_inflight_redelivered_with_dup(srv, api, version, qos):
    org, _ = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    cid = "inflight-%d" % time.monotonic_ns()
    k = keeper(srv, key, version, cid)
    assert k.subscribe(("cmd/#", qos)) == [qos]
    pub = app_client(srv, key, version)
    assert pub.publish("cmd/a", "first", qos=qos).ok
    first = k.message(ack_it=False)
    assert first.dup == 0 and first.qos == qos
    k.close()  # gone without acknowledging: the network failed
    k = keeper(srv, key, version, cid)
    assert k.connack.session_present == 1
    again = k.expect(PUBLISH)
    assert (again.packet_id, again.payload, again.dup, again.qos) == (first.packet_id, b"first", 1, qos)
    if qos == 2:
        # PUBREC, then gone before PUBCOMP: the PUBREL is resent, never the PUBLISH
        k.send(ack(PUBREC, version, again.packet_id))
        assert k.expect(PUBREL).packet_id == again.packet_id
        k.close()
        k = keeper(srv, key, version, cid)
        rel = k.expect(PUBREL)
        assert rel.packet_id == again.packet_id
        k.send(ack(PUBCOMP, version, rel.packet_id))
    else:
        k.send(ack(0x04, version, again.packet_id))
    k.no_message(0.5)
    k.bye()
    # acknowledged: not sent again on the next reconnect
    k = keeper(srv, key, version, cid)
    k.no_message(0.5)
    k.bye()
    pub.bye()


def test_inflight_survives_restart(fresh_server, version, qos):
    s = fresh_server(MQTT_ARGS)
    api = login(s.http)
    org, _ = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    k = keeper(s, key, version, "inflight")
    assert k.subscribe(("cmd/#", qos)) == [qos]
    pub = app_client(s, key, version)
    assert pub.publish("cmd/a", "first", qos=qos).ok
    first = k.message(ack_it=False)
    # That it was sent reaches the store with the group commit after the
    # send (docs/mqtt.md): killed within those milliseconds, the server
    # sends it again as not yet sent. Give that commit its moment, so the
    # test asks for the DUP of a send the store knows of.
    time.sleep(0.5)
    again = restart(s, kill=True)
    try:
        k = keeper(again, key, version, "inflight")
        assert k.connack.session_present == 1
        p = k.expect(PUBLISH)
        assert (p.packet_id, p.payload, p.dup) == (first.packet_id, b"first", 1)
        k.ack(p)
        k.no_message(0.3)
        k.bye()
    finally:
        stop(again)


def test_qos2_inbound_state_survives_restart(fresh_server, version):
    s = fresh_server(MQTT_ARGS)
    api = login(s.http)
    org, dev = new_org_device(api, prefix="mqtt")
    props = session_props(version)
    c = device_client(s, dev, version, client_id="q2", clean=False, properties=props)
    body = json.dumps({"n": 1})  # no ts: stored twice would be two points
    c.send(publish(version, "devices/me/data", body, qos=2, packet_id=9))
    rec = c.expect(PUBREC)
    assert rec.packet_id == 9 and rec.ok
    again = restart(s, kill=True)
    try:
        api = login(again.http)
        assert len(readings(api, dev, "n")) == 1
        c = device_client(again, dev, version, client_id="q2", clean=False, properties=props)
        assert c.connack.session_present == 1
        c.send(publish(version, "devices/me/data", body, qos=2, packet_id=9, dup=True))
        rec = c.expect(PUBREC)
        assert rec.packet_id == 9 and rec.ok
        c.send(ack(PUBREL, version, 9))
        comp = c.expect(PUBCOMP)
        assert comp.packet_id == 9 and comp.reason == 0
        assert len(readings(api, dev, "n")) == 1, "a resent QoS 2 PUBLISH was stored twice"
        c.bye()
    finally:
        stop(again)


def test_session_ends_with_clean_start(srv, api, version):
    org, _ = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    cid = "clean-%d" % time.monotonic_ns()
    k = keeper(srv, key, version, cid)
    assert k.subscribe(("cmd/#", 1)) == [1]
    k.bye()
    c = Raw(srv, version)
    c.connect(client_id=cid, clean=True, username="apikey", password=key)
    assert c.connack.session_present == 0
    c.bye()
    pub = app_client(srv, key, version)
    pub.publish("cmd/x", "lost", qos=1)
    pub.bye()
    k = keeper(srv, key, version, cid)
    assert k.connack.session_present == 0
    k.no_message(0.3)
    k.bye()


def test_shutdown_disconnects_without_wills(fresh_server, version):
    s = fresh_server(MQTT_ARGS)
    api = login(s.http)
    org, dev = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    c = Raw(s, version)
    c.connect(username="apikey", password=key, client_id="w",
              will={"topic": "will/x", "payload": b"gone", "qos": 1, "retain": True})
    rc = s.stop()
    assert rc == 0, s.read_log()
    got = c.closed()
    if version == V5:
        assert [p.reason for p in got if p.type == 14] == [0x8B], got  # server shutting down
    else:
        assert got == []
    again = Server(s.data_dir, s.extra_args).start()
    try:
        late = app_client(again, key, version)
        assert late.subscribe(("will/#", 1)) == [1]
        late.no_message(0.5)  # the server went away, not the client: no will
        late.bye()
    finally:
        stop(again)


def sanitized(srv):
    """Under AddressSanitizer freed memory is held back (its quarantine):
    resident memory says nothing of the server's own."""
    with open("/proc/%d/maps" % srv.proc.pid) as f:
        return "libasan" in f.read()


def test_absent_session_queue_bounded(fresh_server, version):
    """A persistent session away while 1 500 messages (30 MB) come for it
    keeps at most its bound (1 000 messages, 1 MiB; docs/mqtt.md, "Slow
    subscribers"), the newest, in order; the server's memory does not grow
    with what it dropped."""
    s = fresh_server(MQTT_ARGS)
    api = login(s.http)
    org, _ = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    k = keeper(s, key, version, "away")
    assert k.subscribe(("flood/#", 1)) == [1]
    k.bye()
    pub = app_client(s, key, version)
    before = rss_kb(s.proc.pid)
    body = b"m" * 20000
    n = 1500
    for i in range(n):
        pub.send(publish(version, "flood/x", b"%06d" % i + body, qos=1, packet_id=i % 60000 + 1))
        if i % 25 == 24:  # within the broker's Receive Maximum (32)
            for _ in range(25):
                assert pub.expect(0x04).ok
    grown = rss_kb(s.proc.pid) - before
    pub.bye()
    k = keeper(s, key, version, "away")
    assert k.connack.session_present == 1
    got = []
    while True:
        try:
            got.append(int(k.message(timeout=1).payload[:6]))
        except AssertionError:
            break
    k.bye()
    assert 0 < len(got) <= 1000, len(got)
    assert len(got) * len(body) <= 1024 * 1024 + len(body)
    assert got == sorted(got) and got[-1] == n - 1, got[:3] + got[-3:]
    if not sanitized(s):
        assert grown < 16 * 1024, "the server grew %d KB for a session that keeps 1 MiB" % grown


def test_sigterm_acknowledges_what_is_in_flight(fresh_server, version):
    """SIGTERM: what a client has in flight is acknowledged (and stored)
    before the server says goodbye; every PUBACK is a reading found after
    the restart."""
    s = fresh_server(MQTT_ARGS)
    api = login(s.http)
    org, dev = new_org_device(api, prefix="mqtt")
    c = device_client(s, dev, version)
    base = now_ms() - 100000
    n = 20  # within the Receive Maximum
    for i in range(n):
        c.send(publish(version, "devices/me/data", "g=%d %d" % (i, base + i), qos=1, packet_id=i + 1))
    s.proc.send_signal(15)
    got = c.closed(timeout=30)
    acks = [p.packet_id for p in got if p.type == 0x04]
    assert acks == list(range(1, len(acks) + 1)), got  # in order, none skipped
    if version == V5:
        assert got[-1].type == 14 and got[-1].reason == 0x8B, got[-1]
        assert all(p.type == 0x04 for p in got[:-1]), got
    rc = s.proc.wait(30)
    assert rc == 0, s.read_log()
    again = Server(s.data_dir, s.extra_args).start()
    try:
        stored = {ts for ts, _ in readings(login(again.http), dev, "g")}
        assert {base + i - 1 for i in acks} <= stored
    finally:
        stop(again)
