"""bench/web_report.py — benchmark 13's section of RESULTS.md (the web app's
dashboards in the browser), for report.py."""

FIRST_PAINT_MS = 1000     # the bars
LATENCY_P99_MS = 250
APP_GZIP_KIB = 150


def _num(r, k):
    try:
        return float(r.get(k, "nan"))
    except ValueError:
        return float("nan")


def _ok(v, bar):
    return "met" if v < bar else "**missed**"


def section(recs):
    runs = [r for r in recs if r.get("bench") == "web"]
    if not runs:
        return ""
    parts = ["### 13. Web app: a dashboard in the browser\n",
             "`web_bench.mjs` (bench/README.md, 13.): Debian's chromium, headless, 1280 x 800. First paint: "
             "a dashboard of 10 line charts, one channel each, over one device holding the readings below in "
             "each of 10 channels (bulk import), navigation start -> the 10th chart drawn (Performance API), "
             "the app's assets cached from sign-in. Latency: readings posted by the device at the rate below, "
             "each timestamped at its send, with the dashboard open; send -> the point drawn, every point of "
             "every chart in sight (the charts scrolled out of sight are drawn when they come into view). Size: everything under web/ gzipped (uPlot aside).\n"]
    rows = ["| readings a channel | chart px / points | first paint p50 / max (ms) | one chart's query alone (ms) "
            "| readings/s | charts in sight | points drawn / expected | send -> drawn p50 / p99 / max (ms) | app JS+CSS gzipped |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        rows.append(f"| {int(_num(r, 'readings_per_channel')):,} | {r.get('chart_px')} / {r.get('chart_points_max')} | "
                    f"{_num(r, 'first_paint_ms_p50'):.0f} / {_num(r, 'first_paint_ms_max'):.0f} | "
                    f"{_num(r, 'query_ms_p50'):.1f} | {r.get('rate')} | {r.get('charts_in_sight')} | "
                    f"{int(_num(r, 'drawn')):,} / {int(_num(r, 'expected')):,} | "
                    f"{_num(r, 'latency_ms_p50'):.0f} / {_num(r, 'latency_ms_p99'):.0f} / {_num(r, 'latency_ms_max'):.0f} | "
                    f"{_num(r, 'app_gzip_kib'):.1f} KiB |")
    r = runs[-1]
    rows.append("")
    rows.append(f"Targets: first paint < {FIRST_PAINT_MS} ms {_ok(_num(r, 'first_paint_ms_p50'), FIRST_PAINT_MS)}; "
                f"latency p99 < {LATENCY_P99_MS} ms {_ok(_num(r, 'latency_ms_p99'), LATENCY_P99_MS)}; "
                f"size < {APP_GZIP_KIB} KiB {_ok(_num(r, 'app_gzip_kib'), APP_GZIP_KIB)}.")
    return "\n".join(parts + rows) + "\n"
