#!/usr/bin/env python
"""Benchmark of the console (issue "The console"): server time of the batch page of a batch with
10,000 jobs and of the domain page of a domain with 200,000 URLs, p50/p99 over 100 requests each.

A fresh PostgreSQL database (SCRAPERSKY_TEST_PG's server, default postgresql://postgres@127.0.0.1:5432)
gets one batch of N jobs (half complete with outcomes and URL counts) and one domain with M pages (one
complete scan, two sitemaps, lastmods over 36 months), written directly with SQLAlchemy. The pages
are requested through the WSGI app in this process (falcon.testing: no network, the server's own
time), with a logged-in console session. Each page: first page of its tables, no filters; the domain
page also with a search filter. Figures are printed, never asserted. Goal: p99 <= 200 ms.

    .venv/bin/python bench/bench_console.py [--jobs 10000] [--urls 200000] [--requests 100]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--urls", type=int, default=200_000)
    ap.add_argument("--requests", type=int, default=100)
    args = ap.parse_args()

    from sqlalchemy import insert, update

    from api.app import create_app
    from api.store import domains, jobs, pages, sitemaps
    from pipelines.domains import parse_site
    from tests.api_fixtures import create_pg_database, drop_pg_database, free_port, make_config, new_key
    from tests.test_console import Browser

    db = create_pg_database()
    try:
        app = create_app(make_config(db, f"http://127.0.0.1:{free_port()}"), start_dispatcher=False)
        store = app.scrapersky_store
        t0 = time.perf_counter()
        key = new_key(app, "bench", tenant="bench")
        batch_id, _ = store.create_batch([parse_site(f"d{i:06}.test") for i in range(args.jobs)], {}, "bench")
        now = dt.datetime.now(dt.timezone.utc)
        with store.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.batch_id == batch_id, jobs.c.domain < f"d{args.jobs // 2:06}.test")
                         .values(status="complete", outcome="ok", urls_found=100, new_urls=100, finished_at=now,
                                 started_at=now - dt.timedelta(seconds=5), duration_seconds=5.0))
            dom = conn.execute(insert(domains).values(name="big.test", title="Big", url_count=args.urls,
                                                      sitemap_count=2, last_scan_at=now).returning(domains.c.id)).scalar_one()
            job = uuid.uuid4()
            conn.execute(insert(jobs).values(id=job, domain="big.test", domain_id=dom, status="complete", outcome="ok",
                                             created_at=now, finished_at=now, urls_found=args.urls, tenant="bench"))
            conn.execute(update(domains).where(domains.c.id == dom).values(last_job_id=job))
            sm = [conn.execute(insert(sitemaps).values(domain_id=dom, job_id=job, url=f"http://big.test/s{k}.xml",
                                                       type="urlset", discovered_by="robots", url_count=args.urls // 2)
                               .returning(sitemaps.c.id)).scalar_one() for k in range(2)]
            base = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)
            for start in range(0, args.urls, 20_000):
                conn.execute(insert(pages), [dict(job_id=job, domain_id=dom, url=f"http://big.test/p/{i:07}",
                                                  sitemap_id=sm[i % 2], lastmod=base + dt.timedelta(days=i % 1095))
                                             for i in range(start, min(start + 20_000, args.urls))])
        with store.engine.begin() as conn:  # committed: statistics as autovacuum would leave them
            conn.exec_driver_sql("ANALYZE")
        print(f"data: {args.jobs} jobs in one batch, {args.urls} URLs of one domain ({time.perf_counter() - t0:.1f} s)")
        b = Browser(app)
        b.login(key)
        for name, path in (("batch page", f"/console/batches/{batch_id}"), ("batches list", "/console/batches"),
                           ("domain page", "/console/domains/big.test"),
                           ("domain page ?q=", "/console/domains/big.test?q=p/01")):
            assert b.get(path).status_code == 200, path  # warm-up
            times = []
            for _ in range(args.requests):
                s = time.perf_counter()
                r = b.get(path)
                times.append((time.perf_counter() - s) * 1000)
                assert r.status_code == 200
            times.sort()
            p99 = times[min(len(times) - 1, int(round(0.99 * len(times))) - 1)]
            print(f"{name:18} p50 {statistics.median(times):7.1f} ms  p99 {p99:7.1f} ms  ({args.requests} requests)")
    finally:
        drop_pg_database(db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
