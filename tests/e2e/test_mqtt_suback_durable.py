"""A persistent session's SUBACK goes out only once its subscription is in
the store, also when the subscription found retained messages to send: a
kill -9 right after the client read the SUBACK loses no subscription."""
import time

from conftest import login, new_org_device
from mqtt_util import P_SESSION_EXPIRY, PUBACK, PUBLISH, SUBACK, V5, Raw, publish, subscribe

EXPIRY = [(P_SESSION_EXPIRY, 3600)]


def subscribe_and_kill(server, key, client_id):
    """SUBSCRIBE, then kill -9 as soon as the SUBACK is read."""
    c = Raw(server, V5)
    c.connect(username="apikey", password=key, client_id=client_id, clean=True,
              properties=EXPIRY)
    c.send(subscribe(V5, 1, [("kept/#", 0)]))
    while True:
        got = c.recv()
        assert got is not None
        if got.type == SUBACK:
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
    pub = Raw(server, V5)
    pub.connect(username="apikey", password=key)
    # Many retained messages: the subscription sends them all with its SUBACK.
    for i in range(200):
        pub.send(publish(V5, "kept/%d" % i, "x" * 200, qos=1, packet_id=i + 1, retain=True))
        if i % 10 == 9:
            for _ in range(10):
                pub.expect(PUBACK)
    pub.close()
    lost = 0
    for i in range(3):
        cid = "durable-%d" % i
        subscribe_and_kill(server, key, cid)
        server.start()
        c = Raw(server, V5)
        ack = c.connect(username="apikey", password=key, client_id=cid, clean=False,
                        properties=EXPIRY)
        p = Raw(server, V5)
        p.connect(username="apikey", password=key)
        p.publish("kept/new", "after", qos=1)
        p.close()
        seen = False
        deadline = time.time() + 3
        while not seen and time.time() < deadline:
            try:
                got = c.recv(max(0.05, deadline - time.time()))
            except TimeoutError:
                break
            seen = got is not None and got.type == PUBLISH and got.payload.endswith(b"after")
        lost += not (ack.session_present and seen)
        c.close()
    assert lost == 0, "%d of 3 subscriptions acknowledged by SUBACK were lost" % lost
