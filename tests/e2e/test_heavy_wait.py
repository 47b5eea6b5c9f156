"""A heavy request waiting for its organisation's turn gets its 429 when
its wait runs out (--heavy-wait), even when nothing else finishes
meanwhile: here two long deletes hold the org's share throughout. A delete
pauses at least SS_PURGE_PAUSE_MS (30 ms) after each chunk of
SS_DATA_DELETE_CHUNK_ROWS (10,000) readings, so 600,000 readings take it
more than 1.8 s however fast the machine is (a query no longer does:
buckets are one ordered scan)."""
import threading
import time

import pytest
import requests

import readings_db
from conftest import login, module_server, new_org_device

pytestmark = pytest.mark.serial  # asserts on time or memory: run alone (make test)

WAIT_S = 1
READINGS = 600000  # a channel, one per holder: at least 60 chunks and 60 pauses of 30 ms

srv = module_server(["--heavy-wait", str(WAIT_S)])


def test_wait_ends_on_time_while_the_share_stays_held(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="wait")
    readings_db.fill(srv.data_dir, dev["id"], ["v0", "v1"], READINGS)
    keys = [admin.post("/api/v1/orgs/%s/apikeys" % org["id"],
                       json={"name": "app%d" % i, "scopes": [scope]}).json()["key"]
            for i, scope in enumerate(["manage", "manage", "data:read"])]
    data = srv.http + "/api/v1/devices/%s/data" % dev["id"]
    start = time.monotonic()
    done = {}

    def query(i):
        if i < 2:  # a holder: deletes its channel's every reading, seconds of steps
            r = requests.delete(data + "?channel=v%d&all=true" % i,
                                headers={"Authorization": "Bearer " + keys[i]}, timeout=60)
        else:
            r = requests.get(data + "?channel=v0&every=20000",
                             headers={"Authorization": "Bearer " + keys[i]}, timeout=60)
        done[i] = (r.status_code, time.monotonic() - start, r.text[:200])

    holders = [threading.Thread(target=query, args=(i,)) for i in range(2)]
    for t in holders:
        t.start()
    time.sleep(0.3)  # both hold the org's share now
    query(2)
    for t in holders:
        t.join(timeout=60)
    status, at, text = done[2]
    report = "answers (status, s since start): %s" % {i: v[:2] for i, v in done.items()}
    assert status == 429 and "too_many_requests" in text, report
    # It waited its limit, not until a holder finished.
    assert WAIT_S <= at < WAIT_S + 0.3 + 0.8, report
    assert all(done[i][0] == 200 and done[i][1] > at + 0.2 for i in range(2)), report
