"""Durable dispatch: pending jobs in the database -> scrapyd crawls; and reconciliation back.

The database is the queue. A job is written `pending` (no `scrapyd_jobid`) before the API answers 202.
Each tick of `Dispatcher`:

1. **dispatch** - picks the least busy reachable scrapyd node (`daemonstatus.json`), *claims* up to
   `crawl_max_domains` pending jobs of one batch (same options) in one short transaction
   (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so several API workers or dispatcher processes
   never claim the same row; the claim itself is a conditional UPDATE, safe on SQLite too), writing a
   new crawl UUID into `scrapyd_jobid`, the node and the log URL. Only then, outside any transaction,
   it calls `schedule.json` with `jobid=<crawl UUID>` and the spider's many-domain arguments. If scrapyd
   is unreachable the claim is released and the jobs wait for the next tick (so jobs accepted while
   scrapyd is down run once it is back). If scrapyd refuses, the attempt counts; after
   `max_dispatch_attempts` the jobs fail with scrapyd's message.
2. **reconcile** - for every crawl that still carries pending/running jobs it asks the node's
   `listjobs.json`: a crawl scrapyd reports *finished* (the process ended; the spider closes each job
   itself before exiting) leaves its unclosed jobs `failed` with a reason; a crawl scrapyd does not
   know at all `reconcile_grace` seconds after scheduling (scrapyd restarted and forgot it, or the
   dispatcher died between claim and schedule) has its running jobs failed and its pending jobs put
   back in the queue. A crawl still queued/running whose jobs were all cancelled gets `cancel.json`
   (this retries cancels that could not reach scrapyd at request time).
3. batch rows get their derived status (pending -> running -> complete) persisted.

Run it inside the API process (`create_app` starts a thread unless `API_RUN_DISPATCHER=0`) or alone:
`python -m api.dispatcher`.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, update

from api.config import Config
from api.scrapyd_client import ScrapydClient, ScrapydError, ScrapydUnavailable
from api.store import ACTIVE, Store, jobs
from pipelines.db import redact_url
from pipelines.models import utcnow
from pipelines.status import JobStatus

logger = logging.getLogger("api.dispatcher")


@dataclass
class Claim:
    crawl_id: str
    node: str
    batch_id: uuid.UUID | None
    max_pages: int | None
    job_ids: list[uuid.UUID]
    domains: list[str]


class Dispatcher:
    def __init__(self, store: Store, clients: list[ScrapydClient], config: Config) -> None:
        self.store = store
        self.clients = {c.url: c for c in clients}
        self.config = config
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down_until: dict[str, float] = {}
        self._last_reconcile = 0.0

    # ------------------------------------------------------------------ loop
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="scrapersky-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # never let the loop die; the next tick retries
                logger.exception("dispatcher tick failed")
            self._wake.wait(self.config.dispatch_interval)
            self._wake.clear()

    def tick(self) -> dict[str, int]:
        out = {"dispatched_crawls": 0, "dispatched_jobs": 0, "failed": 0, "released": 0}
        now = time.monotonic()
        if now - self._last_reconcile >= min(2.0, self.config.dispatch_interval * 2) or self.config.dispatch_interval == 0:
            self._last_reconcile = now
            r = self.reconcile()
            out["failed"] += r["failed"]
            out["released"] += r["released"]
            for batch_id in self.store.active_batch_ids():
                self.store.refresh_batch(batch_id)
        d = self.dispatch()
        out["dispatched_crawls"] += d[0]
        out["dispatched_jobs"] += d[1]
        return out

    # ------------------------------------------------------------------ dispatch
    def _node_loads(self) -> dict[str, int]:
        loads: dict[str, int] = {}
        for url, client in self.clients.items():
            if self._down_until.get(url, 0) > time.monotonic():
                continue
            try:
                st = client.daemonstatus()
            except ScrapydError as exc:
                logger.warning("%s", exc)
                self._down_until[url] = time.monotonic() + 2.0
                continue
            loads[url] = int(st.get("pending", 0)) + int(st.get("running", 0))
        return loads

    def dispatch(self) -> tuple[int, int]:
        if not self._has_waiting():
            return 0, 0
        loads = self._node_loads()
        crawls = n_jobs = 0
        while loads:
            node = min(loads, key=loads.get)
            free = self.config.max_crawls_per_node - loads[node]
            if free <= 0:
                break
            claim = self.claim(node, free_slots=free * len(loads))
            if claim is None:
                break
            client = self.clients[node]
            args = {"domains": ",".join(claim.domains), "job_ids": ",".join(str(j) for j in claim.job_ids)}
            if claim.batch_id is not None:
                args["batch_id"] = str(claim.batch_id)
            if claim.max_pages is not None:
                args["max_pages"] = str(claim.max_pages)
            try:
                client.schedule(self.config.project, self.config.spider, claim.crawl_id, args)
            except ScrapydUnavailable as exc:
                logger.warning("scheduling crawl %s on %s: %s; will retry", claim.crawl_id, node, exc)
                self.release(claim.crawl_id, count_attempt=False)
                self._down_until[node] = time.monotonic() + 2.0
                loads.pop(node)
                continue
            except ScrapydError as exc:
                logger.error("scrapyd %s refused crawl %s: %s", node, claim.crawl_id, exc)
                self.release(claim.crawl_id, count_attempt=True, error=f"scrapyd refused the crawl: {exc}")
                break
            logger.info("crawl %s on %s carries %d jobs", claim.crawl_id, node, len(claim.job_ids))
            loads[node] += 1
            crawls += 1
            n_jobs += len(claim.job_ids)
        return crawls, n_jobs

    def _waiting_filter(self):
        return (jobs.c.status == JobStatus.PENDING, jobs.c.scrapyd_jobid.is_(None),
                jobs.c.dispatch_attempts < self.config.max_dispatch_attempts)

    def _has_waiting(self) -> bool:
        with self.store.engine.connect() as conn:
            return conn.execute(select(jobs.c.id).where(*self._waiting_filter()).limit(1)).first() is not None

    def claim(self, node: str, free_slots: int = 1) -> Claim | None:
        """Claim one crawl's worth of pending jobs (oldest first, one batch and one set of options)."""
        cfg = self.config
        crawl_id = str(uuid.uuid4())
        client = self.clients[node]
        with self.store.engine.begin() as conn:
            first = conn.execute(
                select(jobs.c.id, jobs.c.batch_id, jobs.c.options).where(*self._waiting_filter())
                .order_by(jobs.c.created_at, jobs.c.id).limit(1).with_for_update(skip_locked=True)
            ).mappings().first()
            if first is None:
                return None
            max_pages = (first["options"] or {}).get("max_pages")
            group = [*self._waiting_filter(),
                     jobs.c.batch_id == first["batch_id"] if first["batch_id"] is not None else jobs.c.batch_id.is_(None)]
            waiting = conn.execute(select(func.count()).where(*group)).scalar_one()
            size = max(cfg.crawl_min_domains, math.ceil(waiting / max(1, free_slots)))
            size = max(1, min(cfg.crawl_max_domains, size))
            rows = conn.execute(
                select(jobs.c.id, jobs.c.options).where(*group)
                .order_by(jobs.c.created_at, jobs.c.id).limit(size * 2).with_for_update(skip_locked=True)
            ).mappings().all()
            ids = [r["id"] for r in rows if (r["options"] or {}).get("max_pages") == max_pages][:size]
            if not ids:
                return None
            conn.execute(
                update(jobs).where(jobs.c.id.in_(ids), *self._waiting_filter()).values(
                    scrapyd_jobid=crawl_id, scrapyd_node=node, dispatched_at=utcnow(),
                    log_url=client.log_url(cfg.project, cfg.spider, crawl_id),
                    dispatch_attempts=jobs.c.dispatch_attempts + 1,
                )
            )
            claimed = conn.execute(
                select(jobs.c.id, jobs.c.domain, jobs.c.options).where(jobs.c.scrapyd_jobid == crawl_id)
                .order_by(jobs.c.domain)
            ).all()
        if not claimed:
            return None
        # the crawl gets what the user typed (canonical form: `www.` and scheme kept), not the domain key
        targets = [(r[2] or {}).get("target") or r[1] for r in claimed]
        return Claim(crawl_id, node, first["batch_id"], max_pages, [r[0] for r in claimed], targets)

    def release(self, crawl_id: str, count_attempt: bool, error: str | None = None) -> int:
        """Put a crawl's still-pending jobs back in the queue (or fail them when out of attempts)."""
        with self.store.engine.begin() as conn:
            if error is not None:
                conn.execute(
                    update(jobs).where(jobs.c.scrapyd_jobid == crawl_id, jobs.c.status == JobStatus.PENDING,
                                       jobs.c.dispatch_attempts >= self.config.max_dispatch_attempts)
                    .values(status=JobStatus.FAILED, finished_at=utcnow(), error=error[:1000])
                )
            values: dict[str, Any] = dict(scrapyd_jobid=None, scrapyd_node=None, log_url=None, dispatched_at=None)
            if not count_attempt:
                values["dispatch_attempts"] = jobs.c.dispatch_attempts - 1
            res = conn.execute(update(jobs).where(jobs.c.scrapyd_jobid == crawl_id,
                                                  jobs.c.status == JobStatus.PENDING).values(**values))
        return res.rowcount

    # ------------------------------------------------------------------ reconcile
    def reconcile(self) -> dict[str, int]:
        out = {"failed": 0, "released": 0, "cancelled_crawls": 0}
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(jobs.c.scrapyd_node, jobs.c.scrapyd_jobid, func.min(jobs.c.dispatched_at))
                .where(jobs.c.status.in_(ACTIVE), jobs.c.scrapyd_jobid.is_not(None))
                .group_by(jobs.c.scrapyd_node, jobs.c.scrapyd_jobid)
            ).all()
        by_node: dict[str, list[tuple[str, dt.datetime | None]]] = {}
        for node, crawl, dispatched in rows:
            by_node.setdefault(node, []).append((crawl, dispatched))
        for node in set(by_node) | set(self.clients):
            client = self.clients.get(node)
            if client is None:
                continue  # a node no longer configured: leave its jobs to whoever runs it
            try:
                listing = client.listjobs(self.config.project)
            except ScrapydError:
                continue
            queued = {j["id"] for j in listing.get("pending", [])}
            running = {j["id"] for j in listing.get("running", [])}
            finished = {j["id"] for j in listing.get("finished", [])}
            now = utcnow()
            for crawl, dispatched in by_node.get(node, []):
                if crawl in queued or crawl in running:
                    continue
                if crawl in finished:
                    out["failed"] += self._fail_crawl(
                        crawl, None,
                        f"crawl process ended without finishing this job (scrapyd job {crawl}; see its log)")
                    continue
                if dispatched is not None and (now - dispatched).total_seconds() < self.config.reconcile_grace:
                    continue
                out["failed"] += self._fail_crawl(
                    crawl, [JobStatus.RUNNING.value],
                    f"scrapyd no longer knows crawl {crawl} (scrapyd restarted?); the job was interrupted")
                out["released"] += self.release(crawl, count_attempt=True,
                                                error=f"scrapyd lost crawl {crawl} {self.config.max_dispatch_attempts} times")
            # Crawls still queued/running in scrapyd whose jobs were all cancelled: cancel them (retry path).
            live = queued | running
            if live:
                with self.store.engine.connect() as conn:
                    stats = conn.execute(
                        select(jobs.c.scrapyd_jobid,
                               func.sum(case((jobs.c.status.in_(ACTIVE), 1), else_=0)),
                               func.sum(case((jobs.c.status == JobStatus.CANCELLED, 1), else_=0)))
                        .where(jobs.c.scrapyd_jobid.in_(list(live))).group_by(jobs.c.scrapyd_jobid)
                    ).all()
                for crawl, active, cancelled in stats:
                    if not active and cancelled:
                        try:
                            client.cancel(self.config.project, crawl)
                            out["cancelled_crawls"] += 1
                        except ScrapydError as exc:
                            logger.warning("cancel %s: %s", crawl, exc)
        return out

    def _fail_crawl(self, crawl_id: str, statuses: list[str] | None, reason: str) -> int:
        with self.store.engine.begin() as conn:
            res = conn.execute(
                update(jobs).where(jobs.c.scrapyd_jobid == crawl_id, jobs.c.status.in_(statuses or ACTIVE))
                .values(status=JobStatus.FAILED, finished_at=utcnow(), error=reason)
            )
        if res.rowcount:
            logger.warning("%d jobs of crawl %s failed: %s", res.rowcount, crawl_id, reason)
        return res.rowcount

    # ------------------------------------------------------------------ cancel
    def cancel_crawl_if_idle(self, node: str | None, crawl_id: str | None) -> bool:
        """Cancel a scrapyd job when none of the jobs it carries is still active. Best effort: the
        reconciler retries when scrapyd cannot be reached now."""
        if not node or not crawl_id or self.store.crawl_active_count(crawl_id):
            return False
        client = self.clients.get(node)
        if client is None:
            return False
        try:
            client.cancel(self.config.project, crawl_id)
        except ScrapydError as exc:
            logger.warning("cancel %s on %s: %s (the reconciler will retry)", crawl_id, node, exc)
            return False
        return True


def make_clients(config: Config) -> list[ScrapydClient]:
    return [ScrapydClient(url, config.scrapyd_username, config.scrapyd_password, config.scrapyd_timeout,
                          public_url=config.public_url(url)) for url in config.scrapyd_urls]


def main(argv: list[str] | None = None) -> int:
    from pipelines.db import get_engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Config.from_env()
    store = Store(get_engine(config.database_url))
    dispatcher = Dispatcher(store, make_clients(config), config)
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()
        dispatcher.stop(timeout=0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    logger.info("dispatching to %s (project %s)", ", ".join(map(redact_url, config.scrapyd_urls)), config.project)
    while not stop.is_set():
        try:
            dispatcher.tick()
        except Exception:
            logger.exception("dispatcher tick failed")
        stop.wait(config.dispatch_interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
