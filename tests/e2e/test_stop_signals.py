"""A stop is under way after the first SIGTERM or SIGINT: more of them,
however many and whenever they come, change nothing and the server still
exits 0 once its last writes are done (a supervisor's or an impatient
person's repeated signal never cuts the stop short)."""
import signal
import time

from conftest import login, new_org_device


def test_repeated_signals_during_a_stop_are_ignored(fresh_server):
    for sig in (signal.SIGTERM, signal.SIGINT):
        s = fresh_server()
        api = login(s.http)
        new_org_device(api, prefix="stop-signals")
        s.proc.send_signal(sig)
        deadline = time.monotonic() + 20
        sent = 1
        while s.proc.poll() is None and time.monotonic() < deadline:
            s.proc.send_signal(sig)
            sent += 1
            time.sleep(0.0005)
        assert s.proc.poll() == 0, "exit %s after %d signals\n%s" % (
            s.proc.poll(), sent, s.read_log()[-2000:])
        assert s.stop() == 0
