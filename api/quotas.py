"""Per-tenant quotas on new work: domains per rolling 24 hours and concurrent batches.

Checked inside the transaction that inserts the work (`Store.create_job` / `create_batch`), under a
per-tenant advisory lock on PostgreSQL, so two requests at once cannot both slip under the limit.
Admin keys are exempt. Over a limit the API answers 429 with `Retry-After`: for the daily quota, the
seconds until enough of the tenant's jobs of the last 24 hours have aged out; for concurrent batches,
an estimate (`CONCURRENCY_RETRY_AFTER`), since no one knows when a running batch will end.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import func, select

from api.store import ACTIVE, jobs
from pipelines.models import utcnow

DAY = dt.timedelta(hours=24)
CONCURRENCY_RETRY_AFTER = 60


class QuotaExceeded(Exception):
    def __init__(self, message: str, retry_after: float, quota: str, limit: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.quota = quota
        self.limit = limit


def _lock_id(tenant: str) -> int:
    return int.from_bytes(hashlib.sha256(b"scrapersky-quota:" + tenant.encode()).digest()[:8], "big", signed=True)


class Quotas:
    def __init__(self, domains_per_day: int, concurrent_batches: int) -> None:
        self.domains_per_day = domains_per_day
        self.concurrent_batches = concurrent_batches

    @classmethod
    def from_config(cls, config) -> "Quotas":
        return cls(config.quota_domains_per_day, config.quota_concurrent_batches)

    def check(self, conn, tenant: str, n_domains: int, new_batch: bool) -> None:
        """Raise QuotaExceeded when `tenant` may not add `n_domains` jobs (in a new batch or not) now."""
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_lock_id(tenant))))
        now = utcnow()
        day = self.domains_per_day
        if day > 0:
            mine = (jobs.c.tenant == tenant, jobs.c.created_at > now - DAY)
            used = conn.execute(select(func.count()).select_from(jobs).where(*mine)).scalar_one()
            if used + n_domains > day:
                if n_domains > day:
                    retry = DAY.total_seconds()
                    why = f"{n_domains} domains are more than the daily quota of {day}; split them over several days"
                else:
                    # the (used + n - day)-th oldest job of the window must age out first
                    oldest = conn.execute(select(jobs.c.created_at).where(*mine).order_by(jobs.c.created_at)
                                          .offset(used + n_domains - day - 1).limit(1)).scalar_one()
                    retry = (oldest + DAY - now).total_seconds()
                    why = (f"{used} of the daily quota of {day} domains used in the last 24 hours; "
                           f"{n_domains} more do not fit")
                raise QuotaExceeded(why, retry, "domains_per_day", day)
        conc = self.concurrent_batches
        if new_batch and conc > 0:
            active = conn.execute(select(func.count(func.distinct(jobs.c.batch_id)))
                                  .where(jobs.c.tenant == tenant, jobs.c.status.in_(ACTIVE),
                                         jobs.c.batch_id.is_not(None))).scalar_one()
            if active >= conc:
                raise QuotaExceeded(f"{active} batches are still running; at most {conc} at once. Wait for one "
                                    "to finish or cancel one.", CONCURRENCY_RETRY_AFTER, "concurrent_batches", conc)
