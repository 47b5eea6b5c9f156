"""Fills a running server's SQLite store with many readings at once, for
tests that need a device with millions of them: the HTTP path would take
minutes, and the store's own layout (series, readings) is all it needs."""
import os
import sqlite3

DB_FILE = "sensorspace.db"
BASE_TS = 1700000000000


def connect(data_dir):
    db = sqlite3.connect(os.path.join(data_dir, DB_FILE), timeout=30)
    db.execute("PRAGMA busy_timeout = 30000")
    return db


def fill(data_dir, device_id, channels, per_channel, step_ms=1000):
    """Adds per_channel readings to each named channel of the device (which
    has none yet); returns the series ids."""
    db = connect(data_dir)
    ids = []
    with db:
        for ch in channels:
            last = BASE_TS + (per_channel - 1) * step_ms
            cur = db.execute("INSERT INTO series(device_id, channel, last_ts, last_value)"
                             " VALUES (?, ?, ?, ?)", (device_id, ch, last, 1.0))
            sid = cur.lastrowid
            ids.append(sid)
            db.executemany("INSERT INTO readings(series_id, ts, value) VALUES (?, ?, ?)",
                           ((sid, BASE_TS + i * step_ms, float(i % 100)) for i in range(per_channel)))
    db.close()
    return ids


def count_readings(data_dir, series_ids):
    db = connect(data_dir)
    try:
        q = "SELECT count(*) FROM readings WHERE series_id IN (%s)" % ",".join("?" * len(series_ids))
        return db.execute(q, series_ids).fetchone()[0]
    finally:
        db.close()


def purge_pending(data_dir):
    """Series waiting for the purge; None on a store without a purge list."""
    db = connect(data_dir)
    try:
        return db.execute("SELECT count(*) FROM purge_series").fetchone()[0]
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
