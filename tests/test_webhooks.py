"""Webhooks (api/webhooks.py) on PostgreSQL and SQLite: a batch or a single scan with `callback_url` is
announced by exactly one signed POST to a real loopback receiver once it is final; failed attempts are
retried with back-off until the window closes; every delivery is visible to its tenant only; callback
URLs go through the crawler's network policy, when they are given and again when they are called.

Jobs are finished through `pipelines.lifecycle` (what a crawl does); the dispatcher's own tick arms and
sends. tests/test_api_scrapyd.py has one batch through a real scrapyd crawl."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
import uuid

import pytest
from sqlalchemy import func, select, text

from api.auth import webhook_secret
from api.store import batches, jobs
from api.webhooks import CallbackUrlError, WebhookSender, check_callback_url, deliveries, post
from pipelines import lifecycle
from pipelines.models import utcnow
from pipelines.netpolicy import Refused
from pipelines.status import Outcome
from tests.api_fixtures import *  # noqa: F401,F403
from tests.api_fixtures import free_port, key_client, make_config, new_key, run_keys, wait_until
from tests.webhook_receiver import WebhookReceiver

API = "/api/v1"
pytestmark = pytest.mark.timeout(120)


def make_app(db_url: str, **overrides):
    from api.app import create_app

    settings = dict(allow_private=True, dispatch_interval=0.05, webhook_timeout=2.0, webhook_retry_base=0.05,
                    webhook_retry_max=0.2, webhook_retry_window=60.0, key_cache_seconds=0)
    settings.update(overrides)
    return create_app(make_config(db_url, f"http://127.0.0.1:{free_port()}", **settings), start_dispatcher=False)


def client(app, tenant: str = "alice", name: str | None = None, admin: bool = False):
    """(client, key name): a key of `tenant`."""
    name = name or f"{tenant}-{uuid.uuid4().hex[:6]}"
    return key_client(app, new_key(app, name, tenant=tenant, admin=admin)), name


def drive(app, predicate, timeout: float = 30.0, what: str = "condition"):
    """Tick the dispatcher (the leader arms and sends webhooks) until `predicate()` holds."""
    def step():
        app.scrapersky_dispatcher.tick()
        return predicate()

    return wait_until(step, timeout, interval=0.05, what=what)


def finish(app, job_id, outcome: Outcome = Outcome.OK, urls: int = 10, error: str | None = None):
    with app.scrapersky_store.engine.begin() as conn:
        assert lifecycle.finish(conn, uuid.UUID(str(job_id)), outcome, error, utcnow(), urls_found=urls,
                                sitemaps_found=1 if outcome is Outcome.OK else 0)


def delivery_of(c, batch_id=None, job_id=None) -> dict:
    path = f"{API}/batches/{batch_id}/deliveries" if batch_id else f"{API}/jobs/{job_id}/deliveries"
    r = c.simulate_get(path)
    assert r.status_code == 200, r.text
    (one,) = r.json["deliveries"]
    return one


def signature(secret: str, body: bytes) -> str:
    """How a receiver checks a delivery (as api/README.md shows)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def assert_declared(app, path: str, body: dict, status: int = 200, method: str = "GET") -> None:
    """`body` matches the OpenAPI document's schema of that response (api/openapi.py)."""
    validator = app.scrapersky_contract.response_validator(path, method, status)
    errors = [e.message for e in validator.iter_errors(body)]
    assert not errors, (path, errors[:5])


def assert_error(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.json["title"] and resp.json["description"]
    return resp.json


# ----------------------------------------------------------------------------- the batch webhook
def test_finished_batch_is_announced_once_signed_with_counts_matching_its_status(db_url):
    app = make_app(db_url)
    c, key_name = client(app)
    secret = webhook_secret(app.scrapersky_store.engine, key_name)
    with WebhookReceiver([200]) as hook:
        r = c.simulate_post(f"{API}/batch", json={"domains": ["a.test", "b.test", "c.test", "d.test"],
                                                  "callback_url": hook.url("/hooks/scrapersky?team=7")})
        assert r.status_code == 202, r.text
        batch_id = r.json["batch_id"]
        assert r.json["callback_url"] == hook.url("/hooks/scrapersky?team=7")
        status = c.simulate_get(f"{API}/batch/status/{batch_id}").json
        assert status["webhook"]["status"] == "waiting" and status["webhook"]["attempts"] == 0
        by_domain = {j["domain"]: j["job_id"] for j in status["jobs"]}

        finish(app, by_domain["a.test"], Outcome.OK, urls=40)
        finish(app, by_domain["b.test"], Outcome.OK, urls=2)
        finish(app, by_domain["c.test"], Outcome.UNREACHABLE, urls=0, error="could not reach c.test")
        for _ in range(5):  # one job still pending: nothing is sent
            app.scrapersky_dispatcher.tick()
        assert hook.count() == 0
        assert c.simulate_get(f"{API}/batch/status/{batch_id}").json["webhook"]["status"] == "waiting"
        assert c.simulate_post(f"{API}/jobs/{by_domain['d.test']}/cancel").status_code == 200

        drive(app, lambda: delivery_of(c, batch_id)["status"] == "delivered", what="the delivery")
        for _ in range(10):  # later ticks send nothing more
            app.scrapersky_dispatcher.tick()
        time.sleep(0.2)
        assert hook.count() == 1
        got = hook.received[0]

    assert got.path == "/hooks/scrapersky?team=7"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-scrapersky-signature"] == signature(secret, got.body)
    assert got.headers["x-scrapersky-signature"] != signature(secret + "x", got.body)
    assert got.headers["x-scrapersky-event"] == "batch.finished" and got.headers["x-scrapersky-attempt"] == "1"
    assert abs(int(got.headers["x-scrapersky-timestamp"]) - time.time()) < 600
    payload = json.loads(got.body)
    status = c.simulate_get(f"{API}/batch/status/{batch_id}").json
    assert payload["event"] == "batch.finished" and payload["batch_id"] == batch_id
    assert payload["delivery_id"] == got.headers["x-scrapersky-delivery"] == status["webhook"]["delivery_id"]
    assert payload["status"] == status["status"] == "complete"
    assert payload["counts"] == {"pending": status["pending_jobs"], "running": status["running_jobs"],
                                 "complete": status["completed_jobs"], "failed": status["failed_jobs"],
                                 "cancelled": status["cancelled_jobs"]} == {
        "pending": 0, "running": 0, "complete": 2, "failed": 1, "cancelled": 1}
    assert payload["outcomes"] == status["outcomes"] == {"ok": 2, "unreachable": 1, "cancelled": 1}
    assert payload["urls_found"] == status["urls_found"] == 42 and payload["total_jobs"] == 4
    assert payload["finished_at"] == status["finished_at"] and payload["created_at"] == status["created_at"]
    assert payload["links"]["status"] == f"{API}/batch/status/{batch_id}"
    assert c.simulate_get(payload["links"]["urls_csv"].split("?")[0], params={"format": "csv"}).status_code == 200

    seen = delivery_of(c, batch_id)
    assert seen["payload"] == payload and seen["attempts"] == 1 and seen["last_status_code"] == 200
    # the document declares every field of these answers, the webhook body included
    assert_declared(app, f"{API}/batch/status/{{batch_id}}", status)
    assert_declared(app, f"{API}/batches/{{batch_id}}/deliveries",
                    c.simulate_get(f"{API}/batches/{batch_id}/deliveries").json)
    assert seen["last_error"] is None and seen["delivered_at"] and seen["next_attempt_at"] is None
    assert status["webhook"] == {k: v for k, v in seen.items() if k != "payload"}


def test_two_processes_noticing_a_finished_batch_arm_one_delivery(db_url):
    app = make_app(db_url, allow_private=True)
    c, _ = client(app)
    batch_id = c.simulate_post(f"{API}/batch", json={"domains": ["a.test", "b.test"],
                                                     "callback_url": "http://127.0.0.1:9/x"}).json["batch_id"]
    for j in c.simulate_get(f"{API}/batch/status/{batch_id}").json["jobs"]:
        finish(app, j["job_id"])
    senders = [WebhookSender(app.scrapersky_store, app.scrapersky_config) for _ in range(4)]
    barrier = threading.Barrier(len(senders))
    armed = []

    def arm(sender):
        barrier.wait()
        armed.append(sender.arm())

    threads = [threading.Thread(target=arm, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(armed) == 1
    with app.scrapersky_store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(deliveries)).scalar_one() == 1
        assert conn.execute(select(deliveries.c.status)).scalar_one().value == "pending"
    # and a second delivery for the batch cannot be stored
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), app.scrapersky_store.engine.begin() as conn:
        app.scrapersky_store._add_delivery(conn, "alice", {"callback_url": "http://127.0.0.1:9/y", "key_name": "k"},
                                           batch_id=uuid.UUID(batch_id))


# ----------------------------------------------------------------------------- retries
def test_receiver_failing_twice_gets_the_same_signed_body_until_it_answers_200(db_url):
    app = make_app(db_url, webhook_retry_base=1.0, webhook_retry_max=1.0)
    c, key_name = client(app)
    secret = webhook_secret(app.scrapersky_store.engine, key_name)
    with WebhookReceiver([500, 500, 200]) as hook:
        job = c.simulate_post(f"{API}/scrapersky", json={"base_url": "one.test", "callback_url": hook.url()}).json
        assert c.simulate_get(job["status_url"]).json["webhook"]["status"] == "waiting"
        finish(app, job["job_id"], Outcome.OK, urls=7)
        drive(app, lambda: hook.count() >= 1, what="the first attempt")
        # no tick meanwhile, so no second attempt: the first one's answer is recorded, a retry planned
        first = wait_until(lambda: (d := delivery_of(c, job_id=job["job_id"]))["last_status_code"] and d,
                           10, what="the first answer recorded")
        assert (first["status"], first["attempts"], first["last_status_code"], first["last_error"]) == (
            "pending", 1, 500, "HTTP 500")
        assert 0.5 <= dt_of(first["next_attempt_at"]) - dt_of(first["last_attempt_at"]) <= 1.5
        drive(app, lambda: delivery_of(c, job_id=job["job_id"])["status"] == "delivered", what="the delivery")
        time.sleep(0.2)
        for _ in range(5):
            app.scrapersky_dispatcher.tick()
        assert hook.count() == 3

    seen = delivery_of(c, job_id=job["job_id"])
    assert seen["attempts"] == 3 and seen["last_status_code"] == 200 and seen["last_error"] is None
    assert seen["first_attempt_at"] < seen["last_attempt_at"] <= seen["delivered_at"]
    assert [r.headers["x-scrapersky-attempt"] for r in hook.received] == ["1", "2", "3"]
    assert len({r.body for r in hook.received}) == 1 and len({r.headers["x-scrapersky-delivery"] for r in hook.received}) == 1
    assert all(r.headers["x-scrapersky-signature"] == signature(secret, r.body) for r in hook.received)
    payload = json.loads(hook.received[0].body)
    status = c.simulate_get(job["status_url"]).json
    assert payload["event"] == "scan.finished" and payload["job_id"] == job["job_id"]
    assert (payload["status"], payload["outcome"], payload["urls_found"]) == ("complete", "ok", 7)
    assert payload["counts"]["complete"] == 1 and payload["outcomes"] == {"ok": 1}
    assert_declared(app, f"{API}/status/{{job_id}}", status)
    assert_declared(app, f"{API}/jobs/{{job_id}}/deliveries",
                    c.simulate_get(f"{API}/jobs/{job['job_id']}/deliveries").json)
    assert_declared(app, f"{API}/scrapersky", job, 202, "POST")
    assert status["webhook"]["status"] == "delivered" and status["webhook"]["attempts"] == 3


def test_receiver_down_past_the_retry_window_fails_and_says_why(db_url):
    app = make_app(db_url, webhook_retry_window=1.0, webhook_retry_base=0.1, webhook_retry_max=0.3)
    c, _ = client(app)
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    batch_id = c.simulate_post(f"{API}/batch", json={"domains": ["a.test"], "callback_url": dead}).json["batch_id"]
    (j,) = c.simulate_get(f"{API}/batch/status/{batch_id}").json["jobs"]
    finish(app, j["job_id"], Outcome.UNREACHABLE, urls=0, error="could not reach a.test")
    drive(app, lambda: delivery_of(c, batch_id)["status"] == "failed", what="the delivery to fail")
    seen = delivery_of(c, batch_id)
    assert seen["attempts"] >= 3 and seen["last_error"] == "connection refused" and seen["last_status_code"] is None
    assert seen["next_attempt_at"] is None and seen["delivered_at"] is None
    first, last = (dt_of(seen["first_attempt_at"]), dt_of(seen["last_attempt_at"]))
    # It kept trying until the window (1.0 s) closed: the last attempt began at most one back-off (0.3 s)
    # before its end (an attempt that begins just before the end and ends after it is the last).
    assert last - first >= 1.0 - 0.3
    assert seen["payload"]["outcomes"] == {"unreachable": 1}
    assert c.simulate_get(f"{API}/batch/status/{batch_id}").json["webhook"]["status"] == "failed"
    attempts = seen["attempts"]
    for _ in range(5):
        app.scrapersky_dispatcher.tick()
    assert delivery_of(c, batch_id)["attempts"] == attempts  # failed is final


def dt_of(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_redirects_are_not_followed(db_url):
    app = make_app(db_url, webhook_retry_window=0.5)
    c, _ = client(app)
    with WebhookReceiver([302]) as hook:
        job = c.simulate_post(f"{API}/scrapersky", json={"base_url": "r.test", "callback_url": hook.url("/a")}).json
        finish(app, job["job_id"])
        drive(app, lambda: delivery_of(c, job_id=job["job_id"])["status"] == "failed", what="the delivery to fail")
        assert {r.path for r in hook.received} == {"/a"}  # never /elsewhere
    seen = delivery_of(c, job_id=job["job_id"])
    assert seen["last_status_code"] == 302 and "redirects are not followed" in seen["last_error"]


# ----------------------------------------------------------------------------- callback URLs
@pytest.mark.parametrize("url,status,words", [
    ("http://127.0.0.1:8080/hook", 400, "loopback"),
    ("http://10.0.0.5/hook", 400, "private"),
    ("http://[::1]/hook", 400, "loopback"),
    ("http://2130706433/hook", 400, "loopback"),
    ("http://169.254.169.254/latest/meta-data", 400, "link-local"),
    ("http://localhost:9000/hook", 400, "internal"),
    ("https://hooks.internal/x", 400, "internal"),
    ("http://metadata/x", 400, "single-label"),
    ("ftp://hooks.example.com/x", 400, "http"),
    ("https://bob:s3cr3t-pw@hooks.example.com/x", 400, "user info"),
    ("https://hooks.example.com:99999/x", 400, "port"),
    ("https:///x", 400, "no host"),
    ("http://hooks.example.com/a b", 400, "spaces"),
    ("https://hooks.example.com/" + "x" * 2100, 422, "2048"),  # the body schema (api/openapi.py)
    (42, 422, "string"),
    (["http://x.example.com"], 422, "string"),
])
def test_callback_urls_are_checked_before_anything_is_stored(api_pg_url, url, status, words):
    app = make_app(api_pg_url, allow_private=False)
    c, _ = client(app)
    for path, body in ((f"{API}/batch", {"domains": ["a.test"], "callback_url": url}),
                       (f"{API}/scrapersky", {"base_url": "a.test", "callback_url": url})):
        err = assert_error(c.simulate_post(path, json=body), status)
        assert words in err["description"], err
        assert "s3cr3t" not in json.dumps(err)
    with app.scrapersky_store.engine.connect() as conn:
        for table in (batches, jobs, deliveries):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0


def test_private_callbacks_are_accepted_only_with_allow_private(api_pg_url):
    closed = make_app(api_pg_url, allow_private=False)
    c, _ = client(closed)
    assert_error(c.simulate_post(f"{API}/batch", json={"domains": ["a.test"], "callback_url": "http://127.0.0.1:1/h"}), 400)
    opened = make_app(api_pg_url, allow_private=True)
    c, _ = client(opened)
    assert c.simulate_post(f"{API}/batch", json={"domains": ["a.test"], "callback_url": "http://127.0.0.1:1/h"}).status_code == 202


def test_callback_url_needs_a_key_to_sign_with(api_pg_url):
    app = make_app(api_pg_url, auth_enabled=False)
    anon = key_client(app, None)
    err = assert_error(anon.simulate_post(f"{API}/batch", json={"domains": ["a.test"],
                                                               "callback_url": "http://127.0.0.1:1/h"}), 422)
    assert "API key" in err["description"]
    assert anon.simulate_post(f"{API}/batch", json={"domains": ["a.test"]}).status_code == 202


def fake_dns(answers: dict[str, list[str]]):
    """A getaddrinfo of `answers` only (nothing leaves the machine)."""
    def resolve(host, port, family=0, type=0, *rest):  # noqa: A002
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in answers[host]]
    return resolve


def test_names_resolving_inside_are_refused_and_the_url_is_normalised():
    dns = fake_dns({"hooks.example.com": ["93.184.216.34"], "inside.example.com": ["10.1.2.3"],
                    "mixed.example.com": ["93.184.216.34", "127.0.0.1"], "xn--bcher-kva.example": ["93.184.216.35"],
                    "mapped.example.com": ["::ffff:192.168.0.1"]})
    assert check_callback_url("HTTPS://Hooks.Example.com/p/ä?x=1#frag", resolve=dns) == \
        "https://hooks.example.com/p/%C3%A4?x=1"
    assert check_callback_url("http://bücher.example:8443/", resolve=dns) == "http://xn--bcher-kva.example:8443/"
    for url, reason in [("https://inside.example.com/", "resolves to 10.1.2.3, a private address"),
                        ("https://mixed.example.com/", "resolves to 127.0.0.1, a loopback address"),
                        ("https://mapped.example.com/", "private"),
                        ("https://nowhere.example.com/", "does not resolve")]:
        with pytest.raises(CallbackUrlError) as err:
            check_callback_url(url, resolve=dns)
        assert reason in str(err.value)
    assert check_callback_url("https://inside.example.com/", allow_private=True, resolve=dns)


def test_the_post_connects_to_the_address_it_checked():
    with WebhookReceiver([204]) as hook:
        # the name is resolved once, by the checker; the connection goes to that address, the name to Host
        dns = fake_dns({"hooks.example.com": ["127.0.0.1"]})
        url = f"http://hooks.example.com:{hook.port}/in"
        assert post(url, b"{}", {"Content-Type": "application/json"}, 2.0, allow_private=True, resolve=dns) == 204
        assert hook.received[0].headers["host"] == f"hooks.example.com:{hook.port}"
        # a name that now resolves inside (DNS rebinding after the URL was accepted) is not called
        with pytest.raises(Refused, match="resolves to 127.0.0.1, a loopback address"):
            post(url, b"{}", {}, 2.0, allow_private=False, resolve=dns)
        assert hook.count() == 1


def test_a_delivery_whose_name_moved_inside_is_not_sent(api_pg_url):
    app = make_app(api_pg_url, webhook_retry_window=0.3)
    c, _ = client(app)
    with WebhookReceiver([200]) as hook:
        job = c.simulate_post(f"{API}/scrapersky", json={"base_url": "m.test", "callback_url": hook.url()}).json
        # the service now runs without allow_private, and the callback's host is loopback
        app.scrapersky_config.allow_private = False
        finish(app, job["job_id"])
        drive(app, lambda: delivery_of(c, job_id=job["job_id"])["status"] == "failed", what="the delivery to fail")
        assert hook.count() == 0
    assert delivery_of(c, job_id=job["job_id"])["last_error"].startswith("refused: 127.0.0.1 is a loopback address")


# ----------------------------------------------------------------------------- tenants
def test_deliveries_are_seen_by_their_tenant_and_admins_only(api_pg_url):
    app = make_app(api_pg_url)
    alice, _ = client(app, "alice")
    bob, _ = client(app, "bob")
    admin, _ = client(app, "ops", admin=True)
    batch_id = alice.simulate_post(f"{API}/batch", json={"domains": ["a.test"], "callback_url": "http://127.0.0.1:9/h"}
                                   ).json["batch_id"]
    job_id = alice.simulate_post(f"{API}/scrapersky", json={"base_url": "s.test", "callback_url": "http://127.0.0.1:9/h"}
                                 ).json["job_id"]
    for c in (alice, admin):
        assert delivery_of(c, batch_id)["callback_url"] == "http://127.0.0.1:9/h"
        assert delivery_of(c, job_id=job_id)["status"] == "waiting"
    for path in (f"{API}/batches/{batch_id}/deliveries", f"{API}/jobs/{job_id}/deliveries",
                 f"{API}/batch/status/{batch_id}", f"{API}/status/{job_id}",
                 f"{API}/batches/{uuid.uuid4()}/deliveries", f"{API}/jobs/{uuid.uuid4()}/deliveries"):
        assert_error(bob.simulate_get(path), 404)
    for path in (f"{API}/batches/{batch_id}/deliveries", f"{API}/jobs/{job_id}/deliveries"):
        assert_error(key_client(app, None).simulate_get(path), 401)
    # bob's own work without a callback: no deliveries, and no webhook block
    own = bob.simulate_post(f"{API}/batch", json={"domains": ["b.test"]}).json["batch_id"]
    assert bob.simulate_get(f"{API}/batches/{own}/deliveries").json["deliveries"] == []
    assert bob.simulate_get(f"{API}/batch/status/{own}").json["webhook"] is None


def test_a_delivery_is_signed_with_the_secret_of_the_key_that_asked_for_it(api_pg_url):
    app = make_app(api_pg_url)
    engine = app.scrapersky_store.engine
    first, first_name = client(app, "team")
    _, second_name = client(app, "team")
    assert webhook_secret(engine, first_name) != webhook_secret(engine, second_name)
    with WebhookReceiver([200]) as hook:
        job = first.simulate_post(f"{API}/scrapersky", json={"base_url": "k.test", "callback_url": hook.url()}).json
        rotated = webhook_secret(engine, first_name, rotate=True)  # signing happens at send time
        finish(app, job["job_id"])
        drive(app, lambda: hook.count() == 1, what="the delivery")
    got = hook.received[0]
    assert got.headers["x-scrapersky-signature"] == signature(rotated, got.body)
    assert got.headers["x-scrapersky-signature"] != signature(webhook_secret(engine, second_name), got.body)


# ----------------------------------------------------------------------------- keys CLI, migration
def test_keys_cli_prints_and_rotates_the_webhook_secret(tmp_path):
    from pipelines.db import get_engine

    db = f"sqlite:///{tmp_path / 'keys.db'}"
    made = run_keys(db, "create", "ci")
    key = made.stdout.strip()
    assert made.returncode == 0 and made.stdout.count("\n") == 1 and key.startswith("ssk_")
    shown = run_keys(db, "webhook-secret", "ci")
    secret = shown.stdout.strip()
    assert shown.returncode == 0 and shown.stdout.count("\n") == 1 and secret.startswith("whsec_")
    assert run_keys(db, "webhook-secret", "ci").stdout.strip() == secret  # stable until rotated
    rotated = run_keys(db, "webhook-secret", "ci", "--rotate")
    assert rotated.returncode == 0 and rotated.stdout.strip() not in (secret, "") and "replaced" in rotated.stderr
    assert webhook_secret(get_engine(db), "ci") == rotated.stdout.strip()
    assert secret not in run_keys(db, "list").stdout and key not in rotated.stdout + rotated.stderr
    missing = run_keys(db, "webhook-secret", "nobody")
    assert missing.returncode == 1 and missing.stdout == "" and "no key named 'nobody'" in missing.stderr


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_migration_gives_existing_keys_a_webhook_secret(backend, request, tmp_path):
    from pipelines.db import make_engine, upgrade

    db_url = request.getfixturevalue("api_pg_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 'm.db'}"
    engine = make_engine(db_url)
    upgrade(engine, "0005")  # the schema before the migration under test
    with engine.begin() as conn:
        for name in ("old1", "old2"):
            conn.execute(text("INSERT INTO api_keys (name, tenant, key_hash, is_admin, created_at) "
                              "VALUES (:n, :n, :h, false, :t)"),
                         {"n": name, "h": hashlib.sha256(name.encode()).hexdigest(), "t": utcnow().replace(tzinfo=None)})
    engine.dispose()
    app = make_app(db_url)  # migrates to head
    with app.scrapersky_store.engine.connect() as conn:
        secrets = conn.execute(text("SELECT webhook_secret FROM api_keys ORDER BY name")).scalars().all()
    assert len(set(secrets)) == 2 and all(s.startswith("whsec_") and len(s) > 40 for s in secrets)


# ----------------------------------------------------------------------------- console
def test_console_new_batch_form_takes_a_callback_url_and_the_batch_page_shows_the_delivery(db_url):
    import re

    from tests.test_console import Browser

    app = make_app(db_url)
    key_name = f"con-{uuid.uuid4().hex[:6]}"
    key = new_key(app, key_name, tenant="acme")
    b = Browser(app)
    b.login(key)
    form = b.get("/console/batches/new")
    assert '<label for="callback_url">' in form.text
    token = b.csrf(form.text)
    refused = b.post_form("/console/batches/new", {"domains": "a.test", "callback_url": "ftp://x.example.com/",
                                                   "csrf": token})
    assert refused.status_code == 400 and "http:// or https://" in refused.text
    assert 'value="ftp://x.example.com/"' in refused.text  # the form keeps what was typed
    with WebhookReceiver([200]) as hook:
        r = b.post_form("/console/batches/new", {"domains": "a.test\nb.test", "callback_url": hook.url("/c"),
                                                 "csrf": token})
        assert r.status_code == 303, r.text
        batch_id = re.match(r"/console/batches/([0-9a-f-]{36})", r.headers["location"]).group(1)
        page = b.get(r.headers["location"])
        assert re.search(r'id="webhook">Webhook: <span class="tag w-waiting">waiting', page.text)
        api = key_client(app, key)
        for j in api.simulate_get(f"{API}/batch/status/{batch_id}").json["jobs"]:
            finish(app, j["job_id"])
        drive(app, lambda: hook.count() == 1, what="the delivery")
        drive(app, lambda: 'w-delivered">delivered' in b.get(f"/console/batches/{batch_id}").text, what="the page")
    got = hook.received[0]
    assert got.path == "/c" and json.loads(got.body)["batch_id"] == batch_id
    assert got.headers["x-scrapersky-signature"] == signature(webhook_secret(app.scrapersky_store.engine, key_name),
                                                             got.body)
    with app.scrapersky_store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(batches)).scalar_one() == 1  # the refused one: none
