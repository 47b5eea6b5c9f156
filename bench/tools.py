#!/usr/bin/env python3
"""tools.py — small helpers run.sh calls: free ports, SensorSpace setup and
counts, InfluxDB setup and counts, waiting for a listener.

Every network call goes to 127.0.0.1 and has a timeout; nothing here loops
without a bound.
"""
import argparse
import json
import os
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
    """({function: Ir}, total Ir, {function: {caller: Ir}}, {function: {caller: calls}})
    from callgrind_annotate
    (--auto=no: the function table only; --tree=caller for the inclusive run, so
    that costs reached through another accounting function can be told apart).
    A function listed under two spellings of its file keeps its larger entry."""
    args = ["callgrind_annotate", "--threshold=100", "--auto=no"]
    args += ["--inclusive=yes", "--tree=caller"] if inclusive else []
    out = subprocess.run(args + [path], capture_output=True, text=True, timeout=300, check=True).stdout
    costs, callers, calls, total, pending = {}, {}, {}, 0, []
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+) (?:\(\s*[\d.]+%\))?\s+(<|\*)?\s*(.*)$", line)
        if not m:
            pending = []
            continue
        ir, mark, rest = int(m.group(1).replace(",", "")), m.group(2), m.group(3)
        if rest.startswith("PROGRAM TOTALS"):
            total = ir
        elif mark == "<":
            n = re.search(r" \(([\d,]+)x\)", rest)
            pending.append((_fn_name(rest), ir, int(n.group(1).replace(",", "")) if n else 0))
        else:
            fn = _fn_name(rest)
            if ir > costs.get(fn, 0):
                costs[fn] = ir
                callers[fn] = {c: cir for c, cir, _ in pending}
                calls[fn] = {c: cn for c, _, cn in pending}
            pending = []
    return costs, total, callers, calls


def acct_costs(path, requests):
    """One callgrind run: the table of accounting functions, and the
    instructions in all, in accounting code (nothing counted twice) and in
    the usage and byte-reporting code around it."""
    inc, total, callers, calls = callgrind_costs(path, True)
    self_ = callgrind_costs(path, False)[0]
    acct = sorted((f for f in inc if ACCT_FN.search(f)), key=lambda f: -inc[f])
    outer = {f: sum(ir for c, ir in callers.get(f, {}).items() if not ACCT_FN.search(c)) for f in acct}
    info = sorted((f for f in inc if STORE_USAGE_FN.search(f) and not ACCT_FN.search(f)), key=lambda f: -inc[f])
    union = set(acct) | set(info)
    sum_outer = sum(outer.values())
    info_ir = sum(ir for f in union for c, ir in callers.get(f, {}).items() if c not in union) - sum_outer
    return dict(inc=inc, self=self_, callers=callers, total=total or 1, acct=acct, outer=outer, info=info,
                acct_ir=sum_outer, self_ir=sum(self_.get(f, 0) for f in acct), all_ir=sum_outer + info_ir,
                requests=max(requests, 1), wal=wal_frame_cost(inc, calls))


def wal_frame_cost(inc, calls):
    """(instructions, frames) of SQLite's WAL writes: sqlite3WalFrames and the
    count of the per-frame function it calls most. The usage row lives in a
    page of its own, so each commit writes one frame more for it."""
    frames = max((c.get("sqlite3WalFrames", 0) for c in calls.values()), default=0)
    return inc.get("sqlite3WalFrames", 0), frames


def acct_table(r):
    total, req = r["total"], r["requests"]
    lines = [f"{r['requests']} requests, {total:,} instructions in all threads = {total / req:,.0f} per request.",
             "",
             "Accounting and quota functions (inclusive = with everything they call; from outside = the",
             "part entered from non-accounting callers, i.e. not already in another row's inclusive):",
             f"{'function':<28} {'inclusive Ir':>13} {'share':>7} {'per req':>8} {'from outside':>13} {'self Ir':>12}"]
    for f in r["acct"]:
        ir = r["inc"][f]
        lines.append(f"{f:<28} {ir:>13,} {100 * ir / total:>6.2f}% {ir / req:>8,.0f} "
                     f"{r['outer'][f]:>13,} {r['self'].get(f, 0):>12,}")
    lines += ["",
              f"accounting + quota, nothing counted twice: {r['acct_ir']:,} Ir = {100 * r['acct_ir'] / total:.2f}% "
              f"= {r['acct_ir'] / req:,.0f} per request",
              f"(sum of self costs only: {r['self_ir']:,} = {100 * r['self_ir'] / total:.2f}%)"]
    if r["info"]:
        lines += ["", f"Not in the list above but accounting too ({STORE_USAGE_FN.pattern}), inclusive:"]
        lines += [f"{f:<28} {r['inc'][f]:>13,} {100 * r['inc'][f] / total:>6.2f}% {r['inc'][f] / req:>8,.0f}  "
                  "called by " + ", ".join(f"{c} ({n:,})" for c, n in r["callers"].get(f, {}).items())
                  for f in r["info"]]
        if r.get("frame_ir"):
            lines.append(f"the usage page's WAL frame, one per commit: {r['frame_ir']:,.0f} Ir each "
                         f"(sqlite3WalFrames: {r['wal'][0]:,} Ir for {r['wal'][1]:,} frames) x {r['commits']:,} commits")
        lines.append(f"all of them together, nothing counted twice: {100 * r['all_ir'] / total:.2f}% "
                     f"({r['all_ir'] / req:,.0f} per request)")
    return lines


def fit(x1, y1, x2, y2):
    """y = a + b*x through two points; None when the x are (nearly) equal."""
    if abs(x1 - x2) < 1e-9:
        return None
    b = (y1 - y2) / (x1 - x2)
    return y1 - b * x1, b


def cmd_acct_share(a):
    """Share of instructions in accounting and quota code, from callgrind runs
    given as FILE:REQUESTS:COMMITS (the first is the one tabulated). With two
    runs at different commit sizes g (requests per commit), instructions per
    request are fitted as per_request + per_commit / g, for everything and for
    the accounting code, and told at --group (benchmark 1's real g).
    Prints a `bench=acct` record and writes a text block for RESULTS.md."""
    runs = []
    for spec in a.runs:
        path, requests, commits = spec.rsplit(":", 2)
        r = acct_costs(path, int(requests))
        r["commits"] = max(int(commits or 0), 1)
        r["path"] = path
        wal_ir, frames = r["wal"]
        r["frame_ir"] = wal_ir / frames if frames else 0
        # Accounting split by what it runs per: the usage write and its page's
        # WAL frame once per commit, everything else once per request.
        usage_write = r["inc"].get("usage_flush", 0)
        r["acct_per_request"] = (r["all_ir"] - usage_write) / r["requests"]
        r["acct_per_commit"] = usage_write / r["commits"] + r["frame_ir"]
        r["all_ir"] += round(r["frame_ir"] * r["commits"])
        r["g"] = r["requests"] / r["commits"]
        runs.append(r)
    main = runs[0]
    total, req = main["total"], main["requests"]
    lines = ["valgrind --tool=callgrind, one reading per request over keep-alive, --durability normal;",
             f"the run with {req / main['g']:.0f} commits for {req} requests (g = {main['g']:.2f} requests per commit):"]
    lines += acct_table(main)
    rec = (f"bench=acct peer=sensorspace requests={req} total_ir={total} ir_per_request={total / req:.0f} "
           f"acct_ir={main['acct_ir']} acct_self_ir={main['self_ir']} "
           f"acct_share_pct={100 * main['acct_ir'] / total:.2f} "
           f"acct_self_share_pct={100 * main['self_ir'] / total:.2f} "
           f"acct_with_store_pct={100 * main['all_ir'] / total:.2f} g={main['g']:.2f} functions={len(main['acct'])}")
    if len(runs) > 1 and a.group > 0:
        other = runs[1]
        lines += ["", "Instructions per request against the commit size g (requests per commit), both runs:",
                  f"{'run':<24} {'requests':>9} {'commits':>8} {'g':>6} {'all Ir/req':>11} "
                  f"{'acct Ir/req':>12} {'acct per request':>17} {'acct per commit':>16}"]
        for r in (main, other):
            lines.append(f"{os.path.basename(r['path']):<24} {r['requests']:>9,} {r['commits']:>8,} {r['g']:>6.2f} "
                         f"{r['total'] / r['requests']:>11,.0f} {r['all_ir'] / r['requests']:>12,.0f} "
                         f"{r['acct_per_request']:>17,.0f} {r['acct_per_commit']:>16,.0f}")
        f_all = fit(1 / main["g"], total / req, 1 / other["g"], other["total"] / other["requests"])
        if f_all:
            y_all = f_all[0] + f_all[1] / a.group
            y_acct = main["acct_per_request"] + main["acct_per_commit"] / a.group
            lines += [f"all code, fitted through both runs: {f_all[0]:,.0f} per request + {f_all[1]:,.0f} per commit",
                      f"accounting, as measured in the first run: {main['acct_per_request']:,.0f} per request + "
                      f"{main['acct_per_commit']:,.0f} per commit (the usage write and its WAL frame)",
                      f"at g = {a.group:.1f} (benchmark 1, best sensorspace-full run, from /metrics): "
                      f"{y_all:,.0f} per request, of which accounting {y_acct:,.0f} = {100 * y_acct / y_all:.2f}%"]
            rec += f" group_real={a.group:.1f} acct_at_group_pct={100 * y_acct / y_all:.2f}"
    with open(a.text, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(rec)


def cmd_ss_commits(a):
    """`COMMITS READINGS` so far, from the server's /metrics (loopback)."""
    status, raw = http("GET", f"http://127.0.0.1:{a.port}/metrics")
    if status != 200:
        sys.exit(f"/metrics: HTTP {status}")
    vals = {}
    for line in raw.decode().splitlines():
        m = re.match(r"^sensorspace_commit_batch_readings_(sum|count) ([0-9.e+]+)$", line)
        if m:
            vals[m.group(1)] = int(float(m.group(2)))
    print(vals.get("count", 0), vals.get("sum", 0))


def cmd_commits_delta(a):
    k0, r0 = map(int, a.before.split())
    k1, r1 = map(int, a.after.split())
    print(f"commits={k1 - k0} commit_readings={r1 - r0}")


def cmd_single_group(a):
    """Requests per commit in benchmark 1's best sensorspace-full run (one
    reading per request, so readings per commit); 0 when there is none."""
    best = None
    with open(a.records) as fh:
        for line in fh:
            r = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if r.get("bench") != "single" or r.get("peer") != "sensorspace-full" or "commits" not in r:
                continue
            if best is None or float(r["rps"]) > float(best["rps"]):
                best = r
    ok = best and int(best["commits"]) > 0
    print(f"{int(best['commit_readings']) / int(best['commits']):.2f}" if ok else "0")


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
    s = sub.add_parser("acct-share"); s.add_argument("runs", nargs="+", help="FILE:REQUESTS:COMMITS")
    s.add_argument("--group", type=float, default=0); s.add_argument("--text", required=True)
    s.set_defaults(f=cmd_acct_share)
    s = sub.add_parser("ss-commits"); s.add_argument("port"); s.set_defaults(f=cmd_ss_commits)
    s = sub.add_parser("commits-delta"); s.add_argument("before"); s.add_argument("after")
    s.set_defaults(f=cmd_commits_delta)
    s = sub.add_parser("single-group"); s.add_argument("records"); s.set_defaults(f=cmd_single_group)
    a = p.parse_args()
    try:
        a.f(a)
    except ConnectionError as e:
        sys.exit(str(e))


if __name__ == "__main__":
    main()
