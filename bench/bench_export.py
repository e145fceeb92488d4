#!/usr/bin/env python
"""The 200k-URL exports of one job (issue "exports": the CSV in ≤ 2 s), beside a reference in the same run.

A fresh PostgreSQL database gets one complete scan of 200,000 URLs (plain `<loc>` + `<lastmod>` rows, as
the pipeline stores them; with `--nested`, every 4th URL also has an image and two hreflang alternates).
Then, `--repeat` times each, the whole body of `GET /api/v1/jobs/{id}/urls` through the WSGI app
(falcon.testing, no network):

- **csv**, **csv gzip** (`Accept-Encoding: gzip`), **jsonl**, **parquet**;
- **copy**: the reference, PostgreSQL's own `COPY (SELECT url, lastmod ... ORDER BY url) TO STDOUT WITH
  CSV` through psycopg2 (as in the first run of this script); **copy all columns**: the same with every
  column of the export, unformatted (joined to `sitemaps` for sitemap_url): the floor any export of
  these rows can reach.

The items run in rounds (one of each per round). `ANALYZE pages` runs after loading (as autovacuum soon would), so the planner reads the scan's pages in
URL order along the primary key. Prints the median seconds and MB of each and its ratio to copy (ratios,
not absolute seconds: the machine is shared). Loopback only; nothing is asserted.

    .venv/bin/python bench/bench_export.py [--urls 200000] [--repeat 3] [--nested]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.api_fixtures import create_pg_database, drop_pg_database, free_port, make_client, make_config  # noqa: E402


def seed(engine, n: int, nested: bool = False) -> uuid.UUID:
    from pipelines import store
    from pipelines.status import Outcome

    job_id = uuid.uuid4()
    start = dt.datetime.now(dt.timezone.utc)
    base = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)
    with engine.begin() as conn:
        domain_id = store.ensure_domain(conn, "export.test")
        store.start_job(conn, job_id, "export.test", domain_id, None, {}, start)
        sitemap_id = store.upsert_sitemap(conn, domain_id, job_id, {
            "url": "http://export.test/sitemap.xml", "type": "urlset", "discovered_by": "robots", "parent_url": None,
            "http_status": 200, "gzipped": False, "size_bytes": None, "url_count": n, "lastmod_share": 1.0,
            "priority_share": None, "changefreq_share": None, "generator": None, "last_modified": None,
            "error": None, "fetched_at": start})
        for first in range(0, n, 5000):
            store.insert_pages(conn, domain_id, sitemap_id, job_id, [
                page(i, base, nested and i % 4 == 0) for i in range(first, min(first + 5000, n))])
        store.finish_job(conn, job_id, domain_id, Outcome.OK, None, dt.datetime.now(dt.timezone.utc),
                         {"sitemaps_found": 1})
    return job_id


def page(i: int, base: dt.datetime, nested: bool) -> dict:
    url = f"http://export.test/products/item-{i:07}"
    return {"url": url, "lastmod": base + dt.timedelta(days=i % 1000), "changefreq": None, "priority": None,
            "alternates": [{"href": f"{url}?lang={lang}", "hreflang": lang} for lang in ("de", "fr")] if nested else None,
            "images": [{"loc": f"{url}.jpg", "title": f"Item {i}"}] if nested else None, "news": None, "videos": None}


def timed(fns: dict, repeat: int) -> dict[str, tuple[float, int]]:
    """Median seconds and last size of each fn, run in rounds (one of each per round): load from other
    work on the machine falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    sizes: dict[str, int] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            sizes[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), sizes[name]) for name in fns}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--urls", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--nested", action="store_true", help="every 4th URL with an image and two alternates")
    args = ap.parse_args()
    db_url = create_pg_database()
    try:
        app, client = make_client(make_config(db_url, f"http://127.0.0.1:{free_port()}"), admin=True)
        engine = app.scrapersky_store.engine
        t0 = time.perf_counter()
        job_id = seed(engine, args.urls, args.nested)
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE pages")  # as autovacuum would soon: the planner reads pages in URL order
        print(f"data: one scan of {args.urls:,} URLs{' (every 4th with nested values)' if args.nested else ''} "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
        path = f"/api/v1/jobs/{job_id}/urls"

        def api(fmt: str = "csv", gzip: bool = False) -> int:
            headers = {"Accept-Encoding": "gzip"} if gzip else {}
            resp = client.simulate_get(path, params={"format": fmt}, headers=headers)
            assert resp.status_code == 200, resp.text[:300]
            return len(resp.content)

        def copy(columns: str = "url, lastmod", joined: str = "") -> int:
            buf = io.BytesIO()
            raw = engine.raw_connection()
            try:
                with raw.cursor() as cur:
                    cur.copy_expert(f"COPY (SELECT {columns} FROM pages {joined} WHERE pages.job_id = '{job_id}' ORDER BY pages.url) "
                                    "TO STDOUT WITH (FORMAT csv, HEADER)", buf)
            finally:
                raw.close()
            return buf.tell()

        def copy_all() -> int:
            return copy("pages.url, lastmod, changefreq, priority, sitemaps.url, images, videos, news, alternates",
                        "LEFT JOIN sitemaps ON sitemaps.id = pages.sitemap_id")

        api()  # warm up: compiled statements, connection pool
        results = timed({"api csv": api, "api csv gzip": lambda: api(gzip=True), "api jsonl": lambda: api("jsonl"),
                         "api parquet": lambda: api("parquet"), "copy all columns": copy_all,
                         "copy (reference)": copy}, args.repeat)
        ref = results["copy (reference)"][0]
        for name, (secs, size) in results.items():
            print(f"{name:18} {secs:6.2f} s  {size / 1e6:6.1f} MB  {secs / ref:5.2f}x copy", flush=True)
        print(f"goal: the {args.urls:,}-URL CSV in <= 2 s: {'met' if results['api csv'][0] <= 2 else 'NOT met'}")
    finally:
        drop_pg_database(db_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
