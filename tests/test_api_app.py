"""The API on a real PostgreSQL database through falcon.testing (scrapyd not running: a closed port)."""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid

import pytest
from sqlalchemy import select, update

from api.store import domains, jobs, pages
from pipelines.domains import DomainError, parse_site
from pipelines.models import utcnow
from tests.api_fixtures import *  # noqa: F401,F403
from tests.api_fixtures import free_port, make_client, make_config

API = "/api/v1"


@pytest.fixture
def api(api_pg_url):
    app, client = make_client(make_config(api_pg_url, f"http://127.0.0.1:{free_port()}", max_body_bytes=256 * 1024))
    return app, client


def assert_error(resp, status: int):
    assert resp.status_code == status, resp.text
    body = resp.json
    assert isinstance(body.get("title"), str) and body["title"]
    assert isinstance(body.get("description"), str) and body["description"]
    return body


# ----------------------------------------------------------------------------- domain identity (API policy)
@pytest.mark.parametrize("given,expected", [
    ("example.com", "example.com"),
    (" HTTPS://WWW.Example.COM./about?x=1#top ", "example.com"),
    ("http://user:pw@shop.example.co.uk:443/p", "shop.example.co.uk"),
    ("www.a.test", "a.test"),
    ("www.test", "www.test"),
    ("www.co.uk", "www.co.uk"),  # a registrable name under co.uk, not the suffix co.uk
    ("Example.com:80", "example.com"),
    ("bücher.de", "xn--bcher-kva.de"),
    ("http://MÜNCHEN.de/", "xn--mnchen-3ya.de"),
    ("faß.de", "xn--fa-hia.de"),  # IDNA 2008: ß is kept, not folded to ss
    ("//cdn.example.org/x", "cdn.example.org"),
])
def test_api_site_names(given, expected):
    assert parse_site(given, strict=True).name == expected


@pytest.mark.parametrize("given,reason", [
    ("", "empty"), ("   ", "empty"), ("localhost", "two labels"), ("1.2.3.4", "IP"), ("[::1]", "IP"),
    ("a..b", "empty label"), ("-a.com", "characters"), ("ftp://x.com", "scheme"), ("ex ample.com", "spaces"),
    ("a.test:8080", "port"), ("xn--zz.com", "punycode"), ("a" * 64 + ".com", "63"), ("a_b.com", "characters"),
    (("a" * 60 + ".") * 5 + "com", "253"), (42, "string"), ("co.uk", "public suffix"),
    ("foo.local", "internal"), ("metadata.google.internal", "internal"), ("x.localhost", "internal"),
])
def test_api_policy_rejects_with_reason(given, reason):
    with pytest.raises(DomainError) as err:
        parse_site(given, strict=True)
    assert reason in err.value.reason


# ----------------------------------------------------------------------------- scan + status
def test_scan_is_stored_before_202_and_status_reads_it(api):
    app, c = api
    r = c.simulate_post(f"{API}/scrapersky", json={"base_url": "https://WWW.Example.com/path", "max_pages": 10})
    assert r.status_code == 202
    job_id = uuid.UUID(r.json["job_id"])
    assert r.json["status_url"] == f"{API}/status/{job_id}" == r.headers["location"]
    with app.scrapersky_store.engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().one()
    assert row["domain"] == "example.com" and row["status"].value == "pending" and row["options"] == {"max_pages": 10, "target": "https://www.example.com"}
    s = c.simulate_get(r.json["status_url"]).json
    assert s["job_id"] == str(job_id) and s["status"] == "pending" and s["progress"] == 0.0
    assert set(s) >= {"domain", "created_at", "started_at", "finished_at", "error", "result", "metadata", "scrapyd"}
    assert set(s["result"]) >= {"sitemaps_found", "sitemaps_failed", "urls_found", "new_urls", "removed_urls"}
    assert s["scrapyd"] == {"node": None, "jobid": None, "log_url": None, "log_expired": False}


@pytest.mark.parametrize("body,ctype,status", [
    (b"{", "application/json", 400),
    (b"", "application/json", 400),
    (b"\xff\xfe\x00", "application/json", 400),
    (b"[1, 2]", "application/json", 422),
    (b'"example.com"', "application/json", 422),
    (b'{"base_url": 5}', "application/json", 422),
    (b'{"base_url": ["a.com"]}', "application/json", 422),
    (b'{"base_url": "a.com", "max_pages": "5"}', "application/json", 422),
    (b'{"base_url": "a.com", "max_pages": true}', "application/json", 422),
    (b'{"base_url": "a.com", "max_pages": 0}', "application/json", 422),
    (b'{"base_url": "a.com", "max_pages": 1.5}', "application/json", 422),
    (b'{"base_url": "a.com", "tenant": "x"}', "application/json", 422),
    (b"{}", "application/json", 422),
    (b'{"base_url": "not a domain"}', "application/json", 400),
    (b'{"base_url": "a.com"}', "text/plain", 415),
    (b"[" * 100000, "application/json", 400),
    (b'{"base_url": "a.com", "max_pages": 1' + b"0" * 5000 + b"}", "application/json", 400),
])
def test_scan_rejects_bad_input_with_json_4xx(api, body, ctype, status):
    _, c = api
    r = c.simulate_post(f"{API}/scrapersky", body=body, headers={"Content-Type": ctype})
    assert_error(r, status)


def test_oversized_body_is_413(api):
    _, c = api
    body = json.dumps({"domains": ["x" * 100 + ".com"] * 5000})
    assert_error(c.simulate_post(f"{API}/batch", body=body, headers={"Content-Type": "application/json"}), 413)


def test_unknown_routes_ids_and_methods_are_json_errors(api):
    _, c = api
    assert_error(c.simulate_get("/nope"), 404)
    assert_error(c.simulate_get(f"{API}/status/not-a-uuid"), 404)
    assert_error(c.simulate_get(f"{API}/status/{uuid.uuid4()}"), 404)
    assert_error(c.simulate_get(f"{API}/batch/status/{uuid.uuid4()}"), 404)
    assert_error(c.simulate_get(f"{API}/jobs/{uuid.uuid4()}/urls"), 404)
    assert_error(c.simulate_get(f"{API}/jobs/{uuid.uuid4()}/sitemaps"), 404)
    assert_error(c.simulate_post(f"{API}/jobs/{uuid.uuid4()}/cancel"), 404)
    assert_error(c.simulate_post(f"{API}/batch/{uuid.uuid4()}/cancel"), 404)
    assert_error(c.simulate_get(f"{API}/domains/never.test"), 404)
    assert_error(c.simulate_get(f"{API}/domains/not_a_domain"), 400)
    assert_error(c.simulate_delete(f"{API}/scrapersky"), 405)
    assert_error(c.simulate_get(f"{API}/scrapersky"), 405)


# ----------------------------------------------------------------------------- batch
def test_batch_collapses_duplicates_and_lists_rejected(api):
    _, c = api
    r = c.simulate_post(f"{API}/batch", json={"domains": ["a.test", "http://A.test/x", "www.a.test", "b.test",
                                                         "bad", 7, None, "c.test."]})
    assert r.status_code == 202, r.text
    assert r.json["job_count"] == 3 and r.json["duplicates"] == 2
    assert [x["input"] for x in r.json["rejected"]] == ["bad", 7, None]
    assert all(x["error"] for x in r.json["rejected"])
    s = c.simulate_get(r.json["status_url"]).json
    assert sorted(j["domain"] for j in s["jobs"]) == ["a.test", "b.test", "c.test"]
    assert (s["status"], s["total_jobs"], s["pending_jobs"], s["progress"], s["eta_seconds"]) == ("pending", 3, 3, 0.0, None)


def test_batch_input_errors(api):
    _, c = api
    assert_error(c.simulate_post(f"{API}/batch", json={"domains": "a.test"}), 422)
    assert_error(c.simulate_post(f"{API}/batch", json={"domains": []}), 422)
    assert_error(c.simulate_post(f"{API}/batch", json={"domains": ["a.test"], "extra": 1}), 422)
    body = assert_error(c.simulate_post(f"{API}/batch", json={"domains": ["bad", "1.2.3.4"]}), 422)
    assert len(body["rejected"]) == 2
    assert_error(c.simulate_post(f"{API}/batch", json={"domains": [f"d{i}.test" for i in range(10_001)]},
                                 headers={}), 413)


def test_batch_of_10000_domains(api_pg_url):
    _, c = make_client(make_config(api_pg_url, f"http://127.0.0.1:{free_port()}"))
    r = c.simulate_post(f"{API}/batch", json={"domains": [f"d{i}.test" for i in range(10_000)]})
    assert r.status_code == 202 and r.json["job_count"] == 10_000
    seen, cursor = [], None
    while True:
        s = c.simulate_get(r.json["status_url"], params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json
        seen += [j["domain"] for j in s["jobs"]]
        cursor = s["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 10_000 == len(set(seen)) and seen == sorted(seen)
    assert s["total_jobs"] == 10_000


def _finish(engine, job_ids, status="complete", urls=0, error=None):
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id.in_(job_ids)).values(
            status=status, started_at=now, finished_at=now, urls_found=urls, error=error))


def test_batch_progress_moves_as_domains_finish_and_paging(api):
    app, c = api
    engine = app.scrapersky_store.engine
    r = c.simulate_post(f"{API}/batch", json={"domains": [f"d{i:02}.test" for i in range(10)]})
    url = r.json["status_url"]
    ids = [uuid.UUID(j["job_id"]) for j in c.simulate_get(url, params={"limit": 100}).json["jobs"]]
    progress = []
    for k, (jid, st) in enumerate(zip(ids, ["complete"] * 6 + ["failed"] * 2 + ["complete"] * 2)):
        _finish(engine, [jid], st, urls=10, error="boom" if st == "failed" else None)
        s = c.simulate_get(url).json
        progress.append(s["progress"])
        if k < 9:
            assert s["status"] == "running" and s["finished_at"] is None and s["eta_seconds"] is not None
    assert progress == sorted(progress) and progress[0] == 0.1 and progress[-1] == 1.0
    assert (s["status"], s["completed_jobs"], s["failed_jobs"], s["urls_found"]) == ("complete", 8, 2, 100)
    assert s["finished_at"] is not None and s["eta_seconds"] is None
    # paging with limit/cursor and a status filter
    first = c.simulate_get(url, params={"limit": 4}).json
    second = c.simulate_get(url, params={"limit": 4, "cursor": first["next_cursor"]}).json
    third = c.simulate_get(url, params={"limit": 4, "cursor": second["next_cursor"]}).json
    doms = [j["domain"] for p in (first, second, third) for j in p["jobs"]]
    assert doms == [f"d{i:02}.test" for i in range(10)] and third["next_cursor"] is None
    failed = c.simulate_get(url, params={"status": "failed"}).json["jobs"]
    assert [j["error"] for j in failed] == ["boom", "boom"]
    assert_error(c.simulate_get(url, params={"cursor": "!!"}), 400)
    assert_error(c.simulate_get(url, params={"limit": 0}), 400)
    assert_error(c.simulate_get(url, params={"status": "done"}), 400)
    # the dispatcher persists the derived status
    app.scrapersky_dispatcher.store.refresh_batch(uuid.UUID(r.json["batch_id"]))
    assert app.scrapersky_store.batch_row(uuid.UUID(r.json["batch_id"]))["status"].value == "complete"


def test_cancel_job_and_batch(api):
    app, c = api
    job = c.simulate_post(f"{API}/scrapersky", json={"base_url": "a.test"}).json
    r = c.simulate_post(f"{API}/jobs/{job['job_id']}/cancel")
    assert r.status_code == 200 and r.json["status"] == "cancelled"
    assert c.simulate_get(job["status_url"]).json["status"] == "cancelled"
    assert assert_error(c.simulate_post(f"{API}/jobs/{job['job_id']}/cancel"), 409)["status"] == "cancelled"

    b = c.simulate_post(f"{API}/batch", json={"domains": ["x.test", "y.test", "z.test"]}).json
    ids = [uuid.UUID(j["job_id"]) for j in c.simulate_get(b["status_url"]).json["jobs"]]
    _finish(app.scrapersky_store.engine, ids[:1])
    r = c.simulate_post(f"{API}/batch/{b['batch_id']}/cancel")
    assert r.status_code == 200 and r.json["jobs_cancelled"] == 2
    s = c.simulate_get(b["status_url"]).json
    assert (s["status"], s["completed_jobs"], s["cancelled_jobs"], s["progress"]) == ("cancelled", 1, 2, 1.0)
    assert_error(c.simulate_post(f"{API}/batch/{b['batch_id']}/cancel"), 409)


# ----------------------------------------------------------------------------- results
def _seed_pages(engine, domain: str, job_ids: list[uuid.UUID], n: int):
    """Simulate two scans of `domain` (as the pipeline stores them: one snapshot per job): the first saw
    urls 0..n-1, the second 2..n+1."""
    now = utcnow()
    with engine.begin() as conn:
        dom_id = conn.execute(domains.insert().values(name=domain, title="T", url_count=n, sitemap_count=0,
                                                      last_job_id=job_ids[-1], last_scan_at=now)).inserted_primary_key[0]
        conn.execute(update(jobs).where(jobs.c.id.in_(job_ids)).values(domain_id=dom_id))
        for job_id, urls in zip(job_ids, (range(n), range(2, n + 2))):
            conn.execute(pages.insert(), [dict(job_id=job_id, domain_id=dom_id, url=f"http://{domain}/p/{i}",
                                               priority=0.5 if job_id == job_ids[-1] else 0.1,
                                               images=[{"loc": "http://x/i.png"}] if i == 3 else None)
                                          for i in urls])
    return dom_id


def test_urls_paged_json_jsonl_csv_and_changes(api):
    app, c = api
    engine = app.scrapersky_store.engine
    j1 = uuid.UUID(c.simulate_post(f"{API}/scrapersky", json={"base_url": "p.test"}).json["job_id"])
    j2 = uuid.UUID(c.simulate_post(f"{API}/scrapersky", json={"base_url": "p.test"}).json["job_id"])
    _finish(engine, [j1])
    _finish(engine, [j2])
    _seed_pages(engine, "p.test", [j1, j2], 250)
    expected = {f"http://p.test/p/{i}" for i in range(2, 252)}

    got, cursor = [], None
    while True:
        r = c.simulate_get(f"{API}/jobs/{j2}/urls", params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200
        got += [u["url"] for u in r.json["urls"]]
        cursor = r.json["next_cursor"]
        if not cursor:
            break
    assert len(got) == 250 and set(got) == expected

    r = c.simulate_get(f"{API}/jobs/{j2}/urls", params={"format": "jsonl"})
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert {x["url"] for x in lines} == expected
    assert next(x for x in lines if x["url"].endswith("/p/3"))["images"] == [{"loc": "http://x/i.png"}]
    assert "first_seen_at" not in lines[0] and "last_seen_at" not in lines[0]

    r = c.simulate_get(f"{API}/jobs/{j2}/urls", params={"format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {x["url"] for x in rows} == expected and rows[0]["priority"] == "0.5"

    new = c.simulate_get(f"{API}/jobs/{j2}/urls", params={"change": "new"}).json["urls"]
    removed = c.simulate_get(f"{API}/jobs/{j2}/urls", params={"change": "removed"}).json["urls"]
    assert {u["url"] for u in new} == {"http://p.test/p/250", "http://p.test/p/251"}
    assert {u["url"] for u in removed} == {"http://p.test/p/0", "http://p.test/p/1"}
    assert {u["priority"] for u in removed} == {0.1}, "removed URLs carry what the previous scan saw"
    # the older job still lists exactly what it saw; its first scan has nothing removed, all new
    assert {u["url"] for u in c.simulate_get(f"{API}/jobs/{j1}/urls", params={"limit": 1000}).json["urls"]} == {
        f"http://p.test/p/{i}" for i in range(250)}
    assert len(c.simulate_get(f"{API}/jobs/{j1}/urls", params={"change": "new"}).json["urls"]) == 250
    assert c.simulate_get(f"{API}/jobs/{j1}/urls", params={"change": "removed"}).json["urls"] == []
    assert_error(c.simulate_get(f"{API}/jobs/{j2}/urls", params={"format": "xml"}), 400)
    assert_error(c.simulate_get(f"{API}/jobs/{j2}/urls", params={"change": "gone"}), 400)
    assert_error(c.simulate_get(f"{API}/jobs/{j2}/urls", params={"cursor": "MTIz"}), 400)

    d = c.simulate_get(f"{API}/domains/WWW.P.test").json
    assert d["domain"] == "p.test" and d["metadata"]["title"] == "T"
    assert d["latest_scan"]["job_id"] == str(j2) and d["latest_scan"]["previous_job_id"] == str(j1)
    assert d["latest_scan"]["links"]["removed_urls"].endswith("change=removed")
    assert d["latest_scan"]["links"]["changes"] == f"{API}/domains/p.test/changes?from={j1}&to={j2}"
    assert c.simulate_get(f"{API}/jobs/{j2}/sitemaps").json["sitemaps"] == []


def test_changes_between_any_two_scans(api):
    app, c = api
    engine = app.scrapersky_store.engine
    j1, j2, j3, other = (uuid.UUID(c.simulate_post(f"{API}/scrapersky", json={"base_url": d}).json["job_id"])
                         for d in ("q.test", "q.test", "q.test", "o.test"))
    for j in (j1, j2, j3, other):
        _finish(engine, [j])
    dom_id = _seed_pages(engine, "q.test", [j1, j3], 30)
    with engine.begin() as conn:  # j2: a complete scan of q.test that stored nothing
        conn.execute(update(jobs).where(jobs.c.id == j2).values(domain_id=dom_id))
    _seed_pages(engine, "o.test", [other], 1)
    url = f"{API}/domains/q.test/changes"

    body = c.simulate_get(url, params={"from": str(j1), "to": str(j3)}).json
    assert (body["domain"], body["from"]["job_id"], body["to"]["job_id"]) == ("q.test", str(j1), str(j3))
    assert (body["new_count"], body["removed_count"], body["next_cursor"]) == (2, 2, None)
    assert [u["url"] for u in body["new"]] == ["http://q.test/p/30", "http://q.test/p/31"]
    assert [u["url"] for u in body["removed"]] == ["http://q.test/p/0", "http://q.test/p/1"]
    back = c.simulate_get(url, params={"from": str(j3), "to": str(j1)}).json
    assert [u["url"] for u in back["new"]] == [u["url"] for u in body["removed"]]
    everything = c.simulate_get(url, params={"from": str(j2), "to": str(j3)}).json
    assert (everything["new_count"], everything["removed_count"]) == (30, 0)

    # paging: both lists advance together, each by `limit`; a finished list stays empty
    seen_new, seen_removed, cursor, pages_read = [], [], None, 0
    while True:
        params = {"from": str(j2), "to": str(j3), "limit": 7, **({"cursor": cursor} if cursor else {})}
        part = c.simulate_get(url, params=params).json
        assert part["new_count"] == 30 and len(part["new"]) <= 7
        seen_new += [u["url"] for u in part["new"]]
        seen_removed += [u["url"] for u in part["removed"]]
        pages_read += 1
        cursor = part["next_cursor"]
        if not cursor:
            break
    assert pages_read == 5 and seen_new == sorted(f"http://q.test/p/{i}" for i in range(2, 32)) and not seen_removed

    assert_error(c.simulate_get(url, params={"to": str(j3)}), 400)
    assert_error(c.simulate_get(url, params={"from": "nope", "to": str(j3)}), 400)
    assert_error(c.simulate_get(url, params={"from": str(j1), "to": str(j3), "limit": 0}), 400)
    assert_error(c.simulate_get(url, params={"from": str(j1), "to": str(j3), "cursor": "MTIz"}), 400)
    assert_error(c.simulate_get(url, params={"from": str(uuid.uuid4()), "to": str(j3)}), 404)
    assert "o.test" in assert_error(c.simulate_get(url, params={"from": str(other), "to": str(j3)}), 400)["description"]
    assert_error(c.simulate_get(f"{API}/domains/never.test/changes", params={"from": str(j1), "to": str(j3)}), 404)
    assert_error(c.simulate_get(f"{API}/domains/not_a_domain/changes", params={"from": str(j1), "to": str(j3)}), 400)

    # a scan deleted by the retention setting answers 410 Gone, with JSON
    with engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == j1).values(pruned_at=utcnow()))
    assert_error(c.simulate_get(url, params={"from": str(j1), "to": str(j3)}), 410)
    assert_error(c.simulate_get(f"{API}/jobs/{j1}/urls"), 410)
    assert_error(c.simulate_get(f"{API}/jobs/{j1}/urls", params={"format": "csv"}), 410)
    assert_error(c.simulate_get(f"{API}/jobs/{j1}/sitemaps"), 410)
    assert c.simulate_get(f"{API}/jobs/{j3}/urls", params={"change": "new"}).status_code == 200  # j2 is previous
    assert c.simulate_get(f"{API}/status/{j1}").status_code == 200


# ----------------------------------------------------------------------------- health, openapi
def test_health_reports_scrapyd_down_as_503(api):
    _, c = api
    r = c.simulate_get("/health")
    assert r.status_code == 503 and r.json["database"]["ok"] is True and r.json["scrapyd"]["ok"] is False
    assert c.simulate_get("/health/database").status_code == 200


def test_health_reports_database_down_as_503(api_pg_url):
    _, c = make_client(make_config(api_pg_url, f"http://127.0.0.1:{free_port()}"))
    store = c.app.scrapersky_store
    from pipelines.db import make_engine

    store.engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    r = c.simulate_get("/health")
    assert r.status_code == 503 and r.json["database"]["ok"] is False
    assert_error(c.simulate_get(f"{API}/status/{uuid.uuid4()}"), 503)


def test_openapi_documents_every_route(api):
    app, c = api
    doc = c.simulate_get(f"{API}/openapi.json").json
    assert doc["openapi"].startswith("3.")
    documented = {(p.replace("{job_id}", "{job_id:uuid}").replace("{batch_id}", "{batch_id:uuid}"), m)
                  for p, ops in doc["paths"].items() for m in ops}
    routes = set()

    def walk(nodes):
        for n in nodes:
            html = n.uri_template == "/" or (n.uri_template or "").startswith(("/console", "/docs"))
            if n.resource is not None and not html:  # the console's and /docs' HTML pages are not in the document
                routes.update((n.uri_template, m) for m in ("get", "post", "put", "patch", "delete")
                              if hasattr(n.resource, f"on_{m}"))
            walk(n.children)

    walk(app._router._roots)
    assert routes == documented
    refs = json.dumps(doc).count("#/components/schemas/")
    assert refs and all(name in doc["components"]["schemas"] for name in ("Error", "JobStatus", "BatchStatus"))


# ----------------------------------------------------------------------------- dispatcher, without scrapyd
def test_jobs_wait_while_scrapyd_is_down(api):
    app, c = api
    job = c.simulate_post(f"{API}/scrapersky", json={"base_url": "a.test"}).json
    out = app.scrapersky_dispatcher.tick()
    assert out["dispatched_jobs"] == 0
    s = c.simulate_get(job["status_url"]).json
    assert s["status"] == "pending" and s["scrapyd"]["jobid"] is None


def test_claims_never_overlap_across_concurrent_dispatchers(api_pg_url):
    """SELECT ... FOR UPDATE SKIP LOCKED: eight dispatchers claiming at once never share a job."""
    from api.dispatcher import Dispatcher, make_clients

    apps = [make_client(make_config(api_pg_url, "http://127.0.0.1:9", crawl_max_domains=7, crawl_min_domains=7))
            for _ in range(2)]
    _, c = apps[0]
    c.simulate_post(f"{API}/batch", json={"domains": [f"d{i}.test" for i in range(300)]})
    c.simulate_post(f"{API}/scrapersky", json={"base_url": "solo.test"})
    claims, errors = [], []
    lock = threading.Lock()

    def worker(app):
        d = Dispatcher(app.scrapersky_store, make_clients(app.scrapersky_config), app.scrapersky_config)
        try:
            while True:
                cl = d.claim("http://127.0.0.1:9")
                if cl is None:
                    return
                with lock:
                    claims.append(cl)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(apps[i % 2][0],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    claimed = [j for cl in claims for j in cl.job_ids]
    assert len(claimed) == len(set(claimed)) == 301
    assert all(len(cl.job_ids) <= 7 for cl in claims)
    assert all(len({cl.batch_id}) == 1 for cl in claims)
    with apps[0][0].scrapersky_store.engine.connect() as conn:
        per_crawl = conn.execute(select(jobs.c.scrapyd_jobid).where(jobs.c.scrapyd_jobid.is_(None))).all()
    assert per_crawl == []
