"""Dispatcher leadership: however many API workers and `python -m api.dispatcher` processes run, one
of them dispatches and reconciles at a time, so per-node crawl limits hold.

- PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) held on a dedicated connection. When
  the leader process dies its connection closes and PostgreSQL drops the lock; another process takes
  it on its next tick (`DISPATCH_INTERVAL`, 1 s). The leader checks its connection before every tick
  and stops leading as soon as it is lost.
- SQLite: an exclusive `flock` on `<database file>.dispatcher.lock`, released by the kernel when the
  process ends (SQLite deployments are one machine; run the API and dispatcher there).

Within one process every dispatcher of the same database shares the leadership and ticks in turn.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

logger = logging.getLogger("api.dispatcher")

LOCK_KEY = 0x5C5A_0002  # pipelines.db uses 0x5C5A_0001 for migrations
_registry: dict[str, "Leadership"] = {}
_registry_lock = threading.Lock()


class Leadership:
    def __init__(self, url: Any) -> None:
        self.url = url
        self.turn = threading.Lock()  # one tick at a time within the process
        self._conn: Any = None  # PostgreSQL: the connection holding the lock
        self._file: Any = None  # SQLite: the locked file
        self.held = False

    # -- one leader per database ----------------------------------------------------------------
    @contextlib.contextmanager
    def lead(self) -> Iterator[bool]:
        """`with leadership.lead() as leading:` — leading is True when this process leads now."""
        with self.turn:
            yield self._ensure()

    def _ensure(self) -> bool:
        was = self.held
        try:
            self.held = self._pg() if self.url.get_backend_name() == "postgresql" else self._sqlite()
        except Exception as exc:  # the database is unreachable: nobody here leads until it is back
            logger.warning("dispatcher leadership lost: %s", " ".join(str(exc).split())[:200])
            self._drop()
            self.held = False
        if self.held != was:
            logger.info("this process %s the dispatcher leader (pid %d)", "is now" if self.held else "is no longer",
                        os.getpid())
        return self.held

    def _pg(self) -> bool:
        if self._conn is None:
            engine = create_engine(self.url, poolclass=NullPool, connect_args={
                "connect_timeout": 5, "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                "keepalives_count": 3, "application_name": "scrapersky-dispatcher"})
            self._conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if self.held:
            self._conn.execute(text("SELECT 1"))  # raises when the connection (and so the lock) is gone
            return True
        return bool(self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar())

    def _sqlite(self) -> bool:
        if self._file is not None:
            return True
        path = self.url.database
        if not path or path == ":memory:":
            return True
        handle = open(f"{path}.dispatcher.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def resign(self) -> None:
        with self.turn:
            if self._conn is not None and self.held:
                # Unlock before closing: the server drops a closed session's locks only once its
                # backend has exited, which a successor asking at once could still beat.
                with contextlib.suppress(Exception):
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            self._drop()
            self.held = False


def leadership(engine: Engine) -> Leadership:
    """The process's leadership for `engine`'s database."""
    key = engine.url.render_as_string(hide_password=False)
    with _registry_lock:
        found = _registry.get(key)
        if found is None:
            found = _registry[key] = Leadership(engine.url)
        return found
