"""A password change on a full disk (SPEC §4; docs/operations.md, "A full
disk"): when the new password itself cannot be written, the answer is 503
store_unavailable saying the password is not changed, and it is not: the
old password still signs in, the new one does not, and nothing was ended.

The person changing it has no other session, so the only write the change
can meet the full disk with is the password's own."""
import requests

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, new_org_device
from test_full_disk import small_disk, start_on  # noqa: F401
from test_full_disk_signout import fill_up

PASSWORDS = ["a-long-password-1", "a-long-password-2"]


def change_until_refused(me, current):
    """Changes the password back and forth until a change is refused (the
    room a failed write left in the log may still take a small write or
    two): (the refusal, the password before it, the one it asked for)."""
    for k in range(40):
        fresh = PASSWORDS[k % 2]
        r = me.put("/api/v1/me/password",
                   json={"current_password": current, "new_password": fresh})
        if r.status_code != 204:
            return r, current, fresh
        current = fresh
    raise AssertionError("password writes never stopped fitting")


def sign_in(srv, password):
    return requests.post(srv.http + "/api/v1/auth/login", timeout=30,
                         json={"email": ADMIN_EMAIL, "password": password})


def test_password_change_the_full_disk_refuses_says_it_is_not_changed(small_disk):
    mnt = small_disk[0]
    srv = start_on(small_disk)
    me = login(srv.http)
    _, dev = new_org_device(me)
    fill_up(srv, mnt, dev["token"])

    r, old, asked = change_until_refused(me, ADMIN_PASSWORD)
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "store_unavailable"
    assert "not changed" in err["message"], err["message"]
    assert "is changed" not in err["message"]
    # it told the truth: nothing changed
    assert me.get("/api/v1/me").status_code == 200
    assert sign_in(srv, asked).status_code == 401
    assert sign_in(srv, old).status_code == 200
    assert srv.stop() == 0
