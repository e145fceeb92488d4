"""`-O urls.csv` (and .json, .jsonl/.jsonlines/.jl, .xml, .marshal, .pickle): one row per page URL.

URLs travel through Scrapy's engine in `PageBatch` chunks. `UrlFeedExporter` (in place of Scrapy's
FeedExporter) hands each feed one row per URL, in the columns and formats of `pipelines.rows` (those of
the API's URL listings), and leaves the bookkeeping items (jobs, sitemaps, home pages) out. So any
format's exporter writes URL rows, and Scrapy's `Stored csv feed (N items)` line counts URLs.

A URL listed in two sitemaps of a domain gets a row for each (with its `sitemap_url`); the database
keeps it once per scan.
"""

from __future__ import annotations

from typing import Any

from scrapy.exporters import CsvItemExporter, XmlItemExporter
from scrapy.extensions.feedexport import FeedExporter

from pipelines.rows import URL_COLUMNS, csv_cell, url_row
from scrapersky_crawler.items import PageBatch


def page_rows(batch: PageBatch) -> Any:
    """The URL rows of a chunk."""
    for page in batch.pages:
        yield url_row({**page, "sitemap_url": batch.sitemap_url})


class UrlFeedExporter(FeedExporter):
    def item_scraped(self, item: Any, spider: Any) -> None:
        if not isinstance(item, PageBatch):
            return
        for row in page_rows(item):
            super().item_scraped(row, spider)


class UrlCsvItemExporter(CsvItemExporter):
    """CSV with the API's columns; nested values as JSON text."""

    def __init__(self, file: Any, **kwargs: Any):
        kwargs["fields_to_export"] = kwargs.get("fields_to_export") or list(URL_COLUMNS)
        super().__init__(file, **kwargs)

    def serialize_field(self, field: Any, name: str, value: Any) -> Any:
        return csv_cell(value)


class UrlXmlItemExporter(XmlItemExporter):
    """XML without the text `None` for missing values: they are empty elements."""

    def serialize_field(self, field: Any, name: str, value: Any) -> Any:
        return _no_none(value)


def _no_none(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict):
        return {k: _no_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_none(v) for v in value]
    return value
