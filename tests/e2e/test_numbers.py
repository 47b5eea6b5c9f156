"""SPEC §2: every number is written as the shortest text that reads back to
the same double: 21.6, never 21.600000000000001."""
import re

import requests

from conftest import now_ms


def post(server, token, body, ctype="application/json"):
    r = requests.post(server.http + "/api/v1/data", data=body, timeout=30,
                      headers={"X-Auth-Token": token, "Content-Type": ctype})
    assert r.status_code == 200, r.text
    return r


def test_values_read_back_as_their_shortest_text(server, admin, device):
    ts = now_ms() - 10000
    post(server, device["token"],
         '{"ts": %d, "values": {"temp": 21.6, "p": 0.1, "big": 1e300, "tiny": 5e-324,'
         ' "neg": -0.0, "whole": 40, "long": 123456789012345678}}' % ts)
    data = admin.get("/api/v1/devices/%s/data?channel=temp,p,big,tiny,neg,whole,long" % device["id"])
    assert data.status_code == 200
    text = data.text
    assert '"temp":[[%d,21.6]]' % ts in text, text
    assert '"p":[[%d,0.1]]' % ts in text
    assert '"big":[[%d,1e300]]' % ts in text
    assert '"tiny":[[%d,5e-324]]' % ts in text
    assert '"neg":[[%d,-0]]' % ts in text or '"neg":[[%d,0]]' % ts in text  # the store keeps no sign of zero
    assert '"whole":[[%d,40]]' % ts in text
    assert '"long":[[%d,1.2345678901234568e17]]' % ts in text
    assert "21.600000000000001" not in text and "0.10000000000000001" not in text
    latest = admin.get("/api/v1/devices/%s/latest" % device["id"]).text
    assert re.search(r'"temp":\{"ts":%d,"value":21.6\}' % ts, latest), latest
    channels = admin.get("/api/v1/devices/%s/channels" % device["id"]).text
    assert '"last_value":21.6' in channels, channels
    # the same over the line format, and through an aggregate
    post(server, device["token"], "temp=21.6 %d\n" % (ts + 1), "text/plain")
    avg = admin.get("/api/v1/devices/%s/data?channel=temp&every=60000&fn=avg&from=%d"
                    % (device["id"], ts - 120000)).text
    assert ",21.6]" in avg, avg


def test_metrics_print_shortest_numbers(server):
    text = requests.get(server.http + "/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        value = line.rsplit(" ", 1)[-1]
        assert not re.search(r"\d{16,}", value) or "e" in value, line
        assert not re.search(r"\.\d*0$", value), line
    assert 'le="0.005"' in text or "le=" not in text
