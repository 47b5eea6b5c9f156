"""MQTT 5.0 reason strings on refusals: CONNACK, PUBACK, PUBREC, SUBACK and
DISCONNECT carry a short reason string when the client allows it (Request
Problem Information, MQTT-3.1.2-29: 0 forbids it on anything but CONNACK,
DISCONNECT and PUBLISH), never naming a secret or another org's things."""
import struct

import pytest

from conftest import login, module_server, new_org_device
from mqtt_raw import ( PROP_REQUEST_PROBLEM_INFO, PUBACK, PUBREC, SUBACK,
                      Raw, packet, reason_string)

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


def test_refused_connect_says_why(srv, two):
    c = Raw(srv, 5)
    ack = c.connect("not-a-token")
    assert ack["reason"] == 0x87
    no_secret(reason_string(ack), two)
    assert "not-a-token" not in reason_string(ack)
    c.close()


def test_refused_publish_and_subscribe_say_why(srv, two):
    c = Raw(srv, 5)
    assert c.connect(two["dev"]["token"])["reason"] == 0
    # Another device's data topic: not this device's to publish on.
    c.publish("devices/%s/data" % two["other"]["id"], '{"t":1}', qos=1, packet_id=1)
    a = c.expect(PUBACK)
    assert a["reason"] == 0x87, a
    no_secret(reason_string(a), two)
    # A bad payload on its own data topic.
    c.publish("devices/me/data", "{not json", qos=2, packet_id=2)
    a = c.expect(PUBREC)
    assert a["reason"] == 0x99, a
    no_secret(reason_string(a), two)
    # A filter outside what it may read.
    s = c.subscribe("devices/%s/#" % two["other"]["id"], qos=1, packet_id=3)
    assert s["reasons"] == [0x87], s
    no_secret(reason_string(s), two)
    # Success carries none.
    c.publish("devices/me/data", '{"t":1}', qos=1, packet_id=4)
    a = c.expect(PUBACK)
    assert a["reason"] == 0 and reason_string(a) is None, a
    c.close()


def test_no_reason_string_when_the_client_asks_for_none(srv, two):
    c = Raw(srv, 5)
    ack = c.connect(two["dev"]["token"], props=[(PROP_REQUEST_PROBLEM_INFO, b"\x00")])
    assert ack["reason"] == 0
    c.publish("devices/%s/data" % two["other"]["id"], '{"t":1}', qos=1, packet_id=1)
    a = c.expect(PUBACK)
    assert a["reason"] == 0x87 and reason_string(a) is None, a
    s = c.subscribe("devices/%s/#" % two["other"]["id"], qos=1, packet_id=2)
    assert s["reasons"] == [0x87] and reason_string(s) is None, s
    # DISCONNECT may carry one whatever the client asked (MQTT-3.1.2-29).
    c.send(packet(15, 0, b""))  # AUTH, which we never asked for
    d = c.closed()
    assert d and d["reason"] == 0x82, d
    assert reason_string(d)
    c.close()


def test_server_disconnect_says_why(srv, two):
    c = Raw(srv, 5)
    assert c.connect(two["dev"]["token"])["reason"] == 0
    c.publish("devices/me/te+st", "x", qos=0)  # a wildcard in a topic name
    d = c.closed()
    assert d and d["reason"] in (0x82, 0x90, 0x81), d
    no_secret(reason_string(d), two)
    c.close()
