"""Who may connect, and where each client may publish and subscribe (SPEC
§3.6, docs/mqtt.md): device tokens and API keys, each organisation's own
topic tree (another org's client sees nothing and cannot publish into
it), refusals in each version's terms, broker topics, and revocation
disconnecting at once."""
import json
import time

import pytest

from conftest import login, module_server, new_org_device, now_ms
from mqtt_util import (CONNACK, MQTT_ARGS, P_AUTH_METHOD, PUBACK, RC311_NOT_AUTHORIZED,
                       RC_ADMINISTRATIVE, RC_BAD_AUTH_METHOD, RC_NOT_AUTHORIZED, V5, Raw,
                       app_client, connect, device_client, new_key, publish, readings)
from mqtt_util import tls, version  # noqa: F401  (fixtures)

srv = module_server(MQTT_ARGS)


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


def not_authorized(version):
    return RC_NOT_AUTHORIZED if version == V5 else RC311_NOT_AUTHORIZED


def refused_connect(srv, version, tls=False, **kw):
    """Connects with kw; asserts CONNACK "not authorized", Session Present 0,
    then the close."""
    c = Raw(srv, version, tls)
    ca = c.connect(expect_reason=None, **kw)
    assert ca.reason == not_authorized(version), ca
    assert ca.session_present == 0
    assert c.closed() == []
    return ca


def test_bad_credentials_refused(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    refused_connect(srv, version, password="ssd_" + "0" * 64)
    refused_connect(srv, version, password=dev["token"][:-1])
    refused_connect(srv, version, username="device", password=None)        # no password at all
    refused_connect(srv, version, username="apikey", password=dev["token"])  # a token is not a key
    refused_connect(srv, version, username="device", password=key)         # a key needs "apikey"
    refused_connect(srv, version, username="apikey", password=key[:-2])
    # a refused CONNECT: nothing after it is processed (MQTT-3.1.4-5/-6)
    c = Raw(srv, version)
    c.send(connect(version, username="d", password="ssd_nope") +
           publish(version, "devices/%s/data" % dev["id"], "x=1", qos=1, packet_id=1))
    ca = c.expect(CONNACK)
    assert ca.reason == not_authorized(version)
    assert c.closed() == []
    assert readings(api, dev, "x") == []


def test_username_apikey_connects(srv, api, version, tls):
    org, dev = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    c = app_client(srv, key, version, tls, client_id="dashboard")
    assert c.subscribe(("readings/%s" % dev["id"], 1)) == [1]
    # a data:write key publishes readings as any device of its org
    ts = now_ms() - 5000
    assert c.publish("devices/%s/data" % dev["id"], "k=1 %d" % ts, qos=1).ok
    assert readings(api, dev, "k") == [[ts, 1]]
    m = c.message()
    assert json.loads(m.payload) == {"ts": ts, "values": {"k": 1}}
    c.bye()


def test_password_without_username(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    c = Raw(srv, version)
    if version == V5:
        # 5.0 allows it, and the token is all a device needs
        c.connect(username=None, password=dev["token"])
        assert c.publish("devices/me/data", "p=1", qos=1).ok
        c.bye()
    else:
        # 3.1.1: a password flag without the user name flag is malformed (MQTT-3.1.2-22)
        c.send(connect(version, username=None, password=dev["token"]))
        assert c.closed() == []


def test_same_client_id_in_two_orgs(srv, api, version):
    _, dev_a = new_org_device(api, prefix="mqtt")
    _, dev_b = new_org_device(api, prefix="mqtt")
    a = device_client(srv, dev_a, version, client_id="sensor", clean=True)
    b = device_client(srv, dev_b, version, client_id="sensor", clean=True)
    # two sessions: neither takes the other over
    assert a.still_open(0.3) and b.still_open(0.1)
    a.ping()
    b.ping()
    a.bye()
    b.bye()


def test_other_org_sees_nothing(srv, api, version, tls):
    org_a, dev_a = new_org_device(api, prefix="mqtt")
    org_b, dev_b = new_org_device(api, prefix="mqtt")
    watcher = app_client(srv, new_key(api, org_a["id"]), version, tls)
    codes = watcher.subscribe(("#", 1), ("readings/#", 1), ("devices/+/data", 1),
                              ("devices/%s/#" % dev_b["id"], 1))
    assert codes[:3] == [1, 1, 1], codes  # the last names a device A does not have: either way
    b_app = app_client(srv, new_key(api, org_b["id"]), version, tls)
    b_dev = device_client(srv, dev_b, version, tls)
    assert b_dev.publish("devices/me/data", "b=1", qos=1).ok
    assert b_dev.publish("devices/me/status", "up", qos=1, retain=True).ok
    assert b_app.publish("site/alarm", "fire", qos=1, retain=True).ok
    assert b_app.publish("devices/%s/commands/x" % dev_b["id"], "go", qos=2).ok
    watcher.no_message(0.5)
    # nor any of org B's retained messages for a new subscription of org A
    late = app_client(srv, new_key(api, org_a["id"]), version, tls)
    assert late.subscribe(("#", 1), ("site/alarm", 1)) == [1, 1]
    late.no_message(0.5)
    # org B's own app sees them, under the same names
    b_late = app_client(srv, new_key(api, org_b["id"]), version, tls)
    assert b_late.subscribe(("site/alarm", 1)) == [1]
    assert b_late.message().payload == b"fire"
    for c in (watcher, late, b_app, b_dev, b_late):
        c.bye()


def test_other_org_cannot_publish_into_tree(srv, api, version, tls):
    org_a, dev_a = new_org_device(api, prefix="mqtt")
    org_b, dev_b = new_org_device(api, prefix="mqtt")
    watcher = app_client(srv, new_key(api, org_a["id"]), version, tls)
    assert watcher.subscribe(("#", 1)) == [1]
    ts = now_ms() - 5000
    # B's device names A's device in a topic: forbidden
    intruder = device_client(srv, dev_b, version, tls)
    topic = "devices/%s/data" % dev_a["id"]
    if version == V5:
        assert intruder.publish(topic, "x=1 %d" % ts, qos=1).reason == RC_NOT_AUTHORIZED
        intruder.bye()
    else:
        intruder.send(publish(version, topic, "x=1 %d" % ts, qos=1, packet_id=3))
        assert intruder.closed() == []
    # B's key that may write in B's tree: A's device is not in it
    b_app = app_client(srv, new_key(api, org_b["id"]), version, tls)
    b_app.send(publish(version, topic, "x=2 %d" % ts, qos=1, packet_id=4))
    got = b_app.recv()
    if got is not None:
        assert got.type == PUBACK and got.packet_id == 4, got
        assert version == V5 and got.reason >= 0x80, got
    b_app.bye()
    watcher.no_message(0.5)
    assert readings(api, dev_a, "x") == []
    watcher.bye()


def test_forbidden_publish(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    other = api.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "other"}).json()
    reader = new_key(api, org["id"], ["data:read"])
    cases = [
        (dev, "device", "readings/%s" % dev["id"]),              # nobody publishes there
        (dev, "device", "devices/%s/data" % other["id"]),        # another device, same org
        (dev, "device", "devices/%s/commands/x" % other["id"]),
        (dev, "device", "site/alarm"),                           # outside devices/<its id>/
        (reader, "apikey", "site/alarm"),                        # data:read only
        (reader, "apikey", "devices/%s/data" % dev["id"]),
    ]
    watcher = app_client(srv, new_key(api, org["id"]), version)
    assert watcher.subscribe(("#", 1)) == [1]
    for who, user, topic in cases:
        c = Raw(srv, version)
        c.connect(username=user, password=who if isinstance(who, str) else who["token"])
        if version == V5:
            for qos in (1, 2):
                a = c.publish(topic, "v=1", qos=qos)
                assert a.reason == RC_NOT_AUTHORIZED, (topic, a)
            c.ping()
            c.bye()
        else:
            c.send(publish(version, topic, "v=1", qos=1, packet_id=2))
            assert c.closed() == [], topic
    watcher.no_message(0.5)
    assert readings(api, other, "v") == [] and readings(api, dev, "v") == []
    watcher.bye()


def test_forbidden_subscribe(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    other = api.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "other"}).json()
    fail = RC_NOT_AUTHORIZED if version == V5 else 0x80
    c = device_client(srv, dev, version)
    codes = c.subscribe(("devices/me/#", 1), ("#", 1), ("devices/+/data", 1),
                        ("devices/%s/#" % other["id"], 2), ("readings/#", 0), ("site/+", 1),
                        ("devices/%s/commands/#" % dev["id"], 2))
    assert codes == [1, fail, fail, fail, fail, fail, 2]
    c.ping()  # a refused filter does not end the connection
    # the one granted still works
    app = app_client(srv, new_key(api, org["id"]), version)
    assert app.publish("devices/%s/commands/a" % dev["id"], "x", qos=1).ok
    assert c.message().payload == b"x"
    app.bye()
    c.bye()
    # a key without data:read subscribes to nothing
    writer = app_client(srv, new_key(api, org["id"], ["data:write"]), version)
    assert writer.subscribe(("readings/#", 1), ("#", 0)) == [fail, fail]
    writer.bye()


def test_sys_topics_refused(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    fail = RC_NOT_AUTHORIZED if version == V5 else 0x80
    app = app_client(srv, new_key(api, org["id"], ["data:read", "data:write", "manage"]), version)
    assert app.subscribe(("$SYS/#", 0), ("$SYS/broker/clients", 1), ("#", 1)) == [fail, fail, 1]
    if version == V5:
        assert app.publish("$SYS/broker/x", "1", qos=1).reason == RC_NOT_AUTHORIZED
        app.no_message(0.3)
        app.bye()
    else:
        app.send(publish(version, "$SYS/broker/x", "1", qos=1, packet_id=3))
        assert app.closed() == []


def wait_closed(c, version, timeout=5):
    """The connection ends within timeout: 5.0 with DISCONNECT 0x98."""
    start = time.time()
    reason = c.disconnect_reason(timeout)
    assert time.time() - start < timeout
    if version == V5:
        assert reason == RC_ADMINISTRATIVE, reason
    else:
        assert reason is None


def test_rotate_token_disconnects(srv, api, version, tls):
    org, dev = new_org_device(api, prefix="mqtt")
    c = device_client(srv, dev, version, tls, client_id="rot", clean=False,
                      properties=[(0x11, 3600)] if version == V5 else None)
    assert c.subscribe(("devices/me/commands/#", 1)) == [1]
    r = api.post("/api/v1/devices/%s/token" % dev["id"])
    assert r.status_code == 200, r.text
    wait_closed(c, version)
    refused_connect(srv, version, tls, password=dev["token"])
    fresh = dict(dev, token=r.json()["token"])
    c = device_client(srv, fresh, version, tls, client_id="rot", clean=False,
                      properties=[(0x11, 3600)] if version == V5 else None)
    assert c.publish("devices/me/data", "r=1", qos=1).ok
    c.bye()


def test_disabled_device_disconnected(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    c = device_client(srv, dev, version)
    assert api.patch("/api/v1/devices/%s" % dev["id"], json={"disabled": True}).status_code == 200
    wait_closed(c, version)
    refused_connect(srv, version, password=dev["token"])


def test_revoked_key_disconnects(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    r = api.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "k", "scopes": ["data:read"]})
    key = r.json()
    c = app_client(srv, key["key"], version)
    assert c.subscribe(("readings/#", 1)) == [1]
    assert api.delete("/api/v1/apikeys/%s" % key["id"]).status_code == 204
    wait_closed(c, version)
    refused_connect(srv, version, username="apikey", password=key["key"])


def test_authentication_method_refused(srv, api):
    org, dev = new_org_device(api, prefix="mqtt")
    c = Raw(srv, V5)
    ca = c.connect(password=dev["token"], properties=[(P_AUTH_METHOD, "SCRAM-SHA-1")],
                   expect_reason=None)
    assert ca.reason == RC_BAD_AUTH_METHOD, ca
    assert c.closed() == []


def test_deleted_device_disconnects(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    c = device_client(srv, dev, version)
    assert api.delete("/api/v1/devices/%s" % dev["id"]).status_code == 204
    wait_closed(c, version)
    refused_connect(srv, version, password=dev["token"])


def test_deleted_org_disconnects_devices_and_keys(srv, api, version):
    """The org's end ends every client of it, devices and keys alike (the
    issue: "org deleted disconnects the affected clients at once")."""
    org, dev = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    d = device_client(srv, dev, version)
    k = app_client(srv, key, version)
    assert k.subscribe(("#", 1)) == [1]
    assert api.delete("/api/v1/orgs/%s" % org["id"]).status_code == 204
    wait_closed(d, version)
    wait_closed(k, version)
    refused_connect(srv, version, username="apikey", password=key)


def test_nobody_publishes_readings(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    watcher = app_client(srv, new_key(api, org["id"], ["data:read"]), version)
    assert watcher.subscribe(("readings/#", 1)) == [1]
    # not even a key that may write anywhere else: readings/ are the server's
    c = app_client(srv, new_key(api, org["id"], ["data:read", "data:write", "manage"]), version)
    topic = "readings/%s" % dev["id"]
    forged = json.dumps({"ts": now_ms(), "values": {"t": 99}})
    if version == V5:
        assert c.publish(topic, forged, qos=1).reason == RC_NOT_AUTHORIZED
        c.bye()
    else:
        c.send(publish(version, topic, forged, qos=1, packet_id=1))
        assert c.closed() == []
    watcher.no_message(0.5)
    watcher.bye()


def test_will_to_a_forbidden_topic_never_published(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    other = api.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "other"}).json()
    watcher = app_client(srv, new_key(api, org["id"]), version)
    assert watcher.subscribe(("#", 1)) == [1]
    for topic in ("devices/%s/commands/open" % other["id"], "readings/%s" % other["id"], "site/alarm"):
        c = Raw(srv, version)
        ca = c.connect(password=dev["token"], expect_reason=None,
                       will={"topic": topic, "payload": b"forged", "qos": 1, "retain": True})
        if ca.reason == 0:
            c.close()  # gone without DISCONNECT: a will would go now
        else:
            assert ca.reason == not_authorized(version), ca
            assert c.closed() == []
    watcher.no_message(0.5)
    late = app_client(srv, new_key(api, org["id"]), version)
    assert late.subscribe(("#", 1)) == [1]
    late.no_message(0.3)
    watcher.bye()
    late.bye()


def test_subscriptions_per_session_bounded(srv, api, version):
    org, _ = new_org_device(api, prefix="mqtt")
    c = app_client(srv, new_key(api, org["id"]), version)
    limit = 32
    codes = c.subscribe(*[("b/%d" % i, 1) for i in range(limit)])
    assert codes == [1] * limit
    over = 0x97 if version == V5 else 0x80
    assert c.subscribe(("b/one-more", 1)) == [over]
    assert c.subscribe(("b/0", 2)) == [2]  # replacing one is not one more
    c.unsubscribe("b/1")
    assert c.subscribe(("b/one-more", 1)) == [1]
    c.bye()


def test_stored_sessions_per_principal_bounded(srv, api, version):
    org, dev = new_org_device(api, prefix="mqtt")
    limit = 100
    for i in range(limit):
        c = Raw(srv, version)
        c.connect(client_id="s%d" % i, clean=False, password=dev["token"],
                  properties=[(0x11, 3600)] if version == V5 else None)
        c.bye()
    c = Raw(srv, version)
    ca = c.connect(client_id="one-more", clean=False, password=dev["token"], expect_reason=None,
                   properties=[(0x11, 3600)] if version == V5 else None)
    assert ca.reason == (0x97 if version == V5 else 0x03), ca
    assert c.closed() == []
    # a clean session holds nothing after it: still taken; and ending one makes room
    c = device_client(srv, dev, version, client_id="passing", clean=True)
    c.bye()
    c = device_client(srv, dev, version, client_id="s0", clean=True)
    c.bye()
    c = device_client(srv, dev, version, client_id="one-more", clean=False,
                      properties=[(0x11, 3600)] if version == V5 else None)
    c.bye()


def test_parent_org_key_sees_only_its_own_tree(srv, api, version):
    parent, _ = new_org_device(api, prefix="mqtt")
    child, dev = new_org_device(api, parent=parent["id"], prefix="mqtt-child")
    k = app_client(srv, new_key(api, parent["id"]), version)
    assert k.subscribe(("#", 1), ("readings/#", 1)) == [1, 1]
    d = device_client(srv, dev, version)
    assert d.publish("devices/me/data", "c=1", qos=1).ok
    assert d.publish("devices/me/status", "up", qos=1).ok
    k.no_message(0.5)
    d.bye()
    k.bye()


def test_shared_groups_are_per_org(srv, api, version):
    if version != V5:
        pytest.skip("shared subscriptions are 5.0's")
    org_a, _ = new_org_device(api, prefix="mqtt")
    org_b, dev_b = new_org_device(api, prefix="mqtt")
    a = app_client(srv, new_key(api, org_a["id"]), version)
    b = app_client(srv, new_key(api, org_b["id"]), version)
    # the same group and filter in two orgs: two groups, never one
    assert a.subscribe(("$share/g/#", 1)) == [1]
    assert b.subscribe(("$share/g/#", 1)) == [1]
    pub = app_client(srv, new_key(api, org_b["id"]), version)
    for i in range(4):
        assert pub.publish("s/x", str(i), qos=1).ok
    assert sorted(int(b.message().payload) for _ in range(4)) == [0, 1, 2, 3]
    a.no_message(0.4)
    # a device's shared subscription stays in its own topics
    d = device_client(srv, dev_b, version)
    fail = RC_NOT_AUTHORIZED
    assert d.subscribe(("$share/g/devices/me/commands/#", 1), ("$share/g/devices/+/commands/#", 1),
                       ("$share/g/#", 1)) == [1, fail, fail]
    assert pub.publish("devices/%s/commands/go" % dev_b["id"], "now", qos=1).ok
    assert d.message().payload == b"now"
    for c in (a, b, pub, d):
        c.bye()
