"""Durable dispatch: pending jobs in the database -> scrapyd crawls; and reconciliation back.

The database is the queue; every job status change goes through `pipelines.lifecycle` (its
docstring has the transition table). A job is written `pending` before the API answers 202.
Only the dispatcher *leader* ticks (`api.leader`: a PostgreSQL advisory lock, or a file lock on
SQLite), however many API workers or `python -m api.dispatcher` processes run; so the per-node limit
`MAX_CRAWLS_PER_NODE` holds. Each tick of the leader:

0. **warm-up** - once per node, a side thread asks it for the project's spiders (`listspiders.json`):
   scrapyd runs `scrapy list` once per project (1-5 s, during which it answers nothing else) and keeps
   the answer, so the first `schedule.json` of a batch does not wait for it.
1. **dispatch** - picks the least busy reachable scrapyd node (`daemonstatus.json`), *claims* up to
   `crawl_max_domains` pending jobs of one batch (same options) in one short transaction
   (`SELECT ... FOR UPDATE SKIP LOCKED`, then `lifecycle.claim`), writing a new crawl UUID into
   `scrapyd_jobid`, the node and the log URL. Only then, outside any transaction, it calls
   `schedule.json` with `jobid=<crawl UUID>`. If scrapyd is unreachable the claim is released and the
   jobs wait for the next tick. If scrapyd refuses, the jobs are requeued (the attempt counts); after
   `max_dispatch_attempts` they fail (`dispatch`) with scrapyd's message.
2. **reconcile** - for every node it asks `listjobs.json` (bounded: scrapyd keeps `finished_to_keep`
   finished jobs). A crawl that still carries pending/running jobs is *requeued*
   (`lifecycle.requeue`: back to the queue, or `crawl_lost` after `max_dispatch_attempts` crawls) when
   scrapyd reports it finished (the process ended - killed, crashed - without finishing them), when
   scrapyd does not know it `reconcile_grace` seconds after scheduling (scrapyd restarted and forgot
   it), or when its node has not answered for `node_grace` seconds (node lost; the jobs go to the
   other nodes, and the node is used again once it answers). A crawl that was thought lost but
   finishes after all still completes its jobs (completion wins). A crawl still queued/running whose
   jobs were all cancelled gets `cancel.json` (this retries cancels that could not reach scrapyd).
3. batch rows get their derived status (pending -> running -> complete) persisted.
4. **webhooks** (`api/webhooks.py`) - with each reconcile, deliveries whose batch or scan is final are
   armed; each tick, due deliveries are claimed and POSTed from the sender's own thread pool (never in
   this thread: a slow receiver does not hold up dispatch).

One log line per dispatched crawl, per finished crawl and per requeue.

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

from sqlalchemy import case, func, select
from sqlalchemy.exc import OperationalError

from api.config import Config
from api.leader import leadership
from api.scrapyd_client import ScrapydClient, ScrapydError, ScrapydUnavailable
from api.store import ACTIVE, Store, crawls, jobs
from api.webhooks import WebhookSender
from pipelines import lifecycle
from pipelines.db import redact_url
from pipelines.models import utcnow
from pipelines.status import JobStatus, Outcome

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
        self._unanswered_since: dict[str, float] = {}  # node -> monotonic time it stopped answering
        self._crawls: dict[str, str] = {}  # crawls this leader saw carrying active jobs -> node
        self._warmed: dict[str, threading.Thread] = {}  # node -> the thread that asked it for its spiders
        self._last_reconcile = 0.0
        self.leader = leadership(store.engine)
        self.webhooks = WebhookSender(store, config)

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
        self.webhooks.stop()

    def wake(self) -> None:
        self._wake.set()

    def run_forever(self) -> None:
        while not self._stop.is_set():
            self.safe_tick()
            self._wake.wait(self.config.dispatch_interval)
            self._wake.clear()

    def safe_tick(self) -> None:
        """One tick that never raises: the next one retries. An expected outage (the database or a node
        unreachable) is one warning line, a bug a traceback."""
        try:
            self.tick()
        except OperationalError as exc:
            logger.warning("dispatcher tick: database unreachable (%s); retrying",
                           " ".join(str(exc.orig or exc).split())[:200])
        except Exception:
            logger.exception("dispatcher tick failed")

    def tick(self) -> dict[str, int]:
        out = {"dispatched_crawls": 0, "dispatched_jobs": 0, "failed": 0, "released": 0, "leader": 0,
               "webhooks_armed": 0, "webhooks_started": 0}
        with self.leader.lead() as leading:
            if not leading:
                return out
            out["leader"] = 1
            for node in self.clients:
                self._warm_up(node)
            now = time.monotonic()
            reconciled = False
            if (now - self._last_reconcile >= min(2.0, self.config.dispatch_interval * 2)
                    or self.config.dispatch_interval == 0):
                self._last_reconcile = now
                reconciled = True
                r = self.reconcile()
                out["failed"] += r["failed"]
                out["released"] += r["released"]
                for batch_id in self.store.active_batch_ids():
                    self.store.refresh_batch(batch_id)
            d = self.dispatch()
            out["dispatched_crawls"] += d[0]
            out["dispatched_jobs"] += d[1]
            if reconciled:
                out["webhooks_armed"] = self.webhooks.arm()
            out["webhooks_started"] = self.webhooks.send_due()
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

    def _warm_up(self, node: str) -> None:
        """Have a node run `scrapy list` now, on a side thread, rather than inside the first schedule.json
        (once per node; again later when it could not be reached)."""
        if node in self._warmed:
            return

        def ask() -> None:
            try:
                self.clients[node].listspiders(self.config.project, timeout=max(30.0, self.config.scrapyd_timeout))
            except ScrapydUnavailable:
                self._warmed.pop(node, None)  # try again at a later tick
            except ScrapydError as exc:  # only a warm-up: schedule.json asks again and reports
                logger.info("asking %s for its spiders: %s", node, exc)

        thread = self._warmed[node] = threading.Thread(target=ask, name="scrapersky-warm-up", daemon=True)
        thread.start()

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
            started = time.perf_counter()
            total_free = sum(max(0, self.config.max_crawls_per_node - n) for n in loads.values())
            claim = self.claim(node, free_slots=total_free)
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
                self.release(claim.crawl_id)
                self._down_until[node] = time.monotonic() + 2.0
                loads.pop(node)
                continue
            except ScrapydError as exc:
                logger.error("scrapyd %s refused crawl %s: %s", node, claim.crawl_id, exc)
                self.requeue(claim.crawl_id, f"scrapyd refused the crawl: {exc}", Outcome.DISPATCH)
                break
            self._crawls[claim.crawl_id] = node
            logger.info("dispatched crawl %s to %s: %d jobs in %.1f ms", claim.crawl_id, node, len(claim.job_ids),
                        (time.perf_counter() - started) * 1000)
            loads[node] += 1
            crawls += 1
            n_jobs += len(claim.job_ids)
        return crawls, n_jobs

    def _waiting_filter(self):
        return lifecycle.waiting(self.config.max_dispatch_attempts)

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
            # how many wait (counted up to what the free slots could take: the cost stays flat)
            cap = cfg.crawl_max_domains * max(1, free_slots)
            waiting = conn.execute(select(func.count()).select_from(
                select(jobs.c.id).where(*group).limit(cap).subquery())).scalar_one()
            size = max(cfg.crawl_min_domains, math.ceil(waiting / max(1, free_slots)))
            size = max(1, min(cfg.crawl_max_domains, size))
            rows = conn.execute(
                select(jobs.c.id, jobs.c.options).where(*group)
                .order_by(jobs.c.created_at, jobs.c.id).limit(size * 2).with_for_update(skip_locked=True)
            ).mappings().all()
            ids = [r["id"] for r in rows if (r["options"] or {}).get("max_pages") == max_pages][:size]
            if not ids:
                return None
            claimed = lifecycle.claim(conn, ids, crawl_id, node, client.log_url(cfg.project, cfg.spider, crawl_id),
                                      cfg.max_dispatch_attempts)
            if claimed:
                seq = select(func.coalesce(func.max(crawls.c.node_seq), 0) + 1).where(crawls.c.node == node)
                conn.execute(crawls.insert().values(id=crawl_id, node=node, node_seq=seq.scalar_subquery(),
                                                    dispatched_at=utcnow()))
        if not claimed:
            return None
        return Claim(crawl_id, node, first["batch_id"], max_pages, [r[0] for r in claimed], [r[1] for r in claimed])

    def release(self, crawl_id: str) -> int:
        """Put the jobs of a crawl scrapyd never received back in the queue (the attempt is not counted)."""
        with self.store.engine.begin() as conn:
            conn.execute(crawls.delete().where(crawls.c.id == crawl_id))  # it never ran: it has no log
            return lifecycle.release(conn, crawl_id)

    def requeue(self, crawl_id: str, reason: str, outcome: Outcome = Outcome.CRAWL_LOST) -> tuple[int, int]:
        """The crawl will not finish its active jobs: back to the queue, or failed once out of attempts."""
        with self.store.engine.begin() as conn:
            requeued, failed = lifecycle.requeue(conn, crawl_id, reason, self.config.max_dispatch_attempts, outcome)
        if requeued or failed:
            logger.warning("requeued crawl %s: %d job(s) back in the queue, %d failed (%s): %s", crawl_id, requeued,
                           failed, outcome.value, reason)
        return requeued, failed

    # ------------------------------------------------------------------ reconcile
    def reconcile(self) -> dict[str, int]:
        out = {"failed": 0, "released": 0, "cancelled_crawls": 0}
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(jobs.c.scrapyd_node, jobs.c.scrapyd_jobid, func.min(jobs.c.dispatched_at))
                .where(jobs.c.status.in_(ACTIVE), jobs.c.scrapyd_jobid.is_not(None))
                .group_by(jobs.c.scrapyd_node, jobs.c.scrapyd_jobid)
            ).all()
        self._log_finished_crawls({crawl for _, crawl, _ in rows})
        by_node: dict[str, list[tuple[str, dt.datetime | None]]] = {}
        for node, crawl, dispatched in rows:
            by_node.setdefault(node, []).append((crawl, dispatched))
            self._crawls.setdefault(crawl, node)

        def requeue(crawl: str, reason: str) -> None:
            requeued, failed = self.requeue(crawl, reason)
            out["released"] += requeued
            out["failed"] += failed

        for node in set(by_node) | set(self.clients):
            client = self.clients.get(node)
            if client is None:
                continue  # a node no longer configured: leave its jobs to whoever runs it
            try:
                listing = client.listjobs(self.config.project)
            except ScrapydUnavailable as exc:
                since = self._unanswered_since.setdefault(node, time.monotonic())
                silent = time.monotonic() - since
                if by_node.get(node) and silent >= self.config.node_grace:
                    for crawl, _ in by_node[node]:
                        requeue(crawl, f"scrapyd node {node} has not answered for {silent:.0f} s ({exc})")
                continue
            except ScrapydError:
                continue
            self._unanswered_since.pop(node, None)
            queued = {j["id"] for j in listing.get("pending", [])}
            running = {j["id"] for j in listing.get("running", [])}
            finished = {j["id"] for j in listing.get("finished", [])}
            now = utcnow()
            for crawl, dispatched in by_node.get(node, []):
                if crawl in queued or crawl in running:
                    continue
                if crawl in finished:
                    requeue(crawl, f"the crawl process ended without finishing this job (scrapyd job {crawl} "
                                   f"on {node}; see its log)")
                    continue
                if dispatched is not None and (now - dispatched).total_seconds() < self.config.reconcile_grace:
                    continue
                requeue(crawl, f"scrapyd {node} no longer knows crawl {crawl} (scrapyd restarted?)")
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

    def _log_finished_crawls(self, active: set[str]) -> None:
        """One line per crawl this leader watched whose jobs are all final now."""
        done = [crawl for crawl in self._crawls if crawl not in active]
        if not done:
            return
        with self.store.engine.connect() as conn:
            counts = conn.execute(select(jobs.c.scrapyd_jobid, jobs.c.outcome, func.count())
                                  .where(jobs.c.scrapyd_jobid.in_(done))
                                  .group_by(jobs.c.scrapyd_jobid, jobs.c.outcome)).all()
        by_crawl: dict[str, dict[str, int]] = {}
        for crawl, outcome, n in counts:
            by_crawl.setdefault(crawl, {})[getattr(outcome, "value", outcome) or "requeued"] = n
        for crawl in done:
            node = self._crawls.pop(crawl)
            tally = ", ".join(f"{n} {o}" for o, n in sorted(by_crawl.get(crawl, {}).items())) or "its jobs requeued"
            logger.info("crawl %s on %s finished: %s", crawl, node, tally)

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
        dispatcher.safe_tick()
        stop.wait(config.dispatch_interval)
    dispatcher.webhooks.stop()
    dispatcher.leader.resign()
    return 0


if __name__ == "__main__":
    sys.exit(main())
