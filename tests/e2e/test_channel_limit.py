"""A device has at most 1024 channels (SS_DEVICE_CHANNELS_MAX): a reading
that would create channel 1025 is refused in each protocol's terms, and
nothing refused is half-stored."""
import socket
import time

import pytest
import requests

from conftest import login, new_org_device, now_ms, running_server

CHANNELS_MAX = 1024
ARGS = ["--listen-udp", "127.0.0.1:0", "--listen-tcp", "127.0.0.1:0", "--log-level", "debug"]


@pytest.fixture(scope="module")
def srv():
    yield from running_server(ARGS)


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


def post(srv, token, body):
    return requests.post(srv.http + "/api/v1/data", data=body, timeout=30,
                         headers={"X-Auth-Token": token, "Content-Type": "text/plain"})


def channels(api, dev):
    r = api.get("/api/v1/devices/%s/channels" % dev["id"])
    assert r.status_code == 200, r.text
    return {c["name"]: c["count"] for c in r.json()}


def full_device(srv, api):
    """A device with every channel it may have: c0 .. c1023."""
    _, dev = new_org_device(api, prefix="chan")
    line = ",".join("c%d=1" % i for i in range(CHANNELS_MAX))
    r = post(srv, dev["token"], "%s %d\n" % (line, now_ms() - 10000))
    assert r.status_code == 200 and r.json() == {"stored": CHANNELS_MAX}, r.text
    return dev


def test_http_refuses_the_request_that_would_add_a_channel(srv, api):
    dev = full_device(srv, api)
    ts = now_ms() - 5000
    # an existing channel with a new one: the request is all or nothing
    r = post(srv, dev["token"], "c0=2 %d\nnew=1 %d\n" % (ts, ts))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "too_many_channels"
    assert "1024" in r.json()["error"]["message"]
    got = channels(api, dev)
    assert len(got) == CHANNELS_MAX and "new" not in got and got["c0"] == 1
    # existing channels go on as before
    r = post(srv, dev["token"], "c0=3 %d\nc1023=3 %d\n" % (ts, ts))
    assert r.status_code == 200, r.text
    assert channels(api, dev)["c0"] == 2


def test_http_one_request_of_more_channels_than_a_device_may_have(srv, api):
    _, dev = new_org_device(api, prefix="chan")
    line = ",".join("c%d=1" % i for i in range(CHANNELS_MAX + 1))
    r = post(srv, dev["token"], line + "\n")
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_channels", r.text
    assert channels(api, dev) == {}


def test_tcp_refuses_the_line_and_goes_on(srv, api):
    dev = full_device(srv, api)
    ts = now_ms() - 4000
    host, port = srv.addrs["tcp"].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    f = s.makefile("rwb")
    f.write(("AUTH %s\n" % dev["token"]).encode())
    f.flush()
    assert f.readline() == b"OK\n"
    # one segment: three lines committed together, the middle one refused
    f.write(("c5=1 %d\nc5=2,brand_new=1 %d\nc6=1 %d\n" % (ts, ts + 1, ts + 2)).encode())
    f.flush()
    answers = []
    while not answers or not answers[-1].startswith("ACK"):
        answers.append(f.readline().decode().strip())
    assert answers[0].startswith("ERR 2 400 too_many_channels"), answers
    assert answers[-1] == "ACK 2", answers
    s.close()
    got = channels(api, dev)
    assert "brand_new" not in got and got["c5"] == 2 and got["c6"] == 2


def test_udp_drops_the_datagram_and_counts_it(srv, api):
    org, dev = new_org_device(api, prefix="chan")
    line = ",".join("c%d=1" % i for i in range(CHANNELS_MAX))
    assert post(srv, dev["token"], line + "\n").status_code == 200
    host, port = srv.addrs["udp"].rsplit(":", 1)
    ts = now_ms() - 3000
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(("%s\nc1=5 %d\nextra=1 %d\n" % (dev["token"], ts, ts)).encode(), (host, int(port)))
        s.sendto(("%s\nc2=5 %d\n" % (dev["token"], ts)).encode(), (host, int(port)))
    deadline = time.time() + 10
    while channels(api, dev)["c2"] < 2 and time.time() < deadline:
        time.sleep(0.05)
    got = channels(api, dev)
    assert got["c2"] == 2 and got["c1"] == 1 and "extra" not in got
    log = srv.read_log()
    assert "too_many_channels" in log
    # The log gives the number, not the constant's name.
    assert "too_many_channels: a reading would give the device more than %d channels" % \
        CHANNELS_MAX in log
    assert "SS_DEVICE_CHANNELS_MAX" not in log
    # counted as rejected in the org's usage (written once a second)
    deadline = time.time() + 5
    while time.time() < deadline:
        r = api.get("/api/v1/orgs/%s/usage?every=day&from=%d&to=%d" %
                    (org["id"], now_ms() - 86400000, now_ms() + 3600000))
        rejected = sum(u["rejected"] for u in r.json()["usage"] if u["protocol"] == "udp")
        if rejected:
            break
        time.sleep(0.2)
    assert rejected == 2
