"""What the spider hands to the pipelines.

Page URLs travel in chunks (`PageBatch`): one Scrapy item per URL costs ~45 µs in the engine, too slow
for sites of millions of URLs. `scrapersky_crawler.exporters.UrlFeedExporter` spreads them back into
one row per URL for `-O urls.csv`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JobStarted:
    job_id: str
    domain: str
    batch_id: str | None
    options: dict[str, Any]
    started_at: dt.datetime


@dataclass
class HomePage:
    job_id: str
    domain: str
    url: str
    metadata: dict[str, Any]


@dataclass
class SitemapFile:
    job_id: str
    domain: str
    url: str
    discovered_by: str
    parent_url: str | None = None
    type: str | None = None
    http_status: int | None = None
    gzipped: bool = False
    size_bytes: int | None = None
    url_count: int = 0
    lastmod_count: int = 0
    priority_count: int = 0
    changefreq_count: int = 0
    generator: str | None = None
    last_modified: str | None = None
    error: str | None = None
    fetched_at: dt.datetime | None = None


@dataclass
class PageBatch:
    """Up to a few thousand page entries of one sitemap, each a dict as made by `sitemap.SitemapReader`."""

    job_id: str
    domain: str
    sitemap_url: str
    pages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class JobFinished:
    job_id: str
    domain: str
    status: str  # a pipelines.status.JobStatus value
    error: str | None
    finished_at: dt.datetime
    stats: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None  # a pipelines.status.Outcome value
    origin: str | None = None  # scheme://host[:port] that answered
