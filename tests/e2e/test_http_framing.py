"""HTTP/1.1 framing per RFC 9112 (SPEC §4: a malformed head, Host or framing
is a 400, never guessed at), HEAD, absolute-form targets, and credentials in
the URL (SPEC §2) whatever their case or encoding."""
import json
import socket

import pytest

from conftest import http_addr as addr, raw_http as raw


def status(resp):
    assert resp.startswith(b"HTTP/1.1 "), resp[:80]
    return int(resp.split(b" ", 2)[1])


def error_code(resp):
    body = resp.split(b"\r\n\r\n", 1)[1]
    return json.loads(body)["error"]["code"]


def req(head_lines, body=b"", method=b"GET", target=b"/healthz", version=b"HTTP/1.1"):
    head = method + b" " + target + b" " + version + b"\r\n"
    for line in head_lines:
        head += line + b"\r\n"
    return head + b"\r\n" + body


@pytest.mark.parametrize("line", [
    b"Content-Length : 5",
    b"Transfer-Encoding : chunked",
    b"Host : x",
    b"X-Thing\t: 1",
])
def test_whitespace_before_colon_is_400(server, line):
    lines = [b"Host: x", line] if not line.startswith(b"Host") else [line]
    body = b"5\r\nhello\r\n0\r\n\r\n" if b"chunked" in line else b"hello"
    out = raw(server, req(lines, body, method=b"POST", target=b"/api/v1/data"))
    assert status(out) == 400 and error_code(out) == "bad_request"
    assert b"Connection: close" in out


@pytest.mark.parametrize("lines", [
    [b"Host: x", b"X-A: v", b" folded"],          # obs-fold
    [b"Host: x", b"X-A:", b"\tfolded"],           # obs-fold of an empty value
    [b" Host: x"],                                # whitespace before the first field
    [b"Host: x", b"X-A: a\x01b"],                 # control character in a value
    [b"Host: x", b"X-\xc3\xa9: 1"],               # non-token byte in a name
    [b"Host: x", b": empty-name"],
])
def test_malformed_fields_are_400(server, lines):
    out = raw(server, req(lines))
    assert status(out) == 400 and error_code(out) == "bad_request"


@pytest.mark.parametrize("target", [b"/healthz#frag", b"/health\"z", b"/a%zz", b"*",
                                    b"ftp://x/healthz", b"http://u:p@x/healthz", b"http:///healthz"])
def test_bad_request_target_is_400(server, target):
    out = raw(server, req([b"Host: x"], target=target))
    assert status(out) == 400


def test_request_line_with_double_space_is_400(server):
    out = raw(server, b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(out) == 400


@pytest.mark.parametrize("lines", [
    [],                                    # missing
    [b"Host: a", b"Host: a"],              # duplicate
    [b"Host:"],                            # empty: no http URI has an empty host
    [b"Host: a b"],
    [b"Host: a/b"],
    [b"Host: a:b"],
    [b"Host: a:99999"],
    [b"Host: a:1:2"],
    [b"Host: [::1"],
    [b"Host: [zz::1]"],
    [b"Host: user@a"],
])
def test_bad_host_is_400(server, lines):
    out = raw(server, req(lines + [b"Connection: close"]))
    assert status(out) == 400 and error_code(out) == "bad_request"


@pytest.mark.parametrize("host", [b"localhost", b"localhost:8080", b"127.0.0.1:1", b"[::1]:443",
                                  b"[::1]", b"sensors.example.com", b"EXAMPLE.com:", b"a-b_c~d%41"])
def test_valid_host_is_served(server, host):
    out = raw(server, req([b"Host: " + host, b"Connection: close"]))
    assert status(out) == 200


def test_http10_without_host_is_served(server):
    out = raw(server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status(out) == 200


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/3.0", b"HTTP/0.9"])
def test_other_major_version_is_505(server, version):
    out = raw(server, req([b"Host: x"], version=version))
    assert status(out) == 505 and error_code(out) == "version_not_supported"


@pytest.mark.parametrize("te", [b"gzip", b"gzip, chunked", b"identity", b"Chunked ,chunked"])
def test_transfer_encoding_other_than_chunked_is_501(server, te):
    out = raw(server, req([b"Host: x", b"Transfer-Encoding: " + te], b"0\r\n\r\n",
                          method=b"POST", target=b"/api/v1/data"))
    assert status(out) == 501 and error_code(out) == "not_implemented"


def test_two_transfer_encoding_lines_are_501(server):
    out = raw(server, req([b"Host: x", b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
                          b"0\r\n\r\n", method=b"POST", target=b"/api/v1/data"))
    assert status(out) == 501


@pytest.mark.parametrize("te", [b"chunked", b"gzip"])
def test_transfer_encoding_past_the_header_limit_is_still_judged(server, te):
    """Headers past the 64 kept are dropped, but a Transfer-Encoding is
    framing: it is kept and judged, and the server stays up."""
    filler = [b"X-Filler-%d: 1" % i for i in range(80)]
    body = b"0\r\n\r\n"
    out = raw(server, req([b"Host: x"] + filler + [b"Transfer-Encoding: " + te], body,
                          method=b"POST", target=b"/api/v1/data"))
    assert status(out) == (401 if te == b"chunked" else 501), out[:200]
    assert status(raw(server, req([b"Host: x", b"Connection: close"]))) == 200


def test_chunked_in_any_case_is_accepted(server, device):
    body = b'{"t": 1}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    out = raw(server, req([b"Host: x", b"Transfer-Encoding: ChUnKeD", b"Connection: close",
                           b"X-Auth-Token: " + device["token"].encode()],
                          chunked, method=b"POST", target=b"/api/v1/data"))
    assert status(out) == 200, out


@pytest.mark.parametrize("name", [b"X-Auth-Token", b"Authorization", b"Content-Type", b"Cookie",
                                  b"Content-Length"])
def test_duplicate_singleton_header_is_400(server, device, name):
    values = {b"X-Auth-Token": device["token"].encode(), b"Authorization": b"Bearer abc",
              b"Content-Type": b"application/json", b"Cookie": b"ss_session=abc",
              b"Content-Length": b"8"}
    v = values[name]
    out = raw(server, req([b"Host: x", name + b": " + v, name.lower() + b": " + v,
                           b"Content-Length: 8"] if name != b"Content-Length" else
                          [b"Host: x", name + b": " + v, name + b": " + v],
                          b'{"t": 1}', method=b"POST", target=b"/api/v1/data"))
    assert status(out) == 400 and error_code(out) == "bad_request"


def test_absolute_form_target_is_routed_by_its_path(server):
    out = raw(server, req([b"Host: other", b"Connection: close"],
                          target=b"http://localhost:1/healthz"))
    assert status(out) == 200 and out.endswith(b"ok") or b"ok" in out.split(b"\r\n\r\n", 1)[1]
    out = raw(server, req([b"Host: x", b"Connection: close"], target=b"HTTP://x/nope?a=1"))
    assert status(out) == 404


def test_absolute_form_query_is_checked_for_credentials(server):
    out = raw(server, req([b"Host: x", b"Connection: close"], target=b"http://x/healthz?Token=abc"))
    assert status(out) == 400 and error_code(out) == "token_in_url"


def test_head_is_answered_where_get_is(server, admin):
    tok = admin.s.headers["Authorization"].encode()
    for target in [b"/healthz", b"/api/v1/me", b"/api/v1/orgs"]:
        lines = [b"Host: x", b"Authorization: " + tok]
        get = raw(server, req(lines + [b"Connection: close"], target=target))
        head = raw(server, req(lines + [b"Connection: close"], method=b"HEAD", target=target))
        assert status(get) == 200, (target, get)
        assert status(head) == 200, (target, head)
        gh, gb = get.split(b"\r\n\r\n", 1)
        hh, hb = head.split(b"\r\n\r\n", 1)
        assert hb == b""
        assert b"Content-Length: %d" % len(gb) in hh

    # HEAD keeps the connection: the next answer starts right after the head.
    out = raw(server, req([b"Host: x"], method=b"HEAD") + req([b"Host: x", b"Connection: close"]))
    assert out.count(b"HTTP/1.1 200") == 2


def test_405_names_allowed_methods(server):
    out = raw(server, req([b"Host: x", b"Connection: close"], method=b"DELETE"))
    assert status(out) == 405
    head = out.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nAllow: GET, HEAD\r\n" in head


def test_field_value_whitespace_is_trimmed(server, device):
    body = b'{"t": 1}'
    out = raw(server, req([b"Host: x", b"X-Auth-Token: \t " + device["token"].encode() + b" \t ",
                           b"Content-Type:   application/json  ", b"Content-Length: 8",
                           b"Connection: close"], body, method=b"POST", target=b"/api/v1/data"))
    assert status(out) == 200, out


@pytest.mark.parametrize("query", [b"TOKEN=zq7val", b"Token=zq7val", b"key%20=zq7val",
                                   b"%20key=zq7val", b"API_KEY=zq7val", b"a=1&Access_Token",
                                   b"%6Bey=zq7val", b"apiKey+=zq7val", b"auth_token%09=zq7val",
                                   b"KEY"])
def test_credential_in_url_in_any_case_is_refused(server, query):
    out = raw(server, req([b"Host: x", b"Connection: close"], target=b"/healthz?" + query))
    assert status(out) == 400 and error_code(out) == "token_in_url"
    assert "zq7val" not in server.read_log()


def test_parameter_that_only_contains_a_credential_name_is_not_refused(server, admin):
    r = admin.get("/api/v1/orgs?keys=1&tokens=2&monkey=3")
    assert r.status_code != 400 or r.json()["error"]["code"] != "token_in_url"


def test_two_session_cookies_are_no_credential(server, admin):
    token = admin.s.headers["Authorization"].split(" ", 1)[1].encode()
    one = raw(server, req([b"Host: x", b"Connection: close", b"Cookie: ss_session=" + token],
                          target=b"/api/v1/me"))
    assert status(one) == 200
    two = raw(server, req([b"Host: x", b"Connection: close",
                           b"Cookie: ss_session=" + token + b"; ss_session=sss_" + b"0" * 64],
                          target=b"/api/v1/me"))
    assert status(two) == 401


def test_query_parameter_given_twice_is_400(admin, device):
    r = admin.get("/api/v1/devices/%s/data?limit=1&limit=100000" % device["id"])
    assert r.status_code == 400, r.text
    r = admin.get("/api/v1/devices/%s/data?limit=1" % device["id"])
    assert r.status_code == 200, r.text
