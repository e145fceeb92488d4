"""Engines and schema: which database, and making sure its schema is current.

`DATABASE_URL` selects the database. Unset, an SQLite file `scrapersky.db` in the working directory
is used. The schema is created and upgraded by Alembic (`pipelines/migrations`), automatically on
first use (`get_engine`) or by hand with `python -m pipelines.db upgrade`.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_SQLITE_FILE = "scrapersky.db"
_MIGRATION_LOCK_ID = 0x5C5A_0001

_engines: dict[str, Engine] = {}
_lock = threading.RLock()
_unpacked: Path | None = None


def database_url(env: dict[str, str] | None = None) -> str:
    """The SQLAlchemy URL to use: `DATABASE_URL`, else an SQLite file in the working directory."""
    env = os.environ if env is None else env
    url = (env.get("DATABASE_URL") or "").strip()
    if not url:
        return f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"
    return normalise_url(url)


def normalise_url(url: str) -> str:
    """Plain `postgres://`/`postgresql://` URLs go through psycopg2 (SQLAlchemy 2.1 would pick psycopg 3)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def redact_url(url: str | None) -> str | None:
    """`url` without its user info (`scheme://user:password@host/...` -> `scheme://host/...`): the one
    way a configured URL (database, scrapyd node) is shown in a response, a log line or an error.
    The user info is found as the URL's consumer finds it: for http(s) as requests does (RFC 3986:
    the authority ends at the first `/`), for database URLs as SQLAlchemy does (the password runs to
    the first `@` and may hold a raw `/`)."""
    if not url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    if scheme.lower() not in ("http", "https") and (m := _SQLALCHEMY_USERINFO.match(rest)):
        rest = rest[m.end():]
    # then RFC 3986 (and what is left of a password holding a raw `@`)
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return f"{scheme}://{rest[:end].rpartition('@')[2]}{rest[end:]}"


_SQLALCHEMY_USERINFO = re.compile(r"[^:/]*(?::[^@]*)?@")  # sqlalchemy.engine.url's username/password


def make_engine(url: str) -> Engine:
    """An engine with the connection settings ScraperSky relies on (no schema work)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`, the newest by default (safe to call from several processes;
    tests of a migration stop at the revision before it)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def is_current(engine: Engine) -> bool:
    """Whether the database's schema is already at the newest revision, asked without Alembic (whose
    import and script loading cost ~0.1 s of every crawl's start-up): its `alembic_version` row against
    the head of the revision scripts. False whenever in doubt (no such table, several heads, a script
    read otherwise than expected); `upgrade` then decides."""
    head = _head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as conn:
            versions = [row[0] for row in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
    except Exception:  # no table yet, or the database is not there: upgrade says what is wrong
        return False
    return versions == [head]


_REVISION = re.compile(r"^revision(?:: str)? = [\"']([\w-]+)[\"']\s*$", re.M)
_DOWN_REVISION = re.compile(r"^down_revision(?:: [^=]+)? = (?:None|[\"']([\w-]+)[\"'])\s*$", re.M)
_heads: dict[Path, str | None] = {}


def _head_revision() -> str | None:
    """The one revision no script names as its down_revision; None when the scripts are not one line
    of plain `revision = "..."` / `down_revision = "..."` assignments."""
    folder = migrations_dir() / "versions"
    if folder in _heads:
        return _heads[folder]
    revisions: set[str] = set()
    downs: set[str] = set()
    head = None
    for path in folder.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(text), _DOWN_REVISION.findall(text)
        if len(revision) != 1 or len(down) != 1:
            break
        revisions.add(revision[0])
        if down[0]:
            downs.add(down[0])
    else:
        heads = revisions - downs
        head = heads.pop() if len(heads) == 1 and downs <= revisions else None
    _heads[folder] = head
    return head


def migrations_dir() -> Path:
    """The Alembic scripts as a real folder: the package's own, or, when the package runs from a
    zipped egg (a scrapyd deployment), a copy unpacked once into a temporary folder."""
    global _unpacked
    if MIGRATIONS.is_dir():
        return MIGRATIONS
    with _lock:
        if _unpacked is None:
            target = Path(tempfile.mkdtemp(prefix="scrapersky-migrations-"))
            _copy_tree(importlib.resources.files("pipelines").joinpath("migrations"), target)
            _unpacked = target
        return _unpacked


def _copy_tree(source: Any, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.is_dir():
            if entry.name != "__pycache__":
                _copy_tree(entry, target / entry.name)
        else:
            (target / entry.name).write_bytes(entry.read_bytes())


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for `url` (default: `database_url()`), its schema made current once."""
    url = normalise_url(url) if url else database_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(url)
            if not is_current(engine):
                upgrade(engine)
            _engines[url] = engine
        return engine


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["upgrade"]:
        print("usage: python -m pipelines.db upgrade   (applies migrations to $DATABASE_URL)", file=sys.stderr)
        return 2
    url = database_url()
    try:
        upgrade(make_engine(url))
    except Exception as exc:  # one line for the user, not a traceback
        print(f"error: could not upgrade {redact_url(url)}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"schema is current in {redact_url(url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
