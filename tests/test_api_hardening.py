"""Input holes: cursor tampering, non-UTF-8 JSON, chunked bodies, errors always JSON; and the startup rules
of API keys under the real server (`python -m api web`, waitress) on 127.0.0.1 (first-key hint, API_AUTH=off refused off loopback)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
import requests

from tests.api_fixtures import *  # noqa: F401,F403
from tests.api_fixtures import REPO, VENV_BIN, free_port, make_client, make_config, new_key, wait_until
from tests.test_api_app import _finish, _seed_pages, assert_error

API = "/api/v1"


@pytest.fixture
def api(api_pg_url):
    return make_client(make_config(api_pg_url, f"http://127.0.0.1:{free_port()}"))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def tampered(cursor: str) -> list[str]:
    """Ways a client could alter or forge a cursor it was given."""
    payload, _, mac = cursor.partition(".")
    flip = lambda s, i: s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]  # noqa: E731
    forged = [b64(json.dumps(v).encode()) for v in ("\u0000", "a\u0000b", "zzz", 5, None)]
    forged += [b64(b'"\\ud800"'), b64(b'"\\udfff x"'), b64('"\ud800"'.encode("utf-8", "surrogatepass")),
               b64("\ufeff\"a\"".encode()), b64('"a"'.encode("utf-16")), b64(b"[" * 5000)]
    return [
        flip(payload, 0), flip(payload, len(payload) - 1), flip(mac, 0), flip(mac, len(mac) - 1),
        payload, payload + ".", "." + mac, cursor + "x", cursor[:-1], cursor + "." + mac,
        *forged, *(f + "." + mac for f in forged), *(f + "." + f for f in forged),
        "\u00e9" + cursor, cursor.replace(".", "\u2024"), "!!", "%00", "\x00", "x" * 10_000,
    ]


def test_cursor_tampering_gives_400_on_batch_status(api):
    _, c = api
    b1 = c.simulate_post(f"{API}/batch", json={"domains": ["a.test", "b.test", "c.test"]}).json
    b2 = c.simulate_post(f"{API}/batch", json={"domains": ["d.test", "e.test", "f.test"]}).json
    url1, url2 = b1["status_url"], b2["status_url"]
    first = c.simulate_get(url1, params={"limit": 1}).json
    cursor = first["next_cursor"]
    ok = c.simulate_get(url1, params={"limit": 1, "cursor": cursor})
    assert ok.status_code == 200 and [j["domain"] for j in ok.json["jobs"]] == ["b.test"]
    for bad in tampered(cursor):
        assert_error(c.simulate_get(url1, params={"limit": 1, "cursor": bad}), 400)
    # a genuine cursor is refused by another listing: another batch, or the same batch with another filter
    assert_error(c.simulate_get(url2, params={"limit": 1, "cursor": cursor}), 400)
    assert_error(c.simulate_get(url1, params={"limit": 1, "cursor": cursor, "status": "pending"}), 400)


def test_cursor_tampering_gives_400_on_job_urls(api):
    app, c = api
    engine = app.scrapersky_store.engine
    j1 = uuid.UUID(c.simulate_post(f"{API}/scrapersky", json={"base_url": "p.test"}).json["job_id"])
    j2 = uuid.UUID(c.simulate_post(f"{API}/scrapersky", json={"base_url": "p.test"}).json["job_id"])
    _finish(engine, [j1, j2])
    _seed_pages(engine, "p.test", [j1, j2], 30)
    path = f"{API}/jobs/{j2}/urls"
    cursor = c.simulate_get(path, params={"limit": 5}).json["next_cursor"]
    assert c.simulate_get(path, params={"limit": 5, "cursor": cursor}).json["count"] == 5
    for bad in tampered(cursor):
        assert_error(c.simulate_get(path, params={"limit": 5, "cursor": bad}), 400)
    assert_error(c.simulate_get(path, params={"limit": 5, "cursor": cursor, "change": "new"}), 400)
    assert_error(c.simulate_get(f"{API}/jobs/{j1}/urls", params={"limit": 5, "cursor": cursor}), 400)


@pytest.mark.parametrize("body,ctype,status", [
    ('{"base_url": "a.test"}'.encode("utf-16"), "application/json", 400),  # UTF-16 with its BOM
    ('{"base_url": "a.test"}'.encode("utf-16-le"), "application/json", 400),
    ('{"base_url": "a.test"}'.encode("utf-16-be"), "application/json", 400),
    ('{"base_url": "a.test"}'.encode("utf-32"), "application/json", 400),
    (b'{"base_url": "a.test"}', "application/json; charset=utf-16", 415),
    (b'{"base_url": "a.test"}', "application/json; charset=latin-1", 415),
    (b'{"base_url": "\xed\xa0\x80.test"}', "application/json", 400),  # an encoded lone surrogate
    (b'{"base_url": "a\\u0000.test"}', "application/json", 400),
    (b'{"base_url": "\\ud800.test"}', "application/json", 400),
])
def test_non_utf8_json_is_refused(api, body, ctype, status):
    _, c = api
    body_json = assert_error(c.simulate_post(f"{API}/scrapersky", body=body, headers={"Content-Type": ctype}), status)
    assert "utf" in body_json["description"].lower() or status == 400


def test_utf8_json_with_or_without_bom_and_charset_is_accepted(api):
    _, c = api
    for body, ctype in [(b'\xef\xbb\xbf{"base_url": "bom.test"}', "application/json"),
                        ('{"base_url": "bücher.de"}'.encode(), "application/json; charset=UTF-8")]:
        assert c.simulate_post(f"{API}/scrapersky", body=body, headers={"Content-Type": ctype}).status_code == 202


def test_every_error_is_json(api):
    app, c = api

    class Boom:
        def on_get(self, req, resp):
            raise RuntimeError("secret internals")

    app.add_route(f"{API}/boom", Boom())
    html = {"Accept": "text/html"}
    assert_error(c.simulate_get("/nope", headers=html), 404)
    assert_error(c.simulate_get(f"{API}/nope", headers=html), 404)
    r = c.simulate_get(f"{API}/scrapersky", headers=html)
    assert_error(r, 405)
    assert "POST" in r.headers["allow"]
    assert_error(c.simulate_delete(f"{API}/batch/{uuid.uuid4()}/cancel"), 405)
    r = c.simulate_get(f"{API}/boom", headers=html)
    assert_error(r, 500)
    assert "secret internals" not in r.text and "Traceback" not in r.text
    # a chunked body that this WSGI server does not de-chunk (no wsgi.input_terminated): 411, not a silent empty body
    r = c.simulate_post(f"{API}/scrapersky", body=b'{"base_url": "a.test"}',
                        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked",
                                 "Content-Length": None})
    assert_error(r, 411)


# ----------------------------------------------------------------------------- under the real server
class WebServer:
    """`python -m api web`: one waitress process, as `python -m api` runs them."""

    def __init__(self, tmp, env: dict[str, str]):
        self.port = free_port()
        self.out = tmp / f"web-{self.port}.out"
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "python"), "-m", "api", "web"],
            cwd=REPO, env={**os.environ, "API_RUN_DISPATCHER": "0", "SCRAPYD_URL": f"http://127.0.0.1:{free_port()}",
                           "API_PORT": str(self.port), **env},
            stdout=open(self.out, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_up(self):
        s = requests.Session()
        s.trust_env = False

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(self.output())
            try:
                return s.get(f"{self.base}/health/database", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, 60, 0.2, "the API to serve")
        return self

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def post_chunked(port: int, path: str, parts: list[bytes], key: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=iter(parts), encode_chunked=True,
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_chunked_bodies_and_first_key_hint_under_the_real_server(tmp_path, api_pg_url):
    from api.auth import create_key
    from pipelines.db import get_engine

    server = WebServer(tmp_path, {"DATABASE_URL": api_pg_url, "API_MAX_BODY_BYTES": "2048"}).wait_up()
    try:
        assert "python -m api keys create NAME --admin" in server.output()  # no key yet
        key = create_key(get_engine(api_pg_url), "chunky", admin=False)
        status, body = post_chunked(server.port, f"{API}/scrapersky", [b'{"base_url":', b' "chunk', b'ed.test"}'], key)
        assert status == 202 and body["domain"] == "chunked.test", body
        domains = json.dumps({"domains": ["one.test", "two.test"]}).encode()
        status, body = post_chunked(server.port, f"{API}/batch", [domains[i:i + 7] for i in range(0, len(domains), 7)], key)
        assert status == 202 and body["job_count"] == 2, body
        status, body = post_chunked(server.port, f"{API}/batch", [b'{"domains": ["', b"x" * 3000, b'"]}'], key)
        assert status == 413 and body["title"], body
        status, body = post_chunked(server.port, f"{API}/scrapersky", [], key)
        assert status == 400 and "empty" in body["description"], body
        s = requests.Session()
        s.trust_env = False
        r = s.get(f"{server.base}/api/v1/status/{uuid.uuid4()}", headers={"Authorization": f"Bearer {key}"}, timeout=5)
        assert r.status_code == 404 and r.json()["title"]
        assert key not in server.output()
    finally:
        server.stop()


def test_auth_off_refused_off_loopback_and_logged_on_loopback(tmp_path, api_pg_url):
    refused = WebServer(tmp_path, {"DATABASE_URL": api_pg_url, "API_AUTH": "off", "API_HOST": "0.0.0.0"})
    try:
        refused.proc.wait(60)
    finally:
        refused.stop()
    assert refused.proc.returncode != 0
    lines = [x for x in refused.output().splitlines() if "API_AUTH=off" in x]
    assert lines == ["error: API_AUTH=off is only allowed when the API listens on loopback, not on '0.0.0.0'; "
                     "create a key with `python -m api keys create NAME --admin` instead"]
    assert "Traceback" not in refused.output()

    local = WebServer(tmp_path, {"DATABASE_URL": api_pg_url, "API_AUTH": "off", "API_HOST": "127.0.0.1"}).wait_up()
    try:
        assert "API authentication is OFF" in local.output()
        s = requests.Session()
        s.trust_env = False
        r = s.post(f"{local.base}/api/v1/scrapersky", json={"base_url": "local.test"}, timeout=10)
        assert r.status_code == 202, r.text
    finally:
        local.stop()
