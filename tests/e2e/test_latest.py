"""GET /devices/{id}/latest reads each channel's newest reading from its
series alone, never the readings: it is a light request, so a dashboard's
burst of them is never refused 429 however many readings the device has."""
import time

import pytest

import readings_db
from conftest import burst_heads, login, module_server, new_org_device

pytestmark = pytest.mark.serial  # asserts on time or memory: run alone (make test)

READINGS = 200000
BURST = 12

srv = module_server([])


def test_latest_burst_is_light_and_right(srv):
    admin = login(srv.http)
    _, dev = new_org_device(admin, prefix="latest")
    readings_db.fill(srv.data_dir, dev["id"], ["a", "b"], READINGS)
    r = admin.get("/api/v1/devices/%s/latest" % dev["id"])
    assert r.status_code == 200, r.text
    last = readings_db.BASE_TS + (READINGS - 1) * 1000
    assert r.json() == {"a": {"ts": last, "value": 1.0}, "b": {"ts": last, "value": 1.0}}

    req = ("GET /api/v1/devices/%s/latest HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
           "Connection: close\r\n\r\n" % (dev["id"], admin.s.headers["Authorization"])).encode()
    start = time.monotonic()
    heads = [h.split(b"\r\n", 1)[0] for h in burst_heads(srv, req, BURST)]
    took = time.monotonic() - start
    assert heads == [b"HTTP/1.1 200 OK"] * BURST, heads
    assert took < 2, took
