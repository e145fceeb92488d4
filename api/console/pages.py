"""The console's pages (Falcon resources rendering Jinja2 templates)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import falcon
import jinja2
from sqlalchemy.exc import DBAPIError, OperationalError

from api.auth import KeyInfo, is_loopback_listener, lookup_key
from api.console import queries, session
from api.http import ApiError, decode_cursor, encode_cursor, handle_db_error, handle_unexpected
from api.quotas import Quotas
from api.resources.batch import batch_progress, submit_batch
from api.webhooks import delivery_view
from api.resources.results import JobUrlsResource
from api.store import Store
from pipelines.domains import DomainError, parse_site
from pipelines.models import DEFAULT_TENANT
from pipelines.status import BatchStatus, JobStatus, Outcome

logger = logging.getLogger("api")
HERE = Path(__file__).resolve().parent
PREFIX = "/console"
PAGE = 50
ACTIVE = ("pending", "running")


class NotFoundPage(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestPage(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _v(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    value = int(round(value))
    if value < 60:
        return f"{value} s"
    if value < 3600:
        return f"{value // 60} min {value % 60} s"
    return f"{value // 3600} h {value % 3600 // 60} min"


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=_when, seconds=_seconds, v=_v)
    env.globals.update(prefix=PREFIX)
    return env


class Console:
    """What every page needs: the store, config, templates and the session check."""

    def __init__(self, store: Store, config, dispatcher=None) -> None:
        self.store = store
        self.config = config
        self.dispatcher = dispatcher
        self.quotas = Quotas.from_config(config)
        self.env = make_env()

    def session(self, req: falcon.Request) -> session.Session:
        if not self.config.auth_enabled and is_loopback_listener(req):
            return session.Session(KeyInfo("local", DEFAULT_TENANT, True), "local")
        current = session.current(req, self.store)
        if current is None:
            target = req.relative_uri if req.method == "GET" else f"{PREFIX}/batches"
            raise falcon.HTTPSeeOther(f"{PREFIX}/login?{urlencode({'next': target})}")
        return current

    def render(self, resp: falcon.Response, template: str, code: str = falcon.HTTP_200,
               sess: session.Session | None = None, **context: Any) -> None:
        resp.status = code
        resp.content_type = falcon.MEDIA_HTML
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        resp.set_header("X-Frame-Options", "DENY")
        resp.set_header("Referrer-Policy", "same-origin")
        resp.text = self.env.get_template(template).render(
            user=sess.key if sess else None, csrf=session.csrf_token(self.store, sess.nonce) if sess else "",
            **context)

    def check_csrf(self, req: falcon.Request, sess: session.Session, form: dict[str, Any]) -> None:
        if not session.csrf_ok(self.store, sess.nonce, form.get("csrf")):
            raise BadRequestPage("The form has expired or did not come from this console (CSRF token). "
                                 "Go back, reload the page and try again.")


def scope_of(sess: session.Session) -> str | None:
    return None if sess.key.is_admin else sess.key.tenant


def read_form(req: falcon.Request) -> dict[str, Any]:
    """An urlencoded form as {name: value} (the first value of each name)."""
    if (req.content_length or 0) > 64 * 1024:
        raise BadRequestPage("The form is too large.")
    media = req.get_media(default_when_empty={}) if req.content_length else {}
    if not isinstance(media, dict):
        raise BadRequestPage("Send the form as application/x-www-form-urlencoded.")
    return {k: (v[0] if isinstance(v, list) else v) for k, v in media.items()}


class Page:
    public = True  # the API's key middleware lets it through: the console checks its own session

    def __init__(self, console: Console) -> None:
        self.c = console


# ---------------------------------------------------------------------------------------- login
def _safe_next(value: str | None) -> str:
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value \
            and not value.startswith(f"{PREFIX}/login") and not value.startswith(f"{PREFIX}/logout"):
        return value
    return f"{PREFIX}/batches"


class RootRedirect(Page):
    def on_get(self, req, resp):
        raise falcon.HTTPSeeOther(f"{PREFIX}/batches")


class Login(Page):
    def on_get(self, req, resp):
        nonce = session.login_nonce(req, resp)
        self.c.render(resp, "login.html", next=_safe_next(req.get_param("next")),
                      login_csrf=session.csrf_token(self.c.store, nonce), error=None)

    def on_post(self, req, resp):
        form = read_form(req)
        nonce = (req.get_cookie_values(session.LOGIN_COOKIE) or [None])[0]
        nxt = _safe_next(form.get("next"))
        if not session.csrf_ok(self.c.store, nonce, form.get("csrf")):
            nonce = session.login_nonce(req, resp)
            return self.c.render(resp, "login.html", falcon.HTTP_400, next=nxt,
                                 login_csrf=session.csrf_token(self.c.store, nonce),
                                 error="The login form expired; please paste your key again.")
        key = (form.get("key") or "").strip()
        info = lookup_key(self.c.store.engine, key) if key and len(key) <= 256 else None
        if info is None:
            return self.c.render(resp, "login.html", falcon.HTTP_401, next=nxt,
                                 login_csrf=session.csrf_token(self.c.store, nonce),
                                 error="That API key is not valid (unknown or revoked).")
        session.start(req, resp, self.c.store, info)
        raise falcon.HTTPSeeOther(nxt)


class Logout(Page):
    def on_post(self, req, resp):
        current = session.current(req, self.c.store)
        if current is not None:
            self.c.check_csrf(req, current, read_form(req))
        session.end(req, resp, self.c.store, current)
        raise falcon.HTTPSeeOther(f"{PREFIX}/login")


# ---------------------------------------------------------------------------------------- batches
def _choice(req: falcon.Request, name: str, values: list[str]) -> str | None:
    value = req.get_param(name) or None
    if value is not None and value not in values:
        raise BadRequestPage(f"{name} must be one of {', '.join(values)}.")
    return value


def _cursor(req: falcon.Request, store: Store, kind: type, scope: str) -> Any:
    try:
        return decode_cursor(req.get_param("after"), kind, store.cursor_key, scope)
    except ApiError:
        raise BadRequestPage("That page link is not valid any more; start from the first page.") from None


def bar(p: dict[str, Any]) -> dict[str, Any]:
    """Progress bar segments in percent: complete, failed (own colour), cancelled."""
    total = p["total"] or 1
    c = p["counts"]
    return {"ok": 100 * c["complete"] / total, "failed": 100 * c["failed"] / total,
            "cancelled": 100 * c["cancelled"] / total, "percent": int(100 * p["done"] / total) if p["total"] else 100}


class Batches(Page):
    def on_get(self, req, resp):
        sess = self.c.session(req)
        status = _choice(req, "status", [s.value for s in BatchStatus])
        tenant = scope_of(sess)
        cscope = f"console-batches|{tenant}|{status}"
        after = _cursor(req, self.c.store, list, cscope)
        try:
            total, rows = self.c.store.list_batches(status, None, tuple(after) if after else None, PAGE + 1, tenant=tenant)
        except ValueError:
            raise BadRequestPage("That page link is not valid any more; start from the first page.") from None
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        items = []
        for r in rows:
            p = batch_progress(self.c.store, r)
            items.append({"row": r, "p": p, "bar": bar(p)})
        nxt = None
        if more and rows:
            last = rows[-1]
            nxt = encode_cursor([last["created_at"].isoformat(), str(last["id"])], self.c.store.cursor_key, cscope)
        live = any(i["p"]["status"] in ACTIVE for i in items)
        fragment = req.get_header("X-Console-Fragment") == "1"
        self.c.render(resp, "batches_table.html" if fragment else "batches.html", sess=sess, items=items, total=total,
                      status=status, statuses=[s.value for s in BatchStatus], next_after=nxt, live=live,
                      live_url=req.relative_uri)


def parse_upload(filename: str, data: bytes) -> list[str]:
    """The domains of an uploaded .txt (one a line) or .csv (first column; a header row is skipped)."""
    name = (filename or "").lower()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequestPage(f"{filename} is not UTF-8 text.") from None
    if name.endswith(".csv"):
        out = []
        for i, row in enumerate(csv.reader(io.StringIO(text))):
            cells = [c.strip() for c in row if c.strip()]
            if not cells:
                continue
            if i == 0 and cells[0].lower() in ("domain", "domains", "url", "urls", "website", "site", "host"):
                continue
            out.append(cells[0])
        return out
    if name.endswith(".txt"):
        return split_domains(text)
    raise BadRequestPage(f"Upload a .txt or .csv file, not {filename[:100]!r}.")


def split_domains(text: str) -> list[str]:
    """One input a line (or separated by commas, semicolons or tabs); a line with spaces stays one input."""
    return [t.strip() for t in re.split(r"[\r\n,;\t]+", text) if t.strip()]


class NewBatch(Page):
    def on_get(self, req, resp):
        sess = self.c.session(req)
        self.c.render(resp, "batch_new.html", sess=sess, error=None, rejected=[], domains="", max_pages="",
                      callback_url="", max_pages_limit=self.c.config.max_pages_limit,
                      max_domains=self.c.config.max_batch_domains)

    def on_post(self, req, resp):
        sess = self.c.session(req)
        form: dict[str, Any] = {}
        items: list[str] = []
        ctype = (req.content_type or "").lower()
        if ctype.startswith("multipart/form-data"):
            for part in req.get_media():
                if part.name == "file" and part.filename:
                    items += parse_upload(part.filename, part.stream.read(self.c.config.max_body_bytes + 1))
                elif part.name in ("domains", "max_pages", "callback_url", "csrf"):
                    form[part.name] = part.text
        else:
            form = read_form(req)
        self.c.check_csrf(req, sess, form)
        text = form.get("domains") or ""
        items = split_domains(text) + items

        def again(status, error, rejected=()):
            self.c.render(resp, "batch_new.html", status, sess=sess, error=error, rejected=list(rejected),
                          domains=text, max_pages=form.get("max_pages") or "",
                          callback_url=form.get("callback_url") or "", max_pages_limit=self.c.config.max_pages_limit,
                          max_domains=self.c.config.max_batch_domains)

        raw_max = (form.get("max_pages") or "").strip()
        max_pages = None
        if raw_max:
            if not raw_max.isdigit() or not 1 <= int(raw_max) <= self.c.config.max_pages_limit:
                return again(falcon.HTTP_422, f"Max pages must be a whole number from 1 to {self.c.config.max_pages_limit}.")
            max_pages = int(raw_max)
        if not items:
            return again(falcon.HTTP_422, "Paste at least one domain or upload a .txt or .csv file.")
        try:
            result = submit_batch(self.c.store, self.c.config, self.c.quotas, self.c.dispatcher, items, max_pages,
                                  sess.key.tenant, sess.key.is_admin, (form.get("callback_url") or "").strip() or None,
                                  sess.key.name)
        except ApiError as exc:
            if exc.headers:
                resp.set_headers(exc.headers)
            return again(exc.status, exc.description, (exc.extra or {}).get("rejected", []))
        target = f"{PREFIX}/batches/{result['batch_id']}"
        if result["rejected"] or result["duplicates"]:
            notice = encode_cursor([result["rejected"][:100], len(result["rejected"]), result["duplicates"]],
                                   self.c.store.cursor_key, f"console-notice:{result['batch_id']}")
            target += "?" + urlencode({"notice": notice})
        raise falcon.HTTPSeeOther(target)


class BatchPage(Page):
    def on_get(self, req, resp, batch_id: uuid.UUID):
        sess = self.c.session(req)
        row = self.c.store.batch_row(batch_id, scope_of(sess))
        if row is None:
            raise NotFoundPage(f"There is no batch {batch_id}.")
        status = _choice(req, "status", [s.value for s in JobStatus])
        outcome = _choice(req, "outcome", [o.value for o in Outcome])
        cscope = f"console-batch:{batch_id}:{status}:{outcome}"
        after = _cursor(req, self.c.store, str, cscope)
        p = batch_progress(self.c.store, row)
        rows = self.c.store.batch_jobs(batch_id, after, PAGE + 1, status, outcome)
        nxt = encode_cursor(rows[PAGE - 1]["domain"], self.c.store.cursor_key, cscope) if len(rows) > PAGE else None
        notice = None
        if req.get_param("notice"):
            try:
                notice = decode_cursor(req.get_param("notice"), list, self.c.store.cursor_key, f"console-notice:{batch_id}")
            except ApiError:
                notice = None
        fragment = req.get_header("X-Console-Fragment") == "1"
        webhook = next((delivery_view(d) for d in self.c.store.deliveries(batch_id=batch_id)), None)
        self.c.render(resp, "batch_live.html" if fragment else "batch.html", sess=sess, batch=row, p=p, bar=bar(p),
                      webhook=webhook,
                      jobs=rows[:PAGE], status=status, outcome=outcome, next_after=nxt,
                      statuses=[s.value for s in JobStatus], outcomes=[o.value for o in Outcome],
                      live=p["status"] in ACTIVE or _webhook_due_soon(webhook), live_url=req.relative_uri, notice=notice,
                      filters=urlencode({k: v for k, v in (("status", status), ("outcome", outcome)) if v}))


def _webhook_due_soon(webhook: dict | None) -> bool:
    """The batch page keeps refreshing until its webhook's first attempt is known (not through retries)."""
    return bool(webhook) and (webhook["status"] == "waiting" or (
        webhook["status"] == "pending" and webhook["last_status_code"] is None and webhook["last_error"] is None))


class BatchCancel(Page):
    def on_post(self, req, resp, batch_id: uuid.UUID):
        sess = self.c.session(req)
        self.c.check_csrf(req, sess, read_form(req))
        outcome, _ = self.c.store.cancel_batch(batch_id, scope_of(sess))
        if outcome == "missing":
            raise NotFoundPage(f"There is no batch {batch_id}.")
        if outcome == "cancelled" and self.c.dispatcher is not None:
            for node, crawl in self.c.store.crawls_of_batch(batch_id):
                self.c.dispatcher.cancel_crawl_if_idle(node, crawl)
        raise falcon.HTTPSeeOther(f"{PREFIX}/batches/{batch_id}")


class JobExport(Page):
    """A job's URLs as CSV for a console session: the API's own export (/api/v1/jobs/{id}/urls?format=csv)."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.api = JobUrlsResource(console.store)

    def on_get(self, req, resp, job_id: uuid.UUID):
        sess = self.c.session(req)
        if self.c.store.job_row(job_id, scope_of(sess)) is None:
            raise NotFoundPage(f"There is no job {job_id}.")
        req.context.tenant, req.context.is_admin = sess.key.tenant, sess.key.is_admin
        req.context.query = {"format": "csv", "change": "all"}  # what the API's contract check would hand it
        self.api.on_get(req, resp, job_id)


# ---------------------------------------------------------------------------------------- domain
def _bool_param(req: falcon.Request, name: str) -> bool | None:
    value = req.get_param(name) or ""
    if value not in ("", "yes", "no"):
        raise BadRequestPage(f"{name} must be yes or no.")
    return None if not value else value == "yes"


def _date_param(req: falcon.Request, name: str) -> dt.datetime | None:
    value = req.get_param(name) or ""
    if not value:
        return None
    try:
        return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.timezone.utc)
    except ValueError:
        raise BadRequestPage(f"{name} must be a date like 2026-01-31.") from None


def histogram_svg(bins: list[tuple[str, int]], width: int = 720, height: int = 180) -> dict[str, Any]:
    """Bars (x, y, w, h, month, count) of the lastmod histogram, scaled to the SVG's size."""
    if not bins:
        return {"bars": [], "width": width, "height": height, "max": 0}
    top = max(n for _, n in bins) or 1
    plot_h = height - 30
    w = (width - 40) / len(bins)
    bars = []
    for i, (month, n) in enumerate(bins):
        h = plot_h * n / top
        bars.append({"x": round(40 + i * w, 2), "y": round(10 + plot_h - h, 2), "w": round(max(w - 1, 1), 2),
                     "h": round(h, 2), "month": month, "count": n})
    return {"bars": bars, "width": width, "height": height, "max": top, "plot_h": plot_h}


class DomainPage(Page):
    def on_get(self, req, resp, domain: str):
        sess = self.c.session(req)
        try:
            name = parse_site(domain, strict=True).name
        except DomainError as exc:
            raise NotFoundPage(f"{domain[:200]} is not a domain name: {exc.reason}") from None
        tenant = scope_of(sess)
        store = self.c.store
        row = store.get_domain(name, tenant)
        total_scans, scans = store.list_jobs(name, None, None, None, None, 100, tenant=tenant)
        if row is None or (tenant is not None and not total_scans):
            raise NotFoundPage(f"{name} has not been scanned.")
        complete = [s for s in scans if _v(s["status"]) == JobStatus.COMPLETE.value]
        wanted = req.get_param("scan")
        job = None
        if wanted:
            job = next((s for s in complete if str(s["id"]) == wanted), None)
            if job is None:
                raise NotFoundPage(f"There is no complete scan {wanted[:60]} of {name}.")
        elif complete:
            job = complete[0]
        job_full = store.job_row(job["id"]) if job else None
        tree = queries.sitemap_tree(store, job["id"]) if job else []
        hist = histogram_svg(queries.lastmod_histogram(store, job_full)) if job_full else histogram_svg([])
        search = (req.get_param("q") or "").strip()[:300] or None
        sitemap_url = req.get_param("sitemap") or None
        has_lastmod = _bool_param(req, "has_lastmod")
        changed_since = _date_param(req, "changed_since")
        filters = {k: v for k, v in (("scan", wanted), ("q", search), ("sitemap", sitemap_url),
                                     ("has_lastmod", req.get_param("has_lastmod")),
                                     ("changed_since", req.get_param("changed_since"))) if v}
        cscope = f"console-urls:{name}:{sorted(filters.items())}"
        after = _cursor(req, store, str, cscope)
        url_total, urls, nxt = 0, [], None
        if job_full:
            url_total, urls = queries.url_page(store, job_full, search=search, sitemap_url=sitemap_url,
                                               has_lastmod=has_lastmod, changed_since=changed_since,
                                               after_url=after, limit=PAGE + 1)
            if len(urls) > PAGE:
                nxt = encode_cursor(urls[PAGE - 1]["url"], store.cursor_key, cscope)
            urls = urls[:PAGE]
        diff = None
        frm, to = req.get_param("from"), req.get_param("to")
        if len(complete) >= 2:
            by_id = {str(s["id"]): s for s in complete}
            if (frm and frm not in by_id) or (to and to not in by_id):
                raise NotFoundPage("One of the scans to compare is not a complete scan of this domain.")
            b = by_id.get(to) or job or complete[0]
            older = [s for s in complete if (s["finished_at"] or s["created_at"]) < (b["finished_at"] or b["created_at"])]
            a = by_id.get(frm) or (older[0] if older else None)
            if a is not None and a["id"] != b["id"]:
                diff = queries.changes(store, store.job_row(a["id"]), store.job_row(b["id"]))
        self.c.render(resp, "domain.html", sess=sess, name=name, d=row, scans=scans, complete=complete, job=job_full,
                      tree=tree, hist=hist, urls=urls, url_total=url_total, next_after=nxt, search=search or "",
                      sitemap_url=sitemap_url or "", has_lastmod=req.get_param("has_lastmod") or "",
                      changed_since=req.get_param("changed_since") or "", filters=urlencode(filters),
                      sitemap_urls=[t["url"] for t in tree], diff=diff, wanted=wanted or "")


# ---------------------------------------------------------------------------------------- errors
class Missing(Page):
    """Any other /console/... path: the 404 page."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)

    def __call__(self, req, resp, **kwargs):
        raise NotFoundPage("There is no such page.")


def add_console(app: falcon.App, store: Store, config, dispatcher=None) -> Console:
    console = Console(store, config, dispatcher)

    def not_found(req, resp, exc, params):
        sess = None
        try:
            sess = session.current(req, store)
        except Exception:  # noqa: BLE001 - the 404 page must render even when the database is down
            pass
        console.render(resp, "error.html", falcon.HTTP_404, sess=sess, title="Not found", message=exc.message)

    def bad_request(req, resp, exc, params):
        console.render(resp, "error.html", falcon.HTTP_400, sess=None, title="Bad request", message=exc.message)

    def failed(req, resp, exc, params):
        """Errors on console pages are HTML pages too; the API's stay JSON (api.http)."""
        if isinstance(exc, (falcon.HTTPError, falcon.HTTPStatus)) or not req.path.startswith(PREFIX + "/"):
            handler = handle_db_error if isinstance(exc, DBAPIError) else handle_unexpected
            return handler(req, resp, exc, params)
        if isinstance(exc, DBAPIError):
            logger.warning("database error on %s %s: %s", req.method, req.path, str(exc).splitlines()[0])
            return console.render(resp, "error.html", falcon.HTTP_503, title="Database unavailable",
                                  message="The database could not be reached; try again in a moment.")
        logger.exception("unhandled error on %s %s", req.method, req.path)
        console.render(resp, "error.html", falcon.HTTP_500, title="Something went wrong",
                       message="An unexpected error occurred; it has been logged.")

    app.add_error_handler(Exception, failed)
    app.add_error_handler(DBAPIError, failed)
    app.add_error_handler(OperationalError, failed)
    app.add_error_handler(NotFoundPage, not_found)
    app.add_error_handler(BadRequestPage, bad_request)
    app.add_route("/", RootRedirect(console))
    app.add_route(PREFIX, RootRedirect(console))
    app.add_route(f"{PREFIX}/login", Login(console))
    app.add_route(f"{PREFIX}/logout", Logout(console))
    app.add_route(f"{PREFIX}/batches", Batches(console))
    app.add_route(f"{PREFIX}/batches/new", NewBatch(console))
    app.add_route(f"{PREFIX}/batches/{{batch_id:uuid}}", BatchPage(console))
    app.add_route(f"{PREFIX}/batches/{{batch_id:uuid}}/cancel", BatchCancel(console))
    app.add_route(f"{PREFIX}/jobs/{{job_id:uuid}}/urls.csv", JobExport(console))
    app.add_route(f"{PREFIX}/domains/{{domain}}", DomainPage(console))
    app.add_sink(Missing(console), prefix=re.compile(f"^{PREFIX}/(?!static/)"))
    app.add_static_route(f"{PREFIX}/static", str(HERE / "static"))
    return console
