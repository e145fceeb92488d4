"""The OpenAPI 3.0 document of the API (GET /api/v1/openapi.json), built in code."""

from __future__ import annotations

from typing import Any

import falcon

from api.http import json_response
from pipelines.status import BatchStatus, Outcome

UUID = {"type": "string", "format": "uuid"}
TS = {"type": "string", "format": "date-time", "nullable": True}
STATUS = {"type": "string", "enum": ["pending", "running", "complete", "failed", "cancelled"]}


def _err(desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(desc: str, schema: dict[str, Any], code: str = "200") -> dict[str, Any]:
    return {code: {"description": desc, "content": {"application/json": {"schema": schema}}}}


def _path_uuid(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": UUID}


LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}}
CURSOR = {"name": "cursor", "in": "query", "schema": {"type": "string"},
          "description": "next_cursor of the previous page"}


OUTCOME = {"type": "string", "nullable": True, "enum": [o.value for o in Outcome] + [None],
           "description": "what happened, once the job is final (see pipelines/status.py): ok, warnings, "
                          "no_sitemap (complete); unreachable, refused, sitemaps_failed, interrupted, crawl_lost, "
                          "database, dispatch, error (failed); cancelled"}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema}


def _listing(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"total": {"type": "integer", "description": "rows matching the filters"},
                                             "next_cursor": {"type": "string", "nullable": True},
                                             key: {"type": "array", "items": item}}}


def build(max_batch: int = 10_000, max_pages_limit: int = 10_000_000) -> dict[str, Any]:
    obj = lambda props, req=(): {"type": "object", "properties": props, **({"required": list(req)} if req else {})}  # noqa: E731
    ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
    max_pages = {"type": "integer", "minimum": 1, "maximum": max_pages_limit}
    schemas = {
        "Error": obj({"title": {"type": "string"}, "description": {"type": "string"}}, ("title", "description")),
        "ScanRequest": {**obj({"base_url": {"type": "string", "example": "example.com"}, "max_pages": max_pages},
                              ("base_url",)), "additionalProperties": False},
        "ScanAccepted": obj({"job_id": UUID, "domain": {"type": "string"}, "status": STATUS,
                             "status_url": {"type": "string"}}),
        "BatchRequest": {**obj({"domains": {"type": "array", "maxItems": max_batch, "minItems": 1,
                                            "items": {"type": "string"}},
                                "max_pages": max_pages}, ("domains",)), "additionalProperties": False},
        "BatchAccepted": obj({"batch_id": UUID, "status": {"type": "string"}, "status_url": {"type": "string"},
                              "job_count": {"type": "integer"}, "duplicates": {"type": "integer"},
                              "rejected": {"type": "array", "items": obj({"input": {}, "error": {"type": "string"}})}}),
        "JobStatus": obj({
            "job_id": UUID, "domain": {"type": "string"}, "batch_id": {**UUID, "nullable": True}, "status": STATUS,
            "outcome": OUTCOME, "origin": {"type": "string", "nullable": True,
                                          "description": "scheme://host that answered"},
            "created_at": TS, "started_at": TS, "finished_at": TS, "error": {"type": "string", "nullable": True},
            "outcome": {"type": "string", "nullable": True, "description": "pipelines.status.Outcome once final"},
            "attempts": {"type": "integer", "description": "crawls that have carried the job"},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "result": obj({k: {"type": "integer"} for k in ("sitemaps_found", "sitemaps_failed", "urls_found",
                                                             "new_urls", "removed_urls", "bytes_downloaded")}),
            "metadata": {"type": "object", "nullable": True, "description": "home-page fields of the domain"},
            "scrapyd": obj({"node": {"type": "string", "nullable": True}, "jobid": {"type": "string", "nullable": True},
                            "log_url": {"type": "string", "nullable": True},
                            "log_expired": {"type": "boolean"}}),
            "links": {"type": "object"},
        }),
        "BatchStatus": obj({
            "batch_id": UUID, "status": {"type": "string", "enum": ["pending", "running", "complete", "cancelled"]},
            **{k: {"type": "integer"} for k in ("total_jobs", "pending_jobs", "running_jobs", "completed_jobs",
                                                 "failed_jobs", "cancelled_jobs", "urls_found")},
            "outcomes": {"type": "object", "additionalProperties": {"type": "integer"},
                         "description": "finished jobs per outcome"},
            "progress": {"type": "number"}, "created_at": TS, "started_at": TS, "finished_at": TS,
            "eta_seconds": {"type": "number", "nullable": True},
            "jobs": {"type": "array", "items": obj({"job_id": UUID, "domain": {"type": "string"}, "status": STATUS,
                                                    "outcome": OUTCOME,
                                                    "error": {"type": "string", "nullable": True}})},
            "next_cursor": {"type": "string", "nullable": True},
        }),
        "Page": obj({"url": {"type": "string"}, "lastmod": TS, "changefreq": {"type": "string", "nullable": True},
                     "priority": {"type": "number", "nullable": True}, "sitemap_url": {"type": "string", "nullable": True},
                     "images": {"nullable": True}, "videos": {"nullable": True}, "news": {"nullable": True},
                     "alternates": {"nullable": True}}),
        "UrlPage": obj({"job_id": UUID, "status": STATUS, "count": {"type": "integer"},
                        "urls": {"type": "array", "items": ref("Page")},
                        "next_cursor": {"type": "string", "nullable": True}}),
        "Sitemaps": obj({"job_id": UUID, "count": {"type": "integer"}, "sitemaps": {"type": "array", "items": obj({
            "url": {"type": "string"}, "type": {"type": "string", "nullable": True},
            "discovered_by": {"type": "string"}, "http_status": {"type": "integer", "nullable": True},
            "url_count": {"type": "integer"}, "error": {"type": "string", "nullable": True}})}}),
        "ScanRef": obj({"job_id": UUID, "status": STATUS, "started_at": TS, "finished_at": TS,
                        "urls_found": {"type": "integer"}}),
        "Changes": obj({"domain": {"type": "string"}, "from": ref("ScanRef"), "to": ref("ScanRef"),
                        "new_count": {"type": "integer"}, "removed_count": {"type": "integer"},
                        "new": {"type": "array", "items": ref("Page")},
                        "removed": {"type": "array", "items": ref("Page")},
                        "next_cursor": {"type": "string", "nullable": True}}),
        "Domain": obj({"domain": {"type": "string"}, "metadata": {"type": "object"},
                       "latest_scan": {"type": "object", "nullable": True}, "recent_jobs": {"type": "array"}}),
        "Health": obj({"status": {"type": "string"}, "database": {"type": "object"}, "scrapyd": {"type": "object"}}),
    }
    body = lambda name: {"required": True, "content": {"application/json": {"schema": ref(name)}}}  # noqa: E731
    e400, e404, e413, e422 = _err("bad request"), _err("not found"), _err("body too large"), _err("invalid request")
    e410 = _err("the scan's results were deleted by the retention setting")
    paths = {
        "/api/v1/scrapersky": {"post": {
            "summary": "Scan one domain", "operationId": "scan", "requestBody": body("ScanRequest"),
            "responses": {**_ok("accepted", ref("ScanAccepted"), "202"), "400": e400, "413": e413, "415": _err("not JSON"),
                          "422": e422}}},
        "/api/v1/status/{job_id}": {"get": {
            "summary": "A job's status, result and metadata", "operationId": "jobStatus",
            "parameters": [_path_uuid("job_id")],
            "responses": {**_ok("the job", ref("JobStatus")), "404": e404}}},
        "/api/v1/batch": {"post": {
            "summary": f"Scan up to {max_batch} domains", "operationId": "batch", "requestBody": body("BatchRequest"),
            "responses": {**_ok("accepted", ref("BatchAccepted"), "202"), "400": e400, "413": e413,
                          "415": _err("not JSON"), "422": e422}}},
        "/api/v1/batch/status/{batch_id}": {"get": {
            "summary": "A batch's counts, progress, ETA and (paged) jobs", "operationId": "batchStatus",
            "parameters": [_path_uuid("batch_id"), LIMIT, CURSOR,
                           {"name": "status", "in": "query", "schema": STATUS}],
            "responses": {**_ok("the batch", ref("BatchStatus")), "400": e400, "404": e404}}},
        "/api/v1/jobs/{job_id}/urls": {"get": {
            "summary": "The page URLs the job found (json paged; jsonl/csv streamed)", "operationId": "jobUrls",
            "description": "Exactly the URLs this job saw (its count is urls_found in /status), unchanged by "
                           "later scans. change=new: URLs the domain's previous complete scan (the latest "
                           "complete scan finished before this one started) did not see; change=removed: URLs "
                           "that scan saw and this one did not, with that scan's attributes. 410 when the "
                           "retention setting (SCRAPERSKY_KEEP_SCANS) deleted the job's (or that scan's) URLs.",
            "parameters": [_path_uuid("job_id"), LIMIT, CURSOR,
                           {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "jsonl", "csv"]}},
                           {"name": "change", "in": "query", "schema": {"type": "string", "enum": ["all", "new", "removed"]}}],
            "responses": {"200": {"description": "the URLs", "content": {
                "application/json": {"schema": ref("UrlPage")},
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}}}}, "400": e400, "404": e404, "410": e410}}},
        "/api/v1/batches/{batch_id}/urls": {"get": {
            "summary": "Every URL of every job of the batch (csv or jsonl, streamed)", "operationId": "batchUrls",
            "description": "Jobs in domain order, each job's URLs in URL order; each row is the jobUrls row "
                           "after `domain` and `job_id`. Gzip-compressed with Accept-Encoding: gzip.",
            "parameters": [_path_uuid("batch_id"),
                           {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "jsonl"]}}],
            "responses": {"200": {"description": "the URLs", "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}}}}, "400": e400, "404": e404}}},
        "/api/v1/jobs/{job_id}/sitemaps": {"get": {
            "summary": "The sitemap files the job saw", "operationId": "jobSitemaps", "parameters": [_path_uuid("job_id")],
            "responses": {**_ok("the sitemaps", ref("Sitemaps")), "404": e404, "410": e410}}},
        "/api/v1/domains/{domain}/changes": {"get": {
            "summary": "URLs new in scan `to` and removed since scan `from` (any two scans of the domain)",
            "operationId": "domainChanges",
            "description": "Both lists in URL order with their total counts; `limit` applies to each list, "
                           "`cursor` (next_cursor) pages both together. 400: missing or malformed parameter, "
                           "or a job of another domain; 404: unknown domain or job; 410: a scan's URLs were "
                           "deleted by the retention setting.",
            "parameters": [{"name": "domain", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "from", "in": "query", "required": True, "schema": UUID},
                           {"name": "to", "in": "query", "required": True, "schema": UUID}, LIMIT, CURSOR],
            "responses": {**_ok("the changes", ref("Changes")), "400": e400, "404": e404, "410": e410}}},
        "/api/v1/domains/{domain}": {"get": {
            "summary": "A domain's summary, metadata and changes since the scan before", "operationId": "domain",
            "parameters": [{"name": "domain", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {**_ok("the domain", ref("Domain")), "400": e400, "404": e404}}},
        "/api/v1/jobs/{job_id}/cancel": {"post": {
            "summary": "Cancel a pending or running job", "operationId": "cancelJob", "parameters": [_path_uuid("job_id")],
            "responses": {**_ok("cancelled", {"type": "object"}), "404": e404, "409": _err("already finished")}}},
        "/api/v1/batch/{batch_id}/cancel": {"post": {
            "summary": "Cancel a batch's pending and running jobs", "operationId": "cancelBatch",
            "parameters": [_path_uuid("batch_id")],
            "responses": {**_ok("cancelled", {"type": "object"}), "404": e404, "409": _err("already finished")}}},
        "/api/v1/batches": {"get": {
            "summary": "Batches, newest first", "operationId": "listBatches",
            "parameters": [LIMIT, CURSOR, _query("status", {"type": "string", "enum": [s.value for s in BatchStatus]}),
                           _query("created_after", {"type": "string", "format": "date-time"})],
            "responses": {**_ok("a page of batches", _listing("batches", obj({
                "batch_id": UUID, "status": {"type": "string"}, "created_at": TS, "finished_at": TS,
                "total_jobs": {"type": "integer"}, "links": {"type": "object"}}))), "400": e400}}},
        "/api/v1/jobs": {"get": {
            "summary": "Jobs, newest first", "operationId": "listJobs",
            "parameters": [LIMIT, CURSOR, _query("domain", {"type": "string"}), _query("status", STATUS),
                           _query("outcome", OUTCOME), _query("batch_id", UUID)],
            "responses": {**_ok("a page of jobs", _listing("jobs", obj({
                "job_id": UUID, "domain": {"type": "string"}, "batch_id": {**UUID, "nullable": True},
                "status": STATUS, "outcome": OUTCOME, "error": {"type": "string", "nullable": True},
                "urls_found": {"type": "integer"}, "created_at": TS, "finished_at": TS,
                "links": {"type": "object"}}))), "400": e400}}},
        "/api/v1/domains": {"get": {
            "summary": "Scanned domains", "operationId": "listDomains",
            "parameters": [LIMIT, CURSOR, _query("q", {"type": "string", "description": "part of the name"}),
                           _query("has_sitemap", {"type": "boolean"}),
                           _query("sort", {"type": "string", "enum": ["last_scan", "url_count", "name"]})],
            "responses": {**_ok("a page of domains", _listing("domains", obj({
                "domain": {"type": "string"}, "title": {"type": "string", "nullable": True},
                "url_count": {"type": "integer"}, "sitemap_count": {"type": "integer"}, "last_scan_at": TS,
                "last_job_id": {**UUID, "nullable": True}, "links": {"type": "object"}}))), "400": e400}}},
        "/health": {"get": {"summary": "Database and scrapyd reachability", "operationId": "health",
                            "responses": {**_ok("all up", ref("Health")), "503": {"description": "a dependency is down",
                                          "content": {"application/json": {"schema": ref("Health")}}}}}},
        "/health/database": {"get": {"summary": "Database reachability", "operationId": "healthDatabase",
                                     "responses": {**_ok("up", ref("Health")), "503": {"description": "down"}}}},
        "/api/v1/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                         "responses": _ok("OpenAPI 3 document", {"type": "object"})}},
    }
    _secure(paths, schemas)
    return {"openapi": "3.0.3",
            "info": {"title": "ScraperSky API", "version": "1.0.0",
                     "description": "Sitemap crawling as a service: scan domains, follow batches, download URLs."},
            "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "An API key made with `python -m api keys create NAME`"}}}}


PUBLIC = {"/health", "/health/database", "/api/v1/openapi.json"}


def _secure(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Every /api/v1 operation but this document needs the bearer key: 401 without it, 429 over the
    key's request rate (and, for new work, its quotas)."""
    schemas["Error"]["properties"].update({
        "retry_after": {"type": "integer", "description": "429: seconds to wait (as the Retry-After header)"},
        "quota": {"type": "string", "enum": ["domains_per_day", "concurrent_batches"]},
        "limit": {"type": "integer"}})
    unauthorized = {**_err("missing, unknown or revoked API key"),
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}}
    for path, ops in paths.items():
        if path in PUBLIC:
            for op in ops.values():
                op["security"] = []
            continue
        for method, op in ops.items():
            op["security"] = [{"bearerAuth": []}]
            creates = method == "post" and path in ("/api/v1/scrapersky", "/api/v1/batch")
            op["responses"]["401"] = unauthorized
            op["responses"]["429"] = {
                **_err("over the quota of domains per day or concurrent batches, or the key's request rate"
                       if creates else "over the key's request rate"),
                "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}}
            if "{" in path:
                op["responses"].setdefault("404", _err("unknown id, or another tenant's"))


class OpenApiResource:
    public = True  # no API key needed (api/auth.py)

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, self.document)
