"""The request guard: the crawler never reaches inside the network it runs in.

Two parts, both on by default (`scrapersky_crawler/settings.py`), so `scrapy crawl` and scrapyd crawls
get them alike:

- `RequestGuard`, a downloader middleware placed after HttpProxyMiddleware. Every request passes it
  before download: the spider's own, index children, home-page links, robots.txt `Sitemap:` lines
  and the new requests of RedirectMiddleware/MetaRefreshMiddleware (they go through the middleware
  chain again). It refuses schemes other than http/https, IP literals in any spelling and internal
  names (`pipelines.netpolicy`), and, when no proxy is used, names that resolve to an internal
  address. A refused request fails with `RefusedRequest` (an IgnoreRequest), whose message is a
  one-line reason ("refused: 10.0.0.5 is a private address"); the spider records it as the error of
  the sitemap row or of the job.
- `GuardedResolver`, the Twisted resolver (`TWISTED_DNS_RESOLVER`). It resolves a name once (Scrapy's
  DNS cache) and checks the answer before anyone may use it, so the address Twisted connects to is
  the address that was checked: a DNS answer that changes later (rebinding) cannot move the crawl
  inside. Only the configured proxies' hosts skip the check.

With an HTTP proxy (`http_proxy`/`https_proxy` or `request.meta["proxy"]`) the proxy resolves names,
so only IP literals and internal names are checked. `SCRAPERSKY_ALLOW_PRIVATE=1` (environment or
Scrapy setting) lifts the address and name checks for local use; the scheme check stays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from urllib.request import getproxies

from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.resolver import CachingThreadedResolver
from scrapy.utils.datatypes import LocalCache
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import defer
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IResolverSimple
from zope.interface import implementer

from pipelines.netpolicy import address_reason, allow_private, host_reason

logger = logging.getLogger(__name__)

SCHEMES = ("http", "https")


class RefusedRequest(IgnoreRequest):
    """A request the guard did not let out; str() is the one-line reason."""


class RefusedAddress(DNSLookupError):
    """A name that resolves to an address the crawler must not connect to."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _proxy_hosts() -> set[str]:
    hosts = set()
    for scheme, url in getproxies().items():
        if scheme == "no":  # no_proxy: hosts reached directly, checked like any other
            continue
        try:
            host = urlsplit(url if "://" in url else "//" + url).hostname
        except ValueError:
            continue
        if host:
            hosts.add(host.lower())
    return hosts


@implementer(IResolverSimple)
class GuardedResolver(CachingThreadedResolver):
    """Scrapy's caching resolver that refuses names resolving to internal addresses."""

    def __init__(self, reactor: Any, cache_size: int, timeout: float, allow: bool = False):
        super().__init__(reactor, cache_size, timeout)
        self.allow_private = allow
        self.trusted: set[str] = _proxy_hosts()  # the configured proxies: operators chose them
        self.refused: LocalCache[str, str] = LocalCache(max(cache_size, 1000))

    @classmethod
    def from_crawler(cls, crawler: Any, reactor: Any) -> GuardedResolver:
        settings = crawler.settings
        cache_size = settings.getint("DNSCACHE_SIZE") if settings.getbool("DNSCACHE_ENABLED") else 0
        return cls(reactor, cache_size, settings.getfloat("DNS_TIMEOUT"), allow_private(settings))

    def trust(self, host: str) -> None:
        """A proxy's host: connections to it are not checked (the proxy is configuration, not input)."""
        self.trusted.add(host.lower())

    def getHostByName(self, name: str, timeout: Sequence[int] = ()) -> defer.Deferred[str]:  # noqa: N802
        """What Twisted calls before connecting: the checked address, or a RefusedAddress failure."""
        if self.allow_private or name.lower() in self.trusted:
            return super().getHostByName(name, timeout)
        return self.checked(name)

    def checked(self, name: str) -> defer.Deferred[str]:
        """The address of `name` once resolved and checked (proxies get no exemption here)."""
        key = name.lower()
        if key in self.refused:
            return defer.fail(RefusedAddress(self.refused[key]))
        d = super().getHostByName(key)
        d.addCallback(self._check, key)
        return d

    def _check(self, address: str, name: str) -> str:
        reason = address_reason(address)
        if reason:
            message = f"{name} resolves to {address}, {reason}"
            self.refused[name] = message
            raise RefusedAddress(message)
        return address


class RequestGuard:
    """Downloader middleware: refuses every request that would reach inside (see the module doc)."""

    def __init__(self, crawler: Any):
        self.crawler = crawler
        self.allow_private = allow_private(crawler.settings)

    @classmethod
    def from_crawler(cls, crawler: Any) -> RequestGuard:
        guard = cls(crawler)
        if guard.allow_private:
            logger.warning("SCRAPERSKY_ALLOW_PRIVATE is on: the crawl may reach private and loopback addresses")
        elif not crawler.settings.getbool("TWISTED_REACTOR_ENABLED", True):
            # Without Twisted, connections would not go through GuardedResolver: refuse to crawl at all.
            raise RuntimeError("the request guard needs the Twisted reactor (TWISTED_REACTOR_ENABLED=True)")
        return guard

    async def process_request(self, request: Request) -> None:
        parts = urlparse_cached(request)
        if parts.scheme not in SCHEMES:
            if parts.scheme == "data" and request.meta.get("scrapersky_internal"):
                return None  # the spider's own bookkeeping request
            self._refuse(request, f"the scheme {parts.scheme or '(none)'}: is not http or https")
        try:
            host = parts.hostname
        except ValueError:
            host = None
        if not host:
            self._refuse(request, "the URL has no host")
        proxy = request.meta.get("proxy")
        resolver = self._resolver()
        if proxy:
            proxy_host = urlsplit(proxy if "://" in proxy else "//" + proxy).hostname
            if proxy_host:
                resolver.trust(proxy_host)
        if self.allow_private:
            return None
        reason = host_reason(host)
        if reason:
            self._refuse(request, reason)
        if not proxy:  # resolve now, with the resolver Twisted connects through (and its cache)
            try:
                await maybe_deferred_to_future(resolver.checked(host))
            except RefusedAddress as exc:
                self._refuse(request, exc.reason)
        return None

    def _resolver(self) -> GuardedResolver:
        from twisted.internet import reactor

        resolver = getattr(reactor, "resolver", None)
        if not isinstance(resolver, GuardedResolver):
            # Crawls started without CrawlerProcess.start (or with another TWISTED_DNS_RESOLVER) still
            # connect only to checked addresses.
            logger.info("installing %s (the resolver was %s)", GuardedResolver.__name__, type(resolver).__name__)
            resolver = GuardedResolver.from_crawler(self.crawler, reactor)
            resolver.install_on_reactor()
        return resolver

    def _refuse(self, request: Request, reason: str) -> None:
        message = f"refused: {reason}"
        logger.info("%s: %s", _without_userinfo(request.url), message)
        if self.crawler.stats:
            self.crawler.stats.inc_value("scrapersky/guard/refused")
        raise RefusedRequest(message)


def _without_userinfo(url: str) -> str:
    try:
        parts = urlsplit(url)
        if "@" in parts.netloc:
            parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
        return urlunsplit(parts)[:300]
    except ValueError:
        return url[:300]
