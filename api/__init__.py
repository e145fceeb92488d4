"""ScraperSky HTTP API: a Falcon 4 app over scrapyd (never imports Scrapy).

`create_app(config)` in `api.app` builds it; `api.dispatcher` hands pending jobs to scrapyd.
"""
