"""Request/response helpers: bounded JSON bodies, strict field checking, JSON errors everywhere."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

import falcon
from sqlalchemy.exc import DBAPIError, OperationalError

logger = logging.getLogger("api")

_DEFAULT_DESCRIPTIONS = {
    400: "The request could not be understood.",
    404: "The requested resource does not exist.",
    405: "This method is not allowed on this resource.",
    413: "The request body is too large.",
    415: "Send the body as application/json.",
    422: "The request body is valid JSON but not a valid request.",
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
    def __init__(self, http_status: int | str, title: str, description: str, **extra: Any) -> None:
        super().__init__(http_status, title=title, description=description)
        self.extra = extra


def bad_request(description: str, **extra: Any) -> ApiError:
    return ApiError(falcon.HTTP_400, "Bad request", description, **extra)


def invalid(description: str, **extra: Any) -> ApiError:
    return ApiError(falcon.HTTP_422, "Invalid request", description, **extra)


def not_found(what: str) -> ApiError:
    return ApiError(falcon.HTTP_404, "Not found", what)


def handle_db_error(req, resp, exc, params) -> None:
    logger.warning("database error on %s %s: %s", req.method, req.path, str(exc).splitlines()[0])
    raise ApiError(falcon.HTTP_503, "Database unavailable", "The database could not be reached; retry later.")


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


def read_json_object(req: falcon.Request, max_bytes: int) -> dict[str, Any]:
    if req.content_length is not None and req.content_length > max_bytes:
        raise ApiError(falcon.HTTP_413, "Body too large", f"The body is {req.content_length} bytes; at most {max_bytes} are accepted.")
    ctype = (req.content_type or "").split(";")[0].strip().lower()
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise ApiError(falcon.HTTP_415, "Unsupported media type", f"Send application/json, not {ctype!r}.")
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ApiError(falcon.HTTP_413, "Body too large", f"At most {max_bytes} bytes are accepted.")
    if not raw.strip():
        raise bad_request("The body is empty; send a JSON object.")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad_request(f"The body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise invalid(f"The body must be a JSON object, not {type(data).__name__}.")
    return data


def check_fields(data: dict[str, Any], allowed: set[str], required: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise invalid(f"Unknown field(s): {', '.join(repr(u[:50]) for u in unknown[:10])}. Allowed: {', '.join(sorted(allowed))}.")
    missing = sorted(f for f in required if f not in data)
    if missing:
        raise invalid(f"Missing field(s): {', '.join(missing)}.")


def optional_int(data: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name} must be an integer between {low} and {high}.")
    if not low <= value <= high:
        raise invalid(f"{name} must be between {low} and {high}.")
    return value


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode_cursor(raw: str | None, kind: type) -> Any:
    if raw is None or raw == "":
        return None
    try:
        pad = "=" * (-len(raw) % 4)
        value = json.loads(base64.urlsafe_b64decode(raw + pad))
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
        raise bad_request("cursor is not valid: use the next_cursor value of the previous page.") from None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise bad_request("cursor is not valid: use the next_cursor value of the previous page.")
    return value


def get_limit(req: falcon.Request, default: int, maximum: int) -> int:
    return req.get_param_as_int("limit", min_value=1, max_value=maximum, default=default)


def json_response(resp: falcon.Response, body: Any, status: str = falcon.HTTP_200) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = dumps(body)
