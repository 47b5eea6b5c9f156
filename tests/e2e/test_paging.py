"""Every list pages (SPEC §2): `limit` and an opaque `cursor`; an answer that
has more gives the next cursor (header Next-Cursor) and stays the JSON array
it always was. Paged to its end, a list gives every row once, in the same
order as in one answer, also while rows are being added."""
import time

import pytest
import requests

from conftest import login, module_server, now_ms

srv = module_server(())

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def api(srv):
    return login(srv.http)


def page_all(api, path, limit, params=None, between=None):
    """Every row of the list, page by page; `between` runs after each page."""
    rows, cursor, pages = [], None, 0
    while True:
        q = dict(params or {}, limit=limit)
        if cursor:
            q["cursor"] = cursor
        r = api.get(path, params=q)
        assert r.status_code == 200, r.text
        assert isinstance(r.json(), list)
        rows += r.json()
        pages += 1
        cursor = r.headers.get("Next-Cursor")
        if between:
            between()
        if not cursor:
            return rows, pages
        assert len(r.json()) == limit
        assert pages < 1000


def whole(api, path, params=None):
    r = api.get(path, params=dict(params or {}, limit=10000))
    assert r.status_code == 200, r.text
    assert "Next-Cursor" not in r.headers
    return r.json()


def check_paged(api, path, key, n_min, params=None):
    everything = whole(api, path, params)
    assert len(everything) >= n_min, everything
    for limit in (1, 2, 3):
        rows, pages = page_all(api, path, limit, params)
        assert [r[key] for r in rows] == [r[key] for r in everything], (path, limit)
        assert pages >= len(everything) // limit
    return everything


def new_org(api, name):
    r = api.post("/api/v1/orgs", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
def org(api):
    """An org of the test's own (tests do not lean on each other's rows)."""
    return new_org(api, "paging-%d" % time.monotonic_ns())


def add_devices(api, org_id, n):
    for i in range(n):
        r = api.post("/api/v1/orgs/%s/devices" % org_id, json={"name": "d-%d" % i})
        assert r.status_code == 201, r.text


def add_member(api, org_id, email, role="viewer"):
    r = api.post("/api/v1/orgs/%s/members" % org_id,
                 json={"email": email, "role": role, "password": PASSWORD})
    assert r.status_code in (201, 202), r.text
    return r


def test_devices_page(api, org):
    for i in range(7):
        # Two share a name: the id orders them.
        r = api.post("/api/v1/orgs/%s/devices" % org, json={"name": "dev-%d" % (i % 6)})
        assert r.status_code == 201
    rows = check_paged(api, "/api/v1/orgs/%s/devices" % org, "id", 7)
    assert [d["name"] for d in rows] == sorted(d["name"] for d in rows)


def test_devices_page_while_added(api):
    org_id = new_org(api, "paging-add-%d" % time.monotonic_ns())
    for i in range(10):
        assert api.post("/api/v1/orgs/%s/devices" % org_id,
                        json={"name": "m-%02d" % i}).status_code == 201
    before = {d["id"] for d in whole(api, "/api/v1/orgs/%s/devices" % org_id)}
    added = []

    def add():
        # Names before, among and after those already paged.
        for name in ("a-%d" % len(added), "m-%02d-x" % len(added), "z-%d" % len(added)):
            r = api.post("/api/v1/orgs/%s/devices" % org_id, json={"name": name})
            added.append(r.json()["id"])

    rows, pages = page_all(api, "/api/v1/orgs/%s/devices" % org_id, 3, between=add)
    assert pages > 3
    ids = [d["id"] for d in rows]
    assert len(ids) == len(set(ids)), "a device came twice"
    assert before <= set(ids), "a device that was there throughout was missed"
    assert set(ids) <= before | set(added)


def test_orgs_page(api):
    for i in range(5):
        new_org(api, "paging-orgs-%d" % i)
    check_paged(api, "/api/v1/orgs", "id", 5)


def test_channels_page(api, srv, org):
    dev = api.post("/api/v1/orgs/%s/devices" % org, json={"name": "channels"}).json()
    values = {"c%02d" % i: i for i in range(7)}
    r = requests.post(srv.http + "/api/v1/data", headers={"X-Auth-Token": dev["token"]},
                      json={"ts": now_ms(), "values": values}, timeout=10)
    assert r.status_code == 200, r.text
    rows = check_paged(api, "/api/v1/devices/%s/channels" % dev["id"], "name", 7)
    assert [c["name"] for c in rows] == sorted(values)


def test_members_page(api, org):
    for i in range(5):
        add_member(api, org, "pm%d-%d@example.com" % (i, time.monotonic_ns()))
    check_paged(api, "/api/v1/orgs/%s/members" % org, "user_id", 5)


def test_apikeys_page_while_added(api, org):
    for i in range(6):
        r = api.post("/api/v1/orgs/%s/apikeys" % org, json={"name": "k%d" % i,
                                                              "scopes": ["data:read"]})
        assert r.status_code == 201
    path = "/api/v1/orgs/%s/apikeys" % org
    before = check_paged(api, path, "id", 6)

    def add():
        api.post(path, json={"name": "later", "scopes": ["data:read"]})

    rows, _ = page_all(api, path, 2, between=add)
    ids = [k["id"] for k in rows]
    assert len(ids) == len(set(ids))
    assert {k["id"] for k in before} <= set(ids)


def test_invitations_page(api, srv):
    # An admin who is not the superadmin invites people outside their reach.
    home = new_org(api, "paging-inv-%d" % time.monotonic_ns())
    other = new_org(api, "paging-inv-other-%d" % time.monotonic_ns())
    admin_email = "inv-admin-%d@example.com" % time.monotonic_ns()
    add_member(api, home, admin_email, "admin")
    invitee = "invitee-%d@example.com" % time.monotonic_ns()
    add_member(api, other, invitee)
    orgs = [home]
    for i in range(3):
        r = api.post("/api/v1/orgs", json={"name": "paging-inv-child-%d" % i, "parent_id": home})
        orgs.append(r.json()["id"])
    admin = login(srv.http, admin_email, PASSWORD)
    for o in orgs:
        r = add_member(admin, o, invitee)
        assert r.status_code == 202, r.text
    for i in range(4):
        assert add_member(admin, home, "new-%d-%d@example.com" % (i, time.monotonic_ns())
                          ).status_code == 202
    check_paged(admin, "/api/v1/orgs/%s/invitations" % home, "id", 5)
    person = login(srv.http, invitee, PASSWORD)
    check_paged(person, "/api/v1/me/invitations", "id", 4)


def test_audit_pages(api, org):
    add_devices(api, org, 6)
    rows = check_paged(api, "/api/v1/orgs/%s/audit" % org, "id", 5)
    assert [e["id"] for e in rows] == sorted((e["id"] for e in rows), reverse=True)
    check_paged(api, "/api/v1/orgs/%s/audit" % org, "id", 5,
                params={"from": 0, "to": now_ms() + 1000})
    user = add_member(api, org, "audited-%d@example.com" % time.monotonic_ns()).json()["user_id"]
    for _ in range(4):  # written outside any org
        assert api.post("/api/v1/users/%s/unlock" % user).status_code == 204
    check_paged(api, "/api/v1/audit", "id", 4)
    # The default page stays what it was: the newest 100.
    assert len(api.get("/api/v1/orgs/%s/audit" % org).json()) <= 100


def test_audit_page_while_added(api, org):
    add_devices(api, org, 8)
    path = "/api/v1/orgs/%s/audit" % org
    before = {e["id"] for e in whole(api, path)}

    def add():
        api.post("/api/v1/orgs/%s/devices" % org, json={"name": "audit-filler"})

    rows, _ = page_all(api, path, 4, between=add)
    ids = [e["id"] for e in rows]
    assert len(ids) == len(set(ids))
    assert ids == [i for i in ids if i in before], "newer entries are not in older pages"
    assert before == set(ids)


def test_sessions_page(api, srv, org):
    email = "sess-%d@example.com" % time.monotonic_ns()
    add_member(api, org, email, "admin")
    people = [login(srv.http, email, PASSWORD) for _ in range(5)]
    for p in people:
        assert p.get("/api/v1/orgs/%s" % org).status_code == 200
    check_paged(people[0], "/api/v1/me/sessions", "id", 5)
    # Session records of the org: one per login that acted in it, written in
    # batches by the accounting.
    path = "/api/v1/orgs/%s/sessions" % org
    deadline = time.monotonic() + 15
    while len(whole(api, path)) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    check_paged(api, path, "id", 5)
    check_paged(api, path, "id", 5, params={"kind": "user"})


def test_no_cursor_on_the_last_page(api, org):
    add_devices(api, org, 2)
    r = api.get("/api/v1/orgs/%s/devices" % org)
    assert r.status_code == 200 and "Next-Cursor" not in r.headers
    r = api.get("/api/v1/orgs/%s/devices" % org, params={"limit": 1})
    assert "Next-Cursor" in r.headers and len(r.json()) == 1


def test_cursor_of_another_list_is_refused(api, org):
    for i in range(2):
        api.post("/api/v1/orgs/%s/apikeys" % org, json={"name": "k%d" % i, "scopes": ["manage"]})
    r = api.get("/api/v1/orgs/%s/apikeys" % org, params={"limit": 1})
    cursor = r.headers["Next-Cursor"]
    r = api.get("/api/v1/orgs/%s/devices" % org, params={"cursor": cursor})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_parameter"
    assert "'cursor'" in r.json()["error"]["message"]


def test_cursor_shows_nothing_of_another_org(api, srv, org):
    # A cursor is only a position: it opens no list the caller may not
    # see. A viewer of one org, with a cursor of its list, asks for
    # another org's, which has devices past that position: 404 as without
    # a cursor, naming none of them.
    add_devices(api, org, 2)
    email = "paging-viewer-%d@example.com" % time.monotonic_ns()
    add_member(api, org, email)
    viewer = login(srv.http, email, PASSWORD)
    r = viewer.get("/api/v1/orgs/%s/devices" % org, params={"limit": 1})
    assert r.status_code == 200, r.text
    cursor = r.headers["Next-Cursor"]
    other = new_org(api, "paging-other-%d" % time.monotonic_ns())
    r = api.post("/api/v1/orgs/%s/devices" % other, json={"name": "zz-hidden"})
    assert r.status_code == 201, r.text
    for params in ({}, {"cursor": cursor}):
        r = viewer.get("/api/v1/orgs/%s/devices" % other, params=params)
        assert r.status_code == 404, r.text
        assert "zz-hidden" not in r.text
    # The superadmin, who sees both, gets the other org's devices only.
    r = api.get("/api/v1/orgs/%s/devices" % other, params={"cursor": cursor})
    assert r.status_code == 200 and [d["name"] for d in r.json()] == ["zz-hidden"], r.text
