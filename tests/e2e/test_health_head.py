"""HEAD /healthz is answered as GET is, from the store health the loop
keeps, without the body."""
import requests

from conftest import module_server

srv = module_server([])


def test_head_healthz_matches_get(srv):
    g = requests.get(srv.http + "/healthz", timeout=10)
    h = requests.head(srv.http + "/healthz", timeout=10)
    assert g.status_code == h.status_code == 200
    assert g.text == "ok\n"
    assert h.content == b""
    assert h.headers["Content-Type"] == g.headers["Content-Type"]
    assert h.headers["Content-Length"] == g.headers["Content-Length"] == "3"
