#!/usr/bin/env python3
"""import_client.py — bulk import rate (benchmark 10), next to benchmark 2.

  import_client.py --port P --admin TOKEN --org ORG --devices ID,ID,... \
      --readings N --dir TMPDIR

Writes a line-format import file before the clock starts (one reading per
line, `<device> temp=V <ms>`: benchmark 2's lines with the device in front,
spread round robin over the devices), then sends it in one request with
curl (`--data-binary @file`, Content-Length) to
POST /api/v1/orgs/ORG/import?format=line, alone (as benchmark 2 runs
alone). Readings/s = readings / the request's wall time (first byte sent
to the answer, which comes after the last commit); the stored count of its
devices must then equal what the file held.

Then the same import into the other half of the devices while a device of
another organisation posts one reading per HTTP request, one after the
other: its latencies (p50, p99, max) are what the import costs everyone
else's ingest, and the import's rate then is its rate when it shares the
commits. Prints `RESULT key=value ...`.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools import http, ss_json  # noqa: E402

VALUES = [f"{v / 10:.1f}" for v in range(400)]


def write_file(path, devices, n, base_ms):
    """Device after device, each one's readings in time order: the order
    of an export (and of most history files)."""
    per = [n // len(devices) + (d < n % len(devices)) for d in range(len(devices))]
    with open(path, "w") as f:
        for dev, count in zip(devices, per):
            step = 100000
            for start in range(0, count, step):
                f.write("".join(f"{dev} temp={VALUES[k % 400]} {base_ms + k}\n"
                                for k in range(start, min(count, start + step))))
    return os.path.getsize(path)


class Victim(threading.Thread):
    def __init__(self, url, token):
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.lat, self.bad = [], 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            body = f"v=1 {int(time.time() * 1000)}".encode()
            req = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"X-Auth-Token": self.token, "Content-Type": "text/plain"})
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    r.read()
                    ok = r.status == 200
            except OSError:
                ok = False
            self.lat.append((time.monotonic() - t0) * 1000)
            self.bad += not ok
            time.sleep(0.01)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else 0.0


def run_import(base, admin, org, path):
    t0 = time.monotonic()
    out = subprocess.run(["curl", "-sS", "--max-time", "900", "-H", "Authorization: Bearer " + admin,
                          "-H", "Content-Type: text/plain", "--data-binary", "@" + path,
                          f"{base}/orgs/{org}/import?format=line"], capture_output=True, text=True)
    secs = time.monotonic() - t0
    try:
        return json.loads(out.stdout), secs
    except ValueError:
        sys.exit(f"import failed: {out.stdout[:300]} {out.stderr[:300]}")


def stored(base, admin, devices):
    n = 0
    for d in devices:
        status, raw = http("GET", f"{base}/devices/{d}/channels", headers={"Authorization": "Bearer " + admin})
        n += sum(c["count"] for c in json.loads(raw)) if status == 200 else 0
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", required=True)
    ap.add_argument("--admin", required=True)
    ap.add_argument("--org", required=True)
    ap.add_argument("--devices", required=True)
    ap.add_argument("--readings", type=int, default=10_000_000)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    base = f"http://127.0.0.1:{a.port}/api/v1"
    devices = a.devices.split(",")
    half = max(1, len(devices) // 2)
    # The rate: the import alone, as benchmark 2 runs alone.
    base_ms = int(time.time() * 1000) - 60 * 86400 * 1000
    path = os.path.join(a.dir, "import.txt")
    size = write_file(path, devices[:half], a.readings, base_ms)
    answer, secs = run_import(base, a.admin, a.org, path)
    if answer.get("readings") != a.readings:
        sys.exit(f"import answered {answer}")
    n_stored = stored(base, a.admin, devices[:half])
    # Fairness: the same import into the other devices while another org's
    # device posts single readings.
    write_file(path, devices[half:], a.readings, base_ms)
    other = ss_json("POST", base + "/orgs", {"name": "victim"}, a.admin)
    vdev = ss_json("POST", f"{base}/orgs/{other['id']}/devices", {"name": "victim"}, a.admin)
    victim = Victim(base + "/data", vdev["token"])
    victim.start()
    time.sleep(1)
    n_idle = len(victim.lat)
    answer2, secs2 = run_import(base, a.admin, a.org, path)
    victim.stop.set()
    victim.join()
    idle, during = victim.lat[:n_idle], victim.lat[n_idle:]
    os.unlink(path)
    if answer2.get("readings") != a.readings:
        sys.exit(f"import answered {answer2}")
    print(f"RESULT readings={a.readings} bytes={size} seconds={secs:.2f} "
          f"readings_per_s={a.readings / secs:.0f} stored={n_stored} devices={half} "
          f"shared_seconds={secs2:.2f} shared_readings_per_s={a.readings / secs2:.0f} "
          f"victim_requests={len(during)} victim_errors={victim.bad} "
          f"victim_idle_p50_ms={pct(idle, 0.5):.2f} victim_p50_ms={pct(during, 0.5):.2f} "
          f"victim_p99_ms={pct(during, 0.99):.2f} victim_max_ms={max(during or [0]):.2f}")


if __name__ == "__main__":
    main()
