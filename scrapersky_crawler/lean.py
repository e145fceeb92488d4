"""Cheaper stand-ins for Scrapy parts that run once per request (a crawl makes ~9 requests per domain,
thousands per process, so a fraction of a millisecond each is a visible share of the crawl's CPU).

- `LeanStatsCollector`: the stats collector without Scrapy's per-attribute `__getattribute__` hook (it
  wraps every method lookup to warn about a deprecated `spider` argument). Same dict, same keys, same
  end-of-crawl dump; `scrapersky/*`, `item_scraped_count` and the rest are kept.
- `CachedProxyMiddleware`: HttpProxyMiddleware with the `no_proxy` decision cached per host. Scrapy
  asks urllib's `proxy_bypass` for every request, which reads and lower-cases the whole environment
  each time (~0.25 ms); the environment is read once at start anyway (the proxies themselves are).
- `LeanDownloaderStats`: request/response/exception counts per status and type, without building
  each request's raw HTTP text only to count its bytes (`downloader/request_bytes` and
  `downloader/response_bytes` are not kept: the job's own `bytes_downloaded` counts what was read).
- `PooledHTTP11DownloadHandler`: keeps more idle connections per host (below).
"""

from __future__ import annotations

from typing import Any
from urllib.request import proxy_bypass

from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
from scrapy.downloadermiddlewares.httpproxy import HttpProxyMiddleware
from scrapy.exceptions import NotConfigured
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.datatypes import LocalCache
from scrapy.utils.httpobj import urlparse_cached


class LeanStatsCollector(MemoryStatsCollector):
    __getattribute__ = object.__getattribute__  # type: ignore[assignment]

    def get_value(self, key: str, default: Any = None, spider: Any = None) -> Any:
        return self._stats.get(key, default)

    def set_value(self, key: str, value: Any, spider: Any = None) -> None:
        self._stats[key] = value

    def inc_value(self, key: str, count: int = 1, start: int = 0, spider: Any = None) -> None:
        d = self._stats
        d[key] = d.get(key, start) + count


class CachedProxyMiddleware(HttpProxyMiddleware):
    """HttpProxyMiddleware (same decisions, same headers) with `proxy_bypass(host)` asked once per host."""

    def __init__(self, auth_encoding: str | None = "latin-1"):
        super().__init__(auth_encoding)
        self._bypass: LocalCache[str, bool] = LocalCache(10_000)

    def _bypassed(self, host: str) -> bool:
        bypass = self._bypass.get(host)
        if bypass is None:
            bypass = self._bypass[host] = bool(proxy_bypass(host))
        return bypass

    def process_request(self, request: Any, spider: Any = None) -> None:
        creds, proxy_url, scheme = None, None, None
        if "proxy" in request.meta:
            if request.meta["proxy"] is not None:
                creds, proxy_url = self._get_proxy(request.meta["proxy"], "")
        elif self.proxies:
            parsed = urlparse_cached(request)
            _scheme = parsed.scheme
            if (
                _scheme not in {"http", "https"}  # no_proxy is only supported by http schemes
                or (parsed.hostname and not self._bypassed(parsed.hostname))
            ) and _scheme in self.proxies:
                scheme = _scheme
                creds, proxy_url = self.proxies[scheme]
        self._set_proxy_and_creds(request, proxy_url, creds, scheme)
        return None


class LeanDownloaderStats:
    def __init__(self, stats: Any):
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler: Any) -> LeanDownloaderStats:
        if not crawler.settings.getbool("DOWNLOADER_STATS"):
            raise NotConfigured
        return cls(crawler.stats)

    def process_request(self, request: Any, spider: Any = None) -> None:
        self.stats.inc_value("downloader/request_count")
        return None

    def process_response(self, request: Any, response: Any, spider: Any = None) -> Any:
        inc = self.stats.inc_value
        inc("downloader/response_count")
        inc(f"downloader/response_status_count/{response.status}")
        return response

    def process_exception(self, request: Any, exception: Exception, spider: Any = None) -> None:
        inc = self.stats.inc_value
        inc("downloader/exception_count")
        inc(f"downloader/exception_type_count/{type(exception).__module__}.{type(exception).__qualname__}")
        return None


class PooledHTTP11DownloadHandler(HTTP11DownloadHandler):
    """Scrapy's HTTP/1.1 handler keeping up to CONCURRENT_REQUESTS idle connections per host, not
    CONCURRENT_REQUESTS_PER_DOMAIN. Behind a forward proxy every request goes to one host, the proxy:
    with 8 kept, most of 64 requests in flight opened a new connection and closed it afterwards. (How
    many requests a site gets at once is still set by the spider and CONCURRENT_REQUESTS_PER_DOMAIN.)"""

    def __init__(self, crawler: Any):
        super().__init__(crawler)
        settings = crawler.settings
        self._pool.maxPersistentPerHost = max(settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN"),
                                              settings.getint("CONCURRENT_REQUESTS"))
