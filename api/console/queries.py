"""What the console's domain page reads about a domain's URLs and sitemaps: the one home of its SQL
about `pages` (and `sitemaps`), so the per-scan snapshot schema can be re-pointed here alone.

Every scan is a snapshot (`pages` keyed by job_id and URL): "the URLs of a scan" are its rows (the same
rule as /api/v1/jobs/{id}/urls), and "what changed between scans A and B" is the set difference of the
two snapshots (`pipelines.scans.only_in`, as /api/v1/domains/{domain}/changes), exact for any two scans.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
import uuid
from typing import Any

from sqlalchemy import func, select

from api.store import Store, domains, pages, sitemaps


def _jid(job: dict[str, Any]) -> uuid.UUID:
    return job["id"]


_MEMO: collections.OrderedDict[tuple, Any] = collections.OrderedDict()
_MEMO_LOCK = threading.Lock()


def _memo(store: Store, job: dict[str, Any], what: tuple, compute):
    """Aggregates over a scan's URLs (counts, histogram) cost a pass over them (~0.1 s per 200k on
    PostgreSQL); they stay the same until the domain's next scan finishes, so each worker keeps the
    last 256 of them keyed by the scan and the domain's latest scan."""
    with store.engine.connect() as conn:
        latest = conn.execute(select(domains.c.last_job_id, domains.c.last_scan_at)
                              .where(domains.c.name == job["domain"])).first()
    key = (id(store), _jid(job), tuple(latest or ()), what)
    with _MEMO_LOCK:
        if key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key]
    value = compute()
    with _MEMO_LOCK:
        _MEMO[key] = value
        while len(_MEMO) > 256:
            _MEMO.popitem(last=False)
    return value


def sitemap_tree(store: Store, job_id: uuid.UUID) -> list[dict[str, Any]]:
    """The sitemaps a scan fetched, ordered as a tree (each index followed by its children), each with
    `depth` for indentation."""
    rows = store.list_sitemaps(job_id)
    by_url = {r["url"]: r for r in rows}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for r in rows:
        parent = r["parent_url"] if r["parent_url"] in by_url and r["parent_url"] != r["url"] else None
        children.setdefault(parent, []).append(r)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def walk(parent: str | None, depth: int) -> None:
        for r in children.get(parent, []):
            if r["url"] in seen:
                continue
            seen.add(r["url"])
            out.append({**r, "depth": depth})
            walk(r["url"], depth + 1)

    walk(None, 0)
    out += [{**r, "depth": 0} for r in rows if r["url"] not in seen]  # cycles: still shown
    return out


def _scan_pages(store: Store, conn, job: dict[str, Any]):
    """The where-clauses selecting one scan's URLs (its snapshot, along the primary key)."""
    return (pages.c.job_id == _jid(job),)


def lastmod_histogram(store: Store, job: dict[str, Any]) -> list[tuple[str, int]]:
    """[(YYYY-MM, URLs whose lastmod falls in that month)] of one scan, oldest month first; months
    without URLs between the first and last are included with 0."""
    def count():
        with store.engine.connect() as conn:
            if store.is_postgres:
                month = func.date_trunc("month", func.timezone("UTC", pages.c.lastmod))
            else:
                month = func.strftime("%Y-%m", pages.c.lastmod)
            q = (select(month.label("m"), func.count()).where(*_scan_pages(store, conn, job), pages.c.lastmod.is_not(None))
                 .group_by(month))
            return {(m.strftime("%Y-%m") if hasattr(m, "strftime") else m): n for m, n in conn.execute(q).all()}

    counts = _memo(store, job, ("histogram",), count)
    if not counts:
        return []
    first, last = min(counts), max(counts)
    y, m = int(first[:4]), int(first[5:7])
    out = []
    while f"{y:04}-{m:02}" <= last:
        key = f"{y:04}-{m:02}"
        out.append((key, counts.get(key, 0)))
        m += 1
        if m == 13:
            y, m = y + 1, 1
    return out


def url_page(store: Store, job: dict[str, Any], *, search: str | None = None, sitemap_url: str | None = None,
             has_lastmod: bool | None = None, changed_since: dt.datetime | None = None,
             after_url: str | None = None, limit: int = 100) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, one page in URL order after `after_url`) of a scan's URLs with the filters."""
    with store.engine.connect() as conn:
        where = list(_scan_pages(store, conn, job))
        if search:
            where.append(pages.c.url.contains(search, autoescape=True))
        if sitemap_url:
            where.append(pages.c.sitemap_id.in_(select(sitemaps.c.id).where(sitemaps.c.url == sitemap_url)))
        if has_lastmod is not None:
            where.append(pages.c.lastmod.is_not(None) if has_lastmod else pages.c.lastmod.is_(None))
        if changed_since is not None:
            where.append(pages.c.lastmod >= changed_since)
        total = _memo(store, job, ("count", search, sitemap_url, has_lastmod, changed_since),
                      lambda: conn.execute(select(func.count()).select_from(pages).where(*where)).scalar_one())
        q = (select(pages.c.url, pages.c.lastmod, pages.c.changefreq, pages.c.priority,
                    sitemaps.c.url.label("sitemap_url"))
             .select_from(pages.outerjoin(sitemaps, sitemaps.c.id == pages.c.sitemap_id)).where(*where))
        if after_url is not None:
            q = q.where(pages.c.url > after_url)
        rows = [dict(r) for r in conn.execute(q.order_by(pages.c.url).limit(limit)).mappings()]
    return total, rows


def scan_sitemap_urls(store: Store, job_id: uuid.UUID) -> list[str]:
    return [r["url"] for r in store.list_sitemaps(job_id)]


def changes(store: Store, a: dict[str, Any], b: dict[str, Any], limit: int = 200) -> dict[str, Any]:
    """What changed from complete scan `a` to the later complete scan `b` of one domain: URLs `b` has and
    `a` had not (new) and the reverse (removed), each with its count and its first `limit` URLs."""
    if (a["finished_at"] or a["created_at"]) > (b["finished_at"] or b["created_at"]):
        a, b = b, a
    out: dict[str, Any] = {"from": a, "to": b}
    for name, (listed, left_out) in (("new", (b["id"], a["id"])), ("removed", (a["id"], b["id"]))):
        out[f"{name}_count"] = store.count_pages(listed, left_out)
        out[name] = [r["url"] for r in store.list_pages(listed, left_out, None, limit)]
    return out
