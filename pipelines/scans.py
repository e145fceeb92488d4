"""Scans as immutable snapshots: the one home of "which scan came before" and "what changed".

Each scan (a job) writes its own rows: `pages` keyed (job_id, url) and `sitemaps` unique (job_id, url).
Nothing updates them once the scan is over, so a job's URL list, its count (`jobs.urls_found`) and its
sitemap list stay what the scan saw, whatever later scans find.

**The previous complete scan** of a job J is the job P with

- the same `domain_id` as J,
- status `complete`,
- `finished_at` strictly before J's `started_at` (J's `created_at` if it never started),

the latest such P by `finished_at` (ties: the larger id). A scan still running when J began is
therefore never J's previous scan, and the answer never changes once J has started: scans that
finish later finish after J's start. `pipelines.store.finish_job` / `finish_jobs` (the stored
`new_urls` / `removed_urls`), the API's `?change=new|removed` and `GET /api/v1/domains/{d}/changes` all use it.

**New / removed** are set differences of URLs: new = in J and not in P, removed = in P and not in J
(every URL of J is new when there is no P). `only_in(a, b)` is the one query behind all of them.

**Retention**: `SCRAPERSKY_KEEP_SCANS` = complete scans kept per domain (0, the default, keeps all).
When a scan of a domain completes, `prune` deletes the page and sitemap rows of the domain's complete
scans older than the newest K, and of its other final scans (failed, cancelled) that finished before
the oldest kept one; their `jobs` rows stay (counts, status) with `pruned_at` set.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.engine import Connection

from pipelines.models import Job, Page, Sitemap
from pipelines.status import FINAL_JOB_STATUSES, JobStatus

KEEP_SCANS_SETTING = "SCRAPERSKY_KEEP_SCANS"

_jobs = Job.__table__
_pages = Page.__table__
_sitemaps = Sitemap.__table__
_other = _pages.alias("other_scan")
_FINAL = [s.value for s in FINAL_JOB_STATUSES]


def keep_scans(value: Any = None) -> int:
    """The retention setting: `value` (a Scrapy setting) or the environment, 0 (keep all) when unset."""
    raw = value if value not in (None, "") else os.environ.get(KEEP_SCANS_SETTING, "0")
    try:
        keep = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{KEEP_SCANS_SETTING} must be a whole number, not {raw!r}") from None
    if keep < 0:
        raise ValueError(f"{KEEP_SCANS_SETTING} must be 0 (keep all) or more, not {keep}")
    return keep


def previous_complete_scan(conn: Connection, job: Any) -> dict[str, Any] | None:
    """The previous complete scan (see the module docstring) of `job`: a job id or a jobs row (mapping
    with id, domain_id, started_at, created_at). Its jobs row, or None."""
    if not hasattr(job, "get") and not hasattr(job, "_mapping"):
        job = conn.execute(select(_jobs.c.id, _jobs.c.domain_id, _jobs.c.started_at, _jobs.c.created_at)
                           .where(_jobs.c.id == job)).mappings().first()
        if job is None:
            return None
    if job["domain_id"] is None:
        return None
    row = conn.execute(_previous(_jobs, job["domain_id"], job["id"], job["started_at"] or job["created_at"])
                       ).mappings().first()
    return dict(row) if row else None


def previous_complete_scans(conn: Connection, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """`previous_complete_scan` of many jobs in one query: job id -> its previous scan's id (jobs
    without one are left out)."""
    if not job_ids:
        return {}
    j = _jobs.alias("j")
    prev = _previous(_jobs.alias("p"), j.c.domain_id, j.c.id, func.coalesce(j.c.started_at, j.c.created_at), "id")
    rows = conn.execute(select(j.c.id, prev.scalar_subquery()).where(j.c.id.in_(job_ids)))
    return {job_id: previous_id for job_id, previous_id in rows if previous_id is not None}


def _previous(jobs: Any, domain_id: Any, job_id: Any, before: Any, *columns: str) -> Any:
    """The query of the previous complete scan (the module docstring's definition) in table `jobs`
    (or an alias of it): its row, or only `columns`."""
    return (select(*(jobs.c[name] for name in columns)) if columns else select(jobs)).where(
        jobs.c.domain_id == domain_id, jobs.c.status == JobStatus.COMPLETE, jobs.c.id != job_id,
        jobs.c.finished_at < before,
    ).order_by(jobs.c.finished_at.desc(), jobs.c.id.desc()).limit(1)


def only_in(job_id: uuid.UUID, other_id: uuid.UUID | None) -> Any:
    """A WHERE clause on `pages`: rows of scan `job_id` whose URL scan `other_id` did not see (every row
    of `job_id` when `other_id` is None). Both sides are read along the primary key (job_id, url)."""
    clause = _pages.c.job_id == job_id
    if other_id is None:
        return clause
    return and_(clause, ~exists().where(_other.c.job_id == other_id, _other.c.url == _pages.c.url))


def counts(conn: Connection, job_id: uuid.UUID, previous_id: uuid.UUID | None) -> dict[str, int]:
    """urls_found / new_urls / removed_urls of scan `job_id` against the scan `previous_id`: one pass
    over both snapshots (a FULL JOIN on url; two anti-joins cost twice as much on PostgreSQL)."""
    if previous_id is None or (conn.dialect.name == "sqlite" and conn.dialect.dbapi.sqlite_version_info < (3, 39)):
        found = conn.execute(select(func.count()).select_from(_pages).where(_pages.c.job_id == job_id)).scalar_one()
        if previous_id is None:
            return {"urls_found": found, "new_urls": found, "removed_urls": 0}
        # SQLite before 3.39 has no FULL JOIN
        new = conn.execute(select(func.count()).select_from(_pages).where(only_in(job_id, previous_id))).scalar_one()
        removed = conn.execute(select(func.count()).select_from(_pages).where(only_in(previous_id, job_id))).scalar_one()
        return {"urls_found": found, "new_urls": new, "removed_urls": removed}
    this = select(_pages.c.url).where(_pages.c.job_id == job_id).subquery("this_scan")
    before = select(_pages.c.url).where(_pages.c.job_id == previous_id).subquery("previous_scan")
    found, new, removed = conn.execute(
        select(func.count(this.c.url), func.count(this.c.url).filter(before.c.url.is_(None)),
               func.count(before.c.url).filter(this.c.url.is_(None)))
        .select_from(this.join(before, this.c.url == before.c.url, full=True))).one()
    return {"urls_found": found, "new_urls": new, "removed_urls": removed}


def prune(conn: Connection, domain_id: int, keep: int, now: dt.datetime) -> list[uuid.UUID]:
    """Apply the retention setting to a domain (see the module docstring); the pruned job ids."""
    if keep <= 0:
        return []
    kept = conn.execute(
        select(_jobs.c.id, _jobs.c.finished_at)
        .where(_jobs.c.domain_id == domain_id, _jobs.c.status == JobStatus.COMPLETE, _jobs.c.pruned_at.is_(None))
        .order_by(_jobs.c.finished_at.desc(), _jobs.c.id.desc())
        .limit(keep)
    ).all()
    if len(kept) < keep:
        return []
    oldest_kept = kept[-1].finished_at
    kept_ids = [row.id for row in kept]
    doomed = [row[0] for row in conn.execute(
        select(_jobs.c.id).where(
            _jobs.c.domain_id == domain_id, _jobs.c.status.in_(_FINAL), _jobs.c.pruned_at.is_(None),
            _jobs.c.id.not_in(kept_ids),
            or_(_jobs.c.status == JobStatus.COMPLETE, _jobs.c.finished_at < oldest_kept)))]
    for start in range(0, len(doomed), 500):
        part = doomed[start:start + 500]
        conn.execute(delete(_pages).where(_pages.c.job_id.in_(part)))
        conn.execute(delete(_sitemaps).where(_sitemaps.c.job_id.in_(part)))
        conn.execute(update(_jobs).where(_jobs.c.id.in_(part)).values(pruned_at=now))
    return doomed
