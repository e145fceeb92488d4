"""A progress line in the log every SCRAPERSKY_PROGRESS_INTERVAL seconds."""

from __future__ import annotations

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
