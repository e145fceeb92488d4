"""Webhooks: one signed POST to the caller's `callback_url` when a batch or a single scan is final.

The life of a delivery (table `webhook_deliveries`, statuses `pipelines.status.DeliveryStatus`):

1. **made** with its batch or job, in the same transaction (`Store.create_batch`, `Store.create_job`):
   `waiting`, with the callback URL (checked by `check_callback_url` before anything is stored) and the
   name of the API key that made the request; that key's webhook secret signs it (`api.auth`). One
   delivery per batch and per job (unique columns).
2. **armed** by the dispatcher leader (`WebhookSender.arm`, with each reconcile) once no job of the batch
   (or the scan itself) is pending or running: its JSON body (`batch_payload`, `scan_payload`) is built
   and fixed, and it becomes `pending`, due now. The change is a guarded UPDATE (`WHERE status =
   'waiting'`): whichever process notices first arms it, and nobody arms it twice.
3. **sent** (`WebhookSender.send_due`, each leader tick): a due delivery is *claimed* by a guarded UPDATE
   that counts the attempt and moves `next_attempt_at` a lease ahead (no other sender takes it while
   its POST is in flight), then POSTed from a small thread pool, never in the dispatcher's thread. A
   2xx answer: `delivered`. Anything else (another status, a redirect: never followed, a timeout, a
   refused connection or address) is retried `webhook_retry_base` seconds later, doubling up to
   `webhook_retry_max`, until `webhook_retry_window` after the first attempt; then `failed`. A sender
   that dies mid-POST leaves its claim to expire, and the delivery is tried again.

Where the POST goes: the callback URL's host is resolved once per attempt and every address checked by
`pipelines.netpolicy.resolve_checked`, the crawler's policy (no IP literals, internal names or names
resolving to internal addresses, unless SCRAPERSKY_ALLOW_PRIVATE=1); the connection is made to a checked
address, the name only going into `Host` and TLS (SNI and certificate check). So a DNS answer that changes
between the check and the connection (rebinding) cannot move a delivery inside. No proxy is used.

Headers: `X-ScraperSky-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the key's webhook
secret>`, `X-ScraperSky-Event` (`batch.finished`, `scan.finished`), `X-ScraperSky-Delivery` (the delivery
id, also in the signed body: receivers dedupe on it), `X-ScraperSky-Attempt` and
`X-ScraperSky-Timestamp` (Unix seconds of this attempt). Log lines name the callback's origin only,
never its path or query.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import socket
import ssl
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import falcon
import idna
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.engine import Connection

from api.auth import webhook_secret
from api.http import ApiError, dumps, invalid
from api.store import derive_batch_status
from pipelines.models import BatchJob, Job, WebhookDelivery, utcnow
from pipelines.netpolicy import Refused, resolve_checked
from pipelines.status import ACTIVE_JOB_STATUSES, DeliveryStatus

logger = logging.getLogger("api.webhooks")

deliveries = WebhookDelivery.__table__
jobs = Job.__table__
batches = BatchJob.__table__
ACTIVE = [s.value for s in ACTIVE_JOB_STATUSES]
API = "/api/v1"

SIGNATURE_HEADER = "X-ScraperSky-Signature"
EVENT_HEADER = "X-ScraperSky-Event"
DELIVERY_HEADER = "X-ScraperSky-Delivery"
ATTEMPT_HEADER = "X-ScraperSky-Attempt"
TIMESTAMP_HEADER = "X-ScraperSky-Timestamp"
USER_AGENT = "ScraperSky-Webhook/1"
MAX_URL_LENGTH = 2048
MAX_ANSWER_BYTES = 64 * 1024  # read of the receiver's answer, then the connection is closed
ARM_BATCH = 200  # deliveries armed per reconcile at most
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


# ------------------------------------------------------------------------------------------ callback URL
class CallbackUrlError(ValueError):
    """Why a callback URL is refused; str() is a sentence for the API's error description."""


def _ascii_host(host: str) -> str:
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        raise CallbackUrlError("callback_url's host is not a valid domain name.") from None


def check_callback_url(value: str, allow_private: bool = False, resolve: Any = None) -> str:
    """The callback URL to store (ASCII host, path and query percent-encoded, no fragment), or
    CallbackUrlError: not http(s), user info (credentials have no place in it: use the signature), no
    host, a bad port, or a host `pipelines.netpolicy` refuses (IP literal, internal name, a name that
    resolves to an internal address: all allowed with SCRAPERSKY_ALLOW_PRIVATE=1), or that does not
    resolve. The description never repeats the URL, only its host."""
    if len(value) > MAX_URL_LENGTH:
        raise CallbackUrlError(f"callback_url is longer than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise CallbackUrlError("callback_url must not contain spaces or control characters.")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise CallbackUrlError("callback_url is not a valid URL (bad host or port).") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise CallbackUrlError("callback_url must be an http:// or https:// URL.")
    if "@" in parts.netloc:
        raise CallbackUrlError("callback_url must not contain user info (user:password@); the receiver "
                               f"authenticates deliveries by their {SIGNATURE_HEADER} header.")
    if not parts.hostname:
        raise CallbackUrlError("callback_url has no host.")
    host = _ascii_host(parts.hostname)
    try:
        resolve_checked(host, port or (443 if scheme == "https" else 80), allow_private, resolve)
    except Refused as exc:
        raise CallbackUrlError(f"callback_url is refused: {exc}.") from None
    except (OSError, UnicodeError):
        raise CallbackUrlError(f"callback_url's host {host} does not resolve.") from None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((scheme, netloc, quote(parts.path or "/", safe=_PATH_SAFE),
                       quote(parts.query, safe=_PATH_SAFE + "?"), ""))


def webhook_request(value: Any, key_name: str | None, allow_private: bool = False,
                    resolve: Any = None) -> dict[str, str] | None:
    """The delivery a request's `callback_url` asks for ({"callback_url", "key_name"}; None without
    one), checked before anything is stored: 422 when it is not a string or the request has no API key
    to sign with (API_AUTH=off), 400 when the URL is refused (`check_callback_url`)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid("callback_url must be a string: an http(s) URL.")
    if not key_name:
        raise invalid("callback_url needs a request made with an API key: deliveries are signed with the "
                      "key's webhook secret (API_AUTH is off).")
    try:
        url = check_callback_url(value.strip(), allow_private, resolve)
    except CallbackUrlError as exc:
        raise ApiError(falcon.HTTP_400, "Invalid callback_url", str(exc)) from None
    return {"callback_url": url, "key_name": key_name}


def origin(url: str) -> str:
    """`scheme://host[:port]` of a callback URL: what log lines show of it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# ------------------------------------------------------------------------------------------ signing
def sign(secret: str, body: bytes) -> str:
    """The value of the signature header: `sha256=` + hex HMAC-SHA256 of the body keyed with the secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


# ------------------------------------------------------------------------------------------ the POST
class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to `address` (checked), for the host name in the URL (the Host header)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """The same over TLS: SNI and the certificate check use the host name, not the address."""

    default_port = 443

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, address, timeout)
        self.tls = ssl.create_default_context()

    def connect(self) -> None:
        super().connect()
        self.sock = self.tls.wrap_socket(self.sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float, allow_private: bool = False,
         resolve: Any = None) -> int:
    """POST `body` to `url` at an address `resolve_checked` allowed (resolved once, here); the HTTP status
    of the answer (redirects are not followed). Raises Refused, OSError (socket.gaierror when the name
    does not resolve, TimeoutError, ConnectionRefusedError, ssl errors) or http.client.HTTPException."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve_checked(host, port, allow_private, resolve)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    error: OSError | None = None
    for address in addresses[:4]:
        conn = cls(host, port, str(address), timeout)
        try:
            conn.connect()
        except OSError as exc:  # the next address, if the name has several
            conn.close()
            error = exc
            continue
        try:
            conn.request("POST", target, body=body, headers=headers)
            answer = conn.getresponse()
            answer.read(MAX_ANSWER_BYTES)
            return answer.status
        finally:
            conn.close()
    assert error is not None
    raise error


def describe(exc: BaseException, timeout: float) -> str:
    """A one-line reason for a failed attempt (never the URL)."""
    if isinstance(exc, Refused):
        return f"refused: {exc}"
    if isinstance(exc, socket.gaierror):
        return "the host does not resolve"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {exc.verify_message or exc}"
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ------------------------------------------------------------------------------------------ payloads
def _links(base: str, kind: str, ident: uuid.UUID) -> dict[str, str]:
    if kind == "batch":
        return {"status": f"{base}{API}/batch/status/{ident}",
                "urls_csv": f"{base}{API}/batches/{ident}/urls?format=csv",
                "urls_jsonl": f"{base}{API}/batches/{ident}/urls?format=jsonl",
                "deliveries": f"{base}{API}/batches/{ident}/deliveries"}
    return {"status": f"{base}{API}/status/{ident}",
            "urls_csv": f"{base}{API}/jobs/{ident}/urls?format=csv",
            "urls_jsonl": f"{base}{API}/jobs/{ident}/urls?format=jsonl",
            "sitemaps": f"{base}{API}/jobs/{ident}/sitemaps",
            "deliveries": f"{base}{API}/jobs/{ident}/deliveries"}


def batch_payload(delivery_id: uuid.UUID, row: dict[str, Any], info: dict[str, Any], base: str = "") -> dict[str, Any]:
    """The body announcing a finished batch: `row` is its batch_jobs row, `info` `Store.batch_counts`."""
    status, finished_at = derive_batch_status(row, info)
    counts = info["counts"]
    return {"event": "batch.finished", "delivery_id": delivery_id, "batch_id": row["id"], "status": status,
            "total_jobs": sum(counts.values()), "counts": counts, "outcomes": info["outcomes"],
            "urls_found": info["urls_found"], "created_at": row["created_at"],
            "started_at": row["started_at"] or info["started_at"], "finished_at": finished_at,
            "links": _links(base, "batch", row["id"])}


def scan_payload(delivery_id: uuid.UUID, job: dict[str, Any], base: str = "") -> dict[str, Any]:
    """The body announcing a finished single scan (the same counts as a batch of one, and the job)."""
    status = getattr(job["status"], "value", job["status"])
    outcome = getattr(job["outcome"], "value", job["outcome"])
    counts = {s: 0 for s in ("pending", "running", "complete", "failed", "cancelled")}
    counts[status] = 1
    return {"event": "scan.finished", "delivery_id": delivery_id, "job_id": job["id"], "domain": job["domain"],
            "status": status, "outcome": outcome, "error": job["error"], "total_jobs": 1, "counts": counts,
            "outcomes": {outcome: 1} if outcome else {}, "urls_found": job["urls_found"],
            "created_at": job["created_at"], "started_at": job["started_at"], "finished_at": job["finished_at"],
            "links": _links(base, "job", job["id"])}


def delivery_view(row: dict[str, Any], prefix: str = "", payload: bool = False) -> dict[str, Any]:
    """How the API shows a delivery; `prefix` picks the columns of a joined row (`w_`)."""
    get = lambda name: row[prefix + name]  # noqa: E731
    out = {"delivery_id": get("id"), "callback_url": get("callback_url"),
           "status": getattr(get("status"), "value", get("status")), "attempts": get("attempts"),
           "last_status_code": get("last_status_code"), "last_error": get("last_error"),
           "created_at": get("created_at"), "ready_at": get("ready_at"),
           "first_attempt_at": get("first_attempt_at"), "last_attempt_at": get("last_attempt_at"),
           "next_attempt_at": get("next_attempt_at"), "delivered_at": get("delivered_at")}
    if payload:
        out["payload"] = json.loads(get("body")) if get("body") else None
    return out


# ------------------------------------------------------------------------------------------ the sender
class WebhookSender:
    """Arms and sends deliveries; driven by the dispatcher leader's tick (`api.dispatcher`)."""

    def __init__(self, store, config) -> None:
        self.store = store
        self.config = config
        self.resolve: Any = None  # socket.getaddrinfo unless a test substitutes it
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._in_flight: set[Future] = set()

    @property
    def engine(self):
        return self.store.engine

    # -- arm ---------------------------------------------------------------------------------
    def arm(self) -> int:
        """Arm the waiting deliveries whose batch or scan is final; how many this call armed."""
        d = deliveries
        batch_done = and_(d.c.batch_id.is_not(None),
                          ~exists().where(jobs.c.batch_id == d.c.batch_id, jobs.c.status.in_(ACTIVE)))
        job_done = and_(d.c.job_id.is_not(None),
                        exists().where(jobs.c.id == d.c.job_id, jobs.c.status.not_in(ACTIVE)))
        with self.engine.connect() as conn:
            rows = conn.execute(select(d.c.id, d.c.batch_id, d.c.job_id)
                                .where(d.c.status == DeliveryStatus.WAITING, or_(batch_done, job_done))
                                .order_by(d.c.created_at).limit(ARM_BATCH)).all()
        armed = 0
        for delivery_id, batch_id, job_id in rows:
            with self.engine.begin() as conn:
                body = self._body(conn, delivery_id, batch_id, job_id)
                if body is None:
                    continue
                now = utcnow()
                armed += conn.execute(update(d).where(d.c.id == delivery_id, d.c.status == DeliveryStatus.WAITING)
                                      .values(status=DeliveryStatus.PENDING, body=body, ready_at=now,
                                              next_attempt_at=now)).rowcount
        return armed

    def _body(self, conn: Connection, delivery_id: uuid.UUID, batch_id: uuid.UUID | None,
              job_id: uuid.UUID | None) -> str | None:
        base = self.config.api_public_url or ""
        if batch_id is not None:
            row = conn.execute(select(batches).where(batches.c.id == batch_id)).mappings().first()
            if row is None:
                return None
            return dumps(batch_payload(delivery_id, dict(row), self.store.batch_counts(batch_id, conn), base))
        job = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        if job is None or getattr(job["status"], "value", job["status"]) in ACTIVE:
            return None
        return dumps(scan_payload(delivery_id, dict(job), base))

    # -- send --------------------------------------------------------------------------------
    def _lease(self) -> dt.timedelta:
        """How long a claimed delivery is left to its sender (connect, send, answer; with room to spare)."""
        return dt.timedelta(seconds=4 * self.config.webhook_timeout + 30)

    def send_due(self) -> int:
        """Claim the due deliveries the thread pool has room for and start their POSTs; how many."""
        with self._lock:
            free = max(1, self.config.webhook_concurrency) - len(self._in_flight)
        if free <= 0:
            return 0
        d = deliveries
        now = utcnow()
        with self.engine.connect() as conn:
            due = conn.execute(select(d.c.id, d.c.attempts, d.c.first_attempt_at)
                               .where(d.c.status == DeliveryStatus.PENDING, d.c.next_attempt_at <= now)
                               .order_by(d.c.next_attempt_at).limit(free)).all()
        started = 0
        for delivery_id, attempts, first in due:
            with self.engine.begin() as conn:
                claimed = conn.execute(update(d).where(
                    d.c.id == delivery_id, d.c.status == DeliveryStatus.PENDING, d.c.attempts == attempts,
                    d.c.next_attempt_at <= now,
                ).values(attempts=attempts + 1, first_attempt_at=first or now, last_attempt_at=now,
                         next_attempt_at=now + self._lease())).rowcount
            if not claimed:
                continue
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max(1, self.config.webhook_concurrency),
                                                    thread_name_prefix="scrapersky-webhook")
                future = self._pool.submit(self._attempt_safely, delivery_id, attempts + 1)
                self._in_flight.add(future)
            future.add_done_callback(self._done)
            started += 1
        return started

    def _done(self, future: Future) -> None:
        with self._lock:
            self._in_flight.discard(future)

    def _attempt_safely(self, delivery_id: uuid.UUID, attempt: int) -> None:
        try:
            self.attempt(delivery_id, attempt)
        except Exception:  # the claim expires and the delivery is tried again
            logger.exception("webhook %s: attempt %d failed unexpectedly", delivery_id, attempt)

    def attempt(self, delivery_id: uuid.UUID, attempt: int) -> str:
        """POST the claimed delivery (attempt number `attempt`) and record what happened; the new status."""
        d = deliveries
        with self.engine.connect() as conn:
            row = conn.execute(select(d).where(d.c.id == delivery_id)).mappings().first()
        if row is None:
            return "missing"
        body = (row["body"] or "").encode("utf-8")
        event = "batch.finished" if row["batch_id"] is not None else "scan.finished"
        secret = webhook_secret(self.engine, row["key_name"])
        code: int | None = None
        error: str | None = None
        if secret is None:
            error = f"the API key {row['key_name']!r} that signs this delivery does not exist"
        else:
            headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, EVENT_HEADER: event,
                       DELIVERY_HEADER: str(delivery_id), ATTEMPT_HEADER: str(attempt),
                       TIMESTAMP_HEADER: str(int(time.time())), SIGNATURE_HEADER: sign(secret, body)}
            try:
                code = post(row["callback_url"], body, headers, self.config.webhook_timeout,
                            self.config.allow_private, self.resolve)
            except (OSError, http.client.HTTPException, Refused) as exc:
                error = describe(exc, self.config.webhook_timeout)
            else:
                if not 200 <= code < 300:
                    error = f"HTTP {code}" + (" (redirects are not followed)" if 300 <= code < 400 else "")
        return self.record(row, attempt, code, error)

    def backoff(self, attempt: int) -> float:
        """Seconds before the next attempt after failed attempt number `attempt` (1, 2, ...)."""
        cfg = self.config
        return min(cfg.webhook_retry_max, cfg.webhook_retry_base * 2 ** min(attempt - 1, 30))

    def record(self, row: dict[str, Any], attempt: int, code: int | None, error: str | None) -> str:
        d = deliveries
        now = utcnow()
        values: dict[str, Any] = {"last_status_code": code, "last_error": error}
        if error is None:
            values.update(status=DeliveryStatus.DELIVERED, delivered_at=now, next_attempt_at=None)
        else:
            deadline = (row["first_attempt_at"] or now) + dt.timedelta(seconds=self.config.webhook_retry_window)
            if now >= deadline:
                values.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
            else:
                values.update(next_attempt_at=min(now + dt.timedelta(seconds=self.backoff(attempt)), deadline))
        with self.engine.begin() as conn:
            changed = conn.execute(update(d).where(d.c.id == row["id"], d.c.attempts == attempt,
                                                   d.c.status == DeliveryStatus.PENDING).values(**values)).rowcount
        status = getattr(values.get("status"), "value", None) or "pending"
        subject = f"batch {row['batch_id']}" if row["batch_id"] is not None else f"scan {row['job_id']}"
        if not changed:
            logger.warning("webhook %s of %s: attempt %d finished after its claim expired; not recorded",
                           row["id"], subject, attempt)
        elif error is None:
            logger.info("webhook %s of %s delivered to %s (attempt %d, HTTP %s)", row["id"], subject,
                        origin(row["callback_url"]), attempt, code)
        else:
            logger.warning("webhook %s of %s to %s: attempt %d: %s; %s", row["id"], subject,
                           origin(row["callback_url"]), attempt, error,
                           "giving up" if status == "failed" else f"next attempt at {values['next_attempt_at']:%H:%M:%S}")
        return status

    def stop(self) -> None:
        """Start nothing more; POSTs in flight finish in their threads (a claim left unrecorded expires)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._in_flight.clear()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
