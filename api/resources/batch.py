"""POST /api/v1/batch, GET /api/v1/batch/status/{batch_id}, POST /api/v1/batch/{batch_id}/cancel,
GET /api/v1/batches/{batch_id}/deliveries."""

from __future__ import annotations

import uuid

import falcon

from api.config import Config
from pipelines.domains import DomainError, parse_site
from api.auth import scope
from api.http import ApiError, decode_cursor, encode_cursor, invalid, json_response, not_found, too_many
from api.quotas import QuotaExceeded, Quotas
from api.store import Store, derive_batch_status
from api.webhooks import delivery_view, webhook_request
from pipelines.models import utcnow

API = "/api/v1"


class BatchResource:
    def __init__(self, store: Store, config: Config, dispatcher=None) -> None:
        self.store = store
        self.config = config
        self.dispatcher = dispatcher
        self.quotas = Quotas.from_config(config)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = req.context.body  # checked against BatchRequest (api/openapi.py)
        max_pages = int(data["max_pages"]) if "max_pages" in data else None
        result = submit_batch(self.store, self.config, self.quotas, self.dispatcher, data["domains"], max_pages,
                              req.context.tenant, req.context.is_admin, data.get("callback_url"),
                              req.context.key_name)
        resp.location = result["status_url"]
        json_response(resp, result, falcon.HTTP_202)


def submit_batch(store: Store, config: Config, quotas: Quotas, dispatcher, items: list, max_pages: int | None,
                 tenant: str, is_admin: bool, callback_url: str | None = None, key_name: str | None = None) -> dict:
    """Validate `items` (domains or URLs, `parse_site(strict=True)`) and `callback_url` (a webhook signed
    with the webhook secret of key `key_name`: api/webhooks.py), apply the tenant's quotas and store
    the batch: the one way a batch is made (POST /api/v1/batch and the console's New batch form).
    Raises ApiError (400 callback refused, 413 too many, 422 none valid, 429 over quota)."""
    if not items:
        raise invalid("domains is empty.")
    limit = config.max_batch_domains
    if len(items) > limit:
        raise ApiError(falcon.HTTP_413, "Batch too large", f"{len(items)} domains given; at most {limit} per batch.")
    seen: set[str] = set()
    accepted: list = []
    rejected = []
    duplicates = 0
    for item in items:
        try:
            site = parse_site(item, strict=True)
        except DomainError as exc:
            shown = item[:300] if isinstance(item, str) else item if isinstance(item, (int, float, bool)) or item is None else str(type(item).__name__)
            rejected.append({"input": shown, "error": exc.reason})
            continue
        if site.name in seen:  # one site, however it is spelled
            duplicates += 1
            continue
        seen.add(site.name)
        accepted.append(site)
    if not accepted:
        raise ApiError(falcon.HTTP_422, "No valid domains", "None of the domains given is valid.", rejected=rejected)
    webhook = webhook_request(callback_url, key_name, config.allow_private)
    options = {"max_pages": max_pages} if max_pages is not None else {}
    try:
        batch_id, count = store.create_batch(accepted, {**options, "rejected": len(rejected),
                                                        "duplicates": duplicates}, tenant,
                                             None if is_admin else quotas.check, webhook)
    except QuotaExceeded as exc:
        raise too_many(str(exc), exc.retry_after, quota=exc.quota, limit=exc.limit) from None
    if dispatcher is not None:
        dispatcher.wake()
    out = {"batch_id": batch_id, "status": "pending", "status_url": f"{API}/batch/status/{batch_id}",
           "job_count": count, "duplicates": duplicates, "rejected": rejected}
    if webhook:
        out["callback_url"] = webhook["callback_url"]
    return out


def batch_progress(store: Store, row: dict) -> dict:
    """A batch's derived status, counts, progress (0..1) and ETA in seconds (None when unknown)."""
    info = store.batch_counts(row["id"])
    status, finished_at = derive_batch_status(row, info)
    counts = info["counts"]
    total = sum(counts.values())
    done = counts["complete"] + counts["failed"] + counts["cancelled"]
    progress = round(done / total, 4) if total else 1.0
    eta = None
    if status in ("pending", "running") and total:
        start = info["started_at"] or row["created_at"]
        elapsed = (utcnow() - start).total_seconds()
        if done and elapsed > 0:
            eta = round((total - done) * elapsed / done, 1)
    return {"status": status, "finished_at": finished_at, "counts": counts, "total": total, "done": done,
            "progress": progress, "eta_seconds": eta, "info": info}


class BatchStatusResource:
    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, batch_id: uuid.UUID) -> None:
        row = self.store.batch_row(batch_id, scope(req))
        if row is None:
            raise not_found(f"No batch with id {batch_id}.")
        q = req.context.query
        limit, status_filter = q["limit"], q.get("status")
        cursor_scope = f"batch:{batch_id}:{status_filter or ''}"
        after = decode_cursor(q.get("cursor"), str, self.store.cursor_key, cursor_scope)
        p = batch_progress(self.store, row)
        info, status, finished_at, counts = p["info"], p["status"], p["finished_at"], p["counts"]
        total, progress, eta = p["total"], p["progress"], p["eta_seconds"]
        page = self.store.batch_jobs(batch_id, after, limit + 1, status_filter)
        next_cursor = (encode_cursor(page[limit - 1]["domain"], self.store.cursor_key, cursor_scope)
                       if len(page) > limit else None)
        jobs = [{
            "job_id": j["id"], "domain": j["domain"],
            "status": j["status"].value if hasattr(j["status"], "value") else j["status"],
            "outcome": j["outcome"].value if hasattr(j["outcome"], "value") else j["outcome"],
            "error": j["error"], "urls_found": j["urls_found"], "started_at": j["started_at"],
            "finished_at": j["finished_at"], "scrapyd_jobid": j["scrapyd_jobid"],
            "status_url": f"{API}/status/{j['id']}",
        } for j in page[:limit]]
        json_response(resp, {
            "batch_id": batch_id, "status": status, "total_jobs": total,
            "pending_jobs": counts["pending"], "running_jobs": counts["running"],
            "completed_jobs": counts["complete"], "failed_jobs": counts["failed"],
            "cancelled_jobs": counts["cancelled"], "outcomes": info["outcomes"], "progress": progress, "urls_found": info["urls_found"],
            "created_at": row["created_at"], "started_at": row["started_at"] or info["started_at"],
            "finished_at": finished_at, "eta_seconds": eta, "options": row["options"] or {},
            "webhook": next((delivery_view(d) for d in self.store.deliveries(batch_id=batch_id)), None),
            "jobs": jobs, "next_cursor": next_cursor,
        })


class BatchCancelResource:
    def __init__(self, store: Store, dispatcher=None) -> None:
        self.store = store
        self.dispatcher = dispatcher

    def on_post(self, req: falcon.Request, resp: falcon.Response, batch_id: uuid.UUID) -> None:
        outcome, n = self.store.cancel_batch(batch_id, scope(req))
        if outcome == "missing":
            raise not_found(f"No batch with id {batch_id}.")
        if outcome == "final":
            raise ApiError(falcon.HTTP_409, "Batch already finished", f"Batch {batch_id} has no pending or running jobs left.")
        crawls = 0
        if self.dispatcher is not None:
            for node, crawl in self.store.crawls_of_batch(batch_id):
                crawls += bool(self.dispatcher.cancel_crawl_if_idle(node, crawl))
        json_response(resp, {"batch_id": batch_id, "status": "cancelled", "jobs_cancelled": n,
                             "scrapyd_jobs_cancelled": crawls})


class BatchDeliveriesResource:
    """GET /api/v1/batches/{batch_id}/deliveries: the batch's webhook deliveries (api/webhooks.py), with
    the body sent; none when the batch was made without callback_url."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, batch_id: uuid.UUID) -> None:
        if self.store.batch_row(batch_id, scope(req)) is None:
            raise not_found(f"No batch with id {batch_id}.")
        json_response(resp, {"batch_id": batch_id, "deliveries": [
            delivery_view(d, payload=True) for d in self.store.deliveries(batch_id=batch_id)]})
