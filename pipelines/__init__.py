"""Persistence for ScraperSky: the data model, the database helpers and the Scrapy item pipelines.

`pipelines.models`, `pipelines.db` and `pipelines.status` import no Scrapy, so the API uses them too.
"""
