"""Answers a client does not read are bounded per principal (SPEC §4): one
tenant's clients that pipeline large queries and never read are refused
alone (429), and another tenant's large answers go out as before."""
import socket
import threading
import time

import pytest
import requests

from conftest import http_addr as addr, login, module_server, new_org_device, now_ms
from test_http_transport import first_status

pytestmark = pytest.mark.serial  # asserts on time or memory: run alone (make test)

srv = module_server([])
FLOOD_CONNECTIONS = 30
PIPELINED = 10


def fill(server, dev, readings=100_000):
    t0 = now_ms() - 3_600_000
    for batch in range(readings // 10_000):
        lines = "".join("v=%d %d\n" % (i, t0 + batch * 10_000 + i) for i in range(10_000))
        r = requests.post(server.http + "/api/v1/data", data=lines, timeout=60,
                          headers={"X-Auth-Token": dev["token"], "Content-Type": "text/plain"})
        assert r.status_code == 200, r.text


def reader_key(admin, org):
    r = admin.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "reader", "scopes": ["data:read"]})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def test_a_tenant_that_does_not_read_is_refused_alone(srv):
    admin = login(srv.http)
    org_a, dev_a = new_org_device(admin, prefix="flooder")
    org_b, dev_b = new_org_device(admin, prefix="victim")
    fill(srv, dev_a)
    fill(srv, dev_b)
    key_a, key_b = reader_key(admin, org_a), reader_key(admin, org_b)
    one = (b"GET /api/v1/devices/%s/data?limit=100000 HTTP/1.1\r\nHost: x\r\n"
           b"Authorization: Bearer %s\r\n\r\n" % (dev_a["id"].encode(), key_a.encode()))
    socks = []
    try:
        for _ in range(FLOOD_CONNECTIONS):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(addr(srv))
            s.setblocking(False)
            try:
                s.send(one * PIPELINED)
            except BlockingIOError:
                pass
            socks.append(s)
        # Far more than the listener's shared budget (32 MiB) is asked for;
        # let the workers build what they will.
        time.sleep(3)
        url = srv.http + "/api/v1/devices/%s/data?limit=100000" % dev_b["id"]
        for _ in range(3):
            r = requests.get(url, headers={"Authorization": "Bearer " + key_b}, timeout=60)
            assert r.status_code == 200, r.text[:200]
            assert len(r.json()["series"]["v"]) == 100_000
        statuses = [first_status(s) for s in socks]
        assert set(statuses) <= {200, 429}, statuses
        assert statuses.count(429) > 0, statuses
    finally:
        for s in socks:
            s.close()
