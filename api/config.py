"""API configuration, read from the environment (see `Config.from_env`)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.db import database_url
from pipelines.netpolicy import allow_private

REPO = Path(__file__).resolve().parent.parent


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
    crawl_max_domains: int = 500  # domains packed into one scrapyd job at most
    crawl_min_domains: int = 20  # ... and at least, when more than that are waiting
    # pending+running scrapyd jobs per node before waiting: a crawl keeps about one core busy, so 2 suits a
    # 2-core node (fewer, larger crawls also start fewer processes); raise it with the nodes' cores.
    max_crawls_per_node: int = 2
    reconcile_grace: float = 30.0  # seconds a crawl may be unknown to scrapyd after scheduling
    node_grace: float = 60.0  # seconds a node may not answer before its crawls' jobs go to other nodes
    max_dispatch_attempts: int = 3  # crawls that may carry a job before it fails (crawl_lost / dispatch)
    scrapyd_jobs_to_keep: int = 1000  # scrapyd.conf jobs_to_keep: crawl logs each node keeps
    # API keys (api/auth.py) and quotas (api/quotas.py). Admin keys are exempt from quotas and the rate limit.
    auth_enabled: bool = True  # API_AUTH=off: allowed only when listen_host is loopback
    listen_host: str = "127.0.0.1"  # API_HOST: where the API listens
    quota_domains_per_day: int = 10_000  # per tenant, rolling 24 h; 0 = no limit
    quota_concurrent_batches: int = 5  # per tenant, batches with pending/running jobs; 0 = no limit
    rate_limit: str | None = "20/second"  # per key and worker process (`limits` notation); None = off
    key_cache_seconds: float = 5.0  # how long a worker trusts a key it checked (revocation delay)
    # Webhooks (api/webhooks.py): sent by the dispatcher leader's threads.
    webhook_timeout: float = 10.0  # seconds to connect, and between bytes of the answer
    webhook_retry_base: float = 30.0  # first back-off; doubles each failed attempt ...
    webhook_retry_max: float = 3600.0  # ... up to this
    webhook_retry_window: float = 86400.0  # failed once this long has passed since the first attempt
    webhook_concurrency: int = 4  # deliveries in flight at once per leader
    # SCRAPERSKY_ALLOW_PRIVATE=1 (pipelines.netpolicy): callback URLs may name loopback/private targets.
    allow_private: bool = False
    api_public_url: str | None = None  # API_PUBLIC_URL: makes the links in webhook payloads absolute

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
            auth_enabled=_bool(env.get("API_AUTH"), True),
            listen_host=env.get("API_HOST") or "127.0.0.1",
            allow_private=allow_private(env),
            api_public_url=(env.get("API_PUBLIC_URL") or "").strip().rstrip("/") or None,
        )
        if "API_RATE_LIMIT" in env:
            rate = env["API_RATE_LIMIT"].strip()
            cfg.rate_limit = None if rate.lower() in ("", "0", "off", "none") else rate
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
            ("API_QUOTA_DOMAINS_PER_DAY", "quota_domains_per_day", int),
            ("API_QUOTA_CONCURRENT_BATCHES", "quota_concurrent_batches", int),
            ("API_KEY_CACHE_SECONDS", "key_cache_seconds", float),
            ("WEBHOOK_TIMEOUT", "webhook_timeout", float),
            ("WEBHOOK_RETRY_BASE", "webhook_retry_base", float),
            ("WEBHOOK_RETRY_MAX", "webhook_retry_max", float),
            ("WEBHOOK_RETRY_WINDOW", "webhook_retry_window", float),
            ("WEBHOOK_CONCURRENCY", "webhook_concurrency", int),
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


def env_file(env: dict[str, str] | None = None) -> Path:
    """Where local secrets and settings live: `$SCRAPERSKY_ENV_FILE`, else `.env` in the repository
    folder (gitignored). docker-compose reads the same `.env`."""
    env = os.environ if env is None else env
    return Path(env.get("SCRAPERSKY_ENV_FILE") or REPO / ".env")


def load_env_file(env: dict[str, str]) -> dict[str, str]:
    """`env` completed with the settings of the env file (the environment wins)."""
    from dotenv import dotenv_values

    path = env_file(env)
    values = dotenv_values(path) if path.is_file() else {}
    return {**{k: v for k, v in values.items() if v is not None}, **env}


def ensure_scrapyd_password(env: dict[str, str]) -> tuple[dict[str, str], bool]:
    """Give scrapyd basic auth: the user and password of `env` (see `load_env_file`), or a random
    password generated now and saved to the env file (mode 0600). Returns the completed environment
    and whether a password was generated. The password itself is never printed."""
    from dotenv import set_key

    env = {**env, "SCRAPYD_USERNAME": env.get("SCRAPYD_USERNAME") or "scrapersky"}
    if env.get("SCRAPYD_PASSWORD"):
        return env, False
    path = env_file(env)
    password = secrets.token_urlsafe(24)
    path.touch(mode=0o600, exist_ok=True)
    set_key(path, "SCRAPYD_PASSWORD", password, quote_mode="never")
    path.chmod(0o600)
    return {**env, "SCRAPYD_PASSWORD": password}, True
