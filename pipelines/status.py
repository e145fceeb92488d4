"""The one status vocabulary shared by the spider, the pipelines, the database and the API.

A job has a `status` (where it is in its life) and, once final, an `outcome` (what happened):

| status    | outcome           | meaning                                                                     |
|-----------|-------------------|-----------------------------------------------------------------------------|
| pending   | -                 | queued, not yet handed to a crawl                                            |
| running   | -                 | a crawl is scanning it                                                       |
| complete  | `ok`              | at least one sitemap read, none failed                                       |
| complete  | `warnings`        | at least one sitemap read; some failed, or the scan hit an error or the cap  |
|           |                   | (`sitemaps_failed` counts them, `error` keeps the first)                     |
| complete  | `no_sitemap`      | the site answered, but publishes no sitemap we could find                    |
| failed    | `unreachable`     | every origin tried failed at connection level or answered 5xx on both the   |
|           |                   | home page and robots.txt (a dead domain behind a proxy answers 502/503/504)  |
| failed    | `refused`         | every origin was refused by the crawler's guard (an internal address or     |
|           |                   | name: `scrapersky_crawler/guard.py`); nothing was fetched                    |
| failed    | `sitemaps_failed` | sitemaps were found, none could be read                                      |
| failed    | `interrupted`     | the crawl was stopped (Ctrl-C, SIGTERM, cancel) before the domain finished   |
| failed    | `crawl_lost`      | the crawl process or its node died, and the retries ran out                  |
| failed    | `database`        | its data could not be stored (database unreachable for too long)            |
| failed    | `dispatch`        | scrapyd refused the crawl                                                    |
| failed    | `error`           | an unexpected error ended the scan                                           |
| cancelled | `cancelled`       | cancelled by request                                                         |

`error` always holds a one-line reason for a failed job and the first problem of a `warnings` one.
"""

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


class Outcome(str, enum.Enum):
    OK = "ok"
    WARNINGS = "warnings"
    NO_SITEMAP = "no_sitemap"
    UNREACHABLE = "unreachable"
    REFUSED = "refused"
    SITEMAPS_FAILED = "sitemaps_failed"
    INTERRUPTED = "interrupted"
    CRAWL_LOST = "crawl_lost"
    DATABASE = "database"
    DISPATCH = "dispatch"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def status(self) -> JobStatus:
        """The final job status this outcome belongs to."""
        if self in COMPLETE_OUTCOMES:
            return JobStatus.COMPLETE
        return JobStatus.CANCELLED if self is Outcome.CANCELLED else JobStatus.FAILED


COMPLETE_OUTCOMES = frozenset({Outcome.OK, Outcome.WARNINGS, Outcome.NO_SITEMAP})


class BatchStatus(str, enum.Enum):
    """Failures are counted per job, never a batch status."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
    CANCELLED = "cancelled"


class DeliveryStatus(str, enum.Enum):
    """A webhook delivery (`api/webhooks.py`): `waiting` while its batch or scan runs, `pending` once it
    finished (to be sent, or retrying), then `delivered` (a 2xx answer) or `failed` (the retry window
    ran out)."""

    WAITING = "waiting"
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


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
