#!/usr/bin/env python3
"""mqtt_tools.py — the helpers bench/mqtt.sh calls (tools.py has the rest).

  apikey PORT ADMIN ORG            makes a data:read API key in ORG, prints it
  count PORT ADMIN DEVICES N       readings stored for the first N devices of
                                   the file (lines `ID TOKEN`; `admin`/`org`
                                   lines skipped), summed
  fake-devices N                   N lines `ID TOKEN` shaped like SensorSpace's,
                                   for a broker that checks no credentials
  fake-key                         a string shaped like an API key
  latency-rate RECORDS QOS         half of the lower of the peers' best
                                   throughput (received/s) at QOS: the rate
                                   both are measured at

Every network call goes to 127.0.0.1 and has a timeout.
"""
import argparse
import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tools  # noqa: E402  (the bench's own helpers, same directory)


def devices(path, n):
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[0] not in ("admin", "org"):
                out.append(parts)
    return out[:n]


def cmd_apikey(a):
    key = tools.ss_json("POST", f"http://127.0.0.1:{a.port}/api/v1/orgs/{a.org}/apikeys",
                        {"name": "bench-mqtt", "scopes": ["data:read"]}, a.admin)
    print(key["key"])


def cmd_count(a):
    total = 0
    for dev, _ in devices(a.devices, a.n):
        chans = tools.ss_json("GET", f"http://127.0.0.1:{a.port}/api/v1/devices/{dev}/channels", token=a.admin)
        total += sum(c["count"] for c in chans)
    print(total)


def cmd_fake_devices(a):
    for _ in range(a.n):
        print(secrets.token_hex(12), "ssd_" + secrets.token_hex(32))


def cmd_fake_key(_a):
    print("ssk_" + secrets.token_hex(32))


def cmd_latency_rate(a):
    best = {}
    for r in tools_records(a.records):
        if r.get("bench") == "mqtt" and r.get("mode") == "throughput" and r.get("qos") == str(a.qos):
            v = float(r.get("recv_per_s", 0))
            best[r["peer"]] = max(best.get(r["peer"], 0), v)
    rates = [v for v in best.values() if v > 0]
    if not rates:
        sys.exit(f"no throughput at QoS {a.qos} measured")
    print(int(min(rates) / 2))


def tools_records(path):
    with open(path) as f:
        for line in f:
            r = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
            if r:
                yield r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("apikey")
    s.add_argument("port", type=int)
    s.add_argument("admin")
    s.add_argument("org")
    s.set_defaults(fn=cmd_apikey)
    s = sub.add_parser("count")
    s.add_argument("port", type=int)
    s.add_argument("admin")
    s.add_argument("devices")
    s.add_argument("n", type=int)
    s.set_defaults(fn=cmd_count)
    s = sub.add_parser("fake-devices")
    s.add_argument("n", type=int)
    s.set_defaults(fn=cmd_fake_devices)
    s = sub.add_parser("fake-key")
    s.set_defaults(fn=cmd_fake_key)
    s = sub.add_parser("latency-rate")
    s.add_argument("records")
    s.add_argument("qos", type=int)
    s.set_defaults(fn=cmd_latency_rate)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
