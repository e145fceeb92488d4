"""Crawl-process extensions: a progress line in the log every SCRAPERSKY_PROGRESS_INTERVAL seconds,
the end-of-crawl summary (one line per domain), and glibc's allocator told to give large buffers back
to the system."""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import gc
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from twisted.internet import task

logger = logging.getLogger(__name__)


class ProgressLog:
    def __init__(self, interval: float):
        self.interval = interval
        self.loop: task.LoopingCall | None = None
        self.spider: Any = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> ProgressLog:
        interval = crawler.settings.getfloat("SCRAPERSKY_PROGRESS_INTERVAL")
        if interval <= 0:
            raise NotConfigured
        ext = cls(interval)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Any) -> None:
        self.spider = spider
        self.loop = task.LoopingCall(self.log)
        self.loop.start(self.interval, now=False)

    def log(self) -> None:
        spider = self.spider
        scans = getattr(spider, "scans", None)
        if scans is None:
            return
        logger.info(
            "progress: %d/%d domains done, %d sitemaps read, %d URLs found",
            spider.domains_done, len(scans), spider.sitemaps_done, spider.urls_found,
        )

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self.log()


@dataclass
class DomainResult:
    """What became of one domain's job in this crawl."""

    domain: str
    job_id: str
    status: str = "pending"  # a pipelines.status.JobStatus value
    outcome: str | None = None  # a pipelines.status.Outcome value, once the spider or the database gives one
    error: str | None = None
    urls: int = 0
    sitemaps_found: int = 0
    sitemaps_failed: int = 0
    known: bool = False  # finished by the spider, or read back from the database

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def verdict(self) -> str:
        return f"{self.status}/{self.outcome}" if self.outcome else self.status


class CrawlSummary:
    """Collects what became of each domain, for the crawl command's last lines and its exit status.

    Built from the items (`JobStarted`, `PageBatch`, `JobFinished`); when the crawl stores into a
    database, each job's row is read back at the end, after the pipeline has written everything, so
    the summary says what the database (and the API) says: its status, outcome, error and counts
    (URLs there are distinct URLs; a URL listed in two sitemaps counts once). Stats: `scrapersky/urls`
    (URL entries read from sitemaps: the rows of an `-O` feed), `scrapersky/domains`,
    `scrapersky/domains_complete`, `scrapersky/domains_failed` (every domain that did not complete).
    """

    def __init__(self, crawler: Any):
        self.crawler = crawler
        self.stats = crawler.stats
        self.results: dict[str, DomainResult] = {}  # job id -> result, in crawl order

    @classmethod
    def from_crawler(cls, crawler: Any) -> CrawlSummary:
        ext = cls(crawler)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Any) -> None:
        scans = getattr(spider, "scans", None) or {}
        for scan in scans.values() if isinstance(scans, dict) else scans:
            self.results.setdefault(scan.job_id, DomainResult(scan.domain, scan.job_id))

    def item_scraped(self, item: Any, spider: Any) -> None:
        kind = type(item).__name__
        if kind == "PageBatch":
            self.stats.inc_value("scrapersky/urls", len(item.pages))
            self._result(item).urls += len(item.pages)
        elif kind == "JobStarted":
            self._result(item).status = "running"
        elif kind == "JobFinished":
            result = self._result(item)
            result.status, result.outcome, result.error = item.status, item.outcome, item.error
            result.sitemaps_found = item.stats.get("sitemaps_found", 0)
            result.sitemaps_failed = item.stats.get("sitemaps_failed", 0)
            result.known = True

    def _result(self, item: Any) -> DomainResult:
        result = self.results.get(item.job_id)
        if result is None:
            result = self.results[item.job_id] = DomainResult(item.domain, item.job_id)
        return result

    def spider_closed(self, spider: Any, reason: str) -> None:
        self._read_back()
        for result in self.results.values():
            if not result.known:
                result.status, result.outcome = "failed", "interrupted"
                result.error = f"not finished when the crawl stopped ({reason})"
        failed = self.failed
        self.stats.set_value("scrapersky/domains", len(self.results))
        self.stats.set_value("scrapersky/domains_complete", len(self.results) - failed)
        self.stats.set_value("scrapersky/domains_failed", failed)

    def _read_back(self) -> None:
        """Refresh the results from the jobs table, when the crawl stores into a database."""
        from pipelines.persist import DatabasePipeline

        pipeline = self.crawler.get_item_pipeline(DatabasePipeline)
        if pipeline is None or pipeline.engine is None or not self.results:
            return
        from sqlalchemy import select

        from pipelines.models import Job

        ids = [uuid.UUID(job_id) for job_id in self.results]
        try:
            with pipeline.engine.connect() as conn:
                for start in range(0, len(ids), 500):
                    rows = conn.execute(select(
                        Job.id, Job.status, Job.outcome, Job.error, Job.urls_found, Job.sitemaps_found,
                        Job.sitemaps_failed).where(Job.id.in_(ids[start:start + 500])))
                    for row in rows:
                        result = self.results[str(row.id)]
                        status = getattr(row.status, "value", row.status)
                        if row.outcome is not None or status != result.status:  # the spider's, unless overruled
                            result.outcome = getattr(row.outcome, "value", row.outcome)
                        result.status = status
                        result.error, result.urls = row.error, row.urls_found
                        result.sitemaps_found, result.sitemaps_failed = row.sitemaps_found, row.sitemaps_failed
                        result.known = True
        except Exception as exc:  # the crawl's own counts are still worth showing
            logger.warning("the summary shows the crawl's own counts: could not read the jobs back: %s",
                           " ".join(str(getattr(exc, "orig", None) or exc).split())[:200])

    @property
    def failed(self) -> int:
        return sum(not r.complete for r in self.results.values())

    def lines(self) -> list[str]:
        return summary_lines(list(self.results.values()))


def summary_lines(results: list[DomainResult]) -> list[str]:
    """One aligned line per domain, and a totals line when there are several:

        example.com  job 1b4e28ba-…  complete/ok        1,234 URLs  3 sitemaps read
        dead.test    job 6f1c09d2-…  failed/unreachable     0 URLs  0 sitemaps read  (could not reach …)
    """
    if not results:
        return []
    domain_w = min(max(len(r.domain) for r in results), 40)
    verdict_w = max(len(r.verdict) for r in results)
    urls_w = max(len(f"{r.urls:,}") for r in results)
    lines = []
    for r in results:
        line = (f"{r.domain:<{domain_w}}  job {r.job_id}  {r.verdict:<{verdict_w}}  {r.urls:>{urls_w},} "
                f"{_plural(r.urls, 'URL')}  {_sitemaps(r.sitemaps_found, r.sitemaps_failed)}")
        if r.error:
            line += f"  ({' '.join(r.error.split())})"
        lines.append(line)
    if len(results) > 1:
        statuses = collections.Counter(r.status for r in sorted(results, key=lambda r: not r.complete))
        lines.append(
            f"{len(results):,} domains: {', '.join(f'{n:,} {status}' for status, n in statuses.items())}; "
            f"{_plural(sum(r.urls for r in results), 'URL', True)}; "
            f"{_sitemaps(sum(r.sitemaps_found for r in results), sum(r.sitemaps_failed for r in results))}")
    return lines


def _sitemaps(found: int, failed: int) -> str:
    return f"{_plural(found, 'sitemap', True)} read" + (f", {failed:,} failed" if failed else "")


def _plural(n: int, word: str, with_number: bool = False) -> str:
    word = word if n == 1 else word + "s"
    return f"{n:,} {word}" if with_number else word


class LargeBuffersToSystem:
    """Sitemap bodies are buffers of up to tens of MB. glibc raises its mmap threshold as such buffers
    are freed, after which they come from the heap and fragment it: the process's memory then creeps
    up with the number of files read. A fixed threshold (SCRAPERSKY_MMAP_THRESHOLD bytes) keeps big
    buffers in mmap, returned to the system when freed. No effect outside glibc."""

    M_MMAP_THRESHOLD = -3

    def __init__(self, threshold: int):
        self.applied = False
        path = ctypes.util.find_library("c")
        if not path or threshold <= 0:
            return
        try:
            self.applied = bool(ctypes.CDLL(path).mallopt(self.M_MMAP_THRESHOLD, threshold))
        except (OSError, AttributeError):
            return

    @classmethod
    def from_crawler(cls, crawler: Any) -> LargeBuffersToSystem:
        return cls(crawler.settings.getint("SCRAPERSKY_MMAP_THRESHOLD"))


class FrozenStartupObjects:
    """When the spider opens, everything made so far (modules, settings, middlewares, the engine: a few
    hundred thousand objects that live as long as the process) is moved out of reach of Python's
    cyclic garbage collector (`gc.freeze`). A crawl allocates a dict per URL, which sets off full
    collections; each walked all those objects again (~30 ms apiece, ~0.1 s per 200k URLs), and so did
    the final collection at exit."""

    @classmethod
    def from_crawler(cls, crawler: Any) -> FrozenStartupObjects:
        ext = cls()
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        return ext

    def spider_opened(self, spider: Any) -> None:
        gc.freeze()
