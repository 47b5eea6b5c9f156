"""Sign-in (Argon2 on the worker pool) keeps to its share of the pool
(SPEC §4): wrong-password sign-ins from many addresses at once never take
every worker, so a signed-in person's light requests stay fast."""
import subprocess
import sys
import time

import pytest
import requests

from conftest import login, module_server

pytestmark = pytest.mark.serial  # asserts on time or memory: run alone (make test)

ADDRESSES = 12
PER_ADDRESS = 4
FLOOD_SECONDS = 4

# Each connection sends a wrong-password sign-in from its own loopback
# address and waits for the answer, until the deadline; then it leaves
# whatever is still waiting.
FLOOD_SCRIPT = r"""
import json, socket, sys, threading, time
host, port, addrs, per, secs = sys.argv[1:6]
addrs, per, secs = int(addrs), int(per), float(secs)
deadline = time.time() + secs
counts = {}
lock = threading.Lock()

def run(src, n):
    body = json.dumps({"email": "nobody-%s-%d@example.com" % (src, n),
                       "password": "wrong-password-1"}).encode()
    req = (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    while time.time() < deadline:
        try:
            s = socket.create_connection((host, int(port)), timeout=max(0.1, deadline - time.time()),
                                         source_address=(src, 0))
            s.sendall(req)
            out = s.recv(64)
            s.close()
            status = out.split(b" ", 2)[1].decode() if out else "closed"
        except OSError:
            status = "unanswered"
        with lock:
            counts[status] = counts.get(status, 0) + 1

threads = [threading.Thread(target=run, args=("127.0.0.%d" % (10 + a), i))
           for a in range(addrs) for i in range(per)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(counts))
"""

srv = module_server([])


def test_sign_in_flood_leaves_workers_for_light_requests(srv):
    admin = login(srv.http)
    assert admin.get("/api/v1/me").status_code == 200
    host, port = srv.addrs["http"].rsplit(":", 1)
    flood = subprocess.Popen([sys.executable, "-c", FLOOD_SCRIPT, host, port, str(ADDRESSES),
                              str(PER_ADDRESS), str(FLOOD_SECONDS)],
                             stdout=subprocess.PIPE, text=True)
    lat = []
    try:
        time.sleep(1.0)  # let the flood fill the pool
        end = time.monotonic() + FLOOD_SECONDS - 1.5
        while time.monotonic() < end:
            t0 = time.monotonic()
            r = admin.get("/api/v1/me")
            lat.append(time.monotonic() - t0)
            assert r.status_code == 200, r.text
            time.sleep(0.05)
        out, _ = flood.communicate(timeout=FLOOD_SECONDS + 30)
    finally:
        if flood.poll() is None:
            flood.kill()
    lat.sort()
    p90 = lat[int(len(lat) * 0.9)]
    report = "flood %s; /me n=%d p90=%.0f ms max=%.0f ms" % (
        out.strip(), len(lat), p90 * 1000, lat[-1] * 1000)
    print(report)
    assert '"401"' in out, report  # the sign-ins did run
    assert p90 < 0.25, report
