"""UDP ingest (SPEC §3.5, docs/protocols.md): one datagram
"<token>\\n<line>\\n…", stored whole or not at all, no reply, refusals
counted (read back from the server's debug log)."""
import re
import socket
import time

import pytest

from conftest import new_org_device, login, now_ms, running_server

UDP_ARGS = ["--listen-udp", "127.0.0.1:0", "--listen-tcp", "off", "--log-level", "debug"]
DATAGRAM_MAX = 65507
REFUSED_RE = re.compile(r"refused datagram from \S+ \((\d+) refused so far\)")


@pytest.fixture(scope="module")
def srv():
    log = yield from running_server(UDP_ARGS)
    assert re.search(r"udp: \d+ datagrams stored, \d+ refused", log), log


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


@pytest.fixture
def dev(api):
    return make_device(api)


def make_device(api):
    return new_org_device(api, prefix="udp")[1]


def send(srv, payload, family=socket.AF_INET):
    host, port = srv.addrs["udp"].rsplit(":", 1)
    host = host.strip("[]")
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.sendto(payload.encode() if isinstance(payload, str) else payload, (host, int(port)))


def series(api, dev, channel="t"):
    r = api.get("/api/v1/devices/%s/data?channel=%s&limit=100000" % (dev["id"], channel))
    assert r.status_code == 200, r.text
    return r.json()["series"].get(channel, [])


def wait_for(api, dev, n, channel="t", timeout=10):
    """UDP has no answer: poll until n points are stored."""
    deadline = time.time() + timeout
    while True:
        got = series(api, dev, channel)
        if len(got) >= n or time.time() > deadline:
            return got
        time.sleep(0.05)


def refused_so_far(srv):
    counts = [int(m) for m in REFUSED_RE.findall(srv.read_log())]
    return max(counts) if counts else 0


def wait_refused(srv, n, timeout=10):
    deadline = time.time() + timeout
    while refused_so_far(srv) < n and time.time() < deadline:
        time.sleep(0.05)
    return refused_so_far(srv)


def barrier(srv, api, dev, ts):
    """A good datagram after the ones under test: once it is stored, the
    earlier ones have been handled too (one loop, one store thread, FIFO)."""
    send(srv, "%s\nbarrier=1 %d\n" % (dev["token"], ts))
    assert wait_for(api, dev, 1, "barrier") == [[ts, 1]]


def test_good_datagram_is_stored_whole(srv, api, dev):
    ts = now_ms() - 1000
    send(srv, "%s\nt=1,rh=40 %d\n# comment\n\nt=2 %d\r\nt=3 %d" % (dev["token"], ts, ts + 1, ts + 2))
    assert wait_for(api, dev, 3) == [[ts, 1], [ts + 1, 2], [ts + 2, 3]]
    assert series(api, dev, "rh") == [[ts, 40]]


def test_token_line_with_crlf(srv, api, dev):
    ts = now_ms() - 1500
    send(srv, "%s\r\nt=7 %d\n" % (dev["token"], ts))
    assert wait_for(api, dev, 1) == [[ts, 7]]


def test_one_bad_line_stores_nothing_and_is_counted(srv, api, dev):
    ts = now_ms() - 2000
    before = refused_so_far(srv)
    send(srv, "%s\nt=1 %d\nt=oops %d\nt=3 %d\n" % (dev["token"], ts, ts + 1, ts + 2))
    barrier(srv, api, dev, ts + 10)
    assert series(api, dev) == []
    assert wait_refused(srv, before + 1) == before + 1


def test_wrong_token_is_refused_and_counted(srv, api, dev):
    ts = now_ms() - 3000
    before = refused_so_far(srv)
    send(srv, "ssd_%s\nt=1 %d\n" % ("0" * 64, ts))
    send(srv, "\nt=1 %d\n" % ts)                       # empty token line
    send(srv, "t=1 %d\n" % ts)                         # no token at all
    send(srv, dev["token"])                            # no newline after it
    send(srv, dev["token"] + " \nt=1\n")               # the token is exact
    barrier(srv, api, dev, ts + 10)
    assert series(api, dev) == []
    assert wait_refused(srv, before + 5) == before + 5


def test_empty_datagram_and_token_only_are_refused(srv, api, dev):
    before = refused_so_far(srv)
    send(srv, b"")
    send(srv, dev["token"] + "\n")                     # no readings
    send(srv, dev["token"] + "\n# only a comment\n\n")
    barrier(srv, api, dev, now_ms() - 100)
    assert wait_refused(srv, before + 3) == before + 3
    assert series(api, dev) == []


def test_disabled_device_is_refused(srv, api):
    d = make_device(api)
    assert api.patch("/api/v1/devices/%s" % d["id"], json={"disabled": True}).status_code == 200
    before = refused_so_far(srv)
    send(srv, "%s\nt=1\n" % d["token"])
    assert wait_refused(srv, before + 1) == before + 1
    assert series(api, d) == []


def datagram_of(token, ts, size):
    """A valid datagram of exactly `size` bytes: lines of 8 readings, the
    last line padded with a longer ts-free value."""
    head = token + "\n"
    lines = []
    used = len(head)
    i = 0
    while True:
        line = "t=%d %d\n" % (i % 10, ts + i)
        if used + len(line) + 40 > size:
            break
        lines.append(line)
        used += len(line)
        i += 1
    pad = size - used - len("z=1\n")
    lines.append("z=1" + ("." + "0" * (pad - 1) if pad else "") + "\n")
    d = head + "".join(lines)
    assert len(d) == size, (len(d), size)
    return d, i


def test_datagram_at_the_size_limit_is_stored(srv, api, dev):
    ts = now_ms() - 500000
    d, n = datagram_of(dev["token"], ts, DATAGRAM_MAX)
    send(srv, d)
    assert len(wait_for(api, dev, n)) == n
    assert len(series(api, dev, "z")) == 1


def test_datagram_over_the_limit_is_refused(fresh_server):
    """IPv4 cannot carry more than 65507 bytes; IPv6 can carry 20 more, and
    the limit is the same there."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    s = fresh_server(["--listen-udp", "[::1]:0", "--listen-tcp", "off", "--log-level", "debug"])
    api = login(s.http)
    dev = make_device(api)
    ts = now_ms() - 600000
    d, n = datagram_of(dev["token"], ts, DATAGRAM_MAX + 1)
    send(s, d, socket.AF_INET6)
    big, _ = datagram_of(dev["token"], ts, DATAGRAM_MAX + 20)
    send(s, big, socket.AF_INET6)
    ok, m = datagram_of(dev["token"], ts + 100000, DATAGRAM_MAX)
    send(s, ok, socket.AF_INET6)
    assert len(wait_for(api, dev, m)) == m
    assert wait_refused(s, 2) == 2
    assert len(series(api, dev)) == m
    assert "over UDP_INGEST_DATAGRAM_MAX" in s.read_log()


def test_too_many_readings_in_one_datagram_is_refused(srv, api, dev):
    before = refused_so_far(srv)
    # 10 001 readings fit in a datagram of short pairs; the per-batch limit
    # is 10 000 as for an HTTP request
    send(srv, dev["token"] + "\n" + ",".join(["a=1"] * 10001) + "\n")
    assert wait_refused(srv, before + 1) == before + 1
    assert "more than 10000 readings" in srv.read_log()
    assert series(api, dev, "a") == []


def test_many_datagrams_each_stored_whole(srv, api, dev):
    ts = now_ms() - 700000
    n = 300
    for i in range(n):
        send(srv, "%s\nt=%d %d\nu=%d %d\n" % (dev["token"], i, ts + i, i, ts + i))
        if i % 50 == 0:
            time.sleep(0.02)  # stay well inside the socket's receive buffer
    got = wait_for(api, dev, n)
    assert len(got) == n
    assert len(wait_for(api, dev, n, "u")) == n
