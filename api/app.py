"""`create_app(config)`: the Falcon 4 WSGI app. Serve with `gunicorn 'api.app:create_app()'`."""

from __future__ import annotations

import atexit
import logging

import falcon

from api.config import Config
from api.dispatcher import Dispatcher, make_clients
from api.http import register_error_handlers
from api.openapi import OpenApiResource, build
from api.resources.batch import BatchCancelResource, BatchResource, BatchStatusResource
from api.resources.health import DatabaseHealthResource, HealthResource
from api.resources.jobs import JobCancelResource, ScanResource, StatusResource
from api.resources.results import DomainResource, JobSitemapsResource, JobUrlsResource
from api.store import Store

API = "/api/v1"


class ScraperSkyApp(falcon.App):
    """falcon.App with room for the store, dispatcher and config (falcon.App uses __slots__)."""


def create_app(config: Config | None = None, *, start_dispatcher: bool | None = None) -> ScraperSkyApp:
    """Build the app. The dispatcher thread starts unless `config.run_dispatcher` (or the explicit
    `start_dispatcher`) is false; it is reachable as `app.scrapersky_dispatcher` either way."""
    from pipelines.db import get_engine

    config = config or Config.from_env()
    api_logger = logging.getLogger("api")
    api_logger.setLevel(logging.INFO)
    if not api_logger.handlers and not logging.getLogger().handlers:  # under gunicorn: one line per event
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        api_logger.addHandler(handler)
    store = Store(get_engine(config.database_url), logs_kept=config.scrapyd_jobs_to_keep)
    clients = make_clients(config)
    dispatcher = Dispatcher(store, clients, config)

    app = ScraperSkyApp(cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    register_error_handlers(app)
    app.add_route(f"{API}/scrapersky", ScanResource(store, config, dispatcher))
    app.add_route(f"{API}/status/{{job_id:uuid}}", StatusResource(store))
    app.add_route(f"{API}/batch", BatchResource(store, config, dispatcher))
    app.add_route(f"{API}/batch/status/{{batch_id:uuid}}", BatchStatusResource(store))
    app.add_route(f"{API}/batch/{{batch_id:uuid}}/cancel", BatchCancelResource(store, dispatcher))
    app.add_route(f"{API}/jobs/{{job_id:uuid}}/urls", JobUrlsResource(store))
    app.add_route(f"{API}/jobs/{{job_id:uuid}}/sitemaps", JobSitemapsResource(store))
    app.add_route(f"{API}/jobs/{{job_id:uuid}}/cancel", JobCancelResource(store, dispatcher))
    app.add_route(f"{API}/domains/{{domain}}", DomainResource(store))
    app.add_route("/health", HealthResource(store, clients, config.project))
    app.add_route("/health/database", DatabaseHealthResource(store))
    app.add_route(f"{API}/openapi.json", OpenApiResource(build(config.max_batch_domains, config.max_pages_limit)))

    app.scrapersky_store = store
    app.scrapersky_dispatcher = dispatcher
    app.scrapersky_config = config
    run = config.run_dispatcher if start_dispatcher is None else start_dispatcher
    if run:
        dispatcher.start()
        atexit.register(dispatcher.stop, 2.0)
    return app
