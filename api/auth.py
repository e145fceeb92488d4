"""API keys: how they are made, stored and checked, and the Falcon middleware that requires them.

A key is `ssk_` + 43 characters of `secrets.token_urlsafe(32)` (256 random bits). Only its SHA-256 is
stored (`api_keys.key_hash`). A fast hash is right here: slow KDFs (bcrypt, scrypt, argon2) exist to
make guessing *low-entropy passwords* from a stolen hash expensive, but nobody can enumerate 2**256
random keys, and SHA-256 is preimage resistant, so a leaked table reveals no key. It also keeps the
per-request check cheap. The hash is looked up by its unique index and then compared with
`hmac.compare_digest`, so no timing difference depends on how much of a guess was right.

Every route needs `Authorization: Bearer <key>` unless its resource says `public = True` (`/health`,
`/health/database`, the OpenAPI document). The decision is made on the routed resource, not on the path
string, so spellings such as `//api/v1/...` cannot slip past it; unknown routes answer 404. The middleware sets `req.context.tenant` (the key's tenant: every batch
and job created with it belongs to that tenant) and `req.context.is_admin` (admin keys see and cancel
every tenant's work). Non-admin keys are rate limited per key (`limits`, moving window in memory, per worker process).

Each key also has a *webhook secret* (`whsec_` + 43 characters, `api_keys.webhook_secret`), which signs
the webhooks of the work created with the key (`api/webhooks.py`). Unlike the key it is stored in clear:
the server must compute an HMAC with it, so it cannot keep only a hash. It grants no access to the API;
whoever reads the table can forge webhooks, not call the API. `python -m api keys webhook-secret NAME
[--rotate]` prints (or replaces) it.

`API_AUTH=off` (local use only) is refused unless the API listens on loopback; requests then act as an
admin of the `default` tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import falcon
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from api.http import ApiError, too_many
from pipelines.models import DEFAULT_TENANT, ApiKey, utcnow

logger = logging.getLogger("api")

api_keys = ApiKey.__table__
KEY_PREFIX = "ssk_"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FIRST_KEY_HINT = "python -m api keys create NAME --admin"


# ------------------------------------------------------------------------------------------ keys
@dataclass(frozen=True)
class KeyInfo:
    name: str
    tenant: str
    is_admin: bool


class KeyNameError(ValueError):
    pass


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name: str, what: str = "name") -> str:
    if not NAME_RE.match(name or ""):
        raise KeyNameError(f"{what} must be 1-64 characters: letters, digits, '.', '_' or '-', starting with a "
                           f"letter or digit (got {name[:80]!r})")
    return name


def create_key(engine: Engine, name: str, *, tenant: str | None = None, admin: bool = False) -> str:
    """Store a new key and return it: the only time the key exists outside its holder's hands."""
    check_name(name)
    tenant = check_name(tenant or name, "tenant")
    key = generate_key()
    try:
        with engine.begin() as conn:
            conn.execute(api_keys.insert().values(name=name, tenant=tenant, key_hash=hash_key(key),
                                                  is_admin=admin, created_at=utcnow(),
                                                  webhook_secret=new_webhook_secret()))
    except IntegrityError:
        raise KeyNameError(f"a key named {name!r} exists already (names stay taken after revoking)") from None
    return key


def list_keys(engine: Engine) -> list[dict[str, Any]]:
    cols = [api_keys.c.name, api_keys.c.tenant, api_keys.c.is_admin, api_keys.c.created_at, api_keys.c.revoked_at]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(*cols).order_by(api_keys.c.name)).mappings()]


def revoke_key(engine: Engine, name: str) -> str:
    """'revoked', 'already' (revoked before) or 'missing'."""
    with engine.begin() as conn:
        res = conn.execute(update(api_keys).where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                           .values(revoked_at=utcnow()))
        if res.rowcount:
            return "revoked"
        exists = conn.execute(select(api_keys.c.id).where(api_keys.c.name == name)).first()
    return "already" if exists else "missing"


def webhook_secret(engine: Engine, name: str, rotate: bool = False) -> str | None:
    """The webhook secret of the key named `name` (revoked or not), made now if it has none; a new one
    with `rotate` (deliveries sent from then on are signed with it). None when there is no such key."""
    mine = api_keys.c.name == name
    query = select(api_keys.c.webhook_secret).where(mine)
    if not rotate:
        with engine.connect() as conn:
            secret = conn.execute(query).scalar()
        if secret is not None:
            return secret
    with engine.begin() as conn:  # rotate, or a key from before webhooks had none: a guarded update
        guard = () if rotate else (api_keys.c.webhook_secret.is_(None),)
        conn.execute(update(api_keys).where(mine, *guard).values(webhook_secret=new_webhook_secret()))
        return conn.execute(query).scalar()


def active_key_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(api_keys)
                            .where(api_keys.c.revoked_at.is_(None))).scalar_one()


def lookup_key(engine: Engine, key: str) -> KeyInfo | None:
    digest = hash_key(key)
    with engine.connect() as conn:
        row = conn.execute(select(api_keys.c.name, api_keys.c.tenant, api_keys.c.is_admin, api_keys.c.key_hash)
                           .where(api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None))).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return KeyInfo(row.name, row.tenant, bool(row.is_admin))


def active_key(engine: Engine, name: str) -> KeyInfo | None:
    """The key named `name` unless it is revoked (the console's session names its key, never holds it)."""
    with engine.connect() as conn:
        row = conn.execute(select(api_keys.c.name, api_keys.c.tenant, api_keys.c.is_admin)
                           .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))).first()
    return KeyInfo(row.name, row.tenant, bool(row.is_admin)) if row else None


# ------------------------------------------------------------------------------------------ startup rules
def is_loopback(host: str) -> bool:
    host = (host or "").strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_off_problem(config) -> str | None:
    """Why the configuration must not start, or None. API_AUTH=off is for loopback only."""
    if not config.auth_enabled and not is_loopback(config.listen_host):
        return (f"error: API_AUTH=off is only allowed when the API listens on loopback, not on "
                f"{config.listen_host!r}; create a key with `{FIRST_KEY_HINT}` instead")
    return None


# ------------------------------------------------------------------------------------------ request side
def scope(req: falcon.Request) -> str | None:
    """The tenant a request may see, or None for everything (admin keys)."""
    return None if req.context.is_admin else req.context.tenant


def unauthorized(description: str, error: str | None = None) -> ApiError:
    challenge = 'Bearer realm="scrapersky"' + (f', error="{error}"' if error else "")
    return ApiError(falcon.HTTP_401, "Unauthorized", description, headers={"WWW-Authenticate": challenge})


class AuthMiddleware:
    def __init__(self, store, config) -> None:
        self.store = store
        self.config = config
        self._cache: dict[str, tuple[KeyInfo, float]] = {}
        self._lock = threading.Lock()
        self._limiter = self._rate = None
        if config.rate_limit:
            from limits import parse, storage, strategies

            self._rate = parse(config.rate_limit)
            self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    def _key_info(self, key: str) -> KeyInfo | None:
        ttl = self.config.key_cache_seconds
        digest = hash_key(key)
        now = time.monotonic()
        if ttl > 0:
            with self._lock:
                hit = self._cache.get(digest)
            if hit is not None and hit[1] > now:
                return hit[0]
        info = lookup_key(self.store.engine, key)
        if info is not None and ttl > 0:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (info, now + ttl)
        return info

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.tenant = None
        req.context.is_admin = False
        req.context.key_name = None

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        if resource is None or getattr(resource, "public", False):
            return
        if not self.config.auth_enabled and is_loopback_listener(req):
            req.context.tenant = DEFAULT_TENANT
            req.context.is_admin = True
            return
        header = req.get_header("Authorization") or ""
        scheme, _, key = header.strip().partition(" ")
        key = key.strip()
        if not header:
            raise unauthorized("Send your API key as 'Authorization: Bearer <key>' "
                               f"(an administrator creates keys with `python -m api keys create NAME`).")
        if scheme.lower() != "bearer" or not key:
            raise unauthorized("Use the Bearer scheme: 'Authorization: Bearer <key>'.", "invalid_request")
        info = self._key_info(key) if len(key) <= 256 else None
        if info is None:
            raise unauthorized("The API key is not valid (unknown or revoked).", "invalid_token")
        req.context.tenant = info.tenant
        req.context.is_admin = info.is_admin
        req.context.key_name = info.name
        if self._limiter is not None and not info.is_admin and not self._limiter.hit(self._rate, info.name):
            stats = self._limiter.get_window_stats(self._rate, info.name)
            raise too_many(f"More than {self.config.rate_limit} requests for this key; slow down.",
                           stats.reset_time - time.time())


def is_loopback_listener(req: falcon.Request) -> bool:
    """True unless the WSGI server says it listens on a non-loopback IP address (gunicorn puts the
    listening socket's address in SERVER_NAME): API_AUTH=off never opens a public listener."""
    server = req.env.get("SERVER_NAME", "")
    try:
        ipaddress.ip_address(server.strip("[]"))
    except ValueError:
        return True  # a name, as test clients give: the startup check (API_HOST) has ruled
    return is_loopback(server)
