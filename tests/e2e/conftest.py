"""End-to-end fixtures: the real sensorspace binary on free ports, with a
data dir of its own, driven by real clients (requests, curl, raw sockets)."""
import os
import re
import select
import signal
import socket
import subprocess
import tempfile
import time
import shutil
import sqlite3

import pytest
import requests
import urllib3

BIN = os.environ.get("SENSORSPACE_BIN", os.path.join(os.path.dirname(__file__), "../../build/sensorspace"))
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct-horse-battery"
START_TIMEOUT = 30

# Secrets must never reach a log (SPEC §2). Every test server runs at debug
# level, and its log is searched for anything shaped like one of our secrets
# and for the passwords the tests use, when it stops.
SECRET_PATTERN = re.compile(rb"ss[dsk]_[0-9a-f]{16,}")
TEST_PASSWORDS = [ADMIN_PASSWORD, "member-password-1", "a-long-password-1", "a-long-password-2",
                  "chosen-password-77", "new-password-22", "reset-password-3", "wrong-password-1",
                  "wrong-password-123", "wrong-password-9", "wrong-password-x", "bench-password-123"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "serial: asserts on time or latency, so needs the machine to itself: "
        "`make test` runs these alone, after the parallel run of the rest")


def assert_no_secrets(log_bytes, where):
    m = SECRET_PATTERN.search(log_bytes)
    assert m is None, "a secret reached the log of %s: %r" % (where, m.group(0)[:12])
    for pw in TEST_PASSWORDS:
        assert pw.encode() not in log_bytes, "a password reached the log of %s" % where


class Server:
    """One running server process and what it printed."""

    def __init__(self, data_dir, extra_args=(), env=None):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.addrs = {}
        self.stdout_lines = []
        self.log_path = os.path.join(data_dir, "server.log")

    def start(self):
        env = dict(os.environ)
        env.setdefault("SENSORSPACE_ADMIN_EMAIL", ADMIN_EMAIL)
        env.setdefault("SENSORSPACE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        if self.env:
            env.update(self.env)
        args = [BIN, "serve", "--data-dir", self.data_dir,
                "--listen-http", "127.0.0.1:0", "--listen-https", "127.0.0.1:0",
                "--listen-mqtt", "off", "--listen-mqtts", "off",
                "--listen-tcp", "off", "--listen-udp", "off",
                "--log-level", "debug"] + self.extra_args
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.addrs = {}
        want = ({"http", "https"} | self._on_listeners()) - {a.split("-", 1)[1] for a in self._off_listeners()}
        deadline = time.time() + START_TIMEOUT
        buf = b""
        while want - set(self.addrs):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("server did not start: %r\n%s" % (buf, self.read_log()))
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if not r:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode()
                self.stdout_lines.append(text)
                parts = text.split()
                if len(parts) == 3 and parts[0] == "listening":
                    self.addrs[parts[1]] = parts[2]
        return self

    def _off_listeners(self):
        offs = []
        for i, a in enumerate(self.extra_args):
            if a.startswith("--listen-") and i + 1 < len(self.extra_args) and self.extra_args[i + 1] == "off":
                offs.append(a[2:])
        return offs

    def _on_listeners(self):
        """Listeners besides http/https that extra_args turn on (tcp, udp,
        mqtt, mqtts): start() waits for their "listening" lines too."""
        ons = set()
        for i, a in enumerate(self.extra_args):
            name = a[len("--listen-"):] if a.startswith("--listen-") else ""
            if name in ("tcp", "udp", "mqtt", "mqtts") and i + 1 < len(self.extra_args) and self.extra_args[i + 1] != "off":
                ons.add(name)
        return ons

    @property
    def http(self):
        return "http://" + self.addrs["http"]

    @property
    def https(self):
        return "https://" + self.addrs["https"].replace("127.0.0.1", "localhost")

    @property
    def cert(self):
        return os.path.join(self.data_dir, "tls-cert.pem")

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        self.proc = None
        with open(self.log_path, "rb") as f:
            assert_no_secrets(f.read(), self.data_dir)
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)


class Api:
    """A signed-in client of the REST API."""

    def __init__(self, base, token=None, verify=True):
        self.base = base
        self.s = requests.Session()
        self.s.verify = verify
        if token:
            self.s.headers["Authorization"] = "Bearer " + token

    def url(self, path):
        return self.base + path

    def get(self, path, **kw):
        return self.s.get(self.url(path), timeout=30, **kw)

    def post(self, path, **kw):
        return self.s.post(self.url(path), timeout=30, **kw)

    def patch(self, path, **kw):
        return self.s.patch(self.url(path), timeout=30, **kw)

    def delete(self, path, **kw):
        return self.s.delete(self.url(path), timeout=30, **kw)

    def put(self, path, **kw):
        return self.s.put(self.url(path), timeout=30, **kw)


def login(base, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, verify=True):
    r = requests.post(base + "/api/v1/auth/login", json={"email": email, "password": password},
                      timeout=30, verify=verify)
    assert r.status_code == 200, r.text
    return Api(base, r.json()["token"], verify)


def new_server(extra_args=(), env=None):
    d = tempfile.mkdtemp(prefix="ss-e2e-")
    return Server(d, extra_args, env)


def running_server(args=()):
    """Starts a server, yields it, and checks it stops cleanly (exit 0)."""
    srv = new_server(args).start()
    yield srv
    rc = srv.stop()
    log = srv.read_log()
    shutil.rmtree(srv.data_dir, ignore_errors=True)
    assert rc == 0, "server exited %s\n%s" % (rc, log)
    return log


def module_server(args):
    """A module-scoped fixture of a server started with extra args."""
    @pytest.fixture(scope="module")
    def srv():
        yield from running_server(args)
    return srv


@pytest.fixture(scope="session")
def server():
    yield from running_server()


@pytest.fixture
def fresh_server():
    """A server of the test's own, for restarts and kills."""
    srvs = []

    def make(extra_args=(), env=None):
        srv = new_server(extra_args, env)
        srvs.append(srv)
        return srv.start()

    yield make
    codes = []
    for srv in srvs:
        running = srv.proc is not None and srv.proc.poll() is None
        rc = srv.stop()
        if running:
            codes.append((rc, srv.read_log()))
        shutil.rmtree(srv.data_dir, ignore_errors=True)
    for rc, log in codes:
        assert rc == 0, "server exited %s\n%s" % (rc, log)


@pytest.fixture(scope="session")
def admin(server):
    return login(server.http)


@pytest.fixture
def org(admin):
    r = admin.post("/api/v1/orgs", json={"name": "org-%d" % time.monotonic_ns()})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def device(admin, org):
    r = admin.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "sensor-1"})
    assert r.status_code == 201, r.text
    return r.json()


def now_ms():
    return int(time.time() * 1000)


def new_org_device(api, parent=None, prefix="org"):
    """A new organisation (under parent, if given) with one device: (org, device
    with its token)."""
    body = {"name": "%s-%d" % (prefix, time.monotonic_ns())}
    if parent:
        body["parent_id"] = parent
    org = api.post("/api/v1/orgs", json=body)
    assert org.status_code == 201, org.text
    dev = api.post("/api/v1/orgs/%s/devices" % org.json()["id"], json={"name": "%s-dev" % prefix})
    assert dev.status_code == 201, dev.text
    return org.json(), dev.json()


def http_addr(server):
    """(host, port) of the server's plain HTTP listener, for raw sockets."""
    host, port = server.addrs["http"].rsplit(":", 1)
    return host, int(port)


def read_until_close(s):
    """Everything the server sends until it closes (or the socket's timeout)."""
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def raw_http(server, data, timeout=15):
    """Sends data on a new plain HTTP connection; returns all the server
    sent until it closed."""
    s = socket.create_connection(http_addr(server), timeout=timeout)
    s.sendall(data)
    out = read_until_close(s)
    s.close()
    return out


def burst_heads(server, request, n):
    """Sends one raw request on each of n new connections at once; returns
    what each connection had received once its answer's head was in (the
    head, and whatever of the body came with it)."""
    socks = [socket.create_connection(http_addr(server), timeout=30) for _ in range(n)]
    for s in socks:
        s.sendall(request)
    heads = []
    for s in socks:
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        heads.append(buf)
        s.close()
    return heads


def rss_kb(pid):
    """The process's resident memory (VmRSS) in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for process %d" % pid)


def rewind_schema(data_dir, version_now, script):
    """Runs script (SQL that undoes migrations, ending in PRAGMA
    user_version) on a stopped server's store, which must be at
    version_now: the next start migrates it forward again."""
    db = sqlite3.connect(os.path.join(data_dir, "sensorspace.db"), isolation_level=None)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == version_now
        db.execute("PRAGMA foreign_keys = OFF")
        db.executescript(script)
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()
