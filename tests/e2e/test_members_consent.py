"""SPEC §2: adding a person creates a new one; one who has an account joins
only with their own consent or the superadmin's act; the answer never
reveals whether an email has an account outside the admin's orgs."""
import statistics
import time

import pytest

from conftest import ADMIN_EMAIL, Api, login, module_server

PW = "member-password-1"

srv = module_server([])


class People:
    """Org A with its admin, org B with a person of its own, and A's child."""

    def __init__(self, srv):
        self.srv = srv
        self.root = login(srv.http)
        tag = time.monotonic_ns()
        self.tag = tag
        self.a = self.root.post("/api/v1/orgs", json={"name": "a-%d" % tag}).json()
        self.b = self.root.post("/api/v1/orgs", json={"name": "b-%d" % tag}).json()
        self.child = self.root.post("/api/v1/orgs", json={"name": "a-child", "parent_id": self.a["id"]}).json()
        self.admin_email = "a-admin-%d@example.com" % tag
        self.b_email = "b-person-%d@example.com" % tag
        for org, email, role in [(self.a, self.admin_email, "admin"), (self.b, self.b_email, "viewer")]:
            r = self.root.post("/api/v1/orgs/%s/members" % org["id"], json={"email": email, "role": role, "password": PW})
            assert r.status_code == 201, r.text
        self.admin = login(srv.http, self.admin_email, PW)
        self.b_person = login(srv.http, self.b_email, PW)

    def add(self, api, email, role="viewer", password=PW, org=None):
        body = {"email": email, "role": role}
        if password is not None:
            body["password"] = password
        return api.post("/api/v1/orgs/%s/members" % (org or self.a)["id"], json=body)

    def unknown(self, name="new"):
        return "%s-%d@example.com" % (name, time.monotonic_ns())


@pytest.fixture
def people(srv):
    return People(srv)


def shape(value):
    """The keys of an answer, all the way down, without the values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def test_same_answer_for_unknown_and_existing_elsewhere(people):
    answers = [people.add(people.admin, people.unknown()), people.add(people.admin, people.b_email),
               people.add(people.admin, ADMIN_EMAIL)]
    for r in answers:
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "invited"
        assert shape(r.json()) == shape(answers[0].json())
        assert set(r.headers) - {"Date"} == set(answers[0].headers) - {"Date"}
    assert answers[1].json()["invitation"]["email"] == people.b_email
    # refusals alike too: no password, a weak one, a role above the admin's own
    for kwargs in ({"password": None}, {"password": "short"}, {"role": "owner"}):
        one = people.add(people.admin, people.unknown(), **kwargs)
        other = people.add(people.admin, people.b_email, **kwargs)
        assert one.status_code == other.status_code and one.status_code in (400, 403)
        assert one.json() == other.json()


@pytest.mark.serial  # compares latencies: run alone (make test)
def test_no_timing_oracle(people):
    def timed(email):
        t = time.perf_counter()
        r = people.add(people.admin, email)
        assert r.status_code == 202
        return time.perf_counter() - t
    unknown = statistics.median(timed(people.unknown()) for _ in range(5))
    existing = statistics.median(timed(people.b_email) for _ in range(5))
    assert 0.5 < unknown / existing < 2.0, (unknown, existing)


def test_invitee_joins_only_by_accepting(people):
    r = people.add(people.admin, people.b_email, role="editor")
    inv_id = r.json()["invitation"]["id"]
    devices = "/api/v1/orgs/%s/devices" % people.a["id"]
    # not a member yet, anywhere it could show
    assert people.b_person.get(devices).status_code == 404
    assert people.a["id"] not in [m["org_id"] for m in people.b_person.get("/api/v1/me").json()["memberships"]]
    members = people.admin.get("/api/v1/orgs/%s/members" % people.a["id"]).json()
    assert people.b_email not in [m["email"] for m in members]
    # the admin sees the pending invitation, never the account behind it
    pending = people.admin.get("/api/v1/orgs/%s/invitations" % people.a["id"]).json()
    mine = [p for p in pending if p["id"] == inv_id]
    assert mine and mine[0]["email"] == people.b_email and "user_id" not in mine[0]
    b_id = people.b_person.get("/api/v1/me").json()["id"]
    audit = people.admin.get("/api/v1/orgs/%s/audit" % people.a["id"]).text
    assert b_id not in audit
    # nobody else can accept it
    assert people.admin.post("/api/v1/invitations/%s/accept" % inv_id).status_code == 404
    # the invitee sees it and accepts
    seen = people.b_person.get("/api/v1/me/invitations").json()
    assert [i for i in seen if i["id"] == inv_id][0]["org_name"] == people.a["name"]
    r = people.b_person.post("/api/v1/invitations/%s/accept" % inv_id)
    assert r.status_code == 200 and r.json() == {"org_id": people.a["id"], "role": "editor"}
    assert people.b_person.post(devices, json={"name": "mine"}).status_code == 201
    assert people.b_person.post("/api/v1/invitations/%s/accept" % inv_id).status_code == 404
    assert inv_id not in [i["id"] for i in people.b_person.get("/api/v1/me/invitations").json()]
    entries = people.admin.get("/api/v1/orgs/%s/audit" % people.a["id"]).json()
    assert "member.join" in [e["action"] for e in entries]


def test_decline_and_withdraw(people):
    inv = people.add(people.admin, people.b_email).json()["invitation"]["id"]
    assert people.b_person.post("/api/v1/invitations/%s/decline" % inv).status_code == 204
    assert people.b_person.post("/api/v1/invitations/%s/accept" % inv).status_code == 404
    assert people.b_person.get("/api/v1/orgs/%s/devices" % people.a["id"]).status_code == 404
    inv = people.add(people.admin, people.b_email).json()["invitation"]["id"]
    assert people.admin.delete("/api/v1/orgs/%s/invitations/%s" % (people.a["id"], inv)).status_code == 204
    assert people.b_person.post("/api/v1/invitations/%s/accept" % inv).status_code == 404


def test_new_person_signs_in_then_accepts(people):
    email = people.unknown("fresh")
    inv = people.add(people.admin, email, password="a-long-password-1").json()["invitation"]["id"]
    fresh = login(people.srv.http, email, "a-long-password-1")
    assert fresh.get("/api/v1/me").json()["memberships"] == []
    assert [i["id"] for i in fresh.get("/api/v1/me/invitations").json()] == [inv]
    assert fresh.post("/api/v1/invitations/%s/accept" % inv).status_code == 200
    assert fresh.get("/api/v1/orgs/%s/devices" % people.a["id"]).status_code == 200


def test_superadmin_adds_directly(people):
    r = people.add(people.root, people.b_email, role="viewer")
    assert r.status_code == 201 and r.json()["email"] == people.b_email
    assert people.b_person.get("/api/v1/orgs/%s/devices" % people.a["id"]).status_code == 200


def test_known_member_in_reach_is_added_directly(people):
    # b-person becomes a member of A's child (by the superadmin): A's admin
    # knows them already, and may add them to A itself at once
    assert people.add(people.root, people.b_email, org=people.child).status_code == 201
    r = people.add(people.admin, people.b_email, role="viewer")
    assert r.status_code == 201 and r.json()["user_id"]
    assert people.b_person.get("/api/v1/orgs/%s/devices" % people.a["id"]).status_code == 200


def test_cross_org_answers_reveal_nothing(people):
    # an admin of A has nothing to do with B's invitations or members
    inv = people.add(people.root, people.unknown(), org=people.b)
    assert inv.status_code == 201
    b_inv = people.add(Api(people.srv.http, people.b_person.s.headers["Authorization"][7:]), people.unknown(), org=people.b)
    assert b_inv.status_code == 403  # a viewer of B invites nobody
    assert people.admin.get("/api/v1/orgs/%s/invitations" % people.b["id"]).status_code == 404
    assert people.admin.get("/api/v1/orgs/%s/members" % people.b["id"]).status_code == 404
    assert people.add(people.admin, people.unknown(), org=people.b).status_code == 404
    # withdrawing another org's invitation through A's path is a 404 like a missing one
    a_inv = people.add(people.admin, people.unknown()).json()["invitation"]["id"]
    other_admin_email = people.unknown("b-admin")
    people.root.post("/api/v1/orgs/%s/members" % people.b["id"],
                     json={"email": other_admin_email, "role": "admin", "password": PW})
    b_admin = login(people.srv.http, other_admin_email, PW)
    r1 = b_admin.delete("/api/v1/orgs/%s/invitations/%s" % (people.b["id"], a_inv))
    r2 = b_admin.delete("/api/v1/orgs/%s/invitations/%s" % (people.b["id"], "0" * 24))
    assert r1.status_code == r2.status_code == 404 and r1.json() == r2.json()
    # an API key with manage invites the same way
    key = people.admin.post("/api/v1/orgs/%s/apikeys" % people.a["id"], json={"name": "k", "scopes": ["manage"]}).json()
    app = Api(people.srv.http, key["key"])
    for email in (people.unknown(), people.b_email):
        r = app.post("/api/v1/orgs/%s/members" % people.a["id"], json={"email": email, "role": "viewer", "password": PW})
        assert r.status_code == 202 and shape(r.json()) == shape(answer_shape())


def answer_shape():
    return {"status": "invited", "invitation": {"id": "", "org_id": "", "email": "", "role": "", "created_at": 0}}


class Inviter:
    """A second admin of org A, who invites B's person, then loses the
    authority to (each test takes it away its own way)."""

    def __init__(self, people, role="admin"):
        self.people = people
        self.email = people.unknown("inviter")
        r = people.add(people.root, self.email, role=role)
        assert r.status_code == 201, r.text
        self.id = r.json()["user_id"]
        self.api = login(people.srv.http, self.email, PW)

    def invite(self, api=None, role="admin"):
        r = self.people.add(api or self.api, self.people.b_email, role=role)
        assert r.status_code == 202, r.text
        return r.json()["invitation"]["id"]

    def accept(self, inv):
        return self.people.b_person.post("/api/v1/invitations/%s/accept" % inv)

    def assert_void(self, inv):
        p = self.people
        r = self.accept(inv)
        assert r.status_code == 409 and r.json()["error"]["code"] == "invitation_void", r.text
        assert p.b_person.get("/api/v1/orgs/%s/devices" % p.a["id"]).status_code == 404
        assert p.a["id"] not in [m["org_id"] for m in p.b_person.get("/api/v1/me").json()["memberships"]]
        # and it is gone
        assert inv not in [i["id"] for i in p.b_person.get("/api/v1/me/invitations").json()]
        assert self.accept(inv).status_code == 404
        actions = [e["action"] for e in p.root.get("/api/v1/orgs/%s/audit" % p.a["id"]).json()]
        assert "member.invite_void" in actions


def test_invitation_void_once_the_inviter_is_removed(people):
    inviter = Inviter(people)
    inv = inviter.invite()
    assert people.root.delete("/api/v1/orgs/%s/members/%s" % (people.a["id"], inviter.id)).status_code == 204
    inviter.assert_void(inv)


def test_invitation_void_once_the_inviter_is_demoted(people):
    inviter = Inviter(people)
    inv = inviter.invite()
    r = people.root.patch("/api/v1/orgs/%s/members/%s" % (people.a["id"], inviter.id), json={"role": "editor"})
    assert r.status_code == 200, r.text
    inviter.assert_void(inv)


def test_invitation_void_once_the_inviter_is_disabled(people):
    inviter = Inviter(people)
    inv = inviter.invite(role="viewer")
    assert people.root.patch("/api/v1/users/%s" % inviter.id, json={"disabled": True}).status_code == 200
    inviter.assert_void(inv)


def test_invitation_void_once_the_inviting_key_is_revoked(people):
    inviter = Inviter(people)
    key = people.root.post("/api/v1/orgs/%s/apikeys" % people.a["id"],
                           json={"name": "inviter", "scopes": ["manage"]}).json()
    inv = inviter.invite(Api(people.srv.http, key["key"]), role="editor")
    assert people.root.delete("/api/v1/apikeys/%s" % key["id"]).status_code == 204
    inviter.assert_void(inv)


def test_invitation_holds_while_the_inviter_still_may_grant_it(people):
    # an owner demoted to admin may still invite an admin, not an owner
    inviter = Inviter(people, role="owner")
    assert people.add(people.root, people.unknown("owner"), role="owner").status_code == 201
    inv = inviter.invite(role="owner")
    r = people.root.patch("/api/v1/orgs/%s/members/%s" % (people.a["id"], inviter.id), json={"role": "admin"})
    assert r.status_code == 200, r.text
    inviter.assert_void(inv)
    inv = inviter.invite(role="admin")
    r = inviter.accept(inv)
    assert r.status_code == 200 and r.json()["role"] == "admin", r.text
