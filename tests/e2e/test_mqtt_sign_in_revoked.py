"""A sign-in on the worker pool that a revocation overtakes (SPEC §3.6:
revocation disconnects at once). The superadmin's MQTT sign-in checks
the password (Argon2) on a worker while the password is changed over
REST: when the change lands during that check, the connection must not
stay open with the old password. Several offsets are tried so one of
them falls inside the check's window."""
import threading
import time

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login
from mqtt_util import MQTT_ARGS, RC_ADMINISTRATIVE, V5, Raw

OTHER = "other-password-22"


def change(s, old, new, out):
    api = login(s.http, password=old)
    t0 = time.monotonic()
    r = api.put("/api/v1/me/password", json={"current_password": old, "new_password": new})
    out.append((r.status_code, time.monotonic() - t0))


def test_a_sign_in_overtaken_by_a_password_change_does_not_stay(fresh_server):
    s = fresh_server(MQTT_ARGS)
    pws = [ADMIN_PASSWORD, OTHER]
    took = []
    change(s, pws[0], pws[1], took)
    change(s, pws[1], pws[0], took)
    d = max(t for _, t in took)
    accepted = 0
    for i, frac in enumerate([0.5, 0.6, 0.7, 0.8, 0.9, 0.75]):
        old, new = pws[i % 2], pws[(i + 1) % 2]
        api_ready = []
        t = threading.Thread(target=change, args=(s, old, new, api_ready))
        # login inside change() takes about as long as one check: start the
        # clock at the PUT by waiting for half of it as well
        t.start()
        time.sleep(d / 2 + d * frac)
        c = Raw(s, V5)
        ca = c.connect(username=ADMIN_EMAIL, password=old, expect_reason=None)
        t.join()
        assert api_ready and api_ready[0][0] in (200, 204), api_ready
        if ca.reason == 0:
            accepted += 1
            # signed in with the password just replaced: revoked at once
            assert c.disconnect_reason(timeout=3) == RC_ADMINISTRATIVE, "offset %s" % frac
        c.close()
