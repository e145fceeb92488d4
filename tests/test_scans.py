"""Scan snapshots (pipelines.scans, pipelines.store) on real PostgreSQL and SQLite databases: writes that
never duplicate, the one "previous complete scan" definition, retention, and migration 0004."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select, text

from pipelines import scans, store
from pipelines.db import get_engine, make_engine, upgrade
from pipelines.models import Job, Page, Sitemap
from pipelines.status import Outcome

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def page(url: str, priority: float | None = None) -> dict:
    return {"url": url, "lastmod": None, "changefreq": None, "priority": priority, "alternates": None,
            "images": None, "news": None, "videos": None}


def sitemap_fields(url: str) -> dict:
    return {"url": url, "type": "urlset", "discovered_by": "robots", "parent_url": None, "http_status": 200,
            "gzipped": False, "size_bytes": 10, "url_count": 0, "lastmod_share": None, "priority_share": None,
            "changefreq_share": None, "generator": None, "last_modified": None, "error": None, "fetched_at": None}


def scan(engine, domain: str, urls: list[str], start: dt.datetime, end: dt.datetime | None,
         outcome: Outcome = Outcome.OK, keep: int = 0) -> uuid.UUID:
    """One scan as the pipeline stores it; `end=None` leaves it running."""
    job_id = uuid.uuid4()
    with engine.begin() as conn:
        domain_id = store.ensure_domain(conn, domain)
        store.start_job(conn, job_id, domain, domain_id, None, {}, start)
        sitemap_id = store.upsert_sitemap(conn, domain_id, job_id, sitemap_fields(f"http://{domain}/s.xml"))
        store.insert_pages(conn, domain_id, sitemap_id, job_id, [page(u) for u in urls])
        if end is not None:
            store.finish_job(conn, job_id, domain_id, outcome, None, end, {"sitemaps_found": 1}, keep_scans=keep)
    return job_id


def job(engine, job_id: uuid.UUID):
    with engine.connect() as conn:
        return conn.execute(select(Job.__table__).where(Job.id == job_id)).mappings().one()


def test_a_url_is_stored_once_per_scan_and_a_rerun_never_duplicates(db_url):
    engine = get_engine(db_url)
    job_id = uuid.uuid4()
    a, b = (f"http://dup.test/{x}" for x in ("a", "b"))
    with engine.begin() as conn:
        domain_id = store.ensure_domain(conn, "dup.test")
        store.start_job(conn, job_id, "dup.test", domain_id, None, {}, T0)
        first = store.upsert_sitemap(conn, domain_id, job_id, sitemap_fields("http://dup.test/1.xml"))
        second = store.upsert_sitemap(conn, domain_id, job_id, sitemap_fields("http://dup.test/2.xml"))
        # the spider sends a sitemap again with its counts: still one row
        assert store.upsert_sitemap(conn, domain_id, job_id, {**sitemap_fields("http://dup.test/1.xml"),
                                                              "url_count": 2}) == first
        store.insert_pages(conn, domain_id, first, job_id, [page(a, 0.1), page(b), page(a, 0.9)])
        store.insert_pages(conn, domain_id, second, job_id, [page(b, 0.5)])  # b also in sitemap 2
    with engine.begin() as conn:  # the same job id stored again (a re-run after a crash)
        store.insert_pages(conn, domain_id, first, job_id, [page(a), page(b)])
        store.finish_job(conn, job_id, domain_id, Outcome.OK, None, T0 + dt.timedelta(minutes=1), {})
    with engine.connect() as conn:
        rows = conn.execute(select(Page.url, Page.sitemap_id).where(Page.job_id == job_id)).all()
        sitemaps = conn.execute(select(Sitemap.url, Sitemap.url_count).where(Sitemap.job_id == job_id)).all()
    assert sorted(rows) == [(a, first), (b, first)]
    assert sorted(sitemaps) == [("http://dup.test/1.xml", 2), ("http://dup.test/2.xml", 0)]
    assert (job(engine, job_id)["urls_found"], job(engine, job_id)["new_urls"]) == (2, 2)


def test_page_values_are_stored_as_parsed(db_url):
    """Whatever a sitemap's values hold (tabs, newlines, backslashes, quotes, `\\N`, non-ASCII, nested
    JSON), the stored row has them as the parser gave them."""
    engine = get_engine(db_url)
    job_id = uuid.uuid4()
    odd = {"url": "http://odd.test/a\tb\\c\nd\re\\N?q=\"ü\"", "lastmod": dt.datetime(2024, 5, 6, 7, 8, 9, 123456,
           tzinfo=dt.timezone(dt.timedelta(hours=-5))), "changefreq": "daily", "priority": 0.25,
           "alternates": [{"href": "http://odd.test/de\\x\t", "hreflang": "de"}],
           "images": [{"loc": "http://odd.test/i.jpg", "title": "a \"quoted\" \\ title\n日本"}],
           "news": {"title": "\\N", "language": "en"}, "videos": [{"title": "tab\there"}]}
    plain = {**page("http://odd.test/\\N"), "changefreq": "never", "priority": 1.0}
    rows = [odd, plain, page("http://odd.test/plain")]
    with engine.begin() as conn:
        domain_id = store.ensure_domain(conn, "odd.test")
        store.start_job(conn, job_id, "odd.test", domain_id, None, {}, T0)
        assert store.insert_pages(conn, domain_id, None, job_id, rows) == 3
    columns = ("url", "lastmod", "changefreq", "priority", "alternates", "images", "news", "videos")
    with engine.connect() as conn:
        stored = conn.execute(select(*(Page.__table__.c[c] for c in columns)).where(Page.job_id == job_id)).all()
    got = {row.url: dict(zip(columns, row)) for row in stored}
    for row in rows:
        want = dict(row)
        if want["lastmod"] is not None and got[want["url"]]["lastmod"].tzinfo is None:  # SQLite keeps no zone
            want["lastmod"] = want["lastmod"].astimezone(dt.timezone.utc).replace(tzinfo=None)
        assert got[want["url"]] == want


def test_previous_complete_scan_is_one_definition(db_url):
    engine = get_engine(db_url)
    minute = dt.timedelta(minutes=1)
    old = scan(engine, "prev.test", ["http://prev.test/1", "http://prev.test/2"], T0, T0 + minute)
    scan(engine, "other.test", ["http://other.test/1"], T0 + 2 * minute, T0 + 3 * minute)  # another domain
    failed = scan(engine, "prev.test", [], T0 + 4 * minute, T0 + 5 * minute, Outcome.UNREACHABLE)
    # a scan still running when the next one starts is not the next one's previous scan
    overlapping = scan(engine, "prev.test", ["http://prev.test/1"], T0 + 6 * minute, None)
    latest = scan(engine, "prev.test", ["http://prev.test/2", "http://prev.test/3"], T0 + 7 * minute, None)
    with engine.begin() as conn:
        domain_id = store.ensure_domain(conn, "prev.test")
        store.finish_job(conn, overlapping, domain_id, Outcome.OK, None, T0 + 8 * minute, {})
        store.finish_job(conn, latest, domain_id, Outcome.OK, None, T0 + 9 * minute, {})
    with engine.connect() as conn:
        assert scans.previous_complete_scan(conn, latest)["id"] == old
        assert scans.previous_complete_scan(conn, overlapping)["id"] == old
        assert scans.previous_complete_scan(conn, failed)["id"] == old
        assert scans.previous_complete_scan(conn, old) is None
    counts = {j: (job(engine, j)["urls_found"], job(engine, j)["new_urls"], job(engine, j)["removed_urls"])
              for j in (old, overlapping, latest)}
    assert counts == {old: (2, 2, 0), overlapping: (1, 0, 1), latest: (2, 1, 1)}


def test_retention_keeps_the_newest_complete_scans(db_url):
    engine = get_engine(db_url)
    hour = dt.timedelta(hours=1)
    urls = ["http://keep.test/1"]
    s1 = scan(engine, "keep.test", urls, T0, T0 + hour, keep=2)
    failed = scan(engine, "keep.test", urls, T0 + 2 * hour, T0 + 3 * hour, Outcome.UNREACHABLE, keep=2)
    s2 = scan(engine, "keep.test", urls, T0 + 4 * hour, T0 + 5 * hour, keep=2)
    other = scan(engine, "keep2.test", urls, T0, T0 + hour, keep=2)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Page)).scalar_one() == 4, "nothing pruned yet"
    s3 = scan(engine, "keep.test", urls, T0 + 6 * hour, T0 + 7 * hour, keep=2)
    with engine.connect() as conn:
        kept = {r[0] for r in conn.execute(select(Page.job_id).distinct())}
        kept_maps = {r[0] for r in conn.execute(select(Sitemap.job_id).distinct())}
    assert kept == kept_maps == {s2, s3, other}
    assert [job(engine, j)["pruned_at"] is not None for j in (s1, failed, s2, s3, other)] == [
        True, True, False, False, False]
    assert job(engine, s1)["urls_found"] == 1, "a pruned scan keeps its counts"


def test_keep_scans_setting():
    assert scans.keep_scans("3") == 3 and scans.keep_scans(None) == 0
    for bad in ("x", "-1", "1.5"):
        with pytest.raises(ValueError, match="SCRAPERSKY_KEEP_SCANS"):
            scans.keep_scans(bad)


def test_migration_0004_gives_each_page_to_its_last_scan(db_url):
    engine = make_engine(db_url)
    upgrade(engine, "0003")  # the schema before migration 0004
    j1, j2 = uuid.uuid4(), uuid.uuid4()
    ids = {j: (str(j) if engine.dialect.name == "postgresql" else j.hex) for j in (j1, j2)}
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO domains (name, url_count, sitemap_count) VALUES ('m.test', 2, 1)"))
        for j, when in ((j1, "2024-01-01 00:00:00"), (j2, "2024-01-02 00:00:00")):
            conn.execute(text(
                "INSERT INTO jobs (id, domain, domain_id, status, created_at, started_at, finished_at, sitemaps_found, "
                "sitemaps_failed, urls_found, new_urls, removed_urls, bytes_downloaded, dispatch_attempts) "
                "VALUES (:id, 'm.test', 1, 'complete', :t, :t, :t, 1, 0, 2, 0, 0, 0, 0)"), {"id": ids[j], "t": when})
        conn.execute(text("INSERT INTO sitemaps (domain_id, url, discovered_by, gzipped, url_count, first_job_id, "
                          "last_job_id) VALUES (1, 'http://m.test/s.xml', 'robots', false, 2, :a, :b)"),
                     {"a": ids[j1], "b": ids[j2]})
        for url, last in (("http://m.test/1", j1), ("http://m.test/2", j2)):
            conn.execute(text("INSERT INTO pages (domain_id, url, sitemap_id, first_seen_job_id, last_seen_job_id, "
                              "first_seen_at, last_seen_at) VALUES (1, :url, 1, :first, :last, '2024-01-01', "
                              "'2024-01-01')"), {"url": url, "first": ids[j1], "last": ids[last]})
    upgrade(engine, "head")
    with engine.connect() as conn:
        assert sorted(conn.execute(select(Page.job_id, Page.url, Page.sitemap_id)).all()) == sorted(
            [(j1, "http://m.test/1", 1), (j2, "http://m.test/2", 1)])
        assert conn.execute(select(Sitemap.job_id, Sitemap.url)).all() == [(j2, "http://m.test/s.xml")]
    engine.dispose()


def test_get_engine_brings_an_older_schema_to_the_newest_and_knows_a_current_one(db_url):
    from pipelines import db

    engine = make_engine(db_url)
    assert db.is_current(engine) is False  # no schema at all
    upgrade(engine, "0008")  # one migration behind
    assert db.is_current(engine) is False
    engine.dispose()
    current = get_engine(db_url)  # upgrades it
    with current.connect() as conn:
        conn.execute(text("SELECT count(*) FROM console_logouts")).scalar_one()  # migration 0009's table
    assert db.is_current(current) is True
