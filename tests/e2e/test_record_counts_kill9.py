"""A device's session record counts every reading acknowledged, also after
kill -9 (SPEC §5): the commit that stores readings counts them into the
record, so a record the once-a-second accounting write had already
written (with fewer readings) is not left behind by a crash."""
import socket
import time

import pytest
import requests

from conftest import Server, login, new_org_device, now_ms

DATA = "/api/v1/data"


def open_tcp(addr, token):
    host, port = addr.rsplit(":", 1)
    c = socket.create_connection((host, int(port)), timeout=10)
    f = c.makefile("rwb")
    f.write(b"AUTH " + token.encode() + b"\n")
    f.flush()
    assert f.readline() == b"OK\n"
    return c, f


def tcp_line(f, line, seq):
    f.write(line.encode() + b"\n")
    f.flush()
    assert f.readline() == b"ACK %d\n" % seq


def http_line(s, srv, token, line):
    r = s.post(srv.http + DATA, data=line, timeout=10,
               headers={"X-Auth-Token": token, "Content-Type": "text/plain"})
    assert r.status_code == 200, r.text


def device_records(api, org, dev, protocol):
    recs = api.get("/api/v1/orgs/%s/sessions?kind=device&limit=1000" % org["id"]).json()
    return [r for r in recs if r["principal_id"] == dev["id"] and r["protocol"] == protocol]


def wait_written(api, org, dev, protocol, readings):
    """Until the accounting write has put the open record in the store with
    `readings`: the next write is about a second away."""
    deadline = time.time() + 10
    while time.time() < deadline:
        mine = device_records(api, org, dev, protocol)
        if mine and mine[0]["readings"] == readings and mine[0]["ended_at"] is None:
            return
        time.sleep(0.02)
    raise AssertionError("the open %s record was never written" % protocol)


@pytest.mark.parametrize("protocol", ["http", "tcp"])
def test_reading_acknowledged_after_the_records_write_survives_kill9(fresh_server, protocol):
    srv = fresh_server(["--listen-tcp", "127.0.0.1:0"])
    api = login(srv.http)
    org, dev = new_org_device(api)
    t0 = now_ms() - 60000
    conn = None
    s = requests.Session()  # one connection: one record
    try:
        if protocol == "tcp":
            conn, f = open_tcp(srv.addrs["tcp"], dev["token"])
            tcp_line(f, "v=1 %d" % t0, 1)
        else:
            http_line(s, srv, dev["token"], "v=1 %d" % t0)
        wait_written(api, org, dev, protocol, 1)
        # Acknowledged after that write, and the process dies before the next.
        if protocol == "tcp":
            tcp_line(f, "v=2 %d" % (t0 + 1), 2)
        else:
            http_line(s, srv, dev["token"], "v=2 %d" % (t0 + 1))
        srv.kill()
    finally:
        if conn is not None:
            conn.close()
        s.close()
    again = Server(srv.data_dir).start()
    try:
        api = login(again.http)
        mine = device_records(api, org, dev, protocol)
        assert len(mine) == 1, mine
        assert mine[0]["end_reason"] == "crash", mine[0]
        assert (mine[0]["messages"], mine[0]["readings"]) == (2, 2), mine[0]
        usage = api.get("/api/v1/orgs/%s/usage" % org["id"]).json()["usage"]
        assert sum(u["readings"] for u in usage if u["protocol"] == protocol) == 2
    finally:
        again.stop()
