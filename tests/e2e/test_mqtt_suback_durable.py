"""A persistent session's SUBACK goes out only once its subscription is in
the store, also when the subscription found retained messages to send: a
kill -9 right after the client read the SUBACK loses no subscription."""
import struct
import time

from conftest import login, new_org_device
from mqtt_raw import (PROP_SESSION_EXPIRY, PUBACK, PUBLISH, SUBACK, Raw, mstr, packet,
                      props_bytes)

EXPIRY = [(PROP_SESSION_EXPIRY, struct.pack("!I", 3600))]


def subscribe_and_kill(server, key, client_id):
    """SUBSCRIBE, then kill -9 as soon as the SUBACK is read."""
    c = Raw(server, 5)
    assert c.connect(key, username="apikey", client_id=client_id, clean=True,
                     props=EXPIRY)["reason"] == 0
    var = struct.pack("!H", 1) + props_bytes([])
    c.send(packet(8, 2, var + mstr("kept/#") + b"\x00"))
    while True:
        got = c.read()
        assert got is not None
        if got[0] == SUBACK:
            break
    server.kill()
    c.close()


def test_suback_with_retained_waits_for_the_commit(fresh_server):
    server = fresh_server(["--listen-mqtt", "127.0.0.1:0"])
    admin = login(server.http)
    org, _ = new_org_device(admin, prefix="mqtt-suback")
    r = admin.post("/api/v1/orgs/%s/apikeys" % org["id"],
                   json={"name": "app", "scopes": ["data:read", "data:write"]})
    key = r.json()["key"]
    pub = Raw(server, 5)
    assert pub.connect(key, username="apikey")["reason"] == 0
    # Many retained messages: the subscription sends them all with its SUBACK.
    for i in range(200):
        pub.publish("kept/%d" % i, "x" * 200, qos=1, packet_id=i + 1, retain=True)
        if i % 10 == 9:
            for _ in range(10):
                pub.expect(PUBACK)
    pub.close()
    lost = 0
    for i in range(3):
        cid = "durable-%d" % i
        subscribe_and_kill(server, key, cid)
        server.start()
        c = Raw(server, 5)
        ack = c.connect(key, username="apikey", client_id=cid, clean=False, props=EXPIRY)
        assert ack["reason"] == 0
        p = Raw(server, 5)
        assert p.connect(key, username="apikey")["reason"] == 0
        p.publish("kept/new", "after", qos=1, packet_id=1)
        p.expect(PUBACK)
        p.close()
        seen = False
        deadline = time.time() + 3
        while not seen and time.time() < deadline:
            try:
                got = c.read(max(0.05, deadline - time.time()))
            except TimeoutError:
                break
            seen = got is not None and got[0] == PUBLISH and got[2].endswith(b"after")
        lost += not (ack["present"] and seen)
        c.close()
    assert lost == 0, "%d of 3 subscriptions acknowledged by SUBACK were lost" % lost
