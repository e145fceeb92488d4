"""Scrapy settings for ScraperSky. Every SITEMAP_* and SCRAPERSKY_* value can be overridden with
`-s NAME=value` on the command line or `setting=NAME=value` through scrapyd."""

BOT_NAME = "scrapersky"
SPIDER_MODULES = ["scrapersky_crawler.spiders"]
NEWSPIDER_MODULE = "scrapersky_crawler.spiders"

USER_AGENT = "ScraperSky/1.0 (+sitemap crawler)"
ROBOTSTXT_OBEY = False  # robots.txt is read for its Sitemap: lines; sitemaps are meant for crawlers

# Many domains at once, a few requests per domain.
CONCURRENT_REQUESTS = 64
CONCURRENT_REQUESTS_PER_DOMAIN = 8
DOWNLOAD_DELAY = 0
DOWNLOAD_TIMEOUT = 30
RETRY_TIMES = 1
REDIRECT_MAX_TIMES = 5
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False  # Scrapy's code-executing HTTP server: never in a crawl process
STATS_CLASS = "scrapersky_crawler.lean.LeanStatsCollector"
DNS_TIMEOUT = 15
# The crawler never reaches inside (scrapersky_crawler/guard.py): every request is checked, and names
# are resolved once and checked by the resolver Twisted connects through.
DOWNLOADER_MIDDLEWARES = {
    "scrapersky_crawler.guard.RequestGuard": 760,  # after HttpProxyMiddleware (750)
    # Per-request work the crawl does not need, or done more cheaply (scrapersky_crawler/lean.py):
    "scrapy.downloadermiddlewares.httpproxy.HttpProxyMiddleware": None,
    "scrapersky_crawler.lean.CachedProxyMiddleware": 750,  # the no_proxy decision cached per host
    "scrapy.downloadermiddlewares.stats.DownloaderStats": None,
    "scrapersky_crawler.lean.LeanDownloaderStats": 850,  # counts, without each request's raw text
    "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,  # no allowed_domains: the guard decides
}
DOWNLOAD_HANDLERS = {  # idle connections kept per host: CONCURRENT_REQUESTS (all go to one proxy, if any)
    "http": "scrapersky_crawler.lean.PooledHTTP11DownloadHandler",
    "https": "scrapersky_crawler.lean.PooledHTTP11DownloadHandler",
}
TWISTED_DNS_RESOLVER = "scrapersky_crawler.guard.GuardedResolver"
SCRAPERSKY_ALLOW_PRIVATE = False  # True (or env SCRAPERSKY_ALLOW_PRIVATE=1): private targets, for local use
REACTOR_THREADPOOL_MAXSIZE = 10

# Compressed bytes downloaded per file (the decompressed cap is SITEMAP_MAX_BYTES).
DOWNLOAD_MAXSIZE = 100 * 1024 * 1024
DOWNLOAD_WARNSIZE = 60 * 1024 * 1024

# Items carry up to SITEMAP_PAGE_CHUNK URLs each; keep few in flight so memory stays flat.
CONCURRENT_ITEMS = 8

# -- ScraperSky ----------------------------------------------------------------------------------
SITEMAP_MAX_BYTES = 100 * 1024 * 1024  # decompressed bytes read per sitemap file (protocol: 50 MB)
SITEMAP_MAX_DEPTH = 5  # index nesting: robots/home -> index -> index -> ... -> urlset
SITEMAP_MAX_URLS_PER_DOMAIN = 5_000_000  # page URLs recorded per domain (max_pages argument lowers it)
SITEMAP_MAX_FILES_PER_DOMAIN = 10_000
SITEMAP_CONCURRENCY_PER_DOMAIN = 2  # sitemap files of one domain downloaded/parsed at once (bounds memory)
SITEMAP_PAGE_CHUNK = 5000  # page URLs per item (and per database write)
# The well-known sitemap paths: "fallback" = only when robots.txt and the home page name no sitemap,
# "always" = on every domain (finds unlisted sitemaps; ~30 more requests per domain), "never".
SITEMAP_PROBE_WELL_KNOWN = "fallback"
SCRAPERSKY_PROGRESS_INTERVAL = 5.0  # seconds between progress lines in the log
SCRAPERSKY_DB_OUTAGE_SECONDS = 300  # how long the crawl waits (paused) for an unreachable database
SCRAPERSKY_DB_QUEUE = 4  # page URLs waiting for the database writer (in full chunks' worth) before the crawl waits

ITEM_PIPELINES = {
    "pipelines.persist.DatabasePipeline": 300,
}
SPIDER_MIDDLEWARES = {
    "pipelines.persist.DatabaseBackpressure": 950,  # page chunks wait for room at the database writer
    # Per-callback work the crawl does not need: the spider caps index nesting itself
    # (SITEMAP_MAX_DEPTH); a long sitemap URL is fetched rather than dropped without a trace (the
    # spider would wait for its answer); meta-copy detection only warns developers.
    "scrapy.spidermiddlewares.depth.DepthMiddleware": None,
    "scrapy.spidermiddlewares.urllength.UrlLengthMiddleware": None,
    "scrapy.spidermiddlewares.metacopy.MetaCopyDetectionMiddleware": None,
}
EXTENSIONS = {
    "scrapersky_crawler.extensions.ProgressLog": 500,
    "scrapersky_crawler.extensions.LargeBuffersToSystem": 0,
    "scrapersky_crawler.extensions.FrozenStartupObjects": 0,
    "scrapersky_crawler.extensions.CrawlSummary": 0,
    # `-O urls.csv` (every format): one row per page URL, in the API's columns (pipelines.rows).
    "scrapy.extensions.feedexport.FeedExporter": None,
    "scrapersky_crawler.exporters.UrlFeedExporter": 0,
}
SCRAPERSKY_MMAP_THRESHOLD = 1024 * 1024  # buffers from this size on are mmapped (glibc); 0 leaves glibc alone
FEED_EXPORTERS = {
    "csv": "scrapersky_crawler.exporters.UrlCsvItemExporter",
    "xml": "scrapersky_crawler.exporters.UrlXmlItemExporter",
}
FEED_EXPORT_ENCODING = "utf-8"

LOG_LEVEL = "INFO"
LOGSTATS_INTERVAL = 0  # ProgressLog reports instead
COMMANDS_MODULE = "scrapersky_crawler.commands"
