"""The server starts, prints its listeners, answers health checks, signs in,
and stops cleanly."""
import os
import socket
import ssl
import stat
import subprocess

import requests

import pytest

from conftest import ADMIN_EMAIL, BIN, assert_no_secrets, login, new_server


def test_healthz_over_http_and_https(server):
    r = requests.get(server.http + "/healthz", timeout=10)
    assert r.status_code == 200 and r.text.strip() == "ok"
    r = requests.get(server.https + "/healthz", timeout=10, verify=server.cert)
    assert r.status_code == 200


def test_tls_session_resumes_after_the_device_just_closes(server):
    """A device that reconnects resumes its TLS session (no certificate, no
    full key exchange), even when it closed without close_notify."""
    host, port = server.addrs["https"].rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=server.cert)
    ctx.check_hostname = False
    session = None
    reused = []
    for _ in range(3):
        raw = socket.create_connection((host, int(port)), timeout=10)
        s = ctx.wrap_socket(raw, session=session)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        reused.append(s.session_reused)
        session = s.session
        s.close()  # the socket just closes: Python sends no close_notify
    assert reused == [False, True, True]


def test_prints_listening_lines(server):
    lines = [l for l in server.stdout_lines if l.startswith("listening ")]
    names = {l.split()[1] for l in lines}
    assert {"http", "https"} <= names
    for l in lines:
        host, port = l.split()[2].rsplit(":", 1)
        assert host == "127.0.0.1" and 0 < int(port) < 65536


def test_prints_tls_fingerprint(server):
    fp = [l for l in server.stdout_lines if l.startswith("tls certificate")]
    assert fp and "sha256" in fp[0]
    assert len(fp[0].split()[-1]) == 95


def test_version_and_help():
    out = subprocess.run([BIN, "version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("sensorspace ")
    out = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--listen-https" in out.stdout
    out = subprocess.run([BIN, "serve", "--no-such-flag", "x"], capture_output=True, text=True)
    assert out.returncode == 2 and "--no-such-flag" in out.stderr


def test_generated_admin_password(fresh_server):
    srv = fresh_server(env={"SENSORSPACE_ADMIN_PASSWORD": ""})
    path = os.path.join(srv.data_dir, "initial-admin-password")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    password = open(path).read().strip()
    assert len(password) >= 12
    assert any(password in l for l in srv.stdout_lines)
    login(srv.http, ADMIN_EMAIL, password)


def test_short_admin_password_refused():
    srv = new_server(env={"SENSORSPACE_ADMIN_PASSWORD": "short"})
    try:
        srv.start()
        assert False, "server started with a short admin password"
    except RuntimeError as e:
        assert "12" in str(e)
    finally:
        srv.stop()


def test_config_file_and_flags_win(fresh_server, tmp_path):
    cfg = tmp_path / "ss.conf"
    cfg.write_text("# comment\nlisten-http = 127.0.0.1:0\nlog-level = warn\nlisten-https = off\n")
    srv = fresh_server(["--config", str(cfg), "--listen-https", "off"])
    assert "https" not in srv.addrs and "http" in srv.addrs


def test_sigterm_exits_zero(fresh_server):
    srv = fresh_server()
    assert requests.get(srv.http + "/healthz", timeout=10).status_code == 200
    assert srv.stop() == 0


def test_login_me_logout(server):
    api = login(server.http)
    r = api.get("/api/v1/me")
    assert r.status_code == 200
    me = r.json()
    assert me["email"] == ADMIN_EMAIL and me["superadmin"] is True
    assert me["memberships"] == []
    assert api.post("/api/v1/auth/logout").status_code == 204
    assert api.get("/api/v1/me").status_code == 401


def test_wrong_password_and_unknown_user_alike(server):
    a = requests.post(server.http + "/api/v1/auth/login",
                      json={"email": ADMIN_EMAIL, "password": "wrong-password-123"}, timeout=30)
    b = requests.post(server.http + "/api/v1/auth/login",
                      json={"email": "nobody@example.com", "password": "wrong-password-123"},
                      timeout=30)
    assert a.status_code == b.status_code == 401
    assert a.json() == b.json()
    assert a.json()["error"]["code"] == "invalid_credentials"


def test_unknown_route_is_json_404(server):
    r = requests.get(server.http + "/api/v1/nothing", timeout=10)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_token_in_url_refused(server, device):
    for name in ["token", "auth_token", "access_token", "api_key", "apikey", "key"]:
        r = requests.post(server.http + "/api/v1/data?%s=%s" % (name, device["token"]),
                          json={"t": 1}, timeout=10)
        assert r.status_code == 400, name
        assert r.json()["error"]["code"] == "token_in_url"
    assert device["token"] not in server.read_log()


def test_log_secret_guard_catches_a_token():
    assert_no_secrets(b"info http: POST /api/v1/data 200", "sample")
    with pytest.raises(AssertionError):
        assert_no_secrets(b"debug x: ssd_" + b"ab" * 32, "sample")
    with pytest.raises(AssertionError):
        assert_no_secrets(b"debug x: correct-horse-battery", "sample")
