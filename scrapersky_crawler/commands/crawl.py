"""`scrapy crawl` with one-line errors (instead of tracebacks) for bad spider arguments and for a
database that cannot be opened, and exit status 1 when the crawl gave up on an unreachable database.

Scrapy loads it through COMMANDS_MODULE; everything else is Scrapy's own `crawl` command.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from scrapy.commands.crawl import Command as ScrapyCrawl


class Command(ScrapyCrawl):
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
        from pipelines.persist import UNAVAILABLE_STAT

        crawler = getattr(self, "_crawler", None)
        if crawler is not None and crawler.stats.get_value(UNAVAILABLE_STAT):
            print("error: the database was unreachable for too long; the crawl's unfinished jobs are failed "
                  "(database) or, where even that could not be recorded, left to the API's reconciler",
                  file=sys.stderr)
            self.exitcode = 1

    def _create_crawler(self, spidercls: Any) -> Any:
        self._crawler = super()._create_crawler(spidercls)
        return self._crawler

    def _database_opens(self) -> bool:
        """When the crawl stores into a database, open it (and bring its schema up to date) first.
        A crawl started by scrapyd (whose jobs the API has just claimed in that database) waits through
        an outage for up to SCRAPERSKY_DB_OUTAGE_SECONDS; by hand, an unreachable database is an error."""
        if "pipelines.persist.DatabasePipeline" not in self.settings.getdict("ITEM_PIPELINES"):
            return True
        from pipelines.db import database_url, get_engine
        from pipelines.persist import DatabaseUnavailable, retry_unreachable

        url = self.settings.get("DATABASE_URL") or database_url()
        wait = self.settings.getfloat("SCRAPERSKY_DB_OUTAGE_SECONDS") if os.environ.get("SCRAPY_JOB") else 0.0
        try:
            retry_unreachable("opening the database", lambda: get_engine(url), wait)
        except Exception as exc:
            if isinstance(exc, DatabaseUnavailable) and exc.__cause__ is not None:
                exc = exc.__cause__
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
            print(f"error: cannot open the database {_safe(url)}: {reason}", file=sys.stderr)
            return False
        return True


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable DATABASE_URL)"
