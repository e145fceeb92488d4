"""The `sitemap` spider: every sitemap URL of one domain or of many, crawled concurrently.

    scrapy crawl sitemap -a domain=example.com [-a job_id=UUID] [-a max_pages=N] [-O urls.csv]
    scrapy crawl sitemap -a domains=a.com,b.com [-a job_ids=UUID,UUID] [-a batch_id=UUID]
    scrapy crawl sitemap -a domains_file=domains.txt

Per domain: the home page of each origin in turn (`pipelines.domains.Site.origins`: as typed, https
first for a bare host, then the www./apex counterpart) until one answers → robots.txt `Sitemap:` lines →
sitemap links on the home page → the well-known paths; then every index is walked (depth capped). An
origin whose home page fails at connection level, or answers 5xx on both the home page and robots.txt,
is given up (two requests at most, no retries, no probes); when every origin is given up the job ends
`failed`/`unreachable`. The job's outcome (`pipelines.status.Outcome`) is decided in `_finish`.
Each sitemap is fetched at most once per scan. Parsing is in `scrapersky_crawler.sitemap` and
`scrapersky_crawler.homepage`; this module only wires requests and hands items to the pipelines.
Extend it through SitemapSpider's hooks: `sitemap_filter(entries)` sees every parsed entry (index and
page entries; the URL is under "url") and `sitemap_follow` regexes choose which index children to
follow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import heapq
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlsplit

from scrapy import Request, signals
from scrapy.exceptions import DontCloseSpider
from scrapy.http import Response, TextResponse
from scrapy.spiders import SitemapSpider
from twisted.python.failure import Failure

from pipelines.domains import DomainError, parse_site
from pipelines.status import DiscoveredBy, Outcome
from scrapersky_crawler.homepage import read_home_page, sitemap_links
from scrapersky_crawler.items import HomePage, JobFinished, JobStarted, PageBatch, SitemapFile
from scrapersky_crawler.sitemap import SitemapReader, sitemap_urls_from_robots

logger = logging.getLogger(__name__)

# The original system's 18 paths and those of ultimate-sitemap-parser, without repeats.
WELL_KNOWN_PATHS = (
    "/sitemap.xml",
    "/sitemap_index.xml",
    "/sitemap-index.xml",
    "/sitemap.xml.gz",
    "/sitemap_index.xml.gz",
    "/sitemap-index.xml.gz",
    "/sitemapindex.xml",
    "/sitemap.php",
    "/sitemap.txt",
    "/sitemap",
    "/.sitemap.xml",
    "/sitemap/sitemap.xml",
    "/sitemap/index.xml",
    "/sitemap/sitemap-index.xml",
    "/wp-sitemap.xml",
    "/wp-sitemap-index.xml",
    "/post-sitemap.xml",
    "/page-sitemap.xml",
    "/product-sitemap.xml",
    "/category-sitemap.xml",
    "/sitemaps.xml",
    "/sitemap1.xml",
    "/rss.xml",
    "/atom.xml",
    "/sitemap_news.xml",
    "/sitemap-news.xml",
    "/sitemap_news.xml.gz",
    "/sitemap-news.xml.gz",
    "/admin/config/search/xmlsitemap",
)


# Error responses reach the callbacks (and are recorded); redirects are still followed.
ERROR_STATUSES = list(range(400, 600))
UNLIMITED = 2**62


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass(eq=False)
class Scan:
    """What the spider knows about one domain's scan while it runs."""

    domain: str  # the site's identity (pipelines.domains.Site.name)
    job_id: str
    origins: list[str]  # scheme://host[:port] to try, in order
    batch_id: str | None
    max_pages: int
    rank: int = 0  # position in the crawl: earlier domains get their requests first
    tried: int = 0  # index in `origins` of the origin being tried
    base: str = ""  # scheme://host[:port] that answered
    origin_errors: list[tuple[str, str]] = field(default_factory=list)  # (origin, why it was given up)
    started: float = field(default_factory=time.monotonic)
    outstanding: int = 0  # requests and callbacks not yet done (waiting ones included)
    waiting: list[tuple[int, int, Request]] = field(default_factory=list)  # sitemap requests, a heap
    fetching: int = 0  # sitemap requests handed to Scrapy and not yet handled
    seen: set[str] = field(default_factory=set)  # sitemap URLs requested this scan
    home_links: list[str] = field(default_factory=list)
    sitemaps_found: int = 0
    sitemaps_failed: int = 0
    pages: int = 0  # page entries handed to the pipelines
    bytes: int = 0
    capped: bool = False
    error: str | None = None  # the first problem met (a failed sitemap, an exception)
    crashed: bool = False  # an exception interrupted part of the scan
    finished: bool = False

    @property
    def options(self) -> dict[str, Any]:
        return {"max_pages": self.max_pages if self.max_pages < UNLIMITED else None, "origins": self.origins}

    def note(self, problem: str) -> None:
        """Keep the first problem of the scan (the job's `error`)."""
        if self.error is None:
            self.error = one_line(problem)


class SitemapCrawlSpider(SitemapSpider):
    name = "sitemap"
    sitemap_rules = ()  # page URLs are recorded, never fetched

    ARGUMENTS = ("domain", "domains", "domains_file", "job_id", "job_ids", "batch_id", "max_pages")

    def __init__(self, *args: Any, **kwargs: Any):
        own = {name: kwargs.pop(name) for name in self.ARGUMENTS if name in kwargs}
        super().__init__(*args, **kwargs)
        # keyed by job: the same site given twice is scanned twice, and both jobs finish
        self.scans: dict[str, Scan] = {scan.job_id: scan for scan in self.parse_arguments(**own)}
        self._callbacks = {name: self._tracked(getattr(self, name)) for name in (
            "_parse_home", "_home_failed", "_parse_robots", "_robots_failed", "_parse_sitemap_file", "_sitemap_failed")}
        self.domains_done = 0
        self.sitemaps_done = 0
        self.urls_found = 0

    # -- arguments ----------------------------------------------------------------------------

    @classmethod
    def parse_arguments(
        cls,
        domain: str | None = None,
        domains: str | None = None,
        domains_file: str | None = None,
        job_id: str | None = None,
        job_ids: str | None = None,
        batch_id: str | None = None,
        max_pages: str | int | None = None,
        **_other: Any,
    ) -> list[Scan]:
        """The scans the spider arguments ask for; ValueError with a one-line reason when they are wrong."""
        inputs = cls._domain_inputs(domain, domains, domains_file)
        ids = cls._job_ids(inputs, job_id, job_ids)
        cap = cls._max_pages(max_pages)
        if batch_id:
            try:
                batch_id = str(uuid.UUID(batch_id))
            except ValueError:
                raise ValueError(f"batch_id must be a UUID, not {batch_id!r}") from None
        if len(set(ids)) != len(ids):
            raise ValueError("job ids must be different from each other")
        scans = []
        for text, jid in zip(inputs, ids, strict=True):
            try:
                site = parse_site(text)
            except DomainError as exc:
                raise ValueError(f"domain {text!r}: {exc}") from None
            scans.append(Scan(domain=site.name, job_id=jid, origins=site.origins(), batch_id=batch_id, max_pages=cap))
        return scans

    @staticmethod
    def _domain_inputs(domain: str | None, domains: str | None, domains_file: str | None) -> list[str]:
        inputs: list[str] = []
        if domain:
            inputs.append(domain)
        if domains:
            inputs.extend(d for d in (part.strip() for part in domains.split(",")) if d)
        if domains_file:
            try:
                lines = Path(domains_file).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ValueError(f"cannot read domains_file {domains_file!r}: {exc.strerror}") from None
            inputs.extend(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
        if not inputs:
            raise ValueError("give a domain: -a domain=example.com (or -a domains=a.com,b.com, or -a domains_file=FILE)")
        return inputs

    @staticmethod
    def _job_ids(inputs: list[str], job_id: str | None, job_ids: str | None) -> list[str]:
        given = [job_id] if job_id else []
        if job_ids:
            given.extend(part.strip() for part in job_ids.split(",") if part.strip())
        if given and len(given) != len(inputs):
            raise ValueError(f"{len(given)} job id(s) for {len(inputs)} domain(s): give one per domain, in order")
        try:
            return [str(uuid.UUID(jid)) for jid in given] or [str(uuid.uuid4()) for _ in inputs]
        except ValueError:
            raise ValueError("job ids must be UUIDs") from None

    @staticmethod
    def _max_pages(max_pages: str | int | None) -> int:
        """The per-domain cap asked for (SITEMAP_MAX_URLS_PER_DOMAIN still applies on top)."""
        if max_pages in (None, ""):
            return UNLIMITED
        try:
            value = int(max_pages)
        except (TypeError, ValueError):
            raise ValueError(f"max_pages must be a whole number, not {max_pages!r}") from None
        if value < 1:
            raise ValueError("max_pages must be at least 1")
        return value

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> SitemapCrawlSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        spider.max_bytes = settings.getint("SITEMAP_MAX_BYTES")
        spider.max_depth = settings.getint("SITEMAP_MAX_DEPTH")
        spider.max_files = settings.getint("SITEMAP_MAX_FILES_PER_DOMAIN")
        spider.chunk = settings.getint("SITEMAP_PAGE_CHUNK")
        probe = str(settings.get("SITEMAP_PROBE_WELL_KNOWN")).strip().lower()
        spider.probe_well_known = {"true": "always", "1": "always", "false": "never", "0": "never"}.get(probe, probe)
        if spider.probe_well_known not in ("always", "fallback", "never"):
            raise ValueError(f"SITEMAP_PROBE_WELL_KNOWN must be always, fallback or never, not {probe!r}")
        spider.per_domain = max(1, settings.getint("SITEMAP_CONCURRENCY_PER_DOMAIN"))
        cap = settings.getint("SITEMAP_MAX_URLS_PER_DOMAIN")
        for scan in spider.scans.values():
            scan.max_pages = min(scan.max_pages, cap)
        crawler.signals.connect(spider._on_idle, signal=signals.spider_idle)
        return spider

    def job_ids(self) -> list[str]:
        return [scan.job_id for scan in self.scans.values()]

    # -- start: home page, robots.txt, discovery ------------------------------------------------

    async def start(self) -> AsyncIterator[Any]:
        for rank, scan in enumerate(self.scans.values()):
            scan.rank = rank
            scan.started = time.monotonic()
            yield JobStarted(scan.job_id, scan.domain, scan.batch_id, scan.options, utcnow())
            for request in self._try_origin(scan):
                yield request

    # An origin is tried with its home page, then (when that answered 5xx) its robots.txt: no retries,
    # so a dead domain costs at most two requests per origin (a proxy answers 502/503/504 for it).

    def _try_origin(self, scan: Scan) -> Iterator[Request]:
        if scan.tried >= len(scan.origins):
            return  # every origin given up: `_finish` says unreachable
        scan.outstanding += 1
        yield Request(
            scan.origins[scan.tried] + "/",
            callback=self._callbacks['_parse_home'],
            errback=self._callbacks['_home_failed'],
            meta={"scan": scan, "handle_httpstatus_list": ERROR_STATUSES, "dont_retry": True},
            dont_filter=True,
            priority=_priority(scan, 30),
        )

    def _give_up_origin(self, scan: Scan, why: str) -> Iterator[Request]:
        origin = scan.origins[scan.tried]
        scan.origin_errors.append((origin, why))
        scan.tried += 1
        if scan.tried < len(scan.origins):
            logger.info("%s: %s did not answer (%s); trying %s", scan.domain, origin, why, scan.origins[scan.tried])
        yield from self._try_origin(scan)

    def _robots_request(self, scan: Scan, origin: str, checking: bool) -> Request:
        scan.outstanding += 1
        return Request(
            origin + "/robots.txt",
            callback=self._callbacks['_parse_robots'],
            errback=self._callbacks['_robots_failed'],
            meta={"scan": scan, "handle_httpstatus_list": ERROR_STATUSES, "dont_retry": True,
                  "checking_origin": checking},
            dont_filter=True,
            priority=_priority(scan, 30),
        )

    def _home_failed(self, failure: Failure) -> Iterator[Any]:
        scan: Scan = failure.request.meta["scan"]
        yield from self._give_up_origin(scan, _reason(failure))

    def _parse_home(self, response: Response) -> Iterator[Any]:
        scan: Scan = response.meta["scan"]
        if response.status >= 500:  # a dead host behind a proxy looks like this: ask robots.txt too
            scan.origin_errors.append((scan.origins[scan.tried], f"HTTP {response.status} on /"))
            yield self._robots_request(scan, scan.origins[scan.tried], checking=True)
            return
        scan.base = _origin(response.url)
        if response.status == 200 and isinstance(response, TextResponse):
            body, encoding = response.body, response.encoding
            yield HomePage(scan.job_id, scan.domain, response.url, read_home_page(body, response.url, encoding))
            scan.home_links = sitemap_links(body, response.url, encoding)
        yield self._robots_request(scan, scan.base, checking=False)

    def _parse_robots(self, response: Response) -> Iterator[Any]:
        scan: Scan = response.meta["scan"]
        if response.meta["checking_origin"]:
            if response.status >= 500:
                scan.origin_errors.pop()  # the home page's 5xx, said again with robots.txt's
                yield from self._give_up_origin(scan, f"HTTP {response.status} on / and /robots.txt")
                return
            scan.base = _origin(response.url)  # robots.txt answered: the site is there
        urls = sitemap_urls_from_robots(response.body, response.url) if response.status == 200 else []
        yield from self._discover(scan, urls)

    def _robots_failed(self, failure: Failure) -> Iterator[Any]:
        scan: Scan = failure.request.meta["scan"]
        if failure.request.meta["checking_origin"]:
            scan.origin_errors.pop()
            yield from self._give_up_origin(scan, f"HTTP 5xx on /, then {_reason(failure)} on /robots.txt")
            return
        yield from self._discover(scan, [])

    def _discover(self, scan: Scan, robots_urls: list[str]) -> Iterator[Request]:
        for url in robots_urls:
            yield from self._sitemap_request(scan, url, DiscoveredBy.ROBOTS, None, 1)
        for url in scan.home_links:
            yield from self._sitemap_request(scan, url, DiscoveredBy.HOME_PAGE, scan.base + "/", 1)
        if self.probe_well_known == "always" or (self.probe_well_known == "fallback" and not scan.seen):
            for path in WELL_KNOWN_PATHS:
                yield from self._sitemap_request(scan, scan.base + path, DiscoveredBy.WELL_KNOWN, None, 1, probe=True)

    # -- sitemaps -----------------------------------------------------------------------------

    def _sitemap_request(
        self, scan: Scan, url: str, how: DiscoveredBy, parent: str | None, depth: int, probe: bool = False
    ) -> Iterator[Any]:
        url = url.strip()
        with contextlib.suppress(ValueError):  # an unparseable URL is refused by Request below
            url = urldefrag(url)[0]
        if url in scan.seen or scan.capped:
            return
        scan.seen.add(url)
        record = SitemapFile(scan.job_id, scan.domain, url, how.value, parent)
        if depth > self.max_depth:
            yield _failed(scan, record, f"not fetched: index nesting deeper than {self.max_depth}")
            return
        if len(scan.seen) > self.max_files:
            yield _failed(scan, record, f"not fetched: more than {self.max_files} sitemap files for this domain")
            return
        priority = _priority(scan, 0 if probe else 10 + depth)  # listed sitemaps before guesses; deeper first
        try:
            request = Request(
                url,
                callback=self._callbacks['_parse_sitemap_file'],
                errback=self._callbacks['_sitemap_failed'],
                meta={"scan": scan, "record": record, "sitemap_depth": depth, "probe": probe, "handle_httpstatus_list": ERROR_STATUSES},
                dont_filter=True,
                priority=priority,
            )
        except ValueError as exc:  # a location urllib cannot parse (`http://[x/`, a port that is not a number)
            yield _failed(scan, record, f"not fetched: invalid URL ({exc})")
            return
        scan.outstanding += 1
        heapq.heappush(scan.waiting, (-priority, len(scan.seen), request))
        yield from self._release(scan)

    def _release(self, scan: Scan) -> Iterator[Request]:
        """Hand sitemap requests to Scrapy, at most SITEMAP_CONCURRENCY_PER_DOMAIN at a time: a
        sitemap's body stays in memory until it is parsed, so this bounds memory per domain."""
        while scan.waiting and scan.fetching < self.per_domain:
            scan.fetching += 1
            yield heapq.heappop(scan.waiting)[2]

    def _sitemap_failed(self, failure: Failure) -> Iterator[Any]:
        meta = failure.request.meta
        if meta["probe"]:
            return
        record: SitemapFile = meta["record"]
        record.fetched_at = utcnow()
        yield _failed(meta["scan"], record, _reason(failure))

    def _parse_sitemap_file(self, response: Response) -> Iterator[Any]:
        meta = response.meta
        scan: Scan = meta["scan"]
        record: SitemapFile = meta["record"]
        probe: bool = meta["probe"]
        record.http_status = response.status
        record.fetched_at = utcnow()
        record.size_bytes = len(response.body)
        record.last_modified = _header(response, b"Last-Modified")
        scan.bytes += len(response.body)
        final_url = urldefrag(response.url)[0]
        if final_url != record.url:
            if final_url in scan.seen:  # a redirect to a sitemap this scan has (or will have) read
                if not probe:  # recorded, but not a failure: its pages are read once, there
                    record.error = f"redirects to {final_url}, already read in this scan"
                    yield record
                return
            scan.seen.add(final_url)
        if response.status != 200:
            if not probe:
                yield _failed(scan, record, f"HTTP {response.status}")
            return
        reader = SitemapReader(response.body, final_url, max_bytes=self.max_bytes)
        yield from self._read_sitemap(scan, record, reader, self.sitemap_filter(reader), meta["sitemap_depth"], probe)

    def _read_sitemap(
        self, scan: Scan, record: SitemapFile, reader: SitemapReader, entries: Iterable[dict[str, Any]], depth: int, probe: bool
    ) -> Iterator[Any]:
        announced = False
        batch: list[dict[str, Any]] = []
        seen_here: set[str] = set()
        for entry in entries:
            if reader.is_index:
                child = entry["url"]
                if any(x.search(child) for x in self._follow):
                    yield from self._sitemap_request(scan, child, DiscoveredBy.INDEX, record.url, depth + 1)
                continue
            url = entry["url"]
            if url in seen_here:
                continue
            if scan.pages >= scan.max_pages:
                scan.capped = True
                break
            seen_here.add(url)
            scan.pages += 1
            batch.append(entry)
            if len(batch) >= self.chunk:
                if not announced:  # the sitemap row goes before its first pages, so they can point at it
                    announced = True
                    record.type = reader.type
                    yield dataclasses.replace(record)
                yield self._page_batch(scan, record, batch)
                batch = []
        if probe and reader.type is None:
            return  # a well-known path that holds no sitemap is not a sitemap of this site
        record.type = reader.type
        record.gzipped = reader.gzipped
        record.url_count = reader.url_count
        record.lastmod_count = reader.lastmod_count
        record.priority_count = reader.priority_count
        record.changefreq_count = reader.changefreq_count
        record.generator = reader.generator
        record.error = reader.error
        self.sitemaps_done += 1
        if reader.type is None:
            scan.sitemaps_failed += 1
            scan.note(f"{record.url}: {reader.error or 'not a sitemap'}")
        else:
            scan.sitemaps_found += 1
            if reader.error:  # read, but damaged (truncated, corrupt gzip, too big): a warning
                scan.note(f"{record.url}: {reader.error}")
        if scan.capped:
            record.error = f"stopped at the cap of {scan.max_pages} page URLs for this domain"
        yield record
        if batch:
            yield self._page_batch(scan, record, batch)

    def _page_batch(self, scan: Scan, record: SitemapFile, pages: list[dict[str, Any]]) -> PageBatch:
        self.urls_found += len(pages)
        return PageBatch(scan.job_id, scan.domain, record.url, pages)

    # -- bookkeeping: when is a domain done? --------------------------------------------------

    def _tracked(self, handler: Any) -> Any:
        """Wrap a callback or errback: exceptions end up on the scan, and the item that ends the
        job comes out of whichever callback finishes the domain's last request."""

        def run(arg: Any) -> Iterator[Any]:
            # Not a generator function itself: Scrapy then skips reading its source on every call
            # (its check for generators that return values costs ~2 ms per response).
            return self._run(handler, arg)

        run.__name__ = handler.__name__
        return run

    def _run(self, handler: Any, arg: Any) -> Iterator[Any]:
        meta = (arg.request if isinstance(arg, Failure) else arg).meta
        scan: Scan = meta["scan"]
        try:
            yield from handler(arg)
        except Exception as exc:  # a bug or a hostile file must not stop the other domains
            url = getattr(arg, "url", None) or arg.request.url
            logger.exception("error while handling %s", url)
            scan.crashed = True
            scan.note(f"{url}: {type(exc).__name__}: {exc}")
        if "record" in meta:  # a sitemap request is done: let the next one go
            scan.fetching -= 1
            yield from self._release(scan)
        scan.outstanding -= 1
        if scan.outstanding <= 0 and not scan.finished:
            yield self._finish(scan)

    def _finish(self, scan: Scan) -> JobFinished:
        scan.finished = True
        self.domains_done += 1
        outcome, error = scan_outcome(scan)
        if error:
            log = logger.info if outcome is Outcome.UNREACHABLE else logger.warning
            log("%s: %s: %s", scan.domain, outcome.value, error)
        return JobFinished(
            scan.job_id,
            scan.domain,
            outcome.status.value,
            error,
            utcnow(),
            {
                "sitemaps_found": scan.sitemaps_found,
                "sitemaps_failed": scan.sitemaps_failed,
                "bytes_downloaded": scan.bytes,
                "duration_seconds": round(time.monotonic() - scan.started, 3),
                "capped": scan.capped,
            },
            outcome=outcome.value,
            origin=scan.base or None,
        )

    def _on_idle(self, spider: Any) -> None:
        """Safety net: a scan whose last request vanished without a callback still gets its end."""
        unfinished = [scan for scan in self.scans.values() if not scan.finished]
        if unfinished:
            self.crawler.engine.crawl(Request("data:,", callback=self._finish_unfinished, dont_filter=True,
                                              meta={"scrapersky_internal": True}))
            raise DontCloseSpider

    def _finish_unfinished(self, response: Response) -> Iterator[JobFinished]:
        for scan in self.scans.values():
            if not scan.finished:
                yield self._finish(scan)


def scan_outcome(scan: Scan) -> tuple[Outcome, str | None]:
    """What happened to a finished scan, and the one-line error that goes with it (the vocabulary is
    documented in `pipelines.status`)."""
    if not scan.base:
        reasons = [why for _, why in scan.origin_errors] or ["no origin answered"]
        if len(set(reasons)) == 1:  # said once when every origin failed alike
            tried = reasons[0]
        else:
            tried = "; ".join(f"{origin}: {why}" for origin, why in scan.origin_errors)
        refused = all(why.startswith("refused: ") for why in reasons)
        return (Outcome.REFUSED if refused else Outcome.UNREACHABLE), one_line(f"could not reach {scan.domain}: {tried}")
    if scan.sitemaps_found:
        if scan.sitemaps_failed or scan.error:
            return Outcome.WARNINGS, scan.error or f"{scan.sitemaps_failed} sitemap(s) failed"
        return Outcome.OK, None
    if scan.sitemaps_failed:
        return Outcome.SITEMAPS_FAILED, scan.error or f"{scan.sitemaps_failed} sitemap(s) failed"
    if scan.crashed:
        return Outcome.ERROR, scan.error
    return Outcome.NO_SITEMAP, None


def _failed(scan: Scan, record: SitemapFile, error: str) -> SitemapFile:
    """A sitemap of the scan that could not be read: counted, and its error kept (the first one on the job)."""
    record.error = one_line(error)
    scan.sitemaps_failed += 1
    scan.note(f"{record.url}: {record.error}")
    return record


def _reason(failure: Failure) -> str:
    """A failure in words. Twisted wraps connection failures (ResponseNeverReceived, ResponseFailed)
    around a list of failures: the first inner one says what happened, with its type's name."""
    inner = getattr(failure.value, "reasons", None)
    if inner and isinstance(inner[0], Failure):
        message, name = inner[0].getErrorMessage(), inner[0].type.__name__
        return one_line(f"{name}: {message}" if message and name not in message else (message or name), 200)
    return one_line(failure.getErrorMessage() or failure.type.__name__, 200)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _priority(scan: Scan, kind: int) -> int:
    """Scrapy request priority: a domain's requests before those of later domains (so domains finish
    one after another and a batch's progress moves steadily), then by kind of request."""
    return kind - 100 * scan.rank


def _header(response: Response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1")[:64] if value else None
