"""API keys, tenants, quotas and the rate limit, through falcon.testing on real PostgreSQL; the keys CLI
as a subprocess; the 0006 migration on PostgreSQL and SQLite."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import uuid

import pytest
from sqlalchemy import select, text, update

from api.store import jobs
from pipelines.models import utcnow
from tests.api_fixtures import *  # noqa: F401,F403
from tests.api_fixtures import free_port, key_client, make_config, new_key, run_keys

API = "/api/v1"


def assert_error(resp, status: int):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json
    assert isinstance(body.get("title"), str) and body["title"]
    assert isinstance(body.get("description"), str) and body["description"]
    return body


def make_app(db_url: str, **overrides):
    from api.app import create_app

    return create_app(make_config(db_url, f"http://127.0.0.1:{free_port()}", **overrides), start_dispatcher=False)


@pytest.fixture
def app(api_pg_url):
    return make_app(api_pg_url, key_cache_seconds=0)


def finish(engine, job_ids, status="complete"):
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id.in_(job_ids)).values(status=status, started_at=now, finished_at=now))


# ----------------------------------------------------------------------------- 401
def test_every_api_route_needs_a_valid_key_and_public_ones_do_not(app):
    key = new_key(app, "alice", tenant="alice")
    good = key_client(app, key)
    job = good.simulate_post(f"{API}/scrapersky", json={"base_url": "a.test"}).json
    batch = good.simulate_post(f"{API}/batch", json={"domains": ["b.test"]}).json
    routes = [("GET", f"{API}/status/{job['job_id']}"), ("GET", f"{API}/batch/status/{batch['batch_id']}"),
              ("GET", f"{API}/jobs/{job['job_id']}/urls"), ("GET", f"{API}/jobs/{job['job_id']}/sitemaps"),
              ("GET", f"{API}/domains/a.test"), ("POST", f"{API}/jobs/{job['job_id']}/cancel"),
              ("POST", f"{API}/batch/{batch['batch_id']}/cancel"), ("POST", f"{API}/scrapersky"),
              ("POST", f"{API}/batch"), ("GET", f"//api/v1/status/{job['job_id']}"),
              ("GET", f"/api/v1/status/{job['job_id']}/"), ("POST", f"//api/v1/jobs/{job['job_id']}/cancel")]
    bad_headers = [None, f"Bearer {key}x", f"Basic {key}", "Bearer", f"bearer  {key[:-1]}", "Bearer " + "x" * 5000]
    for method, path in routes:
        for header in bad_headers:
            r = key_client(app, None).simulate_request(
                method, path, headers={"Authorization": header} if header else {}, json={"base_url": "c.test"})
            assert_error(r, 401)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert key not in r.text and "c.test" not in r.text
    # other spellings of a path either route (and need the key) or do not route at all
    for path in (f"/api/v1/%73tatus/{job['job_id']}", f"//api/v1//batch/status/{batch['batch_id']}",
                 f"/api//v1/status/{job['job_id']}", f"/./api/v1/status/{job['job_id']}"):
        assert key_client(app, None).simulate_get(path).status_code in (401, 404)
    # nothing was created or cancelled by the refused requests
    assert good.simulate_get(f"{API}/status/{job['job_id']}").json["status"] == "pending"
    with app.scrapersky_store.engine.connect() as conn:
        assert conn.execute(select(jobs.c.domain).order_by(jobs.c.domain)).scalars().all() == ["a.test", "b.test"]
    # the scheme is case-insensitive, as RFC 7235 says
    assert key_client(app, None).simulate_get(f"{API}/status/{job['job_id']}",
                                               headers={"Authorization": f"bearer {key}"}).status_code == 200
    anon = key_client(app, None)
    assert anon.simulate_get("/health/database").status_code == 200
    assert anon.simulate_get("/health").status_code == 503  # scrapyd is down, but no 401
    assert anon.simulate_get(f"{API}/openapi.json").status_code == 200
    assert_error(anon.simulate_get("/nope"), 404)
    assert_error(anon.simulate_get(f"{API}/no-such-route"), 404)


def test_keys_are_stored_hashed_and_revoked_keys_stop_working(app):
    from api.auth import revoke_key

    key = new_key(app, "bob", tenant="bob")
    assert key.startswith("ssk_") and len(key) >= 40
    with app.scrapersky_store.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM api_keys")).mappings().all()
    assert len(rows) == 1 and rows[0]["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert not any(key in str(v) for v in rows[0].values())
    c = key_client(app, key)
    assert c.simulate_post(f"{API}/scrapersky", json={"base_url": "a.test"}).status_code == 202
    assert revoke_key(app.scrapersky_store.engine, "bob") == "revoked"
    assert assert_error(c.simulate_post(f"{API}/scrapersky", json={"base_url": "a.test"}), 401)
    assert 'error="invalid_token"' in c.simulate_get(f"{API}/domains/a.test").headers["www-authenticate"]


# ----------------------------------------------------------------------------- tenants
def test_two_tenants_cannot_see_or_cancel_each_others_work_and_admin_sees_both(app):
    from tests.test_api_app import _seed_pages

    engine = app.scrapersky_store.engine
    alice = key_client(app, new_key(app, "alice", tenant="alice"))
    bob = key_client(app, new_key(app, "bob", tenant="bob"))
    admin = key_client(app, new_key(app, "root", tenant="ops", admin=True))

    a_old = alice.simulate_post(f"{API}/scrapersky", json={"base_url": "shared.test"}).json["job_id"]
    b_job = bob.simulate_post(f"{API}/scrapersky", json={"base_url": "shared.test"}).json["job_id"]
    finish(engine, [uuid.UUID(a_old)])
    finish(engine, [uuid.UUID(b_job)])
    _seed_pages(engine, "shared.test", [uuid.UUID(a_old), uuid.UUID(b_job)], 20)
    a_job = alice.simulate_post(f"{API}/scrapersky", json={"base_url": "a-only.test"}).json["job_id"]
    a_batch = alice.simulate_post(f"{API}/batch", json={"domains": ["x.test", "y.test"]}).json["batch_id"]
    b_batch = bob.simulate_post(f"{API}/batch", json={"domains": ["z.test"]}).json["batch_id"]

    mine = {"alice": (alice, [a_old, a_job], a_batch), "bob": (bob, [b_job], b_batch)}
    for name, (client, _, _) in mine.items():
        other = "bob" if name == "alice" else "alice"
        _, other_jobs, other_batch = mine[other]
        for jid in other_jobs:
            assert_error(client.simulate_get(f"{API}/status/{jid}"), 404)
            for fmt in ("json", "csv", "jsonl"):
                assert_error(client.simulate_get(f"{API}/jobs/{jid}/urls", params={"format": fmt}), 404)
            assert_error(client.simulate_get(f"{API}/jobs/{jid}/sitemaps"), 404)
            assert_error(client.simulate_post(f"{API}/jobs/{jid}/cancel"), 404)
        assert_error(client.simulate_get(f"{API}/batch/status/{other_batch}"), 404)
        assert_error(client.simulate_post(f"{API}/batch/{other_batch}/cancel"), 404)
    # the refused cancels changed nothing
    assert alice.simulate_get(f"{API}/status/{a_job}").json["status"] == "pending"
    assert bob.simulate_get(f"{API}/batch/status/{b_batch}").json["pending_jobs"] == 1

    # each tenant reads its own work; crawled data of the domain is shared, the jobs listed are its own
    assert alice.simulate_get(f"{API}/status/{a_old}").status_code == 200
    assert alice.simulate_get(f"{API}/batch/status/{a_batch}").json["total_jobs"] == 2
    d_alice = alice.simulate_get(f"{API}/domains/shared.test").json
    d_bob = bob.simulate_get(f"{API}/domains/shared.test").json
    d_admin = admin.simulate_get(f"{API}/domains/shared.test").json
    assert d_alice["metadata"] == d_bob["metadata"] and d_alice["url_count"] == d_bob["url_count"] == 20
    assert [j["job_id"] for j in d_alice["recent_jobs"]] == [a_old]
    assert [j["job_id"] for j in d_bob["recent_jobs"]] == [b_job]
    assert {j["job_id"] for j in d_admin["recent_jobs"]} == {a_old, b_job}
    assert d_alice["latest_scan"]["job_id"] == a_old and d_bob["latest_scan"]["job_id"] == b_job
    assert d_bob["latest_scan"]["previous_job_id"] is None  # alice's scan: not bob's to see
    assert d_admin["latest_scan"]["previous_job_id"] == a_old
    assert b_job not in alice.simulate_get(f"{API}/domains/shared.test").text

    # admin sees and cancels everyone's work
    for jid in (a_old, a_job, b_job):
        assert admin.simulate_get(f"{API}/status/{jid}").status_code == 200
        assert admin.simulate_get(f"{API}/jobs/{jid}/sitemaps").status_code == 200
    assert admin.simulate_get(f"{API}/jobs/{b_job}/urls").json["count"] == 20
    assert admin.simulate_get(f"{API}/batch/status/{a_batch}").status_code == 200
    assert admin.simulate_post(f"{API}/batch/{b_batch}/cancel").status_code == 200
    assert bob.simulate_get(f"{API}/batch/status/{b_batch}").json["status"] == "cancelled"
    assert admin.simulate_post(f"{API}/jobs/{a_job}/cancel").status_code == 200
    # the owner's own cancel works too
    assert alice.simulate_post(f"{API}/batch/{a_batch}/cancel").status_code == 200
    # and the work is stored under the key's tenant
    with engine.connect() as conn:
        owners = dict(conn.execute(select(jobs.c.domain, jobs.c.tenant).where(jobs.c.domain != "shared.test")).all())
    assert owners == {"a-only.test": "alice", "x.test": "alice", "y.test": "alice", "z.test": "bob"}


def test_keys_of_one_tenant_share_its_work(app):
    old = key_client(app, new_key(app, "team-2025", tenant="team"))
    new = key_client(app, new_key(app, "team-2026", tenant="team"))
    job = old.simulate_post(f"{API}/scrapersky", json={"base_url": "t.test"}).json["job_id"]
    assert new.simulate_get(f"{API}/status/{job}").status_code == 200


# ----------------------------------------------------------------------------- quotas and rate limit
def test_domains_per_day_quota_gives_429_with_retry_after(api_pg_url):
    app = make_app(api_pg_url, quota_domains_per_day=5)
    c = key_client(app, new_key(app, "q", tenant="q"))
    assert c.simulate_post(f"{API}/batch", json={"domains": ["a.test", "b.test", "c.test"]}).status_code == 202
    assert c.simulate_post(f"{API}/scrapersky", json={"base_url": "d.test"}).status_code == 202
    r = c.simulate_post(f"{API}/batch", json={"domains": ["e.test", "f.test"]})
    body = assert_error(r, 429)
    assert 1 <= int(r.headers["retry-after"]) <= 24 * 3600 and body["retry_after"] == int(r.headers["retry-after"])
    assert body["quota"] == "domains_per_day" and body["limit"] == 5 and "4 of the daily quota of 5" in body["description"]
    assert c.simulate_post(f"{API}/scrapersky", json={"base_url": "e.test"}).status_code == 202  # exactly 5
    assert_error(c.simulate_post(f"{API}/scrapersky", json={"base_url": "f.test"}), 429)
    # a batch bigger than the whole quota says so
    other = key_client(app, new_key(app, "q2", tenant="q2"))
    r = other.simulate_post(f"{API}/batch", json={"domains": [f"d{i}.test" for i in range(6)]})
    assert "more than the daily quota" in assert_error(r, 429)["description"] and int(r.headers["retry-after"]) > 0
    # another tenant has its own quota; admin keys have none
    assert other.simulate_post(f"{API}/batch", json={"domains": [f"d{i}.test" for i in range(5)]}).status_code == 202
    admin = key_client(app, new_key(app, "root", tenant="q", admin=True))
    assert admin.simulate_post(f"{API}/batch", json={"domains": [f"x{i}.test" for i in range(8)]}).status_code == 202
    # jobs older than 24 hours no longer count
    with app.scrapersky_store.engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET created_at = created_at - interval '25 hours' WHERE tenant = 'q'"))
    assert c.simulate_post(f"{API}/batch", json={"domains": ["g.test", "h.test"]}).status_code == 202
    with app.scrapersky_store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs WHERE domain = 'f.test'")).scalar() == 0


def test_concurrent_batches_quota(api_pg_url):
    app = make_app(api_pg_url, quota_concurrent_batches=2)
    c = key_client(app, new_key(app, "cb", tenant="cb"))
    b1 = c.simulate_post(f"{API}/batch", json={"domains": ["a.test", "b.test"]}).json
    c.simulate_post(f"{API}/batch", json={"domains": ["c.test"]})
    r = c.simulate_post(f"{API}/batch", json={"domains": ["d.test"]})
    assert assert_error(r, 429)["quota"] == "concurrent_batches" and int(r.headers["retry-after"]) >= 1
    assert c.simulate_post(f"{API}/scrapersky", json={"base_url": "e.test"}).status_code == 202  # not a batch
    # a batch whose jobs all finished no longer counts, nor does a cancelled one
    ids = [uuid.UUID(j["job_id"]) for j in c.simulate_get(b1["status_url"]).json["jobs"]]
    finish(app.scrapersky_store.engine, ids)
    b3 = c.simulate_post(f"{API}/batch", json={"domains": ["d.test"]})
    assert b3.status_code == 202
    assert_error(c.simulate_post(f"{API}/batch", json={"domains": ["f.test"]}), 429)
    c.simulate_post(f"{API}/batch/{b3.json['batch_id']}/cancel")
    assert c.simulate_post(f"{API}/batch", json={"domains": ["f.test"]}).status_code == 202


def test_request_rate_limit_per_key(api_pg_url):
    app = make_app(api_pg_url, rate_limit="5/minute")
    a = key_client(app, new_key(app, "ra", tenant="r"))
    b = key_client(app, new_key(app, "rb", tenant="r"))
    admin = key_client(app, new_key(app, "radmin", tenant="r", admin=True))
    path = f"{API}/domains/never.test"
    assert [a.simulate_get(path).status_code for _ in range(5)] == [404] * 5
    r = a.simulate_get(path)
    body = assert_error(r, 429)
    assert 1 <= int(r.headers["retry-after"]) <= 60 and "5/minute" in body["description"]
    assert b.simulate_get(path).status_code == 404  # per key
    assert [admin.simulate_get(path).status_code for _ in range(10)] == [404] * 10
    assert key_client(app, None).simulate_get("/health/database").status_code == 200


# ----------------------------------------------------------------------------- API_AUTH=off, startup log
def test_auth_off_only_on_loopback(api_pg_url, capsys, caplog):
    owner = make_app(api_pg_url)
    job = key_client(owner, new_key(owner, "own", tenant="own")).simulate_post(
        f"{API}/scrapersky", json={"base_url": "a.test"}).json["job_id"]
    with caplog.at_level(logging.WARNING, logger="api"):
        app = make_app(api_pg_url, auth_enabled=False, listen_host="127.0.0.1")
    assert any("authentication is OFF" in r.getMessage() for r in caplog.records)
    anon = key_client(app, None)
    assert anon.simulate_get(f"{API}/status/{job}").status_code == 200  # an admin of the default tenant
    r = anon.simulate_post(f"{API}/scrapersky", json={"base_url": "b.test"})
    assert r.status_code == 202
    with app.scrapersky_store.engine.connect() as conn:
        assert conn.execute(select(jobs.c.tenant).where(jobs.c.domain == "b.test")).scalar() == "default"
    # a server that says it listens on a public address gets no free pass (the WSGI server's SERVER_NAME)
    assert_error(anon.simulate_get(f"{API}/status/{job}", extras={"SERVER_NAME": "0.0.0.0"}), 401)
    assert anon.simulate_get(f"{API}/status/{job}", extras={"SERVER_NAME": "127.0.0.1"}).status_code == 200
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.org"):
        capsys.readouterr()
        with pytest.raises(SystemExit):
            make_app(api_pg_url, auth_enabled=False, listen_host=host)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "API_AUTH=off is only allowed when the API listens on loopback" in err[0]


def test_startup_log_tells_how_to_make_the_first_key(api_pg_url, caplog):
    with caplog.at_level(logging.WARNING, logger="api"):
        app = make_app(api_pg_url)
    assert any("python -m api keys create NAME --admin" in r.getMessage() for r in caplog.records)
    new_key(app, "first", admin=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="api"):
        make_app(api_pg_url)
    assert not any("keys create" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------------------- keys CLI
def test_keys_cli_create_list_revoke(tmp_path):
    db = f"sqlite:///{tmp_path / 'keys.db'}"
    made = run_keys(db, "create", "alice", "--admin")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert made.stdout.count("\n") == 1 and key.startswith("ssk_") and "shown only now" in made.stderr
    other = run_keys(db, "create", "bob", "--tenant", "team").stdout.strip()
    assert other != key
    listed = run_keys(db, "list")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TENANT", "ADMIN", "CREATED", "STATE"]
    assert lines[1].split()[:3] == ["alice", "alice", "yes"] and lines[1].endswith("active")
    assert lines[2].split()[:3] == ["bob", "team", "no"]
    assert key not in listed.stdout + listed.stderr and other not in listed.stdout + listed.stderr
    assert key[4:12] not in listed.stdout

    app = make_app(db, key_cache_seconds=0)
    c = key_client(app, other)
    assert c.simulate_post(f"{API}/scrapersky", json={"base_url": "a.test"}).status_code == 202
    revoked = run_keys(db, "revoke", "bob")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert_error(c.simulate_post(f"{API}/scrapersky", json={"base_url": "a.test"}), 401)
    assert "revoked" in run_keys(db, "list").stdout.splitlines()[2]
    assert key_client(app, key).simulate_get(f"{API}/domains/a.test").status_code == 404  # alice still works

    for args, message in [(("create", "alice"), "exists already"), (("revoke", "carol"), "no key named 'carol'"),
                          (("create", "bad name"), "name must be"), (("create", "x", "--tenant", "a/b"), "tenant must be")]:
        out = run_keys(db, *args)
        assert out.returncode == 1 and out.stdout == ""
        assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr and "Traceback" not in out.stderr


def test_keys_cli_database_down_is_one_line_without_password():
    out = run_keys("postgresql://scrapersky:secret@127.0.0.1:1/nowhere", "list")
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and "cannot open the database" in out.stderr
    assert "secret" not in out.stderr and "Traceback" not in out.stderr


# ----------------------------------------------------------------------------- migration 0006
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_migration_gives_existing_work_to_the_default_tenant(backend, request, tmp_path):
    from pipelines.db import make_engine, upgrade

    db_url = request.getfixturevalue("api_pg_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 'm.db'}"
    engine = make_engine(db_url)
    upgrade(engine, "0003")  # the schema before the migration under test
    batch_id, job_id = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO batch_jobs (id, status, created_at, total_jobs) VALUES (:b, 'pending', :t, 1)"),
                     {"b": batch_id.hex if backend == "sqlite" else batch_id, "t": utcnow().replace(tzinfo=None)})
        conn.execute(text("INSERT INTO jobs (id, domain, batch_id, status, created_at, sitemaps_found, sitemaps_failed, "
                          "urls_found, new_urls, removed_urls, bytes_downloaded) "
                          "VALUES (:j, 'old.test', :b, 'pending', :t, 0, 0, 0, 0, 0, 0)"),
                     {"j": job_id.hex if backend == "sqlite" else job_id, "b": batch_id.hex if backend == "sqlite" else batch_id,
                      "t": utcnow().replace(tzinfo=None)})
    engine.dispose()
    app = make_app(db_url)  # migrates to head
    with app.scrapersky_store.engine.connect() as conn:
        assert conn.execute(text("SELECT tenant FROM jobs")).scalars().all() == ["default"]
        assert conn.execute(text("SELECT tenant FROM batch_jobs")).scalars().all() == ["default"]
    admin = key_client(app, new_key(app, "root", tenant="ops", admin=True))
    legacy = key_client(app, new_key(app, "legacy", tenant="default"))
    stranger = key_client(app, new_key(app, "someone", tenant="someone"))
    for c in (admin, legacy):
        assert c.simulate_get(f"{API}/status/{job_id}").status_code == 200
        assert c.simulate_get(f"{API}/batch/status/{batch_id}").json["total_jobs"] == 1
    assert_error(stranger.simulate_get(f"{API}/status/{job_id}"), 404)


def test_openapi_declares_the_bearer_scheme_as_the_app_enforces_it(app):
    anon = key_client(app, None)
    doc = anon.simulate_get(f"{API}/openapi.json").json
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"]}
    for path, ops in doc["paths"].items():
        concrete = path.replace("{job_id}", str(uuid.uuid4())).replace("{batch_id}", str(uuid.uuid4())).replace(
            "{domain}", "example.com")
        for method, op in ops.items():
            secured = op["security"] == [{"bearerAuth": []}]
            assert secured == ("401" in op["responses"]) == ("429" in op["responses"]), (path, method)
            status = anon.simulate_request(method.upper(), concrete).status_code
            assert (status == 401) == secured, (path, method, status)
            if secured:
                assert "Retry-After" in op["responses"]["429"]["headers"]
