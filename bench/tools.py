#!/usr/bin/env python3
"""tools.py — small helpers run.sh calls: free ports, SensorSpace setup and
counts, InfluxDB setup and counts, waiting for a listener.

Every network call goes to 127.0.0.1 and has a timeout; nothing here loops
without a bound.
"""
import argparse
import json
import re
import socket
import subprocess
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


# Accounting and quota code, by function name (benchmark 8). Static helpers
# the compiler inlined (conn_record, record_for, count_request, ...) have no
# entry of their own: their cost is in their caller's.
ACCT_FN = re.compile(r"^(meter_|quota_|metrics_)|^(api_account|conn_record|record_for|count_request)($|\.)")
# Accounting under other names (the usage rows written in the commit, the
# server handing byte counts to api_account): listed apart, not in the sum
# the target names.
STORE_USAGE_FN = re.compile(r"usage|report_bytes")


def _fn_name(rest):
    """`file:function [object]` or `file:function (Nx) [object]` -> function."""
    rest = re.sub(r" \[[^]]*\]$", "", rest.strip())
    rest = re.sub(r" \([\d,]+x\)$", "", rest)
    return rest.rsplit(":", 1)[-1].strip()


def callgrind_costs(path, inclusive):
    """({function: Ir}, total Ir, {function: {caller: Ir}}) from callgrind_annotate
    (--auto=no: the function table only; --tree=caller for the inclusive run, so
    that costs reached through another accounting function can be told apart).
    A function listed under two spellings of its file keeps its larger entry."""
    args = ["callgrind_annotate", "--threshold=100", "--auto=no"]
    args += ["--inclusive=yes", "--tree=caller"] if inclusive else []
    out = subprocess.run(args + [path], capture_output=True, text=True, timeout=300, check=True).stdout
    costs, callers, total, pending = {}, {}, 0, []
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+) (?:\(\s*[\d.]+%\))?\s+(<|\*)?\s*(.*)$", line)
        if not m:
            pending = []
            continue
        ir, mark, rest = int(m.group(1).replace(",", "")), m.group(2), m.group(3)
        if rest.startswith("PROGRAM TOTALS"):
            total = ir
        elif mark == "<":
            pending.append((_fn_name(rest), ir))
        else:
            fn = _fn_name(rest)
            if ir > costs.get(fn, 0):
                costs[fn] = ir
                callers[fn] = dict(pending)
            pending = []
    return costs, total, callers


def cmd_acct_share(a):
    """Share of instructions in accounting and quota code (callgrind output),
    per function (inclusive) and in all: the cost of the accounting functions
    entered from outside accounting code (so nothing is counted twice).
    Prints a `bench=acct` record and writes a text block for RESULTS.md."""
    inc, total, callers = callgrind_costs(a.file, True)
    self_, _, _ = callgrind_costs(a.file, False)
    total = total or 1
    acct = sorted((f for f in inc if ACCT_FN.search(f)), key=lambda f: -inc[f])
    outer = {f: sum(ir for c, ir in callers.get(f, {}).items() if not ACCT_FN.search(c)) for f in acct}
    info = sorted((f for f in inc if STORE_USAGE_FN.search(f) and not ACCT_FN.search(f)), key=lambda f: -inc[f])
    sum_outer = sum(outer.values())
    sum_self = sum(self_.get(f, 0) for f in acct)
    union = set(acct) | set(info)
    info_ir = sum(ir for f in union for c, ir in callers.get(f, {}).items() if c not in union) - sum_outer
    req = max(a.requests, 1)
    lines = ["valgrind --tool=callgrind, one reading per request over keep-alive, --durability normal:",
             f"{a.requests} requests, {total:,} instructions in all threads = {total / req:,.0f} per request.",
             "",
             "Accounting and quota functions (inclusive = with everything they call; from outside = the",
             "part entered from non-accounting callers, i.e. not already in another row's inclusive):",
             f"{'function':<28} {'inclusive Ir':>13} {'share':>7} {'per req':>8} {'from outside':>13} {'self Ir':>12}"]
    for f in acct:
        lines.append(f"{f:<28} {inc[f]:>13,} {100 * inc[f] / total:>6.2f}% {inc[f] / req:>8,.0f} "
                     f"{outer[f]:>13,} {self_.get(f, 0):>12,}")
    lines += ["",
              f"accounting + quota, nothing counted twice: {sum_outer:,} Ir = {100 * sum_outer / total:.2f}% "
              f"= {sum_outer / req:,.0f} per request",
              f"(sum of self costs only: {sum_self:,} = {100 * sum_self / total:.2f}%)"]
    if info:
        lines += ["", f"Not in the list above but accounting too ({STORE_USAGE_FN.pattern}), inclusive:"]
        lines += [f"{f:<28} {inc[f]:>13,} {100 * inc[f] / total:>6.2f}% {inc[f] / req:>8,.0f}  called by "
                  + ", ".join(f"{c} ({n:,})" for c, n in callers.get(f, {}).items()) for f in info]
        lines.append(f"all of them together, nothing counted twice: {100 * (sum_outer + info_ir) / total:.2f}% "
                     f"({(sum_outer + info_ir) / req:,.0f} per request)")
    with open(a.text, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"bench=acct peer=sensorspace requests={a.requests} total_ir={total} ir_per_request={total / req:.0f} "
          f"acct_ir={sum_outer} acct_self_ir={sum_self} acct_share_pct={100 * sum_outer / total:.2f} "
          f"acct_self_share_pct={100 * sum_self / total:.2f} "
          f"acct_with_store_pct={100 * (sum_outer + info_ir) / total:.2f} functions={len(acct)}")


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
    s = sub.add_parser("acct-share"); s.add_argument("file"); s.add_argument("--requests", type=int, required=True)
    s.add_argument("--text", required=True); s.set_defaults(f=cmd_acct_share)
    a = p.parse_args()
    try:
        a.f(a)
    except ConnectionError as e:
        sys.exit(str(e))


if __name__ == "__main__":
    main()
