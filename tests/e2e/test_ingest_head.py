"""Device ingest takes only a device token (SPEC §2): any other credential
on POST /api/v1/data is refused from the head, before the body is read."""
import socket
import time

from conftest import module_server, read_until_close

srv = module_server([])


def refused_before_body(server, headers):
    host, port = server.addrs["http"].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    start = time.monotonic()
    s.sendall(b"POST /api/v1/data HTTP/1.1\r\nHost: x\r\n" + headers +
              b"Content-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n")
    out = read_until_close(s)
    s.close()
    return out, time.monotonic() - start


def test_authorization_without_device_token_is_refused_from_the_head(srv):
    out, took = refused_before_body(srv, b"Authorization: Bearer junk\r\n")
    assert out.startswith(b"HTTP/1.1 401 "), out[:80]
    assert b'"invalid_token"' in out
    assert took < 2, took


def test_no_credential_is_refused_from_the_head(srv):
    out, took = refused_before_body(srv, b"")
    assert out.startswith(b"HTTP/1.1 401 "), out[:80]
    assert took < 2, took
