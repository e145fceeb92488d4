"""Request/response helpers: bounded JSON bodies, JSON errors everywhere, signed cursors. What a request
may contain is checked against the OpenAPI document (api/openapi.py)."""

from __future__ import annotations

import base64
import codecs
import hashlib
import hmac
import json
import logging
import math
import uuid
from typing import Any

import falcon
from sqlalchemy.exc import DBAPIError, OperationalError

logger = logging.getLogger("api")

_DEFAULT_DESCRIPTIONS = {
    400: "The request could not be understood.",
    401: "Send a valid API key as 'Authorization: Bearer <key>'.",
    404: "The requested resource does not exist.",
    405: "This method is not allowed on this resource.",
    413: "The request body is too large.",
    411: "Send the body with a Content-Length.",
    415: "Send the body as application/json.",
    422: "The request body is valid JSON but not a valid request.",
    429: "Too many requests; retry after the time given in Retry-After.",
    500: "An unexpected error occurred; it has been logged.",
    503: "A backing service is unavailable; retry later.",
}


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_default, separators=(",", ":"), ensure_ascii=False)


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def error_serializer(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    body = exc.to_dict()
    status = exc.status_code
    body["title"] = exc.title or falcon.code_to_http_status(status)
    body["description"] = exc.description or _DEFAULT_DESCRIPTIONS.get(status, body["title"])
    if isinstance(exc, ApiError) and exc.extra:
        body.update(exc.extra)
    resp.content_type = falcon.MEDIA_JSON
    resp.text = dumps(body)


class ApiError(falcon.HTTPError):
    def __init__(self, http_status: int | str, title: str, description: str, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(http_status, title=title, description=description, headers=headers)
        self.extra = extra


def too_many(description: str, retry_after: float, **extra: Any) -> ApiError:
    """429 with Retry-After (whole seconds, at least 1), also given in the body as `retry_after`."""
    seconds = max(1, math.ceil(retry_after))
    return ApiError(falcon.HTTP_429, "Too many requests", description, headers={"Retry-After": str(seconds)},
                    retry_after=seconds, **extra)


def bad_request(description: str, **extra: Any) -> ApiError:
    return ApiError(falcon.HTTP_400, "Bad request", description, **extra)


def invalid(description: str, **extra: Any) -> ApiError:
    return ApiError(falcon.HTTP_422, "Invalid request", description, **extra)


def not_found(what: str) -> ApiError:
    return ApiError(falcon.HTTP_404, "Not found", what)


# Retry-After (seconds) of every 503: a database or scrapyd outage has no known end; clients poll again.
UNAVAILABLE_RETRY_AFTER = 5


def unavailable(title: str, description: str) -> ApiError:
    """503 with Retry-After, also given in the body as `retry_after`."""
    return ApiError(falcon.HTTP_503, title, description,
                    headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)}, retry_after=UNAVAILABLE_RETRY_AFTER)


def handle_db_error(req, resp, exc, params) -> None:
    logger.warning("database error on %s %s: %s", req.method, req.path, str(exc).splitlines()[0])
    raise unavailable("Database unavailable", "The database could not be reached; retry later.")


def handle_unexpected(req, resp, exc, params) -> None:
    if isinstance(exc, falcon.HTTPError):
        raise exc
    logger.exception("unhandled error on %s %s", req.method, req.path)
    raise ApiError(falcon.HTTP_500, "Internal server error", _DEFAULT_DESCRIPTIONS[500])


def register_error_handlers(app: falcon.App) -> None:
    app.set_error_serializer(error_serializer)
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(OperationalError, handle_db_error)
    app.add_error_handler(DBAPIError, handle_db_error)


def _read_body(req: falcon.Request, max_bytes: int) -> bytes:
    """The raw body, at most max_bytes + 1 bytes of it. A chunked body (no Content-Length) is read to its
    end when the server de-chunks it and says so (`wsgi.input_terminated`, as gunicorn does)."""
    if req.content_length is not None:
        return req.bounded_stream.read(max_bytes + 1)
    if "chunked" not in (req.get_header("Transfer-Encoding") or "").lower():
        return b""
    if not req.env.get("wsgi.input_terminated"):
        raise ApiError(falcon.HTTP_411, "Length required", "This server cannot read chunked bodies; send a Content-Length.")
    parts: list[bytes] = []
    size = 0
    while size <= max_bytes:
        part = req.stream.read(max_bytes + 1 - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def read_json_object(req: falcon.Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object: UTF-8 only (RFC 8259; a UTF-8 BOM is ignored, UTF-16/32 are refused
    with 400, a declared charset other than UTF-8 with 415)."""
    if req.content_length is not None and req.content_length > max_bytes:
        raise ApiError(falcon.HTTP_413, "Body too large", f"The body is {req.content_length} bytes; at most {max_bytes} are accepted.")
    ctype, _, params = (req.content_type or "").partition(";")
    ctype = ctype.strip().lower()
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise ApiError(falcon.HTTP_415, "Unsupported media type", f"Send application/json, not {ctype[:100]!r}.")
    charset = next((v.strip().strip('"').lower() for k, _, v in (p.partition("=") for p in params.split(";"))
                    if k.strip().lower() == "charset"), None)
    if charset not in (None, "utf-8", "utf8"):
        raise ApiError(falcon.HTTP_415, "Unsupported media type", f"Send JSON as UTF-8, not {charset[:40]!r}.")
    raw = _read_body(req, max_bytes)
    if len(raw) > max_bytes:
        raise ApiError(falcon.HTTP_413, "Body too large", f"At most {max_bytes} bytes are accepted.")
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode("utf-8")  # strict: also refuses UTF-16/32 (with or without a BOM) and encoded surrogates
    except UnicodeDecodeError:
        raise bad_request("The body is not UTF-8; send JSON encoded as UTF-8.") from None
    if not text.strip():
        raise bad_request("The body is empty; send a JSON object.")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"The body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise invalid(f"The body must be a JSON object, not {type(data).__name__}.")
    return data


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _cursor_mac(key: bytes, scope: str, payload: str) -> str:
    return _b64(hmac.new(key, f"{scope}\n{payload}".encode("utf-8", "surrogatepass"), hashlib.sha256).digest()[:16])


def encode_cursor(value: Any, key: bytes, scope: str) -> str:
    """An opaque page cursor: the position, and an HMAC over it and the listing it belongs to (`scope`,
    e.g. the batch id and filter), so a cursor that was altered or taken from another listing is refused."""
    payload = _b64(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    return f"{payload}.{_cursor_mac(key, scope, payload)}"


def decode_cursor(raw: str | None, kind: type, key: bytes, scope: str) -> Any:
    """The position in a cursor made by `encode_cursor` for this listing; 400 for anything else."""
    if raw is None or raw == "":
        return None
    refused = bad_request("cursor is not valid: use the next_cursor value of the previous page.")
    payload, dot, mac = raw.partition(".")
    if not dot or len(raw) > 4096 or not hmac.compare_digest(mac.encode("utf-8", "replace"),
                                                                _cursor_mac(key, scope, payload).encode()):
        raise refused
    try:
        value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8"))
        if isinstance(value, str):
            value.encode("utf-8")  # no lone surrogates
    except (ValueError, TypeError, UnicodeError, RecursionError):
        raise refused from None
    if not isinstance(value, kind) or isinstance(value, bool) or (isinstance(value, str) and "\x00" in value):
        raise refused
    return value


def json_response(resp: falcon.Response, body: Any, status: str = falcon.HTTP_200) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = dumps(body)


def site_or_400(text: str, strict: bool = True):
    """The site a domain given in a request names (`pipelines.domains.parse_site`, the API's strict policy
    by default); 400 JSON with the reason when it names none."""
    from pipelines.domains import DomainError, parse_site

    try:
        return parse_site(text, strict=strict)
    except DomainError as exc:
        raise ApiError(falcon.HTTP_400, "Invalid domain", f"{str(text)[:200]!r}: {exc.reason}") from None
