"""The item pipeline that keeps a crawl in the database.

All database work runs on one background thread, in item order, so parsing (reactor thread) and
writing overlap; the items waiting are stored together, one transaction per group. Only a few page
chunks may wait: when the database falls behind, `process_item` blocks until there is room, so
memory stays flat whatever the size of the site. Failed writes are retried with
back-off (the database may restart under us); a job whose data could not be stored ends `failed`.
When the crawl ends — finished, Ctrl-C or SIGTERM — jobs it carried that have not ended are marked
`failed` (`interrupted`) with the reason, so none stays `running` after the process is gone; under
scrapyd they are left to the dispatcher instead, which puts them back in the queue
(`pipelines.lifecycle`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from pipelines import lifecycle, store
from pipelines.db import database_url, get_engine
from pipelines.status import Outcome

GROUP_ITEMS = 200  # items stored per transaction at most (small items of many domains add up)

logger = logging.getLogger(__name__)
T = TypeVar("T")


class DatabasePipeline:
    def __init__(self, url: str, retries: int = 6, max_pending: int = 4):
        self.url = url
        self.retries = retries
        self.engine: Any = None
        self.queue: queue.Queue[Any] = queue.Queue()
        self.page_slots = threading.BoundedSemaphore(max_pending)  # page chunks waiting for the writer
        self.writer: threading.Thread | None = None
        self.domain_ids: dict[str, int] = {}  # job id -> domain id
        self.sitemap_ids: dict[tuple[int, str], int] = {}
        self.job_errors: dict[str, str] = {}  # job id -> why its data could not be stored
        self.finished: set[str] = set()
        self.stats: Any = None
        self.crawler: Any = None
        self.unreachable = False  # the last write gave up on an unreachable database: don't wait again
        self.write_seconds = 0.0  # time the writer spent on the database
        self.wait_seconds = 0.0  # time the crawl waited for the writer (backpressure)

    @classmethod
    def from_crawler(cls, crawler: Any) -> DatabasePipeline:
        settings = crawler.settings
        url = settings.get("DATABASE_URL") or database_url()
        pipeline = cls(url, retries=settings.getint("SCRAPERSKY_DB_RETRIES", 6),
                       max_pending=settings.getint("SCRAPERSKY_DB_QUEUE", 4))
        pipeline.stats = crawler.stats
        pipeline.crawler = crawler
        return pipeline

    # -- lifecycle ------------------------------------------------------------------------------

    def open_spider(self, spider: Any = None) -> None:
        self.engine = self._retry("opening the database", lambda: get_engine(self.url))
        logger.info("storing results in %s", self.engine.url.render_as_string(hide_password=True))
        self.writer = threading.Thread(target=self._write_items, name="scrapersky-db", daemon=True)
        self.writer.start()

    def close_spider(self, spider: Any = None) -> None:
        self.queue.put(None)
        assert self.writer is not None
        self.writer.join()
        if self.stats is not None:
            self.stats.set_value("scrapersky/db_write_seconds", round(self.write_seconds, 3))
            self.stats.set_value("scrapersky/db_wait_seconds", round(self.wait_seconds, 3))
        spider = spider or getattr(self.crawler, "spider", None)  # Scrapy 2.19 may not pass it
        unfinished = [uuid.UUID(j) for j in getattr(spider, "job_ids", lambda: [])() if j not in self.finished]
        if unfinished:
            reason = "interrupted: the crawl stopped before this domain was finished"
            try:
                marked = self._write(lambda conn: store.fail_unfinished(conn, unfinished, reason, _now()))
            except Exception as exc:  # nothing more this process can do; the API's reconciler will
                logger.error("could not mark %d unfinished job(s) failed: %s", len(unfinished), _line(exc))
                return
            if marked:
                logger.warning("marked %d unfinished job(s) failed", marked)

    def _write_items(self) -> None:
        """The writer thread: stores queued items in order, several per transaction."""
        while True:
            group = [self.queue.get()]
            while group[-1] is not None and len(group) < GROUP_ITEMS:
                try:
                    group.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            done = group[-1] is None
            work = [w for w in group if w is not None]
            started = time.perf_counter()
            if work:
                self._store(work)
            self.write_seconds += time.perf_counter() - started
            for _, item in work:
                if _is_pages(item):
                    self.page_slots.release()
            if done:
                return

    def _store(self, work: list[tuple[Callable[..., None], Any]]) -> None:
        """One transaction for the group. If the database stays unreachable through the retries, the
        group's jobs are marked as failing; if the data was refused, the items are stored one by one,
        so that only the job whose data cannot be stored is affected."""
        try:
            self._write(lambda conn: [handler(self, conn, item) for handler, item in work])
            self.unreachable = False
            return
        except Exception as exc:
            if len(work) == 1 or _transient(exc):
                self.unreachable = _transient(exc)
                for handler, item in work:
                    self._record_failure(handler, item)
                return
        for handler, item in work:
            try:
                self._write(lambda conn, handler=handler, item=item: handler(self, conn, item))
            except Exception:
                self._record_failure(handler, item)

    def _record_failure(self, handler: Any, item: Any) -> None:
        logger.exception("could not store %s of %s", type(item).__name__, getattr(item, "domain", "?"))
        job_id = getattr(item, "job_id", None)
        if job_id:
            exc = sys.exc_info()[1]
            self.job_errors.setdefault(job_id, f"database error: {_line(exc) if exc else 'unknown'}")

    # -- items ----------------------------------------------------------------------------------

    def process_item(self, item: Any, spider: Any = None) -> Any:
        handler = self._handlers.get(type(item).__name__)
        if handler is not None:
            started = time.perf_counter()
            if _is_pages(item):  # page chunks are big: few may wait (backpressure)
                self.page_slots.acquire()
            self.queue.put((handler, item))
            self.wait_seconds += time.perf_counter() - started
        return item

    def _job_started(self, conn: Any, item: Any) -> None:
        domain_id = store.ensure_domain(conn, item.domain)
        self.domain_ids[item.job_id] = domain_id
        batch = uuid.UUID(item.batch_id) if item.batch_id else None
        if not store.start_job(conn, uuid.UUID(item.job_id), item.domain, domain_id, batch, item.options,
                               item.started_at, self._crawl_id()):
            logger.info("job %s is final or carried by another crawl; its results are still stored", item.job_id)

    def _home_page(self, conn: Any, item: Any) -> None:
        domain_id = self.domain_ids.get(item.job_id)
        if domain_id is not None:
            store.save_home_page(conn, domain_id, item.url, item.metadata)

    def _sitemap_file(self, conn: Any, item: Any) -> None:
        domain_id = self.domain_ids.get(item.job_id)
        if domain_id is None:
            return
        fields = dataclasses.asdict(item)
        for name in ("job_id", "domain", "lastmod_count", "priority_count", "changefreq_count"):
            fields.pop(name)
        count = item.url_count or 0
        for share in ("lastmod", "priority", "changefreq"):
            fields[f"{share}_share"] = round(getattr(item, f"{share}_count") / count, 4) if count else None
        self.sitemap_ids[(domain_id, item.url)] = store.upsert_sitemap(conn, domain_id, uuid.UUID(item.job_id), fields)

    def _page_batch(self, conn: Any, item: Any) -> None:
        domain_id = self.domain_ids.get(item.job_id)
        if domain_id is None:
            return
        sitemap_id = self.sitemap_ids.get((domain_id, item.sitemap_url))
        store.upsert_pages(conn, domain_id, sitemap_id, uuid.UUID(item.job_id), _now(), item.pages)

    def _job_finished(self, conn: Any, item: Any) -> None:
        domain_id = self.domain_ids.get(item.job_id)
        error = item.error
        outcome = lifecycle.outcome_of(item.status, item.outcome, error, item.stats)
        if item.job_id in self.job_errors:
            outcome, error = Outcome.DATABASE, self.job_errors[item.job_id]
        store.finish_job(conn, uuid.UUID(item.job_id), domain_id, outcome, error, item.finished_at, item.stats,
                         item.origin)
        self.finished.add(item.job_id)

    def _crawl_id(self) -> str | None:
        """The scrapyd job id of this crawl (scrapyd passes it as the `_job` spider argument)."""
        return getattr(getattr(self.crawler, "spider", None), "_job", None)

    _handlers: dict[str, Callable[[DatabasePipeline, Any, Any], None]] = {
        "JobStarted": _job_started,
        "HomePage": _home_page,
        "SitemapFile": _sitemap_file,
        "PageBatch": _page_batch,
        "JobFinished": _job_finished,
    }

    # -- plumbing -------------------------------------------------------------------------------

    def _write(self, work: Callable[[Any], T]) -> T:
        """Run `work(conn)` in one transaction, retrying while the database is unreachable."""

        def once() -> T:
            with self.engine.begin() as conn:
                return work(conn)

        return self._retry("writing to the database", once)

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        delay = 0.5
        attempts = 1 if self.unreachable else self.retries
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except (OperationalError, DBAPIError) as exc:
                if not _transient(exc) or attempt == attempts:
                    raise
                logger.warning("%s failed (%s); retry %d/%d in %.1fs", what, _line(exc), attempt, attempts - 1, delay)
                time.sleep(delay)
                if self.engine is not None:
                    self.engine.dispose()
                delay = min(delay * 2, 10)
        raise AssertionError("unreachable")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return " ".join(text.split())[:200]


def _transient(exc: BaseException) -> bool:
    """The database could not be reached (as opposed to refusing the data)."""
    return isinstance(exc, OperationalError) or bool(getattr(exc, "connection_invalidated", False))


def _is_pages(item: Any) -> bool:
    return type(item).__name__ == "PageBatch"
