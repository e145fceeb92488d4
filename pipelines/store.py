"""Database writes of a crawl, as SQLAlchemy Core statements on a Connection (no Scrapy here).

Every write is an upsert on the natural keys — domains(name), sitemaps(domain_id, url),
pages(domain_id, url) — so a re-scan updates rows in place; pages are written in bulk (COPY into a
staging table and one INSERT ... SELECT on PostgreSQL, executemany on SQLite), never one round trip
per URL.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Column, MetaData, Table, bindparam, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from pipelines import lifecycle
from pipelines.models import Domain, Page, Sitemap
from pipelines.status import JobStatus, Outcome

_pages = Page.__table__
_sitemaps = Sitemap.__table__
_domains = Domain.__table__
_PAGE_UPDATES = ("lastmod", "changefreq", "priority", "alternates", "images", "news", "videos", "sitemap_id",
                 "last_seen_job_id", "last_seen_at")


def _insert(conn: Connection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


# Statements built once per dialect, values passed at execution: SQLAlchemy's compiled cache then
# hits without rebuilding a statement (and its cache key) for every domain and sitemap.
_BUILT: dict[str, dict[str, Any]] = {}
_SITEMAP_UPDATES = [c.name for c in _sitemaps.c if c.name not in ("id", "domain_id", "url", "first_job_id")]
_HOME_COLUMNS = ("home_url", "title", "description", "language", "favicon", "is_wordpress", "wordpress_version",
                 "generator", "emails", "phones", "social_links")


def _statements(conn: Connection) -> dict[str, Any]:
    built = _BUILT.get(conn.dialect.name)
    if built is None:
        domain = _insert(conn, _domains)
        domain = domain.on_conflict_do_update(index_elements=["name"], set_={"name": domain.excluded.name})
        sitemap = _insert(conn, _sitemaps)
        sitemap = sitemap.on_conflict_do_update(index_elements=["domain_id", "url"],
                                                set_={name: sitemap.excluded[name] for name in _SITEMAP_UPDATES})
        built = _BUILT[conn.dialect.name] = {
            "domain": domain.returning(_domains.c.id),
            "sitemap": sitemap.returning(_sitemaps.c.id),
            "home": update(_domains).where(_domains.c.id == bindparam("p_domain")).values(
                {name: bindparam(f"p_{name}", type_=_domains.c[name].type) for name in _HOME_COLUMNS}),
        }
    return built


def ensure_domain(conn: Connection, name: str) -> int:
    return conn.execute(_statements(conn)["domain"], {"name": name, "url_count": 0, "sitemap_count": 0}).scalar_one()


def start_job(conn: Connection, job_id: uuid.UUID, domain: str, domain_id: int, batch_id: uuid.UUID | None,
              options: dict[str, Any], started_at: dt.datetime, crawl_id: str | None = None) -> bool:
    """Mark the job running (creating its row when the crawl was started by hand). False when the job
    is not this crawl's to start (final, e.g. cancelled before its crawl reached it, or handed to
    another crawl)."""
    if lifecycle.start(conn, job_id, domain_id, started_at, crawl_id):
        return True
    return lifecycle.create_running(conn, job_id, domain, domain_id, batch_id, options, started_at)


def save_home_page(conn: Connection, domain_id: int, url: str, metadata: dict[str, Any]) -> None:
    values = {f"p_{name}": metadata.get(name) for name in _HOME_COLUMNS}
    conn.execute(_statements(conn)["home"], {**values, "p_home_url": url, "p_domain": domain_id})


def upsert_sitemap(conn: Connection, domain_id: int, job_id: uuid.UUID, fields: dict[str, Any]) -> int:
    """Insert or refresh a sitemap row; `fields` holds every column but the keys and job ids."""
    params = {**fields, "domain_id": domain_id, "first_job_id": job_id, "last_job_id": job_id}
    return conn.execute(_statements(conn)["sitemap"], params).scalar_one()


def upsert_pages(conn: Connection, domain_id: int, sitemap_id: int | None, job_id: uuid.UUID, now: dt.datetime,
                 entries: list[dict[str, Any]]) -> int:
    """Insert or refresh page rows from the parser's page dicts. A page keeps its first_seen_* and gets
    this job as last_seen_*. URLs repeated within `entries` are written once."""
    if not entries:
        return 0
    if conn.dialect.name == "postgresql":
        _stage_pages_postgresql(conn, entries)
        constants = {"domain_id": domain_id, "sitemap_id": sitemap_id, "first_seen_job_id": job_id,
                     "last_seen_job_id": job_id, "first_seen_at": now, "last_seen_at": now}
        columns = [*_STAGED, *constants]
        source = select(*(_stage.c[name] for name in _STAGED),
                        *(literal(value, _pages.c[name].type) for name, value in constants.items()))
        source = source.ext(postgresql.distinct_on(_stage.c.url))
        stmt = postgresql.insert(_pages).from_select(columns, source)
    else:
        rows = [{**entry, "domain_id": domain_id, "sitemap_id": sitemap_id, "first_seen_job_id": job_id,
                 "last_seen_job_id": job_id, "first_seen_at": now, "last_seen_at": now} for entry in entries]
        stmt = sqlite.insert(_pages)
        stmt = stmt.on_conflict_do_update(index_elements=["domain_id", "url"],
                                          set_={name: stmt.excluded[name] for name in _PAGE_UPDATES})
        conn.execute(stmt, rows)
        return len(rows)
    stmt = stmt.on_conflict_do_update(index_elements=["domain_id", "url"],
                                      set_={name: stmt.excluded[name] for name in _PAGE_UPDATES})
    written = conn.execute(stmt).rowcount
    conn.exec_driver_sql("DELETE FROM page_stage")  # the next chunk may come in the same transaction
    return written


# PostgreSQL: pages are COPYed into a temporary staging table (emptied after use), then upserted
# with one INSERT ... SELECT ... ON CONFLICT: per-row statements cost ~20x more.
_STAGED = ("url", "lastmod", "changefreq", "priority", "alternates", "images", "news", "videos")
_stage = Table("page_stage", MetaData(), *(Column(name, _pages.c[name].type) for name in _STAGED))
_STAGE_DDL = ("CREATE TEMPORARY TABLE IF NOT EXISTS page_stage (url text COLLATE \"C\", lastmod timestamptz, "
              "changefreq varchar(16), priority float8, alternates jsonb, images jsonb, news jsonb, videos jsonb)")
_COPY = f"COPY page_stage ({', '.join(_STAGED)}) FROM STDIN WITH (FORMAT csv)"


def _stage_pages_postgresql(conn: Connection, entries: list[dict[str, Any]]) -> None:
    dbapi = conn.connection.dbapi_connection
    info = conn.connection.info
    if not info.get("page_stage"):
        conn.exec_driver_sql(_STAGE_DDL)
        info["page_stage"] = True
    buf = io.StringIO()
    write = csv.writer(buf).writerow
    dumps = json.dumps
    for e in entries:
        lastmod = e["lastmod"]
        alternates, images, news, videos = e["alternates"], e["images"], e["news"], e["videos"]
        write((
            e["url"], lastmod.isoformat() if lastmod is not None else None, e["changefreq"], e["priority"],
            dumps(alternates) if alternates is not None else None, dumps(images) if images is not None else None,
            dumps(news) if news is not None else None, dumps(videos) if videos is not None else None,
        ))
    buf.seek(0)
    with dbapi.cursor() as cur:
        cur.copy_expert(_COPY, buf)


def finish_job(conn: Connection, job_id: uuid.UUID, domain_id: int | None, outcome: Outcome, error: str | None,
               finished_at: dt.datetime, stats: dict[str, Any], origin: str | None = None) -> bool:
    """Close the job with its stats (`lifecycle.finish`); on success also refresh the domain's summary.
    URL counts come from the pages table: found = last seen by this job, new = first seen by it,
    removed = last seen by the domain's previous complete scan and not by this one."""
    counts = {"urls_found": 0, "new_urls": 0, "removed_urls": 0}
    if domain_id is not None:
        previous = conn.execute(select(Domain.last_job_id).where(Domain.id == domain_id)).scalar_one_or_none()
        if previous == job_id:
            previous = None
        c = _pages.c
        row = conn.execute(select(
            func.count().filter(c.last_seen_job_id == job_id),
            func.count().filter(c.first_seen_job_id == job_id),
            func.count().filter(c.last_seen_job_id == previous) if previous is not None else literal(0),
        ).where(c.domain_id == domain_id)).one()
        counts = {"urls_found": row[0], "new_urls": row[1], "removed_urls": row[2]}
    known = {k: v for k, v in stats.items() if k in ("sitemaps_found", "sitemaps_failed", "bytes_downloaded",
                                                      "duration_seconds")}
    if origin is not None:
        known["origin"] = origin
    changed = lifecycle.finish(conn, job_id, outcome, error, finished_at, **counts, **known)
    if changed and outcome.status is JobStatus.COMPLETE and domain_id is not None:
        conn.execute(update(Domain).where(Domain.id == domain_id).values(
            last_job_id=job_id, last_scan_at=finished_at, url_count=counts["urls_found"],
            sitemap_count=stats.get("sitemaps_found", 0),
            first_scan_at=func.coalesce(Domain.first_scan_at, finished_at)))
    return changed


def fail_unfinished(conn: Connection, job_ids: Iterable[uuid.UUID], reason: str, finished_at: dt.datetime) -> int:
    """Jobs of an ending crawl that are still pending/running become failed (`interrupted`) with
    `reason`; jobs a scrapyd crawl carries are left to the dispatcher, which requeues them."""
    return lifecycle.fail(conn, list(job_ids), Outcome.INTERRUPTED, reason, finished_at, unclaimed_only=True)
