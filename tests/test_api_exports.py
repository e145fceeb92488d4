"""Exports on PostgreSQL and SQLite through falcon.testing: the whole-batch export
(GET /api/v1/batches/{id}/urls) is the union of its jobs' exports plus domain and job_id, and every
export is gzip-compressed on the fly when the client accepts gzip."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import uuid

import pytest
from sqlalchemy import select

from api.store import jobs
from pipelines import store
from tests.api_fixtures import free_port, key_client, make_client, make_config, new_key
from tests.test_scans import sitemap_fields

API = "/api/v1"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def page(url: str, n: int) -> dict:
    return {"url": url, "lastmod": T0 + dt.timedelta(days=n), "changefreq": "daily" if n % 2 else None,
            "priority": 0.5, "alternates": None, "images": [{"loc": f"{url}.png"}] if n % 3 == 0 else None,
            "news": None, "videos": None}


@pytest.fixture
def batch(db_url):
    """(app, client, batch_id, job ids): a batch of two domains whose jobs hold pages."""
    app, client = make_client(make_config(db_url, f"http://127.0.0.1:{free_port()}"))
    resp = client.simulate_post(f"{API}/batch", json={"domains": ["b-two.test", "a-one.test"]})
    assert resp.status_code in (200, 201, 202), resp.text
    batch_id = uuid.UUID(resp.json["batch_id"])
    engine = app.scrapersky_store.engine
    with engine.begin() as conn:
        rows = conn.execute(select(jobs.c.id, jobs.c.domain).where(jobs.c.batch_id == batch_id)).all()
        for job_id, domain in rows:
            domain_id = store.ensure_domain(conn, domain)
            store.start_job(conn, job_id, domain, domain_id, batch_id, {}, T0)
            sitemap_id = store.upsert_sitemap(conn, domain_id, job_id, sitemap_fields(f"http://{domain}/s.xml"))
            store.insert_pages(conn, domain_id, sitemap_id, job_id,
                               [page(f"http://{domain}/p{i:03d}", i) for i in range(30)])
    return app, client, batch_id, {d: j for j, d in rows}


def csv_rows(body: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body)))


def test_batch_export_is_the_union_of_its_jobs_exports(batch):
    app, client, batch_id, job_ids = batch
    expected = []
    for domain in sorted(job_ids):
        resp = client.simulate_get(f"{API}/jobs/{job_ids[domain]}/urls", params={"format": "csv"})
        assert resp.status_code == 200, resp.text
        expected += [{"domain": domain, "job_id": str(job_ids[domain]), **r} for r in csv_rows(resp.text)]
    assert len(expected) == 60
    resp = client.simulate_get(f"{API}/batches/{batch_id}/urls", params={"format": "csv"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.text.splitlines()[0].startswith("domain,job_id,url,lastmod")
    assert csv_rows(resp.text) == expected
    resp = client.simulate_get(f"{API}/batches/{batch_id}/urls", params={"format": "jsonl"})
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert [(r["domain"], r["job_id"], r["url"]) for r in lines] == [(r["domain"], r["job_id"], r["url"]) for r in expected]
    assert lines[0]["lastmod"] == "2026-01-01T00:00:00Z" and lines[0]["images"] == [{"loc": "http://a-one.test/p000.png"}]


def test_exports_gzip_round_trip(batch):
    app, client, batch_id, job_ids = batch
    for path in (f"{API}/batches/{batch_id}/urls", f"{API}/jobs/{job_ids['a-one.test']}/urls"):
        for fmt in ("csv", "jsonl"):
            plain = client.simulate_get(path, params={"format": fmt})
            assert plain.status_code == 200 and "content-encoding" not in plain.headers
            assert "Accept-Encoding" in plain.headers["vary"]
            gz = client.simulate_get(path, params={"format": fmt}, headers={"Accept-Encoding": "gzip, deflate"})
            assert gz.status_code == 200
            assert gz.headers["content-encoding"] == "gzip" and "Accept-Encoding" in gz.headers["vary"]
            assert gz.content != plain.content
            assert gzip.decompress(gz.content) == plain.content and len(plain.content) > 1000


def test_batch_export_is_404_for_another_tenant_and_unknown_batch_and_400_for_bad_format(batch):
    app, client, batch_id, _ = batch
    other = key_client(app, new_key(app, tenant="someone-else"))
    for c, bid in ((other, batch_id), (client, uuid.uuid4())):
        resp = c.simulate_get(f"{API}/batches/{bid}/urls", params={"format": "csv"})
        assert resp.status_code == 404 and resp.json["title"] and resp.json["description"]
    admin = key_client(app, new_key(app, tenant=None, admin=True))
    assert admin.simulate_get(f"{API}/batches/{batch_id}/urls").status_code == 200
    resp = client.simulate_get(f"{API}/batches/{batch_id}/urls", params={"format": "xml"})
    assert resp.status_code == 400 and resp.json["title"] and resp.json["description"]
