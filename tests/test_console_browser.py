"""The console in a real browser: Playwright drives Debian's chromium against the real service pieces
(the WSGI app under waitress with its dispatcher, a real scrapyd whose crawls reach loopback fixture
sites through a SiteServer proxy, PostgreSQL). Log in with a key, post a batch of 3 sites, watch the
progress bar reach 100 % by live refresh, check a domain page's sitemap tree, lastmod histogram and
URL table against the database, re-scan after changing the site and check "what changed", and
compare the CSV export with the API's. Screenshots of each page go to tests/artifacts/ (not asserted)."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
import threading
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from api.store import jobs, pages, sitemaps
from tests.api_fixtures import (ScrapydProcess, create_pg_database, drop_pg_database, free_port, make_config,
                                new_key, require_pg, wait_until)
from tests.sites import Resp, Site, SiteServer

pytestmark = pytest.mark.timeout(400)
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
XML = {"Content-Type": "application/xml"}


def months_site(host: str, paths: list[str]) -> Site:
    """robots.txt -> sitemap_index.xml -> pages.xml (lastmods over 2025) + posts.xml.gz (no lastmod)."""
    def urlset(entries):
        body = "".join(f"<url><loc>http://{host}{p}</loc>{f'<lastmod>{m}</lastmod>' if m else ''}</url>" for p, m in entries)
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                f"{body}</urlset>").encode()

    dated = [(p, f"2025-{1 + i % 12:02}-{1 + i % 27:02}") for i, p in enumerate(paths) if p.startswith("/page")]
    undated = [(p, None) for p in paths if not p.startswith("/page")]
    index = (f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             f"<sitemap><loc>http://{host}/pages.xml</loc></sitemap>"
             f"<sitemap><loc>http://{host}/posts.xml.gz</loc></sitemap></sitemapindex>").encode()
    return Site({
        "/": Resp(body=f"<html lang='en'><head><title>Welcome to {host}</title><meta name='description' "
                       f"content='Fixture shop {host}'></head><body>hi</body></html>".encode(),
                  headers={"Content-Type": "text/html; charset=utf-8"}),
        "/robots.txt": Resp(body=f"User-agent: *\nDisallow:\nSitemap: http://{host}/sitemap_index.xml\n".encode(),
                            headers={"Content-Type": "text/plain"}),
        "/sitemap_index.xml": Resp(body=index, headers=XML),
        "/pages.xml": Resp(body=urlset(dated), headers=XML),
        "/posts.xml.gz": Resp(body=gzip.compress(urlset(undated), mtime=0), headers={"Content-Type": "application/x-gzip"}),
    })


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `./dev setup` installs Debian's chromium")
    require_pg()
    import waitress

    from api.app import create_app

    tmp = tmp_path_factory.mktemp("console_browser")
    db_url = create_pg_database()
    sites = SiteServer({}).start()
    scrapyd = ScrapydProcess(tmp / "scrapyd", {**sites.proxy_env(), "DATABASE_URL": db_url}).start()
    app = create_app(make_config(db_url, scrapyd.url), start_dispatcher=True)
    server = waitress.create_server(app, host="127.0.0.1", port=free_port(), threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield {"app": app, "base": f"http://127.0.0.1:{server.effective_port}", "sites": sites, "db": db_url}
    finally:
        server.close()
        app.scrapersky_dispatcher.stop(2.0)
        scrapyd.stop()
        sites.stop()
        drop_pg_database(db_url)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_console_end_to_end_in_chromium(service, browser):
    app, base = service["app"], service["base"]
    engine = app.scrapersky_store.engine
    hosts = ["alpha-shop.test", "beta-shop.test", "gamma-shop.test"]
    paths = {h: [f"/page/{i}" for i in range(30 + 10 * k)] + [f"/post/{i}" for i in range(8)] for k, h in enumerate(hosts)}
    for h in hosts:
        service["sites"].sites[h] = months_site(h, paths[h])
    key = new_key(app, "browser", tenant="web")
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    # log in: every console page sends an anonymous visitor to the login page first
    page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/console/login")
    shot(page, "01-login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/console/batches")
    assert page.get_by_role("heading", name="Batches").is_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "ssk_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and key not in cookie["value"]

    # new batch: three sites and one input the API's parser rejects
    page.get_by_role("link", name="New batch").first.click()
    page.get_by_label("Domains or URLs").fill("\n".join(hosts) + "\nnot a domain!\nmissing-shop.test")
    page.get_by_label("Max pages per domain").fill("1000")
    shot(page, "02-new-batch")
    page.get_by_role("button", name="Start batch").click()
    page.wait_for_url(f"{base}/console/batches/*")
    batch_id = page.url.split("/console/batches/")[1].split("?")[0]
    assert page.locator("#rejected").inner_text().count("not a domain!") == 1

    # the progress bar reaches 100 % by itself (the page's script re-fetches it while the batch runs)
    page.wait_for_selector('#live [role=progressbar][aria-valuenow="100"]', timeout=180_000)
    assert page.locator("#batch-status").inner_text() == "complete"
    assert page.get_by_role("button", name="Cancel batch").count() == 0  # refreshed with the rest
    bar = page.locator("#live [role=progressbar]")
    width = bar.bounding_box()["width"]
    ok, failed = (bar.locator(f"rect.{k}").bounding_box()["width"] for k in ("ok", "failed"))
    assert abs(ok - width * 3 / 4) < 2 and abs(failed - width / 4) < 2  # the failed quarter in its own colour
    assert page.locator("#jobs tbody tr", has_text="missing-shop.test").locator("td").nth(2).inner_text() == "unreachable"
    shot(page, "03-batch")
    page.get_by_label("Status").select_option("complete")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**status=complete**")
    rows = page.locator("#jobs tbody tr")
    assert rows.count() == 3
    assert [rows.nth(i).locator("td").nth(0).inner_text() for i in range(3)] == hosts
    assert {rows.nth(i).locator("td").nth(1).inner_text() for i in range(3)} == {"complete"}
    assert [int(rows.nth(i).locator("td").nth(3).inner_text()) for i in range(3)] == [len(paths[h]) for h in hosts]
    page.goto(f"{base}/console/batches")
    listed = page.locator(f'tr[data-batch="{batch_id}"]')
    assert listed.get_attribute("data-status") == "complete"
    assert listed.get_by_role("progressbar").get_attribute("aria-valuenow") == "100"
    shot(page, "04-batches")

    # the domain page against the database
    host = hosts[1]
    page.goto(f"{base}/console/batches/{batch_id}")
    page.get_by_role("link", name=host).click()
    page.wait_for_url(f"{base}/console/domains/{host}")
    assert page.locator("#home-title").inner_text() == f"Welcome to {host}"
    with engine.connect() as conn:
        job = conn.execute(select(jobs).where(jobs.c.batch_id == batch_id, jobs.c.domain == host)).mappings().one()
        db_maps = {r.url: (r.parent_url, r.url_count) for r in conn.execute(
            select(sitemaps).where(sitemaps.c.job_id == job["id"]))}
        db_urls = list(conn.execute(select(pages.c.url).where(pages.c.job_id == job["id"])
                                    .order_by(pages.c.url)).scalars())
        month = func.to_char(func.timezone("UTC", pages.c.lastmod), "YYYY-MM")
        db_months = dict(conn.execute(
            select(month, func.count())
            .where(pages.c.job_id == job["id"], pages.c.lastmod.is_not(None)).group_by(month)).all())
    tree = page.locator("#sitemaps tbody tr")
    shown = [(tree.nth(i).get_attribute("data-url"), tree.nth(i).get_attribute("data-depth"),
              int(tree.nth(i).locator("td").nth(4).inner_text())) for i in range(tree.count())]
    assert shown[0] == (f"http://{host}/sitemap_index.xml", "0", db_maps[f"http://{host}/sitemap_index.xml"][1])
    assert sorted(shown[1:]) == sorted((u, "1", n) for u, (parent, n) in db_maps.items() if parent)
    assert len(shown) == len(db_maps) == 3
    bars = page.locator("svg#histogram rect")
    hist = {bars.nth(i).get_attribute("data-month"): int(bars.nth(i).get_attribute("data-count")) for i in range(bars.count())}
    assert {m: n for m, n in hist.items() if n} == db_months and sum(hist.values()) == len(paths[host]) - 8
    assert len(hist) == 12  # every month of 2025
    assert page.locator("#url-total").inner_text() == f"{len(db_urls)} URLs"
    cells = page.locator("#urls tbody tr td:first-child")
    assert [cells.nth(i).inner_text() for i in range(cells.count())] == db_urls[:50]
    page.get_by_label("Search").fill("/post/")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**q=%2Fpost%2F**")
    assert page.locator("#url-total").inner_text() == "8 URLs"
    page.goto(f"{base}/console/domains/{host}")
    shot(page, "05-domain")

    # the CSV export is the API's
    csv_console = page.request.get(f"{base}/console/jobs/{job['id']}/urls.csv")
    csv_api = requests.get(f"{base}/api/v1/jobs/{job['id']}/urls", params={"format": "csv"},
                           headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert csv_console.status == 200 and csv_console.text() == csv_api.text and csv_api.text.count("\n") == len(db_urls) + 1

    # change the site, scan it again, and compare the two scans
    changed = [p for p in paths[host] if p not in ("/page/0", "/page/1", "/post/7")] + ["/page/new-a", "/page/new-b"]
    service["sites"].sites[host] = months_site(host, changed)
    page.goto(f"{base}/console/batches/new")
    page.get_by_label("Domains or URLs").fill(host)
    page.get_by_role("button", name="Start batch").click()
    page.wait_for_url(f"{base}/console/batches/*")
    page.wait_for_selector('#live [role=progressbar][aria-valuenow="100"]', timeout=180_000)
    page.goto(f"{base}/console/domains/{host}")
    assert page.locator("#new-count").inner_text() == "2" and page.locator("#removed-count").inner_text() == "3"
    assert sorted(page.locator("#new-urls li").all_inner_texts()) == [f"http://{host}/page/new-a", f"http://{host}/page/new-b"]
    assert sorted(page.locator("#removed-urls li").all_inner_texts()) == sorted(
        f"http://{host}{p}" for p in ("/page/0", "/page/1", "/post/7"))
    shot(page, "06-domain-changes")

    # log out: the console is closed again
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{base}/console/login")
    page.goto(f"{base}/console/batches")
    assert page.url.startswith(f"{base}/console/login")
    page.goto(f"{base}/console/batches/{batch_id}")
    assert page.url.startswith(f"{base}/console/login?next=")
    if os.environ.get("SCRAPERSKY_CONSOLE_SCREENSHOT"):  # refresh docs/console.png by hand
        shutil.copy(ARTIFACTS / "03-batch.png", os.environ["SCRAPERSKY_CONSOLE_SCREENSHOT"])
