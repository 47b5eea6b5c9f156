"""MQTT 5.0 reason strings on refusals: CONNACK, PUBACK, PUBREC, SUBACK and
DISCONNECT carry a short reason string when the client allows it (Request
Problem Information, MQTT-3.1.2-29: 0 forbids it on anything but CONNACK,
DISCONNECT and PUBLISH), never naming a secret or another org's things."""
import pytest

from conftest import login, module_server, new_org_device
from mqtt_util import (AUTH, DISCONNECT, P_MAX_PACKET_SIZE, P_REQUEST_PROBLEM_INFO, PUBREC, SUBACK,
                       V5, Raw,
                       packet, publish, reason_string, subscribe)

srv = module_server(["--listen-mqtt", "127.0.0.1:0"])


@pytest.fixture(scope="module")
def two(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="mqtt-rs")
    other_org, other = new_org_device(admin, prefix="mqtt-rs-other")
    return {"dev": dev, "other": other, "org": org, "other_org": other_org}


def no_secret(text, two):
    assert text
    for secret in (two["dev"]["token"], two["other"]["token"], two["other"]["id"],
                   two["other_org"]["id"]):
        assert secret not in text, text


def suback(c, flt, packet_id):
    """The whole SUBACK of one filter at QoS 1 (its props too)."""
    c.send(subscribe(V5, packet_id, [(flt, 1)]))
    return c.expect(SUBACK)


def last_disconnect(c):
    d = [p for p in c.closed() if p.type == DISCONNECT]
    assert d, "closed without a DISCONNECT"
    return d[-1]


def test_refused_connect_says_why(srv, two):
    c = Raw(srv, V5)
    ack = c.connect(password="not-a-token", expect_reason=0x87)
    no_secret(reason_string(ack), two)
    assert "not-a-token" not in reason_string(ack)
    c.close()


def test_refused_publish_and_subscribe_say_why(srv, two):
    c = Raw(srv, V5)
    c.connect(password=two["dev"]["token"])
    # Another device's data topic: not this device's to publish on.
    a = c.publish("devices/%s/data" % two["other"]["id"], '{"t":1}', qos=1)
    assert a.reason == 0x87, a
    no_secret(reason_string(a), two)
    # A bad payload on its own data topic.
    c.send(publish(V5, "devices/me/data", "{not json", qos=2, packet_id=2))
    a = c.expect(PUBREC)
    assert a.reason == 0x99, a
    no_secret(reason_string(a), two)
    # A filter outside what it may read.
    s = suback(c, "devices/%s/#" % two["other"]["id"], 3)
    assert s.reasons == [0x87], s
    no_secret(reason_string(s), two)
    # Success carries none.
    a = c.publish("devices/me/data", '{"t":1}', qos=1)
    assert a.reason == 0 and reason_string(a) is None, a
    c.close()


def test_no_reason_string_when_the_client_asks_for_none(srv, two):
    c = Raw(srv, V5)
    c.connect(password=two["dev"]["token"], properties=[(P_REQUEST_PROBLEM_INFO, 0)])
    a = c.publish("devices/%s/data" % two["other"]["id"], '{"t":1}', qos=1)
    assert a.reason == 0x87 and reason_string(a) is None, a
    s = suback(c, "devices/%s/#" % two["other"]["id"], 2)
    assert s.reasons == [0x87] and reason_string(s) is None, s
    # DISCONNECT may carry one whatever the client asked (MQTT-3.1.2-29).
    c.send(packet(AUTH, 0, b""))  # AUTH, which we never asked for
    d = last_disconnect(c)
    assert d.reason == 0x82, d
    assert reason_string(d)
    c.close()


def test_server_disconnect_says_why(srv, two):
    c = Raw(srv, V5)
    c.connect(password=two["dev"]["token"])
    c.send(publish(V5, "devices/me/te+st", "x", qos=0))  # a wildcard in a topic name
    d = last_disconnect(c)
    assert d.reason in (0x82, 0x90, 0x81), d
    no_secret(reason_string(d), two)
    c.close()


def test_a_reason_string_that_would_not_fit_is_left_out(srv, two):
    # MQTT-3.2.2-19, -3.4.2-2, -3.5.2-2, -3.9.2-1, -3.14.2-3: the packet
    # goes without its reason string rather than past the client's maximum.
    small = [(P_MAX_PACKET_SIZE, 16)]
    c = Raw(srv, V5)
    ack = c.connect(password="not-a-token", properties=small, expect_reason=0x87)
    assert reason_string(ack) is None and len(ack.raw) <= 16, ack
    c.close()
    c = Raw(srv, V5)
    c.connect(password=two["dev"]["token"], client_id="rs-small", properties=small)
    a = c.publish("devices/%s/data" % two["other"]["id"], '{"t":1}', qos=1)
    assert a.reason == 0x87 and reason_string(a) is None and len(a.raw) <= 16, a
    c.send(publish(V5, "devices/me/data", "{not json", qos=2, packet_id=2))
    a = c.expect(PUBREC)
    assert a.reason == 0x99 and reason_string(a) is None and len(a.raw) <= 16, a
    s = suback(c, "devices/%s/#" % two["other"]["id"], 3)
    assert s.reasons == [0x87] and reason_string(s) is None and len(s.raw) <= 16, s
    c.send(packet(AUTH, 0, b""))
    d = last_disconnect(c)
    assert d.reason == 0x82 and reason_string(d) is None and len(d.raw) <= 16, d
    c.close()
