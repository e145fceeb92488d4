"""POST /api/v1/scrapersky, GET /api/v1/status/{job_id}, POST /api/v1/jobs/{job_id}/cancel,
GET /api/v1/jobs/{job_id}/deliveries."""

from __future__ import annotations

import uuid
from typing import Any

import falcon

from api.config import Config
from api.auth import scope
from api.http import ApiError, json_response, not_found, site_or_400, too_many
from api.quotas import QuotaExceeded, Quotas
from api.store import HOME_FIELDS, Store
from api.webhooks import delivery_view, webhook_request
from pipelines.db import redact_url

API = "/api/v1"


def job_view(row: dict[str, Any]) -> dict[str, Any]:
    status = row["status"].value if hasattr(row["status"], "value") else row["status"]
    progress = {"pending": 0.0, "running": 0.5}.get(status, 1.0)
    metadata = None
    if row.get("d_id") is not None:
        metadata = {f: row.get(f"d_{f}") for f in HOME_FIELDS}
    return {
        "job_id": row["id"],
        "domain": row["domain"],
        "batch_id": row["batch_id"],
        "status": status,
        "outcome": row["outcome"].value if hasattr(row["outcome"], "value") else row["outcome"],
        "origin": row["origin"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "outcome": getattr(row.get("outcome"), "value", row.get("outcome")),
        "error": row["error"],
        "attempts": row.get("dispatch_attempts", 0),
        "progress": progress,
        "options": row["options"] or {},
        "result": {
            "sitemaps_found": row["sitemaps_found"],
            "sitemaps_failed": row["sitemaps_failed"],
            "urls_found": row["urls_found"],
            "new_urls": row["new_urls"],
            "removed_urls": row["removed_urls"],
            "bytes_downloaded": row["bytes_downloaded"],
            "duration_seconds": row["duration_seconds"],
        },
        "metadata": metadata,
        # a single scan's webhook (a batch's is in the batch status); None without callback_url
        "webhook": delivery_view(row, "w_") if row.get("w_id") is not None else None,
        "scrapyd": {"node": redact_url(row["scrapyd_node"]), "jobid": row["scrapyd_jobid"],
                    "log_url": redact_url(row["log_url"]), "log_expired": row.get("log_expired", False)},
        "links": {
            "status": f"{API}/status/{row['id']}",
            "urls": f"{API}/jobs/{row['id']}/urls",
            "sitemaps": f"{API}/jobs/{row['id']}/sitemaps",
            "domain": f"{API}/domains/{row['domain']}",
            **({"batch": f"{API}/batch/status/{row['batch_id']}"} if row["batch_id"] else {}),
        },
    }


class ScanResource:
    def __init__(self, store: Store, config: Config, dispatcher=None) -> None:
        self.store = store
        self.config = config
        self.dispatcher = dispatcher
        self.quotas = Quotas.from_config(config)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = req.context.body  # checked against ScanRequest (api/openapi.py)
        site = site_or_400(data["base_url"])
        domain = site.name
        webhook = webhook_request(data.get("callback_url"), req.context.key_name, self.config.allow_private)
        options = {"max_pages": int(data["max_pages"])} if "max_pages" in data else {}
        try:  # durable before the 202
            job_id = self.store.create_job(domain, {**options, "target": site.target}, req.context.tenant,
                                           None if req.context.is_admin else self.quotas.check, webhook)
        except QuotaExceeded as exc:
            raise too_many(str(exc), exc.retry_after, quota=exc.quota, limit=exc.limit) from None
        if self.dispatcher is not None:
            self.dispatcher.wake()
        status_url = f"{API}/status/{job_id}"
        resp.location = status_url
        body = {"job_id": job_id, "domain": domain, "status": "pending", "status_url": status_url}
        if webhook:
            body["callback_url"] = webhook["callback_url"]
        json_response(resp, body, falcon.HTTP_202)


class StatusResource:
    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: uuid.UUID) -> None:
        row = self.store.get_job(job_id, scope(req))
        if row is None:
            raise not_found(f"No job with id {job_id}.")
        json_response(resp, job_view(row))


class JobCancelResource:
    def __init__(self, store: Store, dispatcher=None) -> None:
        self.store = store
        self.dispatcher = dispatcher

    def on_post(self, req: falcon.Request, resp: falcon.Response, job_id: uuid.UUID) -> None:
        outcome, row = self.store.cancel_job(job_id, scope(req))
        if outcome == "missing":
            raise not_found(f"No job with id {job_id}.")
        status = row["status"].value if hasattr(row["status"], "value") else row["status"]
        if outcome == "final":
            raise ApiError(falcon.HTTP_409, "Job already finished",
                           f"Job {job_id} is {status}; only pending or running jobs can be cancelled.", status=status)
        crawl_cancelled = False
        if self.dispatcher is not None:
            crawl_cancelled = self.dispatcher.cancel_crawl_if_idle(row["scrapyd_node"], row["scrapyd_jobid"])
        json_response(resp, {"job_id": job_id, "status": status, "scrapyd_job_cancelled": crawl_cancelled})


class JobDeliveriesResource:
    """GET /api/v1/jobs/{job_id}/deliveries: a single scan's webhook deliveries (api/webhooks.py), with the
    body sent; none for a scan made without callback_url, or one of a batch (see the batch's)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: uuid.UUID) -> None:
        if self.store.job_row(job_id, scope(req)) is None:
            raise not_found(f"No job with id {job_id}.")
        json_response(resp, {"job_id": job_id, "deliveries": [
            delivery_view(d, payload=True) for d in self.store.deliveries(job_id=job_id)]})
