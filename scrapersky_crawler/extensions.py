"""Crawl-process extensions: a progress line in the log every SCRAPERSKY_PROGRESS_INTERVAL seconds,
and glibc's allocator told to give large buffers back to the system."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
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
