"""Revocation and the broker's sessions: a revoked principal's sessions are
gone whether or not it was connected at the time (SPEC §3.6, issue's
"Tenancy and access")."""
from conftest import login, module_server, new_org_device
from mqtt_util import DISCONNECT, P_SESSION_EXPIRY, V5, Raw, disconnect

srv = module_server(["--listen-mqtt", "127.0.0.1:0"])


def persistent(server, token, client_id, clean):
    c = Raw(server, V5)
    ack = c.connect(password=token, client_id=client_id, clean=clean,
                    properties=[(P_SESSION_EXPIRY, 3600)])
    return c, ack


def test_rotated_token_ends_an_offline_session(srv):
    admin = login(srv.http)
    _, dev = new_org_device(admin, prefix="mqtt-rev")
    c, _ = persistent(srv, dev["token"], "rev-offline", True)
    assert c.subscribe(("devices/me/commands/#", 1)) == [1]
    c.send(disconnect(V5))
    c.closed()
    c.close()
    # Still stored while offline: the same token gets it back.
    c, ack = persistent(srv, dev["token"], "rev-offline", False)
    assert ack.session_present == 1
    c.send(disconnect(V5))
    c.closed()
    c.close()

    r = admin.post("/api/v1/devices/%s/token" % dev["id"])
    assert r.status_code == 200, r.text
    c, ack = persistent(srv, r.json()["token"], "rev-offline", False)
    assert ack.session_present == 0, "the session of the revoked token outlived it"
    c.close()


def test_rotated_token_disconnects_and_ends_the_session(srv):
    admin = login(srv.http)
    _, dev = new_org_device(admin, prefix="mqtt-rev")
    c, _ = persistent(srv, dev["token"], "rev-online", True)
    r = admin.post("/api/v1/devices/%s/token" % dev["id"])
    assert r.status_code == 200, r.text
    d = [p for p in c.closed() if p.type == DISCONNECT]
    assert d and d[-1].reason == 0x98, d
    c.close()
    c, ack = persistent(srv, r.json()["token"], "rev-online", False)
    assert ack.session_present == 0
    c.close()
