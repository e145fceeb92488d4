"""Job lifecycle of `scrapy crawl sitemap` under pressure: the per-domain URL cap, Ctrl-C in the middle
of a many-domain crawl, and the database going away for a moment while pages are being written."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, func, select

from pipelines.models import Job, Page, Sitemap
from tests.conftest import REPO_ROOT, crawl_env
from tests.site_catalogue import robots_txt, sitemap_index, urlset
from tests.sites import Resp, Site
from tests.tcp_proxy import FlakyTcpProxy


def host_url(host: str, path: str) -> str:
    return f"http://{host}{path}"


def paged_site(host: str, count: int, slow_seconds: float = 0.0) -> Site:
    """robots.txt -> index -> one urlset of `count` URLs; `slow_seconds` spreads the urlset's bytes."""
    body = urlset(*(host_url(host, f"/page/{i}") for i in range(count)))

    def slow() -> Iterator[bytes]:
        step = max(1, len(body) // 20)
        for start in range(0, len(body), step):
            time.sleep(slow_seconds / 20)
            yield body[start:start + step]

    return Site({
        "/robots.txt": Resp(body=robots_txt("User-agent: *", f"Sitemap: {host_url(host, '/index.xml')}")),
        "/index.xml": Resp(body=sitemap_index(host_url(host, "/pages.xml"))),
        "/pages.xml": Resp(body=slow if slow_seconds else body),
    })


def stored(db_url: str, job_id: str) -> tuple[Job, int]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            job = conn.execute(select(Job).where(Job.id == uuid.UUID(job_id))).one()
            pages = conn.execute(select(func.count()).select_from(Page).where(
                Page.job_id == uuid.UUID(job_id))).scalar_one()
        return job, pages
    finally:
        engine.dispose()


def test_max_pages_caps_the_urls_recorded(site_server, run_crawl, db_url):
    site_server.sites["capped.test"] = paged_site("capped.test", 120)
    job_id = str(uuid.uuid4())
    result = run_crawl(["-a", "domain=capped.test", "-a", f"job_id={job_id}", "-a", "max_pages=30"], db_url)
    assert result.returncode == 0, result.stderr[-2000:]
    job, pages = stored(db_url, job_id)
    assert job.status == "complete"
    assert pages == 30 and job.urls_found == 30
    assert "progress: 1/1 domains done, 2 sitemaps read, 30 URLs found" in result.stderr
    engine = create_engine(db_url)
    with engine.connect() as conn:
        error = conn.execute(select(Sitemap.error).where(Sitemap.url == "http://capped.test/pages.xml")).scalar_one()
    engine.dispose()
    assert "cap of 30" in error


def test_ctrl_c_ends_unfinished_domains_failed_and_keeps_finished_ones(site_server, sqlite_url):
    site_server.sites["quick.test"] = paged_site("quick.test", 10)
    site_server.sites["slow.test"] = paged_site("slow.test", 50, slow_seconds=30)
    quick, slow = str(uuid.uuid4()), str(uuid.uuid4())
    cmd = [sys.executable, "-m", "scrapy", "crawl", "sitemap", "-a", "domains=quick.test,slow.test",
           "-a", f"job_ids={quick},{slow}"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=crawl_env(site_server, sqlite_url, None),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the quick domain is done, the slow one running
            with contextlib.suppress(Exception):
                if stored(sqlite_url, quick)[0].status == "complete" and stored(sqlite_url, slow)[0].status == "running":
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the crawl never got to: quick domain complete, slow domain running")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode is not None
    quick_job, quick_pages = stored(sqlite_url, quick)
    slow_job, _ = stored(sqlite_url, slow)
    assert quick_job.status == "complete" and quick_pages == 10
    assert slow_job.status == "failed", err[-6000:]
    assert slow_job.error.startswith("interrupted") and "\n" not in slow_job.error
    assert slow_job.finished_at is not None


def test_database_outage_during_a_crawl_is_retried_and_nothing_is_lost(site_server, pg_url):
    site_server.sites["outage.test"] = paged_site("outage.test", 3000, slow_seconds=4)
    proxy, through_proxy = FlakyTcpProxy.to(pg_url)
    job_id = str(uuid.uuid4())
    cmd = [sys.executable, "-m", "scrapy", "crawl", "sitemap", "-a", "domain=outage.test", "-a", f"job_id={job_id}"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=crawl_env(site_server, through_proxy, None),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the job is running and its urlset is still downloading
            with contextlib.suppress(Exception):
                if stored(pg_url, job_id)[0].status == "running":
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the job never started")
        proxy.outage(2.5)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.close()
    assert proc.returncode == 0, err[-3000:]
    job, pages = stored(pg_url, job_id)
    assert job.status == "complete", (job.error, err[-3000:])
    assert pages == 3000 and job.urls_found == 3000
    assert "retry" in err  # the outage was noticed and retried, not silently skipped
