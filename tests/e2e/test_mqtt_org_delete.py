"""An org deleted: the broker forgets its tree at once (SPEC §3.6). Its
retained messages leave the broker's memory (the $SYS count goes down
without a restart)."""
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, module_server, new_org_device
from mqtt_util import MQTT_ARGS, V5, Raw

srv = module_server(MQTT_ARGS)

COUNT = "$SYS/broker/retained messages/count"


def retained_count(s):
    """The broker's retained messages now: the superadmin's sign-in
    publishes the counts, so a new subscriber reads current ones."""
    c = Raw(s, V5)
    c.connect(username=ADMIN_EMAIL, password=ADMIN_PASSWORD)
    assert c.subscribe(COUNT) == [1]
    n = int(c.message().payload)
    c.close()
    return n


def device(s, dev):
    c = Raw(s, V5)
    c.connect(username="device", password=dev["token"])
    return c


def test_deleted_orgs_retained_messages_leave_the_broker(srv):
    api = login(srv.http)
    org, dev = new_org_device(api, prefix="gone")
    before = retained_count(srv)
    d = device(srv, dev)
    for i in range(3):
        assert d.publish("devices/me/state/%d" % i, b"on", qos=1, retain=True).ok
    d.close()
    assert retained_count(srv) == before + 3
    assert api.delete("/api/v1/orgs/%s" % org["id"]).status_code == 204
    assert retained_count(srv) == before

