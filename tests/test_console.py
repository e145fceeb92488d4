"""The console through falcon.testing: login and log-out, the session cookie's flags, CSRF, 404 pages,
tenant isolation, and batches made through the same path as POST /api/v1/batch (PostgreSQL and SQLite)."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import falcon.testing
import pytest
from sqlalchemy import insert

from api.auth import revoke_key
from api.store import domains, jobs, pages, sitemaps
from tests.api_fixtures import *  # noqa: F401,F403
from tests.api_fixtures import free_port, key_client, make_config, new_key

API = "/api/v1"


class Browser:
    """A falcon.testing client that keeps cookies like a browser (per path /console)."""

    def __init__(self, app, protocol: str = "http"):
        self.app = app
        self.client = falcon.testing.TestClient(app)
        self.cookies: dict[str, str] = {}
        self.protocol = protocol

    def request(self, method: str, path: str, **kw):
        r = self.client.simulate_request(method, path, cookies=dict(self.cookies), protocol=self.protocol, **kw)
        for c in r.cookies.values():
            if c.max_age == 0 or c.value == "":
                self.cookies.pop(c.name, None)
            else:
                self.cookies[c.name] = c.value
        return r

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def post_form(self, path: str, data: dict):
        from urllib.parse import urlencode

        return self.request("POST", path, body=urlencode(data),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})

    def csrf(self, html: str) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', html).group(1)

    def login(self, key: str):
        page = self.get("/console/login?next=/console/batches")
        r = self.post_form("/console/login", {"key": key, "csrf": self.csrf(page.text), "next": "/console/batches"})
        assert r.status_code == 303, r.text
        return r


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request, tmp_path):
    from api.app import create_app

    url = f"sqlite:///{tmp_path / 'console.db'}" if request.param == "sqlite" else request.getfixturevalue("api_pg_url")
    return create_app(make_config(url, f"http://127.0.0.1:{free_port()}"), start_dispatcher=False)


def test_login_sets_a_strict_httponly_cookie_without_the_key_and_logout_ends_it(app):
    key = new_key(app, "alice", tenant="acme")
    b = Browser(app)
    r = b.get("/console/batches")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")
    r = b.login(key)
    assert r.headers["location"] == "/console/batches"
    cookie = r.cookies["ssk_console"]
    assert cookie.http_only and cookie.same_site == "Strict" and cookie.path == "/console"
    assert not cookie.secure  # plain http (loopback): a Secure cookie would never come back
    assert key not in r.headers.get("set-cookie", "") and key[4:] not in cookie.value
    page = b.get("/console/batches")
    assert page.status_code == 200 and "No batches yet" in page.text and "alice" in page.text
    assert "<h1>Batches</h1>" in page.text
    # log-out needs the form's CSRF token
    r = b.post_form("/console/logout", {"csrf": "forged"})
    assert r.status_code == 400 and "CSRF" in r.text
    copied = b.cookies["ssk_console"]  # e.g. taken from the browser before the log-out
    r = b.post_form("/console/logout", {"csrf": b.csrf(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert "ssk_console" not in b.cookies
    assert b.get("/console/batches").status_code == 303
    # the copy no longer opens a page either: the session itself ended
    stale = falcon.testing.TestClient(app).simulate_get("/console/batches", cookies={"ssk_console": copied})
    assert stale.status_code == 303 and stale.headers["location"].startswith("/console/login")
    # a second session of the same key is not affected by the first one's log-out
    b2 = Browser(app)
    b2.login(key)
    assert b2.get("/console/batches").status_code == 200


def test_cookie_is_secure_over_https(app):
    key = new_key(app, "bob", tenant="acme")
    r = Browser(app, protocol="https").login(key)
    assert r.cookies["ssk_console"].secure


def test_bad_key_forged_login_tampered_or_revoked_session_go_back_to_login(app):
    key = new_key(app, "carol", tenant="acme")
    b = Browser(app)
    page = b.get("/console/login")
    assert '<label for="key">API key</label>' in page.text
    r = b.post_form("/console/login", {"key": "ssk_" + "x" * 43, "csrf": b.csrf(page.text)})
    assert r.status_code == 401 and "not valid" in r.text and "ssk_console" not in b.cookies
    r = b.post_form("/console/login", {"key": key, "csrf": "nope"})  # login CSRF
    assert r.status_code == 400 and "ssk_console" not in b.cookies
    r = b.login(key)
    good = b.cookies["ssk_console"]
    b.cookies["ssk_console"] = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    assert b.get("/console/batches").status_code == 303
    b.cookies["ssk_console"] = good
    assert b.get("/console/batches").status_code == 200
    assert revoke_key(app.scrapersky_store.engine, "carol") == "revoked"
    r = b.get("/console/batches/new")
    assert r.status_code == 303 and "/console/login" in r.headers["location"]


def test_new_batch_goes_through_the_api_path_rejects_with_reasons_and_opens_the_batch(app):
    key = new_key(app, "dave", tenant="acme")
    b = Browser(app)
    b.login(key)
    form = b.get("/console/batches/new")
    assert form.status_code == 200 and '<label for="domains">' in form.text
    token = b.csrf(form.text)
    r = b.post_form("/console/batches/new", {"domains": "one.test", "csrf": "forged"})
    assert r.status_code == 400
    r = b.post_form("/console/batches/new", {"domains": "not valid!, http://", "csrf": token})
    assert r.status_code == 422 and "None of the domains given is valid" in r.text and "Rejected inputs" in r.text
    r = b.post_form("/console/batches/new", {"domains": "one.test\nWWW.one.test, two.test\nbad_domain!", "max_pages": "5",
                                             "csrf": token})
    assert r.status_code == 303
    batch_id = re.match(r"/console/batches/([0-9a-f-]{36})", r.headers["location"]).group(1)
    page = b.get(r.headers["location"])
    assert page.status_code == 200 and "1 input rejected" in page.text and "bad_domain!" in page.text
    assert "1 duplicate skipped" in page.text
    assert 'aria-valuenow="0"' in page.text and "Cancel batch" in page.text
    assert re.findall(r'<a href="/console/domains/([^"]+)">', page.text) == ["one.test", "two.test"]
    api = key_client(app, key).simulate_get(f"{API}/batch/status/{batch_id}").json
    assert api["total_jobs"] == 2 and api["options"]["max_pages"] == 5
    listing = b.get("/console/batches")
    assert batch_id in listing.text and 'data-live="1"' in listing.text
    # cancel from the batch page
    r = b.post_form(f"/console/batches/{batch_id}/cancel", {"csrf": b.csrf(page.text)})
    assert r.status_code == 303
    page = b.get(f"/console/batches/{batch_id}")
    assert 'id="batch-status">cancelled' in page.text and "Cancel batch" not in page.text
    assert key_client(app, key).simulate_get(f"{API}/batch/status/{batch_id}").json["cancelled_jobs"] == 2


def test_quota_refusal_is_shown_on_the_form(app):
    """The console's batches obey the tenant's quotas exactly as POST /api/v1/batch does."""
    from api.app import create_app

    limited = create_app(make_config(app.scrapersky_config.database_url, f"http://127.0.0.1:{free_port()}",
                                     quota_concurrent_batches=1), start_dispatcher=False)
    b = Browser(limited)
    key = new_key(limited, "erin", tenant="small")
    b.login(key)
    token = b.csrf(b.get("/console/batches/new").text)
    assert b.post_form("/console/batches/new", {"domains": "a.test", "csrf": token}).status_code == 303
    r = b.post_form("/console/batches/new", {"domains": "b.test", "csrf": token})
    assert r.status_code == 429 and "at most 1 at once" in r.text and r.headers["retry-after"]
    api = key_client(limited, key).simulate_post(f"{API}/batch", json={"domains": ["b.test"]})
    assert api.status_code == 429


def test_tenants_see_only_their_own_work_and_unknown_ids_are_404_pages(app):
    mine, theirs = new_key(app, "frank", tenant="acme"), new_key(app, "grace", tenant="other")
    admin = new_key(app, "root", tenant="ops", admin=True)
    other_batch = key_client(app, theirs).simulate_post(f"{API}/batch", json={"domains": ["theirs.test"]}).json["batch_id"]
    b = Browser(app)
    b.login(mine)
    for path in (f"/console/batches/{other_batch}", f"/console/batches/{uuid.uuid4()}", "/console/batches/not-a-uuid",
                 "/console/domains/theirs.test", "/console/domains/never-scanned.test", "/console/no/such/page",
                 f"/console/jobs/{uuid.uuid4()}/urls.csv"):
        r = b.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html") and "<h1>Not found</h1>" in r.text
        assert "Traceback" not in r.text
    assert other_batch not in b.get("/console/batches").text
    r = b.post_form(f"/console/batches/{other_batch}/cancel", {"csrf": b.csrf(b.get("/console/batches").text)})
    assert r.status_code == 404
    a = Browser(app)
    a.login(admin)
    assert a.get(f"/console/batches/{other_batch}").status_code == 200
    assert other_batch in a.get("/console/batches").text


def test_domain_page_tree_histogram_urls_and_changes(app):
    key = new_key(app, "heidi", tenant="acme")
    engine = app.scrapersky_store.engine
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    j1, j2 = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as conn:
        dom = conn.execute(insert(domains).values(name="shop.test", title="Shop home", url_count=3, sitemap_count=2,
                                                  last_scan_at=t0, last_job_id=j2).returning(domains.c.id)).scalar_one()
        for jid, at, n in ((j1, t0 - dt.timedelta(days=1), 3), (j2, t0, 3)):
            conn.execute(insert(jobs).values(id=jid, domain="shop.test", domain_id=dom, status="complete", outcome="ok",
                                             created_at=at, finished_at=at, urls_found=n, tenant="acme"))
        idx = conn.execute(insert(sitemaps).values(domain_id=dom, job_id=j2, url="http://shop.test/index.xml", type="index",
                                                   discovered_by="robots", url_count=0).returning(sitemaps.c.id)).scalar_one()
        child = conn.execute(insert(sitemaps).values(domain_id=dom, job_id=j2, url="http://shop.test/a.xml", type="urlset",
                                                     discovered_by="index", parent_url="http://shop.test/index.xml",
                                                     url_count=3, http_status=200).returning(sitemaps.c.id)).scalar_one()
        kept, gone = dt.datetime(2025, 10, 5, tzinfo=dt.timezone.utc), dt.datetime(2025, 11, 5, tzinfo=dt.timezone.utc)
        new1 = dt.datetime(2025, 12, 5, tzinfo=dt.timezone.utc)
        rows = [(j1, "http://shop.test/kept", kept), (j1, "http://shop.test/gone", gone),  # the first scan
                (j2, "http://shop.test/kept", kept), (j2, "http://shop.test/new1", new1),  # the second
                (j2, "http://shop.test/new2", None)]
        conn.execute(insert(pages), [dict(job_id=j, domain_id=dom, url=u, sitemap_id=child, lastmod=m)
                                     for j, u, m in rows])
    assert idx
    b = Browser(app)
    b.login(key)
    page = b.get("/console/domains/WWW.Shop.test")
    assert page.status_code == 200, page.text
    assert "<h1>shop.test</h1>" in page.text and "Shop home" in page.text
    tree = re.findall(r'<tr data-depth="(\d)" data-url="([^"]+)">', page.text)
    assert tree == [("0", "http://shop.test/index.xml"), ("1", "http://shop.test/a.xml")]
    bars = re.findall(r'data-month="([\d-]+)" data-count="(\d+)"', page.text)
    assert bars == [("2025-10", "1"), ("2025-11", "0"), ("2025-12", "1")]  # "gone" is not in the latest scan
    assert re.findall(r'<td class="url">(http://shop.test/[a-z0-9]+)</td>', page.text) == [
        "http://shop.test/kept", "http://shop.test/new1", "http://shop.test/new2"]
    assert '<strong id="new-count">2</strong>' in page.text and '<strong id="removed-count">1</strong>' in page.text
    assert "http://shop.test/gone" in page.text.split('id="removed-urls"')[1]
    filtered = b.get("/console/domains/shop.test?q=new&has_lastmod=yes")
    assert re.findall(r'<td class="url">(http://shop.test/[a-z0-9]+)</td>', filtered.text) == ["http://shop.test/new1"]
    assert b.get("/console/domains/shop.test?has_lastmod=maybe").status_code == 400
    csv_r = b.get(f"/console/jobs/{j2}/urls.csv")
    assert csv_r.status_code == 200 and csv_r.text == key_client(app, key).simulate_get(
        f"{API}/jobs/{j2}/urls", params={"format": "csv"}).text


def test_errors_on_console_pages_are_html_pages_and_the_api_stays_json(app, tmp_path):
    from sqlalchemy import create_engine

    b = Browser(app)
    b.login(new_key(app, "ivan", tenant="acme"))
    store = app.scrapersky_store
    good = store.engine
    store.engine = create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nowhere")  # a database that is down
    try:
        r = b.get("/console/batches/new")
        assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")
        assert "Database unavailable" in r.text and "Traceback" not in r.text
        page = falcon.testing.TestClient(app).simulate_get("/console/login", protocol="http")
        assert page.status_code == 200  # the login page renders without the database
    finally:
        store.engine = good
    r = b.get("/console/batches?status=bogus")
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html") and "status must be one of" in r.text
    r = falcon.testing.TestClient(app).simulate_get(f"{API}/batches", params={"status": "bogus"})
    assert r.status_code == 401 and r.json["title"] == "Unauthorized"
