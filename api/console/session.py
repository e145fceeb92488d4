"""The console's login session: a signed cookie naming the API key (never holding it), and CSRF tokens.

The cookie `ssk_console` holds [key name, issued-at, random nonce], signed with HMAC-SHA256 under the
database's `console` secret (`Store.app_secret`, the same signing as page cursors: `encode_cursor`).
Every request re-checks that the named key still exists and is not revoked, so revoking a key ends its
console sessions; a session also ends after `SESSION_SECONDS`. The cookie is HttpOnly, SameSite=Strict
and Secure when the console is served over https. Log-out records the session's nonce in
`console_logouts` (until the session would have expired), so a copy of the cookie taken before the
log-out is refused too. Forms carry a CSRF token: an HMAC of the session's
nonce (before login, of a random `ssk_login` cookie), checked on every POST.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import falcon
from sqlalchemy import delete, exists, insert, select
from sqlalchemy.exc import IntegrityError

from api.auth import KeyInfo, active_key
from api.http import ApiError, decode_cursor, encode_cursor
from pipelines.models import ConsoleLogout

COOKIE = "ssk_console"
LOGIN_COOKIE = "ssk_login"
SESSION_SECONDS = 12 * 3600
SCOPE = "console-session"
logouts = ConsoleLogout.__table__


@dataclass(frozen=True)
class Session:
    key: KeyInfo
    nonce: str


def _secret(store) -> bytes:
    return store.app_secret("console")


def csrf_token(store, nonce: str) -> str:
    return hmac.new(_secret(store), f"csrf\n{nonce}".encode(), hashlib.sha256).hexdigest()[:40]


def set_cookie(req: falcon.Request, resp: falcon.Response, name: str, value: str, max_age: int | None) -> None:
    resp.set_cookie(name, value, max_age=max_age, path="/console", secure=req.scheme == "https",
                    http_only=True, same_site="Strict")


def start(req: falcon.Request, resp: falcon.Response, store, key: KeyInfo) -> None:
    value = encode_cursor([key.name, int(time.time()), secrets.token_urlsafe(16)], _secret(store), SCOPE)
    set_cookie(req, resp, COOKIE, value, SESSION_SECONDS)
    resp.unset_cookie(LOGIN_COOKIE, path="/console", same_site="Strict")


def end(req: falcon.Request, resp: falcon.Response, store, sess: Session | None) -> None:
    """Log out: forget the cookie in the browser and refuse the session's nonce from now on."""
    resp.unset_cookie(COOKIE, path="/console", same_site="Strict")
    if sess is None:
        return
    now = dt.datetime.now(dt.timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(delete(logouts).where(logouts.c.expires_at < now))  # sessions that have expired anyway
        try:
            with conn.begin_nested():
                conn.execute(insert(logouts).values(nonce=sess.nonce,
                                                    expires_at=now + dt.timedelta(seconds=SESSION_SECONDS)))
        except IntegrityError:
            pass  # logged out twice


def current(req: falcon.Request, store) -> Session | None:
    raw = req.get_cookie_values(COOKIE)
    if not raw:
        return None
    try:
        value = decode_cursor(raw[0], list, _secret(store), SCOPE)
    except ApiError:
        return None
    if (not value or len(value) != 3 or not isinstance(value[0], str) or not isinstance(value[1], int)
            or not isinstance(value[2], str)):
        return None
    if not 0 <= time.time() - value[1] <= SESSION_SECONDS:
        return None
    with store.engine.connect() as conn:
        if conn.execute(select(exists().where(logouts.c.nonce == value[2]))).scalar():
            return None  # this session was logged out
    key = active_key(store.engine, value[0])
    return Session(key, value[2]) if key else None


def login_nonce(req: falcon.Request, resp: falcon.Response) -> str:
    """The pre-login CSRF nonce (a random cookie, made when missing)."""
    raw = req.get_cookie_values(LOGIN_COOKIE)
    if raw and 16 <= len(raw[0]) <= 64:
        return raw[0]
    nonce = secrets.token_urlsafe(16)
    set_cookie(req, resp, LOGIN_COOKIE, nonce, 3600)
    return nonce


def csrf_ok(store, nonce: str | None, token: str | None) -> bool:
    return bool(nonce and token) and hmac.compare_digest(csrf_token(store, nonce), token)
