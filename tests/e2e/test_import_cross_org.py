"""A running import says nothing of its organisation to anyone outside it:
a caller without access to an org is answered 404 whether or not an import
into it is running (SPEC §2: cross-organisation access reveals nothing)."""
import socket
import time

import requests

from conftest import http_addr, login, new_org_device

PW = "a-long-password-1"


def test_running_import_not_revealed_to_another_org(server, admin):
    org, dev = new_org_device(admin, prefix="imp-held")
    other, _ = new_org_device(admin, prefix="imp-outsider")
    email = "imp-outsider-%d@example.com" % time.monotonic_ns()
    r = admin.post("/api/v1/orgs/%s/members" % other["id"],
                   json={"email": email, "role": "owner", "password": PW})
    assert r.status_code == 201, r.text
    outsider = login(server.http, email, PW)
    url = server.http + "/api/v1/orgs/%s/import?format=line" % org["id"]
    body = "%s a=1 %d\n" % (dev["id"], int(time.time() * 1000) - 3600000)

    def outsider_post():
        return requests.post(url, data=body, headers=outsider.s.headers, timeout=30)

    assert outsider_post().status_code == 404
    # The org's own import, held open mid-body.
    s = socket.create_connection(http_addr(server), timeout=10)
    try:
        s.sendall(("POST /api/v1/orgs/%s/import?format=line HTTP/1.1\r\nHost: x\r\n"
                   "Authorization: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                   % (org["id"], admin.s.headers["Authorization"])).encode())
        chunk = body.encode()
        s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        time.sleep(0.3)  # its check is back: the import is running
        r = outsider_post()
        assert r.status_code == 404, r.text
        assert "import" not in r.text
        # The org's own second import is still told to wait.
        r = requests.post(url, data=body, headers=admin.s.headers, timeout=30)
        assert r.status_code == 429, r.text
        s.sendall(b"0\r\n\r\n")
        s.settimeout(30)
        assert s.recv(4096).startswith(b"HTTP/1.1 200"), "the held import did not finish"
    finally:
        s.close()


def test_refused_imports_hold_no_slot(server, admin):
    """A request refused at its check (no valid credential) waits for its
    body only to answer: it takes none of the server's import slots, so a
    few of them cannot keep everyone's imports out."""
    org, dev = new_org_device(admin, prefix="imp-slots")
    held = []
    try:
        for _ in range(6):
            s = socket.create_connection(http_addr(server), timeout=10)
            s.sendall(("POST /api/v1/orgs/%s/import?format=line HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer ssk_%s\r\nContent-Length: 100\r\n\r\n"
                       % (org["id"], "0" * 40)).encode())
            held.append(s)
        time.sleep(0.3)  # their checks are back: each refused, waiting for a body
        body = "%s a=1 %d\n" % (dev["id"], int(time.time() * 1000) - 3600000)
        r = requests.post(server.http + "/api/v1/orgs/%s/import?format=line" % org["id"],
                          data=body, headers=admin.s.headers, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        for s in held:
            s.close()
