#!/usr/bin/env python
"""Benchmark of issue "Falcon API over scrapyd": a 1,000-domain batch through the service, beside
ultimate-sitemap-parser with 16 threads on the same sites; then the status endpoint under load.

Everything stays on 127.0.0.1:

1. Fixture sites (tests.sites.SiteServer in its own process, used as http_proxy): N domains
   `bNNNNN.test`, each robots.txt -> /sitemap_index.xml -> two sitemaps of 50 URLs (one gzipped).
2. **batch**: the service as the README starts it (`python -m api`: scrapyd from the repository +
   gunicorn with dispatcher threads) on a fresh PostgreSQL database. One POST /api/v1/batch of the N
   domains, timed until the batch status says every job is final; then the pages in PostgreSQL are
   counted (must be N x 100) and every job must be `complete`.
   `--mix realistic`: 10 % of the domains are dead (the proxy answers 502), 10 % have no robots.txt,
   5 % have sitemaps that take 1.5 s; every live domain must end complete/ok with 100 URLs and every
   dead one failed/unreachable with a reason.
3. **usp**: `usp.tree.sitemap_tree_for_homepage` for each domain in a 16-thread pool (its requests
   go through the same proxy); every domain must give 100 pages.
4. **status load**: a second fresh database with `--status-jobs` jobs stored (one batch POST, the
   dispatcher off), gunicorn (`--load-workers` gthread workers) and `--clients` keep-alive client
   threads in 2 processes hammering GET /api/v1/status/{random job} for `--duration` seconds:
   requests/s and p50/p99 latency.

5. **nodes** (`--nodes N`): the batch of step 2 once with 1 scrapyd node and once with N local nodes
   (`--crawls` is the total of crawls at once, shared out over the nodes), domains/min for each and the
   dispatcher's overhead per crawl (claim transaction + schedule.json, from its "dispatched crawl"
   log lines); then the queue and dispatch cost per domain measured directly on PostgreSQL at 1,000
   and 10,000 queued domains (`Store.create_batch`, then `Dispatcher.claim` until the queue is empty).

Figures are printed, never asserted. Goals (issue 3): >= 3,000 domains/min; status >= 1,000 req/s at
p99 <= 50 ms. Run `python bench/bench_batch.py --help` for the options.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

from tests.api_fixtures import (create_pg_database, drop_pg_database, free_port, small_site,  # noqa: E402
                                wait_until)

PY = sys.executable


def kind_of(index: int, mix: str) -> str:
    """The realistic mix (issue "truthful scans"): of every 20 domains, 2 are dead (not served: the proxy
    answers 502), 2 have no robots.txt (the sitemap is found at a well-known path), 1 has sitemaps that
    take 1.5 s each; the rest are plain."""
    if mix != "realistic":
        return "plain"
    return {0: "dead", 1: "dead", 2: "no_robots", 3: "no_robots", 4: "slow"}.get(index % 20, "plain")


def make_site(host: str, kind: str):
    from tests.sites import Resp

    site = small_site(host, 50)[0]
    if kind == "no_robots":
        del site["/robots.txt"]
    elif kind == "slow":
        for path in ("/sitemap-a.xml", "/sitemap-b.xml.gz"):
            resp = site[path]

            def body(data=resp.body):
                time.sleep(1.5)
                return data

            site[path] = Resp(body=body, headers=resp.headers)
    return site


def serve_sites(hosts: list[str], port_q: mp.Queue, stop: mp.Event, mix: str = "plain") -> None:
    from tests.sites import SiteServer

    sites = {h: make_site(h, kind_of(i, mix)) for i, h in enumerate(hosts) if kind_of(i, mix) != "dead"}
    server = SiteServer(sites).start()
    port_q.put(server.port)
    stop.wait()
    server.stop()


def start_service(tmp: Path, db_url: str, proxy: str | None, *, scrapyd: bool, workers: int,
                  extra: dict[str, str], more_nodes: list[str] = ()) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """Start `python -m api`; returns (process, base URL, headers with a new API key of a normal tenant).
    The per-key request rate limit is off: the bench measures throughput."""
    from api.auth import create_key
    from pipelines.db import get_engine

    key = create_key(get_engine(db_url), f"bench-{os.getpid()}-{time.monotonic_ns()}", tenant="bench")
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / ".scrapyd.conf").write_text(f"[scrapyd]\ndbs_dir = {tmp / 'dbs'}\nlogs_dir = {tmp / 'logs'}\n")
    port, sport = free_port(), free_port()
    env = {**os.environ, "HOME": str(home), "DATABASE_URL": db_url, "API_PORT": str(port),
           "API_WORKERS": str(workers), "SCRAPYD_HTTP_PORT": str(sport),
           "SCRAPYD_LOGFILE": str(tmp / "scrapyd.log"), "API_START_SCRAPYD": "1" if scrapyd else "0",
           "API_RATE_LIMIT": "off", **extra}
    if proxy:
        env.update({k: proxy for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")})
        env.update(no_proxy="", NO_PROXY="")
    if not scrapyd:
        env.update(API_RUN_DISPATCHER="0", SCRAPYD_URL=f"http://127.0.0.1:{free_port()}")
    elif more_nodes:
        env["SCRAPYD_URL"] = ",".join([f"http://127.0.0.1:{sport}", *more_nodes])
    out = open(tmp / "service.out", "wb")
    proc = subprocess.Popen([PY, "-m", "api"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    import requests

    s = requests.Session()
    s.trust_env = False

    def up():
        if proc.poll() is not None:
            raise SystemExit(f"service exited:\n{(tmp / 'service.out').read_text()[-3000:]}")
        try:
            return s.get(f"{base}/health/database", timeout=2).ok
        except requests.RequestException:
            return False

    wait_until(up, 90, 0.3, "service")
    return proc, base, {"Authorization": f"Bearer {key}"}


def stop_service(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_batch(hosts: list[str], proxy: str, tmp: Path, args, nodes: int = 1) -> dict:
    import requests
    from sqlalchemy import create_engine, text

    from tests.api_fixtures import ScrapydProcess

    db_url = create_pg_database()
    per_node = max(1, args.crawls // nodes) if nodes > 1 else args.crawls
    extra = {"DISPATCH_INTERVAL": "0.5", "CRAWL_MAX_DOMAINS": str(args.crawl_max),
             "MAX_CRAWLS_PER_NODE": str(per_node)}
    from pipelines.db import get_engine

    get_engine(db_url)  # schema before the clock starts
    proxy_env = {k: proxy for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")}
    others = [ScrapydProcess(tmp / f"batch-{nodes}" / f"node{i}", {**proxy_env, "no_proxy": "", "NO_PROXY": "",
                                                                 "DATABASE_URL": db_url}, poll_interval=1.0).start()
              for i in range(1, nodes)]
    workdir = tmp / f"batch-{nodes}"
    proc, base, headers = start_service(workdir, db_url, proxy, scrapyd=True, workers=2, extra=extra,
                               more_nodes=[o.url for o in others])
    s = requests.Session()
    s.trust_env = False
    s.headers.update(headers)
    try:
        t0 = time.perf_counter()
        r = s.post(f"{base}/api/v1/batch", json={"domains": hosts}, timeout=60)
        r.raise_for_status()
        status_url = base + r.json()["status_url"]
        last = None
        while True:
            st = s.get(status_url, params={"limit": 1}, timeout=30).json()
            if st["status"] in ("complete", "cancelled"):
                break
            if args.verbose and st["progress"] != last:
                print(f"  {time.perf_counter() - t0:6.1f}s progress {st['progress']:.3f} running {st['running_jobs']}",
                      flush=True)
                last = st["progress"]
            time.sleep(0.25)
        wall = time.perf_counter() - t0
        engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg2://"))
        with engine.connect() as conn:
            pages = conn.execute(text(
                "SELECT count(*) FROM pages p JOIN jobs j ON j.id = p.job_id WHERE j.batch_id = :b"),
                {"b": r.json()["batch_id"]}).scalar()
            crawls = conn.execute(text("SELECT count(DISTINCT scrapyd_jobid) FROM jobs")).scalar()
            outcomes = conn.execute(text(
                "SELECT domain, status, outcome, urls_found, error FROM jobs WHERE batch_id = :b"),
                {"b": r.json()["batch_id"]}).all()
        engine.dispose()
        # every live domain complete with its 100 URLs, every dead one failed as unreachable with a reason
        index = {h: i for i, h in enumerate(hosts)}
        wrong = [tuple(row) for row in outcomes if (
            (row.status, row.outcome, row.urls_found) != ("complete", "ok", 100)
            if kind_of(index[row.domain], args.mix) != "dead"
            else (row.status, row.outcome) != ("failed", "unreachable") or not row.error)]
        for row in wrong[:5]:
            print(f"  wrong: {row}", flush=True)
        import re

        overhead = [float(m) for m in re.findall(r"dispatched crawl \S+ to \S+: \d+ jobs in ([\d.]+) ms",
                                                  (workdir / "service.out").read_text(errors="replace"))]
        return {"seconds": wall, "complete": st["completed_jobs"], "failed": st["failed_jobs"], "pages": pages,
                "crawls": crawls, "domains_per_min": len(hosts) / wall * 60, "wrong": len(wrong),
                "outcomes": st.get("outcomes"), "nodes": nodes, "crawls_per_node": per_node,
                "dispatch_ms_per_crawl": sum(overhead) / len(overhead) if overhead else None}
    finally:
        stop_service(proc)
        for o in others:
            o.stop()
        drop_pg_database(db_url)


def run_queue_cost(sizes: list[int]) -> list[dict]:
    """Queue (create_batch) and dispatch-claim cost per domain at each queue size, no HTTP involved."""
    from api.config import Config
    from api.dispatcher import Dispatcher
    from api.scrapyd_client import ScrapydClient
    from api.store import Store
    from pipelines.db import get_engine
    from pipelines.domains import parse_site

    out = []
    for n in sizes:
        db_url = create_pg_database()
        try:
            engine = get_engine(db_url)
            store = Store(engine)
            node = "http://127.0.0.1:9"  # never called: claim() only builds the log URL
            config = Config(database_url=db_url, scrapyd_urls=[node], run_dispatcher=False)
            dispatcher = Dispatcher(store, [ScrapydClient(node)], config)
            sites = [parse_site(f"q{i:06}.test", strict=True) for i in range(n)]
            t0 = time.perf_counter()
            store.create_batch(sites, {})
            queued = time.perf_counter() - t0
            claims = 0
            t0 = time.perf_counter()
            while dispatcher.claim(node, free_slots=config.max_crawls_per_node) is not None:
                claims += 1
            claimed = time.perf_counter() - t0
            out.append({"queued": n, "queue_us_per_domain": queued / n * 1e6, "claims": claims,
                        "claim_ms_per_crawl": claimed / claims * 1000, "claim_us_per_domain": claimed / n * 1e6})
        finally:
            drop_pg_database(db_url)
    return out


def _usp_one(host: str) -> int:
    from usp.tree import sitemap_tree_for_homepage

    tree = sitemap_tree_for_homepage(f"http://{host}/")
    return sum(1 for _ in tree.all_pages())


def run_usp(hosts: list[str], proxy: str, threads: int) -> dict:
    import logging

    logging.getLogger("usp").setLevel(logging.ERROR)
    for k in ("http_proxy", "HTTP_PROXY"):
        os.environ[k] = proxy
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = ""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        counts = list(pool.map(_usp_one, hosts))
    wall = time.perf_counter() - t0
    for k in ("http_proxy", "HTTP_PROXY"):
        os.environ.pop(k, None)
    return {"seconds": wall, "ok": sum(1 for c in counts if c == 100), "empty": sum(1 for c in counts if c == 0),
            "pages": sum(counts),
            "domains_per_min": len(hosts) / wall * 60}


def _load_client(base_port: int, ids: list[str], threads: int, duration: float, q: mp.Queue,
                 headers: dict[str, str]) -> None:
    lat: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def worker(seed: int):
        nonlocal errors
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", base_port, timeout=10)
        mine = []
        bad = 0
        while time.perf_counter() < deadline:
            path = f"/api/v1/status/{rng.choice(ids)}"
            t = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", base_port, timeout=10)
                continue
            mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)
            errors += bad

    ts = [threading.Thread(target=worker, args=(i + os.getpid(),)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put((lat, errors))


def run_status_load(tmp: Path, args) -> dict:
    import requests

    db_url = create_pg_database()
    proc, base, headers = start_service(tmp / "load", db_url, None, scrapyd=False, workers=args.load_workers, extra={})
    s = requests.Session()
    s.trust_env = False
    s.headers.update(headers)
    try:
        r = s.post(f"{base}/api/v1/batch", json={"domains": [f"l{i:05}.test" for i in range(args.status_jobs)]},
                   timeout=120)
        r.raise_for_status()
        ids, cursor = [], None
        while True:
            st = s.get(base + r.json()["status_url"], params={"limit": 1000, **({"cursor": cursor} if cursor else {})},
                       timeout=30).json()
            ids += [j["job_id"] for j in st["jobs"]]
            cursor = st["next_cursor"]
            if not cursor:
                break
        port = int(base.rsplit(":", 1)[1])
        # warm up the workers' connection pools
        _q: mp.Queue = mp.Queue()
        _load_client(port, ids, 4, 1.0, _q, headers)
        _q.get()
        q: mp.Queue = mp.Queue()
        procs = [mp.Process(target=_load_client, args=(port, ids, args.clients // 2, args.duration, q, headers)) for _ in range(2)]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        results = [q.get() for _ in procs]
        wall = time.perf_counter() - t0
        for p in procs:
            p.join()
        lat = sorted(x for r_, _ in results for x in r_)
        errors = sum(e for _, e in results)
        pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")  # noqa: E731
        return {"jobs": len(ids), "requests": len(lat), "errors": errors, "seconds": wall,
                "rps": len(lat) / args.duration, "p50_ms": pct(0.50), "p99_ms": pct(0.99)}
    finally:
        stop_service(proc)
        drop_pg_database(db_url)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=16, help="usp thread pool (default 16)")
    ap.add_argument("--crawl-max", type=int, default=500,
                    help="domains per scrapyd job at most (CRAWL_MAX_DOMAINS; default 500, the service's)")
    ap.add_argument("--crawls", type=int, default=2,
                    help="scrapyd jobs at once (MAX_CRAWLS_PER_NODE; default 2, the service's; with --nodes N, "
                         "the total over the nodes)")
    ap.add_argument("--nodes", type=int, default=0,
                    help="also run the batch over N local scrapyd nodes beside 1, and measure the queue cost")
    ap.add_argument("--status-jobs", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=16, help="client threads for the status load (2 processes)")
    ap.add_argument("--load-workers", type=int, default=2, help="gunicorn workers for the status load")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of status load")
    ap.add_argument("--mix", choices=("plain", "realistic"), default="plain",
                    help="realistic: 10%% dead domains (proxy 502), 10%% without robots.txt, 5%% slow sitemaps")
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--skip-usp", action="store_true")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    hosts = [f"b{i:05}.test" for i in range(args.domains)]
    figures: dict = {"domains": args.domains, "cpus": os.cpu_count()}
    tmp = Path(tempfile.mkdtemp(prefix="scrapersky_bench_batch_"))
    stop = mp.Event()
    port_q: mp.Queue = mp.Queue()
    server = mp.Process(target=serve_sites, args=(hosts, port_q, stop, args.mix), daemon=True)
    server.start()
    proxy = f"http://127.0.0.1:{port_q.get(timeout=120)}"
    ok = True
    try:
        if not args.skip_batch:
            b = figures["scrapersky"] = run_batch(hosts, proxy, tmp, args)
            live = sum(1 for i in range(args.domains) if kind_of(i, args.mix) != "dead")
            ok &= b["wrong"] == 0 and b["pages"] == live * 100
            print(f"scrapersky batch ({args.mix}): {args.domains} domains in {b['seconds']:.1f} s = "
                  f"{b['domains_per_min']:,.0f} domains/min ({b['complete']} complete, {b['failed']} failed, "
                  f"outcomes {b['outcomes']}, {b['wrong']} with a wrong outcome, {b['pages']:,} pages in PostgreSQL "
                  f"(expected {live * 100:,}), {b['crawls']} scrapyd jobs)", flush=True)
        if args.nodes > 1:
            multi = figures[f"scrapersky_{args.nodes}_nodes"] = run_batch(hosts, proxy, tmp, args, nodes=args.nodes)
            ok &= multi["wrong"] == 0 and multi["pages"] == live * 100
            for fig in (figures.get("scrapersky"), multi):
                if fig:
                    print(f"  {fig['nodes']} node(s) x {fig['crawls_per_node']} crawls: {fig['domains_per_min']:,.0f} "
                          f"domains/min, {fig['complete']} complete, {fig['pages']:,} pages, dispatcher overhead "
                          f"{fig['dispatch_ms_per_crawl'] or float('nan'):.1f} ms per crawl ({fig['crawls']} crawls)",
                          flush=True)
            if figures.get("scrapersky"):
                slower = 1 - multi["domains_per_min"] / figures["scrapersky"]["domains_per_min"]
                figures["nodes_slowdown"] = slower
                print(f"{args.nodes} nodes vs 1: {slower * 100:+.1f} % slower (goal: <= 10 %)", flush=True)
            costs = figures["queue_cost"] = run_queue_cost([1_000, 10_000])
            for c in costs:
                print(f"  queue {c['queued']:>6,} domains: enqueue {c['queue_us_per_domain']:.0f} us/domain, "
                      f"{c['claims']} claims of {c['claim_ms_per_crawl']:.1f} ms = {c['claim_us_per_domain']:.0f} "
                      f"us/domain", flush=True)
        if not args.skip_usp:
            u = figures["usp"] = run_usp(hosts, proxy, args.threads)
            ok &= u["ok"] == sum(1 for i in range(args.domains) if kind_of(i, args.mix) != "dead")
            print(f"usp ({args.threads} threads): {args.domains} domains in {u['seconds']:.1f} s = "
                  f"{u['domains_per_min']:,.0f} domains/min ({u['ok']} with 100 pages)", flush=True)
        if "scrapersky" in figures and "usp" in figures:
            ratio = figures["ratio"] = figures["scrapersky"]["domains_per_min"] / figures["usp"]["domains_per_min"]
            print(f"ratio scrapersky/usp: {ratio:.2f}x  (goal: >= 3,000 domains/min)", flush=True)
        if not args.skip_load:
            ld = figures["status_load"] = run_status_load(tmp, args)
            print(f"status endpoint: {ld['jobs']:,} jobs stored, {args.clients} clients, {ld['rps']:,.0f} req/s, "
                  f"p50 {ld['p50_ms']:.1f} ms, p99 {ld['p99_ms']:.1f} ms, {ld['errors']} errors "
                  f"(goal: >= 1,000 req/s at p99 <= 50 ms)", flush=True)
    finally:
        stop.set()
        server.join(10)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
