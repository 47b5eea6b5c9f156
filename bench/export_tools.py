#!/usr/bin/env python3
"""export_tools.py — benchmark 10's helpers (bench/export.sh): the same
readings into SensorSpace and InfluxDB, then each exported whole and timed.

The data: DEVICES devices x CHANNELS channels x LINES timestamps one second
apart. SensorSpace gets them as line format (`c0=V,...,c9=V <ms>`, 10,000
readings a request); InfluxDB one point per reading (`m,device=D,channel=C
value=V <ns>`, 10,000 points a request), so both exports are the same rows:
(device, channel, time, value), one per reading.

Each export is fetched by curl into a file (the clock is curl's
time_total: the client does no parsing while timed); its rows are counted
afterwards, and a run that misses any is reported as such.

Every network call goes to 127.0.0.1 and has a timeout.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time
import urllib.request

CHANNELS = 10
POST_READINGS = 10_000
CURL_TIMEOUT_S = 600


def value(d, c, i):
    return round((d * 31 + c * 7 + i) % 1000 / 8 - 40.5, 3)


def post(url, body, headers):
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=120) as r:
        if r.status // 100 != 2:
            sys.exit(f"POST {url}: HTTP {r.status}")


def ss_device(url, token, d, base_ms, lines):
    step = POST_READINGS // CHANNELS
    for start in range(0, lines, step):
        body = "".join(",".join(f"c{c}={value(d, c, i)}" for c in range(CHANNELS)) + f" {base_ms + 1000 * i}\n"
                       for i in range(start, min(lines, start + step)))
        post(url, body, {"X-Auth-Token": token, "Content-Type": "text/plain"})


def influx_device(url, d, base_ms, lines):
    step = POST_READINGS // CHANNELS
    for start in range(0, lines, step):
        body = "".join(f"m,device=d{d:04d},channel=c{c} value={value(d, c, i)} {(base_ms + 1000 * i) * 1_000_000}\n"
                       for i in range(start, min(lines, start + step)) for c in range(CHANNELS))
        post(url, body, {"Content-Type": "text/plain"})


def cmd_load(a):
    """Loads both peers with the same readings, 4 devices at a time."""
    with open(a.devices) as f:
        tokens = [line.split()[1] for line in f if line.split()[0] not in ("admin", "org")]
    if len(tokens) < a.n_devices:
        sys.exit(f"{len(tokens)} devices, {a.n_devices} wanted")
    ss = f"http://127.0.0.1:{a.ss_port}/api/v1/data"
    influx = f"http://127.0.0.1:{a.influx_port}/write?db=bench&precision=ns"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(ss_device, ss, tokens[d], d, a.base_ms, a.lines) for d in range(a.n_devices)]
        jobs += [pool.submit(influx_device, influx, d, a.base_ms, a.lines) for d in range(a.n_devices)]
        for j in jobs:
            j.result()


def curl(args, out):
    """Runs curl into out; returns its time_total in seconds."""
    cmd = ["curl", "-sS", "--fail", "--max-time", str(CURL_TIMEOUT_S), "-o", out, "-w", "%{time_total}"] + args
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=CURL_TIMEOUT_S + 10)
    if r.returncode != 0:
        sys.exit(f"curl {args[-1]}: {r.stderr.strip()}")
    return float(r.stdout)


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


def count_influx_json(path):
    """Rows of a chunked /query answer: one JSON object per line."""
    n = 0
    with open(path) as f:
        for line in f:
            if line.strip():
                for res in json.loads(line).get("results", []):
                    for s in res.get("series", []):
                        n += len(s.get("values", []))
    return n


def record(peer, mode, rows, secs, want):
    print(f"bench=export peer={peer} mode={mode} rows={rows} want={want} secs={secs:.3f} "
          f"readings_per_s={rows / secs if secs else 0:.0f}")


def cmd_time_ss(a):
    url = f"http://127.0.0.1:{a.port}/api/v1/orgs/{a.org}/export?format={a.format}"
    out = os.path.join(a.work, f"export-ss.{a.format}")
    args = ["-H", f"Authorization: Bearer {a.token}"]
    if a.gzip:
        args.append("--compressed")
    secs = curl(args + [url], out)
    rows = count_lines(out) - (1 if a.format == "csv" else 0)
    os.unlink(out)
    record("sensorspace", a.format + ("-gzip" if a.gzip else ""), rows, secs, a.want)


def cmd_time_influx(a):
    out = os.path.join(a.work, "export-influx")
    q = "SELECT * FROM m"
    if a.mode == "cli":
        cmd = ["influx", "-host", "127.0.0.1", "-port", str(a.port), "-database", "bench",
               "-format", "csv", "-execute", q]
        t0 = time.monotonic()
        with open(out, "wb") as f:
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE, timeout=CURL_TIMEOUT_S)
        secs = time.monotonic() - t0
        if r.returncode != 0:
            sys.exit(f"influx: {r.stderr.decode().strip()}")
        rows = count_lines(out) - 1
    else:
        url = ("http://127.0.0.1:%d/query?db=bench&chunked=true&chunk_size=10000&q=%s"
               % (a.port, urllib.request.quote(q)))
        secs = curl([url], out)
        rows = count_influx_json(out)
    os.unlink(out)
    record("influxdb", a.mode, rows, secs, a.want)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(required=True)
    s = sub.add_parser("load")
    s.add_argument("--ss-port", type=int, required=True)
    s.add_argument("--influx-port", type=int, required=True)
    s.add_argument("--devices", required=True, help="ss-setup's output")
    s.add_argument("--n-devices", type=int, required=True)
    s.add_argument("--lines", type=int, required=True)
    s.add_argument("--base-ms", type=int, required=True)
    s.set_defaults(f=cmd_load)
    s = sub.add_parser("time-ss")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--org", required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--format", default="csv")
    s.add_argument("--gzip", action="store_true")
    s.add_argument("--want", type=int, required=True)
    s.add_argument("--work", required=True)
    s.set_defaults(f=cmd_time_ss)
    s = sub.add_parser("time-influx")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--mode", choices=("cli", "http"), required=True)
    s.add_argument("--want", type=int, required=True)
    s.add_argument("--work", required=True)
    s.set_defaults(f=cmd_time_influx)
    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
