"""Nothing acknowledged is ever lost (SPEC §3): kill -9 right after an
acknowledgement, restart on the same data dir, find every reading."""
import os
import shutil
import threading

import requests

from conftest import Server, login, new_server, now_ms


def setup_device(srv):
    api = login(srv.http)
    org = api.post("/api/v1/orgs", json={"name": "durable"}).json()
    return api, api.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "d"}).json()


def restart(srv):
    again = Server(srv.data_dir)
    return again.start()


def test_kill9_after_ack_keeps_reading(fresh_server):
    srv = fresh_server()
    api, dev = setup_device(srv)
    ts = now_ms() - 1000
    r = requests.post(srv.http + "/api/v1/data", json={"ts": ts, "values": {"t": 42.5}},
                      headers={"X-Auth-Token": dev["token"]}, timeout=10)
    assert r.status_code == 200
    srv.kill()
    again = restart(srv)
    try:
        api = login(again.http)
        r = api.get("/api/v1/devices/%s/data?channel=t" % dev["id"]).json()
        assert r["series"]["t"] == [[ts, 42.5]]
        # the device token is still known after a restart
        r = requests.post(again.http + "/api/v1/data", json={"t": 1},
                          headers={"X-Auth-Token": dev["token"]}, timeout=10)
        assert r.status_code == 200
    finally:
        again.stop()


def test_kill9_under_load_loses_no_ack(fresh_server):
    srv = fresh_server(["--durability", "normal"])
    api, dev = setup_device(srv)
    acked = []
    stop = threading.Event()
    base = now_ms() - 500000

    def sender(k):
        s = requests.Session()
        i = 0
        while not stop.is_set():
            ts = base + k * 100000 + i
            try:
                r = s.post(srv.http + "/api/v1/data", data="v=%d %d" % (i, ts), timeout=5,
                           headers={"X-Auth-Token": dev["token"], "Content-Type": "text/plain"})
            except requests.RequestException:
                return
            if r.status_code == 200:
                acked.append(ts)
            i += 1

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    while len(acked) < 200:
        pass
    srv.kill()
    stop.set()
    for t in threads:
        t.join()
    again = restart(srv)
    try:
        api = login(again.http)
        r = api.get("/api/v1/devices/%s/data?channel=v&limit=100000" % dev["id"]).json()
        stored = {p[0] for p in r["series"]["v"]}
        missing = set(acked) - stored
        assert not missing, "%d acknowledged readings lost" % len(missing)
    finally:
        again.stop()


def test_sigterm_acknowledges_in_flight(fresh_server):
    srv = fresh_server()
    api, dev = setup_device(srv)
    results = []

    def sender():
        s = requests.Session()
        for i in range(200):
            try:
                r = s.post(srv.http + "/api/v1/data", data="g=%d %d" % (i, now_ms() - 10000 + i),
                           headers={"X-Auth-Token": dev["token"]}, timeout=5)
                results.append(r.status_code)
            except requests.RequestException:
                return

    t = threading.Thread(target=sender)
    t.start()
    while len(results) < 20:
        pass
    assert srv.stop() == 0
    t.join()
    acked = results.count(200)
    again = restart(srv)
    try:
        api = login(again.http)
        chans = api.get("/api/v1/devices/%s/channels" % dev["id"]).json()
        assert chans[0]["count"] >= acked
    finally:
        again.stop()
