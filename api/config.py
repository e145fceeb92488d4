"""API configuration, read from the environment (see `Config.from_env`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pipelines.db import database_url


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Config:
    database_url: str
    # One or more scrapyd nodes; the dispatcher picks the least busy reachable one.
    scrapyd_urls: list[str] = field(default_factory=lambda: ["http://127.0.0.1:6800"])
    scrapyd_username: str | None = None
    scrapyd_password: str | None = None
    # Public base URL of each node's console for log links (defaults to the node URL itself).
    scrapyd_public_urls: list[str] | None = None
    project: str = "scrapersky"
    spider: str = "sitemap"
    scrapyd_timeout: float = 5.0
    # Input limits.
    max_batch_domains: int = 10_000
    max_body_bytes: int = 4 * 1024 * 1024
    max_pages_limit: int = 10_000_000
    # Dispatcher.
    run_dispatcher: bool = True
    dispatch_interval: float = 1.0
    crawl_max_domains: int = 200  # domains packed into one scrapyd job at most
    crawl_min_domains: int = 20  # ... and at least, when more than that are waiting
    max_crawls_per_node: int = 4  # pending+running scrapyd jobs per node before waiting
    reconcile_grace: float = 30.0  # seconds a crawl may be unknown to scrapyd after scheduling
    node_grace: float = 60.0  # seconds a node may not answer before its crawls' jobs go to other nodes
    max_dispatch_attempts: int = 3  # crawls that may carry a job before it fails (crawl_lost / dispatch)
    scrapyd_jobs_to_keep: int = 1000  # scrapyd.conf jobs_to_keep: crawl logs each node keeps

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Config":
        env = dict(os.environ if env is None else env)
        urls = [u.strip().rstrip("/") for u in env.get("SCRAPYD_URL", "http://127.0.0.1:6800").split(",") if u.strip()]
        public = env.get("SCRAPYD_PUBLIC_URL")
        cfg = cls(
            database_url=database_url(env),
            scrapyd_urls=urls,
            scrapyd_username=env.get("SCRAPYD_USERNAME") or None,
            scrapyd_password=env.get("SCRAPYD_PASSWORD") or None,
            scrapyd_public_urls=[u.strip().rstrip("/") for u in public.split(",")] if public else None,
            project=env.get("SCRAPYD_PROJECT", "scrapersky"),
            spider=env.get("SCRAPYD_SPIDER", "sitemap"),
            run_dispatcher=_bool(env.get("API_RUN_DISPATCHER"), True),
        )
        for name, attr, conv in (
            ("API_MAX_BATCH_DOMAINS", "max_batch_domains", int),
            ("API_MAX_BODY_BYTES", "max_body_bytes", int),
            ("DISPATCH_INTERVAL", "dispatch_interval", float),
            ("CRAWL_MAX_DOMAINS", "crawl_max_domains", int),
            ("CRAWL_MIN_DOMAINS", "crawl_min_domains", int),
            ("MAX_CRAWLS_PER_NODE", "max_crawls_per_node", int),
            ("RECONCILE_GRACE", "reconcile_grace", float),
            ("NODE_GRACE", "node_grace", float),
            ("JOB_MAX_ATTEMPTS", "max_dispatch_attempts", int),
            ("SCRAPYD_JOBS_TO_KEEP", "scrapyd_jobs_to_keep", int),
            ("SCRAPYD_TIMEOUT", "scrapyd_timeout", float),
        ):
            if env.get(name):
                setattr(cfg, attr, conv(env[name]))
        return cfg

    def public_url(self, node: str) -> str:
        if self.scrapyd_public_urls:
            try:
                return self.scrapyd_public_urls[self.scrapyd_urls.index(node)]
            except (ValueError, IndexError):
                pass
        return node
