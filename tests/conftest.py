"""Shared fixtures: the loopback site server, fresh databases, and running `scrapy crawl sitemap`.

PostgreSQL: admin URL from env SCRAPERSKY_TEST_PG (default postgresql+psycopg2://postgres@127.0.0.1:5432/postgres);
each test database is `scrapersky_test_<random>`, dropped afterwards. When PostgreSQL is unreachable the
PostgreSQL variants are skipped, or fail when CI=true or SCRAPERSKY_REQUIRE_PG=1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.site_catalogue import catalogue_sites
from tests.sites import SiteServer

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


# --------------------------------------------------------------------------------------------------
# Site server
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def site_server() -> Iterator[SiteServer]:
    """One server for the session with the whole catalogue; tests may add their own sites to `.sites`."""
    with SiteServer(catalogue_sites()) as server:
        yield server


# --------------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------------
def _pg_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("SCRAPERSKY_REQUIRE_PG") == "1"


@contextlib.contextmanager
def fresh_pg_database() -> Iterator[str]:
    """Create `scrapersky_test_<random>` on the admin server, yield its URL, drop it afterwards."""
    admin_url = os.environ.get("SCRAPERSKY_TEST_PG", DEFAULT_ADMIN_PG)
    if admin_url.startswith(("postgres://", "postgresql://")):
        admin_url = "postgresql+psycopg2://" + admin_url.split("://", 1)[1]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"scrapersky_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection problem means "no PostgreSQL here"
        admin.dispose()
        reason = f"PostgreSQL unreachable at {make_url(admin_url).render_as_string(hide_password=True)}: " \
                 f"{str(exc).splitlines()[0]}"
        if _pg_required():
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def sqlite_file_url(directory: Path) -> str:
    return f"sqlite:///{directory / f'scrapersky-{uuid.uuid4().hex[:8]}.db'}"


@contextlib.contextmanager
def fresh_database(backend: str, tmp_dir: Path) -> Iterator[str]:
    if backend == "postgresql":
        with fresh_pg_database() as url:
            yield url
    elif backend == "sqlite":
        yield sqlite_file_url(tmp_dir)
    else:
        raise ValueError(backend)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return sqlite_file_url(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


# --------------------------------------------------------------------------------------------------
# Running the crawler
# --------------------------------------------------------------------------------------------------
class CrawlResult(subprocess.CompletedProcess):
    """A finished crawl: CompletedProcess plus the crawl process's peak resident memory."""

    peak_rss_mb: float = 0.0

    def summary(self, lines: int = 40) -> str:
        tail = "\n".join((self.stderr or "").splitlines()[-lines:])
        return f"exit {self.returncode}, peak RSS {self.peak_rss_mb:.0f} MB; last log lines:\n{tail}"


def crawl_env(server: SiteServer, db_url: str, env_extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(server.proxy_env())
    env["DATABASE_URL"] = db_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("SCRAPY_SETTINGS_MODULE", None)
    # The request guard is on: sites are `.test` names behind the proxy. A test that crawls 127.0.0.1
    # directly opts in with env_extra={"SCRAPERSKY_ALLOW_PRIVATE": "1"}.
    env.pop("SCRAPERSKY_ALLOW_PRIVATE", None)
    env.update(env_extra or {})
    return env


def run_scrapy_crawl(server: SiteServer, args: list[str], db_url: str, env_extra: dict[str, str] | None = None,
                     timeout: float = 120) -> CrawlResult:
    """`python -m scrapy crawl sitemap *args` in the repo root, through `server`; waits with os.wait4 to
    learn the process's peak RSS. Kills the process group and fails the test on timeout."""
    cmd = [sys.executable, "-m", "scrapy", "crawl", "sitemap", *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=crawl_env(server, db_url, env_extra), stdout=out,
                                stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = CrawlResult(cmd, proc.returncode, out.read().decode(errors="replace"),
                             err.read().decode(errors="replace"))
    result.peak_rss_mb = usage.ru_maxrss / 1024  # KiB on Linux
    if timed_out.is_set():
        pytest.fail(f"crawl {' '.join(args)} still running after {timeout} s; {result.summary()}")
    return result


@pytest.fixture
def run_crawl(site_server: SiteServer) -> Callable[..., CrawlResult]:
    """run_crawl(args, db_url, env_extra=None, timeout=120) -> CrawlResult (a CompletedProcess)."""

    def run(args: list[str], db_url: str, env_extra: dict[str, str] | None = None,
            timeout: float = 120) -> CrawlResult:
        return run_scrapy_crawl(site_server, args, db_url, env_extra, timeout)

    return run


def pytest_collection_modifyitems(session, config, items) -> None:
    """The long fault tests (xdist group "faults", mostly waiting) first: one worker starts on them at
    once while the other works through the rest, instead of them trailing at the end of the run."""
    def first(item) -> int:
        group = item.get_closest_marker("xdist_group")
        return 0 if group and group.args == ("faults",) else 1
    items.sort(key=first)  # stable: the order is otherwise kept
