"""The item pipeline that keeps a crawl in the database.

All database work runs on one background thread, in item order, so parsing (reactor thread) and
writing overlap; the items waiting are stored together, one transaction per group. Only a few page
chunks may wait (`SCRAPERSKY_DB_QUEUE`): when the database falls behind, the spider middleware
`DatabaseBackpressure` holds the callback that makes the next chunk (the reactor keeps running), so
memory stays flat whatever the size of the site.

A database outage loses nothing: the writer retries the whole group (every write is an upsert, so a
re-run stores each row once) with back-off of at most `MAX_BACKOFF` seconds for up to
`SCRAPERSKY_DB_OUTAGE_SECONDS`, and pauses the engine meanwhile (no new downloads; items wait, none
is dropped). When that time passes the crawl stops: the items held are dropped and every job of the
crawl that did not finish ends `failed` with outcome `database` and the reason. The writer keeps
trying for as long again to record that; jobs it still cannot record stay `running`, and the API's
reconciler deals with them when the database is back. `scrapy crawl` then exits 1.

When the crawl ends — finished, Ctrl-C or SIGTERM — jobs it carried that have not ended are marked
`failed` (`interrupted`) with the reason, so none stays `running` after the process is gone; under
scrapyd they are left to the dispatcher instead, which puts them back in the queue
(`pipelines.lifecycle`).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import queue
import sys
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from pipelines import lifecycle, scans, store
from pipelines.db import database_url, get_engine, redact_url
from pipelines.status import JobStatus, Outcome

GROUP_ITEMS = 200  # items stored per transaction at most (small items of many domains add up)
GATHER_SECONDS = 0.2  # how long the writer waits for more small items before storing a group
MAX_BACKOFF = 5.0  # seconds between two tries at most while the database is unreachable
LOG_EVERY = 15.0  # seconds between two "still unreachable" lines
UNAVAILABLE_STAT = "scrapersky/database_unavailable"  # set when the crawl gave up on the database

logger = logging.getLogger(__name__)
T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database stayed unreachable for longer than the crawl waits for it."""


@dataclasses.dataclass
class _Close:
    """The writer's last queue entry: the crawl has ended; these jobs were carried by it."""

    job_ids: list[str]


class DatabasePipeline:
    def __init__(self, url: str, outage_seconds: float = 300.0, max_pending: int = 4):
        self.url = url
        self.outage_seconds = outage_seconds
        self.engine: Any = None
        self.queue: queue.Queue[Any] = queue.Queue()
        self.gate = PageGate()  # page chunks waiting for the writer (shared with DatabaseBackpressure)
        self.max_pending = max_pending
        self.page_chunk = 5000  # SITEMAP_PAGE_CHUNK: the gate holds max_pending full chunks' worth of URLs
        self.writer: threading.Thread | None = None
        self.domain_ids: dict[str, int] = {}  # job id -> domain id
        self.sitemap_ids: dict[tuple[str, str], int] = {}  # (job id, sitemap url) -> the scan's sitemap row
        self.job_errors: dict[str, str] = {}  # job id -> why its data could not be stored
        self.lost: dict[str, str] = {}  # job id -> why: its data was dropped, the database staying unreachable
        self.lost_starts: dict[str, Any] = {}  # their JobStarted items, replayed when their end is recorded
        self.finished: set[str] = set()
        self.arrived: collections.Counter[str] = collections.Counter()  # job id -> page chunks queued
        self.held: dict[str, tuple[Callable[..., None], Any]] = {}  # JobFinished waiting for its chunks
        self.stats: Any = None
        self.crawler: Any = None
        self.reactor: Any = None
        self.gave_up = False  # the database stayed unreachable too long: the crawl stops, writes don't wait
        self.write_seconds = 0.0  # time the writer spent on the database (outages not counted)
        self.outage_seconds_total = 0.0  # time the writer spent waiting for an unreachable database
        self._done: Any = None  # fired (on the reactor thread) when the writer has finished
        self.keep_scans = 0  # complete scans kept per domain (pipelines.scans; 0 = all)
        self._released: set[int] = set()  # page chunks of the writer's current group already let go

    @classmethod
    def from_crawler(cls, crawler: Any) -> DatabasePipeline:
        settings = crawler.settings
        url = settings.get("DATABASE_URL") or database_url()
        pipeline = cls(url, outage_seconds=settings.getfloat("SCRAPERSKY_DB_OUTAGE_SECONDS", 300.0),
                       max_pending=settings.getint("SCRAPERSKY_DB_QUEUE", 4))
        pipeline.gate = PageGate.of(crawler)
        pipeline.page_chunk = max(1, settings.getint("SITEMAP_PAGE_CHUNK", 5000))
        pipeline.stats = crawler.stats
        pipeline.keep_scans = scans.keep_scans(settings.get(scans.KEEP_SCANS_SETTING))
        pipeline.crawler = crawler
        return pipeline

    # -- lifecycle ------------------------------------------------------------------------------

    def open_spider(self, spider: Any = None) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.engine = self._retry("opening the database", lambda: get_engine(self.url))
        logger.info("storing results in %s", redact_url(self.engine.url.render_as_string(hide_password=False)))
        self.gate.enable(self.max_pending * self.page_chunk)
        self.writer = threading.Thread(target=self._write_items, name="scrapersky-db", daemon=True)
        self.writer.start()

    async def close_spider(self, spider: Any = None) -> None:
        from scrapy.utils.defer import maybe_deferred_to_future
        from twisted.internet.defer import Deferred

        spider = spider or getattr(self.crawler, "spider", None)  # Scrapy 2.19 may not pass it
        for job_id, work in self.held.items():  # chunks that never came (should not happen): end the jobs anyway
            logger.warning("job %s ends with page chunks that never reached the pipeline", job_id)
            self.queue.put(work)
        self.held.clear()
        self._done = Deferred()
        self.queue.put(_Close(list(getattr(spider, "job_ids", lambda: [])())))
        await maybe_deferred_to_future(self._done)  # the reactor runs on while the writer drains
        if self.stats is not None:
            self.stats.set_value("scrapersky/db_write_seconds", round(self.write_seconds, 3))
            self.stats.set_value("scrapersky/db_wait_seconds", round(self.gate.wait_seconds, 3))
            self.stats.set_value("scrapersky/db_outage_seconds", round(self.outage_seconds_total, 3))

    def _write_items(self) -> None:
        """The writer thread: stores queued items in order, several per transaction."""
        try:
            while True:
                group = self._gather()
                close = group.pop() if isinstance(group[-1], _Close) else None
                started, waited = time.perf_counter(), self.outage_seconds_total
                self._released = set()
                if group:
                    self._store(group)
                self.write_seconds += time.perf_counter() - started - (self.outage_seconds_total - waited)
                pages = sum(_gate_urls(item) for _, item in group
                            if _is_pages(item) and id(item) not in self._released)
                if pages:
                    self._call_in_reactor(self.gate.release, pages)
                if close is not None:
                    self._end_jobs(close.job_ids)
                    return
        finally:
            if self._done is not None:
                self._call_in_reactor(self._done.callback, None)

    def _gather(self) -> list[Any]:
        """The next group of queued items: what is there, and while the group is small (less than a
        full page chunk's URLs, nobody waiting for the gate) what comes within GATHER_SECONDS, so the
        small items of many domains are stored with a few statements rather than a few each."""
        group = [self.queue.get()]
        urls = _urls(group[-1])
        deadline = time.monotonic() + GATHER_SECONDS
        while not isinstance(group[-1], _Close) and len(group) < GROUP_ITEMS:
            try:
                group.append(self.queue.get_nowait())
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0 or urls >= self.page_chunk or self.gate.waiting:
                    break
                try:
                    group.append(self.queue.get(timeout=left))
                except queue.Empty:
                    break
            urls += _urls(group[-1])
        return group

    def _store(self, work: list[tuple[Callable[..., None], Any]]) -> None:
        """One transaction for the group, retried through an outage. If the database stays
        unreachable, the items are dropped and their jobs marked; if the data was refused, the items
        are stored one by one, so that only the job whose data cannot be stored is affected."""
        for _, item in work:
            if item.job_id in self.lost and type(item).__name__ == "JobFinished":
                item.status, item.outcome = JobStatus.FAILED.value, Outcome.DATABASE.value
                item.error = self.lost[item.job_id]
        try:
            self._write(lambda conn: self._write_group(conn, work))
            return
        except DatabaseUnavailable as exc:
            self._drop(work, exc)
            return
        except Exception:
            if len(work) == 1:
                self._record_failure(*work[0])
                return
        for handler, item in work:
            try:
                self._write(lambda conn, handler=handler, item=item: handler(self, conn, item))
            except DatabaseUnavailable as exc:
                self._drop([(handler, item)], exc)
            except Exception:
                self._record_failure(handler, item)

    def _drop(self, work: list[tuple[Callable[..., None], Any]], exc: DatabaseUnavailable) -> None:
        """The database stayed unreachable: these items cannot be stored. Their jobs end `failed`
        (`database`), and the crawl stops — without a database there is nothing to keep its work in."""
        reason = f"database: {exc}; this domain's results could not be stored"
        for _, item in work:
            job_id = item.job_id
            self.lost.setdefault(job_id, reason)
            self.job_errors.setdefault(job_id, reason)
            if type(item).__name__ == "JobFinished":
                self.finished.discard(job_id)  # its end was not recorded: _end_jobs records it
            elif type(item).__name__ == "JobStarted":
                self.domain_ids.pop(job_id, None)  # the domain row may not exist: skip the job's items
                self.lost_starts[job_id] = item  # a crawl started by hand: the job's row may not exist
        if self.stats is not None:
            self.stats.inc_value("scrapersky/db_items_dropped", len(work))
        if not self.gave_up:
            self.gave_up = True
            logger.error("giving up on the database (%s): the crawl stops; its unfinished jobs end failed "
                         "(database)", exc)
            self._call_in_reactor(self._stop_crawl)

    def _stop_crawl(self) -> None:
        """On the reactor thread: let everything waiting through, and close the spider."""
        from scrapy.utils.defer import deferred_from_coro

        if self.stats is not None:
            self.stats.set_value(UNAVAILABLE_STAT, True)
        self.gate.open()
        engine = getattr(self.crawler, "engine", None)
        if engine is None:
            return
        engine.unpause()

        async def close() -> None:
            try:
                await engine.close_spider_async(reason="database_unavailable")
            except RuntimeError:  # already closed
                pass

        deferred_from_coro(close())

    def _end_jobs(self, job_ids: list[str]) -> None:
        """The crawl has ended: jobs it carried that have not ended become `failed` with the reason.
        While the database is unreachable this waits for it (SCRAPERSKY_DB_OUTAGE_SECONDS, once more
        when the crawl already gave up); jobs it still cannot record stay `running`."""
        if self.gave_up and self.engine is not None:
            self.engine.dispose()
        ends: dict[tuple[Outcome, str], list[uuid.UUID]] = {}
        for job_id in job_ids:
            if job_id in self.finished:
                continue
            if job_id in self.lost:
                key = (Outcome.DATABASE, self.lost[job_id])
            elif self.gave_up:
                key = (Outcome.DATABASE, "database: the crawl stopped, the database being unreachable for "
                                         f"more than {self.outage_seconds:g} s, before this domain was finished")
            else:
                key = (Outcome.INTERRUPTED, "interrupted: the crawl stopped before this domain was finished")
            ends.setdefault(key, []).append(uuid.UUID(job_id))
        if not ends:
            return

        def record(conn: Any) -> int:
            for job_id in self.lost_starts.keys() & {str(i) for ids in ends.values() for i in ids}:
                self._job_started(conn, self.lost_starts[job_id])
            now = _now()
            return sum(store.fail_unfinished(conn, ids, reason, now, outcome)
                       for (outcome, reason), ids in ends.items())

        count = sum(len(ids) for ids in ends.values())
        try:
            marked = self._write(record, wait=True)
        except Exception as exc:  # nothing more this process can do; the API's reconciler will
            logger.error("could not mark %d unfinished job(s) failed: %s; they stay running until the API's "
                         "reconciler takes them back", count, _line(exc))
            if self.stats is not None:
                self.stats.set_value(UNAVAILABLE_STAT, True)
            return
        if marked:
            outcomes = collections.Counter()
            for (outcome, _), ids in ends.items():
                outcomes[outcome.value] += len(ids)
            logger.warning("marked %d unfinished job(s) failed (%s)", marked,
                           ", ".join(f"{n} {name}" for name, n in outcomes.items()))

    def _record_failure(self, handler: Any, item: Any) -> None:
        logger.exception("could not store %s of %s", type(item).__name__, getattr(item, "domain", "?"))
        job_id = getattr(item, "job_id", None)
        if job_id:
            exc = sys.exc_info()[1]
            self.job_errors.setdefault(job_id, f"database error: {_line(exc) if exc else 'unknown'}")

    # -- items ----------------------------------------------------------------------------------

    def process_item(self, item: Any, spider: Any = None) -> Any:
        """Queue the item for the writer. Page chunks were let through by the gate (backpressure). A
        job's end is queued after every page chunk the gate let through for it: Scrapy may hand items
        of different callbacks over in another order than they left the spider."""
        name = type(item).__name__
        handler = self._handlers.get(name)
        if handler is None:
            return item
        job_id = item.job_id
        if name == "JobFinished" and self.arrived[job_id] < self.gate.admitted[job_id]:
            self.held[job_id] = (handler, item)
            return item
        self.queue.put((handler, item))
        if name == "PageBatch":
            self.arrived[job_id] += 1
            if job_id in self.held and self.arrived[job_id] >= self.gate.admitted[job_id]:
                self.queue.put(self.held.pop(job_id))
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
        fields = _sitemap_fields(item)
        self.sitemap_ids[(item.job_id, item.url)] = store.upsert_sitemap(conn, domain_id, uuid.UUID(item.job_id), fields)

    def _page_batch(self, conn: Any, item: Any) -> None:
        domain_id = self.domain_ids.get(item.job_id)
        if domain_id is None:
            return
        sitemap_id = self.sitemap_ids.get((item.job_id, item.sitemap_url))
        store.insert_pages(conn, domain_id, sitemap_id, uuid.UUID(item.job_id), item.pages)
        self._make_room(item)

    def _make_room(self, item: Any) -> None:
        """A page chunk has gone to the database (its transaction still open): the crawl may make the
        next one now, so parsing overlaps the rest of the group's writes and its commit. Once per chunk,
        however often its group is re-run through an outage (the group keeps the chunk until it is
        stored, so memory stays bounded by twice the queue)."""
        if id(item) not in self._released:
            self._released.add(id(item))
            self._call_in_reactor(self.gate.release, _gate_urls(item))

    def _outcome(self, item: Any) -> tuple[Outcome, str | None]:
        """A finished job's outcome and error: the spider's, unless its results could not all be stored."""
        if item.job_id in self.job_errors:
            return Outcome.DATABASE, self.job_errors[item.job_id]
        return lifecycle.outcome_of(item.status, item.outcome, item.error, item.stats), item.error

    def _job_finished(self, conn: Any, item: Any) -> None:
        domain_id = self.domain_ids.get(item.job_id)
        outcome, error = self._outcome(item)
        store.finish_job(conn, uuid.UUID(item.job_id), domain_id, outcome, error, item.finished_at, item.stats,
                         item.origin, keep_scans=self.keep_scans)
        self.finished.add(item.job_id)

    # -- a group of items at once (PostgreSQL) ---------------------------------------------------
    # Each kind of item of the group is stored with a few statements for all its domains, in the order
    # their dependencies ask for: jobs started (and their domain rows), home pages, sitemap rows, page
    # chunks (each pointing at its sitemap row), jobs finished (counting their pages). Within one job
    # the spider sends its items in that order too, and a job's end is queued after its last page chunk
    # (`process_item`), so the rows written are those the items one by one would write.

    def _write_group(self, conn: Any, work: list[tuple[Callable[..., None], Any]]) -> None:
        if conn.dialect.name != "postgresql" or len(work) == 1:
            for handler, item in work:
                handler(self, conn, item)
            return
        kinds: dict[str, list[Any]] = collections.defaultdict(list)
        for _, item in work:
            kinds[type(item).__name__].append(item)
        self._jobs_started(conn, kinds["JobStarted"])
        self._home_pages(conn, kinds["HomePage"])
        self._sitemap_files(conn, kinds["SitemapFile"])
        for item in kinds["PageBatch"]:
            self._page_batch(conn, item)
        self._jobs_finished(conn, kinds["JobFinished"])

    def _jobs_started(self, conn: Any, items: list[Any]) -> None:
        if not items:
            return
        ids = store.ensure_domains(conn, [item.domain for item in items])
        for item in items:
            self.domain_ids[item.job_id] = ids[item.domain]
        refused = store.start_jobs(conn, [
            (uuid.UUID(item.job_id), item.domain, ids[item.domain], uuid.UUID(item.batch_id) if item.batch_id else None,
             item.options, item.started_at) for item in items], self._crawl_id())
        for job_id in refused:
            logger.info("job %s is final or carried by another crawl; its results are still stored", job_id)

    def _home_pages(self, conn: Any, items: list[Any]) -> None:
        store.save_home_pages(conn, [(self.domain_ids[item.job_id], item.url, item.metadata) for item in items
                                     if self.domain_ids.get(item.job_id) is not None])

    def _sitemap_files(self, conn: Any, items: list[Any]) -> None:
        rows = [(self.domain_ids[item.job_id], uuid.UUID(item.job_id), _sitemap_fields(item)) for item in items
                if self.domain_ids.get(item.job_id) is not None]
        for (job_id, url), sitemap_id in store.upsert_sitemaps(conn, rows).items():
            self.sitemap_ids[(str(job_id), url)] = sitemap_id

    def _jobs_finished(self, conn: Any, items: list[Any]) -> None:
        if not items:
            return
        rows = [(uuid.UUID(item.job_id), self.domain_ids.get(item.job_id), *self._outcome(item), item.finished_at,
                 item.stats, item.origin) for item in items]
        store.finish_jobs(conn, rows, keep_scans=self.keep_scans)
        self.finished.update(item.job_id for item in items)

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

    def _write(self, work: Callable[[Any], T], wait: bool | None = None) -> T:
        """Run `work(conn)` in one transaction, re-running it while the database is unreachable
        (for up to SCRAPERSKY_DB_OUTAGE_SECONDS; not at all once the crawl gave up, unless `wait`).
        A failed attempt leaves nothing behind: its transaction is rolled back and its connection
        dropped, so the re-run starts from a fresh session."""

        def once() -> T:
            conn = self.engine.connect()
            try:
                with conn.begin():
                    return work(conn)
            except BaseException:
                conn.invalidate()
                raise
            finally:
                conn.close()

        wait = not self.gave_up if wait is None else wait
        return self._retry("writing to the database", once, self.outage_seconds if wait else 0.0)

    def _retry(self, what: str, fn: Callable[[], T], seconds: float | None = None) -> T:
        return retry_unreachable(what, fn, self.outage_seconds if seconds is None else seconds,
                                 between=self.engine.dispose if self.engine is not None else None,
                                 outage=self._outage)

    def _outage(self, began: bool, waited: float = 0.0) -> None:
        """An outage began (pause the crawl: no new downloads while nothing can be stored) or ended."""
        if not began:
            self.outage_seconds_total += waited
        engine = getattr(self.crawler, "engine", None)
        if engine is not None and self.writer is threading.current_thread():
            self._call_in_reactor(self._pause_engine if began else self._unpause_engine, engine)

    @staticmethod
    def _pause_engine(engine: Any) -> None:
        engine.pause()

    @staticmethod
    def _unpause_engine(engine: Any) -> None:
        engine.unpause()
        slot = getattr(engine, "_slot", None)  # start downloading now rather than at the next heartbeat
        if slot is not None:
            slot.nextcall.schedule()

    def _call_in_reactor(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.reactor is not None:
            self.reactor.callFromThread(fn, *args)
        else:
            fn(*args)


def retry_unreachable(what: str, fn: Callable[[], T], seconds: float, *, between: Callable[[], Any] | None = None,
                      outage: Callable[[bool, float], Any] | None = None) -> T:
    """`fn()`, tried again with back-off (0.5 s doubling up to MAX_BACKOFF) while the database is
    unreachable, for up to `seconds` from the first failure; then DatabaseUnavailable (from the last
    error). Other errors are raised at once. `between()` runs before each new try; `outage(True, 0)`
    when the database is first found unreachable and `outage(False, seconds_waited)` when that ends."""
    began: float | None = None
    logged = 0.0
    delay = 0.5
    while True:
        try:
            result = fn()
        except (OperationalError, DBAPIError) as exc:
            if not _transient(exc):
                raise
            if seconds <= 0:
                raise DatabaseUnavailable(f"unreachable ({_line(exc)})") from exc
            now = time.monotonic()
            if began is None:
                began = now
                if outage is not None:
                    outage(True, 0.0)
            waited = now - began
            if waited >= seconds:
                if outage is not None:
                    outage(False, waited)
                raise DatabaseUnavailable(f"unreachable for {waited:.0f} s ({_line(exc)})") from exc
            if now - logged >= LOG_EVERY:
                logged = now
                logger.warning("%s failed (%s); retry in %.1fs, for up to %.0f s more", what, _line(exc), delay,
                               seconds - waited)
            time.sleep(min(delay, seconds - waited))
            if between is not None:
                between()
            delay = min(delay * 2, MAX_BACKOFF)
        else:
            if began is not None:
                waited = time.monotonic() - began
                if outage is not None:
                    outage(False, waited)
                logger.warning("%s: the database is back after %.1f s", what, waited)
            return result


class PageGate:
    """At most about `limit` page URLs, in chunks, between the spider and the end of their database
    write (the pipeline sets SCRAPERSKY_DB_QUEUE full chunks' worth: many small chunks of small sites
    may wait where a few big ones would). A chunk that finds no room waits (its callback is suspended;
    the reactor runs on) and goes on, in order, when the writer has stored enough. Disabled until the
    pipeline opens; opened for good when the crawl gives up on the database. Runs on the reactor
    thread only."""

    _of: weakref.WeakKeyDictionary[Any, PageGate] = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.limit: int | None = None
        self.used = 0  # page URLs let through and not yet stored
        self.admitted: collections.Counter[str] = collections.Counter()  # job id -> page chunks let through
        self.waiting: collections.deque[Any] = collections.deque()
        self.wait_seconds = 0.0  # time page chunks waited for room (the crawl waiting for the database)

    @classmethod
    def of(cls, crawler: Any) -> PageGate:
        """The gate shared by the crawler's pipeline and spider middleware."""
        gate = cls._of.get(crawler)
        if gate is None:
            gate = cls._of[crawler] = cls()
        return gate

    def enable(self, limit: int) -> None:
        self.limit = max(1, limit)

    def open(self) -> None:
        self.limit = None
        while self.waiting:
            self.waiting.popleft()[0].callback(None)

    def acquire(self, urls: int = 1) -> Any:
        """None when there is room now for a chunk of `urls` page URLs (taken), else a Deferred that
        fires when there is (a chunk goes in while the URLs waiting are under the limit)."""
        from twisted.internet.defer import Deferred

        if self.limit is None:
            return None
        if self.used < self.limit and not self.waiting:
            self.used += urls
            return None
        d: Deferred[None] = Deferred()
        self.waiting.append((d, urls))
        return d

    def release(self, urls: int = 1) -> None:
        self.used = max(0, self.used - urls)
        while self.waiting and (self.limit is None or self.used < self.limit):
            d, n = self.waiting.popleft()
            self.used += n
            d.callback(None)


class DatabaseBackpressure:
    """Spider middleware: a callback's next page chunk waits here until the database writer has room
    for it (see PageGate). Waiting suspends that callback alone; the reactor, downloads in flight and
    everything else go on."""

    def __init__(self, gate: PageGate):
        self.gate = gate

    @classmethod
    def from_crawler(cls, crawler: Any) -> DatabaseBackpressure:
        return cls(PageGate.of(crawler))

    async def process_spider_output(self, response: Any, result: AsyncIterator[Any], spider: Any = None
                                    ) -> AsyncIterator[Any]:
        from scrapy.utils.defer import maybe_deferred_to_future

        gate = self.gate
        async for item in result:
            if _is_pages(item):
                waiting = gate.acquire(_gate_urls(item))
                if waiting is not None:
                    started = time.perf_counter()
                    await maybe_deferred_to_future(waiting)
                    gate.wait_seconds += time.perf_counter() - started
                gate.admitted[item.job_id] += 1
            yield item


def _sitemap_fields(item: Any) -> dict[str, Any]:
    """The columns of a sitemap row from a SitemapFile item (all but domain_id and job_id)."""
    fields = dataclasses.asdict(item)
    for name in ("job_id", "domain", "lastmod_count", "priority_count", "changefreq_count"):
        fields.pop(name)
    count = item.url_count or 0
    for share in ("lastmod", "priority", "changefreq"):
        fields[f"{share}_share"] = round(getattr(item, f"{share}_count") / count, 4) if count else None
    return fields


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return " ".join(text.split())[:200]


# PostgreSQL error classes worth waiting through: connection exceptions, server shutting down or
# starting, too many connections, serialisation failures/deadlocks. No code: the server never answered.
_TRANSIENT_PG = ("08", "57P", "53", "40001", "40P01")


def _transient(exc: BaseException) -> bool:
    """The database could not be reached (as opposed to refusing the data or the credentials)."""
    if getattr(exc, "connection_invalidated", False):
        return True
    if not isinstance(exc, OperationalError):
        return False
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "pgcode", None)
    if code is not None:
        return code.startswith(_TRANSIENT_PG)
    if type(orig).__module__.startswith("sqlite3"):
        text = str(orig).lower()
        return "locked" in text or "busy" in text
    return True


def _urls(entry: Any) -> int:
    """Page URLs in a writer queue entry ((handler, item), or _Close)."""
    item = entry[1] if isinstance(entry, tuple) else None
    return len(item.pages) if item is not None and _is_pages(item) else 0


def _gate_urls(item: Any) -> int:
    """What a page chunk counts for in the PageGate: its URLs (at least 1)."""
    return max(1, len(item.pages))


def _is_pages(item: Any) -> bool:
    return type(item).__name__ == "PageBatch"
