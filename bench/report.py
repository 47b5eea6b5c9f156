#!/usr/bin/env python3
"""report.py — turns run.sh's records into tables on stdout and RESULTS.md.

Records are lines of key=value tokens (bench=single|batch|idle, peer=..., and
the RESULT fields of wrk/single.lua, batch_client.py, idle_conns.py).

  report.py --records R --missed         prints the targets missed, one a line
  report.py --records R --machine M --profiles DIR --out RESULTS.md ...

Hand-written analysis between the markers ANALYSIS_BEGIN / ANALYSIS_END in the
existing RESULTS.md is carried over into the new one, so a re-run does not
erase it (its date says which run it was written for).
"""
import argparse
import os
import sys

import mqtt_report  # benchmark 9, bench/mqtt_report.py
import export_report  # benchmark 10, bench/export_report.py
import live_report  # benchmark 12, bench/live_report.py
import web_report  # benchmark 13, bench/web_report.py

SS = "sensorspace-full"
SS_NORMAL = "sensorspace-normal"
BASELINE = "baseline-full"     # BENCH_BASELINE's server, durability full
NGX1, NGXA, INFLUX = "nginx-1", "nginx-auto", "influxdb"
TARGET_VS_NGINX = 0.5
TARGET_VS_INFLUX = 2.0
TARGET_BATCH = 0.5
TARGET_IDLE_BYTES = 8192
TARGET_TCP_VS_INFLUX = 0.5     # TCP ingest vs influxdb /write batches of 1000
TARGET_TCP_VS_BATCH = 1.0      # TCP ingest no slower than sensorspace's own HTTP batches
TARGET_AB = 0.95               # A/B: the current server's figure / the baseline revision's, same run
TARGET_WIRE_TCP = 0.1          # TCP bytes per reading <= 1/10 of HTTPS's
TARGET_ACCT_PCT = 5.0          # accounting + quota code, share of instructions
TARGET_IMPORT_VS_BATCH = 1.0   # bulk import no slower than sensorspace's own HTTP batches
AMORTISE_READINGS = 360        # a persistent connection held 1 h at one reading per 10 s
TCP_IP_HEADER = 40             # IPv4 + TCP without options, per segment
UDP_IP_HEADER = 28             # IPv4 + UDP, per datagram
ANALYSIS_BEGIN = "<!-- ANALYSIS_BEGIN -->"
ANALYSIS_END = "<!-- ANALYSIS_END -->"


def load(path):
    recs = []
    with open(path) as f:
        for line in f:
            r = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
            if r:
                recs.append(r)
    return recs


def num(r, k, default=0.0):
    try:
        return float(r.get(k, default))
    except ValueError:
        return default


def best(recs, bench, peer, key):
    rows = [r for r in recs if r["bench"] == bench and r["peer"] == peer]
    return max(rows, key=lambda r: num(r, key)) if rows else None


def ratio(a, b, key):
    if not a or not b or num(b, key) == 0:
        return None
    return num(a, key) / num(b, key)


def targets(recs):
    """(name, value, target, met) for every target whose peers were measured."""
    out = []
    ss = best(recs, "single", SS, "rps")
    for peer, tgt, name in ((NGX1, TARGET_VS_NGINX, "single: sensorspace-full / nginx-1"),
                            (INFLUX, TARGET_VS_INFLUX, "single: sensorspace-full / influxdb")):
        v = ratio(ss, best(recs, "single", peer, "rps"), "rps")
        if v is not None:
            out.append((name, f"{v:.2f}x", f">= {tgt}x", v >= tgt))
    v = ratio(best(recs, "batch", SS, "readings_per_s"), best(recs, "batch", INFLUX, "readings_per_s"),
              "readings_per_s")
    if v is not None:
        out.append(("batch: sensorspace-full / influxdb", f"{v:.2f}x", f">= {TARGET_BATCH}x", v >= TARGET_BATCH))
    for bench, key, what in AB_FIGURES:
        new, base = best(recs, bench, SS, key), best(recs, bench, BASELINE, key)
        v = ratio(new, base, key)
        if v is not None:
            out.append((f"A/B {bench}: sensorspace-full / the same at revision {base.get('rev', '?')} ({what})",
                        f"{v:.3f}x", f">= {TARGET_AB}x", v >= TARGET_AB))
    tcp = best(recs, "tcp", SS, "readings_per_s")
    for peer_bench, peer, tgt, name in (("batch", INFLUX, TARGET_TCP_VS_INFLUX, "tcp: sensorspace-full TCP / influxdb batch"),
                                        ("batch", SS, TARGET_TCP_VS_BATCH, "tcp: sensorspace-full TCP / its HTTP batch")):
        v = ratio(tcp, best(recs, peer_bench, peer, "readings_per_s"), "readings_per_s")
        if v is not None:
            out.append((name, f"{v:.2f}x", f">= {tgt}x", v >= tgt))
    dev = best(recs, "devices", "sensorspace", "lines")
    if dev:
        out.append(("devices: every reading acked and stored",
                    f"{int(num(dev, 'acked'))}/{int(num(dev, 'lines'))} acked, "
                    f"{int(num(dev, 'devices_stored_mismatch'))} devices short", "all", dev.get("ok") == "1"))
    for ts, label in WIRE_TS.items():
        w = {r["scenario"]: wire_figures(r) for r in recs if r["bench"] == "wire" and r.get("ts", "device") == ts}
        for ref, key, what in (("https-keepalive", "amort", "payload, TLS counted"),
                               ("https-keepalive", "wire", "with IP+TCP headers"),
                               ("https-fresh", "wire", "with IP+TCP headers")):
            if "tcp" in w and ref in w and w[ref][key]:
                v = w["tcp"][key] / w[ref][key]
                out.append((f"wire, {label}: tcp / {ref} bytes per reading ({what})", f"{v:.3f}",
                            f"<= {TARGET_WIRE_TCP}", v <= TARGET_WIRE_TCP))
    acct = best(recs, "acct", "sensorspace", "total_ir")
    if acct and "acct_at_group_pct" in acct:
        v = num(acct, "acct_at_group_pct")
        out.append((f"acct: accounting + quota + usage writes, share of instructions per request "
                    f"at benchmark 1's commit size (g = {num(acct, 'group_real'):.0f})", f"{v:.2f}%",
                    f"< {TARGET_ACCT_PCT}%", v < TARGET_ACCT_PCT))
    elif acct:
        v = num(acct, "acct_with_store_pct")
        out.append(("acct: accounting + quota + usage writes, share of instructions per request",
                    f"{v:.2f}%", f"< {TARGET_ACCT_PCT}%", v < TARGET_ACCT_PCT))
    idle = best(idle_recs(recs, "http"), "idle", "sensorspace", "bytes_per_conn")
    if idle:
        b = num(idle, "bytes_per_conn")
        out.append(("idle: sensorspace bytes per HTTP connection", f"{b:.0f} B",
                    f"< {TARGET_IDLE_BYTES} B", b < TARGET_IDLE_BYTES and idle.get("ok") == "1"))
    # An idle TLS connection keeps OpenSSL's per-connection state (~14 KB,
    # RESULTS.md 3.): the bar is the peer on the same OpenSSL, not plain HTTP.
    idle = best(idle_recs(recs, "https"), "idle", "sensorspace", "bytes_per_conn")
    peer = best(idle_recs(recs, "https"), "idle", "nginx-1", "bytes_per_conn")
    if idle and peer:
        b, p = num(idle, "bytes_per_conn"), num(peer, "bytes_per_conn")
        out.append(("idle: sensorspace bytes per HTTPS connection", f"{b:.0f} B",
                    f"<= nginx-1 ({p:.0f} B)", b <= p and idle.get("ok") == "1"))
    imp = best(recs, "import", SS, "readings_per_s")
    v = ratio(imp, best(recs, "batch", SS, "readings_per_s"), "readings_per_s")
    if v is not None:
        out.append(("import: sensorspace-full bulk import / its HTTP batch (readings/s)", f"{v:.2f}x",
                    f">= {TARGET_IMPORT_VS_BATCH}x", v >= TARGET_IMPORT_VS_BATCH))
    return out + mqtt_report.targets(recs) + export_report.targets(recs)


def import_section(recs):
    rows = [r for r in recs if r["bench"] == "import"]
    if not rows:
        return ""
    batch = best(recs, "batch", SS, "readings_per_s")
    detail = []
    for r in rows:
        rr = ratio(r, batch, "readings_per_s")
        detail.append((r.get("round", "1"), f"{int(num(r, 'readings')):,}", f"{num(r, 'bytes') / 2**20:,.0f} MiB",
                       f"{num(r, 'seconds'):.1f}", f"{num(r, 'readings_per_s'):,.0f}",
                       f"{rr:.2f}x" if rr is not None else "—",
                       "ok" if num(r, "stored") == num(r, "readings") else f"**stored {int(num(r, 'stored'))}**",
                       f"{num(r, 'shared_readings_per_s'):,.0f}",
                       f"{r['victim_idle_p50_ms']} → {r['victim_p50_ms']} / {r['victim_p99_ms']} / {r['victim_max_ms']}",
                       r["victim_requests"], r["victim_errors"]))
    return ("### 10. Bulk import of history (one streamed request)\n\n"
            "`import_client.py`: a line-format file of one reading per line (`<device> temp=V <ms>`, benchmark 2's "
            "lines with the device in front, over " + rows[0].get("devices", "?") + " devices), written before the "
            "clock starts, sent by `curl --data-binary @file` to `POST /api/v1/orgs/{org}/import?format=line`; "
            "`--durability full`. Readings/s = readings / the request's wall time (the answer comes after the "
            "last commit), the import alone as benchmark 2 runs alone. Then the same import into other devices "
            "while a device of another organisation posts one reading per HTTP request, one after another: its "
            "latency before the import (p50) and during it (p50 / p99 / max), and the import's rate beside it "
            "(the commits are shared per organisation, so it yields).\n\n"
            + table(("round", "readings", "file", "seconds", "readings/s", "/ batch (2.)", "stored",
                     "readings/s beside the victim", "victim ms: idle p50 → p50 / p99 / max", "victim requests",
                     "victim errors"), detail) + "\n")


# The figures measured on the baseline revision too: (bench, key, unit).
AB_FIGURES = (("single", "rps", "requests/s, one reading each over HTTP"),
              ("tcp", "readings_per_s", "TCP ingest readings/s"))


def ab_section(recs):
    """The A/B: each figure's best run on either server, and every round's
    pair (the two ran one right after the other), as new / baseline."""
    rows = []
    for bench, key, what in AB_FIGURES:
        new, base = best(recs, bench, SS, key), best(recs, bench, BASELINE, key)
        if not new or not base:
            continue
        rounds = []
        for rnd in sorted({r.get("round", "1") for r in recs if r["bench"] == bench}, key=int):
            mine = [r for r in recs if r["bench"] == bench and r.get("round", "1") == rnd]
            rr = ratio(best(mine, bench, SS, key), best(mine, bench, BASELINE, key), key)
            if rr is not None:
                rounds.append(f"{rnd}: {rr:.3f}x")
        rows.append((what, f"{num(new, key):,.0f}", f"{num(base, key):,.0f}", f"{ratio(new, base, key):.3f}x",
                     ", ".join(rounds) or "—"))
    if not rows:
        return ""
    rev = next(r.get("rev", "?") for r in recs if r.get("peer") == BASELINE)
    return (f"### A/B: this revision against revision {rev}\n\n"
            f"Revision {rev} (bench/BASELINE, or BENCH_BASELINE) is built from `git archive` and runs "
            "benchmarks 1 and 5 in every round, beside sensorspace-full (durability full, the same quota "
            "and settings; right after it in odd rounds, right before it in even ones). Best run of each; "
            f"target: new / baseline >= {TARGET_AB}.\n\n"
            + table(("figure", "sensorspace-full", f"revision {rev}", "new / baseline", "per round"), rows) + "\n")


def idle_recs(recs, proto):
    """The idle records of one protocol (records from before HTTPS was
    measured have no proto: they are HTTP)."""
    return [r for r in recs if r["bench"] == "idle" and r.get("proto", "http") == proto]


def table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def single_check(r):
    """Acked vs stored: nothing acked may be missing; a few more may be stored
    (requests in flight when wrk stopped, committed but never read)."""
    if r.get("stored", "-") == "-":
        return "n/a"
    acked = int(num(r, "requests") - num(r, "err_status"))
    stored = int(num(r, "stored"))
    if stored < acked:
        return f"**LOST {acked - stored}**"
    return f"ok (+{stored - acked} in flight)"


def errors(r):
    parts = [f"{k[4:]} {int(num(r, k))}" for k in
             ("err_connect", "err_read", "err_write", "err_timeout") if num(r, k)]
    return ", ".join(parts) or "0"


def single_section(recs):
    rows = [r for r in recs if r["bench"] == "single"]
    if not rows:
        return ""
    peers = list(dict.fromkeys(r["peer"] for r in rows))
    ss = best(recs, "single", SS, "rps")
    summary = []
    for p in peers:
        b = best(recs, "single", p, "rps")
        rr = ratio(ss, b, "rps")
        label = f"{p} (revision {b['rev']})" if "rev" in b else p
        summary.append((label, f"{num(b, 'rps'):,.0f}", f"-t{b['threads']} -c{b['conns']}",
                        f"{num(b, 'p50_us') / 1000:.2f}", f"{num(b, 'p99_us') / 1000:.2f}",
                        f"{rr:.2f}x" if rr is not None and p != SS else "—"))
    detail = [(r.get("round", "1"), r["peer"], f"-t{r['threads']} -c{r['conns']}", f"{num(r, 'rps'):,.0f}",
               f"{num(r, 'p50_us') / 1000:.2f}", f"{num(r, 'p99_us') / 1000:.2f}",
               int(num(r, "err_status")), errors(r), r.get("stored", "-"), single_check(r))
              for r in rows]
    return ("### 1. One reading per HTTP request (keep-alive, wrk)\n\n"
            "Best setting per peer; the ratio column is sensorspace-full divided by the peer.\n\n"
            + table(("peer", "requests/s", "wrk setting", "p50 ms", "p99 ms", "sensorspace-full / peer"),
                    summary)
            + "\n\nEvery run (non-2xx = wrk's `Non-2xx or 3xx responses`, i.e. status >= 400; "
              "stored = readings the server holds afterwards, checked against the 2xx answers):\n\n"
            + table(("round", "peer", "wrk setting", "requests/s", "p50 ms", "p99 ms", "non-2xx",
                     "socket errors", "stored", "acked vs stored"), detail) + "\n")


def batch_section(recs):
    rows = [r for r in recs if r["bench"] == "batch"]
    if not rows:
        return ""
    ss = best(recs, "batch", SS, "readings_per_s")
    peers = list(dict.fromkeys(r["peer"] for r in rows))
    summary = []
    for p in peers:
        b = best(recs, "batch", p, "readings_per_s")
        rr = ratio(ss, b, "readings_per_s")
        summary.append((p, f"{num(b, 'readings_per_s'):,.0f}", b["conns"],
                        f"{num(b, 'bytes_per_request') / 1024:.1f} KiB",
                        f"{rr:.2f}x" if rr is not None and p != SS else "—"))
    detail = []
    for r in rows:
        acked, stored = int(num(r, "readings")), int(num(r, "stored"))
        check = "ok" if stored == acked else (f"**LOST {acked - stored}**" if stored < acked
                                               else f"+{stored - acked} unacked")
        detail.append((r.get("round", "1"), r["peer"], r["conns"], f"{num(r, 'readings_per_s'):,.0f}", r["ok"], r["bad"],
                       r["conn_errors"], f"{num(r, 'elapsed_s'):.1f}", acked, stored, check))
    return ("### 2. Batches of 1000 readings per request\n\n"
            + table(("peer", "readings/s", "connections", "body", "sensorspace-full / peer"), summary)
            + "\n\nEvery run:\n\n"
            + table(("round", "peer", "connections", "readings/s", "2xx", "non-2xx", "conn errors", "seconds",
                     "acked readings", "stored", "check"), detail) + "\n")


def idle_section(recs):
    rows = [r for r in recs if r["bench"] == "idle"]
    if not rows:
        return ""
    out = [(r["peer"], r.get("proto", "http").upper(), r["alive"] + "/" + r["conns"],
            f"{num(r, 'rss_before_kib') / 1024:.1f} MiB",
            f"{num(r, 'rss_after_kib') / 1024:.1f} MiB", f"{num(r, 'rss_closed_kib') / 1024:.1f} MiB",
            f"{num(r, 'bytes_per_conn'):,.0f}", r["fds_after"], r["elapsed_s"]) for r in rows]
    return ("### 3. Memory per idle keep-alive connection\n\n"
            "Each connection made one `GET /healthz` first and then stayed open and idle; "
            "HTTPS ones completed a TLS handshake (no resumption) first. Connections are opened "
            "in waves of 500 at once, each server fresh for its run. "
            "VmRSS of the serving process (nginx: its one worker). "
            "Kernel socket buffers are not in VmRSS.\n\n"
            + table(("server", "protocol", "open", "RSS before", "RSS with all open", "RSS after closing",
                     "bytes / connection", "server fds", "seconds"), out) + "\n")


def tcp_section(recs):
    rows = [r for r in recs if r["bench"] == "tcp"]
    if not rows:
        return ""
    tcp = best(recs, "tcp", SS, "readings_per_s")
    base = best(recs, "tcp", BASELINE, "readings_per_s")
    peers = [("tcp", SS, "TCP ingest"), ("tcp", SS_NORMAL, "TCP ingest"),
             ("tcp", BASELINE, f"TCP ingest, revision {base.get('rev', '?')}" if base else ""),
             ("batch", SS, "HTTP, batches of 1000"), ("batch", SS_NORMAL, "HTTP, batches of 1000"),
             ("batch", INFLUX, "/write, batches of 1000")]
    summary = []
    for bench, peer, how in peers:
        b = best(recs, bench, peer, "readings_per_s")
        if not b:
            continue
        rr = ratio(tcp, b, "readings_per_s")
        summary.append((peer, how, f"{num(b, 'readings_per_s'):,.0f}", b.get("conns", "?"),
                        "—" if (bench, peer) == ("tcp", SS) or rr is None else f"{rr:.2f}x"))
    detail = []
    for r in rows:
        acked, stored = int(num(r, "acked")), int(num(r, "stored"))
        check = "ok" if stored == acked == int(num(r, "lines")) and r.get("complete") == "1" else (
            f"**LOST {acked - stored}**" if stored < acked else f"**sent {r['lines']} acked {acked} stored {stored}**")
        detail.append((r.get("round", "1"), r["peer"], r["conns"], f"{num(r, 'readings_per_s'):,.0f}", r["lines"],
                       acked, r["ack_messages"], r["err_lines"], f"{num(r, 'elapsed_s'):.1f}", stored, check))
    return ("### 5. TCP ingest: lines streamed over 4 connections\n\n"
            "`tcp_client.c`: `AUTH`, then `temp=V <ts>` lines (one reading each, ~24 B) in 64 KiB writes; the "
            "clock stops at the `ACK n` covering every line sent. The HTTP batch and influxdb rows are "
            "benchmark 2's best runs in the same run (same readings).\n\n"
            + table(("peer", "how", "readings/s", "connections", "sensorspace-full TCP / peer"), summary)
            + "\n\nEvery TCP run:\n\n"
            + table(("round", "peer", "connections", "readings/s", "lines sent", "acked (ACK totals)",
                     "ACK messages", "ERR lines", "seconds", "stored", "check"), detail) + "\n")


def devices_section(recs):
    r = best(recs, "devices", "sensorspace", "lines")
    if not r:
        return ""
    row = (r["devices"], r["seconds"], r["lines"], r["acked"], r["ack_messages"], r["err_lines"],
           r["devices_stored_mismatch"], f"{num(r, 'rss_before_kib') / 1024:.1f} MiB",
           f"{num(r, 'rss_connected_kib') / 1024:.1f} MiB", f"{num(r, 'rss_after_kib') / 1024:.1f} MiB",
           f"{num(r, 'bytes_per_conn'):,.0f}", f"{num(r, 'bytes_per_conn_after'):,.0f}",
           f"{r['ack_p50_ms']} / {r['ack_p99_ms']} / {r['ack_max_ms']}")
    return ("### 6. Devices on TCP, one reading a second each\n\n"
            "`tcp_devices.py`: every device holds its own connection (AUTH, `OK`), then sends one line a second, "
            "the devices spread evenly over each second; `--durability full`. Bytes per connection = "
            "(VmRSS with all connected, before any reading - VmRSS before connecting) / devices; "
            "\"after\" = the same at the end of the run. Stored short = devices whose stored count "
            "differs from the lines they sent.\n\n"
            + table(("devices", "seconds", "lines sent", "acked", "ACK messages", "ERR lines", "devices stored short",
                     "RSS before", "RSS connected", "RSS after", "bytes / connection", "bytes / connection after",
                     "ACK latency p50 / p99 / max ms"), [row]) + "\n")


def wire_figures(r):
    """Per reading: payload (steady, amortised) and with headers."""
    n = max(num(r, "readings"), 1)
    per, segs = num(r, "reading_bytes"), num(r, "reading_segs")
    fixed, fixed_segs = num(r, "setup_bytes") + num(r, "end_bytes"), num(r, "setup_segs") + num(r, "end_segs")
    if r["scenario"] == "udp":
        return {"payload": per, "segs": segs, "amort": per, "amort_segs": segs,
                "wire": per + UDP_IP_HEADER * segs, "hdr": UDP_IP_HEADER}
    amort, amort_segs = per + fixed / AMORTISE_READINGS, segs + fixed_segs / AMORTISE_READINGS
    return {"payload": per, "segs": segs, "amort": amort, "amort_segs": amort_segs,
            "wire": amort + TCP_IP_HEADER * amort_segs, "hdr": TCP_IP_HEADER, "n": n}


WIRE_MODES = {
    "https-keepalive": "HTTPS, one keep-alive connection",
    "https-fresh": "HTTPS, new connection per reading",
    "https-resumed": "HTTPS, new connection resuming the TLS session",
    "http-keepalive": "plain HTTP, keep-alive",
    "tcp": "TCP socket, persistent, AUTH once",
    "udp": "UDP datagram incl. token",
}


WIRE_TS = {"device": "ts in each reading", "server": "server-stamped (no ts)"}


def wire_table(rows):
    figs = {r["scenario"]: wire_figures(r) for r in rows}
    ref = figs.get("https-keepalive")
    out = []
    for r in rows:
        f = figs[r["scenario"]]
        fixed = f"{int(num(r, 'setup_bytes'))} B / {int(num(r, 'setup_segs'))} + {int(num(r, 'end_bytes'))} B / " \
                f"{int(num(r, 'end_segs'))}" if r["scenario"] in ("https-keepalive", "http-keepalive", "tcp") else (
                    f"handshake {r['handshake_bytes']} B / {r['handshake_segs']}" if "fresh" in r["scenario"]
                    or "resumed" in r["scenario"] else "—")
        client_total, server = num(r, "total_bytes"), num(r, "server_bytes")
        expect = 2 * int(num(r, "sent"))
        out.append((WIRE_MODES.get(r["scenario"], r["scenario"]), r["readings"], f"{f['payload']:.1f}",
                    f"{f['segs']:.2f}", fixed, f"{f['amort']:.1f}",
                    f"{f['amort'] / ref['amort']:.3f}" if ref else "—", f"{f['wire']:.1f}",
                    f"{f['wire'] / ref['wire']:.3f}" if ref else "—",
                    f"{int(server):,} / {int(client_total):,}",
                    "ok" if int(num(r, "stored")) >= expect else f"**{r['stored']}/{expect}**"))
    return table(("protocol", "readings", "payload B / reading (steady)", "segments / reading",
                  "setup + teardown (B / segments)", f"payload B / reading, setup over {AMORTISE_READINGS}",
                  "payload / HTTPS keep-alive", "with IP headers B / reading", "with headers / HTTPS keep-alive",
                  "server count / client count (B)", "stored"), out)


def wire_section(recs):
    rows = [r for r in recs if r["bench"] == "wire"]
    if not rows:
        return ""
    tables = ""
    for ts, label in WIRE_TS.items():
        mine = [r for r in rows if r.get("ts", "device") == ts]
        if mine:
            line = "`temp=V,rh=W <ts>`" if ts == "device" else "`temp=V,rh=W` (the server stamps it)"
            tables += f"\n**{label[0].upper() + label[1:]}**: {line}\n\n" + wire_table(mine) + "\n"
    return ("### 7. Bytes on the wire per reading (two channels)\n\n"
            "`wire_bytes.py`, one device per scenario. Bytes = TCP payload both ways as the kernel counts it on "
            "the client socket (`TCP_INFO` bytes_acked + bytes_received: TLS records included; SYN and FIN "
            "add 1 each), segments = segs_out + segs_in there (SYN, pure ACKs and FIN included); UDP: the "
            "datagram. The client pauses 50 ms after each answer, longer than the delayed-ACK timer, as a "
            "device waiting 10 s would. Persistent connections: the steady cost per reading, and the "
            f"setup (connect, TLS handshake, AUTH) + teardown spread over {AMORTISE_READINGS} readings "
            "(a connection held 1 h at one reading per 10 s). With headers: + "
            f"{TCP_IP_HEADER} B per TCP segment (IPv4 + TCP without options; Linux adds 12 B of timestamps "
            f"unless disabled), + {UDP_IP_HEADER} B per UDP datagram. Loopback's 64 KiB MSS puts the TLS "
            "handshake in fewer segments than a 1500 B MTU link would. Server count = the server's own "
            "accounting (session records' bytes_in + bytes_out for the device; usage for UDP) against the "
            "client's total for the same connections. Every protocol that answers each reading (HTTP(S) "
            "with its response, TCP with `ACK n`) spends 3 segments on it, so with headers counted no "
            "TCP protocol can fall below about a third of keep-alive HTTPS.\n"
            + tables + "\n")


def acct_section(recs, d):
    r = best(recs, "acct", "sensorspace", "total_ir")
    if not r:
        return ""
    text = ""
    path = os.path.join(d, "profile-acct.txt") if d else ""
    if path and os.path.exists(path):
        with open(path) as f:
            text = f.read().rstrip()
    at_g = ""
    if "acct_at_group_pct" in r:
        at_g = (f" At the commit size benchmark 1 had at full speed (g = {num(r, 'group_real'):.1f} requests "
                f"per commit; under valgrind the store commits far more often), fitted from a second run with "
                f"one connection: **{num(r, 'acct_at_group_pct'):.2f}%**.")
    return ("### 8. Accounting and quotas: share of the single-reading path (callgrind)\n\n"
            f"{int(num(r, 'requests')):,} requests of one reading (`batch_client.py --size 1 --conns 8`), "
            f"{num(r, 'ir_per_request'):,.0f} instructions per request in all threads; the accounting + quota "
            f"functions: {num(r, 'acct_share_pct'):.2f}% (inclusive, nothing counted twice); "
            f"with the store's usage write in each commit and the server's byte reporting: "
            f"{num(r, 'acct_with_store_pct'):.2f}%.{at_g}\n\n```\n{text}\n```\n")


def targets_section(recs):
    rows = [(n, v, t, "met" if ok else "**missed**") for n, v, t, ok in targets(recs)]
    return "### Targets\n\n" + table(("figure", "measured", "target", ""), rows) + "\n"


def profiles_section(d):
    if not d or not os.path.isdir(d):
        return ""
    parts = []
    for name in sorted(os.listdir(d)):
        if name.startswith("profile-") and name.endswith(".txt") and name != "profile-acct.txt":
            with open(os.path.join(d, name)) as f:
                parts.append(f"#### {name[8:-4]} workload\n\n```\n{f.read().rstrip()}\n```\n")
    if not parts:
        return ""
    return "### 4. Profiles\n\n" + "\n".join(parts)


def old_analysis(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    i, j = text.find(ANALYSIS_BEGIN), text.find(ANALYSIS_END)
    return text[i:j + len(ANALYSIS_END)] if 0 <= i < j else ""


def render(a, recs):
    with open(a.machine) as f:
        machine = [line.rstrip("\n") for line in f if line.strip()]
    analysis = old_analysis(a.out) or (ANALYSIS_BEGIN + "\n" + ANALYSIS_END)
    return "\n".join([
        "# SensorSpace benchmark results",
        "",
        "Generated by `bench/run.sh` (`make bench`); see bench/README.md for what each figure "
        "measures. All traffic on 127.0.0.1; client and servers share the machine's cores.",
        "",
        "## Machine",
        "",
        *[f"- {m}" for m in machine],
        f"- wrk settings tried (threads:connections): {a.settings}; batch connections tried: "
        f"{a.batch_conns}; rounds: {a.rounds} (every peer restarted fresh in each; best run reported)",
        f"- total run time: {a.runtime_s} s",
        "",
        "## Results",
        "",
        targets_section(recs),
        ab_section(recs),
        single_section(recs),
        batch_section(recs),
        idle_section(recs),
        tcp_section(recs),
        devices_section(recs),
        wire_section(recs),
        acct_section(recs, a.profiles),
        mqtt_report.section(recs),
        import_section(recs),
        export_report.section(recs),
        live_report.section(recs),
        web_report.section(recs),
        profiles_section(a.profiles),
        "## Analysis",
        "",
        analysis,
        "",
    ])


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--records", required=True)
    p.add_argument("--missed", action="store_true")
    p.add_argument("--machine")
    p.add_argument("--profiles")
    p.add_argument("--settings", default="")
    p.add_argument("--batch-conns", default="")
    p.add_argument("--rounds", default="1")
    p.add_argument("--runtime-s", default="?")
    p.add_argument("--out")
    a = p.parse_args()
    recs = load(a.records)
    if a.missed:
        for name, v, t, ok in targets(recs):
            if not ok:
                print(f"{name} ({v}, target {t})")
        return
    # The checkout's own path says nothing to a reader on another machine.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = render(a, recs).replace(root + "/", "")
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    # The tables on stdout, for whoever ran `make bench`.
    for section in (targets_section(recs), ab_section(recs), single_section(recs), batch_section(recs), idle_section(recs),
                    tcp_section(recs), devices_section(recs), wire_section(recs), acct_section(recs, a.profiles),
                    mqtt_report.section(recs), import_section(recs),
                    export_report.section(recs), live_report.section(recs), web_report.section(recs)):
        if section:
            sys.stdout.write(section + "\n")


if __name__ == "__main__":
    main()
