"""Everything the API reads and writes in the database (SQLAlchemy Core over the `pipelines` tables).

No HTTP call ever happens inside one of these transactions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import (Text, and_, bindparam, case, cast, func, literal, literal_column, or_, select, text, tuple_,
                        type_coerce, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from pipelines import lifecycle, scans
from pipelines.domains import Site
from pipelines.models import (DEFAULT_TENANT, AppSecret, BatchJob, Crawl, Domain, Job, Page, Sitemap, WebhookDelivery,
                              utcnow)
from pipelines.rows import URL_COLUMNS, csv_cell
from pipelines.status import ACTIVE_JOB_STATUSES, BatchStatus, DeliveryStatus, JobStatus

jobs = Job.__table__
batches = BatchJob.__table__
domains = Domain.__table__
pages = Page.__table__
sitemaps = Sitemap.__table__
app_secrets = AppSecret.__table__
crawls = Crawl.__table__
deliveries = WebhookDelivery.__table__
_newest_crawl = crawls.alias("newest_crawl")

ACTIVE = [s.value for s in ACTIVE_JOB_STATUSES]
HOME_FIELDS = ("home_url", "title", "description", "language", "favicon", "is_wordpress", "wordpress_version",
               "generator", "emails", "phones", "social_links")
# The columns of a delivery the API shows (api.webhooks.delivery_view); joined into a job's status as `w_*`.
DELIVERY_FIELDS = ("id", "callback_url", "status", "attempts", "last_status_code", "last_error", "created_at",
                   "ready_at", "first_attempt_at", "last_attempt_at", "next_attempt_at", "delivered_at")


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
           _CRAWLS_SINCE.label("crawls_since"), *[deliveries.c[f].label(f"w_{f}") for f in DELIVERY_FIELDS])
    .select_from(jobs.outerjoin(domains, domains.c.name == jobs.c.domain)
                 .outerjoin(crawls, crawls.c.id == jobs.c.scrapyd_jobid)
                 .outerjoin(deliveries, deliveries.c.job_id == jobs.c.id))
    .where(jobs.c.id == bindparam("job_id", type_=jobs.c.id.type))
)
_TENANT_JOB_STATUS_QUERY = _JOB_STATUS_QUERY.where(jobs.c.tenant == bindparam("tenant"))


NESTED_COLUMNS = ("images", "videos", "news", "alternates")  # the last four of URL_COLUMNS
assert URL_COLUMNS[-4:] == NESTED_COLUMNS
_PG_ISO = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
_JSON_NUMBER = literal('strict $.** ? (@.type() == "number")')
JSONL_MARK = "\x1e"  # starts a JSON line of `copy_export` still to compact (JSON text never holds it raw)


@dataclasses.dataclass
class UrlExport:
    """What one export lists: the URLs of scan `job_id` that scan `other_id` did not see (all when None),
    or every URL of every job of batch `batch_id` (with the lead columns `domain` and `job_id`)."""

    job_id: uuid.UUID | None = None
    other_id: uuid.UUID | None = None
    batch_id: uuid.UUID | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return (("domain", "job_id") if self.batch_id is not None else ()) + URL_COLUMNS


def _value(stored: str | None) -> Any:
    return None if stored is None else json.loads(stored)


def _cell(stored: str | None) -> str | None:
    """The text the csv module writes for `rows.csv_cell` of a JSON column's value; None stays None."""
    if stored is None:
        return None
    value = json.loads(stored)
    return None if value is None else str(csv_cell(value))


def _sqlite_cell(stored: str | None) -> str | None:
    """`_cell` of SQLite's stored text, SQLAlchemy's `json.dumps` (ASCII-only): that text itself unless it
    escapes a character (ensure_ascii) or is not a list or object."""
    if stored is None or stored[:1] in ("[", "{") and "\\u" not in stored:
        return stored
    return _cell(stored)


class _CopySink:
    """The file psycopg2's copy_expert writes to: one call per row, passed on."""

    def __init__(self, write: Callable[[bytes], Any]) -> None:
        self.write = write


def _mine(table, tenant: str | None) -> tuple:
    """Where-clauses limiting `table` (jobs or batch_jobs) to a tenant's rows; none for None (admin)."""
    return () if tenant is None else (table.c.tenant == tenant,)


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

    @functools.cached_property
    def cursor_key(self) -> bytes:
        """The database's key for signing page cursors, made on first use (shared by every worker)."""
        return self.app_secret("cursor")

    @functools.cache
    def app_secret(self, name: str) -> bytes:
        """A random 32-byte secret kept in `app_secrets` under `name`, made on first use by whichever
        worker asks first (e.g. "cursor" signs page cursors, "console" the console's session cookies)."""
        q = select(app_secrets.c.value).where(app_secrets.c.name == name)
        with self.engine.connect() as conn:
            value = conn.execute(q).scalar()
        if value is None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(app_secrets.insert().values(name=name, value=secrets.token_hex(32)))
            except IntegrityError:
                pass  # another worker made it first
            with self.engine.connect() as conn:
                value = conn.execute(q).scalar_one()
        return bytes.fromhex(value)

    # ---------------------------------------------------------------- creating work
    def create_job(self, domain: str, options: dict[str, Any], tenant: str = DEFAULT_TENANT,
                   quota=None, webhook: dict[str, str] | None = None) -> uuid.UUID:
        """Store a pending job of `tenant`; `quota(conn, tenant, n_domains, new_batch)` may refuse it first.
        `webhook` ({"callback_url", "key_name"}): its delivery, waiting (api/webhooks.py)."""
        job_id = uuid.uuid4()
        with self.engine.begin() as conn:
            if quota is not None:
                quota(conn, tenant, 1, False)
            lifecycle.create(conn, [dict(id=job_id, domain=domain, options=options or None, tenant=tenant)])
            if webhook:
                self._add_delivery(conn, tenant, webhook, job_id=job_id)
        return job_id

    @staticmethod
    def _add_delivery(conn, tenant: str, webhook: dict[str, str], **subject: uuid.UUID) -> None:
        conn.execute(deliveries.insert().values(id=uuid.uuid4(), tenant=tenant, callback_url=webhook["callback_url"],
                                                key_name=webhook["key_name"], status=DeliveryStatus.WAITING,
                                                attempts=0, created_at=utcnow(), **subject))

    def deliveries(self, *, batch_id: uuid.UUID | None = None, job_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """The webhook deliveries of a batch or of a single scan (the caller has checked the tenant)."""
        where = deliveries.c.batch_id == batch_id if batch_id is not None else deliveries.c.job_id == job_id
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(deliveries).where(where)
                                                  .order_by(deliveries.c.created_at)).mappings()]

    def create_batch(self, sites: list[Site], options: dict[str, Any], tenant: str = DEFAULT_TENANT,
                     quota=None, webhook: dict[str, str] | None = None) -> tuple[uuid.UUID, int]:
        batch_id = uuid.uuid4()
        job_opts = {k: v for k, v in options.items() if k == "max_pages"}
        with self.engine.begin() as conn:
            if quota is not None:
                quota(conn, tenant, len(sites), True)
            now = utcnow()
            rows = [dict(id=uuid.uuid4(), domain=site.name, batch_id=batch_id, status=JobStatus.PENDING,
                         created_at=now, options={**job_opts, "target": site.target}, tenant=tenant) for site in sites]
            conn.execute(batches.insert().values(id=batch_id, status=BatchStatus.PENDING, created_at=now,
                                                 total_jobs=len(rows), options=options or None, tenant=tenant))
            lifecycle.create(conn, rows)
            if webhook:
                self._add_delivery(conn, tenant, webhook, batch_id=batch_id)
        return batch_id, len(rows)

    # ---------------------------------------------------------------- reading jobs
    def get_job(self, job_id: uuid.UUID, tenant: str | None = None) -> dict[str, Any] | None:
        """The job with its domain's home-page fields; None when missing or not `tenant`'s (None: any)."""
        with self.engine.connect() as conn:
            if tenant is None:
                row = conn.execute(_JOB_STATUS_QUERY, {"job_id": job_id}).mappings().first()
            else:
                row = conn.execute(_TENANT_JOB_STATUS_QUERY, {"job_id": job_id, "tenant": tenant}).mappings().first()
        if row is None:
            return None
        out = dict(row)
        since = out.pop("crawls_since")
        out["log_expired"] = since is not None and since >= self.logs_kept
        if out["log_expired"]:
            out["log_url"] = None
        return out

    def job_row(self, job_id: uuid.UUID, tenant: str | None = None) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id, *_mine(jobs, tenant))).mappings().first()
        return dict(row) if row else None

    def previous_job(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """The domain's previous complete scan before `job` (pipelines.scans: what "new" and "removed"
        compare with). Crawled data is shared per domain, so this may be another tenant's scan (its id is
        only shown to its tenant: the row has `tenant`)."""
        with self.engine.connect() as conn:
            return scans.previous_complete_scan(conn, job)

    def page_query(self, job_id: uuid.UUID, other_id: uuid.UUID | None, after_url: str | None,
                   limit: int | None):
        """Pages of scan `job_id` that scan `other_id` did not see (all of them when None), in URL
        order along the primary key (job_id, url); the keyset cursor is the last URL."""
        cols = [pages.c.url, pages.c.lastmod, pages.c.changefreq, pages.c.priority, pages.c.alternates,
                pages.c.images, pages.c.news, pages.c.videos, sitemaps.c.url.label("sitemap_url")]
        q = (select(*cols).select_from(pages.outerjoin(sitemaps, sitemaps.c.id == pages.c.sitemap_id))
             .where(scans.only_in(job_id, other_id)))
        if after_url is not None:
            q = q.where(pages.c.url > after_url)
        q = q.order_by(pages.c.url)
        if limit is not None:
            q = q.limit(limit)
        return q

    def list_pages(self, job_id: uuid.UUID, other_id: uuid.UUID | None, after_url: str | None,
                   limit: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(self.page_query(job_id, other_id, after_url, limit)).mappings()]

    def count_pages(self, job_id: uuid.UUID, other_id: uuid.UUID | None) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(pages)
                                .where(scans.only_in(job_id, other_id))).scalar_one()

    # ---------------------------------------------------------------- exports (api/exports.py)
    def _export_select(self, what: UrlExport, cols: list[Any]) -> Any:
        """SELECT `cols` over the pages `what` lists, in export order: a job's URLs in URL order; a batch's
        jobs in domain order, each in URL order."""
        joined = pages.outerjoin(sitemaps, sitemaps.c.id == pages.c.sitemap_id)
        if what.batch_id is None:
            return select(*cols).select_from(joined).where(scans.only_in(what.job_id, what.other_id)).order_by(pages.c.url)
        return (select(*cols).select_from(joined.join(jobs, jobs.c.id == pages.c.job_id))
                .where(jobs.c.batch_id == what.batch_id).order_by(jobs.c.domain, pages.c.job_id, pages.c.url))

    def _export_values(self, what: UrlExport) -> dict[str, Any]:
        """Each export column in SQL: lead columns as text, lastmod as its `rows.format_time` text, priority,
        the other URL columns as stored (the nested values as their JSON text)."""
        if self.is_postgres:  # to_char's US is always 6 digits; isoformat leaves ".000000" out
            lastmod = func.replace(func.to_char(func.timezone("UTC", pages.c.lastmod), _PG_ISO), ".000000Z", "Z")
            job_text = cast(pages.c.job_id, Text)
        else:  # SQLAlchemy's SQLite text: "YYYY-MM-DD HH:MM:SS.ffffff" (UTC), a UUID as 32 hex digits
            stored = type_coerce(pages.c.lastmod, Text)
            lastmod = func.replace(func.substr(stored, 1, 10) + "T" + func.substr(stored, 12) + "Z", ".000000Z", "Z")
            hexid = type_coerce(pages.c.job_id, Text)
            job_text = func.substr(hexid, 1, 8)
            for first, length in ((9, 4), (13, 4), (17, 4), (21, 12)):
                job_text = job_text + "-" + func.substr(hexid, first, length)
        cols: dict[str, Any] = {"domain": jobs.c.domain, "job_id": job_text} if what.batch_id is not None else {}
        cols.update(url=pages.c.url, lastmod=type_coerce(lastmod, Text), changefreq=pages.c.changefreq,
                    priority=pages.c.priority, sitemap_url=sitemaps.c.url)
        for name in NESTED_COLUMNS:  # as text: psycopg2 would call its Python JSON parser for every cell, NULL too
            cols[name] = cast(pages.c[name], Text) if self.is_postgres else type_coerce(pages.c[name], Text)
        return cols

    def _odd_rows(self, what: UrlExport) -> Any:
        """PostgreSQL: a row of `what` the database would not write exactly as `pipelines.rows` does, if
        any: priority outside 0..1, a number or a top-level true/false in a nested value (jsonb keeps a
        number's own digits, Python its float's), a carriage return in a URL (PostgreSQL's CSV quotes
        it, Python's csv module does not). The crawler stores none but the last."""
        odd = [func.strpos(pages.c.url, "\r") > 0, func.strpos(sitemaps.c.url, "\r") > 0,
               ~pages.c.priority.between(0, 1)]
        for name in NESTED_COLUMNS:
            col = pages.c[name]
            odd += [func.jsonb_path_exists(col, _JSON_NUMBER), func.jsonb_typeof(col) == "boolean"]
        return self._export_select(what, [literal(1)]).where(or_(*odd)).order_by(None).limit(1)

    def export_rows(self, what: UrlExport, nested: str, chunk: int = 5000) -> Iterator[list[Any]]:
        """Chunks of export rows (tuples of `what.columns`) on one server-side cursor (PostgreSQL): lastmod as
        its text, priority a float, the nested values as JSON values (`nested="values"`) or as the text
        of their CSV cell (`"cells"`), None when null."""
        cols = self._export_values(what)
        fix = _value if nested == "values" else _cell if self.is_postgres else _sqlite_cell
        q = self._export_select(what, [c.label(k) for k, c in cols.items()])
        first = len(cols) - len(NESTED_COLUMNS)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk).execute(q)
            for part in result.partitions(chunk):
                yield [row if row[first] is None and row[first + 1] is None and row[first + 2] is None
                       and row[first + 3] is None else (*row[:first], *map(fix, row[first:])) for row in part]

    def copy_export(self, what: UrlExport, fmt: str, write: Callable[[bytes], Any]) -> bool:
        """PostgreSQL: the rows of `what` from the database's own COPY, every value formatted in SQL as
        `pipelines.rows` and `api.http.dumps` format it, `write` getting each row's bytes; or False, with
        nothing written, when `what` has a row the database would write otherwise (`_odd_rows`: checked
        in the COPY's own snapshot, so a scan still running cannot add one in between).
        fmt "csv": `COPY ... (FORMAT csv)`, the CSV lines (no header); "csv-nulls": the same, but with
        COPY's own rule for an empty string (quoted, where a null is not), for a CSV reader. fmt "jsonl":
        `COPY ...` (text format) of one JSON object per row, whose only escape is a doubled backslash
        (JSON text has no tab or line break). A `write` that raises ends the COPY, and the connection
        is dropped."""
        cols = self._export_values(what)
        # repr()'s shortest round-trip digits (PostgreSQL's with extra_float_digits=1), and repr's ".0"
        digits = cast(cols["priority"], Text)
        cols["priority"] = case((digits.op("~")("^-?[0-9]+$"), digits + ".0"), else_=digits)
        if fmt == "csv":
            for name in NESTED_COLUMNS:
                cols[name] = pages.c[name].op("#>>", return_type=Text)(literal_column("'{}'"))
            select_list = [func.nullif(c, "") for c in cols.values()]  # COPY quotes '', the csv module does not
            options = "(FORMAT csv)"
        elif fmt == "csv-nulls":  # for a CSV reader: '' is quoted, NULL is not
            for name in NESTED_COLUMNS:
                cols[name] = pages.c[name].op("#>>", return_type=Text)(literal_column("'{}'"))
            select_list = list(cols.values())
            options = "(FORMAT csv)"
        else:
            line = None
            for name, col in cols.items():
                if name == "priority":
                    value = col
                elif name in NESTED_COLUMNS:
                    value = cast(pages.c[name], Text)
                else:
                    value = cast(func.to_json(col), Text)
                part = literal(("{" if line is None else ",") + f'"{name}":') + func.coalesce(value, "null")
                line = part if line is None else line + part
            nested = or_(*(pages.c[name].isnot(None) for name in NESTED_COLUMNS))
            select_list = [case((nested, literal(JSONL_MARK) + line + "}"), else_=line + "}")]
            options = ""
        compiled = self._export_select(what, select_list).compile(dialect=self.engine.dialect)
        check = self._odd_rows(what).compile(dialect=self.engine.dialect)
        raw = self.engine.raw_connection()
        done = False
        try:
            with raw.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot: check, then COPY
                cur.execute(str(check), check.params)
                plain = cur.fetchone() is None
                if plain:
                    sql = cur.mogrify(str(compiled), compiled.params)
                    cur.execute("SET LOCAL extra_float_digits = 1")  # PostgreSQL 12+'s default: shortest exact digits
                    cur.execute("SET LOCAL client_encoding = 'UTF8'")
                    cur.copy_expert(b"COPY (" + sql + b") TO STDOUT " + options.encode(), _CopySink(write))
            raw.rollback()
            done = True
        finally:
            if not done:
                raw.invalidate()  # a COPY cut short leaves the connection mid-protocol
            raw.close()
        return plain

    def list_sitemaps(self, job_id: uuid.UUID) -> list[dict[str, Any]]:
        q = select(sitemaps).where(sitemaps.c.job_id == job_id).order_by(sitemaps.c.id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def domain_id(self, name: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(domains.c.id).where(domains.c.name == name)).scalar()

    def get_domain(self, name: str, tenant: str | None = None) -> dict[str, Any] | None:
        """The domain's shared crawled data, with `tenant`'s recent and latest jobs only (None: anyone's)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(domains).where(domains.c.name == name)).mappings().first()
            if row is None:
                return None
            out = dict(row)
            recent = conn.execute(
                select(jobs.c.id, jobs.c.status, jobs.c.created_at, jobs.c.finished_at, jobs.c.urls_found,
                       jobs.c.new_urls, jobs.c.removed_urls, jobs.c.error)
                .where(jobs.c.domain == name, *_mine(jobs, tenant)).order_by(jobs.c.created_at.desc()).limit(10)
            ).mappings().all()
            out["recent_jobs"] = [dict(r) for r in recent]
            latest_id = out.get("last_job_id")
            latest = None
            if latest_id is not None:
                latest = conn.execute(select(jobs).where(jobs.c.id == latest_id, *_mine(jobs, tenant))).mappings().first()
            if latest is None:
                latest = conn.execute(
                    select(jobs).where(jobs.c.domain == name, jobs.c.status == JobStatus.COMPLETE, *_mine(jobs, tenant))
                    .order_by(jobs.c.finished_at.desc()).limit(1)
                ).mappings().first()
            out["latest_job"] = dict(latest) if latest else None
        return out

    # ---------------------------------------------------------------- batches
    def batch_row(self, batch_id: uuid.UUID, tenant: str | None = None) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(batches).where(batches.c.id == batch_id, *_mine(batches, tenant))).mappings().first()
        return dict(row) if row else None

    def batch_counts(self, batch_id: uuid.UUID, conn=None) -> dict[str, Any]:
        q = (
            select(jobs.c.status, jobs.c.outcome, func.count(), func.coalesce(func.sum(jobs.c.urls_found), 0),
                   func.min(jobs.c.started_at), func.max(jobs.c.finished_at),
                   func.count(jobs.c.scrapyd_jobid))
            .where(jobs.c.batch_id == batch_id)
            .group_by(jobs.c.status, jobs.c.outcome)
        )
        counts = {s.value: 0 for s in JobStatus}
        outcomes: dict[str, int] = {}
        urls = 0
        started = finished = None
        dispatched = 0
        if conn is None:
            with self.engine.connect() as c:
                rows = c.execute(q).all()
        else:
            rows = conn.execute(q).all()
        for status, outcome, n, u, s_at, f_at, n_disp in rows:
            counts[_status_value(status)] += n
            if outcome is not None:
                outcomes[_status_value(outcome)] = outcomes.get(_status_value(outcome), 0) + n
            urls += int(u or 0)
            dispatched += n_disp
            if s_at is not None and (started is None or s_at < started):
                started = s_at
            if f_at is not None and (finished is None or f_at > finished):
                finished = f_at
        return {"counts": counts, "outcomes": outcomes, "urls_found": urls, "started_at": started, "last_finished_at": finished,
                "dispatched": dispatched}

    def batch_jobs(self, batch_id: uuid.UUID, after_domain: str | None, limit: int,
                   status: str | None = None, outcome: str | None = None) -> list[dict[str, Any]]:
        q = select(jobs.c.id, jobs.c.domain, jobs.c.status, jobs.c.outcome, jobs.c.error, jobs.c.urls_found,
                   jobs.c.started_at, jobs.c.finished_at, jobs.c.scrapyd_jobid, jobs.c.new_urls,
                   jobs.c.removed_urls, jobs.c.duration_seconds).where(jobs.c.batch_id == batch_id)
        if status:
            q = q.where(jobs.c.status == status)
        if outcome:
            q = q.where(jobs.c.outcome == outcome)
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
    def cancel_job(self, job_id: uuid.UUID, tenant: str | None = None) -> tuple[str, dict[str, Any] | None]:
        """('cancelled'|'final'|'missing', job row). Only pending/running jobs of `tenant` are cancelled."""
        with self.engine.begin() as conn:
            row = conn.execute(select(jobs.c.id).where(jobs.c.id == job_id, *_mine(jobs, tenant))).first()
            changed = lifecycle.cancel(conn, job_id=job_id) if row is not None else 0
            row = conn.execute(select(jobs).where(jobs.c.id == job_id, *_mine(jobs, tenant))).mappings().first()
        if row is None:
            return "missing", None
        return ("cancelled" if changed else "final"), dict(row)

    def cancel_batch(self, batch_id: uuid.UUID, tenant: str | None = None) -> tuple[str, int]:
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(select(batches.c.status).where(batches.c.id == batch_id, *_mine(batches, tenant))).first()
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


    # ---------------------------------------------------------------- listings (keyset paged, newest first)
    def _newest_first(self, table, columns: list[Any], where: list[Any], after: tuple[Any, str] | None,
                      limit: int) -> tuple[int, list[dict[str, Any]]]:
        """(rows matching `where`, one page of them newest first): keyset paging on (created_at, id)."""
        q = select(*columns).where(*where)
        if after is not None:
            q = q.where(tuple_(table.c.created_at, table.c.id) < tuple_(literal(_ts(after[0]), table.c.created_at.type),
                                                                 literal(_uuid(after[1]), table.c.id.type)))
        q = q.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
            return total, [dict(r) for r in conn.execute(q).mappings()]

    def list_batches(self, status: str | None, created_after: dt.datetime | None, after: tuple[Any, str] | None,
                     limit: int, tenant: Any = None) -> tuple[int, list[dict[str, Any]]]:
        where = []
        if status:
            where.append(batches.c.status == status)
        if created_after is not None:
            where.append(batches.c.created_at > created_after)
        if tenant is not None:
            where.append(batches.c.tenant == tenant)
        return self._newest_first(batches, [batches.c.id, batches.c.status, batches.c.created_at,
                                            batches.c.finished_at, batches.c.total_jobs], where, after, limit)

    def list_jobs(self, domain: str | None, status: str | None, outcome: str | None, batch_id: uuid.UUID | None,
                  after: tuple[Any, str] | None, limit: int, tenant: Any = None) -> tuple[int, list[dict[str, Any]]]:
        where = [column == wanted for column, wanted in ((jobs.c.domain, domain), (jobs.c.status, status),
                                                         (jobs.c.outcome, outcome), (jobs.c.batch_id, batch_id),
                                                         (jobs.c.tenant, tenant)) if wanted is not None]
        return self._newest_first(jobs, [jobs.c.id, jobs.c.domain, jobs.c.batch_id, jobs.c.status, jobs.c.outcome,
                                         jobs.c.error, jobs.c.urls_found, jobs.c.created_at, jobs.c.finished_at],
                                  where, after, limit)

    def list_domains(self, q: str | None, has_sitemap: bool | None, sort: str, after: tuple[Any, Any] | None,
                     limit: int, tenant: Any = None) -> tuple[int, list[dict[str, Any]]]:
        where = []
        if q:
            where.append(domains.c.name.contains(q.lower(), autoescape=True))
        if has_sitemap is not None:
            where.append(domains.c.sitemap_count > 0 if has_sitemap else domains.c.sitemap_count == 0)
        if tenant is not None:
            where.append(domains.c.name.in_(select(jobs.c.domain).where(jobs.c.tenant == tenant)))
        if sort == "name":
            key, order = domains.c.name, (domains.c.name.asc(), domains.c.id.asc())
        elif sort == "url_count":
            key, order = domains.c.url_count, (domains.c.url_count.desc(), domains.c.id.desc())
        else:  # last_scan: never-scanned domains last
            key = func.coalesce(domains.c.last_scan_at, literal(_EPOCH, domains.c.last_scan_at.type))
            order = (key.desc(), domains.c.id.desc())
        stmt = select(domains.c.id, domains.c.name, domains.c.title, domains.c.url_count, domains.c.sitemap_count,
                      domains.c.last_scan_at, domains.c.last_job_id).where(*where)
        if after is not None:
            if not isinstance(after[1], int):
                raise ValueError("cursor")
            value = literal(after[0] if sort != "last_scan_at" else (_ts(after[0]) if after[0] else _EPOCH), key.type)
            if sort == "name":
                stmt = stmt.where(tuple_(key, domains.c.id) > tuple_(value, after[1]))
            else:
                stmt = stmt.where(tuple_(key, domains.c.id) < tuple_(value, after[1]))
        stmt = stmt.order_by(*order).limit(limit)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(domains).where(*where)).scalar_one()
            return total, [dict(r) for r in conn.execute(stmt).mappings()]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _ts(value: Any) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("cursor") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValueError("cursor") from None


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
