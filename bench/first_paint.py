#!/usr/bin/env python3
"""Server side of the dashboard's first paint: one chart's bucketed query
over a channel of 1,000,000 readings (about 1,000 buckets), timed by curl,
at a width of 1,000 s and at the same rounded up to whole minutes.

    bench/first_paint.py BIN [READINGS]

Starts BIN on a data dir of its own, loads the readings through the bulk
import, then times each fn 5 times with curl and prints the medians (ms).
FIRST_PAINT_KEEP=1 keeps the data dir (for EXPLAIN QUERY PLAN, perf)."""
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import requests

EMAIL, PASSWORD = "bench@example.com", "bench-password-1234"
T0 = 1_700_000_000_000
STEP = 1000


def start(binary, data_dir):
    env = dict(os.environ, SENSORSPACE_ADMIN_EMAIL=EMAIL, SENSORSPACE_ADMIN_PASSWORD=PASSWORD)
    log = open(os.path.join(data_dir, "server.log"), "wb")
    proc = subprocess.Popen([binary, "serve", "--data-dir", data_dir,
                             "--listen-http", "127.0.0.1:0", "--listen-https", "127.0.0.1:0",
                             "--listen-mqtt", "off", "--listen-mqtts", "off",
                             "--listen-tcp", "off", "--listen-udp", "off",
                             "--log-level", "warn"], stdout=subprocess.PIPE, stderr=log, env=env)
    for line in proc.stdout:
        parts = line.decode().split()
        if len(parts) == 3 and parts[0] == "listening" and parts[1] == "http":
            return proc, "http://" + parts[2]
    raise SystemExit("server did not start")


def main():
    binary, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    data_dir = tempfile.mkdtemp(prefix="first-paint-")
    proc, base = start(binary, data_dir)
    try:
        tok = requests.post(base + "/api/v1/auth/login",
                            json={"email": EMAIL, "password": PASSWORD}).json()["token"]
        h = {"Authorization": "Bearer " + tok}
        org = requests.post(base + "/api/v1/orgs", json={"name": "bench"}, headers=h).json()
        dev = requests.post(base + "/api/v1/orgs/%s/devices" % org["id"],
                            json={"name": "d"}, headers=h).json()
        rnd = random.Random(1)
        body = "device_id,device_name,channel,ts,value\n" + "".join("%s,,v,%d,%.3f\n" % (dev["id"], T0 + i * STEP, rnd.uniform(-50, 50))
                       for i in range(n))
        t = time.monotonic()
        r = requests.post(base + "/api/v1/orgs/%s/import?format=csv" % org["id"],
                          data=body.encode(), headers=h)
        assert r.status_code == 200, r.text
        print("import: %s in %.1f s" % (r.text.strip(), time.monotonic() - t))
        raw = n * STEP // 1000
        # The width as asked (not whole minutes: every reading is read) and
        # rounded up to whole minutes (the per-minute rollups are read).
        for every, fn in [(raw, "avg"), (raw, "min"), (raw, "last"),
                          ((raw + 59999) // 60000 * 60000, "avg"),
                          ((raw + 59999) // 60000 * 60000, "min"),
                          ((raw + 59999) // 60000 * 60000, "last")]:
            url = "%s/api/v1/devices/%s/data?channel=v&from=%d&to=%d&every=%d&fn=%s" % (
                base, dev["id"], T0, T0 + n * STEP, every, fn)
            times = []
            for _ in range(5):
                out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total}",
                                      "-H", "Authorization: Bearer " + tok, url],
                                     capture_output=True, text=True, check=True).stdout
                times.append(float(out) * 1000)
            print("every=%-8d fn=%-4s median %.0f ms  (%s)" % (every, fn, statistics.median(times),
                                                   " ".join("%.0f" % x for x in times)))
    finally:
        proc.terminate()
        proc.wait()
        if os.environ.get("FIRST_PAINT_KEEP"):
            print("data dir kept:", data_dir)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
