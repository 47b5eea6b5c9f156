"""Bad HTTP input of every kind (SPEC §4): each gets its clear error, and the
server keeps serving everyone else."""
import re
import socket
import ssl
import time

import requests

from conftest import http_addr as addr, module_server, raw_http as raw


def status(resp):
    return int(resp.split(b" ", 2)[1])


def still_serving(server):
    assert requests.get(server.http + "/healthz", timeout=10).status_code == 200


def test_malformed_request_line(server):
    out = raw(server, b"GARBAGE\r\n\r\n")
    assert status(out) == 400 and b'"bad_request"' in out
    out = raw(server, b"GET / HTTP/9.9.9\r\n\r\n")
    assert status(out) == 400
    still_serving(server)


def test_oversized_head(server):
    out = raw(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n")
    assert status(out) == 431 and b"head_too_large" in out
    still_serving(server)


def test_head_just_under_limit_is_fine(server):
    out = raw(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"a" * (60 * 1024) + b"\r\n\r\n")
    assert status(out) == 200


def test_oversized_body_refused_before_reading(server):
    s = socket.create_connection(addr(server), timeout=10)
    s.sendall(b"POST /api/v1/data HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
    out = s.recv(65536)
    assert status(out) == 413 and b"too_large" in out
    s.close()
    still_serving(server)


def test_bad_content_length(server):
    for cl in [b"abc", b"-1", b"1, 2"]:
        out = raw(server, b"POST /api/v1/data HTTP/1.1\r\nHost: x\r\nContent-Length: " + cl + b"\r\n\r\n")
        assert status(out) == 400, cl
    out = raw(server, b"POST /api/v1/data HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert status(out) == 400
    still_serving(server)


# A body that stops coming gets 408 after --http-body-timeout:
# test_http_transport.py::test_short_body_times_out (a server with a short one).


# SPEC §4's 10 s for a request head, shortened by --first-message-timeout
# (test_first_message_timeout.py checks that 10 s is the default).
HEAD_TIMEOUT_S = 1
short_head = module_server(["--first-message-timeout", str(HEAD_TIMEOUT_S)])


def test_slow_head_gets_408(short_head):
    s = socket.create_connection(addr(short_head), timeout=30)
    s.sendall(b"GET /heal")
    start = time.time()
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    took = time.time() - start
    assert status(out) == 408 and b"request_timeout" in out
    assert HEAD_TIMEOUT_S - 0.2 <= took <= HEAD_TIMEOUT_S + 3
    s.close()


def test_idle_connection_without_request_closes(short_head):
    s = socket.create_connection(addr(short_head), timeout=30)
    start = time.time()
    assert s.recv(100) == b""
    assert HEAD_TIMEOUT_S - 0.2 <= time.time() - start <= HEAD_TIMEOUT_S + 3


def test_pipelined_requests_answered_in_order(server, device):
    tok = device["token"].encode()
    req = b""
    for i in range(5):
        body = b'{"p%d": %d}' % (i, i)
        req += (b"POST /api/v1/data HTTP/1.1\r\nHost: x\r\nX-Auth-Token: " + tok +
                b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        req += b"GET /nope%d HTTP/1.1\r\nHost: x\r\n\r\n" % i
    req += b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = raw(server, req)
    statuses = [int(x) for x in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)]
    assert statuses == [200, 404] * 5 + [200]


def test_keep_alive_many_requests(server):
    with requests.Session() as s:
        for _ in range(50):
            assert s.get(server.http + "/healthz", timeout=10).status_code == 200


def test_invalid_json_to_api(server, admin):
    r = admin.post("/api/v1/orgs", data=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_tls_versions(server):
    host, port = server.addrs["https"].rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=server.cert)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            assert t.version() in ("TLSv1.2", "TLSv1.3")
    for ver in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = ssl.create_default_context(cafile=server.cert)
        ctx.minimum_version = ctx.maximum_version = ver
        with socket.create_connection((host, int(port)), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                assert t.version() == ver.name.replace("_", ".").replace("TLSv1.", "TLSv1.")


def test_plaintext_to_tls_port(server):
    host, port = server.addrs["https"].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
    try:
        s.recv(100)
    except ConnectionResetError:
        pass
    s.close()
    still_serving(server)
