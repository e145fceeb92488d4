"""GET /api/v1/jobs/{job_id}/urls, GET /api/v1/jobs/{job_id}/sitemaps, GET /api/v1/domains/{domain}.

"The URLs a job found" are the pages whose `last_seen_job_id` is that job. A later scan of the same
domain takes them over, so an older job's list shrinks to the URLs no newer scan has seen (its counts
in `/status` stay as they were). `change=new` lists the pages first seen by the job;
`change=removed` those the domain's previous complete scan saw and this one did not.
"""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import falcon

from api.auth import scope
from pipelines.domains import DomainError, parse_site
from api.http import (ApiError, decode_cursor, dumps, encode_cursor, get_limit, json_response,
                      not_found)
from api.store import HOME_FIELDS, Store
from pipelines.rows import URL_COLUMNS, csv_cell, url_row

API = "/api/v1"
page_view = url_row  # one row per URL, the same in every format and in the crawl's -O feeds


def _status(v: Any) -> Any:
    return v.value if hasattr(v, "value") else v


class JobUrlsResource:
    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: uuid.UUID) -> None:
        fmt = req.get_param("format") or "json"
        if fmt not in ("json", "jsonl", "csv"):
            raise ApiError(falcon.HTTP_400, "Invalid parameter", "format must be json, jsonl or csv.")
        change = req.get_param("change") or "all"
        if change not in ("all", "new", "removed"):
            raise ApiError(falcon.HTTP_400, "Invalid parameter", "change must be all, new or removed.")
        job = self.store.job_row(job_id, scope(req))
        if job is None:
            raise not_found(f"No job with id {job_id}.")
        if fmt == "json":
            limit = get_limit(req, 1000, 10_000)
            cursor_scope = f"urls:{job_id}:{change}"
            after = decode_cursor(req.get_param("cursor"), str, self.store.cursor_key, cursor_scope)
            rows = self.store.list_pages(job, change, after, limit + 1)
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
        if fmt == "jsonl":
            resp.content_type = "application/x-ndjson; charset=utf-8"
            resp.downloadable_as = f"{name}.jsonl"
            resp.stream = self._jsonl(job, change)
        else:
            resp.content_type = "text/csv; charset=utf-8"
            resp.downloadable_as = f"{name}.csv"
            resp.stream = self._csv(job, change)

    def _jsonl(self, job, change):
        for chunk in self.store.stream_pages(job, change):
            yield "".join(dumps(page_view(p)) + "\n" for p in chunk).encode("utf-8")

    def _csv(self, job, change):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(URL_COLUMNS)
        yield buf.getvalue().encode("utf-8")
        for chunk in self.store.stream_pages(job, change):
            buf.seek(0)
            buf.truncate()
            for p in chunk:
                writer.writerow([csv_cell(v) for v in page_view(p).values()])
            yield buf.getvalue().encode("utf-8")


class JobSitemapsResource:
    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: uuid.UUID) -> None:
        job = self.store.job_row(job_id, scope(req))
        if job is None:
            raise not_found(f"No job with id {job_id}.")
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
        try:
            name = parse_site(domain, strict=True).name
        except DomainError as exc:
            raise ApiError(falcon.HTTP_400, "Invalid domain", f"{domain[:200]!r}: {exc.reason}") from None
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
