"""A QoS 2 PUBLISH whose connection drops before it is answered: the
broker kept its packet id with the session, so the client's retransmission
after reconnecting is answered by the id alone (MQTT-4.3.3-9); the message
itself must still reach the subscribers, exactly once."""
import socket
import struct
import time

from conftest import login, module_server, new_org_device
from mqtt_util import (P_SESSION_EXPIRY, PUBCOMP, PUBLISH, PUBREC, PUBREL, V5, Raw, ack,
                       publish)

srv = module_server(["--listen-mqtt", "127.0.0.1:0"])


def received(sub, body, timeout):
    """Payloads ending in body the subscriber gets: until the first, then
    a moment more for a duplicate."""
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        if out:
            deadline = min(deadline, time.time() + 0.2)
        try:
            got = sub.recv(max(0.05, deadline - time.time()))
        except TimeoutError:
            break
        if got is None:
            break
        if got.type == PUBLISH and got.payload.endswith(body):
            out.append(got.payload)
    return out


def test_retransmission_after_a_drop_is_delivered_once(srv):
    admin = login(srv.http)
    _, dev = new_org_device(admin, prefix="mqtt-q2")
    sub = Raw(srv, V5)
    sub.connect(password=dev["token"], client_id="q2-sub")
    assert sub.subscribe(("devices/me/status", 0)) == [0]
    expiry = [(P_SESSION_EXPIRY, 3600)]
    lost = 0
    for i in range(5):
        topic, body = "devices/me/status", b"m%d" % i
        pub = Raw(srv, V5)
        pub.connect(password=dev["token"], client_id="q2-pub", clean=(i == 0), properties=expiry)
        # The PUBLISH and the end of the connection in one go: the broker
        # reads both before its record of the packet id is committed.
        pub.send(publish(V5, topic, body, qos=2, packet_id=7))
        pub.s.shutdown(socket.SHUT_WR)
        pub.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        pub.close()
        time.sleep(0.05)
        pub = Raw(srv, V5)
        pub.connect(password=dev["token"], client_id="q2-pub", clean=False, properties=expiry)
        pub.send(publish(V5, topic, body, qos=2, packet_id=7, dup=True))
        rec = pub.expect(PUBREC)
        assert rec.packet_id == 7 and rec.reason < 0x80, rec
        pub.send(ack(PUBREL, V5, 7))
        assert pub.expect(PUBCOMP).packet_id == 7
        pub.close()
        got = received(sub, body, 2.0)
        assert len(got) <= 1, "delivered twice"
        lost += len(got) == 0
    assert lost == 0, "%d of 5 acknowledged QoS 2 messages never reached the subscriber" % lost
    sub.close()
