"""Finding past work: GET /api/v1/batches, /jobs and /domains (paged, filtered, with totals), on
PostgreSQL and SQLite through falcon.testing."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, update

from api.store import domains, jobs
from tests.api_fixtures import *  # noqa: F401,F403
from tests.api_fixtures import free_port, key_client, make_client, make_config, new_key

API = "/api/v1"


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'lists.db'}" if request.param == "sqlite" else request.getfixturevalue("api_pg_url")
    return make_client(make_config(url, f"http://127.0.0.1:{free_port()}"), admin=True)


def walk(c, path: str, params: dict, key: str, limit: int) -> tuple[list[dict], set[int]]:
    """Every row of a listing, page by page; also the totals each page reported."""
    got, totals, cursor = [], set(), None
    while True:
        r = c.simulate_get(path, params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        got += r.json[key]
        totals.add(r.json["total"])
        cursor = r.json["next_cursor"]
        if not cursor:
            return got, totals


def test_batches_newest_first_paged_with_totals_and_filters(api):
    app, c = api
    ids = [c.simulate_post(f"{API}/batch", json={"domains": [f"b{i}-{j}.test" for j in range(i + 1)]}).json["batch_id"]
           for i in range(7)]
    rows, totals = walk(c, f"{API}/batches", {}, "batches", 3)
    assert [r["batch_id"] for r in rows] == ids[::-1] and totals == {7}
    assert [r["total_jobs"] for r in rows] == list(range(7, 0, -1))
    assert rows[0]["links"]["status"] == f"{API}/batch/status/{ids[-1]}"
    pending, totals = walk(c, f"{API}/batches", {"status": "pending"}, "batches", 5)
    assert len(pending) == 7 and totals == {7}
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
    r = c.simulate_get(f"{API}/batches", params={"created_after": future})
    assert r.json == {"total": 0, "next_cursor": None, "batches": []}


def test_jobs_filtered_by_domain_status_outcome_and_batch(api):
    app, c = api
    batch = c.simulate_post(f"{API}/batch", json={"domains": ["one.test", "two.test", "three.test"]}).json
    single = [c.simulate_post(f"{API}/scrapersky", json={"base_url": "https://www.one.test/x"}).json for _ in range(2)]
    with app.scrapersky_store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.domain == "two.test").values(
            status="failed", outcome="unreachable", error="could not reach two.test"))
    everything, totals = walk(c, f"{API}/jobs", {}, "jobs", 2)
    assert len(everything) == 5 and totals == {5}
    assert [j["job_id"] for j in everything[:2]] == [s["job_id"] for s in single[::-1]]
    one, _ = walk(c, f"{API}/jobs", {"domain": "WWW.One.test"}, "jobs", 10)  # one site, however spelled
    assert {j["domain"] for j in one} == {"one.test"} and len(one) == 3
    failed = c.simulate_get(f"{API}/jobs", params={"outcome": "unreachable"}).json
    assert [(j["domain"], j["status"], j["error"]) for j in failed["jobs"]] == [
        ("two.test", "failed", "could not reach two.test")] and failed["total"] == 1
    in_batch = c.simulate_get(f"{API}/jobs", params={"batch_id": batch["batch_id"], "status": "pending"}).json
    assert in_batch["total"] == 2 and {j["domain"] for j in in_batch["jobs"]} == {"one.test", "three.test"}


def test_domains_searched_and_sorted(api):
    app, c = api
    now = dt.datetime.now(dt.timezone.utc)
    with app.scrapersky_store.engine.begin() as conn:
        conn.execute(insert(domains), [
            {"name": f"shop{i}.test", "url_count": i * 10, "sitemap_count": 1 if i % 2 else 0,
             "last_scan_at": now - dt.timedelta(days=i) if i else None, "title": f"Shop {i}"}
            for i in range(6)] + [{"name": "blog.test", "url_count": 5, "sitemap_count": 1, "last_scan_at": now, "title": "Blog"}])
    by_scan, totals = walk(c, f"{API}/domains", {}, "domains", 2)
    assert [d["domain"] for d in by_scan] == ["blog.test"] + [f"shop{i}.test" for i in range(1, 6)] + ["shop0.test"]
    assert totals == {7}
    by_count, _ = walk(c, f"{API}/domains", {"sort": "url_count"}, "domains", 3)
    assert [d["url_count"] for d in by_count] == [50, 40, 30, 20, 10, 5, 0]
    shops, totals = walk(c, f"{API}/domains", {"q": "SHOP", "has_sitemap": "true", "sort": "name"}, "domains", 2)
    assert [d["domain"] for d in shops] == ["shop1.test", "shop3.test", "shop5.test"] and totals == {3}
    assert c.simulate_get(f"{API}/domains", params={"q": "%"}).json["total"] == 0  # LIKE wildcards are literal


def test_each_tenant_lists_only_its_own_work_and_admin_lists_all(api):
    app, admin = api
    alice, bob = (key_client(app, new_key(app, tenant=t)) for t in ("alice", "bob"))
    a = alice.simulate_post(f"{API}/batch", json={"domains": ["alice-1.test", "shared.test"]}).json
    b = bob.simulate_post(f"{API}/batch", json={"domains": ["bob-1.test", "shared.test"]}).json
    with app.scrapersky_store.engine.begin() as conn:
        conn.execute(insert(domains), [{"name": n, "url_count": 1, "sitemap_count": 1, "title": None,
                                        "last_scan_at": None} for n in ("alice-1.test", "bob-1.test", "shared.test")])
    for client, mine, other in ((alice, a, b), (bob, b, a)):
        assert [x["batch_id"] for x in client.simulate_get(f"{API}/batches").json["batches"]] == [mine["batch_id"]]
        listed = client.simulate_get(f"{API}/jobs").json
        assert listed["total"] == 2 and {j["batch_id"] for j in listed["jobs"]} == {mine["batch_id"]}
        assert client.simulate_get(f"{API}/jobs", params={"batch_id": other["batch_id"]}).json["total"] == 0
    assert {d["domain"] for d in alice.simulate_get(f"{API}/domains").json["domains"]} == {"alice-1.test", "shared.test"}
    assert admin.simulate_get(f"{API}/batches").json["total"] == 2
    assert admin.simulate_get(f"{API}/jobs").json["total"] == 4
    assert admin.simulate_get(f"{API}/domains").json["total"] == 3
    # a cursor is bound to its listing and its caller: alice's cursor means nothing to bob
    cursor = alice.simulate_get(f"{API}/jobs", params={"limit": 1}).json["next_cursor"]
    assert bob.simulate_get(f"{API}/jobs", params={"limit": 1, "cursor": cursor}).status_code == 400


@pytest.mark.parametrize("path,params", [
    ("/batches", {"domain": "x.test"}),  # a filter of another listing
    ("/jobs", {"stauts": "failed"}),  # a typo
    ("/domains", {"has_sitemaps": "true"}),
    ("/jobs", {"status": "done"}),
    ("/jobs", {"outcome": "fine"}),
    ("/jobs", {"batch_id": "not-a-uuid"}),
    ("/jobs", {"domain": "ftp://x"}),
    ("/batches", {"created_after": "yesterday"}),
    ("/domains", {"sort": "size"}),
    ("/domains", {"has_sitemap": "maybe"}),
    ("/jobs", {"cursor": "bm90IGEgY3Vyc29y"}),
    ("/batches", {"cursor": "WyJub3QgYSB0aW1lIiwgIngiXQ"}),  # ["not a time", "x"]
    ("/domains", {"cursor": "WzEsICJ4Il0"}),  # [1, "x"]
    ("/jobs", {"limit": "0"}),
])
def test_bad_query_parameters_are_400_json(api, path, params):
    _, c = api
    r = c.simulate_get(API + path, params=params)
    assert r.status_code == 400, r.text
    assert r.json["title"] and r.json["description"]
