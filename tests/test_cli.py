"""`scrapy crawl sitemap` refuses bad input with one line on stderr and a non-zero exit, before any
crawling or writing happens."""

from __future__ import annotations

import sqlite3

import pytest


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
