"""The one status vocabulary shared by the spider, the pipelines, the database and the API."""

from __future__ import annotations

import enum


class JobStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_JOB_STATUSES


FINAL_JOB_STATUSES = frozenset({JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_JOB_STATUSES = frozenset({JobStatus.PENDING, JobStatus.RUNNING})


class BatchStatus(str, enum.Enum):
    """Failures are counted per job, never a batch status."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
    CANCELLED = "cancelled"


class SitemapType(str, enum.Enum):
    URLSET = "urlset"
    INDEX = "index"
    TEXT = "text"
    RSS = "rss"
    ATOM = "atom"


class DiscoveredBy(str, enum.Enum):
    ROBOTS = "robots"
    WELL_KNOWN = "well_known"
    HOME_PAGE = "home_page"
    INDEX = "index"
    USER = "user"
