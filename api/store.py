"""Everything the API reads and writes in the database (SQLAlchemy Core over the `pipelines` tables).

No HTTP call ever happens inside one of these transactions.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import and_, bindparam, case, func, select, text, update
from sqlalchemy.engine import Engine

from pipelines import lifecycle
from pipelines.models import BatchJob, Crawl, Domain, Job, Page, Sitemap, utcnow
from pipelines.status import ACTIVE_JOB_STATUSES, BatchStatus, JobStatus

jobs = Job.__table__
batches = BatchJob.__table__
domains = Domain.__table__
pages = Page.__table__
sitemaps = Sitemap.__table__
crawls = Crawl.__table__
_newest_crawl = crawls.alias("newest_crawl")

ACTIVE = [s.value for s in ACTIVE_JOB_STATUSES]
HOME_FIELDS = ("home_url", "title", "description", "language", "favicon", "is_wordpress", "wordpress_version",
               "generator", "emails", "phones", "social_links")


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _status_value(value: Any) -> str | None:
    return value.value if hasattr(value, "value") else value


# Built once: the status endpoint is the hot path (statement construction costs more than the query).
# How many crawls the job's node started after the job's crawl: scrapyd keeps the logs of its last
# `jobs_to_keep` crawls, so beyond that the log link has expired.
_CRAWLS_SINCE = (
    select(func.max(_newest_crawl.c.node_seq)).where(_newest_crawl.c.node == crawls.c.node).scalar_subquery()
    - crawls.c.node_seq
)
_JOB_STATUS_QUERY = (
    select(jobs, *[domains.c[f].label(f"d_{f}") for f in HOME_FIELDS], domains.c.id.label("d_id"),
           _CRAWLS_SINCE.label("crawls_since"))
    .select_from(jobs.outerjoin(domains, domains.c.name == jobs.c.domain)
                 .outerjoin(crawls, crawls.c.id == jobs.c.scrapyd_jobid))
    .where(jobs.c.id == bindparam("job_id", type_=jobs.c.id.type))
)


class Store:
    def __init__(self, engine: Engine, logs_kept: int = 1000) -> None:
        self.engine = engine
        self.logs_kept = logs_kept  # scrapyd's jobs_to_keep on every node

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # ---------------------------------------------------------------- creating work
    def create_job(self, domain: str, options: dict[str, Any]) -> uuid.UUID:
        job_id = uuid.uuid4()
        with self.engine.begin() as conn:
            lifecycle.create(conn, [dict(id=job_id, domain=domain, options=options or None)])
        return job_id

    def create_batch(self, domain_list: list[str], options: dict[str, Any]) -> tuple[uuid.UUID, int]:
        batch_id = uuid.uuid4()
        now = utcnow()
        job_opts = {k: v for k, v in options.items() if k == "max_pages"} or None
        rows = [dict(id=uuid.uuid4(), domain=d, batch_id=batch_id, created_at=now, options=job_opts)
                for d in domain_list]
        with self.engine.begin() as conn:
            conn.execute(batches.insert().values(id=batch_id, status=BatchStatus.PENDING, created_at=now,
                                                 total_jobs=len(rows), options=options or None))
            lifecycle.create(conn, rows)
        return batch_id, len(rows)

    # ---------------------------------------------------------------- reading jobs
    def get_job(self, job_id: uuid.UUID) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(_JOB_STATUS_QUERY, {"job_id": job_id}).mappings().first()
        if row is None:
            return None
        out = dict(row)
        since = out.pop("crawls_since")
        out["log_expired"] = since is not None and since >= self.logs_kept
        if out["log_expired"]:
            out["log_url"] = None
        return out

    def job_row(self, job_id: uuid.UUID) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return dict(row) if row else None

    def previous_job(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """The domain's complete scan before `job` (what "new" and "removed" compare with)."""
        ref = job["finished_at"] or job["created_at"]
        q = (
            select(jobs.c.id, jobs.c.finished_at)
            .where(jobs.c.domain == job["domain"], jobs.c.status == JobStatus.COMPLETE, jobs.c.id != job["id"],
                   jobs.c.finished_at < ref)
            .order_by(jobs.c.finished_at.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        return dict(row) if row else None

    def domain_id(self, conn, name: str) -> int | None:
        return conn.execute(select(domains.c.id).where(domains.c.name == name)).scalar()

    def page_query(self, conn, job: dict[str, Any], change: str, after_url: str | None, limit: int | None):
        """Pages of the job's domain (the (domain_id, url) index), in URL order (keyset cursor = last URL)."""
        dom_id = job.get("domain_id") or self.domain_id(conn, job["domain"])
        cols = [pages.c.url, pages.c.lastmod, pages.c.changefreq, pages.c.priority, pages.c.alternates,
                pages.c.images, pages.c.news, pages.c.videos, pages.c.first_seen_at, pages.c.last_seen_at,
                sitemaps.c.url.label("sitemap_url")]
        q = (select(*cols).select_from(pages.outerjoin(sitemaps, sitemaps.c.id == pages.c.sitemap_id))
             .where(pages.c.domain_id == (dom_id if dom_id is not None else -1)))
        if change == "new":
            q = q.where(pages.c.first_seen_job_id == job["id"])
        elif change == "removed":
            prev = self.previous_job(job)
            q = q.where(pages.c.last_seen_job_id == (prev["id"] if prev else uuid.UUID(int=0)))
        else:
            q = q.where(pages.c.last_seen_job_id == job["id"])
        if after_url is not None:
            q = q.where(pages.c.url > after_url)
        q = q.order_by(pages.c.url)
        if limit is not None:
            q = q.limit(limit)
        return q

    def list_pages(self, job: dict[str, Any], change: str, after_url: str | None, limit: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(self.page_query(conn, job, change, after_url, limit)).mappings()]

    def stream_pages(self, job: dict[str, Any], change: str, chunk: int = 2000) -> Iterator[list[dict[str, Any]]]:
        """Every page in URL order, in chunks, on one server-side cursor (PostgreSQL)."""
        with self.engine.connect() as conn:
            q = self.page_query(conn, job, change, None, None)
            result = conn.execution_options(stream_results=True, yield_per=chunk).execute(q).mappings()
            for part in result.partitions(chunk):
                yield [dict(r) for r in part]

    def list_sitemaps(self, job_id: uuid.UUID) -> list[dict[str, Any]]:
        q = select(sitemaps).where(sitemaps.c.last_job_id == job_id).order_by(sitemaps.c.id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def get_domain(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(domains).where(domains.c.name == name)).mappings().first()
            if row is None:
                return None
            out = dict(row)
            recent = conn.execute(
                select(jobs.c.id, jobs.c.status, jobs.c.created_at, jobs.c.finished_at, jobs.c.urls_found,
                       jobs.c.new_urls, jobs.c.removed_urls, jobs.c.error)
                .where(jobs.c.domain == name).order_by(jobs.c.created_at.desc()).limit(10)
            ).mappings().all()
            out["recent_jobs"] = [dict(r) for r in recent]
            latest_id = out.get("last_job_id")
            latest = None
            if latest_id is not None:
                latest = conn.execute(select(jobs).where(jobs.c.id == latest_id)).mappings().first()
            if latest is None:
                latest = conn.execute(
                    select(jobs).where(jobs.c.domain == name, jobs.c.status == JobStatus.COMPLETE)
                    .order_by(jobs.c.finished_at.desc()).limit(1)
                ).mappings().first()
            out["latest_job"] = dict(latest) if latest else None
        return out

    # ---------------------------------------------------------------- batches
    def batch_row(self, batch_id: uuid.UUID) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(batches).where(batches.c.id == batch_id)).mappings().first()
        return dict(row) if row else None

    def batch_counts(self, batch_id: uuid.UUID, conn=None) -> dict[str, Any]:
        q = (
            select(jobs.c.status, func.count(), func.coalesce(func.sum(jobs.c.urls_found), 0),
                   func.min(jobs.c.started_at), func.max(jobs.c.finished_at),
                   func.count(jobs.c.scrapyd_jobid))
            .where(jobs.c.batch_id == batch_id)
            .group_by(jobs.c.status)
        )
        counts = {s.value: 0 for s in JobStatus}
        urls = 0
        started = finished = None
        dispatched = 0
        if conn is None:
            with self.engine.connect() as c:
                rows = c.execute(q).all()
        else:
            rows = conn.execute(q).all()
        for status, n, u, s_at, f_at, n_disp in rows:
            counts[_status_value(status)] = n
            urls += int(u or 0)
            dispatched += n_disp
            if s_at is not None and (started is None or s_at < started):
                started = s_at
            if f_at is not None and (finished is None or f_at > finished):
                finished = f_at
        return {"counts": counts, "urls_found": urls, "started_at": started, "last_finished_at": finished,
                "dispatched": dispatched}

    def batch_jobs(self, batch_id: uuid.UUID, after_domain: str | None, limit: int,
                   status: str | None = None) -> list[dict[str, Any]]:
        q = select(jobs.c.id, jobs.c.domain, jobs.c.status, jobs.c.error, jobs.c.urls_found, jobs.c.started_at,
                   jobs.c.finished_at, jobs.c.scrapyd_jobid).where(jobs.c.batch_id == batch_id)
        if status:
            q = q.where(jobs.c.status == status)
        if after_domain is not None:
            q = q.where(jobs.c.domain > after_domain)
        q = q.order_by(jobs.c.domain).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def refresh_batch(self, batch_id: uuid.UUID) -> None:
        """Persist the derived batch status (pending -> running -> complete), never touching a cancelled one."""
        with self.engine.begin() as conn:
            row = conn.execute(select(batches).where(batches.c.id == batch_id)).mappings().first()
            if row is None or _status_value(row["status"]) in (BatchStatus.CANCELLED.value, BatchStatus.COMPLETE.value):
                return
            info = self.batch_counts(batch_id, conn)
            status, finished = derive_batch_status(row, info)
            values: dict[str, Any] = {}
            if status != _status_value(row["status"]):
                values["status"] = status
            if row["started_at"] is None and info["started_at"] is not None:
                values["started_at"] = info["started_at"]
            if finished is not None and row["finished_at"] is None:
                values["finished_at"] = finished
            if values:
                conn.execute(update(batches).where(batches.c.id == batch_id, batches.c.status == row["status"])
                             .values(**values))

    def active_batch_ids(self) -> list[uuid.UUID]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(
                select(batches.c.id).where(batches.c.status.in_([BatchStatus.PENDING, BatchStatus.RUNNING])))]

    # ---------------------------------------------------------------- cancel
    def cancel_job(self, job_id: uuid.UUID) -> tuple[str, dict[str, Any] | None]:
        """('cancelled'|'final'|'missing', job row). Only pending/running jobs are cancelled."""
        with self.engine.begin() as conn:
            changed = lifecycle.cancel(conn, job_id=job_id)
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        if row is None:
            return "missing", None
        return ("cancelled" if changed else "final"), dict(row)

    def cancel_batch(self, batch_id: uuid.UUID) -> tuple[str, int]:
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(select(batches.c.status).where(batches.c.id == batch_id)).first()
            if row is None:
                return "missing", 0
            changed = lifecycle.cancel(conn, batch_id=batch_id, reason="batch cancelled by request")
            if _status_value(row[0]) in (BatchStatus.COMPLETE.value, BatchStatus.CANCELLED.value) and not changed:
                return "final", 0
            conn.execute(update(batches).where(batches.c.id == batch_id)
                         .values(status=BatchStatus.CANCELLED, finished_at=now))
        return "cancelled", changed

    def crawls_of_batch(self, batch_id: uuid.UUID) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(
                select(jobs.c.scrapyd_node, jobs.c.scrapyd_jobid).distinct()
                .where(jobs.c.batch_id == batch_id, jobs.c.scrapyd_jobid.is_not(None)))]

    def crawl_active_count(self, crawl_id: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).where(jobs.c.scrapyd_jobid == crawl_id,
                                                           jobs.c.status.in_(ACTIVE))).scalar_one()


def derive_batch_status(row: dict[str, Any], info: dict[str, Any]) -> tuple[str, dt.datetime | None]:
    """(status, finished_at) of a batch from its stored row and its job counts."""
    stored = _status_value(row["status"])
    counts = info["counts"]
    total = sum(counts.values())
    done = counts["complete"] + counts["failed"] + counts["cancelled"]
    if stored == BatchStatus.CANCELLED.value:
        return stored, row["finished_at"]
    if total and done == total:
        return BatchStatus.COMPLETE.value, row["finished_at"] or info["last_finished_at"] or utcnow()
    if done or counts["running"] or info["dispatched"]:
        return BatchStatus.RUNNING.value, None
    return BatchStatus.PENDING.value, None


# Silence "imported but unused" for names kept for callers' convenience.
__all__ = ["Store", "derive_batch_status", "iso", "jobs", "batches", "domains", "pages", "sitemaps", "and_", "case"]
