"""Unknown or malformed query parameters are a 400 that names them (SPEC §2),
on every endpoint, before anything else is done: a typo such as `chanel=`
never silently answers everything."""
import pytest
import requests

from conftest import new_org_device, now_ms, raw_http

# Every GET route with the parameters it reads; {org}, {dev}, {user} are
# filled in below. A misspelt name of each is refused.
GET_ROUTES = [
    ("/healthz", []),
    ("/metrics", []),
    ("/api/v1/me", []),
    ("/api/v1/me/sessions", ["limit", "cursor"]),
    ("/api/v1/me/invitations", ["limit", "cursor"]),
    ("/api/v1/audit", ["from", "to", "limit", "cursor"]),
    ("/api/v1/orgs", ["limit", "cursor"]),
    ("/api/v1/orgs/{org}", []),
    ("/api/v1/orgs/{org}/members", ["limit", "cursor"]),
    ("/api/v1/orgs/{org}/apikeys", ["limit", "cursor"]),
    ("/api/v1/orgs/{org}/invitations", ["limit", "cursor"]),
    ("/api/v1/orgs/{org}/audit", ["from", "to", "limit", "cursor"]),
    ("/api/v1/orgs/{org}/usage", ["from", "to", "every", "format", "include_children"]),
    ("/api/v1/orgs/{org}/sessions", ["kind", "active", "limit", "cursor"]),
    ("/api/v1/orgs/{org}/quota", []),
    ("/api/v1/orgs/{org}/devices", ["limit", "cursor", "attr.type"]),
    ("/api/v1/devices/{dev}", []),
    ("/api/v1/devices/{dev}/channels", ["limit", "cursor"]),
    ("/api/v1/devices/{dev}/latest", []),
    ("/api/v1/devices/{dev}/data", ["channel", "from", "to", "limit", "order", "every", "fn"]),
]


@pytest.fixture(scope="module")
def ids(server, admin):
    org, dev = new_org_device(admin, prefix="qp")
    r = requests.post(server.http + "/api/v1/data", headers={"X-Auth-Token": dev["token"]},
                      json={"a": 1}, timeout=10)
    assert r.status_code == 200, r.text
    return {"org": org["id"], "dev": dev["id"]}


def fill(path, ids):
    return path.replace("{org}", ids["org"]).replace("{dev}", ids["dev"])


def assert_unknown(r, name):
    assert r.status_code == 400, (r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] == "unknown_parameter", err
    assert "'%s'" % name in err["message"], err
    assert r.json()["error"]["parameter"] == name


@pytest.mark.parametrize("path,known", GET_ROUTES, ids=[p for p, _ in GET_ROUTES])
def test_unknown_parameter_is_refused_on_every_get(admin, ids, path, known):
    r = admin.get(fill(path, ids) + "?chanel=a")
    assert_unknown(r, "chanel")
    # Known names are served (values of the right form).
    good = {"limit": "5", "from": "0", "to": str(now_ms()), "cursor": None, "every": "hour",
            "format": "json", "include_children": "false", "kind": "user", "active": "false",
            "channel": "a", "order": "asc", "fn": "avg", "attr.type": "sensor"}
    if path.endswith("/data"):
        good["every"] = "1000"
    query = "&".join("%s=%s" % (k, good[k]) for k in known if good.get(k) is not None)
    if query:
        r = admin.get(fill(path, ids) + "?" + query)
        assert r.status_code == 200, (path, query, r.status_code, r.text)


def test_the_typo_of_the_issue(admin, ids):
    r = admin.get("/api/v1/devices/%s/data?chanel=a" % ids["dev"])
    assert_unknown(r, "chanel")
    assert r.json()["error"]["message"] == "unknown query parameter 'chanel'"


def test_names_compare_exactly(admin, ids):
    assert_unknown(admin.get("/api/v1/orgs?Limit=5"), "Limit")
    assert_unknown(admin.get("/api/v1/orgs?limit%20=5"), "limit ")  # decoded name
    assert_unknown(admin.get("/api/v1/orgs/%s/devices?attr=x" % ids["org"]), "attr")
    assert_unknown(admin.get("/api/v1/orgs/%s/devices?attr.=x" % ids["org"]), "attr.")


@pytest.mark.parametrize("method,path", [
    ("POST", "/api/v1/orgs"), ("PATCH", "/api/v1/orgs/{org}"), ("DELETE", "/api/v1/devices/{dev}"),
    ("POST", "/api/v1/orgs/{org}/devices"), ("PUT", "/api/v1/orgs/{org}/quota"),
    ("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/logout"),
])
def test_unknown_parameter_is_refused_before_a_change(admin, ids, method, path):
    r = admin.s.request(method, admin.url(fill(path, ids) + "?dry_run=1"), json={"name": "x"},
                        timeout=10)
    assert_unknown(r, "dry_run")
    # Nothing was done: the device is still there.
    assert admin.get("/api/v1/devices/%s" % ids["dev"]).status_code == 200


def test_ingest_refuses_unknown_parameter_before_the_body(server, ids, admin):
    _, dev = new_org_device(admin, prefix="qpi")
    r = requests.post(server.http + "/api/v1/data?device=x",
                      headers={"X-Auth-Token": dev["token"]}, json={"a": 1}, timeout=10)
    assert_unknown(r, "device")
    r = admin.get("/api/v1/devices/%s/latest" % dev["id"])
    assert r.json() == {}


def test_malformed_parameters(admin, ids, server):
    base = "/api/v1/orgs/%s/members" % ids["org"]
    r = admin.get(base + "?limit=5&limit=6")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_parameter"
    assert "'limit'" in r.json()["error"]["message"]
    r = admin.get(base + "?limit=%zz")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_parameter"
    assert "'limit'" in r.json()["error"]["message"]
    r = admin.get(base + "?=5")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_parameter"
    r = admin.get(base + "?" + "x" * 100 + "=1")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_parameter"
    many = "&".join("attr.a%d=1" % i for i in range(70))
    r = admin.get("/api/v1/orgs/%s/devices?%s" % (ids["org"], many))
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_parameter"
    assert "64" in r.json()["error"]["message"]
    # Empty pieces are no parameters.
    assert admin.get(base + "?&&limit=5&").status_code == 200


@pytest.mark.parametrize("query,name", [("limit=abc", "limit"), ("limit=0", "limit"),
                                        ("limit=10001", "limit"), ("cursor=%21%21", "cursor")])
def test_malformed_values_name_the_parameter(admin, ids, query, name):
    for path in ("/api/v1/orgs", "/api/v1/orgs/%s/devices" % ids["org"],
                 "/api/v1/orgs/%s/audit" % ids["org"]):
        r = admin.get(path + "?" + query)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["code"] == "bad_parameter", r.text
        assert "'%s'" % name in r.json()["error"]["message"], r.text


def test_credential_in_url_is_still_checked_first(server):
    out = raw_http(server, b"GET /api/v1/orgs?chanel=1&token=zq7val HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: close\r\n\r\n")
    assert b" 400 " in out.split(b"\r\n", 1)[0] and b"token_in_url" in out
    assert "zq7val" not in server.read_log()


def test_name_like_a_secret_is_not_echoed(admin):
    r = admin.get("/api/v1/orgs?ssd_abcdef=1")
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_parameter"
    assert "ssd_abcdef" not in r.text


def test_unknown_path_with_parameters_is_still_404(admin):
    assert admin.get("/api/v1/nope?a=1").status_code == 404
    assert admin.s.request("PUT", admin.url("/api/v1/orgs?a=1"), timeout=10).status_code == 405
