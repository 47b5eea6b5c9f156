"""export_report.py — benchmark 10's part of report.py: the export table and
target, from the `bench=export` records bench/export.sh writes."""

SS, INFLUX = "sensorspace", "influxdb"
TARGET = 1.0  # readings/s exported, sensorspace CSV / influxdb's faster way


def _num(r, k):
    try:
        return float(r.get(k, 0))
    except ValueError:
        return 0.0


def _runs(recs, peer=None, mode=None):
    return [r for r in recs if r.get("bench") == "export" and (peer is None or r["peer"] == peer)
            and (mode is None or r.get("mode") == mode)]


def _best(recs, peer, mode=None):
    rows = [r for r in _runs(recs, peer, mode) if r.get("rows") == r.get("want")]
    return max(rows, key=lambda r: _num(r, "readings_per_s")) if rows else None


def targets(recs):
    ss, peer = _best(recs, SS, "csv"), _best(recs, INFLUX)
    if not ss or not peer or not _num(peer, "readings_per_s"):
        return []
    v = _num(ss, "readings_per_s") / _num(peer, "readings_per_s")
    return [(f"export: sensorspace CSV / influxdb ({peer['mode']}), readings/s of one whole export",
             f"{v:.2f}x", f">= {TARGET}x", v >= TARGET)]


def section(recs):
    runs = _runs(recs)
    if not runs:
        return ""
    lines = ["### 11. Export of every reading (sensorspace vs influxdb 1.6)", "",
             "| peer | way | best readings/s | runs (readings/s) | rows |", "|---|---|---|---|---|"]
    for peer, mode in sorted({(r["peer"], r["mode"]) for r in runs}):
        rs = _runs(recs, peer, mode)
        best = _best(recs, peer, mode)
        ok = all(r.get("rows") == r.get("want") for r in rs)
        rows = rs[0].get("want", "?")
        lines.append(f"| {peer} | {mode} | {_num(best, 'readings_per_s'):,.0f} | "
                     + ", ".join(f"{_num(r, 'readings_per_s'):,.0f}" for r in rs)
                     + f" | {int(float(rows)):,} {'all' if ok else '**some missing**'} |")
    return "\n".join(lines) + "\n"
