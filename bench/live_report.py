"""bench/live_report.py — benchmark 12's section of RESULTS.md (the live
stream's latency), for report.py."""


def _num(r, k):
    try:
        return float(r.get(k, "nan"))
    except ValueError:
        return float("nan")


def section(recs):
    runs = [r for r in recs if r.get("bench") == "live"]
    if not runs:
        return ""
    first = runs[0]
    parts = ["### 12. Live stream: latency, commit to Server-Sent Event\n",
             f"`live_load.py`: {first.get('clients', '?')} SSE clients on `GET /api/v1/orgs/{{org}}/live` "
             f"(HTTP/1.0, read by 4 processes), readings arriving at about {first.get('rate', '?')}/s over "
             "HTTP (4 connections, 10 readings of distinct ts per request: one event each), durability full. "
             "The commit lies between a request's send and its acknowledgement, and the server hands the "
             "event to the streams before it acknowledges: commit -> event is at most send -> event and at "
             "least acknowledgement -> event (negative: the event came first). One row per run, each on a "
             "freshly started server.\n"]
    rows = ["| run | clients | readings/s | events received / expected | send -> event p50 / p99 / max (ms) "
            "| ack -> event p50 / p99 (ms) | request round trip p50 / p99 (ms) |",
            "|---|---|---|---|---|---|---|"]
    for r in runs:
        rows.append(f"| {r.get('round', '?')} | {r.get('clients')} | {r.get('rate')} | "
                    f"{int(_num(r, 'events')):,} / {int(_num(r, 'expected')):,} | "
                    f"{_num(r, 'p50_ms'):.1f} / {_num(r, 'p99_ms'):.1f} / {_num(r, 'max_ms'):.1f} | "
                    f"{_num(r, 'ack_event_p50_ms'):.1f} / {_num(r, 'ack_event_p99_ms'):.1f} | "
                    f"{_num(r, 'commit_p50_ms'):.1f} / {_num(r, 'commit_p99_ms'):.1f} |")
    return "\n".join(parts + rows) + "\n"
