"""Database writes of a crawl, as SQLAlchemy Core statements on a Connection (no Scrapy here).

Each scan writes its own snapshot (`pipelines.scans`): sitemaps unique (job_id, url), pages keyed
(job_id, url); rows of earlier scans are never touched. Pages are written in bulk (COPY on
PostgreSQL, executemany on SQLite), never one round trip per URL, and never twice: a URL listed by
two sitemaps of one scan is stored once, and a job id stored again after a crash never duplicates a
row (ON CONFLICT DO NOTHING).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from pipelines import lifecycle, scans
from pipelines.models import Domain, Page, Sitemap
from pipelines.status import JobStatus, Outcome

_pages = Page.__table__
_sitemaps = Sitemap.__table__
_domains = Domain.__table__


def _insert(conn: Connection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


# Statements built once per dialect, values passed at execution: SQLAlchemy's compiled cache then
# hits without rebuilding a statement (and its cache key) for every domain and sitemap.
_BUILT: dict[str, dict[str, Any]] = {}
_SITEMAP_UPDATES = [c.name for c in _sitemaps.c if c.name not in ("id", "job_id", "domain_id", "url")]
_HOME_COLUMNS = ("home_url", "title", "description", "language", "favicon", "is_wordpress", "wordpress_version",
                 "generator", "emails", "phones", "social_links")


def _statements(conn: Connection) -> dict[str, Any]:
    built = _BUILT.get(conn.dialect.name)
    if built is None:
        domain = _insert(conn, _domains)
        domain = domain.on_conflict_do_update(index_elements=["name"], set_={"name": domain.excluded.name})
        sitemap = _insert(conn, _sitemaps)
        sitemap = sitemap.on_conflict_do_update(index_elements=["job_id", "url"],
                                                set_={name: sitemap.excluded[name] for name in _SITEMAP_UPDATES})
        built = _BUILT[conn.dialect.name] = {
            "domain": domain.returning(_domains.c.id),
            "domains": domain.returning(_domains.c.id, _domains.c.name),
            "sitemap": sitemap.returning(_sitemaps.c.id),
            "sitemaps": sitemap.returning(_sitemaps.c.id, _sitemaps.c.job_id, _sitemaps.c.url),
            "pages": sqlite.insert(_pages).on_conflict_do_nothing(index_elements=["job_id", "url"]),
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
    """Insert or refresh the scan's row of a sitemap (the spider may send a sitemap twice: before its
    first pages, then with its counts); `fields` holds every column but the keys."""
    params = {**fields, "domain_id": domain_id, "job_id": job_id}
    return conn.execute(_statements(conn)["sitemap"], params).scalar_one()


def insert_pages(conn: Connection, domain_id: int, sitemap_id: int | None, job_id: uuid.UUID,
                 entries: list[dict[str, Any]]) -> int:
    """Add page rows from the parser's page dicts to the scan's snapshot. A URL already in the snapshot
    (another sitemap of the scan, repeated within `entries`, a chunk stored again) is kept as first
    written."""
    if not entries:
        return 0
    if conn.dialect.name != "postgresql":
        extra = {"job_id": job_id, "domain_id": domain_id, "sitemap_id": sitemap_id}
        return conn.execute(_statements(conn)["pages"], [{**entry, **extra} for entry in entries]).rowcount
    from psycopg2.extensions import encodings  # PostgreSQL's encoding names -> Python's

    dbapi = conn.connection.dbapi_connection
    data = _page_rows(entries, job_id, domain_id, sitemap_id).encode(encodings.get(dbapi.encoding, "utf-8"))
    # read by psycopg2 in one piece: it takes the GIL for every read, and the crawl's parsing holds it
    size = max(len(data), 8192)
    with dbapi.cursor() as cur:
        try:  # the common case: none of these URLs is in the snapshot yet, COPY straight into pages
            cur.copy_expert(_COPY_PAGES_GUARDED, io.BytesIO(data), size)
            return len(entries)
        except Exception as exc:
            if getattr(exc, "pgcode", None) != _UNIQUE_VIOLATION:
                raise
            cur.execute(_UNDO_PAGES)
        # some are (or repeat within the chunk): through the staging table, skipping those
        if not conn.connection.info.get("page_stage"):
            cur.execute(_STAGE_DDL)
            conn.connection.info["page_stage"] = True
        cur.copy_expert(_COPY_STAGE, io.BytesIO(data), size)
        cur.execute(_INSERT_STAGED)  # and empties the staging table: the next chunk may come in this transaction
        return cur.rowcount


# PostgreSQL: a chunk of pages is one COPY into `pages` (no index but the primary key to maintain),
# under a savepoint, all in one round trip. When that meets a URL the snapshot already holds, the
# savepoint is rolled back and the chunk goes through a temporary staging table and one INSERT ...
# SELECT ... ON CONFLICT DO NOTHING (DO NOTHING also skips a URL repeated within the statement).
# Per-row statements cost ~20x more; the staging path ~2x more than the direct COPY.
_UNIQUE_VIOLATION = "23505"
_COPIED = ("url", "lastmod", "changefreq", "priority", "alternates", "images", "news", "videos", "job_id", "domain_id",
           "sitemap_id")
_COLUMNS = ", ".join(_COPIED)
_COPY_PAGES = f"COPY pages ({_COLUMNS}) FROM STDIN"
# the savepoint, the COPY and the savepoint's release in one round trip (one query, simple protocol)
_COPY_PAGES_GUARDED = f"SAVEPOINT scrapersky_pages; {_COPY_PAGES}; RELEASE SAVEPOINT scrapersky_pages"
_UNDO_PAGES = "ROLLBACK TO SAVEPOINT scrapersky_pages; RELEASE SAVEPOINT scrapersky_pages"
_COPY_STAGE = f"COPY page_stage ({_COLUMNS}) FROM STDIN"
_STAGE_DDL = ("CREATE TEMPORARY TABLE IF NOT EXISTS page_stage (url text COLLATE \"C\", lastmod timestamptz, "
              "changefreq varchar(16), priority float8, alternates jsonb, images jsonb, news jsonb, videos jsonb, "
              "job_id uuid, domain_id integer, sitemap_id integer)")
_INSERT_STAGED = (f"WITH staged AS (DELETE FROM page_stage RETURNING {_COLUMNS}) "
                  f"INSERT INTO pages ({_COLUMNS}) SELECT {_COLUMNS} FROM staged ON CONFLICT (job_id, url) DO NOTHING")


def _page_rows(entries: list[dict[str, Any]], job_id: uuid.UUID, domain_id: int, sitemap_id: int | None) -> str:
    """The COPY text (PostgreSQL's text format: tab-separated, `\\N` for NULL, backslash escapes) of a
    chunk of page dicts, one line per entry, formatted here rather than through the csv module:
    values are escaped only where they can hold a tab, newline, CR or backslash (URLs and JSON, the
    URLs only when one of the chunk does)."""
    dumps = json.dumps
    null = "\\N"
    tail = f"\t{job_id}\t{domain_id}\t{null if sitemap_id is None else sitemap_id}\n"
    no_extras = f"\t{null}\t{null}\t{null}\t{null}{tail}"
    urls = [e["url"] for e in entries]
    if _COPY_SPECIAL.search("".join(urls)):
        urls = [_copy_escape(url) for url in urls]
    lines = []
    add = lines.append
    for url, e in zip(urls, entries):
        lastmod, changefreq, priority = e["lastmod"], e["changefreq"], e["priority"]
        alternates, images, news, videos = e["alternates"], e["images"], e["news"], e["videos"]
        if alternates is None and images is None and news is None and videos is None:
            extras = no_extras
        else:
            extras = "".join(("\t" + dumps(value).replace("\\", "\\\\")) if value is not None else "\t\\N"
                             for value in (alternates, images, news, videos)) + tail
        add(f"{url}\t{null if lastmod is None else lastmod.isoformat()}\t"
            f"{null if changefreq is None else _copy_word(changefreq)}\t"
            f"{null if priority is None else priority}"
            f"{extras}")
    return "".join(lines)


_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


_WORDS: dict[str, str] = {}  # short values repeated on every row (changefreq) -> their COPY text


def _copy_escape(value: str) -> str:
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


def _copy_word(value: str) -> str:
    """`_copy_escape` of a value of a small vocabulary, worked out once per value."""
    escaped = _WORDS.get(value)
    if escaped is None:
        escaped = _copy_escape(value)
        if len(_WORDS) < 1000:
            _WORDS[value] = escaped
    return escaped


_JOB_STATS = ("sitemaps_found", "sitemaps_failed", "bytes_downloaded", "duration_seconds")  # stored on the job


def finish_job(conn: Connection, job_id: uuid.UUID, domain_id: int | None, outcome: Outcome, error: str | None,
               finished_at: dt.datetime, stats: dict[str, Any], origin: str | None = None,
               keep_scans: int = 0) -> bool:
    """Close the job with its stats (`lifecycle.finish`); on success also refresh the domain's summary
    and apply the retention setting (`keep_scans`, see `pipelines.scans`). URL counts come from the
    scan's snapshot: found = its pages, new / removed = set differences with the domain's previous
    complete scan."""
    counts = {"urls_found": 0, "new_urls": 0, "removed_urls": 0}
    if domain_id is not None:
        previous = scans.previous_complete_scan(conn, job_id)
        counts = scans.counts(conn, job_id, previous["id"] if previous else None)
    known = {k: v for k, v in stats.items() if k in _JOB_STATS}
    if origin is not None:
        known["origin"] = origin
    changed = lifecycle.finish(conn, job_id, outcome, error, finished_at, **counts, **known)
    if changed and outcome.status is JobStatus.COMPLETE and domain_id is not None:
        conn.execute(update(Domain).where(Domain.id == domain_id).values(
            last_job_id=job_id, last_scan_at=finished_at, url_count=counts["urls_found"],
            sitemap_count=stats.get("sitemaps_found", 0),
            first_scan_at=func.coalesce(Domain.first_scan_at, finished_at)))
        scans.prune(conn, domain_id, keep_scans, finished_at)
    return changed


# -- many domains at once --------------------------------------------------------------------------
# The crawl's database writer stores a group of items of many domains in one transaction; on PostgreSQL
# each kind of per-domain write is then a few statements for the whole group (the functions below),
# instead of a few per domain. They do exactly what the one-domain functions above do, in that order.

def ensure_domains(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    """`ensure_domain` for many names: name -> domain id (one statement; names sorted, so two crawls
    upserting the same domains lock them in the same order)."""
    unique = sorted(set(names))
    if not unique:
        return {}
    stmt = _statements(conn)["domains"]
    rows = conn.execute(stmt, [{"name": n, "url_count": 0, "sitemap_count": 0} for n in unique])
    return {name: domain_id for domain_id, name in rows}


def start_jobs(conn: Connection, jobs: list[tuple[uuid.UUID, str, int, uuid.UUID | None, dict[str, Any], dt.datetime]],
               crawl_id: str | None = None) -> list[uuid.UUID]:
    """`start_job` for many jobs: rows of (job id, domain, domain id, batch id, options, started_at).
    Returns the ids of the jobs that were not this crawl's to start (neither started nor created)."""
    started = lifecycle.start_many(conn, [(j[0], j[2], j[5]) for j in jobs], crawl_id)
    refused = []
    for job_id, domain, domain_id, batch_id, options, started_at in jobs:
        if job_id not in started and not lifecycle.create_running(conn, job_id, domain, domain_id, batch_id, options,
                                                                  started_at):
            refused.append(job_id)
    return refused


def save_home_pages(conn: Connection, pages: list[tuple[int, str, dict[str, Any]]]) -> None:
    """`save_home_page` for many domains: rows of (domain id, home URL, metadata), in order (a domain
    given twice keeps the last)."""
    if pages:
        conn.execute(_statements(conn)["home"], [
            {**{f"p_{name}": metadata.get(name) for name in _HOME_COLUMNS}, "p_home_url": url, "p_domain": domain_id}
            for domain_id, url, metadata in pages])


def upsert_sitemaps(conn: Connection, rows: list[tuple[int, uuid.UUID, dict[str, Any]]]) -> dict[tuple[uuid.UUID, str], int]:
    """`upsert_sitemap` for many rows (domain id, job id, fields); (job id, url) -> sitemap id. A sitemap
    sent twice keeps its last version, as storing them one after the other would."""
    last: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    for domain_id, job_id, fields in rows:
        last[(job_id, fields["url"])] = {**fields, "domain_id": domain_id, "job_id": job_id}
    if not last:
        return {}
    rows = conn.execute(_statements(conn)["sitemaps"], list(last.values())).all()
    return {(uuid.UUID(str(job_id)), url): sitemap_id for sitemap_id, job_id, url in rows}


def finish_jobs(conn: Connection, jobs: list[tuple[uuid.UUID, int | None, Outcome, str | None, dt.datetime,
                                                    dict[str, Any], str | None]], keep_scans: int = 0) -> set[uuid.UUID]:
    """`finish_job` for many jobs: rows of (job id, domain id, outcome, error, finished_at, stats,
    origin), in order. Returns the ids of the jobs that changed."""
    if not jobs:
        return set()
    # The previous complete scan of each job, then the URL counts (a plain count for first scans).
    known_domain = [j[0] for j in jobs if j[1] is not None]
    previous = scans.previous_complete_scans(conn, known_domain)
    firsts = [i for i in known_domain if i not in previous]
    found: dict[uuid.UUID, int] = {}
    if firsts:
        found = {uuid.UUID(str(a)): n for a, n in conn.execute(_COUNT_MANY, {"ids": [str(i) for i in firsts]})}
    rows = []
    for job_id, domain_id, outcome, error, finished_at, stats, origin in jobs:
        if domain_id is None:
            counts = {"urls_found": 0, "new_urls": 0, "removed_urls": 0}
        elif job_id in previous:
            counts = scans.counts(conn, job_id, previous[job_id])
        else:
            n = found.get(job_id, 0)
            counts = {"urls_found": n, "new_urls": n, "removed_urls": 0}
        values = {**counts, **{k: v for k, v in stats.items() if k in _JOB_STATS}}
        values["origin"] = origin
        rows.append((job_id, outcome, error, finished_at, values))
    changed = lifecycle.finish_many(conn, rows)
    # The domains' summaries, in order: a domain finished twice in the group takes the later scan.
    done = [(row, job[1], job[5]) for row, job in zip(rows, jobs, strict=True)
            if row[0] in changed and row[1].status is JobStatus.COMPLETE and job[1] is not None]
    while done:
        part, seen, rest = [], set(), []
        for entry in done:
            (rest if entry[1] in seen or rest else part).append(entry)
            seen.add(entry[1])
        conn.execute(_DOMAINS_SCANNED, {
            "domains": [domain_id for _, domain_id, _ in part], "jobs": [str(row[0]) for row, _, _ in part],
            "finished": [row[3] for row, _, _ in part], "urls": [row[4]["urls_found"] for row, _, _ in part],
            "sitemaps": [stats.get("sitemaps_found", 0) for _, _, stats in part]})
        for row, domain_id, _ in part:
            scans.prune(conn, domain_id, keep_scans, row[3])
        done = rest
    return changed


_COUNT_MANY = text("SELECT job_id, count(*) FROM pages WHERE job_id = ANY(CAST(:ids AS uuid[])) GROUP BY job_id")
_DOMAINS_SCANNED = text(
    "UPDATE domains SET last_job_id = v.job_id, last_scan_at = v.finished_at, url_count = v.urls, "
    "sitemap_count = v.sitemaps, first_scan_at = COALESCE(domains.first_scan_at, v.finished_at) "
    "FROM unnest(CAST(:domains AS integer[]), CAST(:jobs AS uuid[]), CAST(:finished AS timestamptz[]), "
    "CAST(:urls AS integer[]), CAST(:sitemaps AS integer[])) AS v(domain_id, job_id, finished_at, urls, sitemaps) "
    "WHERE domains.id = v.domain_id")


def fail_unfinished(conn: Connection, job_ids: Iterable[uuid.UUID], reason: str, finished_at: dt.datetime,
                    outcome: Outcome = Outcome.INTERRUPTED) -> int:
    """Jobs of an ending crawl that are still pending/running become failed with `outcome` and `reason`;
    jobs a scrapyd crawl carries are left to the dispatcher, which requeues them."""
    return lifecycle.fail(conn, list(job_ids), outcome, reason, finished_at, unclaimed_only=True)
