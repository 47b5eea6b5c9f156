"""TCP direct socket under large bursts (SPEC §3.4, §4): one device on two
connections, each writing 64 KiB blocks of short lines (a read can carry
about 16 000 readings), keeps making progress while the other streams, and
every line is acknowledged."""
import socket
import threading
import time

from conftest import new_org_device, login, module_server

TCP_ARGS = ["--listen-tcp", "127.0.0.1:0", "--listen-udp", "off"]
# 16 readings in 64 bytes: the densest short line.
LINE = (",".join("%s=1" % ch for ch in "abcdefghijklmnop") + "\n").encode()
BLOCK = LINE * (64 * 1024 // len(LINE))

srv = module_server(TCP_ARGS)


def connect(srv, token, timeout):
    host, port = srv.addrs["tcp"].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.sendall(("AUTH %s\n" % token).encode())
    assert s.recv(3) == b"OK\n"
    return s


def read_until_ack(s, n, timeout):
    """Reads answers until "ACK n"; returns (last ACK, ERR lines)."""
    deadline = time.time() + timeout
    buf = b""
    last = 0
    errs = []
    while last < n:
        left = deadline - time.time()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for ln in lines:
            if ln.startswith(b"ACK "):
                last = int(ln.split()[1])
            else:
                errs.append(ln)
    return last, errs


class Streamer:
    """A connection that writes blocks until stopped (at most `seconds`)."""

    def __init__(self, srv, token, seconds):
        self.s = connect(srv, token, 30)
        self.seconds = seconds
        self.lines = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        start = time.time()
        while not self.stop.is_set() and time.time() - start < self.seconds:
            self.s.sendall(BLOCK)
            self.lines += len(BLOCK) // len(LINE)

    def finish(self, timeout):
        self.stop.set()
        self.t.join()
        self.s.shutdown(socket.SHUT_WR)
        got = read_until_ack(self.s, self.lines, timeout)
        self.s.close()
        return got


def test_one_device_on_two_connections_both_finish_large_bursts(srv):
    api = login(srv.http)
    dev = new_org_device(api, prefix="burst")[1]
    other = Streamer(srv, dev["token"], 60)
    try:
        s = connect(srv, dev["token"], 30)
        # Just under the pending bound, then a full read on top: a batch
        # of about 25 000 readings, more than the device's share.
        small = LINE * (9000 // 16)
        n = 0
        for _ in range(24):
            for block in (small, BLOCK):
                s.sendall(block)
                n += len(block) // len(LINE)
                time.sleep(0.004)
        # While the same device streams on its other connection.
        last, errs = read_until_ack(s, n, 20)
        assert other.t.is_alive(), "the other connection stopped streaming first"
        assert errs == []
        assert last == n, "ACK %d of %d lines while the device streams elsewhere" % (last, n)
        s.close()
    finally:
        last, errs = other.finish(30)
    assert errs == []
    assert last == other.lines

