"""The API's contract: one OpenAPI 3.1 document (GET /api/v1/openapi.json) that is also what validates
every request (`ContractMiddleware`), so the two cannot drift.

- `build()` writes the document in code: request bodies and query parameters, every response body
  (objects are closed: `additionalProperties: false`, every field `required` unless marked optional),
  every status code each operation can answer, `Retry-After` on 429 and 503, the bearer scheme.
- `Contract` compiles, per operation, a validator for its query string and one for its JSON body from
  *that very document* (JSON Schema references into it), with the `jsonschema` library (Draft 2020-12,
  the dialect of OpenAPI 3.1, so no schema is translated). `ContractMiddleware` runs it after the key
  check: unknown, repeated or invalid query parameters -> 400; a body that is not JSON -> 400/413/415
  (`api.http.read_json_object`); a body that breaks its schema -> 422 (an array over its `maxItems`,
  e.g. more domains than a batch takes -> 413). Resources read the checked values from
  `req.context.query` (defaults filled in) and `req.context.body`.
- What a schema cannot say stays in code: whether a domain names a public site
  (`api.http.site_or_400`, 400; such operations carry `x-domain-input: true`), cursors (signed,
  `api.http.decode_cursor`, 400), ids that exist (404).

Why `jsonschema` and not spectree/pydantic: the document was already hand-written JSON Schema and the
API's errors are its own JSON {title, description} with 400/413/422 rules; spectree would put pydantic
models and its own error bodies between the two, and Falcon's `jsonschema` media validators check
bodies only (not query strings) against schemas kept beside the resources, not in the document.

Extending it: a new body field is one line in its request schema (e.g. `callback_url` in `work_fields()`,
shared by the scan and batch bodies); a new export format is one entry in `EXPORT_MEDIA`; a new
endpoint is one `paths` entry (plus its schemas) and its route: validation follows by itself.
"""

from __future__ import annotations

import re
from typing import Any

import falcon
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from api.http import ApiError, invalid, json_response, read_json_object
from api.resources.lists import SORTS
from pipelines.status import BatchStatus, DeliveryStatus, DiscoveredBy, JobStatus, Outcome, SitemapType

API = "/api/v1"
DOC_URI = "urn:scrapersky:openapi"  # the document's URI for the validators' references into it
RETRY_AFTER = {"description": "seconds to wait before retrying", "required": True,
               "schema": {"type": "integer", "minimum": 1}}
# Export formats of /jobs/{id}/urls and /batches/{id}/urls and their media types (one line per format).
EXPORT_MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


# ------------------------------------------------------------------------------------------ schema helpers
def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def obj(props: dict[str, Any], optional: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """A closed object: every property required unless named in `optional`, no others allowed."""
    return {"type": "object", "properties": props, "required": [k for k in props if k not in optional],
            "additionalProperties": False, **extra}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def enum(values) -> dict[str, Any]:
    return {"type": "string", "enum": [getattr(v, "value", v) for v in values]}


STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
COUNT = {"type": "integer", "minimum": 0}
UUID = {"type": "string", "format": "uuid"}
TS = {"type": "string", "format": "date-time"}
N_STR, N_INT, N_NUM, N_TS, N_UUID = (nullable(s) for s in (STR, INT, NUM, TS, UUID))
JOB_STATUS = enum(JobStatus)
OUTCOME = {**nullable(enum(Outcome)),
           "description": "what happened, once the job is final (pipelines/status.py): ok, warnings, no_sitemap "
                          "(complete); unreachable, refused, sitemaps_failed, interrupted, crawl_lost, database, "
                          "dispatch, error (failed); cancelled"}
PATH = lambda link: {"type": "string", "description": link}  # noqa: E731 - a link to another endpoint


def query(name: str, schema: dict[str, Any], description: str | None = None, *, required: bool = False) -> dict:
    p = {"name": name, "in": "query", "schema": schema, **({"description": description} if description else {})}
    return {**p, "required": True} if required else p


def limit(default: int, maximum: int) -> dict[str, Any]:
    return query("limit", {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
                 "rows per page")


CURSOR = query("cursor", {"type": "string", "maxLength": 4096}, "next_cursor of the previous page")


def path_param(name: str, schema: dict[str, Any] = UUID) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


DOMAIN_PARAM = path_param("domain", {"type": "string", "minLength": 1, "description": "a domain name, any spelling"})


# ------------------------------------------------------------------------------------------ the document
ERRORS = {
    400: "bad request: malformed JSON, an unknown, repeated or invalid query parameter or cursor, or a domain "
         "that names no public site (pipelines.domains.parse_site)",
    401: "missing, unknown or revoked API key",
    404: "unknown id or domain, or another tenant's",
    409: "already finished",
    410: "the scan's URLs and sitemaps were deleted by the retention setting (SCRAPERSKY_KEEP_SCANS)",
    411: "a chunked body the server cannot read (send a Content-Length)",
    413: "body over API_MAX_BODY_BYTES, or more domains than a batch takes",
    415: "the body is not application/json, or not UTF-8",
    422: "the body is JSON but not a valid request (its schema)",
    429: "over the key's request rate",
    503: "the database cannot be reached",
}


def _error(code: int, description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description or ERRORS[code],
                           "content": {"application/json": {"schema": ref("Error")}}}
    if code in (429, 503):
        out["headers"] = {"Retry-After": RETRY_AFTER}
    if code == 401:
        out["headers"] = {"WWW-Authenticate": {"required": True, "schema": STR,
                                               "description": 'Bearer realm="scrapersky"[, error=...]'}}
    return out


def _ok(description: str, schema: dict[str, Any], code: int = 200, headers: dict | None = None) -> dict:
    return {str(code): {"description": description, "content": {"application/json": {"schema": schema}},
                        **({"headers": headers} if headers else {})}}


def _export(description: str) -> dict[str, Any]:
    return {"description": description,
            "headers": {"Content-Disposition": {"schema": STR, "description": "attachment; filename=..."},
                        "Content-Encoding": {"schema": {"type": "string", "enum": ["gzip"]},
                                             "description": "csv and jsonl with Accept-Encoding: gzip (never parquet)"}},
            "content": {media: {"schema": {"type": "string"}} for media in EXPORT_MEDIA.values()}}


def work_fields(max_pages_limit: int) -> dict[str, Any]:
    """The optional fields of both the scan and the batch body (and the options their jobs keep)."""
    return {"max_pages": {"type": "integer", "minimum": 1, "maximum": max_pages_limit,
                          "description": "page URLs to collect at most"},
            "callback_url": {"type": "string", "minLength": 1, "maxLength": 2048,
                             "description": "an http(s) URL on a public host: POSTed a signed JSON summary "
                                            "(WebhookPayload) once the work is final; 400 when not allowed "
                                            "(api/webhooks.py)"}}


def schemas(max_batch: int, max_pages_limit: int) -> dict[str, Any]:
    work = work_fields(max_pages_limit)
    strings = {"type": "object", "additionalProperties": STR}
    return {
        "Error": obj({
            "title": STR, "description": STR,
            "retry_after": {"type": "integer", "minimum": 1, "description": "429, 503: seconds, as Retry-After"},
            "quota": {"type": "string", "enum": ["domains_per_day", "concurrent_batches"],
                      "description": "429: the tenant quota that was reached"},
            "limit": {"type": "integer", "description": "429: that quota's limit"},
            "status": {**JOB_STATUS, "description": "409: the job's status"},
            "rejected": {"type": "array", "items": ref("Rejected"),
                         "description": "422 from a batch: why each domain was refused"},
        }, optional=("retry_after", "quota", "limit", "status", "rejected")),
        "Rejected": obj({"input": {"description": "the item as given (a string cut to 300 characters, or the "
                                                  "JSON value, or the name of its type)"},
                         "error": STR}),
        "ScanRequest": obj({"base_url": {"type": "string", "description": "a domain name or an http(s) URL",
                                         "examples": ["example.com"]}, **work},
                           optional=tuple(work), examples=[{"base_url": "example.com", "max_pages": 1000}]),
        "ScanAccepted": obj({"job_id": UUID, "domain": STR, "status": {"type": "string", "enum": ["pending"]},
                             "status_url": PATH("GET: the job's status"),
                             "callback_url": {**STR, "description": "the webhook URL, when one was given"}},
                            optional=("callback_url",)),
        "BatchRequest": obj({"domains": {"type": "array", "minItems": 1, "maxItems": max_batch,
                                         "items": {"description": "a domain name or an http(s) URL; anything else "
                                                                  "is listed in `rejected`"}},
                             **work}, optional=tuple(work),
                            examples=[{"domains": ["example.com", "https://www.example.org/about"]}]),
        "BatchAccepted": obj({"batch_id": UUID, "status": {"type": "string", "enum": ["pending"]},
                              "status_url": PATH("GET: the batch's status"), "job_count": COUNT,
                              "duplicates": {**COUNT, "description": "items naming a site given before"},
                              "rejected": {"type": "array", "items": ref("Rejected")},
                              "callback_url": {**STR, "description": "the webhook URL, when one was given"}},
                             optional=("callback_url",)),
        "JobOptions": obj({"max_pages": N_INT, "target": {"type": "string", "description": "the URL the scan starts at"},
                           "origins": {"type": "array", "items": STR,
                                       "description": "origins tried (scans started from the command line)"}},
                          optional=("max_pages", "target", "origins"), description="how the job was asked for"),
        "BatchOptions": obj({"max_pages": INT, "rejected": COUNT, "duplicates": COUNT},
                            optional=("max_pages", "rejected", "duplicates")),
        "HomePage": obj({"home_url": N_STR, "title": N_STR, "description": N_STR, "language": N_STR,
                         "favicon": N_STR, "is_wordpress": nullable(BOOL), "wordpress_version": N_STR,
                         "generator": N_STR, "emails": nullable({"type": "array", "items": STR}),
                         "phones": nullable({"type": "array", "items": STR}), "social_links": nullable(strings)},
                        description="fields read from the domain's home page"),
        "JobStatus": obj({
            "job_id": UUID, "domain": STR, "batch_id": N_UUID, "status": JOB_STATUS, "outcome": OUTCOME,
            "origin": {**N_STR, "description": "scheme://host that answered"},
            "created_at": TS, "started_at": N_TS, "finished_at": N_TS, "error": N_STR,
            "attempts": {**COUNT, "description": "crawls that carried the job"},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "options": ref("JobOptions"),
            "result": obj({**{k: COUNT for k in ("sitemaps_found", "sitemaps_failed", "urls_found", "new_urls",
                                                  "removed_urls", "bytes_downloaded")},
                           "duration_seconds": N_NUM}),
            "metadata": {"anyOf": [ref("HomePage"), {"type": "null"}]},
            "scrapyd": obj({"node": N_STR, "jobid": N_STR, "log_url": N_STR, "log_expired": BOOL}),
            "links": obj({"status": PATH("GET"), "urls": PATH("GET"), "sitemaps": PATH("GET"),
                          "domain": PATH("GET"), "batch": PATH("GET, when the job is part of a batch")},
                         optional=("batch",)),
            "webhook": {**nullable(ref("Delivery")), "description": "a single scan's webhook, when it was "
                                                                    "given callback_url (a batch's is in its status)"},
        }),
        "BatchStatus": obj({
            "batch_id": UUID, "status": enum(BatchStatus),
            **{k: COUNT for k in ("total_jobs", "pending_jobs", "running_jobs", "completed_jobs", "failed_jobs",
                                  "cancelled_jobs", "urls_found")},
            "outcomes": {"type": "object", "propertyNames": enum(Outcome), "additionalProperties": COUNT,
                         "description": "finished jobs per outcome"},
            "progress": {"type": "number", "minimum": 0, "maximum": 1}, "created_at": TS, "started_at": N_TS,
            "finished_at": N_TS, "eta_seconds": N_NUM, "options": ref("BatchOptions"),
            "jobs": {"type": "array", "items": obj({
                "job_id": UUID, "domain": STR, "status": JOB_STATUS, "outcome": OUTCOME, "error": N_STR,
                "urls_found": COUNT, "started_at": N_TS, "finished_at": N_TS, "scrapyd_jobid": N_STR,
                "status_url": PATH("GET")})},
            "next_cursor": N_STR,
            "webhook": {**nullable(ref("Delivery")), "description": "the webhook, when callback_url was given"},
        }),
        "Delivery": obj({
            "delivery_id": UUID, "callback_url": STR, "status": enum(DeliveryStatus),
            "attempts": COUNT, "last_status_code": N_INT, "last_error": N_STR, "created_at": TS,
            "ready_at": {**N_TS, "description": "when the work became final and the body was fixed"},
            "first_attempt_at": N_TS, "last_attempt_at": N_TS, "next_attempt_at": N_TS, "delivered_at": N_TS,
            "payload": {**nullable(ref("WebhookPayload")), "description": "the body sent (null until final)"},
        }, optional=("payload",), description="a webhook delivery (api/webhooks.py)"),
        "WebhookPayload": obj({
            "event": {"type": "string", "enum": ["batch.finished", "scan.finished"]}, "delivery_id": UUID,
            "batch_id": UUID, "job_id": UUID, "domain": STR, "status": STR, "outcome": OUTCOME, "error": N_STR,
            "total_jobs": COUNT, "counts": {"type": "object", "additionalProperties": COUNT},
            "outcomes": {"type": "object", "additionalProperties": COUNT}, "urls_found": COUNT,
            "created_at": TS, "started_at": N_TS, "finished_at": N_TS,
            "links": {"type": "object", "additionalProperties": STR},
        }, optional=("batch_id", "job_id", "domain", "outcome", "error"),
            description="the signed JSON body POSTed to callback_url (X-ScraperSky-Signature: sha256=HMAC-SHA256 "
                        "of the body with the key's webhook secret)"),
        "Deliveries": obj({"batch_id": UUID, "job_id": UUID,
                           "deliveries": {"type": "array", "items": ref("Delivery")}},
                          optional=("batch_id", "job_id")),
        "Page": obj({
            "url": STR, "lastmod": N_TS, "changefreq": N_STR, "priority": N_NUM, "sitemap_url": N_STR,
            "images": nullable({"type": "array", "items": strings}),
            "videos": nullable({"type": "array", "items": strings}),
            "news": nullable(strings),
            "alternates": nullable({"type": "array", "items": obj({"href": STR, "hreflang": STR},
                                                                  optional=("hreflang",))}),
        }, description="one page URL, as every export writes it (pipelines/rows.py)"),
        "UrlPage": obj({"job_id": UUID, "domain": STR, "status": JOB_STATUS,
                        "change": {"type": "string", "enum": ["all", "new", "removed"]}, "count": COUNT,
                        "urls": {"type": "array", "items": ref("Page")}, "next_cursor": N_STR}),
        "Sitemaps": obj({"job_id": UUID, "domain": STR, "status": JOB_STATUS, "count": COUNT,
                         "sitemaps": {"type": "array", "items": obj({
                             "url": STR, "type": nullable(enum(SitemapType)), "discovered_by": enum(DiscoveredBy),
                             "parent_url": N_STR, "http_status": N_INT, "gzipped": BOOL, "size_bytes": N_INT,
                             "url_count": COUNT, "lastmod_share": N_NUM, "priority_share": N_NUM,
                             "changefreq_share": N_NUM, "generator": N_STR, "last_modified": N_STR,
                             "error": N_STR, "fetched_at": N_TS})}}),
        "ScanRef": obj({"job_id": UUID, "status": JOB_STATUS, "started_at": N_TS, "finished_at": N_TS,
                        "urls_found": COUNT}),
        "Changes": obj({"domain": STR, "from": ref("ScanRef"), "to": ref("ScanRef"),
                        "new_count": COUNT, "removed_count": COUNT,
                        "new": {"type": "array", "items": ref("Page")},
                        "removed": {"type": "array", "items": ref("Page")}, "next_cursor": N_STR}),
        "Domain": obj({
            "domain": STR, "metadata": ref("HomePage"), "first_scan_at": N_TS, "last_scan_at": N_TS,
            "url_count": COUNT, "sitemap_count": COUNT,
            "latest_scan": {"anyOf": [{"type": "null"}, obj({
                "job_id": UUID, "status": JOB_STATUS, "finished_at": N_TS, "urls_found": COUNT,
                "sitemaps_found": COUNT, "new_urls": COUNT, "removed_urls": COUNT, "previous_job_id": N_UUID,
                "links": obj({"status": PATH("GET"), "urls": PATH("GET"), "new_urls": PATH("GET"),
                              "removed_urls": PATH("GET"), "sitemaps": PATH("GET"),
                              "changes": nullable(PATH("GET, when there is a scan before"))}),
            })]},
            "recent_jobs": {"type": "array", "items": obj({"job_id": UUID, "status": JOB_STATUS,
                                                           "created_at": TS, "finished_at": N_TS,
                                                           "urls_found": COUNT, "error": N_STR})},
        }),
        "JobCancelled": obj({"job_id": UUID, "status": JOB_STATUS, "scrapyd_job_cancelled": BOOL}),
        "BatchCancelled": obj({"batch_id": UUID, "status": {"type": "string", "enum": ["cancelled"]},
                               "jobs_cancelled": COUNT, "scrapyd_jobs_cancelled": COUNT}),
        "BatchList": _listing("batches", {"batch_id": UUID, "status": enum(BatchStatus), "created_at": TS,
                                          "finished_at": N_TS, "total_jobs": COUNT,
                                          "links": obj({"status": PATH("GET")})}),
        "JobList": _listing("jobs", {"job_id": UUID, "domain": STR, "batch_id": N_UUID, "status": JOB_STATUS,
                                     "outcome": OUTCOME, "error": N_STR, "urls_found": COUNT, "created_at": TS,
                                     "finished_at": N_TS, "links": obj({"status": PATH("GET"), "urls": PATH("GET")})}),
        "DomainList": _listing("domains", {"domain": STR, "title": N_STR, "url_count": COUNT, "sitemap_count": COUNT,
                                           "last_scan_at": N_TS, "last_job_id": N_UUID,
                                           "links": obj({"domain": PATH("GET")})},
                               sort=enum(SORTS)),
        "DatabaseCheck": obj({"ok": BOOL, "error": {"type": "string", "description": "when not ok"}},
                             optional=("error",)),
        "Health": obj({
            "status": {"type": "string", "enum": ["ok", "unavailable"]}, "database": ref("DatabaseCheck"),
            "scrapyd": obj({"ok": {"type": "boolean", "description": "at least one node answers"},
                            "nodes": {"type": "array", "items": obj({
                                "url": STR, "ok": BOOL, "pending": N_INT, "running": N_INT, "finished": N_INT,
                                "error": STR}, optional=("pending", "running", "finished", "error"))}}),
            **UNAVAILABLE,
        }, optional=tuple(UNAVAILABLE)),
        "DatabaseHealth": obj({"status": {"type": "string", "enum": ["ok", "unavailable"]},
                               "database": ref("DatabaseCheck"), **UNAVAILABLE}, optional=tuple(UNAVAILABLE)),
    }


UNAVAILABLE = {"title": STR, "description": STR,
               "retry_after": {"type": "integer", "minimum": 1, "description": "as Retry-After"}}  # when down


def _listing(key: str, item: dict[str, Any], **more: dict[str, Any]) -> dict[str, Any]:
    return obj({"total": {**COUNT, "description": "rows matching the filters"}, "next_cursor": N_STR, **more,
                key: {"type": "array", "items": obj(item)}})


def build(max_batch: int = 10_000, max_pages_limit: int = 10_000_000) -> dict[str, Any]:
    body = lambda name: {"required": True, "content": {"application/json": {"schema": ref(name)}}}  # noqa: E731
    domain_400 = "400: not a valid domain name (pipelines.domains.parse_site)."
    paths: dict[str, dict[str, Any]] = {
        f"{API}/scrapersky": {"post": {
            "summary": "Scan one domain", "operationId": "scan", "requestBody": body("ScanRequest"),
            "description": "The job is stored before the 202. " + domain_400 + " 429 also when over the tenant's "
                           "quota of domains per day (`quota`, `limit`).",
            "x-domain-input": True,
            "responses": {**_ok("accepted", ref("ScanAccepted"), 202, {"Location": {"schema": STR, "required": True}}),
                          **_errors(411, 413, 415, 422)}}},
        f"{API}/batch": {"post": {
            "summary": f"Scan up to {max_batch} domains", "operationId": "batch", "requestBody": body("BatchRequest"),
            "description": "Invalid items are listed in `rejected`; none valid: 422 with `rejected`. 429 also when "
                           "over the tenant's quotas (domains per day, concurrent batches).",
            "x-domain-input": True,
            "responses": {**_ok("accepted", ref("BatchAccepted"), 202, {"Location": {"schema": STR, "required": True}}),
                          **_errors(411, 413, 415),
                          "422": _error(422, "not a valid request, or no valid domain (`rejected` says why)")}}},
        f"{API}/status/{{job_id}}": {"get": {
            "summary": "A job's status, result and metadata", "operationId": "jobStatus",
            "parameters": [path_param("job_id")], "responses": _ok("the job", ref("JobStatus"))}},
        f"{API}/batch/status/{{batch_id}}": {"get": {
            "summary": "A batch's counts, progress, ETA and (paged) jobs", "operationId": "batchStatus",
            "parameters": [path_param("batch_id"), limit(100, 1000), CURSOR,
                           query("status", JOB_STATUS, "only the jobs with this status")],
            "responses": _ok("the batch", ref("BatchStatus"))}},
        f"{API}/batch/{{batch_id}}/cancel": {"post": {
            "summary": "Cancel a batch's pending and running jobs", "operationId": "cancelBatch",
            "parameters": [path_param("batch_id")],
            "responses": {**_ok("cancelled", ref("BatchCancelled")), **_errors(409)}}},
        f"{API}/jobs/{{job_id}}/urls": {"get": {
            "summary": "The page URLs the job found (json paged; other formats streamed)", "operationId": "jobUrls",
            "description": "Exactly the URLs this job saw (its count is urls_found in /status), unchanged by "
                           "later scans. change=new: URLs the domain's previous complete scan (the latest "
                           "complete scan finished before this one started) did not see; change=removed: URLs "
                           "that scan saw and this one did not, with that scan's attributes. `limit` and `cursor` "
                           "page the json format. csv and jsonl are gzip-compressed with Accept-Encoding: gzip "
                           "and carry the job's status in X-Job-Status.",
            "parameters": [path_param("job_id"), limit(1000, 10_000), CURSOR,
                           query("format", {"type": "string", "enum": ["json", *EXPORT_MEDIA], "default": "json"}),
                           query("change", {"type": "string", "enum": ["all", "new", "removed"], "default": "all"})],
            "responses": {"200": {**_export("the URLs"), "content": {
                "application/json": {"schema": ref("UrlPage")}, **_export("")["content"]},
                "headers": {**_export("")["headers"], "X-Job-Status": {
                    "schema": JOB_STATUS, "description": "streamed formats: the job's status"}}},
                **_errors(410)}}},
        f"{API}/jobs/{{job_id}}/sitemaps": {"get": {
            "summary": "The sitemap files the job saw", "operationId": "jobSitemaps",
            "parameters": [path_param("job_id")],
            "responses": {**_ok("the sitemaps", ref("Sitemaps")), **_errors(410)}}},
        f"{API}/jobs/{{job_id}}/cancel": {"post": {
            "summary": "Cancel a pending or running job", "operationId": "cancelJob",
            "parameters": [path_param("job_id")],
            "responses": {**_ok("cancelled", ref("JobCancelled")),
                          "409": _error(409, "the job is already finished (`status` says how)")}}},
        f"{API}/batches/{{batch_id}}/urls": {"get": {
            "summary": "Every URL of every job of the batch (streamed)", "operationId": "batchUrls",
            "description": "Jobs in domain order, each job's URLs in URL order; each row is the jobUrls row "
                           "after `domain` and `job_id`. csv and jsonl are gzip-compressed with Accept-Encoding: gzip; parquet "
                           "(pyarrow, row groups streamed) is not.",
            "parameters": [path_param("batch_id"),
                           query("format", {"type": "string", "enum": list(EXPORT_MEDIA), "default": "csv"})],
            "responses": {"200": _export("the URLs")}}},
        f"{API}/batches/{{batch_id}}/deliveries": {"get": {
            "summary": "The batch's webhook deliveries, with the body sent", "operationId": "batchDeliveries",
            "parameters": [path_param("batch_id")], "responses": _ok("the deliveries", ref("Deliveries"))}},
        f"{API}/jobs/{{job_id}}/deliveries": {"get": {
            "summary": "A single scan's webhook deliveries, with the body sent", "operationId": "jobDeliveries",
            "parameters": [path_param("job_id")], "responses": _ok("the deliveries", ref("Deliveries"))}},
        f"{API}/domains/{{domain}}": {"get": {
            "summary": "A domain's summary, metadata and changes since the scan before", "operationId": "domain",
            "description": domain_400, "x-domain-input": True,
            "parameters": [DOMAIN_PARAM], "responses": _ok("the domain", ref("Domain"))}},
        f"{API}/domains/{{domain}}/changes": {"get": {
            "summary": "URLs new in scan `to` and removed since scan `from` (any two scans of the domain)",
            "operationId": "domainChanges", "x-domain-input": True,
            "description": "Both lists in URL order with their total counts; `limit` applies to each list, "
                           "`cursor` (next_cursor) pages both together. 400 also for a job of another domain; "
                           "404: unknown domain or job. " + domain_400,
            "parameters": [DOMAIN_PARAM, query("from", UUID, "a job of the domain", required=True),
                           query("to", UUID, "a job of the domain", required=True), limit(1000, 10_000), CURSOR],
            "responses": {**_ok("the changes", ref("Changes")), **_errors(410)}}},
        f"{API}/batches": {"get": {
            "summary": "Batches, newest first", "operationId": "listBatches",
            "parameters": [limit(50, 500), CURSOR, query("status", enum(BatchStatus)),
                           query("created_after", TS, "ISO 8601, e.g. 2026-01-31T00:00:00Z")],
            "responses": _ok("a page of batches", ref("BatchList"))}},
        f"{API}/jobs": {"get": {
            "summary": "Jobs, newest first", "operationId": "listJobs", "x-domain-input": True,
            "description": "`domain` in any spelling of the site. " + domain_400,
            "parameters": [limit(50, 1000), CURSOR, query("domain", {"type": "string", "maxLength": 2048}),
                           query("status", JOB_STATUS), query("outcome", enum(Outcome)), query("batch_id", UUID)],
            "responses": _ok("a page of jobs", ref("JobList"))}},
        f"{API}/domains": {"get": {
            "summary": "Scanned domains", "operationId": "listDomains",
            "parameters": [limit(50, 1000), CURSOR,
                           query("q", {"type": "string", "maxLength": 253}, "part of the name"),
                           query("has_sitemap", BOOL),
                           query("sort", {**enum(SORTS), "default": "last_scan"})],
            "responses": _ok("a page of domains", ref("DomainList"))}},
        "/health": {"get": {
            "summary": "Database and scrapyd reachability", "operationId": "health",
            "responses": {**_ok("all up", ref("Health")), "503": {
                "description": "the database is down or no scrapyd node answers",
                "headers": {"Retry-After": RETRY_AFTER},
                "content": {"application/json": {"schema": ref("Health")}}}}}},
        "/health/database": {"get": {
            "summary": "Database reachability", "operationId": "healthDatabase",
            "responses": {**_ok("up", ref("DatabaseHealth")), "503": {
                "description": "the database is down", "headers": {"Retry-After": RETRY_AFTER},
                "content": {"application/json": {"schema": ref("DatabaseHealth")}}}}}},
        f"{API}/openapi.json": {"get": {
            "summary": "This document", "operationId": "openapi",
            "responses": _ok("the OpenAPI 3.1 document", {"type": "object"})}},
    }
    for path, ops in paths.items():
        for op in ops.values():
            _complete(path, op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ScraperSky API", "version": "1.0.0",
                 "description": "Sitemap crawling as a service: scan domains, follow batches, download URLs. "
                                "Every error is JSON {title, description}. Interactive page: /docs."},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {"schemas": schemas(max_batch, max_pages_limit), "securitySchemes": {"bearerAuth": {
            "type": "http", "scheme": "bearer",
            "description": "An API key made with `python -m api keys create NAME`"}}},
    }


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _error(c) for c in codes}


PUBLIC = {"/health", "/health/database", f"{API}/openapi.json"}


def _complete(path: str, op: dict[str, Any]) -> None:
    """The responses every operation shares: 400 (a query parameter, a body or a domain), and for the
    key-protected ones 401, 429 and 503 (the key is looked up in the database); 404 with a path id."""
    responses = op["responses"]
    responses.setdefault("400", _error(400))
    if path in PUBLIC:
        op["security"] = []
    else:
        op["security"] = [{"bearerAuth": []}]
        responses["401"] = _error(401)
        responses.setdefault("429", _error(429))
        responses["503"] = _error(503)
    if "{" in path:
        responses.setdefault("404", _error(404))
    op["responses"] = dict(sorted(responses.items()))


# ------------------------------------------------------------------------------------------ validation
_CONVERTER = re.compile(r"\{(\w+):[^}]*\}")
_INT = re.compile(r"[+-]?[0-9]{1,18}")
_TRUE, _FALSE = {"true", "t", "yes", "y", "1", "on"}, {"false", "f", "no", "n", "0", "off"}


def _pointer(*parts: str) -> str:
    return "/".join(["", *(p.replace("~", "~0").replace("/", "~1") for p in parts)])


class Operation:
    """One operation's request rules, compiled from the document."""

    def __init__(self, contract: "Contract", path: str, method: str, op: dict[str, Any]) -> None:
        where = _pointer("paths", path, method)
        self.params: dict[str, dict[str, Any]] = {}
        props, required = {}, []
        for i, p in enumerate(op.get("parameters", [])):
            if p["in"] != "query":
                continue
            self.params[p["name"]] = p["schema"]
            props[p["name"]] = {"$ref": f"{DOC_URI}#{where}/parameters/{i}/schema"}
            if p.get("required"):
                required.append(p["name"])
        self.query = contract.validator({"type": "object", "properties": props, "required": required,
                                         "additionalProperties": False})
        self.defaults = {n: s["default"] for n, s in self.params.items() if "default" in s}
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        self.body = contract.validator({"$ref": f"{DOC_URI}#{where}/requestBody/content/application~1json/schema"}) \
            if content else None

    def read_query(self, req: falcon.Request) -> dict[str, Any]:
        """The query string as typed values (defaults filled in); 400 JSON for anything the document
        does not allow."""
        values: dict[str, Any] = {}
        for name, raw in req.params.items():
            if isinstance(raw, list):
                if name in self.params:
                    raise ApiError(falcon.HTTP_400, "Invalid parameter", f"{name[:50]} is given more than once.")
                values[name] = raw[0]
                continue
            values[name] = self._typed(name, raw)
        error = best_match(self.query.iter_errors(values))
        if error is not None:
            raise self._query_error(error, values)
        return {**self.defaults, **values}

    def _typed(self, name: str, raw: str) -> Any:
        kind = self.params.get(name, {}).get("type")
        if kind == "integer" and _INT.fullmatch(raw):
            return int(raw)
        if kind == "boolean" and raw.lower() in _TRUE | _FALSE:
            return raw.lower() in _TRUE
        return raw

    def _query_error(self, error: ValidationError, values: dict[str, Any]) -> ApiError:
        allowed = ", ".join(sorted(self.params)) or "none"
        if error.validator == "additionalProperties":
            unknown = sorted(set(values) - set(self.params))
            return ApiError(falcon.HTTP_400, "Unknown parameter",
                            f"{', '.join(u[:50] for u in unknown[:10])} is not a parameter here; use {allowed}.")
        if error.validator == "required":
            missing = [n for n in error.validator_value if n not in values]
            return ApiError(falcon.HTTP_400, "Missing parameter", f"{', '.join(missing)} is required.")
        return ApiError(falcon.HTTP_400, "Invalid parameter", describe(error))

    def read_body(self, req: falcon.Request, max_bytes: int) -> Any:
        data = read_json_object(req, max_bytes)
        errors = list(self.body.iter_errors(data))
        if not errors:
            return data
        too_long = next((e for e in errors if e.validator == "maxItems"), None)
        if too_long is not None:
            name = _where(too_long) or "the body"
            raise ApiError(falcon.HTTP_413, "Too many items", f"{len(too_long.instance)} items in {name}; at most "
                                                               f"{too_long.validator_value} are accepted.")
        error = best_match(errors)
        if error.validator == "additionalProperties":
            unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            raise invalid(f"Unknown field(s): {', '.join(repr(u[:50]) for u in unknown[:10])}. "
                          f"Allowed: {', '.join(sorted(error.schema.get('properties', {})))}.")
        if error.validator == "required":
            missing = [n for n in error.validator_value if n not in error.instance]
            raise invalid(f"Missing field(s): {', '.join(missing)}.")
        raise invalid(describe(error))


def _where(error: ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_ARTICLE = {"integer": "an integer", "string": "a string", "boolean": "a boolean (true or false)",
            "array": "a list", "object": "a JSON object", "number": "a number", "null": "null"}


def describe(error: ValidationError) -> str:
    """A one-line reason for a schema violation, naming the field or parameter."""
    name, schema, kind = _where(error), error.schema, error.validator
    if not name:
        if kind == "type":
            return f"The body must be a JSON object, not {type(error.instance).__name__}."
        return f"The body is not valid: {error.message[:200]}"
    if kind == "enum":
        return f"{name} must be one of {', '.join(str(v) for v in error.validator_value if v is not None)}."
    if kind == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"{name} must be {' or '.join(_ARTICLE.get(w, w) for w in wanted)}."
    if kind in ("minimum", "maximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"{name} must be between {low} and {high}."
        return f"{name} must be at {'least' if kind == 'minimum' else 'most'} {error.validator_value}."
    if kind == "format":
        return f"{name} must be {'a UUID' if error.validator_value == 'uuid' else 'a ' + str(error.validator_value)}."
    if kind == "minItems" and error.validator_value == 1:
        return f"{name} is empty."
    if kind == "maxLength":
        return f"{name} is at most {error.validator_value} characters."
    return f"{name}: {error.message[:200]}"


class Contract:
    """The document and the validators compiled from it, per (route, method)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.registry = Registry().with_resource(DOC_URI, Resource(contents=document, specification=DRAFT202012))
        self.operations: dict[tuple[str, str], Operation] = {
            (path, method.upper()): Operation(self, path, method, op)
            for path, ops in document["paths"].items() for method, op in ops.items()}

    @classmethod
    def from_config(cls, config) -> "Contract":
        return cls(build(config.max_batch_domains, config.max_pages_limit))

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator(schema, registry=self.registry,
                                    format_checker=Draft202012Validator.FORMAT_CHECKER)

    def response_validator(self, path: str, method: str, status: int | str,
                           media_type: str = "application/json") -> Draft202012Validator:
        """The validator of one declared response body (the tests hold real responses to it); KeyError
        when the operation declares no such status or media type."""
        where = ("paths", path, method.lower(), "responses", str(status), "content", media_type)
        node: Any = self.document
        for part in where:
            node = node[part]
        return self.validator({"$ref": f"{DOC_URI}#{_pointer(*where, 'schema')}"})

    def operation(self, uri_template: str | None, method: str) -> Operation | None:
        """The operation a routed request is for; None for routes outside the document (console, /docs)."""
        if not uri_template:
            return None
        return self.operations.get((_CONVERTER.sub(r"{\1}", uri_template), method))


class ContractMiddleware:
    """Checks each request against its operation in the document (after `AuthMiddleware`: a request
    without a valid key gets 401 before any 400/422) and hands the checked values to the resource as
    `req.context.query` and `req.context.body`."""

    def __init__(self, contract: Contract, max_body_bytes: int) -> None:
        self.contract = contract
        self.max_body_bytes = max_body_bytes

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        op = self.contract.operation(req.uri_template, req.method) if resource is not None else None
        if op is None:
            return
        req.context.query = op.read_query(req)
        if op.body is not None:
            req.context.body = op.read_body(req, self.max_body_bytes)


class OpenApiResource:
    public = True  # no API key needed (api/auth.py)

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, self.document)


__all__ = ["Contract", "ContractMiddleware", "OpenApiResource", "build"]
