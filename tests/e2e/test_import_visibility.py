"""Bulk import: nothing of an import is visible before its whole body is
valid, and what it stores is exactly what a reading-at-a-time write would.

The import's commits write many readings per SQL statement, sorted by
device and channel; these tests hold that to the contract: a bad line near
the very end of a large body stores nothing and counts nothing, readers see
nothing while the body streams, a timestamp sent twice keeps its later
value, and a stored reading is replaced."""
import threading
import time

from conftest import new_org_device, now_ms
from test_import import channel_counts, new_devices, post_import

END_TS = now_ms() - 3600 * 1000


def import_usage(api, org_id):
    r = api.get("/api/v1/orgs/%s/usage?every=day" % org_id)
    assert r.status_code == 200, r.text
    return sum(u["readings"] for u in r.json()["usage"] if u["protocol"] == "import")


class Watcher:
    """Reads the devices' channels and the org's export again and again
    from another connection; notes anything it ever sees."""

    def __init__(self, api, org_id, devs):
        self.api, self.org_id, self.devs = api, org_id, devs
        self.seen = []
        self.reads = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            for dev in self.devs:
                got = channel_counts(self.api, dev)
                if got:
                    self.seen.append(got)
            r = self.api.get("/api/v1/orgs/%s/export" % self.org_id,
                             params={"from": 0, "to": now_ms(), "format": "ndjson"})
            assert r.status_code == 200, r.text
            if r.text.strip():
                self.seen.append(r.text[:200])
            self.reads += 1
            time.sleep(0.02)

    def end(self):
        self.stop.set()
        self.t.join()
        return self.seen


def slow_body(devs, lines, bad_line=None, pause_every=50000, pause_s=0.3, paused=None):
    """Line format over the devices, three channels a line, with pauses
    (so readers run while the body is still coming); line `bad_line` has a
    value that is not a number."""
    out = []
    for i in range(1, lines + 1):
        dev = devs[i % len(devs)]
        ts = END_TS - (lines - i) * 1000
        if i == bad_line:
            out.append("%s a=1,b=x,c=3 %d\n" % (dev, ts))
        else:
            out.append("%s a=%d,b=%d.5,c=-%d %d\n" % (dev, i, i, i, ts))
        if i % pause_every == 0:
            yield "".join(out).encode()
            out = []
            if paused is not None:
                paused.set()
            time.sleep(pause_s)
    yield "".join(out).encode()


def test_bad_line_near_the_end_of_a_large_import_stores_nothing(server, admin):
    org, devs = new_devices(admin, 2, "late")
    lines = 300000
    bad = lines - 2
    watcher = Watcher(admin, org["id"], devs)
    r = post_import(admin, org["id"], slow_body(devs, lines, bad_line=bad), "line")
    seen = watcher.end()
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_reading" and err["line"] == bad, err
    assert watcher.reads >= 3, watcher.reads
    assert seen == []
    for dev in devs:
        assert channel_counts(admin, dev) == {}, dev
    assert import_usage(admin, org["id"]) == 0


def test_nothing_visible_while_the_body_streams(server, admin):
    org, devs = new_devices(admin, 3, "vis")
    lines = 150000
    paused = threading.Event()
    result = {}

    def send():
        result["r"] = post_import(admin, org["id"], slow_body(devs, lines, pause_s=0.5,
                                                              paused=paused), "line")

    t = threading.Thread(target=send)
    t.start()
    assert paused.wait(30)
    watcher = Watcher(admin, org["id"], devs)
    time.sleep(0.3)  # the first pause: most of a body spooled, none of it valid yet
    seen = watcher.end()
    t.join()
    assert seen == [] and watcher.reads >= 1
    r = result["r"]
    assert r.status_code == 200, r.text
    assert r.json()["readings"] == 3 * lines
    total = sum(c["count"] for dev in devs for c in channel_counts(admin, dev).values())
    assert total == 3 * lines
    assert import_usage(admin, org["id"]) == 3 * lines


def test_same_ts_twice_keeps_the_later_value_and_replaces_stored(server, admin):
    org, dev = new_org_device(admin, prefix="dup")
    d = dev["id"]
    base = END_TS - 10 ** 7
    # A stored reading the import replaces, and one it leaves alone.
    r = admin.s.post(admin.url("/api/v1/data"), data="a=-1 %d\na=-2 %d\n" % (base + 5, base - 1),
                     headers={"X-Auth-Token": dev["token"], "Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    n = 1000
    rows = ["%s a=%d,b=%d %d\n" % (d, i, i, base + i) for i in range(n)]
    # Each ts sent again later in the body with another value: the later wins,
    # whether it falls in the same SQL statement or far from the first.
    rows.insert(3, "%s a=7777 %d\n" % (d, base + 1))
    rows.append("%s a=8888,b=9999 %d\n" % (d, base + 500))
    rows.append("%s b=4242 %d\n" % (d, base + n - 1))
    r = post_import(admin, org["id"], "".join(rows).encode(), "line")
    assert r.status_code == 200, r.text
    assert r.json()["readings"] == 2 * n + 4
    got = channel_counts(admin, d)
    assert got["a"]["count"] == n + 1 and got["b"]["count"] == n, got
    assert got["b"]["last_ts"] == base + n - 1 and got["b"]["last_value"] == 4242, got
    r = admin.get("/api/v1/devices/%s/data" % d,
                  params={"channel": "a,b", "from": base - 1, "to": base + n, "limit": 5000})
    assert r.status_code == 200, r.text
    series = {c: dict((t, v) for t, v in pts) for c, pts in r.json()["series"].items()}
    assert series["a"][base - 1] == -2            # not in the import: left alone
    assert series["a"][base + 1] == 7777         # sent after the line of base + 1
    assert series["a"][base + 5] == 5            # the stored -1 replaced
    assert series["a"][base + 500] == 8888 and series["b"][base + 500] == 9999
    assert series["b"][base + n - 1] == 4242
    assert all(series["a"][base + i] == i for i in range(n) if i not in (1, 500))
