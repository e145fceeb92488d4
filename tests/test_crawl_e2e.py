"""End to end: `scrapy crawl sitemap` against the fixture sites (tests/site_catalogue.py), into SQLite and
PostgreSQL, checking what a user sees in the database and in `-O` exports.

The catalogue is crawled once per database in one many-domain crawl (`-a domains=...`); the per-site
tests then read that database. Hostile sites (gzip bombs, billion laughs, XXE) get their own crawl whose
peak memory is measured. Expectations and contract choices: see the top of tests/site_catalogue.py.
"""

from __future__ import annotations

import collections
import csv
import contextlib
import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from pipelines.db import make_engine
from pipelines.models import Base, Domain, Job, Page, Sitemap
from tests.api_fixtures import free_port, make_client, make_config
from tests.conftest import CrawlResult, fresh_database, run_scrapy_crawl
from tests.site_catalogue import CATALOGUE, RESCAN_HOST, Case, bulk_cases, rescan_versions, sites_of
from tests.sites import SiteServer

pytestmark = pytest.mark.timeout(900)

CATALOGUE_CASES = [c for c in CATALOGUE.values() if not c.hostile]
HOSTILE_CASES = [c for c in CATALOGUE.values() if c.hostile]
RSS_LIMIT_MB = 400
RETRY_BUDGET = 3  # no file should be fetched more often than 1 try + 2 retries in one crawl


def case_ids(case: Case) -> str:
    return case.host


# --------------------------------------------------------------------------------------------------
# Reading the database
# --------------------------------------------------------------------------------------------------
@dataclass
class DomainData:
    domain: Domain | None
    pages: list[Page]
    sitemaps: list[Sitemap]
    jobs: list[Job]


def read_domain(engine: Engine, host: str) -> DomainData:
    with Session(engine, expire_on_commit=False) as s:
        domain = s.scalar(select(Domain).where(Domain.name == host))
        jobs = list(s.scalars(select(Job).where(Job.domain == host).order_by(Job.created_at)))
        if domain is None:
            return DomainData(None, [], [], jobs)
        pages = list(s.scalars(select(Page).where(Page.domain_id == domain.id)))
        sitemaps = list(s.scalars(select(Sitemap).where(Sitemap.domain_id == domain.id)))
        s.expunge_all()
        return DomainData(domain, pages, sitemaps, jobs)


def value(v: Any) -> Any:
    return getattr(v, "value", v)  # enum members -> their string


def all_stored_text(engine: Engine) -> str:
    """Every row of every table, as text (to look for things that must never be stored)."""
    parts = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------
# Checks: each returns a list of human-readable problems (empty = as expected)
# --------------------------------------------------------------------------------------------------
def page_problems(case: Case, data: DomainData) -> list[str]:
    urls = [p.url for p in data.pages]
    got = set(urls)
    problems = []
    dupes = [u for u, n in collections.Counter(urls).items() if n > 1]
    if dupes:
        problems.append(f"duplicate page rows: {sorted(dupes)[:10]}")
    missing = case.expected_urls - got
    unexpected = got - case.expected_urls - case.optional_urls
    if missing:
        problems.append(f"{len(missing)} expected page URL(s) missing: {sorted(missing)[:15]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected page URL(s): {sorted(unexpected)[:15]}")
    sitemap_ids = {s.id for s in data.sitemaps}
    orphans = [p.url for p in data.pages if p.sitemap_id not in sitemap_ids]
    if orphans:
        problems.append(f"pages whose sitemap_id is not a sitemap of {case.host}: {sorted(orphans)[:5]}")
    return problems


def sitemap_problems(case: Case, data: DomainData) -> list[str]:
    rows: dict[str, list[Sitemap]] = collections.defaultdict(list)
    for row in data.sitemaps:
        rows[row.url].append(row)
    problems = [f"duplicate sitemap rows for {u}" for u, r in rows.items() if len(r) > 1]
    problems += [f"{row.url}: no sitemap recognised but no error given" for row in data.sitemaps
                 if row.type is None and not row.error]
    missing = set(case.sitemaps) - set(rows)
    unexpected = set(rows) - set(case.sitemaps) - case.optional_sitemaps
    if missing:
        problems.append(f"sitemap rows missing: {sorted(missing)}")
    if unexpected:
        problems.append(f"unexpected sitemap rows: {sorted(unexpected)}")
    for url, exp in case.sitemaps.items():
        if url not in rows:
            continue
        row = rows[url][0]
        checks = {
            "type": (exp.type, value(row.type)),
            "discovered_by": (exp.discovered_by, value(row.discovered_by)),
            "error set": (exp.error, bool(row.error)),
            "gzipped": (exp.gzipped, row.gzipped),
            "url_count": (exp.url_count, row.url_count),
            "parent_url": (exp.parent_url, row.parent_url),
        }
        for name, (want, got) in checks.items():
            if want is not None and want != got:
                problems.append(f"{url}: {name} is {got!r}, expected {want!r}"
                                + (f" (error: {row.error!r})" if name != "error set" and row.error else ""))
    return problems


def _clean(item: Any) -> Any:
    if isinstance(item, dict):
        return {k: v for k, v in item.items() if v not in (None, "")}
    return item


def _norm_ext(v: Any) -> Any:
    """Extensions compare without None/empty keys; an empty list or dict is the same as None."""
    if not v:
        return None
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return _clean(v)


def attr_problems(case: Case, data: DomainData) -> list[str]:
    pages = {p.url: p for p in data.pages}
    problems = []
    for url, attrs in case.attrs.items():
        page = pages.get(url)
        if page is None:
            problems.append(f"{url}: no page row")
            continue
        for key, want in attrs.items():
            got = getattr(page, key)
            if key == "priority":
                same = (got is None and want is None) or (got is not None and want is not None
                                                          and math.isclose(got, want))
            elif key == "lastmod":
                same = got == want and (got is None or got.tzinfo is not None)
            elif key in ("images", "videos", "alternates", "news"):
                got, want = _norm_ext(got), _norm_ext(want)
                same = got == want
            else:
                same = got == want
            if not same:
                problems.append(f"{url}: {key} is {got!r}, expected {want!r}")
    return problems


def job_problems(case: Case, data: DomainData, *, first_scan: bool = True) -> list[str]:
    if len(data.jobs) != 1:
        return [f"{len(data.jobs)} job rows for {case.host}, expected 1"]
    job = data.jobs[0]
    problems = []
    if value(job.status) != case.status:
        problems.append(f"job status {value(job.status)!r} (error {job.error!r}), expected {case.status!r}")
    if job.finished_at is None:
        problems.append("job.finished_at not set")
    if case.status == "failed":
        if not job.error or "\n" in job.error.strip():
            problems.append(f"failed job needs a one-line error, got {job.error!r}")
        return problems
    stats = {
        "urls_found": (job.urls_found, len(data.pages)),
        "sitemaps_found": (job.sitemaps_found, sum(1 for s in data.sitemaps if s.type is not None)),
        # a redirect to a sitemap read elsewhere in the scan is recorded, but is no failure
        "sitemaps_failed": (job.sitemaps_failed, sum(1 for s in data.sitemaps if s.type is None
                                                     and "already read in this scan" not in (s.error or ""))),
    }
    if first_scan:
        stats["new_urls"] = (job.new_urls, len(data.pages))
        stats["removed_urls"] = (job.removed_urls, 0)
    problems += [f"job.{k} = {got}, expected {want}" for k, (got, want) in stats.items() if got != want]
    return problems


def domain_problems(case: Case, data: DomainData) -> list[str]:
    if data.domain is None:
        return [f"no domains row named {case.host!r}"]
    d = data.domain
    want = {"title": case.title, "description": case.description, "language": case.language}
    return [f"domain.{k} is {getattr(d, k)!r}, expected {v!r}" for k, v in want.items()
            if v is not None and getattr(d, k) != v]


def fetch_problems(case: Case, requests: collections.Counter) -> list[str]:
    counts = {path: n for (host, path), n in requests.items() if host == case.host}
    problems = [f"{p} fetched {counts[p]} times, expected at most once" for p in sorted(case.fetched_once)
                if counts.get(p, 0) > 1]
    problems += [f"{p} fetched {n} times" for p, n in sorted(counts.items()) if n > RETRY_BUDGET]
    return problems


def assert_no_problems(problems: list[str], result: CrawlResult | None = None) -> None:
    if problems:
        detail = "\n  ".join(problems)
        pytest.fail(f"{len(problems)} problem(s):\n  {detail}" + (f"\n{result.summary(15)}" if result else ""),
                    pytrace=False)


def assert_case(case: Case, engine: Engine, result: CrawlResult | None = None) -> None:
    data = read_domain(engine, case.host)
    problems = job_problems(case, data) + page_problems(case, data)
    if case.status == "complete":
        problems += sitemap_problems(case, data) + attr_problems(case, data)
    assert_no_problems(problems, result)


# --------------------------------------------------------------------------------------------------
# Crawls
# --------------------------------------------------------------------------------------------------
@dataclass
class Crawl:
    backend: str
    db_url: str
    engine: Engine
    result: CrawlResult
    requests: collections.Counter  # (host, path) -> times fetched during this crawl


@contextlib.contextmanager
def crawl_into_fresh_db(server: SiteServer, backend: str, tmp_dir: Path, args: list[str],
                        timeout: float = 300) -> Iterator[Crawl]:
    with fresh_database(backend, tmp_dir) as url:
        before = server.requests.snapshot()
        result = run_scrapy_crawl(server, args, url, timeout=timeout)
        engine = make_engine(url)
        try:
            yield Crawl(backend, url, engine, result, server.requests.snapshot() - before)
        finally:
            engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def catalogue_crawl(request, site_server, tmp_path_factory) -> Iterator[Crawl]:
    """All non-hostile catalogue sites in one many-domain crawl (unreachable.test among them)."""
    hosts = ",".join(c.host for c in CATALOGUE_CASES)
    with crawl_into_fresh_db(site_server, request.param, tmp_path_factory.mktemp("catalogue"),
                             ["-a", f"domains={hosts}"]) as crawl:
        yield crawl


@pytest.mark.parametrize("case", CATALOGUE_CASES, ids=case_ids)
def test_pages_are_exactly_the_sites_urls(catalogue_crawl, case):
    assert_no_problems(page_problems(case, read_domain(catalogue_crawl.engine, case.host)), catalogue_crawl.result)


@pytest.mark.parametrize("case", [c for c in CATALOGUE_CASES if c.status == "complete"], ids=case_ids)
def test_sitemap_rows(catalogue_crawl, case):
    assert_no_problems(sitemap_problems(case, read_domain(catalogue_crawl.engine, case.host)), catalogue_crawl.result)


@pytest.mark.parametrize("case", [c for c in CATALOGUE_CASES if c.attrs], ids=case_ids)
def test_page_attributes(catalogue_crawl, case):
    assert_no_problems(attr_problems(case, read_domain(catalogue_crawl.engine, case.host)), catalogue_crawl.result)


@pytest.mark.parametrize("case", CATALOGUE_CASES, ids=case_ids)
def test_job_row_and_stats(catalogue_crawl, case):
    assert_no_problems(job_problems(case, read_domain(catalogue_crawl.engine, case.host)), catalogue_crawl.result)


@pytest.mark.parametrize("case", [c for c in CATALOGUE_CASES if c.status == "complete"], ids=case_ids)
def test_domain_row_from_home_page(catalogue_crawl, case):
    assert_no_problems(domain_problems(case, read_domain(catalogue_crawl.engine, case.host)), catalogue_crawl.result)


@pytest.mark.parametrize("case", [c for c in CATALOGUE_CASES if c.status == "complete"], ids=case_ids)
def test_each_sitemap_fetched_once(catalogue_crawl, case):
    assert_no_problems(fetch_problems(case, catalogue_crawl.requests))


def test_many_domain_crawl_finishes_every_job(catalogue_crawl):
    """One unreachable domain fails; every other domain of the same crawl completes."""
    with Session(catalogue_crawl.engine) as s:
        statuses = {job.domain: value(job.status) for job in s.scalars(select(Job))}
    want = {c.host: c.status for c in CATALOGUE_CASES}
    assert statuses == want, catalogue_crawl.result.summary()


def test_catalogue_crawl_logs_no_tracebacks(catalogue_crawl):
    log = catalogue_crawl.result.stderr
    assert "Traceback" not in log, log[log.index("Traceback") - 2000: log.index("Traceback") + 3000]


# --------------------------------------------------------------------------------------------------
# Single domain, job id, domains_file
# --------------------------------------------------------------------------------------------------
def test_single_domain_with_job_id(run_crawl, db_url):
    case = CATALOGUE["robots-quirks.test"]
    job_id = uuid.uuid4()
    result = run_crawl(["-a", f"domain={case.host}", "-a", f"job_id={job_id}"], db_url)
    assert result.returncode == 0, result.summary()
    engine = make_engine(db_url)
    try:
        assert_case(case, engine, result)
        assert read_domain(engine, case.host).jobs[0].id == job_id
    finally:
        engine.dispose()


def test_single_unreachable_domain_fails_with_one_line_reason(run_crawl, sqlite_url):
    case = CATALOGUE["unreachable.test"]
    result = run_crawl(["-a", f"domain={case.host}"], sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        assert_case(case, engine, result)
    finally:
        engine.dispose()


def test_domains_file_of_small_generated_domains(site_server, run_crawl, db_url, tmp_path):
    cases = bulk_cases(25, prefix="batchfile")
    site_server.sites.update(sites_of(cases))
    domains_file = tmp_path / "domains.txt"
    domains_file.write_text("\n".join(c.host for c in cases) + "\n")
    result = run_crawl(["-a", f"domains_file={domains_file}"], db_url, timeout=300)
    engine = make_engine(db_url)
    try:
        problems = []
        for case in cases:
            data = read_domain(engine, case.host)
            problems += [f"{case.host}: {p}" for p in job_problems(case, data) + page_problems(case, data)
                         + sitemap_problems(case, data)]
        assert_no_problems(problems, result)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------
# Re-scans
# --------------------------------------------------------------------------------------------------
def test_rescans_keep_each_scan_as_it_was(site_server, run_crawl, db_url):
    """Three scans of a site that changes after the first: each job keeps exactly the URLs and sitemaps
    it saw, its URL list (every API format) has `urls_found` rows, new/removed compare it with the
    previous complete scan; a fourth scan with SCRAPERSKY_KEEP_SCANS=2 deletes the two oldest snapshots."""
    v1, v2 = rescan_versions()
    jobs = [uuid.uuid4() for _ in range(4)]
    u = v1.base
    only_v1 = {u + "/a1", u + "/b1", u + "/b2"}
    both = {u + "/a2", u + "/a3"}
    only_v2 = {u + "/a4", u + "/c1", u + "/c2"}
    engine = make_engine(db_url)
    try:
        for job_id, version in zip(jobs[:3], (v1, v2, v2)):
            site_server.sites[RESCAN_HOST] = version.site
            result = run_crawl(["-a", f"domain={RESCAN_HOST}", "-a", f"job_id={job_id}"], db_url)
            assert result.returncode == 0, result.summary()
        data = read_domain(engine, RESCAN_HOST)
        j1, j2, j3, j4 = jobs
        saw = {j: {p.url for p in data.pages if p.job_id == j} for j in jobs}
        assert saw == {j1: only_v1 | both, j2: both | only_v2, j3: both | only_v2, j4: set()}
        stats = {job.id: (value(job.status), job.urls_found, job.new_urls, job.removed_urls) for job in data.jobs}
        assert stats == {j1: ("complete", 5, 5, 0), j2: ("complete", 5, 3, 3), j3: ("complete", 5, 0, 0)}
        maps = {j: {s.url.removeprefix(u) for s in data.sitemaps if s.job_id == j} for j in jobs[:3]}
        assert maps == {j1: {"/index.xml", "/a.xml", "/b.xml"}, j2: {"/index.xml", "/a.xml", "/c.xml"},
                        j3: {"/index.xml", "/a.xml", "/c.xml"}}

        _, client = make_client(make_config(db_url, f"http://127.0.0.1:{free_port()}"), admin=True)  # CLI jobs
        for job_id in jobs[:3]:
            status = client.simulate_get(f"/api/v1/status/{job_id}").json
            listed = api_url_lists(client, job_id)
            assert all(len(urls) == status["result"]["urls_found"] for urls in listed.values()), listed
            assert all(set(urls) == saw[job_id] for urls in listed.values()), listed
        sitemaps = client.simulate_get(f"/api/v1/jobs/{j1}/sitemaps").json["sitemaps"]
        assert {s["url"].removeprefix(u) for s in sitemaps} == {"/index.xml", "/a.xml", "/b.xml"}

        def change(job_id, kind):
            return {x["url"] for x in client.simulate_get(f"/api/v1/jobs/{job_id}/urls",
                                                          params={"change": kind}).json["urls"]}

        assert (change(j2, "new"), change(j2, "removed")) == (only_v2, only_v1)
        assert (change(j3, "new"), change(j3, "removed")) == (set(), set())
        diff = client.simulate_get(f"/api/v1/domains/{RESCAN_HOST}/changes",
                                   params={"from": str(j1), "to": str(j3)}).json
        assert ({x["url"] for x in diff["new"]}, {x["url"] for x in diff["removed"]}) == (only_v2, only_v1)
        assert (diff["new_count"], diff["removed_count"]) == (3, 3)

        # retention: the fourth scan (the site changed back) keeps only the 2 newest complete scans
        site_server.sites[RESCAN_HOST] = v1.site
        result = run_crawl(["-a", f"domain={RESCAN_HOST}", "-a", f"job_id={j4}"], db_url,
                           env_extra={"SCRAPERSKY_KEEP_SCANS": "2"})
        assert result.returncode == 0, result.summary()
        data = read_domain(engine, RESCAN_HOST)
        assert {p.job_id for p in data.pages} == {j3, j4} and {s.job_id for s in data.sitemaps} == {j3, j4}
        stats = {job.id: (job.urls_found, job.new_urls, job.removed_urls, job.pruned_at is not None)
                 for job in data.jobs}
        assert stats == {j1: (5, 5, 0, True), j2: (5, 3, 3, True), j3: (5, 0, 0, False), j4: (5, 3, 3, False)}
        assert client.simulate_get(f"/api/v1/jobs/{j1}/urls").status_code == 410
        assert client.simulate_get(f"/api/v1/jobs/{j2}/sitemaps").status_code == 410
        assert (change(j4, "new"), change(j4, "removed")) == (only_v1, only_v2)
    finally:
        engine.dispose()
        site_server.sites.pop(RESCAN_HOST, None)


def api_url_lists(client, job_id) -> dict[str, list[str]]:
    """The job's URL list in each format of GET /api/v1/jobs/{id}/urls (json paged by 2)."""
    lists: dict[str, list[str]] = {"json": []}
    cursor = None
    while True:
        body = client.simulate_get(f"/api/v1/jobs/{job_id}/urls",
                                   params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json
        lists["json"] += [x["url"] for x in body["urls"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    text = client.simulate_get(f"/api/v1/jobs/{job_id}/urls", params={"format": "csv"}).text
    lists["csv"] = [row["url"] for row in csv.DictReader(text.splitlines())]
    text = client.simulate_get(f"/api/v1/jobs/{job_id}/urls", params={"format": "jsonl"}).text
    lists["jsonl"] = [json.loads(line)["url"] for line in text.splitlines() if line.strip()]
    return lists


# --------------------------------------------------------------------------------------------------
# Hostile input
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hostile_crawl(site_server, tmp_path_factory) -> Iterator[Crawl]:
    hosts = ",".join(c.host for c in HOSTILE_CASES)
    with crawl_into_fresh_db(site_server, "sqlite", tmp_path_factory.mktemp("hostile"),
                             ["-a", f"domains={hosts}"]) as crawl:
        yield crawl


def test_hostile_input_keeps_memory_bounded(hostile_crawl):
    assert hostile_crawl.result.peak_rss_mb < RSS_LIMIT_MB, hostile_crawl.result.summary()


def test_hostile_input_stores_no_file_contents_or_expansions(hostile_crawl):
    stored = all_stored_text(hostile_crawl.engine)
    assert "http://gzip-bomb.test/n1" in stored, "the crawl stored nothing"
    leaked = [t for c in HOSTILE_CASES for t in c.forbidden_text if t in stored]
    assert not leaked, f"stored data contains {leaked}"


@pytest.mark.parametrize("case", HOSTILE_CASES, ids=case_ids)
def test_hostile_sites_results(hostile_crawl, case):
    assert_case(case, hostile_crawl.engine, hostile_crawl.result)
