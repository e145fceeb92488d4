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

from api.http import dumps
from api.store import jobs
from pipelines.rows import URL_COLUMNS, csv_cell, format_time, url_row
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


# ------------------------------------------------------------------------------------------ exact exports
# Rows a crawl may store that are awkward to write: quoting, unicode, escapes in nested values, lastmods
# with and without fractions of a second, every kind of priority the parser accepts, nulls.
UTC = dt.timezone.utc
AWKWARD = [
    {"url": "http://{d}/plain"},
    {"url": "http://{d}/caf\u00e9/\u4e2d\u6587/\U0001F600", "lastmod": dt.datetime(2024, 3, 5, 8, 30, tzinfo=UTC),
     "priority": 1.0, "changefreq": "daily"},
    {"url": 'http://{d}/a,b"c"', "lastmod": dt.datetime(2024, 3, 5, 8, 30, 0, 500000, tzinfo=UTC), "priority": 0.0},
    {"url": "http://{d}/line\nbreak", "lastmod": dt.datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=UTC), "priority": -0.0},
    {"url": "http://{d}/tz", "lastmod": dt.datetime(2024, 1, 1, 1, 0, 0, 123456,
                                                   tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
     "priority": 0.30000000000000004},
    {"url": "http://{d}/tiny", "priority": 1e-05, "lastmod": dt.datetime(24, 2, 29, tzinfo=UTC)},
    {"url": "http://{d}/nested", "priority": 0.8,
     "images": [{"loc": "http://{d}/i.png", "title": 'say "hi", \\ ok\n\ttab \u2028 \x01 \x7f \u00e9 \U0001F600',
                 "caption": ""}, {"loc": "http://{d}/j.png"}],
     "videos": [{"title": "v: 1, 2", "duration": "60", "content_loc": "http://{d}/v.mp4"}],
     "news": {"publication": "Die Zeit", "language": "de", "title": "\u00dcber, \"alles\"",
              "publication_date": "2024-03-05"},
     "alternates": [{"href": "http://{d}/fr", "hreflang": "fr"}, {"href": "http://{d}/x-default"}]},
    {"url": "http://{d}/empty-nested", "images": [], "news": {}, "changefreq": ""},
    {"url": "http://{d}/keys", "news": {"zz": "1", "a": "2", "title": "k: v, w"}},
    {"url": "http://{d}/string-news", "news": ""},  # a JSON string: an empty cell, not a quoted one
]
# Rows only a hand-written insert makes (the parser never keeps them): PostgreSQL's own formatting would
# differ from Python's for them, so these exports take the Python path there.
ODD = [
    {"url": "http://{d}/cr\rin-url", "priority": 0.5},
    {"url": "http://{d}/number", "images": [{"loc": "http://{d}/i.png", "width": 1e-05, "height": 300}]},
    {"url": "http://{d}/big-priority", "priority": 2.5},
    {"url": "http://{d}/flag", "news": True},
]


def _pages(rows: list[dict], domain: str) -> list[dict]:
    def fill(value):
        if isinstance(value, str):
            return value.replace("{d}", domain)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value
    base = {"lastmod": None, "changefreq": None, "priority": None, "alternates": None, "images": None, "news": None,
            "videos": None}
    return [{**base, **fill(r)} for r in rows]


def _batch_of(app, client, domains: list[str], rows: list[dict]) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    resp = client.simulate_post(f"{API}/batch", json={"domains": domains})
    assert resp.status_code in (200, 201, 202), resp.text
    batch_id = uuid.UUID(resp.json["batch_id"])
    with app.scrapersky_store.engine.begin() as conn:
        found = conn.execute(select(jobs.c.id, jobs.c.domain).where(jobs.c.batch_id == batch_id)).all()
        for job_id, domain in found:
            domain_id = store.ensure_domain(conn, domain)
            store.start_job(conn, job_id, domain, domain_id, batch_id, {}, T0)
            sitemap_id = store.upsert_sitemap(conn, domain_id, job_id, sitemap_fields(f'http://{domain}/s,"1".xml'))
            pages = _pages(rows, domain)
            store.insert_pages(conn, domain_id, sitemap_id, job_id, pages[:-1])
            store.insert_pages(conn, domain_id, None, job_id, pages[-1:])  # no sitemap: sitemap_url is null
    return batch_id, {d: j for j, d in found}


@pytest.fixture
def awkward(db_url):
    """(app, client, plain batch, its jobs by domain, odd batch, its jobs by domain)."""
    app, client = make_client(make_config(db_url, f"http://127.0.0.1:{free_port()}"))
    plain, plain_jobs = _batch_of(app, client, ["zeta.test", "alpha.test"], AWKWARD)
    odd, odd_jobs = _batch_of(app, client, ["odd.test"], AWKWARD + ODD)
    return app, client, plain, plain_jobs, odd, odd_jobs


def reference_rows(app, job_id: uuid.UUID, lead: tuple = ()) -> list[list]:
    """The job's rows as `pipelines.rows` makes them from the values the database gives back."""
    return [[*lead, *url_row(p).values()] for p in app.scrapersky_store.list_pages(job_id, None, None, 10_000)]


def reference_csv(rows: list[list], header: tuple) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[csv_cell(v) for v in row] for row in rows])
    return buf.getvalue().encode("utf-8")


def reference_jsonl(rows: list[list], header: tuple) -> bytes:
    return "".join(dumps(dict(zip(header, row))) + "\n" for row in rows).encode("utf-8")


def test_exports_are_byte_identical_to_the_row_formatter(awkward, monkeypatch):
    app, client, plain, plain_jobs, odd, odd_jobs = awkward
    copies = []  # PostgreSQL: whether its COPY wrote each export (the odd rows take the Python path)
    copy_export = app.scrapersky_store.copy_export
    monkeypatch.setattr(app.scrapersky_store, "copy_export",
                        lambda what, *args: copies.append(((what.batch_id or what.job_id), copy_export(what, *args))) or copies[-1][1])
    exported = {}
    for batch_id, job_ids in ((plain, plain_jobs), (odd, odd_jobs)):
        batch_rows = []
        for domain in sorted(job_ids):
            rows = reference_rows(app, job_ids[domain])
            batch_rows += [[domain, str(job_ids[domain]), *row] for row in rows]
            for fmt, reference in (("csv", reference_csv), ("jsonl", reference_jsonl)):
                resp = client.simulate_get(f"{API}/jobs/{job_ids[domain]}/urls", params={"format": fmt})
                assert resp.status_code == 200, resp.text
                assert resp.content == reference(rows, URL_COLUMNS), (domain, fmt)
                exported[domain, fmt] = resp.content
        lead = ("domain", "job_id")
        for fmt, reference in (("csv", reference_csv), ("jsonl", reference_jsonl)):
            resp = client.simulate_get(f"{API}/batches/{batch_id}/urls", params={"format": fmt})
            assert resp.status_code == 200, resp.text
            assert resp.content == reference(batch_rows, lead + URL_COLUMNS), (batch_id, fmt)
            gz = client.simulate_get(f"{API}/batches/{batch_id}/urls", params={"format": fmt},
                                     headers={"Accept-Encoding": "gzip"})
            assert gz.headers["content-encoding"] == "gzip" and gzip.decompress(gz.content) == resp.content
    # what the user sees: the values survived, quoting and all
    text = exported["alpha.test", "csv"].decode("utf-8")
    rows = {r["url"]: r for r in csv_rows(text)}
    assert len(rows) == len(AWKWARD)
    assert rows["http://alpha.test/line\nbreak"]["lastmod"] == "1999-12-31T23:59:59.000001Z"
    assert rows["http://alpha.test/tz"]["lastmod"] == "2023-12-31T19:30:00.123456Z"
    assert rows["http://alpha.test/caf\u00e9/\u4e2d\u6587/\U0001F600"]["lastmod"] == "2024-03-05T08:30:00Z"
    assert rows["http://alpha.test/tiny"]["lastmod"] == "0024-02-29T00:00:00Z"
    assert [rows[f"http://alpha.test/{u}"]["priority"] for u in ("tiny", "plain")] == ["1e-05", ""]
    assert json.loads(rows["http://alpha.test/nested"]["images"])[0]["title"].startswith('say "hi", \\ ok\n')
    assert rows["http://alpha.test/string-news"]["sitemap_url"] == "" and rows["http://alpha.test/plain"]["sitemap_url"]
    assert rows["http://alpha.test/string-news"]["news"] == "" and '/string-news,,,,,,,,\n' in text
    lines = [json.loads(line) for line in exported["odd.test", "jsonl"].decode("utf-8").split("\n")[:-1]]  # not splitlines: U+2028
    assert {"http://odd.test/cr\rin-url", "http://odd.test/number"} <= {r["url"] for r in lines}
    assert [r["news"] for r in lines if r["url"] == "http://odd.test/flag"] == [True]
    if app.scrapersky_store.is_postgres:  # both of PostgreSQL's paths were compared above
        assert set(copies) == {(i, True) for i in [plain, *plain_jobs.values()]} | {(i, False) for i in [odd, *odd_jobs.values()]}

def wsgi_pieces(app, path: str, query: str, key: str, first_only: bool = False) -> tuple[str, dict, list[bytes]]:
    """(status, headers, body pieces) of a GET straight through the WSGI app, as a server sends them; with
    `first_only` the response is closed after its first piece (a client that went away)."""
    import falcon.testing

    got = {}

    def start_response(status, headers, exc_info=None):
        got["status"], got["headers"] = status, {k.lower(): v for k, v in headers}

    body = app(falcon.testing.create_environ(path=path, query_string=query,
                                             headers={"Authorization": f"Bearer {key}"}), start_response)
    pieces = []
    try:
        for piece in body:
            pieces.append(piece)
            if first_only:
                break
    finally:
        body.close()
    return got["status"], got["headers"], pieces


def test_parquet_export_matches_the_csv_and_json_exports_in_row_groups(awkward, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from api import exports

    app, client, plain, plain_jobs, odd, odd_jobs = awkward
    monkeypatch.setattr(exports, "PARQUET_ROW_GROUP_ROWS", 4)
    key = new_key(app)
    for path in (f"{API}/batches/{plain}/urls", f"{API}/batches/{odd}/urls", f"{API}/jobs/{plain_jobs['zeta.test']}/urls"):
        status, headers, pieces = wsgi_pieces(app, path, "format=parquet", key)
        assert status.startswith("200") and headers["content-type"] == "application/vnd.apache.parquet"
        assert headers["content-disposition"].endswith('.parquet"') and "content-encoding" not in headers
        table = pq.read_table(io.BytesIO(b"".join(pieces)))
        jsonl_resp = client.simulate_get(path, params={"format": "jsonl"})
        objects = [json.loads(line) for line in jsonl_resp.text.split("\n")[:-1]]
        assert table.column_names == list(objects[0]) and table.num_rows == len(objects) > 4
        assert table.schema.field("lastmod").type == pa.timestamp("us", tz="UTC")
        assert table.schema.field("priority").type == pa.float64()
        assert all(table.schema.field(n).type == pa.string() for n in table.column_names if n not in ("lastmod", "priority"))
        meta = pq.ParquetFile(io.BytesIO(b"".join(pieces))).metadata
        assert meta.num_row_groups == -(-len(objects) // 4) and len(pieces) >= meta.num_row_groups  # sent as written
        rows = table.to_pylist()
        for row, obj in zip(rows, objects):
            assert (format_time(row["lastmod"]) if row["lastmod"] else None) == obj["lastmod"]
            assert row["priority"] == obj["priority"]
            for name in table.column_names:  # the strings, and the nested values as the JSON text of the CSV
                if name not in ("lastmod", "priority"):
                    assert row[name] == (None if obj[name] is None else str(csv_cell(obj[name]))), name
        if path.endswith(f"{plain}/urls"):  # and as a spreadsheet reads the CSV (the odd batch has a bare CR)
            cells = csv_rows(client.simulate_get(path, params={"format": "csv"}).text)
            assert [{k: "" if v is None else str(v) for k, v in row.items() if k != "lastmod"} for row in rows] == \
                [{k: v for k, v in cell.items() if k != "lastmod"} for cell in cells]
        gz = client.simulate_get(path, params={"format": "parquet"}, headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in gz.headers and gz.content == b"".join(pieces)


def test_a_closed_export_stops_and_frees_its_connection(awkward, monkeypatch):
    """A client that goes away mid-download: the export (on PostgreSQL its COPY thread) stops, its database
    connection goes back to the pool, and the next export is whole."""
    import threading

    from api import exports

    app, client, plain, plain_jobs, *_ = awkward
    monkeypatch.setattr(exports, "CHUNK_BYTES", 64)
    monkeypatch.setattr(exports, "QUEUE_CHUNKS", 1)
    key = new_key(app)
    path = f"{API}/batches/{plain}/urls"
    for fmt in ("csv", "jsonl", "parquet"):
        status, _, pieces = wsgi_pieces(app, path, f"format={fmt}", key, first_only=True)
        assert status.startswith("200") and len(pieces) == 1
    for _ in range(200):  # the COPY thread sees the close at its next row
        if not any(t.name == "export-copy" for t in threading.enumerate()):
            break
        threading.Event().wait(0.05)
    assert not any(t.name == "export-copy" for t in threading.enumerate())
    assert app.scrapersky_store.engine.pool.checkedout() == 0
    lead = ("domain", "job_id")
    rows = [[d, str(j), *r] for d, j in sorted(plain_jobs.items()) for r in reference_rows(app, j)]
    for fmt, reference in (("csv", reference_csv), ("jsonl", reference_jsonl)):
        status, _, pieces = wsgi_pieces(app, path, f"format={fmt}", key)
        assert b"".join(pieces) == reference(rows, lead + URL_COLUMNS)
        assert len(pieces) > 10 or not app.scrapersky_store.is_postgres  # COPY's pieces of CHUNK_BYTES
