"""Feed exporters for `-O urls.csv|.jsonl|.json`: one row per page URL.

URLs travel through Scrapy's engine in `PageBatch` chunks; these exporters flatten each chunk into
rows and skip the bookkeeping items (jobs, sitemaps, home pages).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from scrapy.exporters import CsvItemExporter, JsonItemExporter, JsonLinesItemExporter

from scrapersky_crawler.items import PageBatch

FIELDS = ("url", "domain", "lastmod", "changefreq", "priority", "sitemap", "alternates", "images", "news", "videos")
_NESTED = ("alternates", "images", "news", "videos")


def page_rows(batch: PageBatch, flat: bool) -> Any:
    """Rows of a batch; `flat` (CSV) turns nested values into JSON text."""
    for page in batch.pages:
        lastmod = page["lastmod"]
        row = {
            "url": page["url"],
            "domain": batch.domain,
            "lastmod": lastmod.isoformat() if isinstance(lastmod, dt.datetime) else lastmod,
            "changefreq": page["changefreq"],
            "priority": page["priority"],
            "sitemap": batch.sitemap_url,
        }
        for name in _NESTED:
            value = page.get(name)
            row[name] = json.dumps(value, ensure_ascii=False) if flat and value is not None else value
        yield row


class _Flattening:
    flat = False

    def export_item(self, item: Any) -> Any:
        if isinstance(item, PageBatch):
            for row in page_rows(item, self.flat):
                super().export_item(row)  # type: ignore[misc]
        return item


class PageCsvItemExporter(_Flattening, CsvItemExporter):
    flat = True

    def __init__(self, file: Any, **kwargs: Any):
        kwargs.setdefault("fields_to_export", list(FIELDS))
        super().__init__(file, **kwargs)


class PageJsonLinesItemExporter(_Flattening, JsonLinesItemExporter):
    pass


class PageJsonItemExporter(_Flattening, JsonItemExporter):
    pass
