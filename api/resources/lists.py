"""Finding past work: GET /api/v1/batches, /api/v1/jobs and /api/v1/domains.

Each is paged with an opaque cursor (keyset paging: the cost of a page does not grow with how deep it
is), filtered, and returns `total` (rows matching the filters) beside the page. A query parameter the
endpoint does not know is a 400, never silently ignored.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import falcon

from api.auth import scope
from api.http import ApiError, site_or_400, decode_cursor, encode_cursor, get_limit, json_response
from api.store import Store, iso
from pipelines.status import BatchStatus, JobStatus, Outcome

API = "/api/v1"


def only_params(req: falcon.Request, allowed: set[str]) -> None:
    unknown = sorted(set(req.params) - allowed - {"limit", "cursor"})
    if unknown:
        raise ApiError(falcon.HTTP_400, "Unknown parameter",
                       f"{', '.join(unknown)} is not a parameter here; use {', '.join(sorted(allowed | {'limit', 'cursor'}))}.")


def choice(req: falcon.Request, name: str, values: list[str]) -> str | None:
    value = req.get_param(name)
    if value is not None and value not in values:
        raise ApiError(falcon.HTTP_400, "Invalid parameter", f"{name} must be one of {', '.join(values)}.")
    return value


def timestamp(req: falcon.Request, name: str) -> dt.datetime | None:
    value = req.get_param(name)
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(falcon.HTTP_400, "Invalid parameter",
                       f"{name} must be an ISO 8601 timestamp like 2026-01-31T00:00:00Z.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def uuid_param(req: falcon.Request, name: str) -> uuid.UUID | None:
    value = req.get_param(name)
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(falcon.HTTP_400, "Invalid parameter", f"{name} must be a UUID.") from None


def listing_scope(req: falcon.Request, name: str) -> str:
    """What a cursor belongs to: the listing, its filters and sort, and whose work it lists."""
    params = sorted((k, v) for k, v in req.params.items() if k not in ("limit", "cursor"))
    return f"{name}|{scope(req)}|{params}"


def keyset_cursor(req: falcon.Request, store: Store, name: str) -> tuple[Any, str] | None:
    """A cursor holding (sort value, id) of the last row of the previous page."""
    raw = decode_cursor(req.get_param("cursor"), list, store.cursor_key, listing_scope(req, name))
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
        only_params(req, {"status", "created_after"})
        status = choice(req, "status", [s.value for s in BatchStatus])
        created_after = timestamp(req, "created_after")
        limit = get_limit(req, 50, 500)
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
        only_params(req, {"domain", "status", "outcome", "batch_id"})
        domain = req.get_param("domain")
        if domain is not None:  # any spelling of a site the command line or the API scanned
            domain = site_or_400(domain, strict=False).name
        status = choice(req, "status", [s.value for s in JobStatus])
        outcome = choice(req, "outcome", [o.value for o in Outcome])
        batch_id = uuid_param(req, "batch_id")
        limit = get_limit(req, 50, 1000)
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
        only_params(req, {"q", "has_sitemap", "sort"})
        q = req.get_param("q")
        if q is not None and len(q) > 253:
            raise ApiError(falcon.HTTP_400, "Invalid parameter", "q is at most 253 characters.")
        has_sitemap = req.get_param_as_bool("has_sitemap")
        sort = choice(req, "sort", list(SORTS)) or "last_scan"
        limit = get_limit(req, 50, 1000)
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
