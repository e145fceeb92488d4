"""GET /api/v1/jobs/{job_id}/urls, GET /api/v1/jobs/{job_id}/sitemaps, GET /api/v1/domains/{domain},
GET /api/v1/domains/{domain}/changes.

Every scan is an immutable snapshot (`pipelines.scans`): a job lists exactly the URLs and sitemaps
it saw, forever, and its URL count is `urls_found` in `/status`. `change=new` lists the URLs of the
job that the domain's previous complete scan did not see, `change=removed` the reverse (with that
scan's attributes); `/domains/{domain}/changes?from=A&to=B` does the same for any two scans. A scan
deleted by the retention setting (SCRAPERSKY_KEEP_SCANS) answers 410 Gone.
"""

from __future__ import annotations

import uuid
from typing import Any

import falcon

from api import exports
from api.auth import scope
from api.http import ApiError, decode_cursor, encode_cursor, json_response, not_found, site_or_400
from api.store import HOME_FIELDS, Store, UrlExport, iso
from pipelines.rows import url_row

API = "/api/v1"
page_view = url_row  # one row per URL, the same in every format and in the crawl's -O feeds


def _status(v: Any) -> Any:
    return v.value if hasattr(v, "value") else v


NO_SCAN = uuid.UUID(int=0)  # lists nothing: "removed" when there is no previous scan


def check_kept(job: dict[str, Any]) -> None:
    """410 Gone when the job's snapshot was deleted by the retention setting."""
    if job.get("pruned_at") is not None:
        raise ApiError(falcon.HTTP_410, "Scan results deleted",
                       f"The URLs and sitemaps of job {job['id']} were deleted on {iso(job['pruned_at'])} by the "
                       "retention setting (SCRAPERSKY_KEEP_SCANS); its counts remain in /status.")


class JobUrlsResource:
    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: uuid.UUID) -> None:
        q = req.context.query  # checked against the jobUrls parameters (api/openapi.py)
        fmt, change = q["format"], q["change"]
        job = self.store.job_row(job_id, scope(req))
        if job is None:
            raise not_found(f"No job with id {job_id}.")
        pair = self._pair(job, change)
        if fmt == "json":
            limit = q["limit"]
            cursor_scope = f"urls:{job_id}:{change}"
            after = decode_cursor(q.get("cursor"), str, self.store.cursor_key, cursor_scope)
            rows = self.store.list_pages(*pair, after, limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            json_response(resp, {
                "job_id": job_id, "domain": job["domain"], "status": _status(job["status"]), "change": change,
                "count": len(rows), "urls": [page_view(r) for r in rows],
                "next_cursor": encode_cursor(rows[-1]["url"], self.store.cursor_key, cursor_scope) if more and rows else None,
            })
            return
        resp.set_header("X-Job-Status", _status(job["status"]))
        name = f"{job['domain']}-{job_id}{'' if change == 'all' else '-' + change}"
        exports.respond(req, resp, self.store, UrlExport(*pair), fmt, name)

    def _pair(self, job: dict[str, Any], change: str) -> tuple[uuid.UUID, uuid.UUID | None]:
        """(scan listed, scan whose URLs are left out) for `change`; 410 when a snapshot was pruned."""
        check_kept(job)
        if change == "all":
            return job["id"], None
        previous = self.store.previous_job(job)
        if previous is not None:
            check_kept(previous)
        previous_id = previous["id"] if previous else None
        if change == "new":
            return job["id"], previous_id
        return (previous_id, job["id"]) if previous_id else (NO_SCAN, None)


class BatchUrlsResource:
    """GET /api/v1/batches/{batch_id}/urls?format=csv|jsonl|parquet: every URL of every job of the batch (jobs in
    domain order, URLs in URL order), each row the job URL row after `domain` and `job_id`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, batch_id: uuid.UUID) -> None:
        fmt = req.context.query["format"]
        if self.store.batch_row(batch_id, scope(req)) is None:
            raise not_found(f"No batch with id {batch_id}.")
        exports.respond(req, resp, self.store, UrlExport(batch_id=batch_id), fmt, f"batch-{batch_id}")


class JobSitemapsResource:
    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: uuid.UUID) -> None:
        job = self.store.job_row(job_id, scope(req))
        if job is None:
            raise not_found(f"No job with id {job_id}.")
        check_kept(job)
        rows = self.store.list_sitemaps(job_id)
        keys = ("url", "type", "discovered_by", "parent_url", "http_status", "gzipped", "size_bytes", "url_count",
                "lastmod_share", "priority_share", "changefreq_share", "generator", "last_modified", "error",
                "fetched_at")
        json_response(resp, {
            "job_id": job_id, "domain": job["domain"], "status": _status(job["status"]), "count": len(rows),
            "sitemaps": [{k: _status(r[k]) for k in keys} for r in rows],
        })


class DomainResource:
    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, domain: str) -> None:
        name = site_or_400(domain).name
        tenant = scope(req)
        row = self.store.get_domain(name, tenant)
        if row is None:
            raise not_found(f"{name} has not been scanned.")
        latest = row["latest_job"]
        latest_view = None
        if latest is not None:
            jid = latest["id"]
            prev = self.store.previous_job(latest)
            latest_view = {
                "job_id": jid, "status": _status(latest["status"]), "finished_at": latest["finished_at"],
                "urls_found": latest["urls_found"], "sitemaps_found": latest["sitemaps_found"],
                "new_urls": latest["new_urls"], "removed_urls": latest["removed_urls"],
                "previous_job_id": prev["id"] if prev and tenant in (None, prev["tenant"]) else None,
                "links": {
                    "status": f"{API}/status/{jid}", "urls": f"{API}/jobs/{jid}/urls",
                    "new_urls": f"{API}/jobs/{jid}/urls?change=new",
                    "removed_urls": f"{API}/jobs/{jid}/urls?change=removed",
                    "sitemaps": f"{API}/jobs/{jid}/sitemaps",
                    "changes": f"{API}/domains/{name}/changes?from={prev['id']}&to={jid}" if prev else None,
                },
            }
        json_response(resp, {
            "domain": name, "metadata": {f: row[f] for f in HOME_FIELDS},
            "first_scan_at": row["first_scan_at"], "last_scan_at": row["last_scan_at"],
            "url_count": row["url_count"], "sitemap_count": row["sitemap_count"],
            "latest_scan": latest_view,
            "recent_jobs": [{"job_id": j["id"], "status": _status(j["status"]), "created_at": j["created_at"],
                             "finished_at": j["finished_at"], "urls_found": j["urls_found"], "error": j["error"]}
                            for j in row["recent_jobs"]],
        })


class DomainChangesResource:
    """GET /api/v1/domains/{domain}/changes?from=JOB&to=JOB: URLs new in `to` and removed since `from`
    (any two scans of the domain, in either order), with counts; both lists paged together by
    `limit` (each list) and `cursor`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, domain: str) -> None:
        name = site_or_400(domain).name
        q = req.context.query  # from and to are UUIDs (api/openapi.py)
        ids = {key: uuid.UUID(q[key]) for key in ("from", "to")}
        limit = q["limit"]
        cursor_scope = f"changes:{name}:{ids['from']}:{ids['to']}"
        after = self._cursor(q.get("cursor"), self.store.cursor_key, cursor_scope)
        domain_id = self.store.domain_id(name)
        if domain_id is None:
            raise not_found(f"{name} has not been scanned.")
        jobs = {}
        for key, job_id in ids.items():
            job = self.store.job_row(job_id, scope(req))  # another tenant's job is not there
            if job is None:
                raise not_found(f"No job with id {job_id} ({key}).")
            if job["domain_id"] != domain_id and not (job["domain_id"] is None and job["domain"] == name):
                raise ApiError(falcon.HTTP_400, "Invalid parameter",
                               f"{key}: job {job_id} is a scan of {job['domain']}, not of {name}.")
            check_kept(job)
            jobs[key] = job
        old, new = ids["from"], ids["to"]
        lists = {"new": (new, old), "removed": (old, new)}
        body: dict[str, Any] = {"domain": name}
        for key, job in jobs.items():
            body[key] = {"job_id": job["id"], "status": _status(job["status"]), "started_at": job["started_at"],
                         "finished_at": job["finished_at"], "urls_found": job["urls_found"]}
        more = False
        cursor = []
        for position, (key, pair) in enumerate(lists.items()):
            state = after[position]
            rows = [] if state is False else self.store.list_pages(*pair, state, limit + 1)
            body[f"{key}_count"] = self.store.count_pages(*pair)
            body[key] = [page_view(r) for r in rows[:limit]]
            if len(rows) > limit:
                more = True
                cursor.append(rows[limit - 1]["url"])
            else:
                cursor.append(False)
        body["next_cursor"] = encode_cursor(cursor, self.store.cursor_key, cursor_scope) if more else None
        json_response(resp, body)

    @staticmethod
    def _cursor(raw: str | None, key: bytes, cursor_scope: str) -> list[Any]:
        """[new, removed]: None = from the start, a URL = after it, false = that list is done."""
        value = decode_cursor(raw, list, key, cursor_scope)
        if value is None:
            return [None, None]
        if len(value) != 2 or not all(v is False or isinstance(v, str) for v in value):
            raise ApiError(falcon.HTTP_400, "Bad request",
                           "cursor is not valid: use the next_cursor value of the previous page.")
        return value
