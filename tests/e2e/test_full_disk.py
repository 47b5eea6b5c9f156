"""A full disk (SPEC §4): new data is refused with 503, reads and sign-in are
served, also after a restart, and ingest resumes by itself once space is
freed. Accounting survives a store that cannot write for a while (SPEC §5),
and an HTTP device's session record survives kill -9 as a TCP one does.

The full-disk tests mount a small tmpfs of their own (root only) and skip,
saying why, where that is not permitted."""
import os
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from conftest import Api, Server, login, new_org_device, now_ms

DISK_SIZE = "8m"
DATA = "/api/v1/data"


@pytest.fixture
def small_disk():
    """An 8 MiB file system of the test's own: (mount point, log dir)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tempfile.mkdtemp(prefix="ss-full-")
    logs = tempfile.mkdtemp(prefix="ss-full-log-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + DISK_SIZE, "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(mnt)
        os.rmdir(logs)
        pytest.skip("mount -t tmpfs is not permitted here: " + r.stderr.strip())
    servers = []
    yield mnt, logs, servers
    for srv in servers:
        if srv.proc is not None:
            srv.kill()
    subprocess.run(["umount", mnt], check=False)
    os.rmdir(mnt)
    subprocess.run(["rm", "-rf", logs], check=False)


def start_on(disk, name="first"):
    """A server with its data on the small disk and its log beside it."""
    mnt, logs, servers = disk
    srv = Server(os.path.join(mnt, "data"))
    srv.log_path = os.path.join(logs, name + ".log")
    servers.append(srv)
    return srv.start()


def fill(path):
    """Writes path until the disk has not one byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"x" * size)
                except OSError:
                    break
    finally:
        os.close(fd)


def spare_file(mnt):
    """1.5 MiB of other files on the disk, which the operator will delete to
    free space."""
    other = os.path.join(mnt, "other-files")
    with open(other, "wb") as f:
        f.write(b"o" * (1536 * 1024))
    return other


def post(srv, token, lines, session=None):
    return (session or requests).post(srv.http + DATA, data=lines, timeout=30,
                                      headers={"X-Auth-Token": token,
                                               "Content-Type": "text/plain"})


def batch(k, n, t0):
    return "\n".join("c%d=%d %d" % (i % 10, k, t0 + k * n + i) for i in range(n))


def ingest_until_full(srv, token, t0, per_request=500):
    """Posts batches until one is refused; the last refusal and the count."""
    s = requests.Session()
    for k in range(100000):
        r = post(srv, token, batch(k, per_request, t0), s)
        if r.status_code != 200:
            return r, k
    raise AssertionError("the disk never filled")


def exhaust(srv, token, t0):
    """Single readings until three in a row are refused: the room a failed
    commit left allocated in the log is used up too."""
    refused = 0
    for k in range(1000):
        r = post(srv, token, "last=%d %d" % (k, t0 + k))
        refused = refused + 1 if r.status_code == 503 else 0
        if refused == 3:
            return r
    raise AssertionError("small writes never stopped fitting")


def exhaust_sessions(srv):
    """Signs in and out until a sign-in is kept in memory (its sign-out
    answers 204): refused readings can leave room in the log for a session's
    smaller row, depending on where the schema's pages fell."""
    for _ in range(50):
        if login(srv.http).post("/api/v1/auth/logout").status_code == 204:
            return
    raise AssertionError("sessions never stopped fitting")


def assert_full_refusal(r):
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "store_unavailable"
    assert "full" in r.json()["error"]["message"]


def test_restart_on_a_disk_full_to_the_last_byte(small_disk):
    mnt = small_disk[0]
    srv = start_on(small_disk)
    api = login(srv.http)
    org, dev = new_org_device(api)
    t0 = now_ms() - 3600 * 1000
    assert post(srv, dev["token"], "t=1 %d" % (t0 - 1)).status_code == 200
    time.sleep(1.5)  # records written open, to be ended at the next start
    r, _ = ingest_until_full(srv, dev["token"], t0)
    assert_full_refusal(r)
    fill(os.path.join(mnt, "filler"))
    assert_full_refusal(exhaust(srv, dev["token"], t0 - 10**6))
    assert srv.stop() == 0

    again = start_on(small_disk, "second")  # raises when it does not start
    assert set(again.addrs) >= {"http", "https"}
    r = requests.get(again.http + "/healthz", timeout=10)
    assert r.status_code == 200
    assert r.text.startswith("ok")
    # sign-in and reads are served
    api = login(again.http)
    data = api.get("/api/v1/devices/%s/data?channel=t" % dev["id"])
    assert data.status_code == 200
    assert data.json()["series"]["t"] == [[t0 - 1, 1.0]]
    assert api.get("/api/v1/devices/%s/channels" % dev["id"]).status_code == 200
    assert api.get("/api/v1/orgs/%s/usage" % org["id"]).status_code == 200
    # new data is refused, and says why
    assert_full_refusal(post(again, dev["token"], "t=2"))
    r = requests.get(again.http + "/healthz", timeout=10)
    assert r.status_code == 200 and "full" in r.text
    assert again.stop() == 0


def test_sign_in_while_full_and_its_session_ends_as_any(small_disk):
    mnt = small_disk[0]
    other = spare_file(mnt)
    srv = start_on(small_disk)
    api = login(srv.http)
    org, dev = new_org_device(api)
    t0 = now_ms() - 3600 * 1000
    assert post(srv, dev["token"], "t=7 %d" % (t0 - 1)).status_code == 200
    ingest_until_full(srv, dev["token"], t0)
    fill(os.path.join(mnt, "filler"))
    assert_full_refusal(exhaust(srv, dev["token"], t0 - 10**6))
    exhaust_sessions(srv)

    person = login(srv.http)  # asserts 200
    me = person.get("/api/v1/me")
    assert me.status_code == 200, me.text
    r = person.get("/api/v1/devices/%s/data?channel=t" % dev["id"])
    assert r.status_code == 200 and r.json()["series"]["t"] == [[t0 - 1, 7.0]]
    listed = person.get("/api/v1/me/sessions")
    assert listed.status_code == 200 and any(s["current"] for s in listed.json())
    # revocation holds for a session kept in memory
    assert person.post("/api/v1/auth/logout").status_code == 204
    assert person.get("/api/v1/me").status_code == 401

    # once space returns, a session signed in while full is written
    kept = login(srv.http)
    os.unlink(other)
    time.sleep(2.5)
    srv.stop()
    again = start_on(small_disk, "second")
    kept = Api(again.http, kept.s.headers["Authorization"].split(" ", 1)[1])
    assert kept.get("/api/v1/me").status_code == 200
    assert again.stop() == 0


def test_ingest_resumes_once_space_is_freed(small_disk):
    mnt = small_disk[0]
    other = spare_file(mnt)
    srv = start_on(small_disk)
    api = login(srv.http)
    org, dev = new_org_device(api)
    t0 = now_ms() - 3600 * 1000
    # A long reader (a backup, an export) keeps what the disk fills with in
    # the write-ahead log: none of it can be moved into the database yet.
    reader = sqlite3.connect(os.path.join(srv.data_dir, "sensorspace.db"), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM readings").fetchone()
    r, _ = ingest_until_full(srv, dev["token"], t0, per_request=5000)  # new pages, mostly
    assert_full_refusal(r)
    fill(os.path.join(mnt, "filler"))
    assert_full_refusal(exhaust(srv, dev["token"], t0 - 10**6))
    reader.execute("COMMIT")
    reader.close()

    os.unlink(other)
    os.unlink(os.path.join(mnt, "filler"))
    time.sleep(2.5)  # the background checkpoint has had its chances
    stored = 0
    deadline = time.time() + 5
    s = requests.Session()
    k = 0
    while time.time() < deadline and stored < 5:
        r = post(srv, dev["token"], batch(k, 50, t0 - 2 * 10**6), s)
        k += 1
        if r.status_code == 200:
            stored += 1
        else:
            assert_full_refusal(r)
            time.sleep(0.2)
    # the freed space takes new readings (until it is full again)
    assert stored >= 5, "ingest did not resume: %d batches stored after freeing 1.5 MiB" % stored
    assert srv.stop() == 0


def raw_refusal(addr, token):
    """One refused device request on a connection of its own: bytes sent
    and received, as the socket counts them."""
    host, port = addr.rsplit(":", 1)
    body = b"not a reading"
    req = (b"POST /api/v1/data HTTP/1.1\r\nHost: x\r\nX-Auth-Token: " + token.encode() +
           b"\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: " +
           str(len(body)).encode() + b"\r\n\r\n" + body)
    with socket.create_connection((host, int(port)), timeout=10) as c:
        c.sendall(req)
        got = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
    assert got.startswith(b"HTTP/1.1 400"), got[:80]
    return len(req), len(got)


def test_accounting_survives_a_held_write_lock(fresh_server):
    srv = fresh_server()
    admin = login(srv.https, verify=srv.cert)  # its own bytes count under https
    admin.s.trust_env = False  # REQUESTS_CA_BUNDLE would override the cert
    org, dev = new_org_device(admin)
    db = sqlite3.connect(os.path.join(srv.data_dir, "sensorspace.db"), timeout=10,
                         isolation_level=None)
    sent = received = refused = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        until = time.time() + 6.5  # past the store's 5 s busy timeout
        while time.time() < until:
            i, o = raw_refusal(srv.addrs["http"], dev["token"])
            sent += i
            received += o
            refused += 1
            time.sleep(0.05)
    finally:
        db.execute("ROLLBACK")
        db.close()
    deadline = time.time() + 10
    row = {}
    while time.time() < deadline:
        rows = admin.get("/api/v1/orgs/%s/usage" % org["id"]).json()["usage"]
        row = {k: sum(r[k] for r in rows if r["protocol"] == "http")
               for k in ("bytes_in", "bytes_out", "rejected")}
        if row == {"bytes_in": sent, "bytes_out": received, "rejected": refused}:
            break
        time.sleep(0.5)
    assert row == {"bytes_in": sent, "bytes_out": received, "rejected": refused}
    log = srv.read_log()
    assert "kept for the next write" in log


def tcp_one_reading(addr, token, line):
    """A TCP connection of its own: AUTH, one line, its ACK, close."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as c:
        f = c.makefile("rwb")
        f.write(b"AUTH " + token.encode() + b"\n")
        f.flush()
        assert f.readline() == b"OK\n"
        f.write(line.encode() + b"\n")
        f.flush()
        assert f.readline() == b"ACK 1\n"


@pytest.mark.parametrize("protocol", ["http", "tcp"])
def test_device_records_survive_kill9(fresh_server, protocol):
    srv = fresh_server(["--listen-tcp", "127.0.0.1:0"])
    api = login(srv.http)
    org, dev = new_org_device(api)
    t0 = now_ms() - 60000
    n = 30
    for k in range(n):  # each on a connection of its own: a record each
        line = "v=%d %d" % (k, t0 + k)
        if protocol == "tcp":
            tcp_one_reading(srv.addrs["tcp"], dev["token"], line)
            continue
        r = requests.post(srv.http + DATA, data=line, timeout=10,
                          headers={"X-Auth-Token": dev["token"], "Connection": "close"})
        assert r.status_code == 200
    srv.kill()
    again = Server(srv.data_dir).start()
    try:
        api = login(again.http)
        recs = api.get("/api/v1/orgs/%s/sessions?kind=device&limit=1000" % org["id"]).json()
        mine = [r for r in recs if r["principal_id"] == dev["id"] and r["protocol"] == protocol]
        assert len(mine) == n, "%d of %d %s device records survived kill -9" % (len(mine), n,
                                                                                  protocol)
        for r in mine:
            assert r["ended_at"] is not None
            assert r["end_reason"] in ("closed", "crash"), r
        assert any(r["end_reason"] == "crash" for r in mine)
        assert sum(r["readings"] for r in mine) == n
    finally:
        again.stop()
