"""Peak memory of a crawl through a long database outage, beside the same crawl without one.

One loopback domain of --urls page URLs (sitemaps of 50,000 URLs behind an index) is crawled into a
fresh PostgreSQL database reached through a TCP proxy (tests.tcp_proxy). In the second run the proxy
refuses PostgreSQL for --outage seconds once the first pages are stored. Both runs must store every
URL; the figures are each crawl process's peak RSS (ru_maxrss) and wall time.

    .venv/bin/python bench/bench_outage.py [--urls 300000] [--outage 60]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, func, select  # noqa: E402

from pipelines.models import Page  # noqa: E402
from tests.conftest import fresh_pg_database, run_scrapy_crawl  # noqa: E402
from tests.site_catalogue import robots_txt, sitemap_index, urlset  # noqa: E402
from tests.sites import Resp, Site, SiteServer  # noqa: E402
from tests.tcp_proxy import FlakyTcpProxy  # noqa: E402

PER_SITEMAP = 50_000


def big_site(host: str, n_urls: int) -> Site:
    names = [f"/sitemap-{i}.xml" for i in range((n_urls + PER_SITEMAP - 1) // PER_SITEMAP)]
    pages = {"/robots.txt": Resp(body=robots_txt("User-agent: *", f"Sitemap: http://{host}/index.xml")),
             "/index.xml": Resp(body=sitemap_index(*(f"http://{host}{name}" for name in names)))}
    for i, name in enumerate(names):
        count = min(PER_SITEMAP, n_urls - i * PER_SITEMAP)
        pages[name] = Resp(body=urlset(*(f"http://{host}/product/{i}/{k}/some-longer-slug-for-realism"
                                         for k in range(count))))
    return Site(pages)


def stored(engine) -> int:
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Page)).scalar_one()
    except Exception:  # noqa: BLE001 - no schema yet
        return 0


def run(server: SiteServer, host: str, outage: float) -> dict:
    with fresh_pg_database() as url:
        proxy, through_proxy = FlakyTcpProxy.to(url)
        engine = create_engine(url)
        out: dict = {}

        def crawl() -> None:
            started = time.monotonic()
            out["result"] = run_scrapy_crawl(server, ["-a", f"domain={host}", "-a", f"job_id={uuid.uuid4()}"],
                                             through_proxy, timeout=outage + 1800)
            out["wall"] = time.monotonic() - started

        thread = threading.Thread(target=crawl)
        thread.start()
        if outage:
            while thread.is_alive() and stored(engine) == 0:
                time.sleep(0.1)
            out["stored_before_outage"] = stored(engine)
            proxy.outage(outage)
        thread.join()
        out["pages"] = stored(engine)
        engine.dispose()
        proxy.close()
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--urls", type=int, default=300_000, help="page URLs of the domain (default 300000)")
    p.add_argument("--outage", type=float, default=60.0, help="seconds PostgreSQL is unreachable (default 60)")
    args = p.parse_args(argv)
    host = "outage-bench.test"
    with SiteServer({host: big_site(host, args.urls)}) as server:
        rows = [("no outage", run(server, host, 0.0)), (f"{args.outage:g} s outage", run(server, host, args.outage))]
    ok = True
    for label, r in rows:
        res = r["result"]
        ok &= res.returncode == 0 and r["pages"] == args.urls
        extra = f", outage began with {r['stored_before_outage']:,} pages stored" if "stored_before_outage" in r else ""
        print(f"{label:>14}: exit {res.returncode}, {r['pages']:,}/{args.urls:,} pages, wall {r['wall']:.1f} s, "
              f"peak RSS {res.peak_rss_mb:.0f} MB{extra}")
    base, cut = rows[0][1]["result"].peak_rss_mb, rows[1][1]["result"].peak_rss_mb
    print(f"peak RSS ratio (outage / none): {cut / base:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
