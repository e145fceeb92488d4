"""The one job lifecycle: every change of `jobs.status` is one of the transitions below, each a guarded
conditional UPDATE (its WHERE names the states it may start from), so concurrent callers — the API,
the dispatcher of any process, and any crawl, including a late one — can never move a job backwards.
No Scrapy here; every function takes a SQLAlchemy Connection inside the caller's transaction.

A job is *claimed* while `scrapyd_jobid` names the crawl that carries it; `dispatch_attempts` counts
the crawls that have carried it (one per claim).

| transition | from                                          | to                                    | called by                          |
|------------|-----------------------------------------------|---------------------------------------|------------------------------------|
| create     | (no row)                                      | pending, unclaimed                    | API: POST /scrapersky, /batch      |
| claim      | pending, unclaimed, attempts < max            | pending, claimed by crawl C, attempts+1 | dispatcher, before schedule.json  |
| release    | pending, claimed by C                         | pending, unclaimed, attempts-1        | dispatcher: scrapyd unreachable     |
|            |                                               |                                       | when scheduling C (C never ran)     |
| start      | pending claimed by C (a scrapyd crawl C), or  | running                               | item pipeline (JobStarted)          |
|            | pending unclaimed / no row (`scrapy crawl`)   |                                       |                                    |
| finish     | pending, running (whichever crawl carries it);| the outcome's status (complete/failed)| item pipeline (JobFinished)         |
|            | failed crawl_lost/interrupted, for a complete |                                       |                                    |
|            | outcome (completion wins over a guess);       |                                       |                                    |
|            | complete: no-op                               |                                       |                                    |
| fail       | pending/running (with `unclaimed_only`: not   | failed + outcome + error              | item pipeline (a `scrapy crawl`     |
|            | carried by a scrapyd crawl)                   |                                       | interrupted), dispatcher           |
| cancel     | pending, running                              | cancelled (outcome `cancelled`)       | API: POST .../cancel                |
| requeue    | pending/running claimed by C                  | pending, unclaimed — or, after `max`  | dispatcher: C ended without finishing|
|            |                                               | attempts, failed with `outcome`       | it, scrapyd forgot C, C's node lost,|
|            |                                               | (`crawl_lost`, `dispatch`) and reason | scrapyd refused C                   |

Final transitions set `outcome` (`pipelines.status.Outcome`) and `error`. Because a finish is
accepted from a requeued or guessed-failed state, a crawl that was thought dead but finishes after
all leaves its jobs `complete`; a second finish of a complete job changes nothing (pages are keyed
by domain and URL, so the re-run's writes are idempotent too).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, insert, or_, select, text, update
from sqlalchemy.engine import Connection

from pipelines.models import Job, utcnow
from pipelines.status import COMPLETE_OUTCOMES, JobStatus, Outcome

logger = logging.getLogger("scrapersky.lifecycle")

jobs = Job.__table__
_c = jobs.c
ACTIVE = (JobStatus.PENDING.value, JobStatus.RUNNING.value)
# Failed outcomes that are only a guess about a crawl we lost sight of: a real finish overrides them.
GUESSED = (Outcome.CRAWL_LOST.value, Outcome.INTERRUPTED.value)
_CHUNK = 500  # ids per IN (...) list


def _chunks(ids: Sequence[uuid.UUID]) -> Iterable[list[uuid.UUID]]:
    ids = list(ids)
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]


def _line(text: str | None, limit: int = 1000) -> str | None:
    return " ".join(text.split())[:limit] if text else None


# --------------------------------------------------------------------------------------------- create
def create(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """New pending jobs; each row gives id, domain and optionally batch_id, options, created_at."""
    now = utcnow()
    values = [{"batch_id": None, "options": None, "created_at": now, **row, "status": JobStatus.PENDING,
               "dispatch_attempts": 0} for row in rows]
    for start in range(0, len(values), 2000):
        conn.execute(insert(jobs), values[start:start + 2000])


# ---------------------------------------------------------------------------------------------- claim
def waiting(max_attempts: int) -> tuple[Any, ...]:
    """WHERE clauses of a job the dispatcher may claim."""
    return (_c.status == JobStatus.PENDING, _c.scrapyd_jobid.is_(None), _c.dispatch_attempts < max_attempts)


def claim(conn: Connection, job_ids: list[uuid.UUID], crawl_id: str, node: str, log_url: str | None,
          max_attempts: int) -> list[tuple[uuid.UUID, str]]:
    """Claim the still-waiting jobs among `job_ids` for crawl `crawl_id` on `node`; returns (id, target)
    of the jobs claimed, in domain order. The target is what the user asked for in canonical form
    (`pipelines.domains.Site.target`: `www.` and scheme kept), which the crawl starts from."""
    conn.execute(update(jobs).where(_c.id.in_(job_ids), *waiting(max_attempts)).values(
        scrapyd_jobid=crawl_id, scrapyd_node=node, dispatched_at=utcnow(), log_url=log_url,
        dispatch_attempts=_c.dispatch_attempts + 1))
    rows = conn.execute(select(_c.id, _c.domain, _c.options)
                        .where(_c.scrapyd_jobid == crawl_id, _c.status == JobStatus.PENDING)
                        .order_by(_c.domain)).all()
    return [(r[0], (r[2] or {}).get("target") or r[1]) for r in rows]


def release(conn: Connection, crawl_id: str) -> int:
    """Un-claim crawl `crawl_id`'s pending jobs that scrapyd never received; the attempt is given back."""
    return conn.execute(update(jobs).where(_c.scrapyd_jobid == crawl_id, _c.status == JobStatus.PENDING).values(
        scrapyd_jobid=None, scrapyd_node=None, log_url=None, dispatched_at=None,
        dispatch_attempts=_c.dispatch_attempts - 1)).rowcount


# ---------------------------------------------------------------------------------------------- start
def start(conn: Connection, job_id: uuid.UUID, domain_id: int | None, started_at: dt.datetime,
          crawl_id: str | None = None) -> bool:
    """pending -> running. A scrapyd crawl (`crawl_id` given) starts only jobs claimed by it; a crawl
    run by hand starts only unclaimed ones. False when the job is not this crawl's to start (final,
    cancelled, or handed to another crawl): the caller may still store what it finds."""
    mine = _c.scrapyd_jobid == crawl_id if crawl_id else _c.scrapyd_jobid.is_(None)
    return bool(conn.execute(update(jobs).where(_c.id == job_id, _c.status == JobStatus.PENDING, mine).values(
        status=JobStatus.RUNNING, started_at=started_at, domain_id=domain_id)).rowcount)


# Many jobs in one statement (PostgreSQL: the rows travel as arrays, unnest()ed into a join), with the
# same guards as `start` and `finish`; the crawl's database writer uses them for a group of items.
_START_MANY = text(
    "UPDATE jobs SET status = 'running', started_at = v.started_at, domain_id = v.domain_id "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:started AS timestamptz[]), CAST(:domains AS integer[])) "
    "AS v(id, started_at, domain_id) "
    "WHERE jobs.id = v.id AND jobs.status = 'pending' AND {mine} RETURNING jobs.id")
_START_MINE = {True: "jobs.scrapyd_jobid = :crawl", False: "jobs.scrapyd_jobid IS NULL"}


def start_many(conn: Connection, rows: Sequence[tuple[uuid.UUID, int | None, dt.datetime]],
               crawl_id: str | None = None) -> set[uuid.UUID]:
    """`start` for many jobs at once (PostgreSQL): rows of (job id, domain id, started_at); returns the
    ids of the jobs started (the others are not this crawl's to start, as with `start`)."""
    if not rows:
        return set()
    stmt = text(_START_MANY.text.format(mine=_START_MINE[bool(crawl_id)]))
    params: dict[str, Any] = {"ids": [str(r[0]) for r in rows], "started": [r[2] for r in rows],
                              "domains": [r[1] for r in rows]}
    if crawl_id:
        params["crawl"] = crawl_id
    return {uuid.UUID(str(r[0])) for r in conn.execute(stmt, params)}


def create_running(conn: Connection, job_id: uuid.UUID, domain: str, domain_id: int | None,
                   batch_id: uuid.UUID | None, options: dict[str, Any] | None, started_at: dt.datetime) -> bool:
    """A crawl started by hand for a job id the database does not know: its row, running. False when
    the row exists (nothing is changed then)."""
    if conn.execute(select(_c.id).where(_c.id == job_id)).first() is not None:
        return False
    conn.execute(insert(jobs).values(
        id=job_id, domain=domain, domain_id=domain_id, batch_id=batch_id, options=options,
        status=JobStatus.RUNNING, created_at=started_at, started_at=started_at, dispatch_attempts=0,
        sitemaps_found=0, sitemaps_failed=0, urls_found=0, new_urls=0, removed_urls=0, bytes_downloaded=0))
    return True


# --------------------------------------------------------------------------------------------- finish
def outcome_of(status: str, outcome: str | None, error: str | None, stats: dict[str, Any]) -> Outcome:
    """The outcome a crawl reports for a job; derived from its status and stats when it names none."""
    if outcome:
        return Outcome(outcome)
    if status == JobStatus.COMPLETE.value:
        if not stats.get("sitemaps_found"):
            return Outcome.NO_SITEMAP
        if error or stats.get("sitemaps_failed") or stats.get("capped"):
            return Outcome.WARNINGS
        return Outcome.OK
    if error and error.startswith("could not reach"):
        return Outcome.UNREACHABLE
    return Outcome.ERROR


def finish(conn: Connection, job_id: uuid.UUID, outcome: Outcome, error: str | None, finished_at: dt.datetime,
           **values: Any) -> bool:
    """The crawl's own end of the job (see the table); `values` are result columns (urls_found,
    sitemaps_found, origin...). True when the job changed."""
    from_states = _c.status.in_(ACTIVE)
    if outcome in COMPLETE_OUTCOMES:
        from_states = or_(from_states, and_(_c.status == JobStatus.FAILED, _c.outcome.in_(GUESSED)))
    changed = conn.execute(update(jobs).where(_c.id == job_id, from_states).values(
        status=outcome.status, outcome=outcome, error=_line(error), finished_at=finished_at, **values)).rowcount
    if changed:
        logger.info("job %s finished: %s%s", job_id, outcome.value, f" ({_line(error, 200)})" if error else "")
    return bool(changed)


_FINISH_COLUMNS = ("urls_found", "new_urls", "removed_urls", "sitemaps_found", "sitemaps_failed", "bytes_downloaded",
                   "duration_seconds", "origin")
_FINISH_TYPES = ("integer", "integer", "integer", "integer", "integer", "bigint", "float8", "text")
_FINISH_MANY = text(
    "UPDATE jobs SET status = v.status, outcome = v.outcome, error = v.error, finished_at = v.finished_at, "
    + ", ".join(f"{c} = COALESCE(v.{c}, jobs.{c})" for c in _FINISH_COLUMNS)
    + " FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:outcomes AS text[]), "
    "CAST(:errors AS text[]), CAST(:finished AS timestamptz[]), CAST(:completes AS boolean[]), "
    + ", ".join(f"CAST(:{c} AS {t}[])" for c, t in zip(_FINISH_COLUMNS, _FINISH_TYPES, strict=True))
    + ") AS v(id, status, outcome, error, finished_at, complete, " + ", ".join(_FINISH_COLUMNS) + ") "
    "WHERE jobs.id = v.id AND (jobs.status IN ('pending', 'running') OR (v.complete AND jobs.status = 'failed' "
    "AND jobs.outcome IN ('crawl_lost', 'interrupted'))) RETURNING jobs.id")
assert set(ACTIVE) == {"pending", "running"} and set(GUESSED) == {"crawl_lost", "interrupted"}


def finish_many(conn: Connection, rows: Sequence[tuple[uuid.UUID, Outcome, str | None, dt.datetime, dict[str, Any]]]
                ) -> set[uuid.UUID]:
    """`finish` for many jobs at once (PostgreSQL): rows of (job id, outcome, error, finished_at,
    values); a column missing from (or None in) a row's values is left as it is. Returns the ids of the
    jobs that changed."""
    if not rows:
        return set()
    params: dict[str, Any] = {
        "ids": [str(r[0]) for r in rows], "statuses": [r[1].status.value for r in rows],
        "outcomes": [r[1].value for r in rows], "errors": [_line(r[2]) for r in rows],
        "finished": [r[3] for r in rows], "completes": [r[1] in COMPLETE_OUTCOMES for r in rows]}
    for column in _FINISH_COLUMNS:
        params[column] = [r[4].get(column) for r in rows]
    changed = {uuid.UUID(str(r[0])) for r in conn.execute(_FINISH_MANY, params)}
    for job_id, outcome, error, _, _ in rows:
        if job_id in changed:
            logger.info("job %s finished: %s%s", job_id, outcome.value, f" ({_line(error, 200)})" if error else "")
    return changed


def fail(conn: Connection, job_ids: Sequence[uuid.UUID], outcome: Outcome, error: str,
         finished_at: dt.datetime | None = None, unclaimed_only: bool = False) -> int:
    """pending/running -> failed. `unclaimed_only`: leave jobs a scrapyd crawl carries to the dispatcher
    (it requeues them when that crawl ends)."""
    assert outcome.status is JobStatus.FAILED, outcome
    guard = [_c.status.in_(ACTIVE)]
    if unclaimed_only:
        guard.append(_c.scrapyd_jobid.is_(None))
    total = 0
    for part in _chunks(job_ids):
        total += conn.execute(update(jobs).where(_c.id.in_(part), *guard).values(
            status=JobStatus.FAILED, outcome=outcome, error=_line(error), finished_at=finished_at or utcnow())).rowcount
    return total


def cancel(conn: Connection, *, job_id: uuid.UUID | None = None, batch_id: uuid.UUID | None = None,
           reason: str = "cancelled by request") -> int:
    """pending/running -> cancelled, for one job or every active job of a batch."""
    where = _c.id == job_id if job_id is not None else _c.batch_id == batch_id
    return conn.execute(update(jobs).where(where, _c.status.in_(ACTIVE)).values(
        status=JobStatus.CANCELLED, outcome=Outcome.CANCELLED, error=reason, finished_at=utcnow())).rowcount


# -------------------------------------------------------------------------------------------- requeue
def requeue(conn: Connection, crawl_id: str, reason: str, max_attempts: int,
            outcome: Outcome = Outcome.CRAWL_LOST) -> tuple[int, int]:
    """Crawl `crawl_id` will not finish its active jobs: each goes back to the queue, or, once it has
    been carried by `max_attempts` crawls, fails with `outcome` and the reason. (requeued, failed)."""
    reason = _line(reason, 900) or "crawl lost"
    mine = (_c.scrapyd_jobid == crawl_id, _c.status.in_(ACTIVE))
    failed = conn.execute(update(jobs).where(*mine, _c.dispatch_attempts >= max_attempts).values(
        status=outcome.status, outcome=outcome, finished_at=utcnow(),
        error=f"{reason} (gave up after {max_attempts} attempts)")).rowcount
    requeued = conn.execute(update(jobs).where(*mine).values(
        status=JobStatus.PENDING, scrapyd_jobid=None, scrapyd_node=None, dispatched_at=None, started_at=None,
        error=f"requeued after: {reason}")).rowcount
    return requeued, failed
