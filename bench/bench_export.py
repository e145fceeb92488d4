#!/usr/bin/env python
"""The 200k-URL CSV export of one job (issue "The console": ≤ 2 s), beside a reference in the same run.

A fresh PostgreSQL database gets one complete scan of 200,000 URLs (plain `<loc>` + `<lastmod>` rows, as
the pipeline stores them). Then, `--repeat` times each:

- **api**: the whole `GET /api/v1/jobs/{id}/urls?format=csv` body through the WSGI app (falcon.testing,
  no network), and the same with `Accept-Encoding: gzip`;
- **copy**: the reference, PostgreSQL's own `COPY (SELECT url, lastmod ... ORDER BY url) TO STDOUT WITH
  CSV` through psycopg2: the floor any export over the same rows can reach.

Prints the median seconds and MB of each and the ratio api/copy (ratios, not absolute seconds: the
machine is shared). Loopback only; nothing is asserted.

    .venv/bin/python bench/bench_export.py [--urls 200000] [--repeat 3]
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


def seed(engine, n: int) -> uuid.UUID:
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
                {"url": f"http://export.test/products/item-{i:07}", "lastmod": base + dt.timedelta(days=i % 1000),
                 "changefreq": None, "priority": None, "alternates": None, "images": None, "news": None,
                 "videos": None} for i in range(first, min(first + 5000, n))])
        store.finish_job(conn, job_id, domain_id, Outcome.OK, None, dt.datetime.now(dt.timezone.utc),
                         {"sitemaps_found": 1})
    return job_id


def timed(fn, repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        size = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--urls", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    db_url = create_pg_database()
    try:
        app, client = make_client(make_config(db_url, f"http://127.0.0.1:{free_port()}"), admin=True)
        engine = app.scrapersky_store.engine
        t0 = time.perf_counter()
        job_id = seed(engine, args.urls)
        print(f"data: one scan of {args.urls:,} URLs ({time.perf_counter() - t0:.1f} s)", flush=True)
        path = f"/api/v1/jobs/{job_id}/urls"

        def api(gzip: bool = False) -> int:
            headers = {"Accept-Encoding": "gzip"} if gzip else {}
            resp = client.simulate_get(path, params={"format": "csv"}, headers=headers)
            assert resp.status_code == 200, resp.text[:300]
            return len(resp.content)

        def copy() -> int:
            buf = io.BytesIO()
            raw = engine.raw_connection()
            try:
                with raw.cursor() as cur:
                    cur.copy_expert(f"COPY (SELECT url, lastmod FROM pages WHERE job_id = '{job_id}' ORDER BY url) "
                                    "TO STDOUT WITH (FORMAT csv, HEADER)", buf)
            finally:
                raw.close()
            return buf.tell()

        api()  # warm up: compiled statements, connection pool
        results = {"api csv": timed(api, args.repeat), "api csv gzip": timed(lambda: api(True), args.repeat),
                   "copy (reference)": timed(copy, args.repeat)}
        ref = results["copy (reference)"][0]
        for name, (secs, size) in results.items():
            print(f"{name:18} {secs:6.2f} s  {size / 1e6:6.1f} MB  {secs / ref:5.2f}x copy", flush=True)
        print(f"goal: the {args.urls:,}-URL CSV in <= 2 s: {'met' if results['api csv'][0] <= 2 else 'NOT met'}")
    finally:
        drop_pg_database(db_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
