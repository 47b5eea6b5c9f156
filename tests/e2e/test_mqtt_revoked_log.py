"""The log line of a revoked MQTT connection names its principal's kind:
a device, an API key, or the superadmin (never a key for a person)."""
import re

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login
from mqtt_util import MQTT_ARGS, V5, Raw, RC_ADMINISTRATIVE


def test_a_revoked_superadmin_is_logged_as_the_superadmin(fresh_server):
    s = fresh_server(MQTT_ARGS)
    c = Raw(s, V5)
    c.connect(username=ADMIN_EMAIL, password=ADMIN_PASSWORD)
    api = login(s.http)
    r = api.put("/api/v1/me/password",
                json={"current_password": ADMIN_PASSWORD, "new_password": "new-password-22"})
    assert r.status_code in (200, 204), r.text
    assert c.disconnect_reason() == RC_ADMINISTRATIVE
    log = s.read_log()
    assert re.search(r"superadmin \w+: revoked", log), log[-2000:]
    assert not re.search(r"key \w+: revoked", log)
