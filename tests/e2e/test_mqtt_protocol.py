"""The broker's behaviour as MQTT 3.1.1 and 5.0 describe it (SPEC §3.6,
docs/mqtt-conformance.md names the statements each test covers): keep
alive, wills, sessions and takeover, client identifiers, retained
messages, QoS of deliveries, subscriptions and their options, and the 5.0
features (topic aliases, shared subscriptions, subscription identifiers,
message expiry, properties passed through, flow control both ways)."""
import time

import pytest
import requests

from conftest import login, module_server, new_org_device, now_ms
from mqtt_util import (DISCONNECT, MQTT_ARGS, P_ASSIGNED_CLIENT_ID, P_AUTH_METHOD,
                       P_CONTENT_TYPE, P_CORRELATION_DATA, P_MAX_PACKET_SIZE, P_MAX_QOS,
                       P_MESSAGE_EXPIRY, P_PAYLOAD_FORMAT, P_REASON_STRING, P_RECEIVE_MAX,
                       P_REQUEST_PROBLEM_INFO, P_RESPONSE_INFO, P_RESPONSE_TOPIC,
                       P_RETAIN_AVAILABLE, P_SERVER_KEEP_ALIVE, P_SESSION_EXPIRY,
                       P_SHARED_AVAILABLE, P_SUB_ID, P_SUB_ID_AVAILABLE, P_TOPIC_ALIAS,
                       P_TOPIC_ALIAS_MAX, P_USER_PROPERTY, P_WILDCARD_AVAILABLE, P_WILL_DELAY,
                       PUBACK, PUBCOMP, PUBREC, PUBREL, RC_ALIAS_INVALID,
                       RC_CLIENT_ID_INVALID, RC_KEEP_ALIVE_TIMEOUT, RC_NOT_AUTHORIZED,
                       RC_PROTOCOL_ERROR, RC_RECEIVE_MAX_EXCEEDED, RC_SESSION_TAKEN_OVER, V5, V311,
                       Raw, ack, app_client, disconnect, new_key, publish, session_props,
                       subscribe)
from mqtt_util import version  # noqa: F401  (fixture)

srv = module_server(MQTT_ARGS)


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


@pytest.fixture
def key(api):
    """An API key of a new organisation that may read and write anywhere
    in its tree: each test has a tree of its own."""
    org, _ = new_org_device(api, prefix="mqtt")
    return new_key(api, org["id"])


def only(version, which):
    if version != which:
        pytest.skip("MQTT %s only" % ("5.0" if which == V5 else "3.1.1"))


def app(srv, key, version, **kw):
    return app_client(srv, key, version, **kw)


def fail_code(version):
    return 0x8F if version == V5 else 0x80


def cid(name):
    return "%s-%d" % (name, time.monotonic_ns())


# ---- connection -------------------------------------------------------------------------


def test_ping(srv, key, version):
    c = app(srv, key, version)
    for _ in range(3):
        c.ping()
    c.bye()


def test_keep_alive_timeout_publishes_will(srv, key, version):
    watcher = app(srv, key, version)
    assert watcher.subscribe(("will/#", 1)) == [1]
    # kept alive by its packets: pings every 0.4 s for 2.5 s with a keep alive of 1 s
    c = app(srv, key, version, keepalive=1)
    ka = c.connack.props.get(P_SERVER_KEEP_ALIVE, 1)
    assert ka == 1, "a keep alive of 1 s is within any sane bound"
    end = time.time() + 2.5
    while time.time() < end:
        c.ping()
        time.sleep(0.4)
    c.bye()
    # silent: closed after 1.5 x keep alive, and its will published
    c = Raw(srv, version)
    c.connect(username="apikey", password=key, keepalive=1,
              will={"topic": "will/ka", "payload": b"timed out", "qos": 1})
    start = time.time()
    got = c.closed(timeout=5)
    took = time.time() - start
    assert 1.4 <= took <= 6.0, took  # 1.5 x 1 s, with room for a busy machine
    if version == V5:
        assert [p.reason for p in got if p.type == DISCONNECT] == [RC_KEEP_ALIVE_TIMEOUT], got
    else:
        assert got == []
    m = watcher.message()
    assert (m.topic, m.payload) == ("will/ka", b"timed out")
    watcher.bye()


@pytest.mark.parametrize("retain", [False, True])
def test_will_on_abrupt_close(srv, key, version, retain):
    watcher = app(srv, key, version)
    assert watcher.subscribe(("will/#", 2)) == [2]
    c = Raw(srv, version)
    c.connect(username="apikey", password=key,
              will={"topic": "will/x", "payload": b"gone", "qos": 2, "retain": retain})
    c.close()  # no DISCONNECT: the network failed
    m = watcher.message()
    assert (m.topic, m.payload, m.qos, m.retain) == ("will/x", b"gone", 2, 0)
    watcher.bye()
    late = app(srv, key, version)
    assert late.subscribe(("will/#", 1)) == [1]
    if retain:
        m = late.message()
        assert (m.topic, m.payload, m.retain) == ("will/x", b"gone", 1)
    else:
        late.no_message(0.3)
    late.bye()


def test_disconnect_discards_will(srv, key, version):
    watcher = app(srv, key, version)
    assert watcher.subscribe(("will/#", 1)) == [1]
    c = Raw(srv, version)
    c.connect(username="apikey", password=key, will={"topic": "will/x", "payload": b"gone"})
    c.bye()  # DISCONNECT 0x00
    watcher.no_message(0.5)
    # no will at all: nothing either way
    c = app(srv, key, version)
    c.close()
    watcher.no_message(0.3)
    if version == V5:
        # 0x04: disconnect with will message
        c = Raw(srv, version)
        c.connect(username="apikey", password=key, will={"topic": "will/y", "payload": b"asked"})
        c.send(disconnect(V5, 0x04))
        c.closed()
        m = watcher.message()
        assert (m.topic, m.payload) == ("will/y", b"asked")
    watcher.bye()


def test_session_present_flag(srv, key, version):
    name = cid("sp")
    keep = dict(clean=False, properties=session_props(version))
    c = app(srv, key, version, client_id=name, **keep)
    assert c.connack.session_present == 0
    assert c.subscribe(("sp/#", 1)) == [1]
    c.bye()
    c = app(srv, key, version, client_id=name, **keep)
    assert c.connack.session_present == 1
    c.bye()
    # a clean start discards it, and a clean session ends with its connection
    c = app(srv, key, version, client_id=name, clean=True)
    assert c.connack.session_present == 0
    c.bye()
    c = app(srv, key, version, client_id=name, **keep)
    assert c.connack.session_present == 0
    pub = app(srv, key, version)
    pub.publish("sp/x", "1", qos=1)
    c.no_message(0.3)  # its old subscription went with the old session
    c.bye()
    pub.bye()


def test_session_takeover(srv, key, version):
    name = cid("to")
    a = app(srv, key, version, client_id=name)
    b = app(srv, key, version, client_id=name)
    got = a.closed()
    if version == V5:
        assert [p.reason for p in got if p.type == DISCONNECT] == [RC_SESSION_TAKEN_OVER], got
    else:
        assert got == []
    b.ping()
    b.bye()


def test_client_id_of_another_principal(srv, api, version):
    """Sessions are each client's own: a client of the same organisation
    that names another's client id gets none of its queued messages."""
    org, dev = new_org_device(api, prefix="mqtt")
    other = api.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "other"}).json()
    key = new_key(api, org["id"])
    keep = dict(clean=False, properties=session_props(version))
    d = Raw(srv, version)
    d.connect(client_id="sensor", password=dev["token"], **keep)
    assert d.subscribe(("devices/me/commands/#", 1)) == [1]
    d.bye()
    pub = app(srv, key, version)
    assert pub.publish("devices/%s/commands/x" % dev["id"], "for sensor", qos=1).ok
    pub.bye()
    o = Raw(srv, version)
    ca = o.connect(client_id="sensor", password=other["token"], expect_reason=None, **keep)
    if ca.reason == 0:
        assert ca.session_present == 0, "a client was given another's session"
        o.no_message(0.5)
        o.bye()
    else:
        assert o.closed() == []
    d = Raw(srv, version)
    d.connect(client_id="sensor", password=dev["token"], **keep)
    assert d.connack.session_present == 1
    assert d.message().payload == b"for sensor"
    d.bye()


def test_empty_client_id(srv, key, version):
    if version == V5:
        a = app(srv, key, version)
        b = app(srv, key, version, clean=False)
        ida = a.connack.props.get(P_ASSIGNED_CLIENT_ID)
        idb = b.connack.props.get(P_ASSIGNED_CLIENT_ID)
        assert ida and idb and ida != idb, (a.connack, b.connack)
        a.bye()
        b.bye()
        return
    a = app(srv, key, version, clean=True)
    a.ping()
    a.bye()
    c = Raw(srv, version)
    ca = c.connect(client_id="", clean=False, username="apikey", password=key, expect_reason=0x02)
    assert ca.session_present == 0
    assert c.closed() == []


def test_client_id_lengths(srv, key, version):
    for good in ("A1b2C3d4E5f6G7h8I9j0K1l", "é" * 64, "x"):
        c = app(srv, key, version, client_id=good)
        c.bye()
    c = Raw(srv, version)
    ca = c.connect(client_id="é" * 64 + "x", username="apikey", password=key, expect_reason=None)
    assert ca.reason == (RC_CLIENT_ID_INVALID if version == V5 else 0x02), ca
    assert c.closed() == []


# ---- retained messages -----------------------------------------------------------------------


def test_retained_messages(srv, key, version):
    pub = app(srv, key, version)
    old = app(srv, key, version)
    assert old.subscribe(("r/#", 2)) == [2]
    assert pub.publish("r/a", "1", qos=1, retain=True).ok
    pub.publish("r/b", "2", qos=0, retain=True)
    for _ in range(2):
        m = old.message()
        assert m.retain == 0, "an established subscription gets RETAIN 0 (3.1.1 MQTT-3.3.1-9)"
    new = app(srv, key, version)
    assert new.subscribe(("r/#", 2)) == [2]
    got = sorted((m.topic, m.payload, m.retain, m.qos) for m in (new.message(), new.message()))
    assert got == [("r/a", b"1", 1, 1), ("r/b", b"2", 1, 0)]
    # RETAIN 0 neither stores nor replaces
    assert pub.publish("r/a", "3", qos=1).ok
    assert old.message().payload == b"3"
    new.bye()
    new = app(srv, key, version)
    assert new.subscribe(("r/a", 1)) == [1]
    assert new.message().payload == b"1"
    new.no_message(0.3)
    # a retained message's replacement
    assert pub.publish("r/a", "4", qos=2, retain=True).ok
    assert old.message().payload == b"4"
    new.message()  # live, to the subscription just made
    newest = app(srv, key, version)
    assert newest.subscribe(("r/a", 1)) == [1]
    assert newest.message().payload == b"4"
    for c in (pub, old, new, newest):
        c.bye()


def test_retained_zero_length_clears(srv, key, version):
    pub = app(srv, key, version)
    assert pub.publish("z/x", "1", qos=1, retain=True).ok
    sub = app(srv, key, version)
    assert sub.subscribe(("z/#", 1)) == [1]
    assert sub.message().payload == b"1"
    assert pub.publish("z/x", "", qos=1, retain=True).ok
    m = sub.message()
    assert (m.topic, m.payload) == ("z/x", b"")  # delivered as usual
    late = app(srv, key, version)
    assert late.subscribe(("z/#", 1)) == [1]
    late.no_message(0.5)
    for c in (pub, sub, late):
        c.bye()


# ---- QoS and subscriptions ---------------------------------------------------------------------


def test_qos_downgraded_to_granted(srv, key, version):
    subs = {}
    for q in (0, 1, 2):
        subs[q] = app(srv, key, version)
        assert subs[q].subscribe(("q/#", q)) == [q]
    pub = app(srv, key, version)
    for pq in (0, 1, 2):
        pub.publish("q/%d" % pq, "p%d" % pq, qos=pq)
        for sq, s in subs.items():
            m = s.message()
            assert (m.topic, m.qos) == ("q/%d" % pq, min(pq, sq)), m
            assert m.dup == 0
    for c in list(subs.values()) + [pub]:
        c.bye()


def test_overlapping_subscriptions_one_copy(srv, key, version):
    c = app(srv, key, version)
    assert c.subscribe(("o/#", 0), ("o/+", 2), ("o/x", 1)) == [0, 2, 1]
    pub = app(srv, key, version)
    pub.publish("o/x", "once", qos=2)
    m = c.message()
    assert (m.payload, m.qos) == (b"once", 2)
    c.no_message(0.4)
    c.bye()
    pub.bye()


def test_subscribe_several_filters(srv, key, version):
    c = app(srv, key, version)
    codes = c.subscribe(("s/a", 0), ("s/b/#", 2), ("s/+/c", 1), ("$SYS/x", 1), ("s/c", 2))
    assert codes == [0, 2, 1, RC_NOT_AUTHORIZED if version == V5 else 0x80, 2]
    c.ping()
    c.bye()


@pytest.mark.parametrize("bad", ["a/#/b", "a/b#", "a+/b", "+a", "#/x", "a/++", ""])
def test_bad_filters_refused(srv, key, version, bad):
    # each on a connection of its own: refused in the SUBACK for that filter,
    # or (a malformed packet) with the connection
    c = app(srv, key, version)
    c.send(subscribe(version, 7, [(bad, 1), ("fine/+/#", 1)]))
    p = c.recv()
    if p is None:
        assert version == V311, "closed without a DISCONNECT"
        return
    if p.type == DISCONNECT:
        assert p.reason in (0x81, 0x82, 0x8F), p
        return
    assert p.packet_id == 7 and p.reasons == [fail_code(version), 1], p
    c.ping()
    c.bye()


def test_unsubscribe(srv, key, version):
    c = app(srv, key, version)
    assert c.subscribe(("u/#", 1), ("v/x", 1)) == [1, 1]
    pub = app(srv, key, version)
    pub.publish("u/a", "in flight", qos=1)
    inflight = c.message(ack_it=False)
    ua = c.unsubscribe("u/#", "nothing/here", "v/+")
    if version == V5:
        assert ua.reasons == [0, 0x11, 0x11], ua  # compared byte by byte: "u/+" was never a filter
    c.ack(inflight)  # a delivery begun is completed (MQTT-3.10.4-3)
    pub.publish("u/y", "gone", qos=1)
    pub.publish("v/x", "still", qos=1)
    m = c.message()
    assert (m.topic, m.payload) == ("v/x", b"still")
    c.no_message(0.3)
    ua = c.unsubscribe("never")
    if version == V5:
        assert ua.reasons == [0x11]
    c.bye()
    pub.bye()


def test_resubscribe_replaces(srv, key, version):
    pub = app(srv, key, version)
    assert pub.publish("rs/x", "kept", qos=1, retain=True).ok
    c = app(srv, key, version)
    assert c.subscribe(("rs/#", 0)) == [0]
    assert c.message().qos == 0
    assert c.subscribe(("rs/#", 2)) == [2]
    m = c.message()  # retained messages are sent again (3.1.1 MQTT-3.8.4-3; 5.0 Retain Handling 0)
    assert (m.payload, m.retain, m.qos) == (b"kept", 1, 1)
    pub.publish("rs/y", "live", qos=2)
    m = c.message()
    assert (m.payload, m.qos) == (b"live", 2)
    c.no_message(0.3)  # one subscription, replaced, not two
    c.bye()
    pub.bye()


def test_dup_not_forwarded(srv, key, version):
    c = app(srv, key, version)
    assert c.subscribe(("dup/#", 1)) == [1]
    pub = app(srv, key, version)
    pub.send(publish(version, "dup/x", "1", qos=1, dup=True, packet_id=3))
    assert pub.expect(PUBACK).packet_id == 3
    assert c.message().dup == 0
    c.bye()
    pub.bye()


def test_pubrel_unknown_id(srv, key, version):
    c = app(srv, key, version)
    c.send(ack(PUBREL, version, 4242))
    comp = c.expect(PUBCOMP)
    assert comp.packet_id == 4242
    if version == V5:
        assert comp.reason == 0x92
    c.ping()
    c.bye()


def test_order_kept(srv, key, version):
    c = app(srv, key, version)
    assert c.subscribe(("ord/#", 2)) == [2]
    pub = app(srv, key, version)
    n = 50
    for i in range(n):
        pub.send(publish(version, "ord/one", str(i), qos=1, packet_id=i + 1))
    for i in range(n):
        assert pub.expect(PUBACK).packet_id == i + 1
    got = [int(c.message().payload) for _ in range(n)]
    assert got == list(range(n))
    for i in range(10):
        pub.publish("ord/two", str(i), qos=2)
    assert [int(c.message().payload) for _ in range(10)] == list(range(10))
    c.bye()
    pub.bye()


def test_topic_bytes_kept(srv, key, version):
    c = app(srv, key, version)
    bom = "bom/\ufeffx"
    assert c.subscribe((bom, 1), ("Case/X", 1), ("e//y", 1), ("t/", 1)) == [1, 1, 1, 1]
    pub = app(srv, key, version)
    for t in ("bom/x", "case/x", "e/y", "t", bom, "Case/X", "e//y", "t/"):
        pub.publish(t, t, qos=1)
    got = [c.message().topic for _ in range(4)]
    assert got == [bom, "Case/X", "e//y", "t/"]
    c.no_message(0.3)
    c.bye()
    pub.bye()


# ---- MQTT 5.0 --------------------------------------------------------------------------------------


def test_server_capabilities_in_connack(srv, key, version):
    only(version, V5)
    c = app(srv, key, version)
    pr = c.connack.props
    assert pr.get(P_MAX_PACKET_SIZE) == 256 * 1024, pr
    assert P_MAX_QOS not in pr, "QoS 2 is served: no Maximum QoS"
    for cap in (P_RETAIN_AVAILABLE, P_WILDCARD_AVAILABLE, P_SUB_ID_AVAILABLE, P_SHARED_AVAILABLE):
        assert pr.get(cap, 1) == 1, (cap, pr)
    assert P_RESPONSE_INFO not in pr and P_AUTH_METHOD not in pr, pr
    c.bye()


def test_request_problem_information(srv, api, version):
    only(version, V5)
    org, dev = new_org_device(api, prefix="mqtt")
    c = Raw(srv, V5)
    c.connect(password=dev["token"], properties=[(P_REQUEST_PROBLEM_INFO, 0)])
    a = c.publish("readings/%s" % dev["id"], "x", qos=1)
    assert a.reason == RC_NOT_AUTHORIZED
    assert P_REASON_STRING not in a.props and P_USER_PROPERTY not in a.props, a
    codes = c.subscribe(("#", 1))
    assert codes == [RC_NOT_AUTHORIZED]
    c.bye()


def test_topic_alias(srv, key, version):
    only(version, V5)
    sub = Raw(srv, V5)
    sub.connect(username="apikey", password=key, properties=[(P_TOPIC_ALIAS_MAX, 3)])
    assert sub.subscribe(("al/#", 1)) == [1]
    plain = app(srv, key, version)  # gave no Topic Alias Maximum: gets no aliases
    assert plain.subscribe(("al/#", 1)) == [1]
    pub = app(srv, key, version)
    amax = pub.connack.props.get(P_TOPIC_ALIAS_MAX, 0)
    assert amax >= 1, "topic aliases are served: %r" % pub.connack
    assert pub.publish("al/x", "1", qos=1, properties=[(P_TOPIC_ALIAS, 1)]).reason in (0, 0x10)
    assert pub.publish("", "2", qos=1, properties=[(P_TOPIC_ALIAS, 1)]).reason in (0, 0x10)
    assert pub.publish("al/y", "3", qos=1, properties=[(P_TOPIC_ALIAS, 1)]).reason in (0, 0x10)
    assert pub.publish("", "4", qos=1, properties=[(P_TOPIC_ALIAS, 1)]).reason in (0, 0x10)
    for c in (plain, sub):
        aliases = {}
        seen = []
        for _ in range(4):
            m = c.message()
            a = m.props.get(P_TOPIC_ALIAS)
            if c is plain:
                assert a is None, m
            elif a is not None:
                assert 1 <= a <= 3, m
                if m.topic:
                    aliases[a] = m.topic
                m.topic = m.topic or aliases[a]
            seen.append((m.topic, m.payload))
        assert seen == [("al/x", b"1"), ("al/x", b"2"), ("al/y", b"3"), ("al/y", b"4")], seen
    # an alias of 0, one above the maximum, or an unknown one with no topic
    for bad, reasons in ((0, (RC_ALIAS_INVALID, RC_PROTOCOL_ERROR)), (amax + 1, (RC_ALIAS_INVALID,))):
        c = app(srv, key, version)
        c.send(publish(V5, "al/z", "x", qos=1, packet_id=1, properties=[(P_TOPIC_ALIAS, bad)]))
        assert c.disconnect_reason() in reasons
    c = app(srv, key, version)  # aliases do not outlive their connection
    c.send(publish(V5, "", "x", qos=1, packet_id=1, properties=[(P_TOPIC_ALIAS, 1)]))
    assert c.disconnect_reason() == RC_PROTOCOL_ERROR
    for c in (sub, plain, pub):
        c.bye()


def test_shared_subscription(srv, key, version):
    only(version, V5)
    a = app(srv, key, version)
    b = app(srv, key, version)
    everyone = app(srv, key, version)
    assert a.subscribe(("$share/g/sh/#", 0)) == [0]
    assert b.subscribe(("$share/g/sh/#", 1)) == [1]
    assert everyone.subscribe(("sh/#", 1)) == [1]
    pub = app(srv, key, version)
    n = 10
    for i in range(n):
        assert pub.publish("sh/x", str(i), qos=1).ok
    assert sorted(int(everyone.message().payload) for _ in range(n)) == list(range(n))
    got = {}
    for member, q in ((a, 0), (b, 1)):
        while True:
            try:
                m = member.message(timeout=0.5)
            except AssertionError:
                break
            assert m.qos == q, m  # each member at its own granted QoS
            got[int(m.payload)] = got.get(int(m.payload), 0) + 1
    assert got == {i: 1 for i in range(n)}, "each message to one member of the group: %r" % got
    for name in ("$share//x", "$share/g", "$share/g+/x", "$share/g/"):
        bad = app(srv, key, version)
        bad.send(subscribe(V5, 8, [(name, 1)]))
        p = bad.recv()
        assert p is not None, name
        if p.type == DISCONNECT:
            assert p.reason in (0x81, 0x82, 0x8F), (name, p)
        else:
            assert p.reasons == [0x8F], (name, p)
            bad.bye()
    bad = app(srv, key, version)
    # No Local on a shared subscription is a Protocol Error (MQTT-3.8.3-4)
    bad.send(subscribe(V5, 9, [("$share/g/nl", 0x05)]))
    assert bad.disconnect_reason() == RC_PROTOCOL_ERROR
    for c in (a, b, everyone, pub):
        c.bye()


def test_no_local(srv, key, version):
    only(version, V5)
    c = app(srv, key, version)
    assert c.subscribe(("nl/#", 0x04 | 1)) == [1]
    assert c.publish("nl/x", "mine", qos=1).reason in (0, 0x10)
    other = app(srv, key, version)
    other.publish("nl/x", "theirs", qos=1)
    m = c.message()
    assert m.payload == b"theirs"
    c.no_message(0.3)
    c.bye()
    other.bye()


def test_retain_as_published(srv, key, version):
    only(version, V5)
    rap = app(srv, key, version)
    plain = app(srv, key, version)
    assert rap.subscribe(("rap/#", 0x08 | 1)) == [1]
    assert plain.subscribe(("rap/#", 1)) == [1]
    pub = app(srv, key, version)
    pub.publish("rap/x", "r", qos=1, retain=True)
    assert rap.message().retain == 1
    assert plain.message().retain == 0
    for c in (rap, plain, pub):
        c.bye()


def test_retain_handling(srv, key, version):
    only(version, V5)
    pub = app(srv, key, version)
    assert pub.publish("rh/x", "kept", qos=1, retain=True).ok
    c = app(srv, key, version)
    assert c.subscribe(("rh/x", 0x00 | 1)) == [1]       # 0: sent
    assert c.message().payload == b"kept"
    assert c.subscribe(("rh/x", 0x10 | 1)) == [1]       # 1: the subscription existed: not sent
    c.no_message(0.3)
    assert c.subscribe(("rh/+", 0x10 | 1)) == [1]       # 1, new: sent
    assert c.message().payload == b"kept"
    assert c.subscribe(("rh/#", 0x20 | 1)) == [1]       # 2: never sent
    c.no_message(0.3)
    c.bye()
    pub.bye()


def test_subscription_identifiers(srv, key, version):
    only(version, V5)
    c = app(srv, key, version)
    assert c.subscribe(("si/#", 1), properties=[(P_SUB_ID, 5)]) == [1]
    assert c.subscribe(("si/x", 1), properties=[(P_SUB_ID, 268435455)]) == [1]
    assert c.subscribe(("si/+/z", 1)) == [1]
    pub = app(srv, key, version)
    pub.publish("si/x", "both", qos=1)
    m = c.message()
    assert sorted(m.props.get(P_SUB_ID, [])) == [5, 268435455], m
    c.no_message(0.3)  # one copy carries both
    pub.publish("si/y", "one", qos=1)
    assert c.message().props.get(P_SUB_ID) == [5]
    pub.publish("si/a/z", "two filters, one with an id", qos=1)
    assert c.message().props.get(P_SUB_ID) == [5]
    c.bye()
    pub.bye()


def test_message_expiry(srv, key, version):
    only(version, V5)
    name = cid("ex")
    keep = dict(clean=False, properties=session_props(V5))
    k = app(srv, key, version, client_id=name, **keep)
    assert k.subscribe(("ex/#", 1)) == [1]
    k.bye()
    pub = app(srv, key, version)
    assert pub.publish("ex/short", "1", qos=1, properties=[(P_MESSAGE_EXPIRY, 1)]).ok
    assert pub.publish("ex/long", "2", qos=1, properties=[(P_MESSAGE_EXPIRY, 100)]).ok
    assert pub.publish("ex/ret", "3", qos=1, retain=True, properties=[(P_MESSAGE_EXPIRY, 1)]).ok
    time.sleep(2.2)
    k = app(srv, key, version, client_id=name, **keep)
    m = k.message()
    assert (m.topic, m.payload) == ("ex/long", b"2"), m
    assert 90 <= m.props.get(P_MESSAGE_EXPIRY, 0) <= 98, m  # what is left of it
    k.no_message(0.3)
    late = app(srv, key, version)
    assert late.subscribe(("ex/ret", 1)) == [1]
    late.no_message(0.3)  # an expired retained message is gone
    for c in (k, pub, late):
        c.bye()


def test_properties_passed_through(srv, key, version):
    only(version, V5)
    c = app(srv, key, version)
    assert c.subscribe(("pp/#", 1)) == [1]
    users = [(P_USER_PROPERTY, ("a", "1")), (P_USER_PROPERTY, ("b", "2")), (P_USER_PROPERTY, ("a", "3"))]
    pr = [(P_PAYLOAD_FORMAT, 1), (P_CONTENT_TYPE, "application/json"), (P_RESPONSE_TOPIC, "pp/resp"),
          (P_CORRELATION_DATA, b"\x00\x01\xff")] + users
    pub = app(srv, key, version)
    pub.publish("pp/req", "{}", qos=1, properties=pr)
    m = c.message()
    assert m.props[P_PAYLOAD_FORMAT] == 1 and m.props[P_CONTENT_TYPE] == "application/json"
    assert m.props[P_RESPONSE_TOPIC] == "pp/resp" and m.props[P_CORRELATION_DATA] == b"\x00\x01\xff"
    assert m.props[P_USER_PROPERTY] == [("a", "1"), ("b", "2"), ("a", "3")]
    # a will's user properties too, in order
    w = Raw(srv, V5)
    w.connect(username="apikey", password=key,
              will={"topic": "pp/will", "payload": b"w", "props": users + [(P_CONTENT_TYPE, "text/plain")]})
    w.close()
    m = c.message()
    assert m.topic == "pp/will" and m.props[P_USER_PROPERTY] == [("a", "1"), ("b", "2"), ("a", "3")]
    assert m.props[P_CONTENT_TYPE] == "text/plain"
    c.bye()
    pub.bye()


def test_client_maximum_packet_size_respected(srv, key, version):
    only(version, V5)
    small = Raw(srv, V5)
    small.connect(username="apikey", password=key, properties=[(P_MAX_PACKET_SIZE, 200)])
    assert small.subscribe(("mps/#", 1)) == [1]
    pub = app(srv, key, version)
    for i in range(30):  # more than any in-flight window: a dropped one must not hold a slot
        pub.publish("mps/big", "x" * 1000, qos=1)
    pub.publish("mps/small", "fits", qos=1)
    m = small.message()
    assert (m.topic, m.payload) == ("mps/small", b"fits")
    assert len(m.raw) <= 200
    small.no_message(0.3)
    small.bye()
    pub.bye()


def test_receive_maximum_respected(srv, key, version):
    only(version, V5)
    c = Raw(srv, V5)
    c.connect(username="apikey", password=key, properties=[(P_RECEIVE_MAX, 2)])
    assert c.subscribe(("rm/#", 2)) == [2]
    pub = app(srv, key, version)
    for i in range(6):
        pub.publish("rm/x", str(i), qos=1 + i % 2)
    first = [c.message(ack_it=False) for _ in range(2)]
    assert first[0].packet_id != first[1].packet_id
    c.no_message(0.4)  # the window is full
    c.ping()           # other packets still flow
    c.ack(first[0])
    third = c.message(ack_it=False)
    assert third.packet_id != first[1].packet_id
    c.no_message(0.3)
    c.ack(first[1])
    c.ack(third)
    rest = [c.message() for _ in range(3)]
    assert [int(m.payload) for m in first + [third] + rest] == list(range(6))
    c.bye()
    pub.bye()


def test_receive_maximum_exceeded(srv, key, version):
    only(version, V5)
    c = app(srv, key, version)
    rmax = c.connack.props.get(P_RECEIVE_MAX, 65535)
    if rmax > 1000:
        pytest.skip("a Receive Maximum of %d is too many to exceed here" % rmax)
    for i in range(rmax):
        c.send(publish(V5, "rx/x", "1", qos=2, packet_id=i + 1))
        assert c.expect(PUBREC).packet_id == i + 1
    c.send(publish(V5, "rx/x", "1", qos=2, packet_id=rmax + 1))
    assert c.disconnect_reason() == RC_RECEIVE_MAX_EXCEEDED


def test_will_delay(srv, key, version):
    only(version, V5)
    watcher = app(srv, key, version)
    assert watcher.subscribe(("wd/#", 1)) == [1]
    name = cid("wd")
    will = {"topic": "wd/x", "payload": b"late", "props": [(P_WILL_DELAY, 3)]}
    keep = [(P_SESSION_EXPIRY, 60)]
    c = Raw(srv, V5)
    c.connect(client_id=name, clean=False, username="apikey", password=key, will=will, properties=keep)
    c.close()
    time.sleep(0.3)
    # back within the delay: no will (MQTT-3.1.3-9)
    c = Raw(srv, V5)
    c.connect(client_id=name, clean=False, username="apikey", password=key, will=will, properties=keep)
    watcher.no_message(3.5)
    c.close()
    start = time.time()
    m = watcher.message(timeout=10)
    assert m.payload == b"late" and time.time() - start >= 2.5
    watcher.bye()


def test_session_expiry(srv, key, version):
    only(version, V5)
    name = cid("se")
    c = Raw(srv, V5)
    c.connect(client_id=name, clean=False, username="apikey", password=key,
              properties=[(P_SESSION_EXPIRY, 2)])
    assert c.subscribe(("se/#", 1)) == [1]
    c.bye()
    c = Raw(srv, V5)
    c.connect(client_id=name, clean=False, username="apikey", password=key,
              properties=[(P_SESSION_EXPIRY, 2)])
    assert c.connack.session_present == 1
    c.bye()
    time.sleep(3.5)
    c = Raw(srv, V5)
    c.connect(client_id=name, clean=False, username="apikey", password=key,
              properties=[(P_SESSION_EXPIRY, 2)])
    assert c.connack.session_present == 0, "the session outlived its expiry"
    c.bye()


def test_failure_ack_ends_delivery(srv, key, version):
    only(version, V5)
    name = cid("fa")
    keep = dict(clean=False, properties=session_props(V5))
    k = app(srv, key, version, client_id=name, **keep)
    assert k.subscribe(("fa/#", 1)) == [1]
    pub = app(srv, key, version)
    pub.publish("fa/x", "refused", qos=1)
    m = k.message(ack_it=False)
    k.send(ack(PUBACK, V5, m.packet_id, reason=0x80))
    k.ping()
    k.close()
    k = app(srv, key, version, client_id=name, **keep)
    k.no_message(0.5)  # acknowledged, if with a failure: not sent again (MQTT-4.4.0-2)
    k.bye()
    pub.bye()


def test_session_expiry_and_keep_alive_capped(srv, key, version):
    only(version, V5)
    c = Raw(srv, V5)
    c.connect(username="apikey", password=key, keepalive=0, clean=False,
              client_id=cid("cap"), properties=[(P_SESSION_EXPIRY, 0xFFFFFFFF)])
    pr = c.connack.props
    assert pr.get(P_SESSION_EXPIRY) == 7 * 24 * 3600, pr  # never is capped at 7 days, and said so
    assert pr.get(P_SERVER_KEEP_ALIVE) == 3600, pr         # none is given 1 h
    c.bye()
    c = Raw(srv, V5)
    c.connect(username="apikey", password=key, keepalive=30, properties=[(P_SESSION_EXPIRY, 60)])
    assert P_SERVER_KEEP_ALIVE not in c.connack.props and P_SESSION_EXPIRY not in c.connack.props
    c.bye()


def test_qos2_publish_routed_once(srv, key, version):
    sub = app(srv, key, version)
    assert sub.subscribe(("once/#", 2)) == [2]
    name = cid("q2pub")
    keep = dict(clean=False, properties=session_props(version))
    pub = app(srv, key, version, client_id=name, **keep)
    pub.send(publish(version, "once/x", "1", qos=2, packet_id=5))
    assert pub.expect(PUBREC).packet_id == 5
    # resent before PUBREL: answered again, not routed again (MQTT-4.3.3-10)
    pub.send(publish(version, "once/x", "1", qos=2, packet_id=5, dup=True))
    assert pub.expect(PUBREC).packet_id == 5
    # and across a reconnect of the publisher's session
    pub.close()
    pub = app(srv, key, version, client_id=name, **keep)
    assert pub.connack.session_present == 1
    pub.send(publish(version, "once/x", "1", qos=2, packet_id=5, dup=True))
    assert pub.expect(PUBREC).packet_id == 5
    pub.send(ack(PUBREL, version, 5))
    comp = pub.expect(PUBCOMP)
    assert comp.packet_id == 5 and comp.reason == 0
    m = sub.message()
    assert (m.topic, m.payload) == ("once/x", b"1")
    sub.no_message(0.5)
    sub.bye()
    pub.bye()


def test_resent_in_order_after_reconnect(srv, key, version):
    name = cid("order")
    keep = dict(clean=False, properties=session_props(version) if version == V311 else
                [(P_SESSION_EXPIRY, 3600), (P_RECEIVE_MAX, 2)])
    k = app(srv, key, version, client_id=name, **keep)
    assert k.subscribe(("ro/#", 1)) == [1]
    pub = app(srv, key, version)
    for i in range(5):
        assert pub.publish("ro/x", str(i), qos=1).ok
    inflight = [k.message(ack_it=False) for _ in range(2 if version == V5 else 5)]
    k.close()
    k = app(srv, key, version, client_id=name, **keep)
    got = []
    for _ in range(5):
        m = k.message()
        got.append((int(m.payload), m.dup))
    assert [n for n, _ in got] == list(range(5)), got
    assert [d for _, d in got] == [1] * len(inflight) + [0] * (5 - len(inflight)), got
    k.no_message(0.3)
    k.bye()
    pub.bye()


def test_readings_queued_for_an_absent_session(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    name = cid("rq")
    keep = dict(clean=False, properties=session_props(version))
    k = app(srv, key, version, client_id=name, **keep)
    assert k.subscribe(("readings/#", 1)) == [1]
    k.bye()
    r = requests.post(srv.http + "/api/v1/data", data="a=1 %d" % (now_ms() - 1000), timeout=10,
                      headers={"X-Auth-Token": dev["token"], "Content-Type": "text/plain"})
    assert r.status_code == 200
    k = app(srv, key, version, client_id=name, **keep)
    m = k.message()
    assert m.topic == "readings/%s" % dev["id"] and m.qos == 1
    k.bye()


def test_shared_subscription_no_retained_prefers_online(srv, key, version):
    only(version, V5)
    pub = app(srv, key, version)
    assert pub.publish("sr/x", "kept", qos=1, retain=True).ok
    online = app(srv, key, version)
    # retained messages are not sent for a shared subscription (5.0 §4.8.2)
    assert online.subscribe(("$share/g/sr/#", 1)) == [1]
    online.no_message(0.4)
    name = cid("away")
    away = app(srv, key, version, client_id=name, clean=False, properties=session_props(V5))
    assert away.subscribe(("$share/g/sr/#", 1)) == [1]
    away.no_message(0.2)
    away.bye()
    # a member whose session is away is passed over while another is online
    for i in range(4):
        assert pub.publish("sr/y", str(i), qos=1).ok
    assert sorted(int(online.message().payload) for _ in range(4)) == [0, 1, 2, 3]
    away = app(srv, key, version, client_id=name, clean=False, properties=session_props(V5))
    away.no_message(0.4)
    for c in (pub, online, away):
        c.bye()


def test_will_sent_when_session_ends_first(srv, key, version):
    only(version, V5)
    watcher = app(srv, key, version)
    assert watcher.subscribe(("we/#", 1)) == [1]
    c = Raw(srv, V5)
    c.connect(client_id=cid("we"), clean=True, username="apikey", password=key,
              properties=[(P_SESSION_EXPIRY, 1)],
              will={"topic": "we/x", "payload": b"session over", "props": [(P_WILL_DELAY, 60)]})
    c.close()
    start = time.time()
    # the delay is 60 s, the session 1 s: the will goes when the session ends
    m = watcher.message(timeout=10)
    assert m.payload == b"session over" and time.time() - start >= 0.8
    watcher.bye()
