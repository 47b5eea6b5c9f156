"""Sign-in throttling (SPEC §4, docs/operations.md): guessing stays slow,
yet a stranger's failures keep the rightful person out for at most a short,
named time (a minute), not at all from an address that has not been
failing; the superadmin and `sensorspace reset-password` lift it; a 429
says when to retry."""
import http.client
import json
import subprocess
import time

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, BIN, login

PW = "member-password-1"
WRONG = "wrong-password-1"
DELAY_MAX_S = 60  # SS_LOGIN_DELAY_MAX_MS


def login_from(srv, source, email, password):
    host, port = srv.addrs["http"].rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0))
    c.request("POST", "/api/v1/auth/login", json.dumps({"email": email, "password": password}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    body = json.loads(r.read() or b"{}")
    headers = dict(r.getheaders())
    c.close()
    return r.status, headers, body


def fail(srv, source, email, n):
    for _ in range(n):
        status, _, _ = login_from(srv, source, email, WRONG)
        if status == 429:
            return


def test_same_address_waits_at_most_the_cap_and_says_when(fresh_server):
    srv = fresh_server()
    fail(srv, "127.0.0.1", ADMIN_EMAIL, 12)
    status, headers, body = login_from(srv, "127.0.0.1", ADMIN_EMAIL, ADMIN_PASSWORD)
    assert status == 429 and body["error"]["code"] == "too_many_attempts"
    retry = int(headers["Retry-After"])
    assert 0 < retry <= DELAY_MAX_S
    assert "try again in %d second" % retry in body["error"]["message"]
    # while it waits, a guess is not even checked
    status, _, _ = login_from(srv, "127.0.0.1", ADMIN_EMAIL, WRONG)
    assert status == 429


def test_after_the_wait_the_right_password_gets_in(fresh_server):
    srv = fresh_server(["--login-delay-max", "2"])
    fail(srv, "127.0.0.1", ADMIN_EMAIL, 12)
    status, headers, _ = login_from(srv, "127.0.0.1", ADMIN_EMAIL, ADMIN_PASSWORD)
    assert status == 429 and 0 < int(headers["Retry-After"]) <= 2
    time.sleep(int(headers["Retry-After"]) + 0.2)
    status, _, body = login_from(srv, "127.0.0.1", ADMIN_EMAIL, ADMIN_PASSWORD)
    assert status == 200, body


def test_stranger_cannot_lock_out_a_clean_address(fresh_server):
    srv = fresh_server()
    fail(srv, "127.0.0.66", ADMIN_EMAIL, 15)
    assert login_from(srv, "127.0.0.66", ADMIN_EMAIL, ADMIN_PASSWORD)[0] == 429
    status, _, body = login_from(srv, "127.0.0.1", ADMIN_EMAIL, ADMIN_PASSWORD)
    assert status == 200, body
    # an address that starts guessing is bound by the account's record
    fail(srv, "127.0.0.66", ADMIN_EMAIL, 6)
    fail(srv, "127.0.0.67", ADMIN_EMAIL, 1)
    assert login_from(srv, "127.0.0.67", ADMIN_EMAIL, WRONG)[0] == 429


def test_offline_reset_password_lifts_the_throttle(fresh_server):
    srv = fresh_server()
    fail(srv, "127.0.0.1", ADMIN_EMAIL, 12)
    assert login_from(srv, "127.0.0.1", ADMIN_EMAIL, ADMIN_PASSWORD)[0] == 429
    out = subprocess.run([BIN, "reset-password", "--data-dir", srv.data_dir, "--email", ADMIN_EMAIL],
                         capture_output=True, text=True, timeout=60,
                         env={"SENSORSPACE_NEW_PASSWORD": "chosen-password-77", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    status, _, body = login_from(srv, "127.0.0.1", ADMIN_EMAIL, "chosen-password-77")
    assert status == 200, body


def test_superadmin_lifts_the_throttle(fresh_server):
    srv = fresh_server()
    admin = login(srv.http)
    org = admin.post("/api/v1/orgs", json={"name": "lifted"}).json()
    member = admin.post("/api/v1/orgs/%s/members" % org["id"],
                        json={"email": "locked@example.com", "role": "viewer", "password": PW}).json()
    fail(srv, "127.0.0.9", "locked@example.com", 15)
    assert login_from(srv, "127.0.0.9", "locked@example.com", PW)[0] == 429
    # only the superadmin may lift it
    viewer = login(srv.http, "locked@example.com", PW)
    assert viewer.post("/api/v1/users/%s/unlock" % member["user_id"]).status_code == 403
    assert admin.post("/api/v1/users/%s/unlock" % member["user_id"]).status_code == 204
    status, _, body = login_from(srv, "127.0.0.9", "locked@example.com", PW)
    assert status == 200, body
    entry = [e for e in admin.get("/api/v1/audit").json() if e["action"] == "user.unlock"][0]
    assert entry["target"] == "user:" + member["user_id"]
    # a password set by the superadmin lifts it too
    fail(srv, "127.0.0.9", "locked@example.com", 15)
    assert admin.put("/api/v1/users/%s/password" % member["user_id"],
                     json={"new_password": "reset-password-3"}).status_code == 204
    assert login_from(srv, "127.0.0.9", "locked@example.com", "reset-password-3")[0] == 200


ACCOUNT_SPREAD = 50  # SS_LOGIN_ACCOUNT_SPREAD


def test_guessing_from_many_addresses_binds_every_address(fresh_server):
    srv = fresh_server(["--login-delay-max", "2"])
    admin = login(srv.http)
    org = admin.post("/api/v1/orgs", json={"name": "spread"}).json()
    member = admin.post("/api/v1/orgs/%s/members" % org["id"],
                        json={"email": "sprayed@example.com", "role": "viewer", "password": PW}).json()
    # one guess from each fresh address: each is spared the account's wait
    for n in range(ACCOUNT_SPREAD):
        status, _, _ = login_from(srv, "127.0.1.%d" % (n + 1), "sprayed@example.com", WRONG)
        assert status == 401
    # from then on the account's wait binds every address, even a clean one,
    # and never for longer than the cap
    status, headers, _ = login_from(srv, "127.0.2.1", "sprayed@example.com", WRONG)
    assert status == 429 and 0 < int(headers["Retry-After"]) <= 2
    status, headers, _ = login_from(srv, "127.0.0.1", "sprayed@example.com", PW)
    assert status == 429 and 0 < int(headers["Retry-After"]) <= 2
    time.sleep(int(headers["Retry-After"]) + 0.2)
    status, _, body = login_from(srv, "127.0.0.1", "sprayed@example.com", PW)
    assert status == 200, body
    # and the superadmin lifts it at once
    for n in range(ACCOUNT_SPREAD):
        login_from(srv, "127.0.3.%d" % (n + 1), "sprayed@example.com", WRONG)
    assert login_from(srv, "127.0.0.1", "sprayed@example.com", PW)[0] == 429
    assert admin.post("/api/v1/users/%s/unlock" % member["user_id"]).status_code == 204
    status, _, body = login_from(srv, "127.0.0.1", "sprayed@example.com", PW)
    assert status == 200, body
