"""Space coming back after a full disk (docs/operations.md, "A full disk"):
the log the full disk left is folded and truncated without failing the
ingest that resumes meanwhile. The truncation waits for readers (a backup,
an export) while it holds the write lock; it waits briefly and tries again
rather than hold ingest commits for the busy timeout."""
import os
import sqlite3
import time

import pytest
import requests

from conftest import login, new_org_device, now_ms
from test_full_disk import (assert_full_refusal, batch, exhaust, fill,  # noqa: F401
                            ingest_until_full, post, small_disk, start_on)

pytestmark = pytest.mark.serial  # asserts on time or memory: run alone (make test)


@pytest.fixture
def readers():
    """Opens a reader (an export) of a data dir, holding its snapshot; all
    closed at the end, before the disk is unmounted."""
    opened = []

    def open_reader(data_dir):
        db = sqlite3.connect(os.path.join(data_dir, "sensorspace.db"), isolation_level=None)
        opened.append(db)
        db.execute("BEGIN")
        db.execute("SELECT count(*) FROM readings").fetchone()
        return db
    yield open_reader
    for db in opened:
        db.close()


def test_log_folded_while_ingest_goes_on(small_disk, readers):
    mnt = small_disk[0]
    other = os.path.join(mnt, "other-files")
    with open(other, "wb") as f:
        f.write(b"o" * (5 * 1024 * 1024))  # 5 MiB the operator will delete
    srv = start_on(small_disk)
    api = login(srv.http)
    org, dev = new_org_device(api)
    t0 = now_ms() - 3600 * 1000
    wal = os.path.join(srv.data_dir, "sensorspace.db-wal")
    # a reader (an export) holds the log's contents unfolded
    reader = readers(srv.data_dir)
    assert_full_refusal(ingest_until_full(srv, dev["token"], t0, per_request=2000)[0])
    fill(os.path.join(mnt, "filler"))
    assert_full_refusal(exhaust(srv, dev["token"], t0 - 10**6))
    full_log = os.path.getsize(wal)
    assert full_log > 1 << 20

    os.unlink(other)  # room for a checkpoint of the whole log, and more
    os.unlink(os.path.join(mnt, "filler"))
    s = requests.Session()
    codes, slow = [], []
    deadline = time.monotonic() + 2.5
    k = 0
    while time.monotonic() < deadline:  # the reader still reads
        t = time.monotonic()
        codes.append(post(srv, dev["token"], batch(k, 5, t0 - 3 * 10**6), s).status_code)
        slow.append(time.monotonic() - t)
        k += 1
        time.sleep(0.05)
    assert codes.count(200) == len(codes), codes
    assert max(slow) < 1.0, max(slow)

    reader.execute("COMMIT")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.path.getsize(wal) >= full_log:
        r = post(srv, dev["token"], batch(k, 5, t0 - 3 * 10**6), s)
        assert r.status_code == 200, r.text
        k += 1
        time.sleep(0.05)
    assert os.path.getsize(wal) < full_log  # folded and truncated: its space is back
    assert srv.stop() == 0


def test_truncation_waiting_for_a_reader_does_not_hold_ingest(small_disk, readers):
    mnt = small_disk[0]
    srv = start_on(small_disk)
    api = login(srv.http)
    org, dev = new_org_device(api)
    t0 = now_ms() - 3600 * 1000
    assert post(srv, dev["token"], batch(0, 100, t0)).status_code == 200
    time.sleep(1.5)  # folded: the log is small
    filler = os.path.join(mnt, "filler")
    fill(filler)
    assert_full_refusal(exhaust(srv, dev["token"], t0 - 10**6))
    reader = readers(srv.data_dir)

    os.unlink(filler)  # the log fits many times: its truncation is due
    s = requests.Session()
    codes, slow = [], []
    deadline = time.monotonic() + 3
    k = 1
    while time.monotonic() < deadline:  # the reader still reads
        t = time.monotonic()
        codes.append(post(srv, dev["token"], batch(k, 5, t0), s).status_code)
        slow.append(time.monotonic() - t)
        k += 1
        time.sleep(0.05)
    reader.execute("COMMIT")
    assert codes.count(200) == len(codes), codes
    assert max(slow) < 1.0, max(slow)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and b"truncated" not in open(srv.log_path, "rb").read():
        time.sleep(0.1)
    assert b"folded into the database and truncated" in open(srv.log_path, "rb").read()
    assert srv.stop() == 0
