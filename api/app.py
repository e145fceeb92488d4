"""`create_app(config)`: the Falcon 4 WSGI app. Served by `python -m api` (api/service.py)."""

from __future__ import annotations

import atexit
import logging
import sys

import falcon

from api.auth import FIRST_KEY_HINT, AuthMiddleware, active_key_count, auth_off_problem
from api.config import Config
from api.console import add_console
from api.dispatcher import Dispatcher, make_clients
from api.http import register_error_handlers
from api.docs import add_docs
from api.openapi import Contract, ContractMiddleware, OpenApiResource
from api.resources.batch import BatchCancelResource, BatchDeliveriesResource, BatchResource, BatchStatusResource
from api.resources.health import DatabaseHealthResource, HealthResource
from api.resources.jobs import JobCancelResource, JobDeliveriesResource, ScanResource, StatusResource
from api.resources.lists import BatchListResource, DomainListResource, JobListResource
from api.resources.results import BatchUrlsResource, DomainChangesResource, DomainResource, JobSitemapsResource, JobUrlsResource
from api.store import Store

API = "/api/v1"


class ScraperSkyApp(falcon.App):
    """falcon.App with room for the store, dispatcher and config (falcon.App uses __slots__)."""


def create_app(config: Config | None = None, *, start_dispatcher: bool | None = None) -> ScraperSkyApp:
    """Build the app. The dispatcher thread starts unless `config.run_dispatcher` (or the explicit
    `start_dispatcher`) is false; it is reachable as `app.scrapersky_dispatcher` either way."""
    from pipelines.db import get_engine

    config = config or Config.from_env()
    logger = logging.getLogger("api")
    logger.setLevel(logging.INFO)
    if not logger.handlers and not logging.getLogger().handlers:  # a bare WSGI server: one line per event
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    problem = auth_off_problem(config)
    if problem:
        print(problem, file=sys.stderr, flush=True)
        raise SystemExit(4)  # `python -m api serve` refuses first; a lone `web` worker stops here
    store = Store(get_engine(config.database_url), logs_kept=config.scrapyd_jobs_to_keep)
    clients = make_clients(config)
    dispatcher = Dispatcher(store, clients, config)
    if not config.auth_enabled:
        logger.warning("API authentication is OFF (API_AUTH=off, listening on loopback %s): every request acts "
                       "as an admin", config.listen_host)
    elif not active_key_count(store.engine):
        logger.warning("no API key exists yet: every /api/v1 request will get 401. Create the first one with "
                       "`%s` (prints the key once)", FIRST_KEY_HINT)

    contract = Contract.from_config(config)  # the OpenAPI document, and the request checks made from it
    app = ScraperSkyApp(cors_enable=False, middleware=[AuthMiddleware(store, config),
                                                       ContractMiddleware(contract, config.max_body_bytes)])
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
    app.add_route(f"{API}/batches", BatchListResource(store))
    app.add_route(f"{API}/batches/{{batch_id:uuid}}/urls", BatchUrlsResource(store))
    app.add_route(f"{API}/batches/{{batch_id:uuid}}/deliveries", BatchDeliveriesResource(store))
    app.add_route(f"{API}/jobs/{{job_id:uuid}}/deliveries", JobDeliveriesResource(store))
    app.add_route(f"{API}/jobs", JobListResource(store))
    app.add_route(f"{API}/domains", DomainListResource(store))
    app.add_route(f"{API}/domains/{{domain}}/changes", DomainChangesResource(store))
    app.add_route("/health", HealthResource(store, clients, config.project))
    app.add_route("/health/database", DatabaseHealthResource(store))
    app.add_route(f"{API}/openapi.json", OpenApiResource(contract.document))
    add_docs(app, f"{API}/openapi.json")

    add_console(app, store, config, dispatcher)

    app.scrapersky_store = store
    app.scrapersky_dispatcher = dispatcher
    app.scrapersky_config = config
    app.scrapersky_contract = contract
    run = config.run_dispatcher if start_dispatcher is None else start_dispatcher
    if run:
        dispatcher.start()
        atexit.register(dispatcher.stop, 2.0)
    return app
