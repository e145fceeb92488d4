"""Packaging for `scrapyd-deploy` (an egg for a remote scrapyd). Local runs need none of this."""

from setuptools import find_packages, setup

setup(
    name="scrapersky",
    version="1.0",
    packages=find_packages(include=["scrapersky_crawler*", "pipelines*", "api*"]),
    # Alembic's migrations travel with the egg; pipelines.db unpacks them when they are zipped.
    package_data={"pipelines": ["migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"]},
    entry_points={"scrapy": ["settings = scrapersky_crawler.settings"]},
)
