#!/usr/bin/env python3
"""batch_client.py — posts batches of readings over keep-alive HTTP/1.1 and
reports readings/s acknowledged.

  batch_client.py --target ss --port P --token DEVICE_TOKEN ...
  batch_client.py --target influx --port P --series d1 ...

Every body is built before the clock starts, so the client's own cost is a
socket write and a short read per request, the same for both targets:
  ss      POST /api/v1/data, text/plain:  `temp=V <ms>` per line
  influx  POST /write?db=bench:           `m,device=SERIES temp=V <ns>` per line
Reading k of the run has ts base_ms + k, so no two readings share a timestamp
(a repeated device+channel+ts would replace, not add).

Bounded: --batches requests at most, and it stops sending at --time-limit
seconds. Prints one line: `RESULT key=value ...`.
"""
import argparse
import asyncio
import sys
import time

VALUES = [f"{v / 10:.1f}" for v in range(400)]  # 0.0 .. 39.9, varied like a sensor
HEAD_MAX = 8192
READ_TIMEOUT_S = 30


def body_ss(first_ts, size):
    return "".join(f"temp={VALUES[(first_ts + i) % 400]} {first_ts + i}\n"
                   for i in range(size)).encode()


def body_influx(first_ts, size, series):
    pre = f"m,device={series} temp="
    return "".join(f"{pre}{VALUES[(first_ts + i) % 400]} {first_ts + i}000000\n"
                   for i in range(size)).encode()


def build_requests(a):
    if a.target == "ss":
        head = ("POST /api/v1/data HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"X-Auth-Token: {a.token}\r\nContent-Type: text/plain\r\n")
    else:
        head = ("POST /write?db=bench HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: text/plain\r\n")
    reqs = []
    for b in range(a.batches):
        first = a.base_ms + b * a.size
        body = body_ss(first, a.size) if a.target == "ss" else body_influx(first, a.size, a.series)
        reqs.append(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return reqs


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > HEAD_MAX:
        raise ValueError("response head too large")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


async def worker(a, reqs, state, deadline):
    reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
    try:
        while state["next"] < len(reqs) and time.monotonic() < deadline:
            i = state["next"]
            state["next"] += 1
            writer.write(reqs[i])
            await writer.drain()
            status, body = await asyncio.wait_for(read_response(reader), READ_TIMEOUT_S)
            if 200 <= status < 300:
                state["ok"] += 1
            else:
                state["bad"] += 1
                state["last_bad"] = f"{status} {body[:120].decode('utf-8', 'replace')}"
    finally:
        writer.close()


async def run(a, reqs):
    state = {"next": 0, "ok": 0, "bad": 0, "last_bad": ""}
    t0 = time.monotonic()
    deadline = t0 + a.time_limit
    results = await asyncio.gather(*(worker(a, reqs, state, deadline) for _ in range(a.conns)),
                                   return_exceptions=True)
    elapsed = time.monotonic() - t0
    errors = [r for r in results if isinstance(r, BaseException)]
    return state, elapsed, errors


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=["ss", "influx"], required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token", default="")
    p.add_argument("--series", default="d1")
    p.add_argument("--base-ms", type=int, required=True)
    p.add_argument("--batches", type=int, default=2000)
    p.add_argument("--size", type=int, default=1000)
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--time-limit", type=float, default=20)
    a = p.parse_args()
    reqs = build_requests(a)
    state, elapsed, errors = asyncio.run(run(a, reqs))
    readings = state["ok"] * a.size
    print(f"RESULT target={a.target} conns={a.conns} size={a.size} requests={state['ok'] + state['bad']} "
          f"ok={state['ok']} bad={state['bad']} conn_errors={len(errors)} readings={readings} "
          f"elapsed_s={elapsed:.3f} readings_per_s={readings / elapsed:.0f} "
          f"bytes_per_request={len(reqs[0]) if reqs else 0}")
    if state["last_bad"]:
        print(f"last non-2xx: {state['last_bad']}", file=sys.stderr)
    for e in errors[:3]:
        print(f"connection error: {e!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
