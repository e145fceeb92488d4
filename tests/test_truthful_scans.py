"""What a scan reports is what happened (issue: truthful scans), through `scrapy crawl` against loopback
sites behind the SiteServer proxy, on SQLite and PostgreSQL: dead domains fail as unreachable in a few
requests, www-only sites are found, every job of a crawl finishes, and outcomes tell problems apart."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, select

from pipelines.models import Domain, Job, Page
from tests.api_fixtures import small_site
from tests.sites import Resp, Site


def jobs_of(db_url: str) -> list[Job]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(Job).order_by(Job.created_at)).all())
    finally:
        engine.dispose()


def rows(db_url: str, table) -> list:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(table)).all())
    finally:
        engine.dispose()


def value(x):
    return getattr(x, "value", x)


def test_dead_domain_behind_a_proxy_fails_unreachable_in_two_requests_per_origin(run_crawl, site_server, db_url):
    """The proxy answers 502 for a name that does not resolve: that is a dead domain, not an empty site."""
    host = f"dead-{uuid.uuid4().hex[:8]}.test"
    result = run_crawl(["-a", f"domain={host}"], db_url)
    [job] = jobs_of(db_url)
    assert value(job.status) == "failed" and value(job.outcome) == "unreachable", (job, result.summary())
    assert "502" in job.error and host in job.error and "\n" not in job.error
    # https origins die at CONNECT; each http origin costs a home page and a robots.txt, no retries, no probes
    assert dict(site_server.unknown.for_host(host)) == {"/": 1, "/robots.txt": 1}
    assert dict(site_server.unknown.for_host("www." + host)) == {"/": 1, "/robots.txt": 1}
    assert result.returncode == 1  # the only domain failed
    assert "ERROR" not in result.stderr, result.summary()


def test_www_only_site_is_found_from_the_apex_and_its_origin_recorded(run_crawl, site_server, db_url):
    site, urls = small_site("www.only-www.test", 15)
    site_server.sites["www.only-www.test"] = site
    result = run_crawl(["-a", "domain=only-www.test"], db_url)
    [job] = jobs_of(db_url)
    assert (value(job.status), value(job.outcome)) == ("complete", "ok"), (job, result.summary())
    assert job.origin == "http://www.only-www.test" and job.domain == "only-www.test"
    assert job.urls_found == len(urls) == 30
    assert [d.name for d in rows(db_url, Domain)] == ["only-www.test"]


def test_a_site_and_its_www_spelling_are_one_domain_row(run_crawl, site_server, db_url):
    site, _ = small_site("one-row.test", 5)
    site_server.sites["one-row.test"] = site
    run_crawl(["-a", "domain=one-row.test"], db_url)
    run_crawl(["-a", "domain=HTTP://WWW.One-Row.test/about"], db_url)
    assert [d.name for d in rows(db_url, Domain)] == ["one-row.test"]
    assert [(j.domain, value(j.status)) for j in jobs_of(db_url)] == [("one-row.test", "complete")] * 2


def test_the_same_site_three_times_in_one_crawl_finishes_three_jobs(run_crawl, site_server, db_url):
    site, urls = small_site("thrice.test", 10)
    site_server.sites["thrice.test"] = site
    ids = [str(uuid.uuid4()) for _ in range(3)]
    result = run_crawl(["-a", "domains=thrice.test,http://www.thrice.test/,http://thrice.test/x",
                        "-a", f"job_ids={','.join(ids)}"], db_url)
    got = {str(j.id): j for j in jobs_of(db_url)}
    assert set(got) == set(ids), result.summary()
    for job in got.values():
        assert (value(job.status), value(job.outcome), job.urls_found) == ("complete", "ok", len(urls)), job


def _site(pages: dict[str, Resp], host: str) -> Site:
    home = Resp(body=f"<html><head><title>{host}</title></head><body>hi</body></html>".encode(),
                headers={"Content-Type": "text/html"})
    return Site({"/": home, **pages})


def _urlset(host: str, n: int) -> bytes:
    body = "".join(f"<url><loc>http://{host}/p/{i}</loc></url>" for i in range(n))
    return f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</urlset>'.encode()


@pytest.mark.parametrize("case", ["warnings", "sitemaps_failed", "no_sitemap", "ok"])
def test_outcomes_tell_problems_apart(run_crawl, site_server, db_url, case):
    host = f"outcome-{case.replace('_', '-')}.test"
    robots = f"Sitemap: http://{host}/good.xml\nSitemap: http://{host}/broken.xml\n".encode()
    pages = {
        "warnings": {"/robots.txt": Resp(body=robots), "/good.xml": Resp(body=_urlset(host, 7)),
                     "/broken.xml": Resp(status=500)},
        "sitemaps_failed": {"/robots.txt": Resp(body=robots), "/good.xml": Resp(status=404),
                            "/broken.xml": Resp(status=500)},
        "no_sitemap": {"/robots.txt": Resp(body=b"User-agent: *\nDisallow:\n")},
        "ok": {"/robots.txt": Resp(body=f"Sitemap: http://{host}/good.xml\n".encode()),
               "/good.xml": Resp(body=_urlset(host, 7))},
    }[case]
    site_server.sites[host] = _site(pages, host)
    result = run_crawl(["-a", f"domain=http://{host}"], db_url)
    [job] = jobs_of(db_url)
    want_status = "failed" if case == "sitemaps_failed" else "complete"
    assert (value(job.status), value(job.outcome)) == (want_status, case), (job.error, result.summary())
    if case in ("warnings", "sitemaps_failed"):
        # the count and the first error are kept; the good sitemap's pages are stored all the same
        assert job.sitemaps_failed >= 1 and "HTTP 500" in job.error or "HTTP 404" in job.error
    else:
        assert job.error is None
    assert job.urls_found == (7 if case in ("warnings", "ok") else 0) == len(rows(db_url, Page))
    assert result.returncode == (1 if want_status == "failed" else 0)
