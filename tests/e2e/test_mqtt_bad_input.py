"""Bad input to the broker (SPEC §3.6, §4; the issue's "Show it works"):
each malformed packet or protocol error gets its own test. The client that
sent it is disconnected in its version's terms (5.0: a DISCONNECT with the
reason, or a refusing CONNACK before acceptance; 3.1.1: the close), a
client connected to the same server before it keeps working, checked in
the same test, and nothing is stored half."""
import socket
import threading
import time

import pytest

from conftest import login, module_server, new_org_device, now_ms
from mqtt_util import (CONNACK, DISCONNECT, MQTT_ARGS, P_CONTENT_TYPE, P_RESPONSE_TOPIC,
                       P_USER_PROPERTY, PUBACK, PUBREC, PUBREL, RC_MALFORMED, RC_PACKET_TOO_LARGE,
                       RC_PROTOCOL_ERROR, RC_TOPIC_INVALID, V5, V311, Raw, addr_of,
                       app_client, connect, device_client, new_key, packet, props, publish,
                       raw_str, readings, subscribe, u16, unsubscribe, varint)
from mqtt_util import version  # noqa: F401  (fixture)

FIRST_MESSAGE_TIMEOUT = 1.0
srv = module_server(MQTT_ARGS + ["--first-message-timeout", str(FIRST_MESSAGE_TIMEOUT)])
PACKET_MAX = 256 * 1024
BAD = RC_MALFORMED, RC_PROTOCOL_ERROR  # where the standard leaves the choice between the two


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


@pytest.fixture
def dev(api):
    return new_org_device(api, prefix="mqtt")[1]


@pytest.fixture
def witness(srv, api, version):
    """A client connected before the bad input, of another organisation,
    checked after it: it must not notice."""
    org, dev = new_org_device(api, prefix="witness")
    w = device_client(srv, dev, version)
    assert w.subscribe(("devices/me/commands/#", 1)) == [1]
    yield w
    w.ping()
    assert w.publish("devices/me/data", "w=1", qos=1).ok
    app = app_client(srv, new_key(api, org["id"]), version)
    assert app.publish("devices/%s/commands/x" % dev["id"], "still here", qos=1).ok
    assert w.message().payload == b"still here"
    app.bye()
    w.bye()
    assert len(readings(api, dev, "w")) == 1


def disconnected(c, version, reasons):
    """c is closed; 5.0: after a DISCONNECT whose reason is in reasons;
    3.1.1: with nothing sent. Returns the packets before the close."""
    got = c.closed()
    discs = [p for p in got if p.type == DISCONNECT]
    if version == V5:
        reasons = (reasons,) if isinstance(reasons, int) else reasons
        assert discs and discs[-1].reason in reasons, \
            "expected DISCONNECT %s, got %r" % ([hex(r) for r in reasons], got)
    assert not [p for p in got if p.type == CONNACK], got
    return got


def refused_before_connack(c, version):
    """A bad CONNECT: closed, never accepted; 3.1.1 without a CONNACK
    (MQTT-3.1.4-1), 5.0 with at most a refusing one (0x80 or above)."""
    got = c.closed()
    if version == V311:
        assert got == [], got
    else:
        assert all(p.type == CONNACK and p.reason >= 0x80 for p in got), got
        assert len(got) <= 1, got


def stored_nothing(api, dev):
    time.sleep(0.1)
    chans = api.get("/api/v1/devices/%s/channels" % dev["id"]).json()
    assert chans == [], "something was stored: %r" % chans


def connected(srv, dev, version):
    return device_client(srv, dev, version)


def only(version, which):
    """For a test of one version's packets (the witness runs for both)."""
    if version != which:
        pytest.skip("MQTT %s only" % ("5.0" if which == V5 else "3.1.1"))


# ---- framing ------------------------------------------------------------------------


WRONG_LENGTHS = {
    # a PUBLISH to a data topic whose topic length runs past its remaining length
    "topic past the end": lambda d: bytes([0x32, 5]) + u16(40) + b"dev",
    # a PINGREQ carries nothing
    "pingreq with a body": lambda d: b"\xc0\x02\x00\x00",
    # a PUBACK is at least its packet id
    "puback too short": lambda d: b"\x40\x01\x00",
    # a SUBSCRIBE whose last filter runs past the end
    "filter past the end": lambda d: bytes([0x82, 6]) + u16(1) + u16(20) + b"ab",
}


@pytest.mark.parametrize("case", list(WRONG_LENGTHS))
def test_wrong_remaining_length(srv, api, dev, witness, version, case):
    c = connected(srv, dev, version)
    c.send(WRONG_LENGTHS[case](dev))
    disconnected(c, version, RC_MALFORMED)
    stored_nothing(api, dev)


def test_remaining_length_cut_by_close(srv, api, dev, witness, version):
    # the length says 200 bytes, 30 come, then the client closes its side
    c = connected(srv, dev, version)
    body = publish(version, "devices/me/data", "a=1\n" * 40, qos=1, packet_id=1)
    c.send(body[:30])
    c.s.shutdown(socket.SHUT_WR)
    c.closed()
    stored_nothing(api, dev)


def test_remaining_length_over_four_bytes(srv, api, dev, witness, version):
    c = connected(srv, dev, version)
    c.send(b"\x30\xff\xff\xff\xff\x01")
    disconnected(c, version, RC_MALFORMED)
    stored_nothing(api, dev)


def test_packet_over_maximum_size(srv, api, dev, witness, version):
    c = connected(srv, dev, version)
    if version == V5:
        assert c.connack.props.get(0x27) == PACKET_MAX, c.connack
    # refused from its header, before the server has read it all
    topic = raw_str("devices/me/data") + u16(1) + (props(None) if version == V5 else b"")
    rl = PACKET_MAX + 1000
    c.send(bytes([0x32]) + varint(rl) + topic + b"a=1\n" * 256)
    disconnected(c, version, RC_PACKET_TOO_LARGE)
    stored_nothing(api, dev)


def test_packet_of_maximum_size_taken(srv, api, dev, witness, version):
    c = connected(srv, dev, version)
    head = raw_str("devices/me/blob") + u16(1) + (props(None) if version == V5 else b"")
    rl = PACKET_MAX - 1 - len(varint(PACKET_MAX))
    pkt = bytes([0x32]) + varint(rl) + head + b"x" * (rl - len(head))
    assert len(pkt) == PACKET_MAX
    c.send(pkt)
    a = c.expect(PUBACK)
    assert a.packet_id == 1 and a.reason in (0, 0x10), a
    # one byte more is refused
    pkt = bytes([0x32]) + varint(rl + 1) + head + b"x" * (rl + 1 - len(head))
    c.send(pkt)
    disconnected(c, version, RC_PACKET_TOO_LARGE)


# ---- order of packets -----------------------------------------------------------------


FIRST_PACKETS = {
    "publish": lambda d, v: publish(v, "devices/%s/data" % d["id"], "a=1", qos=1, packet_id=1),
    "subscribe": lambda d, v: subscribe(v, 1, ["#"]),
    "pingreq": lambda d, v: b"\xc0\x00",
    "disconnect": lambda d, v: b"\xe0\x00",
}


@pytest.mark.parametrize("first", list(FIRST_PACKETS))
def test_publish_before_connect(srv, api, dev, witness, version, first):
    c = Raw(srv, version)
    c.send(FIRST_PACKETS[first](dev, version) + connect(version, password=dev["token"]))
    assert c.closed() == [], "anything but CONNECT first is closed, unanswered"
    stored_nothing(api, dev)


def test_second_connect(srv, api, dev, witness, version):
    c = connected(srv, dev, version)
    c.send(connect(version, password=dev["token"]))
    disconnected(c, version, RC_PROTOCOL_ERROR)


# ---- topics ---------------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["devices/me/data/+", "devices/me/#", "+/x", "devices/me/da#ta"])
@pytest.mark.parametrize("qos", [0, 1])
def test_wildcard_in_publish_topic(srv, api, dev, witness, version, topic, qos):
    c = connected(srv, dev, version)
    c.send(publish(version, topic, "1", qos=qos, packet_id=1))
    disconnected(c, version, RC_TOPIC_INVALID)
    stored_nothing(api, dev)


BAD_UTF8 = {
    "byte ff": b"\xff",
    "surrogate": b"\xed\xa0\x80",
    "overlong slash": b"\xc0\xaf",
    "cut sequence": b"\xe2\x82",
}


def utf8_cases():
    for name, bad in BAD_UTF8.items():
        yield "publish " + name, lambda v, b=bad: publish(v, b"devices/me/data/" + b, "1", qos=1, packet_id=1)
    yield "subscribe", lambda v: subscribe(v, 1, [(b"devices/me/\xff", 1)])
    yield "unsubscribe", lambda v: unsubscribe(v, 1, [b"devices/me/\xed\xa0\x80"])


UTF8_CASES = dict(utf8_cases())


@pytest.mark.parametrize("case", list(UTF8_CASES))
def test_invalid_utf8_in_topic(srv, api, dev, witness, version, case):
    c = connected(srv, dev, version)
    c.send(UTF8_CASES[case](version))
    disconnected(c, version, RC_MALFORMED)
    stored_nothing(api, dev)


def test_invalid_utf8_in_will_topic(srv, api, dev, witness, version):
    c = Raw(srv, version)
    c.send(connect(version, username="d", password=dev["token"],
                   will={"topic": b"devices/me/\xff", "payload": b"bye"}))
    refused_before_connack(c, version)


@pytest.mark.parametrize("where", ["publish", "subscribe", "unsubscribe"])
def test_nul_in_topic(srv, api, dev, witness, version, where):
    c = connected(srv, dev, version)
    t = b"devices/me/data/a\x00b"
    c.send({"publish": publish(version, t, "1", qos=1, packet_id=1),
            "subscribe": subscribe(version, 1, [(t, 1)]),
            "unsubscribe": unsubscribe(version, 1, [t])}[where])
    disconnected(c, version, RC_MALFORMED)
    stored_nothing(api, dev)


@pytest.mark.parametrize("prop", ["user property key", "user property value", "content type"])
def test_invalid_utf8_in_user_property(srv, api, dev, witness, version, prop):
    only(version, V5)
    c = connected(srv, dev, V5)
    pr = {"user property key": [(P_USER_PROPERTY, (b"\xff", "v"))],
          "user property value": [(P_USER_PROPERTY, ("k", b"a\x00b"))],
          "content type": [(P_CONTENT_TYPE, b"text/\xc0\xaf")]}[prop]
    c.send(publish(V5, "devices/me/data", "a=1", qos=1, packet_id=1, properties=pr))
    disconnected(c, V5, RC_MALFORMED)
    stored_nothing(api, dev)


@pytest.mark.parametrize("field", ["client id", "user name"])
def test_invalid_utf8_client_id(srv, api, dev, witness, version, field):
    c = Raw(srv, version)
    if field == "client id":
        c.send(connect(version, client_id=b"\xc3\x28", username="d", password=dev["token"]))
    else:
        c.send(connect(version, username=b"dev\xff", password=dev["token"]))
    refused_before_connack(c, version)


def test_wildcard_in_response_topic(srv, api, dev, witness, version):
    only(version, V5)
    c = connected(srv, dev, V5)
    c.send(publish(V5, "devices/me/req", "x", qos=1, packet_id=1,
                   properties=[(P_RESPONSE_TOPIC, "devices/me/+")]))
    disconnected(c, V5, BAD)


def test_topic_too_long(srv, api, dev, witness, version):
    c = connected(srv, dev, version)
    fail = 0x8F if version == V5 else 0x80
    long_filter = "devices/me/" + "a" * 1024
    deep_filter = "devices/me/" + "/".join(["l"] * 31)  # 33 levels
    assert c.subscribe((long_filter, 1), (deep_filter, 1), ("devices/me/ok", 1)) == [fail, fail, 1]
    c.send(publish(version, "devices/me/data/" + "a" * 1024, "1", qos=1, packet_id=2))
    if version == V5:
        p = c.recv()
        assert p is not None and p.reason == RC_TOPIC_INVALID and p.type in (PUBACK, DISCONNECT), p
    else:
        assert c.closed() == []
    stored_nothing(api, dev)


# ---- flags and fields -------------------------------------------------------------------


def reserved_flag_cases(v):
    return {
        "pubrel 0000": [publish(v, "devices/me/x", "1", qos=2, packet_id=3), packet(PUBREL, 0, u16(3))],
        "subscribe 0000": [subscribe(v, 1, ["devices/me/#"], flags=0)],
        "unsubscribe 0000": [unsubscribe(v, 1, ["devices/me/#"], flags=0)],
        "pingreq 0001": [b"\xc1\x00"],
        "puback 0001": [b"\x41\x02\x00\x01"],
        "pubcomp 0100": [b"\x74\x02\x00\x01"],
        "disconnect 1000": [b"\xe8\x00"],
        "qos 0 publish with dup": [publish(v, "devices/me/data", "a=1", qos=0, dup=True)],
    }


@pytest.mark.parametrize("case", list(reserved_flag_cases(V311)))
def test_reserved_flag_set(srv, api, dev, witness, version, case):
    c = connected(srv, dev, version)
    steps = reserved_flag_cases(version)[case]
    for i, step in enumerate(steps):
        c.send(step)
        if i < len(steps) - 1:
            assert c.expect(PUBREC).packet_id == 3
    disconnected(c, version, RC_MALFORMED)
    stored_nothing(api, dev)


def test_reserved_connect_flag(srv, api, dev, witness, version):
    c = Raw(srv, version)
    c.send(connect(version, username="d", password=dev["token"], flags=0xC3))
    refused_before_connack(c, version)


def test_will_flag_without_will(srv, api, dev, witness, version):
    c = Raw(srv, version)
    # the will flag says a will topic and message follow: they do not
    body = raw_str(b"MQTT") + bytes([version, 0xC6]) + u16(60)
    if version == V5:
        body += props(None)
    body += raw_str("cid")
    c.send(packet(1, 0, body))
    refused_before_connack(c, version)


WILL_FLAGS = {"will qos without will": 0x08, "will retain without will": 0x20,
              "will qos 3": 0x1C}


@pytest.mark.parametrize("case", list(WILL_FLAGS))
def test_will_qos_without_will(srv, api, dev, witness, version, case):
    c = Raw(srv, version)
    will = {"topic": "devices/me/will", "payload": b"x"} if case == "will qos 3" else None
    flags = 0xC2 | WILL_FLAGS[case] | (0x04 if will else 0)
    c.send(connect(version, username="d", password=dev["token"], will=will, flags=flags))
    refused_before_connack(c, version)


CONNECT_PAYLOADS = {
    "user name flag, no user name": lambda v, d: connect(v, flags=0x82, username=None),
    "password flag, payload ends": lambda v, d: connect(v, flags=0xC2, username="d"),
    "no flags, bytes after the client id": lambda v, d: connect(v, flags=0x02, username=None) + b"",
    "no client id": lambda v, d: packet(1, 0, raw_str(b"MQTT") + bytes([v, 0x02]) + u16(60) +
                                       (props(None) if v == V5 else b"")),
}


@pytest.mark.parametrize("case", list(CONNECT_PAYLOADS))
def test_connect_flags_disagree_with_payload(srv, api, dev, witness, version, case):
    c = Raw(srv, version)
    pkt = CONNECT_PAYLOADS[case](version, dev)
    if case.startswith("no flags"):
        # append a stray string inside the packet: the remaining length grows with it
        body = pkt[2:] + raw_str("extra")
        pkt = bytes([0x10]) + varint(len(body)) + body
    c.send(pkt)
    refused_before_connack(c, version)


@pytest.mark.parametrize("opts", [0x03, 0x04, 0x40, 0x80, 0x31])
def test_reserved_subscription_options(srv, api, dev, witness, version, opts):
    # QoS 3; 3.1.1's reserved bits (5.0's No Local); 5.0's reserved bits;
    # Retain Handling 3
    if version == V5 and opts == 0x04:
        pytest.skip("No Local is 5.0's bit 2")
    c = connected(srv, dev, version)
    c.send(subscribe(version, 1, [("devices/me/#", opts)]))
    disconnected(c, version, BAD)


@pytest.mark.parametrize("case", ["publish", "subscribe", "unsubscribe"])
def test_packet_id_zero(srv, api, dev, witness, version, case):
    c = connected(srv, dev, version)
    c.send({"publish": publish(version, "devices/me/data", "a=1", qos=1, packet_id=0),
            "subscribe": subscribe(version, 0, ["devices/me/#"]),
            "unsubscribe": unsubscribe(version, 0, ["devices/me/#"])}[case])
    disconnected(c, version, BAD)
    stored_nothing(api, dev)


def test_qos3_publish(srv, api, dev, witness, version):
    c = connected(srv, dev, version)
    c.send(publish(version, "devices/me/data", "a=1", packet_id=1, flags=0x06))
    disconnected(c, version, RC_MALFORMED)
    stored_nothing(api, dev)


@pytest.mark.parametrize("case", ["subscribe", "unsubscribe"])
def test_empty_subscribe(srv, api, dev, witness, version, case):
    c = connected(srv, dev, version)
    body = u16(1) + (props(None) if version == V5 else b"")
    c.send(packet(8 if case == "subscribe" else 10, 2, body))
    disconnected(c, version, BAD)


UNKNOWN_TYPES = {
    "type 0": b"\x00\x00",
    "connack from a client": b"\x20\x02\x00\x00",
    "suback from a client": b"\x90\x03\x00\x01\x00",
    "unsuback from a client": b"\xb0\x02\x00\x01",
    "pingresp from a client": b"\xd0\x00",
    "auth in 3.1.1": b"\xf0\x00",
}


@pytest.mark.parametrize("case", list(UNKNOWN_TYPES))
def test_unknown_packet_type(srv, api, dev, witness, version, case):
    if case == "auth in 3.1.1" and version == V5:
        pytest.skip("AUTH is a 5.0 packet: test_auth_without_method")
    c = connected(srv, dev, version)
    c.send(UNKNOWN_TYPES[case])
    disconnected(c, version, BAD)


def test_auth_without_method(srv, api, dev, witness, version):
    only(version, V5)
    c = connected(srv, dev, V5)
    c.send(b"\xf0\x00")
    disconnected(c, V5, BAD)


# ---- protocol name and level --------------------------------------------------------------


def raw_answer(srv, data, timeout=5):
    """Sends data on a new connection, returns all bytes until the close."""
    s = socket.create_connection(addr_of(srv), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    except ConnectionResetError:
        pass
    s.close()
    return out


@pytest.mark.parametrize("level", [3, 6, 0, 0x84])
def test_bad_protocol_level(srv, api, dev, witness, version, level):
    only(version, V311)  # the CONNECT's own level decides
    pkt = connect(V311, username="d", password=dev["token"], level=level)
    got = raw_answer(srv, pkt)
    if level == 3:
        assert got == b"\x20\x02\x00\x01", got.hex()   # 3.1.1's "unacceptable protocol version"
    else:
        assert got in (b"\x20\x02\x00\x01", b"\x20\x03\x00\x84\x00"), got.hex()


@pytest.mark.parametrize("name,level", [(b"MQTX", 4), (b"MQIsdp", 3), (b"mqtt", 5), (b"", 4)])
def test_bad_protocol_name(srv, api, dev, witness, version, name, level):
    only(version, V311)  # the CONNECT's own level decides
    pkt = connect(V311, username="d", password=dev["token"], protocol_name=name, level=level)
    got = raw_answer(srv, pkt)
    # never accepted: closed, at most with a refusing CONNACK
    assert got in (b"", b"\x20\x02\x00\x01", b"\x20\x03\x00\x84\x00"), got.hex()


# ---- a slow or silent client ----------------------------------------------------------------


@pytest.mark.parametrize("qos", [0, 1])
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_stalled_reader_disconnected_alone(srv, api, witness, version, qos, tls):
    org, dev = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    stalled = Raw(srv, version, tls, rcvbuf=4096)
    stalled.connect(username="apikey", password=key)
    assert stalled.subscribe(("flood/#", qos)) == [qos]
    # a subscriber of the same key that reads: untouched by the flood it
    # does not subscribe to (test_slow_reader_keeps_its_connection is the
    # one that takes the flood)
    reader = app_client(srv, key, version)
    assert reader.subscribe(("marker/#", 1)) == [1]
    got = {"n": 0, "end": False}

    def read():
        try:
            while True:
                p = reader.recv(20)
                if p is None:
                    got["why"] = "closed"
                    return
                if p.type == 3:
                    got["n"] += 1
                    reader.ack(p)
                    if p.topic == "marker/end":
                        got["end"] = True
                        return
        except (OSError, TimeoutError, AssertionError) as e:
            got["why"] = repr(e)
    t = threading.Thread(target=read)
    t.start()
    pub = app_client(srv, key, version)
    dev_c = device_client(srv, dev, version)
    chunk = b"z" * 60000
    ts = now_ms() - 100000
    acked = []
    for i in range(500):  # 30 MB: past any bound the broker may keep for one client
        pub.send(publish(version, "flood/x", chunk, qos=qos, packet_id=i + 1))
        if i % 25 == 0:
            a = dev_c.publish("devices/me/data", "f=%d %d" % (i, ts + i), qos=1)
            assert a.ok
            acked.append(ts + i)
    for i in range(500 if qos else 0):
        a = pub.expect(PUBACK, timeout=30)
        assert a.packet_id == i + 1 and a.reason in (0, 0x10), a
    pub.next_id = 501
    assert pub.publish("marker/end", "end", qos=1).ok
    t.join(30)
    assert got["end"], "the reading subscriber did not get the marker (%d messages, %s)" % (
        got["n"], got.get("why"))
    # it took no byte for longer than the broker waits before judging a
    # flood's overflow (SS_MQTT_STALL_MIN_MS): a reader's acknowledgements
    # come in steps, so a flood of a few ms alone proves nothing
    time.sleep(0.5)
    assert stalled.drain_until_close(timeout=30, idle=5), \
        "a subscriber that stopped reading was never disconnected"
    # the others go on, and every acknowledged reading is there exactly once
    pub.ping()
    dev_c.ping()
    stored = [t_ for t_, _ in readings(api, dev, "f")]
    assert stored == acked
    pub.bye()
    dev_c.bye()
    reader.bye()


def test_slow_reader_keeps_its_connection(srv, api, witness, version):
    """A subscriber that reads, however slowly (here 4 KiB every 2 ms), is
    not a stalled reader: through a 30 MB QoS 0 flood it loses what its
    queue cannot hold and keeps its connection (limits.h, SS_MQTT_STALL_MS;
    docs/mqtt.md, "Slow subscribers"), and gets what comes after."""
    org, _ = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    slow = Raw(srv, version, rcvbuf=65536)
    slow.connect(username="apikey", password=key)
    assert slow.subscribe(("flood/#", 0), ("marker/#", 1)) == [0, 1]
    state = {"closed": False, "marker": False, "bytes": 0}
    slowly = threading.Event()
    slowly.set()

    def read():
        while True:
            slow.s.settimeout(20)
            try:
                chunk = slow.s.recv(4096)
            except OSError:
                chunk = b""
            if not chunk:
                state["closed"] = True
                return
            slow.buf += chunk
            state["bytes"] += len(chunk)
            while True:
                p = slow._split()
                if p is None:
                    break
                if p.type == 3 and p.topic == "marker/end":
                    state["marker"] = True
                    return
            if slowly.is_set():
                time.sleep(0.002)
    t = threading.Thread(target=read)
    t.start()
    pub = app_client(srv, key, version)
    for _ in range(500):
        pub.send(publish(version, "flood/x", b"z" * 60000, qos=0))
    pub.ping()
    time.sleep(3)
    closed_while_slow = state["closed"]
    slowly.clear()  # caught up at full speed, it gets what comes next
    assert pub.publish("marker/end", "end", qos=1).ok
    t.join(20)
    assert not closed_while_slow, \
        "a subscriber reading steadily was disconnected (after %d bytes)" % state["bytes"]
    assert state["marker"], "the slow reader never got the message after the flood"
    pub.bye()
    slow.close()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_connect_timeout(srv, api, witness, version, tls):
    only(version, V311)  # the CONNECT's own level decides
    for what in (b"", b"\x10\x20\x00\x04MQ"):  # nothing; a CONNECT begun, never finished
        start = time.time()  # TLS: the handshake counts in the time to CONNECT
        c = Raw(srv, version, tls)
        if what:
            c.send(what)
        assert c.drain_until_close(timeout=10, idle=10) and c.received == 0
        took = time.time() - start
        assert FIRST_MESSAGE_TIMEOUT * 0.8 <= took <= FIRST_MESSAGE_TIMEOUT + 5, took
        c.close()
