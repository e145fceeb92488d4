"""Database outages lose nothing (issue 7, fault test 3).

PostgreSQL sits behind a TCP proxy (tests.tcp_proxy) that cuts every connection and refuses new ones
for a while. The crawl's writer waits through the outage with the engine paused, then carries on; when
the outage outlasts SCRAPERSKY_DB_OUTAGE_SECONDS the crawl stops and its unfinished jobs end failed
with outcome `database` and the reason. The API answers 503 JSON meanwhile and recovers by itself.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import ProgrammingError

from pipelines.models import Job, Page
from tests.api_fixtures import *  # noqa: F401,F403
from tests.api_fixtures import ScrapydProcess, make_client, make_config, small_site, wait_until
from tests.conftest import CrawlResult, run_scrapy_crawl
from tests.sites import SiteServer
from tests.tcp_proxy import FlakyTcpProxy

API = "/api/v1"
pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("faults")]  # one worker runs them in turn


# ------------------------------------------------------------------------------------------ helpers
def add_sites(server: SiteServer, prefix: str, count: int) -> dict[str, set[str]]:
    """`count` loopback domains of 100 URLs each (robots.txt -> index -> two sitemaps, one gzipped)."""
    expected = {}
    for i in range(count):
        host = f"{prefix}{i:03}.test"
        server.sites[host], expected[host] = small_site(host, 50)
    return expected


class Database:
    """Reads the test database directly (not through the proxy)."""

    def __init__(self, url: str):
        self.engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))

    def jobs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(Job.__table__)).mappings()]

    def count(self, status: str) -> int:
        """Jobs with `status` (0 while the crawl has not created the schema yet)."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(select(func.count()).where(Job.status == status)).scalar_one()
        except ProgrammingError:
            return 0

    def page_urls(self) -> dict[uuid.UUID, list[str]]:
        """Page URLs by the scan that saw them."""
        out: dict[uuid.UUID, list[str]] = {}
        with self.engine.connect() as conn:
            for job_id, url in conn.execute(select(Page.job_id, Page.url)):
                out.setdefault(job_id, []).append(url)
        return out

    def page_rows(self) -> tuple[int, int]:
        """(rows, distinct (domain, URL) pairs) in pages."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(Page)).scalar_one()
            distinct = conn.execute(select(func.count()).select_from(
                select(Page.domain_id, Page.url).distinct().subquery())).scalar_one()
        return rows, distinct

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def db(api_pg_url) -> Iterator[Database]:
    database = Database(api_pg_url)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def proxy(api_pg_url) -> Iterator[tuple[FlakyTcpProxy, str]]:
    proxy, through_proxy = FlakyTcpProxy.to(api_pg_url)
    try:
        yield proxy, through_proxy
    finally:
        proxy.close()


def assert_complete_with_exact_urls(jobs: list[dict[str, Any]], stored: dict[uuid.UUID, list[str]],
                                    expected: dict[str, set[str]]) -> None:
    for job in jobs:
        assert job["status"] == "complete", job
        urls = stored.get(job["id"], [])
        assert len(urls) == len(set(urls)) and set(urls) == expected[job["domain"]], job["domain"]
        assert job["urls_found"] == len(expected[job["domain"]]), job


class Background:
    """`scrapy crawl sitemap` in a thread (the test triggers the outage meanwhile)."""

    def __init__(self, server: SiteServer, args: list[str], db_url: str, timeout: float = 300):
        self.result: CrawlResult | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = run_scrapy_crawl(server, args, db_url, timeout=timeout)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def wait(self) -> CrawlResult:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def crawl_args(expected: dict[str, set[str]], job_ids: dict[str, str], *settings: str) -> list[str]:
    hosts = sorted(expected)
    args = ["-a", "domains=" + ",".join(hosts), "-a", "job_ids=" + ",".join(job_ids[h] for h in hosts)]
    for setting in settings:
        args += ["-s", setting]
    return args


def start_outage_when(predicate: Callable[[], bool], proxy: FlakyTcpProxy, seconds: float, what: str) -> None:
    wait_until(predicate, 180, interval=0.05, what=what)
    proxy.outage(seconds)


# ------------------------------------------------------------------------------------------ fault test 3
def test_fault_3_database_unreachable_for_60s_mid_batch_loses_nothing(tmp_path, api_pg_url, proxy, db):
    """200 domains x 100 URLs through the API and a real scrapyd; PostgreSQL unreachable for 60 s
    mid-batch (for the crawls and the API alike): 200/200 complete, 20,000 pages, none twice."""
    proxy, through_proxy = proxy
    sites = SiteServer({}).start()
    scrapyd = ScrapydProcess(tmp_path / "scrapyd", {**sites.proxy_env(), "DATABASE_URL": through_proxy}).start()
    app = None
    try:
        expected = add_sites(sites, "fault3-", 200)
        app, c = make_client(make_config(through_proxy, scrapyd.url, crawl_max_domains=25, crawl_min_domains=25,
                                         max_crawls_per_node=4, dispatch_interval=0.2, reconcile_grace=30.0))
        r = c.simulate_post(f"{API}/batch", json={"domains": sorted(expected)})
        assert r.status_code == 202 and r.json["job_count"] == 200, r.text
        status_url = r.json["status_url"]
        app.scrapersky_dispatcher.start()

        start_outage_when(lambda: 20 <= db.count("complete") < 120, proxy, 60,
                          "20 complete jobs while most of the batch is still to do")
        outage_began = time.monotonic()
        down = c.simulate_get(status_url)  # the API during the outage: 503 JSON, not a hang or a 500
        assert down.status_code == 503 and down.json["title"] and down.json["description"], down.text
        completed_before = db.count("complete")
        wait_until(lambda: not proxy.down, 90, what="the outage to end")

        wait_until(lambda: db.count("complete") + db.count("failed") == 200, 600, interval=1,
                   what="every job to end")
        assert time.monotonic() - outage_began >= 60
        assert completed_before < 200
        jobs = db.jobs()
        assert len(jobs) == 200
        assert_complete_with_exact_urls(jobs, db.page_urls(), expected)
        assert all(j["dispatch_attempts"] == 1 and j["finished_at"] is not None for j in jobs)  # each done once
        assert db.page_rows() == (20_000, 20_000)
        final = wait_until(lambda: (s := c.simulate_get(status_url)).status_code == 200
                           and s.json["status"] == "complete" and s.json, 60, what="the batch to be complete")
        assert final["completed_jobs"] == 200 and final["urls_found"] == 20_000
        logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "scrapyd" / "logs").rglob("*.log"))
        assert "the database is back after" in logs  # crawls were cut mid-write and waited it out
        assert "giving up" not in logs
    finally:
        if app is not None:
            app.scrapersky_dispatcher.stop(5)
        scrapyd.stop()
        sites.stop()


# ------------------------------------------------------------------------------------------ scrapy crawl
def test_crawl_waits_through_a_20s_outage_and_stores_every_url(site_server, proxy, db):
    proxy, through_proxy = proxy
    expected = add_sites(site_server, "wait20-", 200)
    job_ids = {h: str(uuid.uuid4()) for h in expected}
    crawl = Background(site_server, crawl_args(expected, job_ids), through_proxy)
    start_outage_when(lambda: db.count("complete") >= 10 or not crawl.running, proxy, 20,
                      "10 complete jobs")
    assert crawl.running
    result = crawl.wait()
    print(f"\n20 s outage, 200 domains x 100 URLs: {result.summary(3)}")
    assert result.returncode == 0, result.summary()
    jobs = db.jobs()
    assert len(jobs) == 200
    assert_complete_with_exact_urls(jobs, db.page_urls(), expected)
    assert db.page_rows() == (20_000, 20_000)
    assert "the database is back after" in result.stderr and "retry" in result.stderr


def test_outage_longer_than_the_limit_fails_the_jobs_as_database_and_exits_1(site_server, proxy, db):
    """SCRAPERSKY_DB_OUTAGE_SECONDS=5 and an 8 s outage: the crawl stops, and once the database is back
    (within as long again) every job it did not store is failed with outcome `database` and a reason."""
    proxy, through_proxy = proxy
    expected = add_sites(site_server, "limit5-", 200)
    job_ids = {h: str(uuid.uuid4()) for h in expected}
    crawl = Background(site_server, crawl_args(expected, job_ids, "SCRAPERSKY_DB_OUTAGE_SECONDS=5"), through_proxy)
    start_outage_when(lambda: db.count("complete") >= 1 or not crawl.running, proxy, 8, "a complete job")
    assert crawl.running
    result = crawl.wait()
    assert result.returncode == 1, result.summary()
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "database was unreachable" in errors[0], result.summary()
    jobs = db.jobs()
    assert len(jobs) == 200
    complete = [j for j in jobs if j["status"] == "complete"]
    failed = [j for j in jobs if j["status"] == "failed"]
    assert len(complete) + len(failed) == 200, {j["status"] for j in jobs}  # none left running
    assert complete and failed
    assert_complete_with_exact_urls(complete, db.page_urls(), expected)  # a complete job is never short
    for job in failed:
        assert job["outcome"] == "database", job
        assert job["error"].startswith("database:") and "unreachable" in job["error"] and "\n" not in job["error"]
        assert job["finished_at"] is not None


def test_database_down_beyond_both_waits_leaves_jobs_running_for_the_reconciler(site_server, proxy, db):
    """When even the jobs' failure cannot be recorded, nothing is marked complete or emptied: the jobs the
    crawl did not store stay `running` (the API's reconciler requeues them) and the crawl exits 1."""
    proxy, through_proxy = proxy
    expected = add_sites(site_server, "gone-", 100)
    job_ids = {h: str(uuid.uuid4()) for h in expected}
    crawl = Background(site_server, crawl_args(expected, job_ids, "SCRAPERSKY_DB_OUTAGE_SECONDS=2"), through_proxy)
    start_outage_when(lambda: db.count("complete") >= 1 or not crawl.running, proxy, 600, "a complete job")
    assert crawl.running
    try:
        result = crawl.wait()
    finally:
        proxy.restore()
    assert result.returncode == 1, result.summary()
    assert "they stay running until the API's reconciler" in result.stderr
    jobs = db.jobs()
    assert {j["status"] for j in jobs} == {"complete", "running"}, {j["status"] for j in jobs}
    assert_complete_with_exact_urls([j for j in jobs if j["status"] == "complete"], db.page_urls(), expected)


# ------------------------------------------------------------------------------------------ API
def test_api_answers_503_json_during_an_outage_and_recovers(api_pg_url, proxy):
    proxy, through_proxy = proxy
    _, c = make_client(make_config(through_proxy, "http://127.0.0.1:9"))
    job = c.simulate_post(f"{API}/scrapersky", json={"base_url": "before.test"})
    assert job.status_code == 202, job.text
    status_url = job.json["status_url"]

    proxy.outage(3600)
    for method, path, body in (("GET", status_url, None), ("POST", f"{API}/batch", {"domains": ["a.test"]}),
                               ("POST", f"{API}/scrapersky", {"base_url": "b.test"}),
                               ("GET", f"{API}/jobs/{job.json['job_id']}/urls", None),
                               ("GET", f"{API}/domains/before.test", None), ("GET", "/health/database", None),
                               ("GET", "/health", None)):
        r = c.simulate_request(method, path, json=body)
        assert r.status_code == 503, (path, r.text)
        assert r.headers["content-type"].startswith("application/json")
        assert isinstance(r.json["title"], str) and r.json["title"], (path, r.json)
        assert isinstance(r.json["description"], str) and r.json["description"], (path, r.json)
        assert "Traceback" not in r.text

    proxy.restore()
    assert c.simulate_get(status_url).status_code == 200
    assert c.simulate_get("/health/database").status_code == 200
    r = c.simulate_post(f"{API}/batch", json={"domains": ["a.test"]})
    assert r.status_code == 202, r.text


# ------------------------------------------------------------------------------------------ re-runs
def test_a_group_written_twice_is_stored_once(db_url):
    """A group whose commit was lost in transit is written again: every write is an upsert, so the
    second run stores no row twice and leaves the finished job as the first run left it."""
    from pipelines.persist import DatabasePipeline, _Close
    from scrapersky_crawler.items import JobFinished, JobStarted, PageBatch, SitemapFile

    now = dt.datetime.now(dt.timezone.utc)
    job = str(uuid.uuid4())
    sitemap = "http://twice.test/sitemap.xml"
    pages = [{"url": f"http://twice.test/p/{i}", "lastmod": None, "changefreq": None, "priority": None,
              "alternates": None, "images": None, "news": None, "videos": None} for i in range(120)]
    items = [JobStarted(job, "twice.test", None, {}, now),
             SitemapFile(job, "twice.test", sitemap, "robots", type="urlset", http_status=200, url_count=120,
                         fetched_at=now),
             PageBatch(job, "twice.test", sitemap, pages[:70]), PageBatch(job, "twice.test", sitemap, pages[70:]),
             JobFinished(job, "twice.test", "complete", None, now, {"sitemaps_found": 1, "sitemaps_failed": 0})]
    pipeline = DatabasePipeline(db_url)
    pipeline.open_spider()
    try:
        work = [(pipeline._handlers[type(item).__name__], item) for item in items]
        pipeline._store(work)
        pipeline._store(work)  # the re-run
        with pipeline.engine.connect() as conn:
            row = conn.execute(select(Job.status, Job.urls_found, Job.new_urls).where(Job.id == uuid.UUID(job))).one()
            urls = conn.execute(select(Page.url)).scalars().all()
    finally:
        pipeline.queue.put(_Close([]))
        pipeline.writer.join(30)
    assert tuple(row) == ("complete", 120, 120)
    assert sorted(urls) == sorted(p["url"] for p in pages)
    assert not pipeline.job_errors


def test_a_crawl_scrapyd_starts_during_an_outage_waits_for_the_database(site_server, proxy, db):
    """scrapyd (SCRAPY_JOB in the environment) may start a crawl the API scheduled just before the
    outage: it waits for the database instead of failing its jobs. By hand it would fail at once."""
    proxy, through_proxy = proxy
    expected = add_sites(site_server, "late-start-", 3)
    job_ids = {h: str(uuid.uuid4()) for h in expected}
    proxy.outage(8)
    result = run_scrapy_crawl(site_server, crawl_args(expected, job_ids), through_proxy,
                              env_extra={"SCRAPY_JOB": "scheduled-by-scrapyd"}, timeout=300)
    assert result.returncode == 0, result.summary()
    assert "opening the database: the database is back after" in result.stderr
    jobs = db.jobs()
    assert len(jobs) == 3
    assert_complete_with_exact_urls(jobs, db.page_urls(), expected)
