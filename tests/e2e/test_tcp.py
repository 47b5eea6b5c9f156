"""TCP direct socket ingest (SPEC §3.4, docs/protocols.md): AUTH, line
framing across segments, ACK counts against what is stored, ERR lines,
limits, timeouts, half-close, kill -9, and revocation closing a live
connection."""
import socket
import time

import pytest

from conftest import new_org_device, Server, login, module_server, now_ms

TCP_ARGS = ["--listen-tcp", "127.0.0.1:0", "--listen-udp", "off", "--log-level", "debug"]
LINE_MAX = 64 * 1024


srv = module_server(TCP_ARGS)


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


@pytest.fixture
def dev(api):
    return make_device(api)


def make_device(api):
    return new_org_device(api, prefix="tcp")[1]


class Conn:
    """A raw client: bytes out as given, answer lines in."""

    def __init__(self, srv, nodelay=False):
        host, port = srv.addrs["tcp"].rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=10)
        if nodelay:
            self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def line(self, timeout=10):
        """The next answer line, or None at EOF."""
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            if self.eof:
                return None
            left = deadline - time.time()
            assert left > 0, "no answer line within %ss (have %r)" % (timeout, self.buf)
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def until_ack(self, n, timeout=30):
        """Reads answers up to "ACK n"; returns the ERR lines seen on the way."""
        errs = []
        while True:
            ln = self.line(timeout)
            assert ln is not None, "closed before ACK %d (errors %r)" % (n, errs)
            if ln.startswith("ERR"):
                errs.append(ln)
                continue
            assert ln.startswith("ACK "), ln
            got = int(ln.split()[1])
            assert got <= n, "ACK %d past the %d expected" % (got, n)
            if got == n:
                return errs

    def rest(self, timeout=15):
        """Every answer line until EOF."""
        out = []
        while True:
            ln = self.line(timeout)
            if ln is None:
                return out
            out.append(ln)

    def auth(self, token):
        self.send("AUTH %s\n" % token)
        assert self.line() == "OK"
        return self

    def close(self):
        self.s.close()


def count(api, dev, channel="t"):
    chans = {c["name"]: c for c in api.get("/api/v1/devices/%s/channels" % dev["id"]).json()}
    return chans[channel]["count"] if channel in chans else 0


def series(api, dev, channel="t", limit=100000):
    r = api.get("/api/v1/devices/%s/data?channel=%s&limit=%d" % (dev["id"], channel, limit))
    assert r.status_code == 200, r.text
    return r.json()["series"].get(channel, [])


# ---- AUTH --------------------------------------------------------------------


def test_auth_then_line_is_acked_and_stored(srv, api, dev):
    c = Conn(srv).auth(dev["token"])
    ts = now_ms() - 1000
    c.send("t=21.5,rh=40 %d\n" % ts)
    assert c.line() == "ACK 1"
    assert series(api, dev) == [[ts, 21.5]]
    assert series(api, dev, "rh") == [[ts, 40]]
    c.close()


def test_wrong_token_is_refused_and_closed(srv, dev):
    c = Conn(srv)
    c.send("AUTH ssd_%s\n" % ("0" * 64))
    assert c.rest() == ["ERR 401 invalid_token"]


def test_auth_word_is_exact(srv, dev):
    for first in ("auth %s\n" % dev["token"], "AUTH  %s\n" % dev["token"], "AUTH\n",
                  "AUTH %s trailing\n" % dev["token"]):
        c = Conn(srv)
        c.send(first)
        assert c.rest() == ["ERR 401 invalid_token"], first


def test_data_before_auth_is_refused(srv, api, dev):
    c = Conn(srv)
    c.send("t=1\nAUTH %s\nt=2\n" % dev["token"])
    assert c.rest() == ["ERR 401 invalid_token"]
    assert count(api, dev) == 0


def test_overlong_first_line_is_refused_without_waiting_for_its_end(srv):
    c = Conn(srv)
    c.send("AUTH " + "x" * 4096)
    assert c.rest() == ["ERR 401 invalid_token"]


def test_auth_with_crlf_and_lines_in_the_same_segment(srv, api, dev):
    ts = now_ms() - 2000
    c = Conn(srv)
    c.send("AUTH %s\r\nt=1 %d\r\nt=2 %d\r\n" % (dev["token"], ts, ts + 1))
    assert c.line() == "OK"
    assert c.until_ack(2) == []
    assert series(api, dev) == [[ts, 1], [ts + 1, 2]]


# ---- framing -------------------------------------------------------------------


def test_lines_split_at_every_byte(srv, api, dev):
    """Every byte its own segment (TCP_NODELAY, a pause between sends)."""
    ts = now_ms() - 10000
    c = Conn(srv, nodelay=True)
    data = "AUTH %s\n" % dev["token"] + "".join("t=%d.5 %d\n" % (i, ts + i) for i in range(3))
    for b in data:
        c.send(b)
        time.sleep(0.002)
    assert c.line() == "OK"
    c.until_ack(3)
    assert series(api, dev) == [[ts + i, i + 0.5] for i in range(3)]


def test_one_line_split_at_every_point(srv, api, dev):
    ts = now_ms() - 20000
    c = Conn(srv, nodelay=True).auth(dev["token"])
    n = 0
    line = "t=12.25,rh=7 %d\r\n" % ts
    for k in range(1, len(line)):
        this = line.replace(str(ts), str(ts + k))
        c.send(this[:k])
        time.sleep(0.02)
        c.send(this[k:])
        n += 1
        assert c.until_ack(n) == []
    got = series(api, dev)
    assert got == [[ts + k, 12.25] for k in range(1, len(line))]
    assert count(api, dev, "rh") == n


def test_many_lines_in_one_write(srv, api, dev):
    ts = now_ms() - 100000
    n = 5000
    c = Conn(srv).auth(dev["token"])
    c.send("".join("t=%d %d\n" % (i, ts + i) for i in range(n)))
    assert c.until_ack(n) == []
    got = series(api, dev)
    assert len(got) == n and got[0] == [ts, 0] and got[-1] == [ts + n - 1, n - 1]


def test_crlf_blank_and_comment_lines_count_as_lines(srv, api, dev):
    ts = now_ms() - 3000
    c = Conn(srv).auth(dev["token"])
    # lines: 1 comment, 2 data, 3 blank, 4 bad, 5 data (CRLF), 6 blank (CRLF)
    c.send("# hello\nt=1 %d\n\nt=oops\nt=2 %d\r\n\r\n" % (ts, ts + 1))
    errs = c.until_ack(2)
    assert len(errs) == 1 and errs[0].startswith("ERR 4 400 bad_reading"), errs
    assert series(api, dev) == [[ts, 1], [ts + 1, 2]]


def test_bad_lines_are_answered_and_the_rest_goes_on(srv, api, dev):
    ts = now_ms() - 4000
    c = Conn(srv).auth(dev["token"])
    bad = ["t=", "=1", "t=1 notats", "t=1e999", "bad name=1", "t=1 1", "t=1\rx", "t=1,",
           "t=NaN", "t=1 %d" % (now_ms() + 3600 * 1000)]
    lines = []
    for i, b in enumerate(bad):
        lines.append("t=%d %d" % (i, ts + i))
        lines.append(b)
    c.send("\n".join(lines) + "\n")
    errs = c.until_ack(len(bad))
    assert [e.split()[1:4] for e in errs] == [[str(2 * i + 2), "400", "bad_reading"] for i in range(len(bad))]
    for e in errs:
        assert "\r" not in e
    assert len(series(api, dev)) == len(bad)


def test_line_at_the_limit_is_stored_and_over_it_refused_with_413(srv, api, dev):
    ts = now_ms() - 5000
    c = Conn(srv, nodelay=True).auth(dev["token"])
    # a value is at most 128 bytes and a device has at most 1024 channels,
    # so a long line is 1000 readings of long values
    zeros = [56 + (i < 529) for i in range(1000)]
    pairs = "".join(",p%04d=1.%s" % (i, "0" * z) for i, z in enumerate(zeros))
    at_limit = "t=1.000" + pairs
    assert len(at_limit) == LINE_MAX
    over = "t=2.0000" + pairs
    c.send(at_limit + "\n")
    assert c.until_ack(1) == []
    # over the limit: refused as soon as it overflows, the rest skipped to its
    # newline, then the connection goes on
    c.send(over[:40000])
    time.sleep(0.05)
    c.send(over[40000:] + "tail,with=junk\n")
    c.send("t=3 %d\n" % ts)
    errs = c.until_ack(2)
    assert errs == ["ERR 2 413 too_large"]
    # one byte over with CRLF: the CR is not content, the limit still holds
    c.send(at_limit + "\r\n")
    c.send(over + "\r\n")
    errs = c.until_ack(3)
    assert errs == ["ERR 5 413 too_large"]
    assert count(api, dev) == 3


# ---- timing ------------------------------------------------------------------


def test_slow_drip_of_a_line_is_fine(srv, api, dev):
    ts = now_ms() - 6000
    c = Conn(srv, nodelay=True).auth(dev["token"])
    for ch in "t=99 %d\n" % ts:
        c.send(ch)
        time.sleep(0.05)
    assert c.line() == "ACK 1"
    assert series(api, dev) == [[ts, 99]]


# SPEC §4's 10 s for the AUTH line, shortened by --first-message-timeout
# (test_first_message_timeout.py checks that 10 s is the default).
AUTH_TIMEOUT_S = 1


def test_auth_must_be_complete_within_the_first_message_timeout_even_dripped(fresh_server):
    s = fresh_server(TCP_ARGS + ["--first-message-timeout", str(AUTH_TIMEOUT_S)])
    d = make_device(login(s.http))
    c = Conn(s, nodelay=True)
    start = time.time()
    line = "AUTH %s" % d["token"]
    closed = False
    for ch in line:
        try:
            c.send(ch)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.05)
        if time.time() - start > AUTH_TIMEOUT_S + 4:
            break
    assert closed or c.rest(timeout=5) == []
    assert AUTH_TIMEOUT_S - 0.1 <= time.time() - start <= AUTH_TIMEOUT_S + 6


def test_idle_connection_times_out(fresh_server):
    s = fresh_server(TCP_ARGS + ["--tcp-idle-timeout", "2"])
    d = make_device(login(s.http))
    c = Conn(s).auth(d["token"])
    time.sleep(1.2)
    c.send("t=1\n")
    assert c.line() == "ACK 1"
    start = time.time()
    assert c.rest(timeout=10) == []
    assert 1.5 <= time.time() - start <= 5


# ---- end of stream ---------------------------------------------------------------


def test_half_close_commits_and_answers_then_closes(srv, api, dev):
    ts = now_ms() - 7000
    n = 2000
    c = Conn(srv).auth(dev["token"])
    c.send("".join("t=%d %d\n" % (i, ts + i) for i in range(n)) + "t=bad\n")
    c.s.shutdown(socket.SHUT_WR)
    out = c.rest()
    assert out[-1] == "ACK %d" % n, out
    assert "ERR %d 400 bad_reading" % (n + 1) in " ".join(out)
    assert len(series(api, dev)) == n


def test_unterminated_last_line_is_refused_not_stored(srv, api, dev):
    ts = now_ms() - 8000
    c = Conn(srv).auth(dev["token"])
    c.send("t=1 %d\nt=2" % ts)
    c.s.shutdown(socket.SHUT_WR)
    out = c.rest()
    assert out[0] == "ACK 1" or out[1] == "ACK 1", out
    assert any(o.startswith("ERR 2 400 bad_reading") for o in out), out
    assert series(api, dev) == [[ts, 1]]


# ---- what ACK promises -------------------------------------------------------------


def test_ack_counts_match_what_is_stored(srv, api, dev):
    ts = now_ms() - 200000
    c = Conn(srv).auth(dev["token"])
    sent_good = 0
    line_no = 0
    expect_errs = []
    for burst in range(20):
        chunk = []
        for i in range(burst * 7 + 1):
            line_no += 1
            if (line_no % 13) == 0:
                chunk.append("t=x")
                expect_errs.append(line_no)
            else:
                chunk.append("t=%d %d" % (line_no, ts + line_no))
                sent_good += 1
        c.send("\n".join(chunk) + "\n")
        time.sleep(0.01)
    errs = c.until_ack(sent_good)
    assert [int(e.split()[1]) for e in errs] == expect_errs
    assert len(series(api, dev)) == sent_good


def test_kill9_after_ack_keeps_every_acked_line(fresh_server):
    s = fresh_server(TCP_ARGS)
    a = login(s.http)
    d = make_device(a)
    ts = now_ms() - 300000
    c = Conn(s).auth(d["token"])
    n = 0
    for burst in range(10):
        c.send("".join("t=%d %d\n" % (n + i, ts + n + i) for i in range(100)))
        n += 100
        c.until_ack(n)
    s.kill()
    again = Server(s.data_dir, TCP_ARGS).start()
    try:
        got = series(login(again.http), d)
        assert len(got) == n
        assert got[-1] == [ts + n - 1, n - 1]
        # the token still works on the restarted server
        Conn(again).auth(d["token"]).close()
    finally:
        assert again.stop() == 0


def test_sigterm_commits_and_acks_in_flight_lines(fresh_server):
    s = fresh_server(TCP_ARGS)
    a = login(s.http)
    d = make_device(a)
    ts = now_ms() - 400000
    c = Conn(s).auth(d["token"])
    c.send("t=0 %d\n" % ts)
    assert c.line() == "ACK 1"
    c.send("".join("t=%d %d\n" % (i, ts + i) for i in range(1, 3000)))
    rc = s.stop()
    assert rc == 0
    out = c.rest()
    acks = [int(o.split()[1]) for o in out if o.startswith("ACK ")]
    assert all(not o.startswith("ERR") for o in out), out
    last = acks[-1] if acks else 1
    again = Server(s.data_dir, TCP_ARGS).start()
    try:
        got = series(login(again.http), d)
        assert len(got) >= last
    finally:
        assert again.stop() == 0


# ---- revocation ----------------------------------------------------------------


def closed_within(c, seconds):
    start = time.time()
    rest = c.rest(timeout=seconds + 2)
    return rest, time.time() - start


@pytest.mark.parametrize("how", ["rotate", "disable", "delete"])
def test_revocation_closes_a_live_connection_within_a_second(srv, api, how):
    d = make_device(api)
    c = Conn(srv).auth(d["token"])
    c.send("t=1\n")
    assert c.line() == "ACK 1"
    if how == "rotate":
        r = api.post("/api/v1/devices/%s/token" % d["id"])
    elif how == "disable":
        r = api.patch("/api/v1/devices/%s" % d["id"], json={"disabled": True})
    else:
        r = api.delete("/api/v1/devices/%s" % d["id"])
    assert r.status_code in (200, 204), r.text
    rest, took = closed_within(c, 1)
    assert rest == [] and took < 1.0, (rest, took)
    # and the old token no longer opens a connection
    c2 = Conn(srv)
    c2.send("AUTH %s\n" % d["token"])
    assert c2.rest() == ["ERR 401 invalid_token"]


def test_renaming_a_device_keeps_its_connection(srv, api, dev):
    c = Conn(srv).auth(dev["token"])
    r = api.patch("/api/v1/devices/%s" % dev["id"], json={"name": "renamed"})
    assert r.status_code == 200
    time.sleep(0.3)
    c.send("t=5\n")
    assert c.line() == "ACK 1"


def test_rotate_closes_only_that_devices_connections(srv, api):
    d1, d2 = make_device(api), make_device(api)
    c1a = Conn(srv).auth(d1["token"])
    c1b = Conn(srv).auth(d1["token"])
    c2 = Conn(srv).auth(d2["token"])
    r = api.post("/api/v1/devices/%s/token" % d1["id"])
    assert r.status_code == 200
    assert closed_within(c1a, 1)[0] == []
    assert closed_within(c1b, 1)[0] == []
    c2.send("t=1\n")
    assert c2.line() == "ACK 1"
    # the new token works
    Conn(srv).auth(r.json()["token"]).close()
