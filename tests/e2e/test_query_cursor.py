"""A data query that hits its limit says so: `next` gives, per channel that
has more, a cursor, and the same query with `cursor=` goes on where the
page ended; paging to the end returns every point (or bucket) once, in
either order. Bad parameters are a 400 that names them."""
import pytest

from conftest import login, module_server, new_org_device, now_ms

srv = module_server([])

N = 250
T0 = (now_ms() - 3600 * 1000) // 420000 * 420000  # whole minutes and 7 s buckets


@pytest.fixture(scope="module")
def setup(srv):
    admin = login(srv.http)
    _, dev = new_org_device(admin, prefix="cursor")
    lines = "".join("a=%d,%s %d\n" % (i, "b=%d" % (-i) if i < 30 else "c=1", T0 + i * 1000)
                    for i in range(N))
    r = admin.s.post(srv.http + "/api/v1/data", data=lines,
                     headers={"X-Auth-Token": dev["token"], "Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    return admin, "/api/v1/devices/%s/data" % dev["id"]


def page_all(admin, path, query, channel):
    """Pages a channel to its end; returns its points and the pages taken."""
    got, pages, cursor = [], 0, None
    while True:
        q = query + "&channel=" + channel + ("&cursor=" + cursor if cursor else "")
        r = admin.get(path + "?" + q)
        assert r.status_code == 200, r.text
        body = r.json()
        got += body["series"][channel]
        pages += 1
        assert pages < 1000
        cursor = body.get("next", {}).get(channel)
        if cursor is None:
            return got, pages


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_raw_points_paged_to_the_end_each_once(setup, order):
    admin, path = setup
    got, pages = page_all(admin, path, "order=%s&limit=40" % order, "a")
    want = [[T0 + i * 1000, i] for i in range(N)]
    if order == "desc":
        want.reverse()
    assert got == want
    assert pages == 7  # 6 full pages and one of 10


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("fn", ["count", "sum", "first"])
def test_buckets_paged_to_the_end_match_one_query(setup, order, fn):
    admin, path = setup
    query = "order=%s&every=7000&fn=%s&from=%d&to=%d" % (order, fn, T0, T0 + N * 1000)
    whole = admin.get(path + "?" + query + "&channel=a&limit=1000").json()
    assert "next" not in whole
    got, pages = page_all(admin, path, query + "&limit=4", "a")
    assert got == whole["series"]["a"]
    assert len(got) == (N + 6) // 7
    assert pages == (len(got) + 3) // 4


def test_next_names_only_the_channels_with_more(setup):
    admin, path = setup
    r = admin.get(path + "?channel=a,b,c&limit=30")
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["series"]["b"]) == 30  # exactly the limit: no more
    assert sorted(body["next"]) == ["a", "c"]
    # Without a channel, every channel of the device, the same way.
    body = admin.get(path + "?limit=30").json()
    assert sorted(body["next"]) == ["a", "c"]
    # A query within the limit has no `next`.
    assert "next" not in admin.get(path + "?channel=b&limit=30").json()


def test_cursor_continues_with_a_narrower_range(setup):
    admin, path = setup
    body = admin.get(path + "?channel=a&limit=10").json()
    cursor = body["next"]["a"]
    # The channel may be left out: the cursor names it.
    r = admin.get(path + "?limit=10&cursor=" + cursor)
    assert r.status_code == 200, r.text
    assert r.json()["series"]["a"][0] == [T0 + 10000, 10]
    # The range still bounds it.
    r = admin.get(path + "?limit=10&to=%d&cursor=%s" % (T0 + 12000, cursor))
    assert r.json()["series"]["a"] == [[T0 + 10000, 10], [T0 + 11000, 11]]
    assert "next" not in r.json()


@pytest.mark.parametrize("query, name", [
    ("limit=abc", "limit"),
    ("limit=0", "limit"),
    ("limit=100001", "limit"),
    ("order=sideways", "order"),
    ("every=0", "every"),
    ("every=abc", "every"),
    ("every=1000&fn=median", "fn"),
    ("fn=avg", "fn"),
    ("fn=max&channel=a", "fn"),
    ("from=yesterday", "from"),
    ("to=soon", "to"),
    ("from=2000&to=1000", "from"),
    ("chanel=a", "chanel"),
    ("channel=a&Limit=3", "Limit"),
    ("cursor=xyz", "cursor"),
    ("channel=a&channel=b", "channel"),
    ("channel=", "channel"),
    ("channel=a,,b!", "channel"),
])
def test_bad_parameters_named(setup, query, name):
    admin, path = setup
    r = admin.get(path + "?" + query)
    assert r.status_code == 400, (query, r.text)
    err = r.json()["error"]
    assert err["code"] in ("bad_parameter", "unknown_parameter"), err
    assert name in err["message"], (query, err)


def test_cursor_of_another_query_refused(setup):
    admin, path = setup
    cursor = admin.get(path + "?channel=a&limit=10").json()["next"]["a"]
    for other in ["order=desc", "every=1000", "channel=b", "channel=a,b"]:
        r = admin.get(path + "?limit=10&%s&cursor=%s" % (other, cursor))
        assert r.status_code == 400, (other, r.text)
        assert "cursor" in r.json()["error"]["message"]


def test_every_without_fn_is_avg(setup):
    admin, path = setup
    q = "?channel=a&every=10000&from=%d&to=%d" % (T0, T0 + 20000)
    assert admin.get(path + q).json()["series"]["a"] == [[T0, 4.5], [T0 + 10000, 14.5]]


@pytest.mark.parametrize("endpoint", ["channels", "latest"])
def test_channels_and_latest_take_no_data_parameters(setup, endpoint):
    admin, path = setup
    base = path.rsplit("/", 1)[0] + "/" + endpoint
    assert admin.get(base).status_code == 200
    r = admin.get(base + "?channel=a")
    assert r.status_code == 400 and "channel" in r.json()["error"]["message"]
