"""Helpers and fixtures for the API tests: a fresh PostgreSQL database, a real scrapyd started from the
repository on a free port (its crawl processes sent through a loopback SiteServer as http_proxy), the
API app, and small fixture sites (robots.txt -> index -> two sitemaps, one gzipped).

Import the fixtures into a test module with `from tests.api_fixtures import *  # noqa: F401,F403`.
"""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.sites import Resp, Site, SiteServer

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("SCRAPERSKY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_keys(db_url: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m api keys ARGS` against `db_url`, as a user runs it."""
    env = {**os.environ, "DATABASE_URL": db_url}
    return subprocess.run([sys.executable, "-m", "api", "keys", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# ------------------------------------------------------------------------------------------ PostgreSQL
def _pg_available() -> bool:
    try:
        import psycopg2

        psycopg2.connect(PG_ADMIN.replace("postgresql://", "postgres://"), connect_timeout=3).close()
        return True
    except Exception:
        return False


def require_pg() -> None:
    """Skip when PostgreSQL is not there, or fail when SCRAPERSKY_REQUIRE_PG is set (CI)."""
    if not _pg_available():
        if os.environ.get("SCRAPERSKY_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL not reachable at {PG_ADMIN} (SCRAPERSKY_REQUIRE_PG is set)")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}")


def create_pg_database() -> str:
    import psycopg2

    name = f"scrapersky_api_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    import psycopg2

    from pipelines.db import dispose_all

    dispose_all()
    name = url.rsplit("/", 1)[1]
    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture
def api_pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (schema created on first use)."""
    require_pg()
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


# ------------------------------------------------------------------------------------------ sites
def urlset(urls: list[str]) -> bytes:
    body = "".join(f"<url><loc>{u}</loc><lastmod>2024-01-02</lastmod></url>" for u in urls)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</urlset>').encode()


def small_site(host: str, n: int = 50) -> tuple[Site, set[str]]:
    """robots.txt -> /sitemap_index.xml -> /sitemap-a.xml and /sitemap-b.xml.gz (n URLs each)."""
    a = [f"http://{host}/a/{i}" for i in range(n)]
    b = [f"http://{host}/b/{i}" for i in range(n)]
    index = (f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             f"<sitemap><loc>http://{host}/sitemap-a.xml</loc></sitemap>"
             f"<sitemap><loc>http://{host}/sitemap-b.xml.gz</loc></sitemap></sitemapindex>").encode()
    site = Site({
        "/": Resp(body=f"<html><head><title>{host}</title></head><body>hi</body></html>".encode(),
                  headers={"Content-Type": "text/html; charset=utf-8"}),
        "/robots.txt": Resp(body=f"User-agent: *\nDisallow:\nSitemap: http://{host}/sitemap_index.xml\n".encode(),
                            headers={"Content-Type": "text/plain"}),
        "/sitemap_index.xml": Resp(body=index, headers={"Content-Type": "application/xml"}),
        "/sitemap-a.xml": Resp(body=urlset(a), headers={"Content-Type": "application/xml"}),
        "/sitemap-b.xml.gz": Resp(body=gzip.compress(urlset(b), mtime=0),
                                  headers={"Content-Type": "application/x-gzip"}),
    })
    return site, set(a) | set(b)


def slow_site(host: str, delay: float) -> Site:
    """A site whose robots.txt takes `delay` seconds: keeps a crawl busy for cancel/kill tests."""
    def body():
        time.sleep(delay)
        return b"User-agent: *\nDisallow:\n"

    return Site({"/robots.txt": Resp(body=body, headers={"Content-Type": "text/plain"})})


@pytest.fixture
def api_sites() -> Iterator[SiteServer]:
    server = SiteServer({}).start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------ scrapyd
class ScrapydProcess:
    def __init__(self, workdir: Path, env: dict[str, str], port: int | None = None,
                 username: str | None = None, password: str | None = None, poll_interval: float = 0.2) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.username, self.password = username, password
        self.home = workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        # ~/.scrapyd.conf is read after the repository's scrapyd.conf: it moves the state into workdir.
        (self.home / ".scrapyd.conf").write_text(
            "[scrapyd]\n"
            f"dbs_dir = {workdir / 'dbs'}\nlogs_dir = {workdir / 'logs'}\neggs_dir = {workdir / 'eggs'}\n"
            f"poll_interval = {poll_interval}\n"
        )
        self.env = {**os.environ, **env, "HOME": str(self.home), "SCRAPYD_HTTP_PORT": str(self.port),
                    "SCRAPYD_BIND_ADDRESS": "127.0.0.1", "PYTHONPATH": str(REPO),
                    "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        if "SCRAPERSKY_ALLOW_PRIVATE" not in env:  # the guard stays on unless a test opts in
            self.env.pop("SCRAPERSKY_ALLOW_PRIVATE", None)
        if username:
            self.env.update(SCRAPYD_USERNAME=username, SCRAPYD_PASSWORD=password or "")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self):
        return (self.username, self.password or "") if self.username else None

    def start(self, cwd: Path = REPO, timeout: float = 30.0) -> "ScrapydProcess":
        log = open(self.workdir / "scrapyd.out", "ab")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "scrapyd"), "--pidfile=", f"--logfile={self.workdir / 'scrapyd.log'}"],
            cwd=cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"scrapyd exited: {(self.workdir / 'scrapyd.log').read_text()[-2000:]}")
            try:
                return requests.get(f"{self.url}/daemonstatus.json", auth=self.auth, timeout=1).ok
            except requests.RequestException:
                return False

        wait_until(up, timeout, what="scrapyd to answer")
        return self

    def stop(self) -> None:
        """Stop scrapyd and every crawl process it started (its process group's session)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def crawl_pids(self) -> list[int]:
        import psutil

        if self.proc is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def log_text(self) -> str:
        p = self.workdir / "scrapyd.log"
        return p.read_text(errors="replace") if p.exists() else ""


@pytest.fixture
def scrapyd_factory(tmp_path):
    started: list[ScrapydProcess] = []

    def make(env: dict[str, str], name: str = "scrapyd", **kwargs) -> ScrapydProcess:
        sp = ScrapydProcess(tmp_path / name, env, **kwargs)
        started.append(sp)
        return sp

    yield make
    for sp in started:
        sp.stop()


# ------------------------------------------------------------------------------------------ app
def make_config(db_url: str, scrapyd_url: str, **overrides):
    """The API's config for tests: no dispatcher thread, no request rate limit (tests that are about
    it set `rate_limit`); quotas keep their defaults."""
    from api.config import Config

    cfg = Config(database_url=db_url, scrapyd_urls=[scrapyd_url], run_dispatcher=False, dispatch_interval=0.2,
                 reconcile_grace=5.0, crawl_min_domains=1, rate_limit=None)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


TEST_TENANT = "tests"


def new_key(app, name: str | None = None, *, tenant: str | None = TEST_TENANT, admin: bool = False) -> str:
    """A new API key (tenant `tests` unless told) in the app's database."""
    from api.auth import create_key

    return create_key(app.scrapersky_store.engine, name or f"k-{uuid.uuid4().hex[:12]}", tenant=tenant, admin=admin)


def key_client(app, key: str | None):
    """A falcon.testing client that sends `key` as its bearer token (none when key is None)."""
    import falcon.testing

    return falcon.testing.TestClient(app, headers={"Authorization": f"Bearer {key}"} if key else None)


def make_client(config, *, admin: bool = False, tenant: str = TEST_TENANT):
    """(app, client): the client sends a fresh key of `tenant` (a normal key unless admin), so every
    client of one database sees the same work."""
    from api.app import create_app

    app = create_app(config, start_dispatcher=False)
    return app, key_client(app, new_key(app, tenant=tenant, admin=admin))
