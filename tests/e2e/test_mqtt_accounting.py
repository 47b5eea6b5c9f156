"""The session record of an MQTT connection counts every PUBLISH the client
sent, on a data topic or not, refused or not (SPEC §5: messages), and the
readings stored and refused."""
import time

from conftest import login, module_server, new_org_device
from mqtt_util import PUBACK, V5, Raw, disconnect, publish

srv = module_server(["--listen-mqtt", "127.0.0.1:0"])


def test_messages_count_every_publish(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="mqtt-acct")
    _, other = new_org_device(admin, prefix="mqtt-acct-other")
    c = Raw(srv, V5)
    c.connect(password=dev["token"])
    c.send(publish(V5, "devices/me/data", '{"t":1}', qos=1, packet_id=1))         # stored
    c.send(publish(V5, "devices/me/data/t", "2", qos=1, packet_id=2))             # stored
    c.send(publish(V5, "devices/me/data", "{bad", qos=1, packet_id=3))            # refused 0x99
    c.send(publish(V5, "devices/me/status", "up", qos=0))                         # not data
    c.send(publish(V5, "devices/me/status", "up", qos=1, packet_id=4))            # not data
    c.send(publish(V5, "devices/%s/data" % other["id"], '{"t":1}', qos=1, packet_id=5))  # 0x87
    got = [c.expect(PUBACK).reason for _ in range(5)]
    assert got == [0, 0, 0x99, 0x10, 0x87], got
    c.send(disconnect(V5))
    c.closed()
    c.close()

    deadline = time.time() + 10
    rec = None
    while time.time() < deadline:
        rows = admin.get("/api/v1/orgs/%s/sessions?kind=device" % org["id"]).json()
        ended = [r for r in rows if r["protocol"] == "mqtt" and r["ended_at"]]
        if ended:
            rec = ended[0]
            if rec["messages"] == 6:
                break
        time.sleep(0.2)
    assert rec, "no ended mqtt session record"
    assert (rec["messages"], rec["readings"], rec["refused"]) == (6, 2, 1), rec
