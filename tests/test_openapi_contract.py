"""The OpenAPI document is the API's contract (api/openapi.py).

- schemathesis runs against the real app (create_app on a real PostgreSQL database, an admin key, the
  dispatcher off, no scrapyd: /health answers 503), every check on, a bounded derandomized number of
  examples per operation, twice: with generated ids (404s, every listing) and with the ids of seeded
  work (every body the API can return with data in it). It finds no response that breaks the document.
- Real responses of every endpoint, every status code included (401, 404, 409, 410, 413, 415, 422, 429,
  503), match their declared schemas exactly; a field added to a response without declaring it fails.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import http.server
import json
import threading
import uuid

import pytest

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402

from tests.api_fixtures import api_pg_url, free_port, key_client, make_config, new_key  # noqa: E402,F401

API = "/api/v1"
EXAMPLES = 20  # per operation in the fuzzing phase (derandomized: the same cases every run)
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def contract_app():
    """(app, admin key, ids of the seeded work) on a fresh database."""
    from api.app import create_app
    from tests.api_fixtures import create_pg_database, drop_pg_database, require_pg

    require_pg()
    url = create_pg_database()
    try:
        app = create_app(make_config(url, f"http://127.0.0.1:{free_port()}", scrapyd_timeout=0.5,
                                     max_body_bytes=256 * 1024), start_dispatcher=False)
        key = new_key(app, admin=True)
        yield app, key, seed(app, key_client(app, key))
    finally:
        drop_pg_database(url)


def seed(app, client) -> dict:
    """A batch of two domains whose jobs finished with pages (every nested field set), sitemaps and
    home-page metadata; a later scan of one of them; a pending job and a pending batch to cancel."""
    from pipelines import store
    from pipelines.status import Outcome
    from tests.test_scans import sitemap_fields

    batch = client.simulate_post(f"{API}/batch", json={"domains": ["one.test", "two.test"], "max_pages": 50}).json
    jobs = {j["domain"]: j["job_id"] for j in client.simulate_get(batch["status_url"]).json["jobs"]}
    later = client.simulate_post(f"{API}/scrapersky", json={"base_url": "one.test"}).json["job_id"]

    def scan(conn, job_id, domain, start, n):
        job_id = uuid.UUID(job_id)
        domain_id = store.ensure_domain(conn, domain)
        store.save_home_page(conn, domain_id, f"https://{domain}/", {
            "title": domain, "description": "d", "language": "en", "favicon": None, "is_wordpress": True,
            "wordpress_version": "6.5", "generator": "WordPress", "emails": ["a@x.test"], "phones": [],
            "social_links": {"x": "https://x.test/a"}})
        store.start_job(conn, job_id, domain, domain_id, None, {"max_pages": 50}, start)
        sitemap_id = store.upsert_sitemap(conn, domain_id, job_id, sitemap_fields(f"https://{domain}/s.xml"))
        store.insert_pages(conn, domain_id, sitemap_id, job_id, [{
            "url": f"https://{domain}/p{i}", "lastmod": T0, "changefreq": "daily", "priority": 0.5,
            "alternates": [{"href": f"https://{domain}/de/p{i}", "hreflang": "de"}],
            "images": [{"loc": f"https://{domain}/{i}.png", "title": "t"}],
            "news": {"title": "n", "publication": "p"} if i % 2 else None,
            "videos": [{"title": "v", "content_loc": f"https://{domain}/{i}.mp4"}] if i % 3 == 0 else None,
        } for i in range(n)])
        store.finish_job(conn, job_id, domain_id, Outcome.OK, None, start + dt.timedelta(minutes=1),
                         {"sitemaps_found": 1})

    with app.scrapersky_store.engine.begin() as conn:
        scan(conn, jobs["one.test"], "one.test", T0, 12)
        scan(conn, jobs["two.test"], "two.test", T0, 5)
        scan(conn, later, "one.test", T0 + dt.timedelta(days=1), 9)
    pending = client.simulate_post(f"{API}/scrapersky", json={"base_url": "pending.test"}).json["job_id"]
    pending_batch = client.simulate_post(f"{API}/batch", json={"domains": ["p1.test", "p2.test"]}).json["batch_id"]
    return {"batch": batch["batch_id"], "job": later, "previous": jobs["one.test"], "domain": "one.test",
            "pending_job": pending, "pending_batch": pending_batch}


# ------------------------------------------------------------------------------------------ schemathesis
def schemathesis_config(key: str, ids: dict | None) -> SchemathesisConfig:
    """Every check on; a bounded, derandomized run. With `ids`, only the operations on one job, batch or
    domain, with the seeded ids."""
    from api.openapi import build

    doc = build()
    domain_ops = [op["operationId"] for ops in doc["paths"].values() for op in ops.values() if op.get("x-domain-input")]
    operations = [{
        # Whether a string names a public site is pipelines.domains.parse_site's call, which no schema can
        # express: a schema-valid domain may be refused with 400 (and a batch with none valid with 422).
        "include-operation-id": op_id,
        "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "404", "409", "422"]}},
    } for op_id in domain_ops] + [{
        # /health and /health/database answer 503 (declared, with Retry-After) while a dependency is down:
        # here scrapyd, which this test does not start.
        "include-path-regex": "^/health",
        "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "4xx", "503"]}},
    }]
    config = {
        "headers": {"Authorization": f"Bearer {key}"},
        "seed": 1, "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large", "large_base_example"],
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
        # 413 is how the API refuses an array over its maxItems (more domains than a batch takes).
        "checks": {"enabled": True, "negative_data_rejection": {"expected-statuses": [
            "400", "401", "404", "405", "406", "409", "413", "415", "422", "429"]}},
        "phases": {"stateful": {"enabled": False}},  # the document declares no links
        "operations": operations,
        # A cursor is opaque and signed: only a next_cursor the API gave is valid (test_api_hardening.py
        # tries altered ones); an empty one is the first page.
        "parameters": {"cursor": ""},
    }
    if ids:
        operations.append({"include-path-regex": "^[^{]*$", "enabled": False})
        operations += [{"include-operation-id": "cancelJob", "parameters": {"job_id": ids["pending_job"]}},
                       {"include-operation-id": "cancelBatch", "parameters": {"batch_id": ids["pending_batch"]}}]
        config["parameters"].update(job_id=ids["job"], batch_id=ids["batch"], domain=ids["domain"],
                                    **{"from": ids["previous"], "to": ids["job"]})
    return SchemathesisConfig.from_dict(config)


@pytest.fixture(scope="module")
def generated_ids_schema(contract_app):
    app, key, _ = contract_app
    return schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app, config=schemathesis_config(key, None))


@pytest.fixture(scope="module")
def seeded_ids_schema(contract_app):
    app, key, ids = contract_app
    return schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app, config=schemathesis_config(key, ids))


generated_ids = schemathesis.pytest.from_fixture("generated_ids_schema")
seeded_ids = schemathesis.pytest.from_fixture("seeded_ids_schema")
SUCCESSES: collections.Counter = collections.Counter()  # operation -> 2xx answers to its own method


def _record(case, response) -> None:
    if response.request.method == case.operation.method.upper() and 200 <= response.status_code < 300:
        SUCCESSES[case.operation.label] += 1


@generated_ids.parametrize()
@pytest.mark.xdist_group("contract")
def test_schemathesis_generated_ids(case):
    _record(case, case.call_and_validate())


@seeded_ids.parametrize()
@pytest.mark.xdist_group("contract")
def test_schemathesis_seeded_ids(case):
    _record(case, case.call_and_validate())


@pytest.mark.xdist_group("contract")
def test_schemathesis_checked_a_success_body_of_every_operation(contract_app):
    """The two runs above got a 2xx from every operation (so every success schema was held to a real
    body) but two: /health is 503 without scrapyd, and schemathesis does not call the document it was
    loaded from; test_real_responses_match_the_document checks both answering 200."""
    if not SUCCESSES:
        pytest.skip("runs after the schemathesis tests of this module")
    app, _, _ = contract_app
    labels = {f"{m.upper()} {p}" for p, ops in app.scrapersky_contract.document["paths"].items() for m in ops}
    assert labels - set(SUCCESSES) == {"GET /health", f"GET {API}/openapi.json"}


def test_an_undeclared_response_field_fails_the_contract(contract_app, generated_ids_schema, monkeypatch):
    """Response objects are closed: a field the code adds but the document does not declare is a
    schemathesis failure (and so is a declared field the code stops sending)."""
    import api.resources.jobs as jobs_module

    _, key, ids = contract_app
    auth = {"Authorization": f"Bearer {key}"}
    operation = generated_ids_schema[f"{API}/status/{{job_id}}"]["GET"]
    operation.Case(path_parameters={"job_id": ids["job"]}).call_and_validate(headers=auth)  # as it is: conforms
    view = jobs_module.job_view
    monkeypatch.setattr(jobs_module, "job_view", lambda row: {**view(row), "surprise": 1})
    with pytest.raises(FailureGroup) as added:
        operation.Case(path_parameters={"job_id": ids["job"]}).call_and_validate(headers=auth)
    assert "surprise" in str(added.value)
    monkeypatch.setattr(jobs_module, "job_view", lambda row: {k: v for k, v in view(row).items() if k != "attempts"})
    with pytest.raises(FailureGroup) as dropped:
        operation.Case(path_parameters={"job_id": ids["job"]}).call_and_validate(headers=auth)
    assert "attempts" in str(dropped.value)


# ------------------------------------------------------------------------------------------ real responses
@contextlib.contextmanager
def fake_scrapyd():
    """A loopback HTTP server answering scrapyd's daemonstatus.json (all /health asks of a node)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "ok", "pending": 0, "running": 0, "finished": 3}).encode()
            self.send_response(200 if self.path.startswith("/daemonstatus.json") else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def conforms(app, resp, path: str, method: str = "GET") -> dict | str:
    """`resp` is one of the responses the document declares for the operation: its status, media type,
    required headers and (JSON) body. Returns the body."""
    contract = app.scrapersky_contract
    declared = contract.document["paths"][path][method.lower()]["responses"]
    assert str(resp.status_code) in declared, (path, method, resp.status_code, resp.text[:300])
    response = declared[str(resp.status_code)]
    for name, header in response.get("headers", {}).items():
        if header.get("required"):
            assert resp.headers.get(name), (path, resp.status_code, name)
    media = (resp.headers.get("content-type") or "").split(";")[0].strip()
    assert media in response["content"], (path, resp.status_code, media)
    if media != "application/json":
        return resp.text
    body = resp.json
    errors = [e.message for e in contract.response_validator(path, method, resp.status_code).iter_errors(body)]
    assert not errors, (path, method, resp.status_code, errors[:5], json.dumps(body)[:500])
    return body


def test_real_responses_match_the_document(contract_app, api_pg_url):
    app, key, ids = contract_app
    c, anon = key_client(app, key), key_client(app, None)
    job, batch, prev = ids["job"], ids["batch"], ids["previous"]
    ok = lambda resp, path, method="GET": conforms(app, resp, path, method)  # noqa: E731

    # every success body, with data in it
    assert ok(c.simulate_get(f"{API}/status/{job}"), f"{API}/status/{{job_id}}")["metadata"]["is_wordpress"] is True
    assert ok(c.simulate_get(f"{API}/batch/status/{batch}", params={"status": "complete"}),
              f"{API}/batch/status/{{batch_id}}")["total_jobs"] == 2
    urls = f"{API}/jobs/{{job_id}}/urls"
    assert len(ok(c.simulate_get(f"{API}/jobs/{job}/urls", params={"limit": 5}), urls)["urls"]) == 5
    assert ok(c.simulate_get(f"{API}/jobs/{job}/urls", params={"change": "removed"}), urls)["count"] == 3
    for fmt in ("csv", "jsonl"):
        assert "one.test/p1" in ok(c.simulate_get(f"{API}/jobs/{job}/urls", params={"format": fmt}), urls)
        assert "two.test/p1" in ok(c.simulate_get(f"{API}/batches/{batch}/urls", params={"format": fmt}),
                                   f"{API}/batches/{{batch_id}}/urls")
    assert ok(c.simulate_get(f"{API}/jobs/{job}/sitemaps"), f"{API}/jobs/{{job_id}}/sitemaps")["count"] == 1
    assert ok(c.simulate_get(f"{API}/domains/one.test"), f"{API}/domains/{{domain}}")["latest_scan"]["previous_job_id"] == prev
    changes = ok(c.simulate_get(f"{API}/domains/one.test/changes", params={"from": prev, "to": job}),
                 f"{API}/domains/{{domain}}/changes")
    assert (changes["new_count"], changes["removed_count"]) == (0, 3)
    for listing, key_ in (("batches", "batches"), ("jobs", "jobs"), ("domains", "domains")):
        assert ok(c.simulate_get(f"{API}/{listing}", params={"limit": 2}), f"{API}/{listing}")[key_]
    pending = c.simulate_post(f"{API}/scrapersky", json={"base_url": "new.test", "max_pages": 3})
    assert ok(pending, f"{API}/scrapersky", "POST")["status"] == "pending"
    assert ok(c.simulate_post(f"{API}/jobs/{pending.json['job_id']}/cancel"), f"{API}/jobs/{{job_id}}/cancel", "POST")
    pending = c.simulate_post(f"{API}/batch", json={"domains": ["b.test", "bad", 7]})
    assert ok(pending, f"{API}/batch", "POST")["rejected"]
    assert ok(c.simulate_post(f"{API}/batch/{pending.json['batch_id']}/cancel"), f"{API}/batch/{{batch_id}}/cancel",
              "POST")["jobs_cancelled"] == 1
    assert ok(anon.simulate_get(f"{API}/openapi.json"), f"{API}/openapi.json")["openapi"] == "3.1.0"
    assert ok(anon.simulate_get("/health/database"), "/health/database")["status"] == "ok"

    # every error
    assert "status" in ok(c.simulate_post(f"{API}/jobs/{job}/cancel"), f"{API}/jobs/{{job_id}}/cancel", "POST")  # 409
    ok(c.simulate_post(f"{API}/batch/{batch}/cancel"), f"{API}/batch/{{batch_id}}/cancel", "POST")  # 409
    ok(anon.simulate_get(f"{API}/status/{job}"), f"{API}/status/{{job_id}}")  # 401
    ok(c.simulate_get(f"{API}/status/{uuid.uuid4()}"), f"{API}/status/{{job_id}}")  # 404
    ok(c.simulate_get(f"{API}/jobs", params={"stauts": "x"}), f"{API}/jobs")  # 400
    ok(c.simulate_get(f"{API}/domains/not_a_domain"), f"{API}/domains/{{domain}}")  # 400
    scan = f"{API}/scrapersky"
    ok(c.simulate_post(scan, body=b"{", headers={"Content-Type": "application/json"}), scan, "POST")  # 400
    ok(c.simulate_post(scan, json={"base_url": 5}), scan, "POST")  # 422
    ok(c.simulate_post(scan, body=b"{}", headers={"Content-Type": "text/plain"}), scan, "POST")  # 415
    ok(c.simulate_post(scan, body=b" " * (300 * 1024), headers={"Content-Type": "application/json"}), scan, "POST")
    ok(c.simulate_post(f"{API}/batch", json={"domains": ["x.test"] * 10_001}), f"{API}/batch", "POST")  # 413
    assert ok(c.simulate_post(f"{API}/batch", json={"domains": ["bad"]}), f"{API}/batch", "POST")["rejected"]  # 422
    health = ok(anon.simulate_get("/health"), "/health")  # 503: no scrapyd
    assert health["status"] == "unavailable" and health["retry_after"] >= 1

    from api.store import jobs
    with app.scrapersky_store.engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == uuid.UUID(prev)).values(pruned_at=T0))
    ok(c.simulate_get(f"{API}/jobs/{prev}/sitemaps"), f"{API}/jobs/{{job_id}}/sitemaps")  # 410
    ok(c.simulate_get(f"{API}/jobs/{job}/urls", params={"change": "new"}), urls)  # 410: the scan before
    ok(c.simulate_get(f"{API}/domains/one.test/changes", params={"from": prev, "to": job}),
       f"{API}/domains/{{domain}}/changes")  # 410

    # 429 (a tenant's daily quota, then a key's request rate) and 503 (database down), on apps of their own
    from api.app import create_app
    from pipelines.db import make_engine

    limited = create_app(make_config(api_pg_url, "http://127.0.0.1:9", quota_domains_per_day=1,
                                     rate_limit="2/minute"), start_dispatcher=False)
    t = key_client(limited, new_key(limited, tenant="quota-test"))
    ok(t.simulate_post(scan, json={"base_url": "q1.test"}), scan, "POST")
    quota = ok(t.simulate_post(scan, json={"base_url": "q2.test"}), scan, "POST")
    assert quota["quota"] == "domains_per_day" and quota["retry_after"] >= 1
    rate = ok(t.simulate_get(f"{API}/jobs"), f"{API}/jobs")
    assert "retry_after" in rate and "quota" not in rate
    with fake_scrapyd() as scrapyd_url:  # /health 200: a node answers daemonstatus.json
        up = create_app(make_config(api_pg_url, scrapyd_url), start_dispatcher=False)
        assert ok(key_client(up, None).simulate_get("/health"), "/health")["scrapyd"]["nodes"][0]["running"] == 0
    down = create_app(make_config(api_pg_url, "http://127.0.0.1:9"), start_dispatcher=False)
    d = key_client(down, new_key(down, admin=True))
    down.scrapersky_store.engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    assert ok(d.simulate_get("/health/database"), "/health/database")["status"] == "unavailable"
    assert ok(d.simulate_get("/health"), "/health")["database"]["ok"] is False
    assert ok(d.simulate_get(f"{API}/status/{job}"), f"{API}/status/{{job_id}}")["retry_after"] >= 1  # key lookup: 503


# ------------------------------------------------------------------------------------------ /docs
def test_docs_page_and_its_assets_load_without_a_key(contract_app):
    app, _, _ = contract_app
    anon = key_client(app, None)
    page = anon.simulate_get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe" not in csp and "script-src" not in csp  # no inline script
    assert 'data-spec-url="/api/v1/openapi.json"' in page.text and "<script>" not in page.text
    import re
    assets = re.findall(r'(?:href|src)="([^"]+)"', page.text)
    assert all(a.startswith("/docs/") for a in assets), assets  # everything from this server, nothing from a CDN
    assert {a.rsplit(".", 1)[1] for a in assets} == {"css", "js", "png"}
    kinds = {"css": "text/css", "js": "text/javascript", "png": "image/png"}
    for asset in assets:
        r = anon.simulate_get(asset)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kinds[asset.rsplit(".", 1)[1]]), asset
        assert len(r.content) > 100
    bundle = anon.simulate_get("/docs/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in bundle and len(bundle) > 500_000  # Swagger UI itself, not a loader for a CDN copy
    assert "SwaggerUIBundle" in anon.simulate_get("/docs/init.js").text
    assert anon.simulate_get("/docs/../api/v1/jobs").status_code in (400, 404)
    missing = anon.simulate_get("/docs/swagger-ui.js.map")
    assert missing.status_code == 404 and missing.json["title"]
