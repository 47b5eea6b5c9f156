"""The time to send the first message (SPEC §4: an HTTP request head, the
TCP AUTH line) is --first-message-timeout: 10 s unless set lower, a
fraction of a second allowed, never more than 10 s."""
import socket
import ssl
import subprocess
import time

import pytest

from conftest import BIN, module_server

SHORT_S = 0.5
srv = module_server(["--first-message-timeout", str(SHORT_S), "--listen-tcp", "127.0.0.1:0",
                     "--listen-udp", "off"])


def test_default_is_10_seconds():
    out = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "--first-message-timeout SECS" in text
    assert "0.1..10 (10)" in text.split("--first-message-timeout", 1)[1].split("--", 1)[0]


@pytest.mark.parametrize("value", ["0", "0.05", "11", "abc", "1.0001"])
def test_out_of_range_refused_at_start(value):
    out = subprocess.run([BIN, "serve", "--first-message-timeout", value], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 2
    assert "first-message-timeout must be 0.1..10 seconds" in out.stderr


def silent_for(addr, wrap=None):
    """Seconds until the server closes a connection that sends nothing."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    start = time.time()
    try:
        if wrap:
            s = wrap(s)
        assert s.recv(100) == b""
    except (OSError, ssl.SSLError):
        pass  # a reset, or the close came inside a slow handshake
    took = time.time() - start
    s.close()
    return took


@pytest.mark.parametrize("listener", ["http", "tcp"])
def test_a_fraction_bounds_the_first_message(srv, listener):
    took = silent_for(srv.addrs[listener])
    assert SHORT_S - 0.05 <= took <= SHORT_S + 3


def test_it_bounds_the_tls_handshake_and_first_head_together(srv):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    took = silent_for(srv.addrs["https"], lambda s: ctx.wrap_socket(s))
    assert SHORT_S - 0.05 <= took <= SHORT_S + 3
