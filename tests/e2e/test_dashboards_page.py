"""A page of an org's dashboards is bounded in bytes, not only in rows:
large layouts come over several pages (Next-Cursor), each dashboard once,
rather than one answer of up to 48 MiB built in memory for the least
role."""

from conftest import login, module_server, new_org_device

srv = module_server([])
PAGE_BYTES = 2 * 1024 * 1024   # SS_DASHBOARD_PAGE_BYTES_MAX


def test_large_layouts_come_in_pages(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="page")
    opts = {"k%03d" % i: 0 for i in range(200)}
    widget = {"type": "line", "device_id": dev["id"], "channels": ["a"], "options": opts}
    made = []
    for i in range(40):
        r = admin.post("/api/v1/orgs/%s/dashboards" % org["id"],
                       json={"name": "d%02d" % i, "kind": "static", "widgets": [widget] * 32})
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    small = admin.post("/api/v1/orgs/%s/dashboards" % org["id"],
                       json={"name": "zz", "kind": "static", "widgets": []}).json()["id"]
    seen, pages, cursor = [], 0, None
    while True:
        r = admin.get("/api/v1/orgs/%s/dashboards" % org["id"], params={"cursor": cursor} if cursor else {})
        assert r.status_code == 200, r.text
        assert len(r.content) < PAGE_BYTES + 256 * 1024, len(r.content)
        seen += [d["id"] for d in r.json()]
        pages += 1
        cursor = r.headers.get("Next-Cursor")
        if not cursor:
            break
    assert seen == made + [small]
    assert pages >= 2
    # A limit still holds within the bytes.
    r = admin.get("/api/v1/orgs/%s/dashboards" % org["id"], params={"limit": 3})
    assert [d["id"] for d in r.json()] == made[:3] and r.headers.get("Next-Cursor")


def test_small_layouts_all_in_one_page(srv):
    admin = login(srv.http)
    org, dev = new_org_device(admin, prefix="page-small")
    for i in range(256):
        r = admin.post("/api/v1/orgs/%s/dashboards" % org["id"], json={
            "name": "s%03d" % i, "kind": "static",
            "widgets": [{"type": "line", "device_id": dev["id"], "channels": ["a", "b"],
                         "options": {"unit": "C", "min": 0, "max": 100}}] * 8})
        assert r.status_code == 201, r.text
    r = admin.get("/api/v1/orgs/%s/dashboards" % org["id"])
    assert len(r.json()) == 256 and "Next-Cursor" not in r.headers
