"""mqtt_report.py — benchmark 9's part of report.py: the MQTT tables and
targets, from the `bench=mqtt` records bench/mqtt.sh writes (the RESULT
fields of mqtt_load.c, plus peer, round and, for sensorspace, stored)."""

SS, MOSQ = "sensorspace", "mosquitto"
TARGET_THROUGHPUT = 1.0        # received msgs/s, sensorspace / mosquitto, at QoS 0 and at QoS 1
VERSIONS = {"4": "3.1.1", "5": "5.0"}


def _num(r, k, default=0.0):
    try:
        return float(r.get(k, default))
    except ValueError:
        return default


def _table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _runs(recs, mode, peer=None, qos=None):
    return [r for r in recs if r.get("bench") == "mqtt" and r.get("mode") == mode
            and (peer is None or r["peer"] == peer) and (qos is None or r.get("qos") == qos)]


def _best(recs, mode, peer, qos=None, key="recv_per_s"):
    rows = _runs(recs, mode, peer, qos)
    return max(rows, key=lambda r: _num(r, key)) if rows else None


def stored_check(r):
    """sensorspace stores every message on a data topic: QoS 0 all it was
    sent, QoS 1 all it acknowledged (no more: a refused one is not stored)."""
    if r.get("stored", "-") == "-":
        return "—"
    want = int(_num(r, "acked" if r.get("qos") == "1" else "sent"))
    got = int(_num(r, "stored"))
    return f"{got:,} ok" if got == want else f"**{got:,} of {want:,}**"


def lost_check(r):
    lost = int(_num(r, "lost"))
    if r.get("qos") == "1":
        return "0" if lost == 0 else f"**{lost:,} acknowledged, never delivered**"
    return "0" if lost == 0 else f"{lost:,} (QoS 0 may drop)"


def targets(recs):
    """(name, value, target, met) for report.py's targets table."""
    out = []
    for qos in ("0", "1"):
        ss, mq = _best(recs, "throughput", SS, qos), _best(recs, "throughput", MOSQ, qos)
        if ss and mq and _num(mq, "recv_per_s"):
            v = _num(ss, "recv_per_s") / _num(mq, "recv_per_s")
            out.append((f"mqtt QoS {qos}: sensorspace / mosquitto, messages/s through to one subscriber",
                        f"{v:.2f}x", f">= {TARGET_THROUGHPUT}x", v >= TARGET_THROUGHPUT))
    runs = _runs(recs, "throughput", SS) + _runs(recs, "latency", SS)
    if runs:
        short = [r for r in runs if not stored_check(r).endswith(" ok")]
        out.append(("mqtt: sensorspace stored every message published to a data topic",
                    f"{len(runs) - len(short)}/{len(runs)} runs", "all", not short))
        lost = sum(int(_num(r, "lost")) for r in runs if r.get("qos") == "1")
        out.append(("mqtt QoS 1: sensorspace messages acknowledged and never delivered", f"{lost:,}", "0", lost == 0))
    ss, mq = _best(recs, "idle", SS, key="alive"), _best(recs, "idle", MOSQ, key="alive")
    if ss and mq:
        b, p = _num(ss, "bytes_per_conn"), _num(mq, "bytes_per_conn")
        out.append(("mqtt idle: sensorspace bytes per connection (half TLS)", f"{b:,.0f} B",
                    f"<= mosquitto ({p:,.0f} B)", b <= p and ss.get("ok") == "1"))
    return out


def section(recs):
    if not any(r.get("bench") == "mqtt" for r in recs):
        return ""
    first = next(r for r in recs if r.get("bench") == "mqtt")
    version = VERSIONS.get(first.get("mqtt", "5"), first.get("mqtt"))
    parts = ["### 9. MQTT: sensorspace's broker against mosquitto 2.0\n",
             f"`mqtt_load.c`, the same client and load for both (MQTT {version}): "
             f"{first.get('pubs', '?')} publishers, each a device publishing `temp=V <ts>` "
             "(line format, a distinct ts per message) to `devices/<id>/data`, and one subscriber on "
             "`devices/+/data` at the same QoS (sensorspace: an API key with `data:read`; mosquitto: the "
             "same credentials, not checked). QoS 1: each publisher keeps up to its window of PUBLISHes in "
             "flight, fewer when the broker's Receive Maximum says so. Messages/s = distinct messages the "
             "subscriber received / time to the last one; published/s = sent (QoS 0) or acknowledged "
             "(QoS 1) / time to the last. Sensorspace stores every message (durability full) and acknowledges "
             "after the commit; mosquitto (`persistence false`, `max_queued_messages 0`, `set_tcp_nodelay "
             "true`) stores nothing. Best run of each; the peers' order is swapped every round.\n"]
    rows = []
    for qos in ("0", "1"):
        mq = _best(recs, "throughput", MOSQ, qos)
        for peer in (SS, MOSQ):
            b = _best(recs, "throughput", peer, qos)
            if not b:
                continue
            ratio = (f"{_num(b, 'recv_per_s') / _num(mq, 'recv_per_s'):.2f}x"
                     if peer == SS and mq and _num(mq, "recv_per_s") else "—")
            rows.append((qos, peer, f"{_num(b, 'recv_per_s'):,.0f}", f"{_num(b, 'pub_per_s'):,.0f}",
                         b.get("window", "?") if qos == "1" else "—", lost_check(b), stored_check(b), ratio))
    if rows:
        parts.append(_table(("QoS", "broker", "messages/s received", "published/s", "window", "lost",
                             "stored", "sensorspace / mosquitto"), rows) + "\n")
    lat = [(r.get("qos"), f"{_num(r, 'rate'):,.0f}", r["peer"], f"{_num(r, 'p50_ms'):.3f}",
            f"{_num(r, 'p90_ms'):.3f}", f"{_num(r, 'p99_ms'):.3f}", f"{_num(r, 'max_ms'):.3f}",
            f"{int(_num(r, 'measured')):,}", f"{int(_num(r, 'held')):,}", lost_check(r), stored_check(r))
           for r in _runs(recs, "latency")]
    if lat:
        parts.append("**Publish-to-delivery latency** at a fixed rate, half of the lower of the two brokers' "
                     "best messages/s at that QoS (the same load on both), spread evenly over the publishers; "
                     "each payload carries its send time, the subscriber in the same process takes the "
                     "difference. The first 0.5 s is not counted. Held back: messages that fell due while their "
                     "publisher's QoS 1 window was full (the broker's PUBACKs late); sent once it opened, their "
                     "latency counts from when they fell due.\n\n"
                     + _table(("QoS", "messages/s", "broker", "p50 ms", "p90 ms", "p99 ms", "max ms", "measured",
                               "held back", "lost", "stored"), lat) + "\n")
    idle = [(r["peer"], f"{r['alive']}/{r['conns']} ({r['tls_conns']} TLS)",
             f"{_num(r, 'rss_before_kib') / 1024:.1f} MiB", f"{_num(r, 'rss_after_kib') / 1024:.1f} MiB",
             f"{_num(r, 'bytes_per_conn'):,.0f}", f"{_num(r, 'bytes_per_plain'):,.0f}",
             f"{_num(r, 'bytes_per_tls'):,.0f}", r.get("elapsed_s", "?")) for r in _runs(recs, "idle")]
    if idle:
        parts.append("**Idle connections.** A fresh broker; connections sign in as devices (CONNECT, CONNACK) "
                     "and stay idle, the plain ones first, then the TLS ones (a full handshake each, no "
                     "resumption); VmRSS of the broker before, after the plain ones and after all. "
                     "Kernel socket buffers are not in VmRSS.\n\n"
                     + _table(("broker", "open", "RSS before", "RSS with all open", "bytes / connection",
                               "plain", "TLS", "seconds"), idle) + "\n")
    detail = [(r.get("round", "1"), r.get("qos"), r["peer"], f"{_num(r, 'recv_per_s'):,.0f}",
               f"{_num(r, 'pub_per_s'):,.0f}", f"{int(_num(r, 'unique')):,}", int(_num(r, "dups")),
               int(_num(r, "refused")), f"{_num(r, 'recv_s'):.1f}", lost_check(r), stored_check(r))
              for r in _runs(recs, "throughput")]
    if detail:
        parts.append("Every throughput run:\n\n"
                     + _table(("round", "QoS", "broker", "messages/s received", "published/s", "received",
                               "duplicates", "refused", "seconds", "lost", "stored"), detail) + "\n")
    return "\n".join(parts)
