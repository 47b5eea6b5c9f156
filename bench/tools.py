#!/usr/bin/env python3
"""tools.py — small helpers run.sh calls: free ports, SensorSpace setup and
counts, InfluxDB setup and counts, waiting for a listener.

Every network call goes to 127.0.0.1 and has a timeout; nothing here loops
without a bound.
"""
import argparse
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HTTP_TIMEOUT_S = 30  # a count over a few million readings takes a moment


def free_ports(n):
    """Ports the kernel just handed out for port 0; held until all are picked
    so the n ports are distinct."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def http(method, url, body=None, headers=None):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise ConnectionError(f"{method} {url}: {e}") from None


def ss_json(method, url, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    status, raw = http(method, url, body, headers)
    if status // 100 != 2:
        sys.exit(f"{method} {url}: HTTP {status} {raw[:200]!r}")
    return json.loads(raw)


def cmd_ports(a):
    print(" ".join(map(str, free_ports(a.n))))


def cmd_wait_http(a):
    """Polls url until it answers any HTTP status, at most a.timeout seconds."""
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        try:
            status, _ = http("GET", a.url)
            if status < 500:
                return
        except ConnectionError:
            pass
        time.sleep(0.2)
    sys.exit(f"no answer from {a.url} within {a.timeout}s")


def cmd_ss_setup(a):
    """Logs in, makes one org and a.devices devices; prints one line per device:
    `<id> <token>`, and first the admin session token as `admin <token>` and
    the org as `org <id>`. With --quota, sets the org's readings-per-day quota
    (as the superadmin): accounting and quotas are always on, and a limit
    makes every message go through the quota check rather than skip it."""
    base = f"http://127.0.0.1:{a.port}/api/v1"
    login = ss_json("POST", base + "/auth/login", {"email": a.email, "password": a.password})
    tok = login["token"]
    org = ss_json("POST", base + "/orgs", {"name": "bench"}, tok)
    if a.quota:
        ss_json("PUT", f"{base}/orgs/{org['id']}/quota", {"max_readings_per_day": a.quota}, tok)
    print("admin", tok)
    print("org", org["id"])
    for i in range(a.devices):
        d = ss_json("POST", f"{base}/orgs/{org['id']}/devices", {"name": f"bench-{i}"}, tok)
        print(d["id"], d["token"])


def cmd_ss_count(a):
    """Readings stored for a device: the sum of its channels' counts."""
    chans = ss_json("GET", f"http://127.0.0.1:{a.port}/api/v1/devices/{a.device}/channels",
                    token=a.token)
    print(sum(c["count"] for c in chans))


def influx_query(port, q, db=None):
    params = {"q": q}
    if db:
        params["db"] = db
    url = f"http://127.0.0.1:{port}/query?" + urllib.parse.urlencode(params)
    status, raw = http("POST", url, b"")
    if status != 200:
        sys.exit(f"influx query {q!r}: HTTP {status} {raw[:200]!r}")
    res = json.loads(raw)["results"][0]
    if "error" in res:
        sys.exit(f"influx query {q!r}: {res['error']}")
    return res


def cmd_influx_create(a):
    influx_query(a.port, "CREATE DATABASE " + a.db)


def cmd_influx_count(a):
    res = influx_query(a.port, f"SELECT count(temp) FROM m WHERE device='{a.device}'", a.db)
    series = res.get("series") or []
    print(series[0]["values"][0][1] if series else 0)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("ports"); s.add_argument("n", type=int); s.set_defaults(f=cmd_ports)
    s = sub.add_parser("wait-http"); s.add_argument("url")
    s.add_argument("--timeout", type=float, default=30); s.set_defaults(f=cmd_wait_http)
    s = sub.add_parser("ss-setup"); s.add_argument("port"); s.add_argument("--devices", type=int, default=1)
    s.add_argument("--email", default="admin@localhost"); s.add_argument("--password", required=True)
    s.add_argument("--quota", type=int, default=0, help="max_readings_per_day of the bench org (0: none set)")
    s.set_defaults(f=cmd_ss_setup)
    s = sub.add_parser("ss-count"); s.add_argument("port"); s.add_argument("token"); s.add_argument("device")
    s.set_defaults(f=cmd_ss_count)
    s = sub.add_parser("influx-create"); s.add_argument("port"); s.add_argument("--db", default="bench")
    s.set_defaults(f=cmd_influx_create)
    s = sub.add_parser("influx-count"); s.add_argument("port"); s.add_argument("device")
    s.add_argument("--db", default="bench"); s.set_defaults(f=cmd_influx_count)
    a = p.parse_args()
    try:
        a.f(a)
    except ConnectionError as e:
        sys.exit(str(e))


if __name__ == "__main__":
    main()
