"""The purge of a deleted device's readings on a nearly full disk
(docs/operations.md, "A full disk"): deleting readings writes pages to the
log as ingest does, so while the disk is full or a checkpoint would not
fit, the purge waits and leaves the space to ingest; it resumes by itself
once space is freed. /metrics shows the backlog."""
import os
import re
import time

import requests

import readings_db
from conftest import login, new_org_device
from test_full_disk import small_disk, start_on  # noqa: F401

BIG = 150000  # readings of the deleted device: a few MiB of log to purge
FREE_LEFT = 900 * 1024  # below the room a checkpoint keeps, above a few commits


def free_bytes(path):
    v = os.statvfs(path)
    return v.f_bavail * v.f_frsize


def purge_metrics(base):
    text = requests.get(base + "/metrics", timeout=30).text
    pending = re.search(r"^sensorspace_purge_pending_series (\d+)", text, re.M)
    purged = re.search(r"^sensorspace_readings_purged_total (\d+)", text, re.M)
    assert pending and purged, text
    return int(pending.group(1)), int(purged.group(1))


def test_purge_waits_while_a_checkpoint_would_not_fit(small_disk):
    mnt = small_disk[0]
    srv = start_on(small_disk)
    api = login(srv.http)
    _, big = new_org_device(api)
    _, small = new_org_device(api, prefix="small")
    series = readings_db.fill(srv.data_dir, big["id"], ["a"], BIG)
    db = readings_db.connect(srv.data_dir)
    assert db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    db.close()
    filler = os.path.join(mnt, "filler")
    with open(filler, "wb") as f:
        f.write(b"x" * (free_bytes(mnt) - FREE_LEFT))
    assert purge_metrics(srv.http) == (0, 0)

    assert api.delete("/api/v1/devices/%s" % big["id"]).status_code == 204
    s = requests.Session()
    s.headers["X-Auth-Token"] = small["token"]
    codes = []
    for k in range(15):
        codes.append(s.post(srv.http + "/api/v1/data", data="t=%d" % k, timeout=30).status_code)
        time.sleep(0.15)
    assert codes == [200] * len(codes), codes
    assert purge_metrics(srv.http)[0] == 1
    assert readings_db.count_readings(srv.data_dir, series) == BIG
    assert "store full" not in requests.get(srv.http + "/healthz", timeout=10).text

    os.unlink(filler)  # room again: the purge resumes by itself
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and purge_metrics(srv.http) != (0, BIG):
        time.sleep(0.2)
    assert purge_metrics(srv.http) == (0, BIG)
    assert readings_db.count_readings(srv.data_dir, series) == 0
    assert srv.stop() == 0
