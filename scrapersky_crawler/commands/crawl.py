"""`scrapy crawl` with one-line errors (instead of tracebacks) for bad spider arguments and for a
database that cannot be opened.

Scrapy loads it through COMMANDS_MODULE; everything else is Scrapy's own `crawl` command.
"""

from __future__ import annotations

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

    def _database_opens(self) -> bool:
        """When the crawl stores into a database, open it (and bring its schema up to date) first."""
        if "pipelines.persist.DatabasePipeline" not in self.settings.getdict("ITEM_PIPELINES"):
            return True
        from pipelines.db import database_url, get_engine, redact_url

        url = self.settings.get("DATABASE_URL") or database_url()
        try:
            get_engine(url)
        except Exception as exc:
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
            print(f"error: cannot open the database {redact_url(url)}: {reason}", file=sys.stderr)
            return False
        return True

