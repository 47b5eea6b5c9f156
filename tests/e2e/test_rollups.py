"""Bucketed queries a whole number of minutes wide read per-minute rollups
kept beside the readings (docs/api.md): their answers are those of the raw
readings, through every change a reading can see (sent in order, sent late,
sent again with another value, deleted in a range, stored before the
rollups existed)."""
import random

from conftest import login, new_org_device, now_ms, rewind_schema

MINUTE = 60000
FNS = ("avg", "min", "max", "sum", "count", "first", "last")


def post_lines(api, token, rows):
    body = "".join("v=%r %d\n" % (v, ts) for ts, v in rows)
    r = api.s.post(api.base + "/api/v1/data", data=body,
                   headers={"X-Auth-Token": token, "Content-Type": "text/plain"})
    assert r.status_code == 200, r.text


def by_hand(stored, frm, to, every, fn):
    """The buckets of the readings in [frm, to), ordered by ts."""
    out = {}
    for ts in sorted(t for t in stored if frm <= t < to):
        out.setdefault(ts - ts % every, []).append(stored[ts])
    pick = {"avg": lambda v: sum(v) / len(v), "min": min, "max": max, "sum": sum,
            "count": len, "first": lambda v: v[0], "last": lambda v: v[-1]}[fn]
    return [[b, float(pick(v))] for b, v in sorted(out.items())]


def assert_buckets(api, dev, stored, frm, to):
    for every in (MINUTE, 5 * MINUTE):
        for fn in FNS:
            for order in ("asc", "desc"):
                r = api.get("/api/v1/devices/%s/data?channel=v&from=%d&to=%d&every=%d&fn=%s"
                            "&order=%s&limit=10000" % (dev["id"], frm, to, every, fn, order))
                assert r.status_code == 200, r.text
                got = r.json()["series"].get("v", [])
                want = by_hand(stored, frm, to, every, fn)
                if order == "desc":
                    want.reverse()
                assert [b for b, _ in got] == [b for b, _ in want], (every, fn, order)
                for (_, g), (_, w) in zip(got, want):
                    assert abs(g - w) <= 1e-9 * (1 + abs(w)), (every, fn, order, g, w)


def test_buckets_follow_every_change_of_the_readings(server, admin):
    _, dev = new_org_device(admin, prefix="rollup")
    rnd = random.Random(7)
    t0 = (now_ms() - 6 * 3600 * 1000) // MINUTE * MINUTE
    stored = {}
    # In order, a reading every 7 s over an hour.
    rows = [(t0 + i * 7000, round(rnd.uniform(-50, 50), 3)) for i in range(520)]
    post_lines(admin, dev["token"], rows)
    stored.update(rows)
    frm, to = t0 + 12345, t0 + 3600 * 1000 - 23456  # both inside a minute
    assert_buckets(admin, dev, stored, frm, to)
    # Late, between stored ones, and stored ts sent again with new values.
    rows = [(t0 + i * 7000 + 3500, float(i)) for i in range(0, 520, 3)]
    rows += [(t0 + i * 7000, -1000.0 - i) for i in range(0, 520, 11)]
    rnd.shuffle(rows)
    post_lines(admin, dev["token"], rows)
    stored.update(rows)
    assert_buckets(admin, dev, stored, frm, to)
    # A range that starts and ends inside minutes, deleted.
    a, b = t0 + 10 * MINUTE + 2500, t0 + 23 * MINUTE + 41000
    r = admin.delete("/api/v1/devices/%s/data?from=%d&to=%d" % (dev["id"], a, b))
    assert r.status_code in (200, 202, 204), r.text
    stored = {ts: v for ts, v in stored.items() if not a <= ts < b}
    assert_buckets(admin, dev, stored, frm, to)


def test_readings_stored_before_the_rollups_are_summed_at_start(fresh_server):
    srv = fresh_server()
    api = login(srv.http)
    _, dev = new_org_device(api, prefix="rollup-mig")
    t0 = (now_ms() - 3600 * 1000) // MINUTE * MINUTE
    rows = [(t0 + i * 4000, float(i % 17)) for i in range(400)]
    post_lines(api, dev["token"], rows)
    assert srv.stop() == 0
    assert rewind_schema(srv.data_dir, 12, "DROP TABLE rollups; PRAGMA user_version = 11;") == 11
    srv.start()
    api = login(srv.http)
    assert_buckets(api, dev, dict(rows), t0 - 1, t0 + 400 * 4000 + 1)
