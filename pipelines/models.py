"""SQLAlchemy 2 typed models of everything ScraperSky keeps.

The schema itself is created by the Alembic migration in `pipelines/migrations`; these classes are
how code reads and writes it. JSON columns are JSONB on PostgreSQL; every timestamp is timezone-aware
(stored as UTC, read back with tzinfo=UTC on SQLite too).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pipelines.status import BatchStatus, DeliveryStatus, DiscoveredBy, JobStatus, Outcome, SitemapType


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware timestamp on every backend: naive values are refused on the way in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given; ScraperSky stores aware timestamps")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# Byte-order collation on PostgreSQL: URL comparisons in the unique index are memcmp, not locale rules.
URLText = Text().with_variant(Text(collation="C"), "postgresql")


def _enum(cls: type, name: str, length: int = 16) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    pass


# The tenant of work created before API keys existed, by the crawler's own CLI, or with API_AUTH=off.
DEFAULT_TENANT = "default"


class BatchJob(Base):
    __tablename__ = "batch_jobs"
    __table_args__ = (Index("ix_batch_jobs_created", "created_at", "id"),)  # migration 0007: newest first

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    status: Mapped[BatchStatus] = mapped_column(_enum(BatchStatus, "batch_status"), default=BatchStatus.PENDING)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    total_jobs: Mapped[int] = mapped_column(Integer, default=0)
    options: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Added by migration 0006 (API keys): whose work this is; rows from before belong to "default".
    tenant: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT, server_default=DEFAULT_TENANT)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # added by migration 0002 (API): batch job listings in domain order, dispatcher queue order
        Index("ix_jobs_batch_domain", "batch_id", "domain"),
        Index("ix_jobs_status_created", "status", "created_at"),
        # added by migration 0006: a tenant's jobs by age (quotas, listings)
        Index("ix_jobs_tenant_created", "tenant", "created_at"),
        # added by migration 0007 (listings, newest first): GET /api/v1/jobs and a domain's scans
        Index("ix_jobs_created", "created_at", "id"),
        Index("ix_jobs_domain_created", "domain", "created_at"),
        # added by migration 0004 (scan snapshots): a domain's scans in time order (pipelines.scans)
        Index("ix_jobs_domain_finished", "domain_id", "finished_at"),
        # added by migration 0005: the dispatcher's queue (pending, not claimed by a crawl)
        Index("ix_jobs_waiting", "created_at", "id", postgresql_where=text("status = 'pending' AND scrapyd_jobid IS NULL"),
              sqlite_where=text("status = 'pending' AND scrapyd_jobid IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domains.id", ondelete="SET NULL"))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batch_jobs.id", ondelete="SET NULL"), index=True)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "job_status"), default=JobStatus.PENDING, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    sitemaps_found: Mapped[int] = mapped_column(Integer, default=0)
    sitemaps_failed: Mapped[int] = mapped_column(Integer, default=0)
    urls_found: Mapped[int] = mapped_column(Integer, default=0)
    new_urls: Mapped[int] = mapped_column(Integer, default=0)
    removed_urls: Mapped[int] = mapped_column(Integer, default=0)
    bytes_downloaded: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    options: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Where the crawl that carries this job runs (filled by the API's dispatcher).
    scrapyd_node: Mapped[str | None] = mapped_column(String(255))
    scrapyd_jobid: Mapped[str | None] = mapped_column(String(64), index=True)
    log_url: Mapped[str | None] = mapped_column(Text)
    # Added by migration 0002 (API dispatcher): when the job was handed to scrapyd, and how often.
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    dispatch_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Added by migration 0003: what happened (pipelines.status.Outcome) and the origin that answered.
    outcome: Mapped[Outcome | None] = mapped_column(_enum(Outcome, "job_outcome", length=24))
    origin: Mapped[str | None] = mapped_column(Text)
    # Added by migration 0006 (API keys): whose work this is; rows from before belong to "default".
    tenant: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT, server_default=DEFAULT_TENANT)
    # Added by migration 0004: when this scan's snapshot (its pages and sitemaps rows) was deleted by
    # the retention setting SCRAPERSKY_KEEP_SCANS (pipelines.scans.prune); its counts stay.
    pruned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Crawl(Base):
    """One scrapyd crawl the dispatcher scheduled (added by migration 0005). `node_seq` numbers the
    crawls of a node, so the API knows when scrapyd (`jobs_to_keep`) has deleted a crawl's log."""

    __tablename__ = "crawls"
    __table_args__ = (Index("ix_crawls_node_seq", "node", "node_seq"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node: Mapped[str] = mapped_column(String(255))
    node_seq: Mapped[int] = mapped_column(Integer)
    dispatched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Domain(Base):
    __tablename__ = "domains"
    __table_args__ = (  # migration 0007: GET /api/v1/domains sorted by last scan or URL count
        Index("ix_domains_last_scan", "last_scan_at", "id"),
        Index("ix_domains_url_count", "url_count", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    home_url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(64))
    favicon: Mapped[str | None] = mapped_column(Text)
    is_wordpress: Mapped[bool | None] = mapped_column(Boolean)
    wordpress_version: Mapped[str | None] = mapped_column(String(32))
    generator: Mapped[str | None] = mapped_column(Text)
    emails: Mapped[list[str] | None] = mapped_column(JSONType)
    phones: Mapped[list[str] | None] = mapped_column(JSONType)
    social_links: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    first_scan_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_scan_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    url_count: Mapped[int] = mapped_column(Integer, default=0)
    sitemap_count: Mapped[int] = mapped_column(Integer, default=0)


class Sitemap(Base):
    """One sitemap file as one scan saw it: rows are per scan (unique (job_id, url)) and never change
    after the scan, so a job's sitemap list stays what it was."""

    __tablename__ = "sitemaps"
    __table_args__ = (UniqueConstraint("job_id", "url", name="uq_sitemaps_job_url"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    type: Mapped[SitemapType | None] = mapped_column(_enum(SitemapType, "sitemap_type"))
    discovered_by: Mapped[DiscoveredBy] = mapped_column(_enum(DiscoveredBy, "discovered_by"))
    parent_url: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer)
    gzipped: Mapped[bool] = mapped_column(Boolean, default=False)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    url_count: Mapped[int] = mapped_column(Integer, default=0)
    lastmod_share: Mapped[float | None] = mapped_column(Float)
    priority_share: Mapped[float | None] = mapped_column(Float)
    changefreq_share: Mapped[float | None] = mapped_column(Float)
    generator: Mapped[str | None] = mapped_column(String(255))
    last_modified: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    fetched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Page(Base):
    """One page URL as one scan saw it (a snapshot row: written once, never updated). Built for bulk
    inserts: the key (job_id, url) is the primary key, and there are no other indexes or foreign-key
    triggers to maintain per row (domain_id and sitemap_id are kept consistent by `pipelines.store`).
    A job's URL list, and the differences between two scans (`pipelines.scans`), are read along the
    primary key; domain_id is kept for domain-wide questions."""

    __tablename__ = "pages"

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    url: Mapped[str] = mapped_column(URLText, primary_key=True)
    domain_id: Mapped[int] = mapped_column(Integer)
    lastmod: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    changefreq: Mapped[str | None] = mapped_column(String(16))
    priority: Mapped[float | None] = mapped_column(Float)
    alternates: Mapped[list[dict[str, str]] | None] = mapped_column(JSONType)
    images: Mapped[list[dict[str, str]] | None] = mapped_column(JSONType)
    news: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    videos: Mapped[list[dict[str, str]] | None] = mapped_column(JSONType)
    sitemap_id: Mapped[int | None] = mapped_column(Integer)


class ApiKey(Base):
    """An API key (migration 0006). Only the SHA-256 of the key is stored; the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    tenant: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Added by migration 0008: the secret that signs this key's webhooks (HMAC-SHA256). Kept in clear,
    # unlike the key: the server must compute the signature with it (api/webhooks.py).
    webhook_secret: Mapped[str | None] = mapped_column(String(64))


class ConsoleLogout(Base):
    """A console session ended by its log-out (migration 0009): the session cookie's nonce, refused from
    then on even if the cookie was copied, until the session would have expired anyway."""

    __tablename__ = "console_logouts"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class AppSecret(Base):
    """Server-side secrets made once per database (migration 0006), e.g. the key that signs page cursors."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))


class WebhookDelivery(Base):
    """The webhook of a batch or of a single scan (migration 0008; `api/webhooks.py`): made `waiting`
    with the batch or job, armed (`pending`, its body fixed) once the batch or scan is final, then POSTed
    until `delivered` or `failed`. Unique per batch and per job: one delivery each, whoever notices."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        UniqueConstraint("batch_id", name="uq_webhook_deliveries_batch_id"),
        UniqueConstraint("job_id", name="uq_webhook_deliveries_job_id"),
        CheckConstraint("(batch_id IS NULL) <> (job_id IS NULL)", name="ck_webhook_deliveries_subject"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batch_jobs.id", ondelete="CASCADE"))
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(64))
    key_name: Mapped[str] = mapped_column(String(64))  # the API key whose webhook secret signs it
    callback_url: Mapped[str] = mapped_column(Text)
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus, "delivery_status"),
                                                   default=DeliveryStatus.WAITING)
    body: Mapped[str | None] = mapped_column(Text)  # the JSON POSTed, fixed when it is armed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ready_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # when the batch or scan was final
    first_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
