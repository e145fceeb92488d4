"""`scrapy crawl` with one-line errors (instead of tracebacks) for bad spider arguments and for a
database that cannot be opened, and a summary at the end: one line per domain on stdout (on stderr
when a feed is written to stdout; into the log under scrapyd), whatever the log level.

Exit status: 0 when every domain completed; 1 when a domain did not (failed, or cancelled), when the
database cannot be opened, when the crawl gave up on an unreachable database, or when the crawl could
not start; 2 for bad arguments. Under scrapyd (which passes `_job`) a domain's failure is reported
through the database, and the exit status only says whether the crawl itself ran.

Scrapy loads it through COMMANDS_MODULE; everything else is Scrapy's own `crawl` command.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from scrapy.commands.crawl import Command as ScrapyCrawl

from scrapersky_crawler.extensions import CrawlSummary

logger = logging.getLogger(__name__)


class Command(ScrapyCrawl):
    crawler: Any = None

    def _create_crawler(self, spidercls: Any) -> Any:
        self.crawler = super()._create_crawler(spidercls)
        return self.crawler

    def run(self, args: list[str], opts: Any) -> None:
        if args and self.crawler_process is not None:
            try:
                spidercls = self.crawler_process.spider_loader.load(args[0])
            except KeyError:
                spidercls = None
            check = getattr(spidercls, "parse_arguments", None)
            if check is not None:
                try:
                    check(**opts.spargs)
                except ValueError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    self.exitcode = 2
                    return
        if not self._database_opens():
            self.exitcode = 1
            return
        super().run(args, opts)
        self._summarise(under_scrapyd="_job" in opts.spargs)
        from pipelines.persist import UNAVAILABLE_STAT

        if self.crawler is not None and self.crawler.stats.get_value(UNAVAILABLE_STAT):
            print("error: the database was unreachable for too long; the crawl's unfinished jobs are failed "
                  "(database) or, where even that could not be recorded, left to the API's reconciler",
                  file=sys.stderr)
            self.exitcode = 1

    def _summarise(self, under_scrapyd: bool) -> None:
        summary = self.crawler.get_extension(CrawlSummary) if self.crawler is not None else None
        if summary is None or not summary.results:
            return
        if under_scrapyd:
            for line in summary.lines():
                logger.info("%s", line)
            return
        feeds = self.settings.getdict("FEEDS")
        out = sys.stderr if any(str(uri).startswith("stdout:") for uri in feeds) else sys.stdout
        text = "\n".join(summary.lines()) + "\n"
        encoding = getattr(out, "encoding", None) or "utf-8"
        out.write(text.encode(encoding, "replace").decode(encoding))
        out.flush()
        if summary.failed and not self.exitcode:
            self.exitcode = 1

    def _database_opens(self) -> bool:
        """When the crawl stores into a database, open it (and bring its schema up to date) first.
        A crawl started by scrapyd (whose jobs the API has just claimed in that database) waits through
        an outage for up to SCRAPERSKY_DB_OUTAGE_SECONDS; by hand, an unreachable database is an error."""
        if "pipelines.persist.DatabasePipeline" not in self.settings.getdict("ITEM_PIPELINES"):
            return True
        from pipelines.db import database_url, get_engine, redact_url
        from pipelines.persist import DatabaseUnavailable, retry_unreachable

        url = self.settings.get("DATABASE_URL") or database_url()
        wait = self.settings.getfloat("SCRAPERSKY_DB_OUTAGE_SECONDS") if os.environ.get("SCRAPY_JOB") else 0.0
        try:
            retry_unreachable("opening the database", lambda: get_engine(url), wait)
        except Exception as exc:
            if isinstance(exc, DatabaseUnavailable) and exc.__cause__ is not None:
                exc = exc.__cause__
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
            print(f"error: cannot open the database {redact_url(url)}: {reason}", file=sys.stderr)
            return False
        return True

