"""A persistent session's will survives a crash while its delay runs
(MQTT 5 §3.1.3.2; docs/mqtt.md, "Wills"): the server is killed with
kill -9 after the client's connection ended and before the will's delay
passed; after the restart the will goes out when its delay passes, at
start when it passed while the server was down (or the session expired
then), and not at all when the client comes back within the delay."""
import time

from conftest import Server, login, new_org_device
from mqtt_util import (MQTT_ARGS, P_SESSION_EXPIRY, P_WILL_DELAY, V5, Raw, app_client,
                       new_key, session_props)


def restart_killed(srv):
    srv.kill()
    return Server(srv.data_dir, srv.extra_args).start()


def stop(srv):
    assert srv.stop() == 0, srv.read_log()


def watcher(srv, key, cid):
    """An app's persistent session on will/#: what is routed to it while
    it is away (or the server restarts) waits for it."""
    return app_client(srv, key, V5, client_id=cid, clean=False, properties=session_props(V5))


def leave_with_will(srv, key, cid, payload, delay_s, expiry_s=300):
    """A client with a persistent session and a delayed will whose
    connection drops (no DISCONNECT): the will's delay starts."""
    c = Raw(srv, V5)
    c.connect(client_id=cid, clean=False, username="apikey", password=key,
              properties=[(P_SESSION_EXPIRY, expiry_s)],
              will={"topic": "will/" + cid, "payload": payload, "qos": 1,
                    "props": [(P_WILL_DELAY, delay_s)]})
    c.close()
    return c


def broker_with_watcher(fresh_server):
    s = fresh_server(MQTT_ARGS)
    api = login(s.http)
    org, _ = new_org_device(api, prefix="will")
    key = new_key(api, org["id"])
    w = watcher(s, key, "watcher")
    assert w.subscribe(("will/#", 1)) == [1]
    return s, key, w


def test_will_due_while_down_goes_out_at_start(fresh_server):
    s, key, w = broker_with_watcher(fresh_server)
    w.bye()
    leave_with_will(s, key, "dev1", b"dev1 gone", delay_s=1)
    time.sleep(0.3)  # the connection's end is recorded (one group commit)
    s.kill()
    time.sleep(1.2)  # the will's delay passes while the server is down
    again = Server(s.data_dir, s.extra_args).start()
    try:
        w = watcher(again, key, "watcher")
        assert w.connack.session_present == 1
        m = w.message(timeout=10)
        assert (m.topic, m.payload, m.qos) == ("will/dev1", b"dev1 gone", 1)
        w.no_message(0.5)
        w.bye()
    finally:
        stop(again)


def test_will_delay_goes_on_after_restart(fresh_server):
    s, key, w = broker_with_watcher(fresh_server)
    leave_with_will(s, key, "dev2", b"dev2 gone", delay_s=4)
    left = time.monotonic()
    w.no_message(0.3)
    w.close()
    again = restart_killed(s)
    try:
        w = watcher(again, key, "watcher")
        # not before its time: the delay runs from the connection's end
        m = w.message(timeout=15)
        assert (m.topic, m.payload) == ("will/dev2", b"dev2 gone")
        assert time.monotonic() - left >= 3.5, "the will went out before its delay"
        w.no_message(0.5)
        w.bye()
    finally:
        stop(again)


def test_client_back_within_delay_after_restart_sends_no_will(fresh_server):
    s, key, w = broker_with_watcher(fresh_server)
    leave_with_will(s, key, "dev3", b"dev3 gone", delay_s=3)
    time.sleep(0.3)
    w.close()
    again = restart_killed(s)
    try:
        w = watcher(again, key, "watcher")
        c = Raw(again, V5)
        c.connect(client_id="dev3", clean=False, username="apikey", password=key,
                  properties=[(P_SESSION_EXPIRY, 300)])
        assert c.connack.session_present == 1
        # resumed within the delay (MQTT-3.1.3-9), and again after another crash
        c.close()
        time.sleep(0.3)
        w.close()
        third = restart_killed(again)
        try:
            w = watcher(third, key, "watcher")
            w.no_message(4)
            w.bye()
        finally:
            stop(third)
    finally:
        if again.proc is not None and again.proc.poll() is None:
            stop(again)


def test_will_of_session_expired_while_down_goes_out_at_start(fresh_server):
    s, key, w = broker_with_watcher(fresh_server)
    w.bye()
    # a delay longer than the session: the will goes with the session's end
    leave_with_will(s, key, "dev4", b"dev4 gone", delay_s=600, expiry_s=1)
    time.sleep(0.3)
    s.kill()
    time.sleep(1.2)
    again = Server(s.data_dir, s.extra_args).start()
    try:
        w = watcher(again, key, "watcher")
        m = w.message(timeout=10)
        assert (m.topic, m.payload) == ("will/dev4", b"dev4 gone")
        w.bye()
        c = Raw(again, V5)
        c.connect(client_id="dev4", clean=False, username="apikey", password=key,
                  properties=[(P_SESSION_EXPIRY, 1)])
        assert c.connack.session_present == 0, "the session outlived its expiry"
        c.bye()
    finally:
        stop(again)
