"""Deleting a device (or an organisation) with millions of readings does not
stall anyone's ingest: the device is gone from every answer at once, its
token refused, and its readings are purged in the background in bounded
chunks that interleave with other organisations' commits; a restart in the
middle resumes the purge."""
import threading
import time

import pytest
import requests

from conftest import login, new_org_device, now_ms
import readings_db

BIG = 1000000          # readings per channel of the big device (2 channels)
PURGE_TIMEOUT = 60


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


class Ingest(threading.Thread):
    """A device of another org posting one reading every 20 ms."""

    def __init__(self, base, token):
        super().__init__(daemon=True)
        self.base = base
        self.s = requests.Session()
        self.s.headers["X-Auth-Token"] = token
        self.samples = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                st = self.s.post(self.base + "/api/v1/data", json={"t": 1, "ts": now_ms()},
                                 timeout=30).status_code
            except requests.RequestException as e:
                st = repr(e)
            self.samples.append((time.monotonic() - t0, st))
            self.stop.wait(0.02)

    def report(self):
        lat = [l for l, _ in self.samples]
        codes = {}
        for _, st in self.samples:
            codes[st] = codes.get(st, 0) + 1
        return lat, codes


def wait_purged(data_dir, series):
    deadline = time.monotonic() + PURGE_TIMEOUT
    while time.monotonic() < deadline:
        if readings_db.count_readings(data_dir, series) == 0 and \
                readings_db.purge_pending(data_dir) in (0, None):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.serial  # the other org's latencies: run alone (make test)
def test_big_device_and_org_delete_do_not_stall_other_ingest(fresh_server):
    srv = fresh_server()
    admin = login(srv.http)
    _, big = new_org_device(admin, prefix="big")
    org_c, dev_c = new_org_device(admin, prefix="gone")
    _, calm = new_org_device(admin, prefix="calm")
    series = readings_db.fill(srv.data_dir, big["id"], ["a", "b"], BIG)
    series_c = readings_db.fill(srv.data_dir, dev_c["id"], ["x"], BIG // 2)
    assert readings_db.count_readings(srv.data_dir, series) == 2 * BIG
    big_ingest = {"X-Auth-Token": big["token"]}
    assert requests.post(srv.http + "/api/v1/data", headers=big_ingest, json={"a": 1},
                         timeout=10).status_code == 200

    ingest = Ingest(srv.http, calm["token"])
    ingest.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    r = admin.delete("/api/v1/devices/%s" % big["id"])
    delete_s = time.monotonic() - t0
    assert r.status_code == 204, r.text
    # Gone at once from every answer; its token refused.
    assert admin.get("/api/v1/devices/%s" % big["id"]).status_code == 404
    assert admin.get("/api/v1/devices/%s/data?channel=a" % big["id"]).status_code == 404
    assert requests.post(srv.http + "/api/v1/data", headers=big_ingest, json={"a": 1},
                         timeout=10).status_code == 401
    t1 = time.monotonic()
    r = admin.delete("/api/v1/orgs/%s" % org_c["id"])
    org_delete_s = time.monotonic() - t1
    assert r.status_code == 204, r.text
    assert requests.post(srv.http + "/api/v1/data", headers={"X-Auth-Token": dev_c["token"]},
                         json={"x": 1}, timeout=10).status_code == 401

    purged = wait_purged(srv.data_dir, series + series_c)
    purge_s = time.monotonic() - t0
    time.sleep(0.3)
    ingest.stop.set()
    ingest.join(timeout=35)
    lat, codes = ingest.report()
    report = ("device delete %.0f ms, org delete %.0f ms, purge of %d readings %.1f s; "
              "other org's ingest n=%d p99=%.0f ms max=%.0f ms codes=%s" % (
                  delete_s * 1000, org_delete_s * 1000, 2 * BIG + BIG // 2, purge_s,
                  len(lat), p99(lat) * 1000, max(lat) * 1000, codes))
    print(report)
    assert purged, report
    assert delete_s < 1.0 and org_delete_s < 1.0, report
    assert codes == {200: len(lat)}, report
    assert p99(lat) < 0.2, report
    # Not one commit waited for the purge (a single transaction deleting
    # them all would hold every writer for its whole length).
    assert max(lat) < 0.25, report
    # A new device reuses nothing of the old one.
    _, fresh = new_org_device(admin, prefix="fresh")
    assert requests.post(srv.http + "/api/v1/data", headers={"X-Auth-Token": fresh["token"]},
                         json={"ts": now_ms(), "values": {"a": 5}}, timeout=10).status_code == 200
    r = admin.get("/api/v1/devices/%s/channels" % fresh["id"])
    assert r.status_code == 200 and [c["count"] for c in r.json()] == [1]


def test_purge_resumes_after_a_restart(fresh_server):
    srv = fresh_server()
    admin = login(srv.http)
    _, big = new_org_device(admin, prefix="big")
    series = readings_db.fill(srv.data_dir, big["id"], ["a"], BIG)
    assert admin.delete("/api/v1/devices/%s" % big["id"]).status_code == 204
    srv.kill()
    left = readings_db.count_readings(srv.data_dir, series)
    assert 0 < left <= BIG
    assert readings_db.purge_pending(srv.data_dir) == 1
    srv.start()
    assert wait_purged(srv.data_dir, series), readings_db.count_readings(srv.data_dir, series)
    admin = login(srv.http)
    assert admin.get("/api/v1/devices/%s" % big["id"]).status_code == 404
