"""The audit log says what changed and who did it: field names and their
new values (never a secret), the actor's email or API key name beside its
id; the offline password reset is audited too."""
import subprocess

from conftest import ADMIN_EMAIL, BIN, Api, login

PW = "member-password-1"


def entries(api, org_id):
    r = api.get("/api/v1/orgs/%s/audit" % org_id)
    assert r.status_code == 200, r.text
    return {e["action"]: e for e in r.json()}


def test_entries_name_the_actor_and_what_changed(server, admin):
    me = admin.get("/api/v1/me").json()
    org = admin.post("/api/v1/orgs", json={"name": "audit-detail"}).json()
    dev = admin.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "boiler", "description": "cellar"}).json()
    assert admin.patch("/api/v1/devices/" + dev["id"], json={"name": "boiler-2", "disabled": True}).status_code == 200
    rotated = admin.post("/api/v1/devices/%s/token" % dev["id"]).json()["token"]
    admin.patch("/api/v1/orgs/" + org["id"], json={"name": "audit-detail-2"})
    member = admin.post("/api/v1/orgs/%s/members" % org["id"],
                        json={"email": "audited-member@example.com", "role": "viewer", "password": PW}).json()
    admin.patch("/api/v1/orgs/%s/members/%s" % (org["id"], member["user_id"]), json={"role": "editor"})
    key = admin.post("/api/v1/orgs/%s/apikeys" % org["id"], json={"name": "robot", "scopes": ["manage"]}).json()
    app = Api(server.http, key["key"])
    made = app.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "by-robot"}).json()
    assert admin.put("/api/v1/orgs/%s/quota" % org["id"],
                     json={"max_devices": 5, "max_readings_per_day": 0, "max_bytes_per_day": 0}).status_code == 200

    got = entries(admin, org["id"])
    for action, e in got.items():
        assert isinstance(e["detail"], dict), e
        text = str(e)
        for secret in (dev["token"], rotated, key["key"], PW):
            assert secret not in text, action
        if e["actor"] == "user:" + me["id"]:
            assert e["actor_name"] == ADMIN_EMAIL, e
    assert got["device.create"]["detail"] == {"name": "boiler", "description": "cellar"}
    assert got["device.update"]["detail"] == {"name": "boiler-2", "disabled": True}
    assert got["device.rotate_token"]["detail"] == {"name": "boiler-2", "token": "(changed)"}
    assert got["org.rename"]["detail"] == {"name": "audit-detail-2"}
    assert got["member.add"]["detail"]["role"] == "viewer"
    assert got["member.add"]["detail"]["email"] == "audited-member@example.com"
    assert got["member.role"]["detail"] == {"email": "audited-member@example.com", "role": "editor",
                                            "previous_role": "viewer"}
    assert got["apikey.create"]["detail"] == {"name": "robot", "scopes": ["manage"]}
    assert got["org.quota"]["detail"] == {"max_devices": 5, "max_readings_per_day": 0, "max_bytes_per_day": 0}
    by_key = [e for e in admin.get("/api/v1/orgs/%s/audit" % org["id"]).json()
              if e["target"] == "device:" + made["id"]][0]
    assert by_key["actor"] == "apikey:" + key["id"] and by_key["actor_name"] == "robot"


def test_long_values_are_cut_to_fit(server, admin):
    org = admin.post("/api/v1/orgs", json={"name": "audit-long"}).json()
    long_desc = "é" * 900
    dev = admin.post("/api/v1/orgs/%s/devices" % org["id"], json={"name": "n" * 200, "description": long_desc})
    assert dev.status_code == 201
    e = entries(admin, org["id"])["device.create"]
    assert e["detail"]["description"].startswith("é" * 10)
    assert e["detail"]["description"].endswith("...")
    assert len(e["detail"]["description"]) < 200


def test_offline_password_reset_is_audited(fresh_server):
    srv = fresh_server()
    admin = login(srv.http)
    me = admin.get("/api/v1/me").json()
    out = subprocess.run([BIN, "reset-password", "--data-dir", srv.data_dir, "--email", ADMIN_EMAIL],
                         capture_output=True, text=True, timeout=60,
                         env={"SENSORSPACE_NEW_PASSWORD": "chosen-password-77", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    again = login(srv.http, ADMIN_EMAIL, "chosen-password-77")
    log = again.get("/api/v1/audit").json()
    resets = [e for e in log if e["action"] == "user.password_reset" and e["actor"] == "cli:reset-password"]
    assert len(resets) == 1, log
    e = resets[0]
    assert e["target"] == "user:" + me["id"] and e["address"] == "local"
    assert e["detail"]["password"] == "(changed)" and e["detail"]["email"] == ADMIN_EMAIL
    assert "chosen-password-77" not in str(e)
