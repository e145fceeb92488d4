"""The job lifecycle (pipelines.lifecycle) on PostgreSQL and SQLite: each transition moves a job only
from the states its table allows, completion wins over a guess, and a re-run of a job through a real
`scrapy crawl` never duplicates its page rows."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from pipelines import lifecycle
from pipelines.db import get_engine
from pipelines.models import Job, Page, utcnow
from pipelines.status import JobStatus, Outcome
from tests.test_crawl_lifecycle import paged_site


def job(engine, job_id):
    with engine.connect() as conn:
        return conn.execute(select(Job).where(Job.id == job_id)).one()


def new_job(engine, domain="life.test") -> uuid.UUID:
    job_id = uuid.uuid4()
    with engine.begin() as conn:
        lifecycle.create(conn, [{"id": job_id, "domain": domain}])
    return job_id


def claim(engine, job_id, crawl, max_attempts=3):
    with engine.begin() as conn:
        return lifecycle.claim(conn, [job_id], crawl, "http://node", None, max_attempts)


def test_claim_start_requeue_until_crawl_lost(db_url):
    engine = get_engine(db_url)
    j = new_job(engine)
    for attempt in (1, 2):
        assert claim(engine, j, f"crawl-{attempt}") == [(j, "life.test")]
        assert claim(engine, j, "other") == []  # a claimed job is nobody else's
        with engine.begin() as conn:
            assert not lifecycle.start(conn, j, None, utcnow(), "other")  # not that crawl's job
            assert not lifecycle.start(conn, j, None, utcnow())  # nor a hand-run crawl's
            assert lifecycle.start(conn, j, None, utcnow(), f"crawl-{attempt}")
            assert lifecycle.requeue(conn, f"crawl-{attempt}", "process ended", 3) == (1, 0)
        row = job(engine, j)
        assert (row.status, row.scrapyd_jobid, row.dispatch_attempts) == (JobStatus.PENDING, None, attempt)
        assert "process ended" in row.error
    assert claim(engine, j, "crawl-3")
    with engine.begin() as conn:
        assert lifecycle.requeue(conn, "crawl-3", "node lost", 3) == (0, 1)
    row = job(engine, j)
    assert (row.status, row.outcome) == (JobStatus.FAILED, Outcome.CRAWL_LOST)
    assert "node lost" in row.error and "3 attempts" in row.error


def test_release_gives_the_attempt_back(db_url):
    engine = get_engine(db_url)
    j = new_job(engine)
    claim(engine, j, "never-scheduled")
    with engine.begin() as conn:
        assert lifecycle.release(conn, "never-scheduled") == 1
    row = job(engine, j)
    assert (row.status, row.scrapyd_jobid, row.dispatch_attempts) == (JobStatus.PENDING, None, 0)


def test_completion_wins_over_a_guess_and_a_second_finish_changes_nothing(db_url):
    engine = get_engine(db_url)
    lost, requeued, cancelled = new_job(engine), new_job(engine), new_job(engine)
    claim(engine, lost, "c1")
    claim(engine, requeued, "c1")
    with engine.begin() as conn:
        lifecycle.requeue(conn, "c1", "gone", 3)  # both back to pending
        lifecycle.fail(conn, [lost], Outcome.CRAWL_LOST, "crawl lost")
        lifecycle.cancel(conn, job_id=cancelled)
        first = utcnow()
        assert lifecycle.finish(conn, lost, Outcome.OK, None, first, urls_found=5)
        assert lifecycle.finish(conn, requeued, Outcome.NO_SITEMAP, None, first)
        assert not lifecycle.finish(conn, cancelled, Outcome.OK, None, first)  # cancelled stays cancelled
        assert not lifecycle.finish(conn, lost, Outcome.WARNINGS, "late", utcnow(), urls_found=1)
        assert not lifecycle.cancel(conn, job_id=lost)
        assert not lifecycle.fail(conn, [lost], Outcome.ERROR, "boom")
    row = job(engine, lost)
    assert (row.status, row.outcome, row.error, row.urls_found) == (JobStatus.COMPLETE, Outcome.OK, None, 5)
    assert row.finished_at == first
    assert job(engine, requeued).status == JobStatus.COMPLETE
    assert job(engine, cancelled).outcome == Outcome.CANCELLED


def test_a_failed_finish_does_not_override_a_guess(db_url):
    engine = get_engine(db_url)
    j = new_job(engine)
    with engine.begin() as conn:
        lifecycle.fail(conn, [j], Outcome.INTERRUPTED, "interrupted")
        assert not lifecycle.finish(conn, j, Outcome.UNREACHABLE, "could not reach", utcnow())
    assert job(engine, j).outcome == Outcome.INTERRUPTED


def test_an_ending_crawl_leaves_jobs_a_scrapyd_crawl_carries(db_url):
    engine = get_engine(db_url)
    carried, by_hand = new_job(engine), new_job(engine)
    claim(engine, carried, "c1")
    with engine.begin() as conn:
        assert lifecycle.fail(conn, [carried, by_hand], Outcome.INTERRUPTED, "stopped", unclaimed_only=True) == 1
    assert job(engine, carried).status == JobStatus.PENDING
    assert job(engine, by_hand).outcome == Outcome.INTERRUPTED


def test_rerun_of_a_job_never_duplicates_its_pages(site_server, run_crawl, db_url):
    site_server.sites["rerun.test"] = paged_site("rerun.test", 250)
    job_id = str(uuid.uuid4())
    args = ["-a", "domain=rerun.test", "-a", f"job_id={job_id}"]
    assert run_crawl(args, db_url).returncode == 0
    engine = get_engine(db_url)
    first = job(engine, uuid.UUID(job_id))
    with engine.begin() as conn:  # the dispatcher guessed the crawl was lost...
        conn.execute(Job.__table__.update().where(Job.id == uuid.UUID(job_id)).values(status=JobStatus.RUNNING))
        lifecycle.fail(conn, [uuid.UUID(job_id)], Outcome.CRAWL_LOST, "crawl lost")
    assert run_crawl(args, db_url).returncode == 0  # ...and the job ran again
    again = job(engine, uuid.UUID(job_id))
    assert (again.status, again.outcome, again.urls_found) == (JobStatus.COMPLETE, Outcome.OK, 250)
    assert run_crawl(args, db_url).returncode == 0  # a third run of a complete job changes nothing
    assert job(engine, uuid.UUID(job_id)).finished_at == again.finished_at > first.finished_at
    with engine.connect() as conn:
        pages = conn.execute(select(func.count(), func.count(func.distinct(Page.url)))
                             .where(Page.job_id == uuid.UUID(job_id))).one()
        total = conn.execute(select(func.count()).select_from(Page)).scalar_one()
    assert tuple(pages) == (250, 250) and total == 250


@pytest.mark.parametrize("status,given,stats,expected", [
    ("complete", None, {"sitemaps_found": 2}, Outcome.OK),
    ("complete", None, {"sitemaps_found": 2, "sitemaps_failed": 1}, Outcome.WARNINGS),
    ("complete", None, {"sitemaps_found": 0}, Outcome.NO_SITEMAP),
    ("failed", None, {}, Outcome.ERROR),
    ("failed", "unreachable", {}, Outcome.UNREACHABLE),
])
def test_outcome_of_a_crawl_report(status, given, stats, expected):
    assert lifecycle.outcome_of(status, given, None, stats) is expected
