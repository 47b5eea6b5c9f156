"""Real MQTT clients nobody here wrote (Debian's mosquitto-clients and
paho-mqtt), both versions, plain and TLS with the generated certificate,
as docs/mqtt.md tells device makers to use them."""
import json
import os
import select
import subprocess
import time

import pytest

from conftest import login, module_server, new_org_device, now_ms
from mqtt_util import MQTT_ARGS, V5, PahoClient, addr_of, new_key, readings
from mqtt_util import tls, version  # noqa: F401  (fixtures)

srv = module_server(MQTT_ARGS)


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


def mosquitto_args(srv, version, tls):
    host, port = addr_of(srv, tls)
    args = ["-V", "mqttv5" if version == V5 else "mqttv311", "-p", str(port)]
    if tls:
        args += ["-h", "localhost", "--cafile", srv.cert]
    else:
        args += ["-h", host]
    return args


def start_sub(srv, version, tls, key, topic):
    """mosquitto_sub as an app, -v, one message; returns once subscribed."""
    # stdbuf: its debug lines (the SUBACK) reach the pipe at once
    p = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub"] + mosquitto_args(srv, version, tls) +
                         ["-u", "apikey", "-P", key, "-q", "1", "-v", "-d", "-C", "1", "-W", "20",
                          "-t", topic], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    buf = b""
    deadline = time.time() + 10
    while b"SUBACK" not in buf:
        assert time.time() < deadline, "mosquitto_sub did not subscribe: %r" % buf
        r, _, _ = select.select([p.stdout], [], [], 0.5)
        if r:
            chunk = os.read(p.stdout.fileno(), 4096)
            assert chunk, "mosquitto_sub ended: %r" % buf
            buf += chunk
    return p, buf


def pub(srv, version, tls, user, password, topic, message, qos=1):
    return subprocess.run(["mosquitto_pub"] + mosquitto_args(srv, version, tls) +
                          ["-u", user, "-P", password, "-q", str(qos), "-t", topic, "-m", message],
                          capture_output=True, timeout=20)


def test_mosquitto_pub_sub(srv, api, version, tls):
    org, dev = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"], ["data:read"])
    sub, seen = start_sub(srv, version, tls, key, "readings/%s" % dev["id"])
    ts = now_ms() - 5000
    body = json.dumps({"ts": ts, "values": {"temp": 21.5, "rh": 40}})
    r = pub(srv, version, tls, "device", dev["token"], "devices/me/data", body)
    assert r.returncode == 0, r.stdout + r.stderr
    # stored once mosquitto_pub returns: it waited for the PUBACK
    assert readings(api, dev, "temp") == [[ts, 21.5]]
    out, _ = sub.communicate(timeout=20)
    lines = [ln for ln in (seen + out).decode().splitlines() if ln.startswith("readings/")]
    assert len(lines) == 1, seen + out
    topic, payload = lines[0].split(" ", 1)
    assert topic == "readings/%s" % dev["id"]
    assert json.loads(payload) == {"ts": ts, "values": {"temp": 21.5, "rh": 40}}
    assert sub.returncode == 0
    # one channel, a plain number
    r = pub(srv, version, tls, "device", dev["token"], "devices/%s/data/level" % dev["id"], "3.5", qos=2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [v for _, v in readings(api, dev, "level")] == [3.5]


def test_mosquitto_refused(srv, api, version, tls):
    org, dev = new_org_device(api, prefix="mqtt")
    r = pub(srv, version, tls, "device", "ssd_" + "1" * 64, "devices/me/data", "a=1")
    assert r.returncode != 0
    assert b"not auth" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    assert readings(api, dev, "a") == []


def test_paho(srv, api, version, tls):
    org, dev = new_org_device(api, prefix="mqtt")
    key = new_key(api, org["id"])
    app = PahoClient(srv, version, tls, username="apikey", password=key)
    flags, rc = app.connect()
    assert rc == 0
    assert app.subscribe("readings/#", 1) == [1]
    d = PahoClient(srv, version, tls, client_id="paho-sensor", password=dev["token"])
    assert d.connect()[1] == 0
    ts = now_ms() - 5000
    d.publish("devices/me/data", json.dumps({"ts": ts, "values": {"p": 7}}), qos=1)
    assert readings(api, dev, "p") == [[ts, 7]]
    m = app.message()
    assert m.topic == "readings/%s" % dev["id"]
    assert json.loads(m.payload) == {"ts": ts, "values": {"p": 7}}
    d.publish("devices/me/data/q", "1.25", qos=2)
    assert readings(api, dev, "q")[0][1] == 1.25
    d.stop()
    app.stop()
