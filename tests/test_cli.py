"""`scrapy crawl sitemap` as a user meets it: bad input refused with one line on stderr and a non-zero
exit before any crawling or writing happens; at the end one line per domain on stdout that says what
the database says, exit status 1 when a domain did not complete; `-O` feeds in every format with one
row per URL in the API's columns."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import marshal
import pickle
import re
import sqlite3
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipelines.db import make_engine
from pipelines.models import Job
from tests.api_fixtures import make_client, make_config
from tests.site_catalogue import CATALOGUE


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(("args", "message"), [
    ([], "give a domain"),
    (["-a", "domain=ftp://example.test"], "unsupported scheme 'ftp'"),
    (["-a", "domain=https:/example.test"], "malformed URL"),
    (["-a", "domain=a..b.test"], "empty label"),
    (["-a", "domains=a.test,b.test", "-a", "job_ids=1b4e28ba-2fa1-11d2-883f-0016d3cca427"], "1 job id(s) for 2 domain(s)"),
    (["-a", "domain=a.test", "-a", "job_id=not-a-uuid"], "job ids must be UUIDs"),
    (["-a", "domain=a.test", "-a", "max_pages=lots"], "max_pages must be a whole number"),
    (["-a", "domain=a.test", "-a", "max_pages=0"], "max_pages must be at least 1"),
    (["-a", "domains_file=/nonexistent/domains.txt"], "cannot read domains_file"),
])
def test_bad_arguments_give_one_line_and_exit_2(run_crawl, sqlite_url, args, message):
    result = run_crawl(args, sqlite_url, timeout=60)
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and message in lines[0], result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    with pytest.raises(sqlite3.OperationalError):  # nothing was written, not even a schema
        sqlite3.connect(sqlite_url.removeprefix("sqlite:///")).execute("SELECT count(*) FROM jobs").fetchone()


def test_unreachable_database_gives_one_line_and_exit_1(run_crawl):
    result = run_crawl(["-a", "domain=a.test"], "postgresql://scrapersky:secret@127.0.0.1:1/nowhere", timeout=60)
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "cannot open the database" in lines[0] and "Connection refused" in lines[0]
    assert "secret" not in result.stderr  # the password is not printed
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------------
# What the command says at the end: one line per domain, and its exit status
# --------------------------------------------------------------------------------------------------
SUMMARY_LINE = re.compile(
    r"^(?P<domain>\S+)\s+job (?P<job_id>[0-9a-f-]{36})\s+(?P<verdict>\S+)\s+(?P<urls>[\d,]+) URLs?"
    r"\s+(?P<found>[\d,]+) sitemaps? read(?:, (?P<failed>[\d,]+) failed)?(?:\s+\((?P<error>.+)\))?$")
TOTALS_LINE = re.compile(r"^(?P<n>[\d,]+) domains: (?P<statuses>[^;]+); (?P<urls>[\d,]+) URLs?; ")


def summary(stdout: str) -> dict[str, dict[str, str]]:
    """domain -> the fields of its summary line (each domain once)."""
    lines = {}
    for line in stdout.splitlines():
        m = SUMMARY_LINE.match(line)
        if m:
            assert m["domain"] not in lines, f"two lines for {m['domain']}:\n{stdout}"
            lines[m["domain"]] = m.groupdict()
    return lines


def jobs_in(db_url: str) -> dict[str, Job]:
    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            return {job.domain: job for job in session.scalars(select(Job))}
    finally:
        engine.dispose()


def value(v: Any) -> Any:
    return getattr(v, "value", v)


def assert_lines_match_database(lines: dict[str, dict[str, str]], jobs: dict[str, Job]) -> None:
    assert set(lines) == set(jobs)
    for domain, line in lines.items():
        job = jobs[domain]
        verdict = value(job.status) + (f"/{value(job.outcome)}" if job.outcome else "")
        assert line["job_id"] == str(job.id), domain
        assert line["verdict"] == verdict, domain
        assert int(line["urls"].replace(",", "")) == job.urls_found, domain
        assert int(line["found"].replace(",", "")) == job.sitemaps_found, domain
        assert int((line["failed"] or "0").replace(",", "")) == job.sitemaps_failed, domain
        assert (line["error"] or None) == (" ".join(job.error.split()) if job.error else None), domain


def test_the_only_domain_failing_exits_1_and_says_why(run_crawl, sqlite_url):
    result = run_crawl(["-a", "domain=unreachable.test"], sqlite_url)
    assert result.returncode == 1, result.summary()
    lines = summary(result.stdout)
    assert_lines_match_database(lines, jobs_in(sqlite_url))
    line = lines["unreachable.test"]
    assert line["verdict"].startswith("failed") and "unreachable.test" in line["error"], result.stdout
    assert result.stdout.count("\n") == 1, "one domain: one line, no totals"


def test_one_line_per_domain_with_job_id_outcome_and_counts_even_at_log_level_warning(run_crawl, pg_url):
    domains = ["extensions.test", "duplicates.test", "no-sitemaps.test", "unreachable.test"]
    result = run_crawl(["-a", f"domains={','.join(domains)}", "-L", "WARNING"], pg_url)
    assert result.returncode == 1, result.summary()  # one of them failed
    lines = summary(result.stdout)
    assert list(lines) == domains, result.stdout  # in the order given
    assert_lines_match_database(lines, jobs_in(pg_url))
    assert lines["duplicates.test"]["urls"] == "5"  # distinct URLs, as stored and shown by the API
    assert lines["extensions.test"]["verdict"].startswith("complete")
    totals = result.stdout.splitlines()[-1]
    m = TOTALS_LINE.match(totals)
    assert m and m["n"] == "4" and m["statuses"] == "3 complete, 1 failed" and m["urls"] == "10", totals
    assert " INFO: " not in result.stderr  # the log level was honoured; the summary is on stdout


def test_all_domains_complete_exits_0(run_crawl, sqlite_url):
    job_id = str(uuid.uuid4())
    result = run_crawl(["-a", "domain=bad-values.test", "-a", f"job_id={job_id}"], sqlite_url)
    assert result.returncode == 0, result.summary()
    lines = summary(result.stdout)
    assert lines["bad-values.test"]["job_id"] == job_id
    assert_lines_match_database(lines, jobs_in(sqlite_url))


def test_under_scrapyd_the_summary_goes_to_the_log_and_a_failed_domain_is_not_a_failed_process(run_crawl, sqlite_url):
    result = run_crawl(["-a", "domain=unreachable.test", "-a", "_job=crawl-1"], sqlite_url)
    assert result.returncode == 0, result.summary()
    assert result.stdout == ""
    assert re.search(r"INFO: unreachable\.test\s+job [0-9a-f-]{36}\s+failed", result.stderr), result.summary()


def test_falling_back_from_https_to_http_is_an_info_line_not_an_error(run_crawl, sqlite_url):
    result = run_crawl(["-a", "domain=extensions.test"], sqlite_url)
    assert result.returncode == 0, result.summary()
    assert " ERROR: " not in result.stderr, result.summary()
    assert re.search(r" INFO: .*https://extensions\.test", result.stderr), result.summary()
    assert "'log_count/ERROR'" not in result.stderr


# --------------------------------------------------------------------------------------------------
# -O in every format Scrapy offers: one row per URL, the API's columns and formats
# --------------------------------------------------------------------------------------------------
FEED_FORMATS = ("csv", "json", "jsonl", "jsonlines", "jl", "xml", "marshal", "pickle")


def read_feed(path: Path, fmt: str) -> list[dict[str, Any]]:
    """The rows of a feed file, each a dict in file order; nested values as Python objects."""
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    if fmt == "json":
        return json.loads(path.read_text(encoding="utf-8"))
    if fmt in ("jsonl", "jsonlines", "jl"):
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if fmt == "xml":
        return [{field.tag: _xml_value(field) for field in item} for item in ET.parse(path).getroot()]
    load = marshal.load if fmt == "marshal" else pickle.load
    rows = []
    with path.open("rb") as f:
        while True:
            try:
                rows.append(load(f))
            except EOFError:
                return rows


def _xml_value(el: ET.Element) -> Any:
    children = list(el)
    if not children:
        return el.text
    if all(c.tag == "value" for c in children):
        return [_xml_value(c) for c in children]
    return {c.tag: _xml_value(c) for c in children}


def cell(v: Any) -> Any:
    """A value as the API's CSV has it, nested values parsed, so that every format compares alike."""
    if v is None or v == "":
        return None
    if isinstance(v, str) and v[:1] in "[{":
        return json.loads(v)
    return v if isinstance(v, (list, dict)) else str(v)


def api_csv(db_url: str, job_id: uuid.UUID) -> tuple[list[str], list[dict[str, str]]]:
    app, client = make_client(make_config(db_url, "http://127.0.0.1:9"), admin=True)  # CLI jobs: tenant default
    resp = client.simulate_get(f"/api/v1/jobs/{job_id}/urls", params={"format": "csv"})
    assert resp.status_code == 200, resp.text
    reader = csv.DictReader(io.StringIO(resp.text))
    return list(reader.fieldnames or []), list(reader)


def test_every_feed_format_has_one_row_per_url_with_the_api_csv_columns(run_crawl, sqlite_url, tmp_path):
    cases = [CATALOGUE["extensions.test"], CATALOGUE["bad-values.test"]]
    paths = {fmt: tmp_path / f"urls.{fmt}" for fmt in FEED_FORMATS}
    args = ["-a", f"domains={','.join(c.host for c in cases)}", "-s", "SITEMAP_PAGE_CHUNK=3"]
    for path in paths.values():
        args += ["-O", str(path)]
    result = run_crawl(args, sqlite_url)
    assert result.returncode == 0, result.summary()

    jobs = jobs_in(sqlite_url)
    expected_urls = set().union(*(c.expected_urls for c in cases))
    header, api_rows = [], {}
    for case in cases:
        header, rows = api_csv(sqlite_url, jobs[case.host].id)
        api_rows.update({r["url"]: r for r in rows})
    assert set(api_rows) == expected_urls
    for fmt, path in paths.items():
        rows = read_feed(path, fmt)
        assert sorted(r["url"] for r in rows) == sorted(expected_urls), f"{fmt}: not one row per URL"
        assert all(list(r) == header for r in rows), f"{fmt}: columns {list(rows[0])}, the API's CSV has {header}"
        for row in rows:
            want = api_rows[row["url"]]
            for column in header:
                assert cell(row[column]) == cell(want[column]), f"{fmt} {row['url']} {column}"
        line = f"Stored {fmt} feed ({len(expected_urls)} items) in: "
        assert line in result.stderr, f"{fmt}: no {line!r} line"
    for row in read_feed(paths["csv"], "csv"):  # and the values are the sitemap's
        want = {"lastmod": None, "changefreq": None, "priority": None, **cases[1].attrs.get(row["url"], {})}
        got = {"lastmod": dt.datetime.fromisoformat(row["lastmod"]) if row["lastmod"] else None,
               "changefreq": row["changefreq"] or None,
               "priority": float(row["priority"]) if row["priority"] else None}
        assert got == {k: want[k] for k in got}, row["url"]

    stats = re.search(r"'scrapersky/urls': (\d+),", result.stderr)
    assert stats and int(stats[1]) == len(expected_urls), result.summary(80)
    assert re.search(r"'item_scraped_count': \d+,", result.stderr)
    assert "'scrapersky/domains_complete': 2," in result.stderr
