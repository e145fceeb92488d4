#!/usr/bin/env python
"""Benchmark of issue "Sitemap crawler core": a 200k-URL sitemap site, ScraperSky vs ultimate-sitemap-parser.

Everything stays on 127.0.0.1:

1. A fixture site is generated once into ``bench/.data/site_<N>/`` (reused by later runs): ``robots.txt``
   with a ``Sitemap:`` line for ``/sitemap_index.xml``, an index of ``ceil(N / 50,000)`` sitemaps of up to
   50,000 URLs (sitemaps 0.9 namespace; loc of 70-100 chars, lastmod, changefreq, priority), every second
   sitemap gzipped (``.xml.gz``), and a small HTML home page. ``--fixture plain`` (``site_<N>_plain/``):
   the same locs with nothing but ``<loc>``, as many real sitemaps are; ``--fixture both`` runs both.
2. A static file server (ThreadingHTTPServer, HTTP/1.1 keep-alive, sendfile) serves it from its own process.
3. Each run is a separate subprocess, timed from spawn to exit (wall seconds, interpreter start-up included),
   with its peak RSS taken from ``os.wait4`` (``ru_maxrss``, KiB on Linux):

   a. ``usp``: ultimate-sitemap-parser ``sitemap_tree_for_homepage`` + counting ``tree.all_pages()``;
   b. ``scrapersky``: ``python -m scrapy crawl sitemap -a domain=http://127.0.0.1:PORT`` in the repository
      (with ``SCRAPERSKY_ALLOW_PRIVATE=1``: the site is on loopback),
      ``DATABASE_URL`` pointing at a fresh PostgreSQL database (schema migrated before the timed run, database
      dropped afterwards); the job's rows in ``pages`` must equal N; with ``--rescan K`` the same crawl then
      runs K more times into that database (each scan keeps its own snapshot), timed, with the bytes each
      re-scan adds (``pg_total_relation_size`` of the tables before and after);
   c. ``stock`` (``--stock``): Scrapy's stock ``SitemapSpider`` that parses every sitemap but requests no page.

Timings are never asserted: the exit status is 0 unless a run failed or a URL count does not match.
Run ``python bench/bench_200k.py --help`` for the options; see bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DATA = BENCH_DIR / ".data"
URLS_PER_FILE = 50_000
FIXTURE_VERSION = 3
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH_PREFIX = "scrapersky_bench_"
STATS_PATH = "/__bench_stats__"

GOAL_RATIO = 1.0
MUST_RATIO = 1.5
GOAL_RSS_MB = 200.0
GOAL_SCALE_RSS = 1.10  # 2M-URL peak RSS within 10 % of the 200k run
GOAL_RESCAN = 1.2  # a re-scan (snapshots kept) within 1.2x the first scan

HOME_HTML = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ScraperSky bench site</title>
<meta name="description" content="Fixture site for the ScraperSky sitemap benchmark">
</head><body><h1>ScraperSky bench site</h1><p>Nothing to see here; read the sitemaps.</p></body></html>
"""

# ---------------------------------------------------------------------------------------------------------
# Fixture generation
# ---------------------------------------------------------------------------------------------------------

_WORDS = (
    "sitemap crawler benchmark quick brown fox jumps over lazy dog alpha beta gamma delta epsilon zeta "
    "theta kappa lambda sigma omega north south east west river mountain forest ocean desert garden "
    "kitchen travel review guide report story update product category archive season summer winter"
).split()
_SECTIONS = ("blog", "news", "products", "docs", "articles", "shop/items", "guides", "events")
_CHANGEFREQ = ("always", "hourly", "daily", "weekly", "monthly", "yearly", "never")
NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def sitemap_names(n_urls: int) -> list[str]:
    n_files = max(1, math.ceil(n_urls / URLS_PER_FILE))
    return [f"sitemap-{i + 1}.xml.gz" if i % 2 else f"sitemap-{i + 1}.xml" for i in range(n_files)]


def _slug_source(rng: random.Random) -> str:
    return "-".join(rng.choice(_WORDS) for _ in range(40))


def _write_urlset(path: Path, base: str, start: int, count: int, seed: int, plain: bool = False) -> int:
    """Write one urlset of `count` URLs numbered from `start` (only `<loc>` when `plain`); returns the
    uncompressed size."""
    rng = random.Random(seed)
    slugs = [_slug_source(rng) for _ in range(64)]
    epoch = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    tmp = path.with_name(path.name + ".tmp")
    opener = (lambda p: gzip.open(p, "wb", compresslevel=6)) if path.name.endswith(".gz") else (lambda p: open(p, "wb"))
    size = 0
    with opener(tmp) as fh:
        head = f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{NS}">\n'.encode()
        fh.write(head)
        size += len(head)
        chunk: list[str] = []
        for i in range(start, start + count):
            section = _SECTIONS[i % len(_SECTIONS)]
            prefix = f"{base}/{section}/{i:08d}-"
            target = 70 + rng.randrange(31)  # loc length 70..100
            need = max(1, target - len(prefix))
            slug = slugs[i & 63][:need]
            if slug.endswith("-"):
                slug = slug[:-1] + "x"
            loc = prefix + slug
            when = epoch + dt.timedelta(seconds=rng.randrange(5 * 365 * 86400))
            if i % 5 == 0:
                lastmod = when.strftime("%Y-%m-%d")
            else:
                lastmod = when.strftime("%Y-%m-%dT%H:%M:%S+00:00")
            if plain:
                chunk.append(f"<url><loc>{loc}</loc></url>\n")
            else:
                chunk.append(
                    f"<url><loc>{loc}</loc><lastmod>{lastmod}</lastmod>"
                    f"<changefreq>{_CHANGEFREQ[i % 7]}</changefreq><priority>{(i % 10 + 1) / 10:.1f}</priority></url>\n"
                )
            if len(chunk) >= 5000:
                data = "".join(chunk).encode()
                fh.write(data)
                size += len(data)
                chunk.clear()
        tail = ("".join(chunk) + "</urlset>\n").encode()
        fh.write(tail)
        size += len(tail)
    tmp.replace(path)
    return size


def generate(site: Path, n_urls: int, port: int, kind: str = "rich") -> dict:
    """(Re)generate the `kind` (rich|plain) fixture for `n_urls` URLs served at 127.0.0.1:`port`."""
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    base = f"http://127.0.0.1:{port}"
    names = sitemap_names(n_urls)
    t0 = time.perf_counter()
    files = []
    for k, name in enumerate(names):
        start = k * URLS_PER_FILE
        count = min(URLS_PER_FILE, n_urls - start)
        raw = _write_urlset(site / name, base, start, count, seed=1000 + k, plain=kind == "plain")
        files.append({"name": name, "urls": count, "bytes": (site / name).stat().st_size, "raw_bytes": raw})
    index = [f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="{NS}">\n']
    for k, name in enumerate(names):
        index.append(
            f"<sitemap><loc>{base}/{name}</loc><lastmod>2025-0{1 + k % 9}-15T08:00:00+00:00</lastmod></sitemap>\n"
        )
    index.append("</sitemapindex>\n")
    (site / "sitemap_index.xml").write_text("".join(index), encoding="utf-8")
    (site / "robots.txt").write_text(
        f"User-agent: *\nDisallow: /private/\n\nSitemap: {base}/sitemap_index.xml\n", encoding="utf-8"
    )
    (site / "index.html").write_bytes(HOME_HTML)
    meta = {"version": FIXTURE_VERSION, "kind": kind, "urls": n_urls, "port": port, "files": files,
            "generated_in_s": round(time.perf_counter() - t0, 2)}
    (site / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as the server does: connections of the previous run in TIME_WAIT must not block the port
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_fixture(n_urls: int, kind: str = "rich") -> tuple[Path, dict]:
    """The cached `kind` fixture for `n_urls`, regenerated when missing, stale or its port is taken.

    Sitemap locs are absolute URLs including the port, so the fixture is tied to the port it was generated
    for; the bench reuses that port whenever it is free.
    """
    site = DATA / (f"site_{n_urls}" if kind == "rich" else f"site_{n_urls}_{kind}")
    meta_file = site / "meta.json"
    meta = None
    if meta_file.exists():
        try:
            meta = json.loads(meta_file.read_text())
        except ValueError:
            meta = None
    ok = (
        meta is not None
        and meta.get("version") == FIXTURE_VERSION
        and meta.get("urls") == n_urls
        and meta.get("kind", "rich") == kind
        and all((site / f["name"]).is_file() for f in meta.get("files", []))
    )
    if ok and port_is_free(meta["port"]):
        print(f"fixture: reusing {site} (port {meta['port']})", flush=True)
        return site, meta
    why = "port taken" if ok else "not cached"
    print(f"fixture: generating {n_urls:,} {kind} URLs into {site} ({why}) ...", flush=True)
    meta = generate(site, n_urls, free_port(), kind)
    total = sum(f["bytes"] for f in meta["files"])
    raw = sum(f["raw_bytes"] for f in meta["files"])
    print(
        f"fixture: {len(meta['files'])} sitemaps, {raw / 1e6:.1f} MB XML ({total / 1e6:.1f} MB on disk) "
        f"in {meta['generated_in_s']} s",
        flush=True,
    )
    return site, meta


# ---------------------------------------------------------------------------------------------------------
# Static file server (runs in its own process: `bench_200k.py --_serve DIR --_port P`)
# ---------------------------------------------------------------------------------------------------------

def serve(site: Path, port: int) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    routes: dict[str, tuple[Path, str]] = {
        "/robots.txt": (site / "robots.txt", "text/plain; charset=utf-8"),
        "/sitemap_index.xml": (site / "sitemap_index.xml", "application/xml"),
        "/": (site / "index.html", "text/html; charset=utf-8"),
        "/index.html": (site / "index.html", "text/html; charset=utf-8"),
    }
    for p in site.iterdir():
        if p.name.startswith("sitemap-"):
            ctype = "application/gzip" if p.name.endswith(".gz") else "application/xml"
            routes["/" + p.name] = (p, ctype)
    sizes = {k: v[0].stat().st_size for k, v in routes.items()}
    stats = {"requests": 0, "not_found": 0, "aborted": 0, "bytes": 0}
    lock = threading.Lock()

    def count(**inc: int) -> None:
        with lock:
            for key, n in inc.items():
                stats[key] += n

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "bench-static/1"

        def log_message(self, *args):  # quiet
            pass

        def _route(self):
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            return path, routes.get(path)

        def _not_found(self, body: bool) -> None:
            data = b"<html><body><h1>404 Not Found</h1></body></html>\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _serve(self, body: bool) -> None:
            path, route = self._route()
            if path == STATS_PATH:  # the bench's own counters, not part of the site
                with lock:
                    data = json.dumps(stats).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            count(requests=1)
            if route is None:
                count(not_found=1)
                self._not_found(body)
                return
            file, ctype = route
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(sizes[path]))
            self.end_headers()
            if body:
                with open(file, "rb") as fh:
                    self.wfile.flush()
                    try:
                        sent = self.connection.sendfile(fh)
                    except (BrokenPipeError, ConnectionResetError):
                        # the client gave up mid-transfer (e.g. its download timeout): count it, stay quiet
                        count(aborted=1)
                        self.close_connection = True
                        return
                    count(bytes=sent)

        def do_GET(self):
            self._serve(True)

        def do_HEAD(self):
            self._serve(False)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

        def handle_error(self, request, client_address):
            if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                count(aborted=1)
                return
            super().handle_error(request, client_address)

    httpd = Server(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"READY {httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()


class SiteServer:
    def __init__(self, site: Path, port: int):
        self.site, self.port, self.proc = site, port, None

    def __enter__(self) -> "SiteServer":
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--_serve", str(self.site), "--_port", str(self.port)],
            stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY"):
            self.proc.kill()
            raise RuntimeError(f"fixture server did not start (got {line!r})")
        self.base = f"http://127.0.0.1:{self.port}"
        return self

    def stats(self) -> dict:
        """The server's counters (requests, not_found, aborted, bytes) so far."""
        import urllib.request

        try:
            with urllib.request.urlopen(self.base + STATS_PATH, timeout=10) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError):
            return {}

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------------------------------------
# Measured subprocesses
# ---------------------------------------------------------------------------------------------------------

def run_measured(cmd: list[str], *, cwd: Path, env: dict, log: Path, timeout: float) -> dict:
    """Run `cmd`; wall seconds from spawn to exit, peak RSS (MB) of the process via wait4."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        timed_out = threading.Event()

        def _kill():
            timed_out.set()
            try:
                proc.kill()
            except OSError:
                pass

        timer = threading.Timer(timeout, _kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": wall,
        "rss_mb": usage.ru_maxrss / 1024.0,  # KiB on Linux
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rc": proc.returncode,
        "timed_out": timed_out.is_set(),
        "log": str(log),
    }


def tail(path: str, n: int = 25) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    | " + line for line in lines[-n:])


def result_line(path: str) -> dict | None:
    """The `BENCH_RESULT {json}` line a helper script printed, if any."""
    try:
        for line in Path(path).read_text(errors="replace").splitlines():
            if line.startswith("BENCH_RESULT "):
                return json.loads(line[len("BENCH_RESULT "):])
    except (OSError, ValueError):
        pass
    return None


USP_SCRIPT = r"""
import json, sys, time
from usp.tree import sitemap_tree_for_homepage
t0 = time.perf_counter()
tree = sitemap_tree_for_homepage(sys.argv[1])
n = 0
for _page in tree.all_pages():
    n += 1
print("BENCH_RESULT " + json.dumps({"urls": n, "inner_s": time.perf_counter() - t0}), flush=True)
"""

STOCK_SPIDER = r'''
import json, time
from scrapy.spiders import SitemapSpider
from scrapy.spiders.sitemap import iterloc


class StockSitemap(SitemapSpider):
    """Stock SitemapSpider that parses every sitemap but requests no page (counts the page URLs instead)."""

    name = "stock_sitemap"
    custom_settings = {"TELNETCONSOLE_ENABLED": False, "ROBOTSTXT_OBEY": False}

    def __init__(self, robots=None, *args, **kwargs):
        self.sitemap_urls = [robots]
        super().__init__(*args, **kwargs)
        self.count = 0
        self.t0 = time.perf_counter()

    def _get_urls_and_callbacks_from_urlset(self, it):
        n = 0
        for _loc in iterloc(it, self.sitemap_alternate_links):
            n += 1
        self.count += n
        return ()

    def parse(self, response):
        pass

    def closed(self, reason):
        print("BENCH_RESULT " + json.dumps(
            {"urls": self.count, "reason": reason, "inner_s": time.perf_counter() - self.t0}), flush=True)
'''


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SCRAPY_SETTINGS_MODULE", "SCRAPY_PROJECT")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_usp(ctx: dict, tag: str) -> dict:
    log = ctx["logdir"] / f"usp_{tag}.log"
    r = run_measured([sys.executable, "-c", USP_SCRIPT, ctx["base"] + "/"], cwd=BENCH_DIR, env=clean_env(),
                     log=log, timeout=ctx["timeout"])
    res = result_line(r["log"])
    r["urls"] = res["urls"] if res else None
    r["ok"] = r["rc"] == 0 and r["urls"] == ctx["n"]
    if not r["ok"]:
        r["error"] = f"usp: exit {r['rc']}, {r['urls']} URLs (expected {ctx['n']})"
    return r


def run_stock(ctx: dict, tag: str) -> dict:
    log = ctx["logdir"] / f"stock_{tag}.log"
    with tempfile.TemporaryDirectory(prefix="bench_stock_") as tmp:
        spider = Path(tmp) / "stock_sitemap.py"
        spider.write_text(STOCK_SPIDER)
        # cwd = the temp dir, so no project settings (pipelines, DB) are picked up
        r = run_measured(
            [sys.executable, "-m", "scrapy", "runspider", str(spider), "-a", f"robots={ctx['base']}/robots.txt",
             "-s", "LOG_LEVEL=INFO"],
            cwd=Path(tmp), env=clean_env(), log=log, timeout=ctx["timeout"],
        )
    res = result_line(r["log"])
    r["urls"] = res["urls"] if res else None
    r["ok"] = r["rc"] == 0 and r["urls"] == ctx["n"]
    if not r["ok"]:
        r["error"] = f"stock SitemapSpider: exit {r['rc']}, {r['urls']} URLs (expected {ctx['n']})"
    return r


# --- databases ---

def pg_admin_connect(admin_url: str):
    import psycopg2
    from sqlalchemy.engine import make_url

    u = make_url(admin_url)
    conn = psycopg2.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres",
                            password=u.password, dbname=u.database or "postgres")
    conn.autocommit = True
    return conn, u


def create_pg_db(admin_url: str) -> tuple[str, str]:
    name = PG_BENCH_PREFIX + uuid.uuid4().hex[:12]
    conn, u = pg_admin_connect(admin_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    url = u.set(drivername="postgresql+psycopg2", database=name).render_as_string(hide_password=False)
    return name, url


def drop_pg_db(admin_url: str, name: str) -> None:
    try:
        conn, _ = pg_admin_connect(admin_url)
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001 - report and go on
        print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)


def count_pages(url: str) -> tuple[int | None, str | None]:
    """Rows in `pages` of the newest job (each scan stores its own snapshot)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM pages WHERE job_id = (SELECT id FROM jobs ORDER BY created_at DESC LIMIT 1)"
            )).scalar_one()), None
    except Exception as exc:  # noqa: BLE001
        return None, str(exc).splitlines()[0]
    finally:
        engine.dispose()


SIZED_TABLES = ("pages", "sitemaps", "jobs", "domains")


def table_bytes(url: str) -> dict[str, int]:
    """pg_total_relation_size (heap + indexes + TOAST) of the result tables: what they occupy now.
    Empty on SQLite."""
    from sqlalchemy import create_engine, text

    if not url.startswith("postgres"):
        return {}
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: int(conn.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar_one())
                    for t in SIZED_TABLES}
    finally:
        engine.dispose()


def migrate(url: str, log: Path, project_dir: Path) -> None:
    """Bring the schema up before the timed run (a production database already has it)."""
    with open(log, "wb") as out:
        rc = subprocess.call([sys.executable, "-m", "pipelines.db", "upgrade"], cwd=project_dir,
                             env=clean_env(DATABASE_URL=url), stdout=out, stderr=subprocess.STDOUT)
    if rc != 0:
        print(f"  warning: schema migration failed (exit {rc}); the crawl will have to create it. See {log}",
              flush=True)


def run_scrapersky(ctx: dict, tag: str) -> dict:
    log = ctx["logdir"] / f"scrapersky_{tag}.log"
    dbname = None
    if ctx["database_url"]:
        url = ctx["database_url"]
    else:
        dbname, url = create_pg_db(ctx["pg_admin"])
    try:
        if not ctx["no_migrate"]:
            migrate(url, ctx["logdir"] / f"migrate_{tag}.log", ctx["project_dir"])
        cmd = [sys.executable, "-m", "scrapy", "crawl", "sitemap", "-a", f"domain={ctx['base']}",
               "-s", "LOG_LEVEL=INFO"]
        for s in ctx["scrapy_settings"]:
            cmd += ["-s", s]
        r = _crawl_once(ctx, cmd, url, log)
        r["database"] = dbname or url
        r["rescans"] = []
        for k in range(ctx["rescan"] if r["ok"] else 0):
            before = table_bytes(url)
            again = _crawl_once(ctx, cmd, url, log.with_name(f"{log.stem}_rescan{k + 1}.log"))
            after = table_bytes(url)
            again["bytes_added"] = {t: after[t] - before[t] for t in after}
            again["bytes_after"] = after
            r["rescans"].append(again)
            if not again["ok"]:
                break
    finally:
        if dbname and not ctx["keep_db"]:
            drop_pg_db(ctx["pg_admin"], dbname)
        elif dbname:
            print(f"  kept database {dbname}", flush=True)
    return r


def _crawl_once(ctx: dict, cmd: list[str], url: str, log: Path) -> dict:
    # the fixture site is on 127.0.0.1: the crawl must be allowed to reach it
    r = run_measured(cmd, cwd=ctx["project_dir"], env=clean_env(DATABASE_URL=url, SCRAPERSKY_ALLOW_PRIVATE="1"),
                     log=log, timeout=ctx["timeout"])
    r["urls"], err = count_pages(url)
    if r["rc"] != 0 or r["timed_out"]:
        r["ok"] = False
        r["error"] = f"ScraperSky crawl failed: exit {r['rc']}{' (timed out)' if r['timed_out'] else ''}"
    elif r["urls"] is None:
        r["ok"] = False
        r["error"] = f"ScraperSky: could not count rows in table pages: {err}"
    elif r["urls"] != ctx["n"]:
        r["ok"] = False
        r["error"] = f"ScraperSky: {r['urls']:,} rows in pages for the job, expected {ctx['n']:,}"
    else:
        r["ok"] = True
    print(f"  scrapersky: rows in pages for the job = {r['urls']}, expected = {ctx['n']}", flush=True)
    return r


RUNNERS = {
    "usp": ("usp (reference)", run_usp),
    "scrapersky": ("ScraperSky", run_scrapersky),
    "stock": ("Scrapy SitemapSpider", run_stock),
    "rescan": ("ScraperSky re-scan", None),  # filled by run_scrapersky with --rescan
}


# ---------------------------------------------------------------------------------------------------------
# One benchmark (one size)
# ---------------------------------------------------------------------------------------------------------

def summarise(runs: list[dict]) -> dict:
    ok = [r for r in runs if r.get("ok")]
    src = ok or runs
    walls = [r["wall_s"] for r in src]
    rss = [r["rss_mb"] for r in src]
    return {
        "ok": len(ok) == len(runs),
        "runs": len(runs),
        "urls": src[-1].get("urls"),
        "wall_best_s": min(walls),
        "wall_median_s": statistics.median(walls),
        "rss_best_mb": min(rss),
        "rss_median_mb": statistics.median(rss),
        "rss_max_mb": max(rss),
        "cpu_median_s": statistics.median(r["cpu_s"] for r in src),
    }


def bench_one(n_urls: int, args: argparse.Namespace, kind: str = "rich") -> dict:
    site, meta = ensure_fixture(n_urls, kind)
    order = []
    if not args.skip_usp:
        order.append("usp")
    if not args.skip_crawl:
        order.append("scrapersky")
    if args.stock:
        order.append("stock")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logdir = DATA / "logs" / f"{stamp}_{n_urls}"
    logdir.mkdir(parents=True, exist_ok=True)
    if args.rescan and "scrapersky" in order:
        order.insert(order.index("scrapersky") + 1, "rescan")
    results: dict[str, list[dict]] = {k: [] for k in order}
    load_start = os.getloadavg()[0]
    errors: list[str] = []
    with SiteServer(site, meta["port"]) as server:
        print(f"server: {server.base}/ (pid {server.proc.pid}), logs in {logdir}", flush=True)
        ctx = {
            "n": n_urls, "base": server.base, "logdir": logdir, "timeout": args.timeout,
            "database_url": args.database_url, "pg_admin": args.pg_admin, "keep_db": args.keep_db,
            "no_migrate": args.no_migrate, "project_dir": Path(args.project_dir).resolve(), "scrapy_settings": args.set or [],
            "rescan": args.rescan,
        }
        for rep in range(args.repeat):
            for key in order:
                label, fn = RUNNERS[key]
                if fn is None:
                    continue
                before = server.stats()
                r = fn(ctx, f"{rep + 1}")
                after = server.stats()
                r["server"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                done = [(key, r)] + [("rescan", again) for again in r.pop("rescans", [])]
                for key_done, run in done:
                    results[key_done].append(run)
                    urls = "?" if run.get("urls") is None else f"{run['urls']:,}"
                    sv = run.get("server")
                    if sv is None:  # a re-scan: the server's counters cover the first scan and its re-scans
                        added = run.get("bytes_added")
                        what = f"+{sum(added.values()) / 1e6:.1f} MB in the tables" if added else "re-scan"
                    else:
                        aborted = f", {sv['aborted']} ABORTED by the client" if sv.get("aborted") else ""
                        what = f"{sv.get('requests', '?')} requests, {sv.get('not_found', '?')} 404{aborted}"
                    print(f"  run {rep + 1}/{args.repeat} {RUNNERS[key_done][0]:<22} {run['wall_s']:8.2f} s "
                          f"{run['rss_mb']:8.1f} MB {urls:>12} URLs   [{what}]{'' if run['ok'] else '  <-- FAIL'}",
                          flush=True)
                    if not run["ok"]:
                        errors.append(run["error"])
                        print(f"FAIL: {run['error']} (log: {run['log']})\n{tail(run['log'])}", flush=True)
    summary = {k: summarise(v) for k, v in results.items() if v}
    rescans = [r for r in results.get("rescan", []) if r.get("bytes_added")]
    if rescans:
        summary["rescan"]["bytes_added"] = {t: statistics.median(r["bytes_added"][t] for r in rescans)
                                            for t in rescans[0]["bytes_added"]}
        summary["rescan"]["bytes_after_last"] = rescans[-1]["bytes_after"]
    return {"urls": n_urls, "kind": kind, "repeat": args.repeat, "fixture": meta, "summary": summary, "runs": results,
            "errors": errors, "loadavg": {"start": load_start, "end": os.getloadavg()[0]}}


def fmt_ratio(a: float | None, b: float | None) -> str:
    return "n/a" if not a or not b else f"{a / b:.2f}"


def verdict(value: float, goal: float, must: float | None = None) -> str:
    if value <= goal:
        return "(goal met)"
    if must is not None and value <= must:
        return "(goal missed, must met)"
    return "(MISSED)" if must is None else "(goal and must MISSED)"


def print_report(res: dict) -> None:
    n, k, summ = res["urls"], res["repeat"], res["summary"]
    print()
    print(f"== {n:,} URLs, {res.get('kind', 'rich')} entries ({len(res['fixture']['files'])} sitemaps), {k} run(s) each, "
          f"{platform.python_version()} on {os.cpu_count()} CPUs ==")
    head = (f"{'run':<22} {'wall best s':>11} {'wall median s':>13} {'CPU s':>7} {'peak RSS MB':>11} "
            f"{'RSS median MB':>13} {'URLs':>11}")
    la = res["loadavg"]
    busy = max(la["start"], la["end"]) > 0.5 * (os.cpu_count() or 1)
    print(f"load average (1 min) at start {la['start']:.2f}, at end {la['end']:.2f}"
          + ("   <-- the machine is busy: timings are noisy, prefer 'best' and --repeat" if busy else ""))
    print(head)
    print("-" * len(head))
    for key, s in summ.items():
        urls = "?" if s["urls"] is None else f"{s['urls']:,}"
        flag = "" if s["ok"] else "  FAIL"
        print(f"{RUNNERS[key][0]:<22} {s['wall_best_s']:>11.2f} {s['wall_median_s']:>13.2f} {s['cpu_median_s']:>7.2f} "
              f"{s['rss_max_mb']:>11.1f} {s['rss_median_mb']:>13.1f} {urls:>11}{flag}")
    print()
    if "usp" in summ and "scrapersky" in summ and summ["usp"]["ok"] and summ["scrapersky"]["ok"]:
        u, c = summ["usp"], summ["scrapersky"]
        rb = c["wall_best_s"] / u["wall_best_s"]
        rm = c["wall_median_s"] / u["wall_median_s"]
        print(f"time ratio ScraperSky/usp (goal <= {GOAL_RATIO}, must <= {MUST_RATIO}): "
              f"best {rb:.2f} {verdict(rb, GOAL_RATIO, MUST_RATIO)}; median {rm:.2f} {verdict(rm, GOAL_RATIO, MUST_RATIO)}")
        print(f"RSS ratio  ScraperSky/usp: {fmt_ratio(c['rss_max_mb'], u['rss_max_mb'])}")
    if "rescan" in summ and "scrapersky" in summ and summ["scrapersky"]["ok"]:
        r, c = summ["rescan"], summ["scrapersky"]
        rb, rm = r["wall_best_s"] / c["wall_best_s"], r["wall_median_s"] / c["wall_median_s"]
        print(f"time ratio re-scan/first scan (goal <= {GOAL_RESCAN}): best {rb:.2f} {verdict(rb, GOAL_RESCAN)}; "
              f"median {rm:.2f} {verdict(rm, GOAL_RESCAN)}")
        added = r.get("bytes_added")
        if added:
            total = sum(added.values())
            print(f"bytes each re-scan adds (median, pg_total_relation_size): {total / 1e6:.1f} MB = "
                  f"{total / n:.0f} bytes/URL ("
                  + ", ".join(f"{t} {b / 1e6:.1f} MB" for t, b in added.items()) + ")")
    if "stock" in summ and "usp" in summ:
        print(f"time ratio SitemapSpider/usp: median "
              f"{summ['stock']['wall_median_s'] / summ['usp']['wall_median_s']:.2f}")
    if "scrapersky" in summ and not summ["scrapersky"]["ok"]:
        print("ScraperSky run failed: no verdict on the goals")
    elif "scrapersky" in summ:
        rss = summ["scrapersky"]["rss_max_mb"]
        print(f"ScraperSky peak RSS (goal <= {GOAL_RSS_MB:.0f} MB): {rss:.1f} MB {verdict(rss, GOAL_RSS_MB)}")
        if n >= 1_000_000:
            print(f"note: at {n:,} URLs the peak RSS should be within 10 % of the 200k run "
                  f"(use --scale-check, or --compare-rss FILE with the --json of a 200k run)")
    for e in res["errors"]:
        print(f"FAIL: {e}")


def compare_rss(small: dict, big: dict, label_small: str, label_big: str) -> None:
    print()
    print(f"== peak RSS scaling: {label_big} vs {label_small} ==")
    for key in big["summary"]:
        if key not in small.get("summary", {}):
            continue
        a, b = small["summary"][key]["rss_max_mb"], big["summary"][key]["rss_max_mb"]
        line = f"{RUNNERS[key][0]:<22} {a:8.1f} MB -> {b:8.1f} MB   ratio {b / a:.3f}"
        if key == "scrapersky":
            line += f"   goal <= {GOAL_SCALE_RSS:.2f} {verdict(b / a, GOAL_SCALE_RSS)}"
        print(line)


# ---------------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--urls", type=int, default=200_000, help="URLs in the fixture site (default 200000)")
    p.add_argument("--repeat", type=int, default=1, metavar="K", help="run each K times; best and median")
    p.add_argument("--fixture", choices=("rich", "plain", "both"), default="both",
                   help="rich: lastmod/changefreq/priority on every URL; plain: only <loc>; both (default)")
    p.add_argument("--rescan", type=int, default=0, metavar="K",
                   help="after each ScraperSky crawl, scan the same site K more times into the same database")
    p.add_argument("--stock", action="store_true", help="also run Scrapy's stock SitemapSpider (no page fetches)")
    p.add_argument("--skip-usp", action="store_true", help="skip the ultimate-sitemap-parser reference")
    p.add_argument("--skip-crawl", action="store_true", help="skip the ScraperSky crawl")
    p.add_argument("--database-url", help="use this DATABASE_URL instead of a fresh PostgreSQL database "
                                          "(e.g. sqlite:////tmp/bench.db; should start empty)")
    p.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN,
                   help=f"PostgreSQL URL used to create/drop the bench databases (default {DEFAULT_PG_ADMIN})")
    p.add_argument("--keep-db", action="store_true", help="do not drop the bench database(s)")
    p.add_argument("--no-migrate", action="store_true",
                   help="do not migrate the schema before the timed crawl (the crawl then pays for it)")
    p.add_argument("--project-dir", default=str(REPO),
                   help="run the crawl from this checkout (default: the repository holding bench/)")
    p.add_argument("-s", "--set", action="append", metavar="NAME=VALUE", help="extra Scrapy setting for the crawl")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before a run is killed (default 1800)")
    p.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    p.add_argument("--compare-rss", metavar="FILE", help="compare peak RSS with a previous --json FILE")
    p.add_argument("--scale-check", action="store_true",
                   help="run 200,000 then 2,000,000 URLs and print the peak RSS ratio (ignores --urls)")
    p.add_argument("--generate-only", action="store_true", help="only build the fixture(s)")
    p.add_argument("--serve", action="store_true", help="only serve the fixture until Ctrl-C (for manual tests)")
    p.add_argument("--_serve", help=argparse.SUPPRESS)
    p.add_argument("--_port", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.repeat < 1 or a.urls < 1 or a.rescan < 0:
        p.error("--repeat and --urls must be >= 1, --rescan >= 0")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._serve:
        serve(Path(args._serve), args._port)
        return 0
    sizes = [200_000, 2_000_000] if args.scale_check else [args.urls]
    kinds = ["rich", "plain"] if args.fixture == "both" else [args.fixture]
    if args.generate_only:
        for n in sizes:
            for kind in kinds:
                ensure_fixture(n, kind)
        return 0
    if args.serve:
        site, meta = ensure_fixture(sizes[0], kinds[0])
        def _stop(*_):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        with SiteServer(site, meta["port"]) as server:
            print(f"serving {server.base}/ ; Ctrl-C (or SIGTERM) to stop", flush=True)
            try:
                server.proc.wait()
            except KeyboardInterrupt:
                pass
        return 0

    results = []
    for kind in kinds:
        for n in sizes:
            res = bench_one(n, args, kind)
            print_report(res)
            results.append(res)

    if args.scale_check:
        for k, kind in enumerate(kinds):
            compare_rss(results[2 * k], results[2 * k + 1], f"200,000 {kind}", f"2,000,000 {kind}")
    if args.compare_rss:
        prev = json.loads(Path(args.compare_rss).read_text())
        prev = prev["results"][-1] if "results" in prev else prev
        cur = results[-1]
        pair = [(prev, f"{prev['urls']:,} ({args.compare_rss})"), (cur, f"{cur['urls']:,} (this run)")]
        pair.sort(key=lambda item: item[0]["urls"])
        compare_rss(pair[0][0], pair[1][0], pair[0][1], pair[1][1])
    if args.json:
        out = {
            "bench": "bench_200k", "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "host": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()},
            "results": results,
        }
        if len(results) == 1:
            out.update(results[0])
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
        print(f"\nfigures written to {args.json}")
    failed = any(r["errors"] for r in results)
    if failed:
        print("\nFAIL: see the lines above")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
