"""Finding past work: GET /api/v1/batches, /api/v1/jobs and /api/v1/domains.

Each is paged with an opaque cursor (keyset paging: the cost of a page does not grow with how deep it
is), filtered, and returns `total` (rows matching the filters) beside the page. Their parameters are
checked against the OpenAPI document (api/openapi.py): one the endpoint does not know is a 400.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import falcon

from api.auth import scope
from api.http import ApiError, decode_cursor, encode_cursor, json_response, site_or_400
from api.store import Store, iso

API = "/api/v1"


def timestamp(value: str | None, name: str) -> dt.datetime | None:
    """An ISO 8601 / RFC 3339 timestamp (UTC when it names no zone); 400 when it is not one."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", value.strip()))
    except ValueError:
        raise ApiError(falcon.HTTP_400, "Invalid parameter",
                       f"{name} must be an ISO 8601 timestamp like 2026-01-31T00:00:00Z.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def listing_scope(req: falcon.Request, name: str) -> str:
    """What a cursor belongs to: the listing, its filters and sort, and whose work it lists."""
    params = sorted((k, str(v)) for k, v in req.context.query.items() if k not in ("limit", "cursor"))
    return f"{name}|{scope(req)}|{params}"


def keyset_cursor(req: falcon.Request, store: Store, name: str) -> tuple[Any, str] | None:
    """A cursor holding (sort value, id) of the last row of the previous page."""
    raw = decode_cursor(req.context.query.get("cursor"), list, store.cursor_key, listing_scope(req, name))
    if raw is None:
        return None
    if len(raw) != 2 or not isinstance(raw[1], (str, int)) or isinstance(raw[1], bool):
        raise ApiError(falcon.HTTP_400, "Invalid parameter",
                       "cursor is not valid: use the next_cursor value of the previous page.")
    return raw[0], raw[1]


def _value(v: Any) -> Any:
    return v.value if hasattr(v, "value") else v


def page_of(req: falcon.Request, store: Store, name: str, rows: list[dict[str, Any]], limit: int,
            key) -> tuple[list[dict[str, Any]], str | None]:
    more = len(rows) > limit
    rows = rows[:limit]
    if not (more and rows):
        return rows, None
    return rows, encode_cursor(list(key(rows[-1])), store.cursor_key, listing_scope(req, name))


class BatchListResource:
    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = req.context.query  # checked against the listBatches parameters (api/openapi.py)
        status, limit = q.get("status"), q["limit"]
        created_after = timestamp(q.get("created_after"), "created_after")
        after = keyset_cursor(req, self.store, "batches")
        total, rows = bad_cursor_is_400(lambda: self.store.list_batches(status, created_after, after, limit + 1, tenant=_tenant(req)))
        rows, cursor = page_of(req, self.store, "batches", rows, limit, lambda r: (iso(r["created_at"]), str(r["id"])))
        json_response(resp, {"total": total, "next_cursor": cursor, "batches": [{
            "batch_id": r["id"], "status": _value(r["status"]), "created_at": r["created_at"],
            "finished_at": r["finished_at"], "total_jobs": r["total_jobs"],
            "links": {"status": f"{API}/batch/status/{r['id']}"},
        } for r in rows]})


class JobListResource:
    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = req.context.query  # checked against the listJobs parameters (api/openapi.py)
        domain = q.get("domain")
        if domain is not None:  # any spelling of a site the command line or the API scanned
            domain = site_or_400(domain, strict=False).name
        status, outcome, limit = q.get("status"), q.get("outcome"), q["limit"]
        batch_id = uuid.UUID(q["batch_id"]) if "batch_id" in q else None
        after = keyset_cursor(req, self.store, "jobs")
        total, rows = bad_cursor_is_400(lambda: self.store.list_jobs(domain, status, outcome, batch_id, after, limit + 1, tenant=_tenant(req)))
        rows, cursor = page_of(req, self.store, "jobs", rows, limit, lambda r: (iso(r["created_at"]), str(r["id"])))
        json_response(resp, {"total": total, "next_cursor": cursor, "jobs": [{
            "job_id": r["id"], "domain": r["domain"], "batch_id": r["batch_id"], "status": _value(r["status"]),
            "outcome": _value(r["outcome"]), "error": r["error"], "urls_found": r["urls_found"],
            "created_at": r["created_at"], "finished_at": r["finished_at"],
            "links": {"status": f"{API}/status/{r['id']}", "urls": f"{API}/jobs/{r['id']}/urls"},
        } for r in rows]})


SORTS = {"last_scan": "last_scan_at", "url_count": "url_count", "name": "name"}


class DomainListResource:
    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = req.context.query  # checked against the listDomains parameters (api/openapi.py)
        q, has_sitemap, sort, limit = params.get("q"), params.get("has_sitemap"), params["sort"], params["limit"]
        after = keyset_cursor(req, self.store, "domains")
        total, rows = bad_cursor_is_400(lambda: self.store.list_domains(q, has_sitemap, SORTS[sort], after, limit + 1, tenant=_tenant(req)))
        key = SORTS[sort]
        rows, cursor = page_of(req, self.store, "domains", rows, limit, lambda r: (iso(r[key]) if isinstance(r[key], dt.datetime) else r[key],
                                                       r["id"]))
        json_response(resp, {"total": total, "next_cursor": cursor, "sort": sort, "domains": [{
            "domain": r["name"], "title": r["title"], "url_count": r["url_count"],
            "sitemap_count": r["sitemap_count"], "last_scan_at": r["last_scan_at"], "last_job_id": r["last_job_id"],
            "links": {"domain": f"{API}/domains/{r['name']}"},
        } for r in rows]})


def bad_cursor_is_400(call):
    try:
        return call()
    except ValueError:
        raise ApiError(falcon.HTTP_400, "Invalid parameter",
                       "cursor is not valid: use the next_cursor value of the previous page.") from None


def _tenant(req: falcon.Request) -> Any:
    """The tenant whose work is listed; None lists everything (an admin key, or auth off)."""
    return scope(req)
