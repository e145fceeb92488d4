"""End to end: the API + its dispatcher + a real scrapyd (started from the repository) whose crawl
processes go through a loopback SiteServer as http_proxy + real PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import time
import uuid

import pytest
import requests

from tests.api_fixtures import *  # noqa: F401,F403
from tests.api_fixtures import (ScrapydProcess, create_pg_database, drop_pg_database, make_client, make_config,
                                small_site, wait_until, require_pg)
from tests.sites import Resp, Site, SiteServer

API = "/api/v1"
pytestmark = pytest.mark.timeout(300)


class SlowSite(Site):
    """Every path answers after `delay` seconds: keeps a crawl busy while a test cancels or kills it."""

    def __init__(self, delay: float):
        super().__init__({})
        self.delay = delay

    def lookup(self, path: str) -> Resp:
        def body():
            time.sleep(self.delay)
            return b"User-agent: *\nDisallow:\n"

        return Resp(body=body, headers={"Content-Type": "text/plain"})


class Env:
    def __init__(self, tmp, db_url: str, sites: SiteServer, scrapyd: ScrapydProcess):
        self.tmp, self.db_url, self.sites, self.scrapyd = tmp, db_url, sites, scrapyd
        self.expected: dict[str, set[str]] = {}

    def add_site(self, host: str, n: int = 40) -> set[str]:
        self.sites.sites[host], urls = small_site(host, n)
        self.expected[host] = urls
        return urls

    def client(self, scrapyd_url: str | None = None, **overrides):
        return make_client(make_config(self.db_url, scrapyd_url or self.scrapyd.url, **overrides))

    @staticmethod
    def run_until(app, predicate, timeout: float = 90.0, what: str = "condition"):
        def step():
            app.scrapersky_dispatcher.tick()
            return predicate()

        return wait_until(step, timeout, interval=0.3, what=what)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_pg()
    tmp = tmp_path_factory.mktemp("api_e2e")
    db_url = create_pg_database()
    sites = SiteServer({}).start()
    scrapyd = ScrapydProcess(tmp / "scrapyd", {**sites.proxy_env(), "DATABASE_URL": db_url}).start()
    try:
        yield Env(tmp, db_url, sites, scrapyd)
    finally:
        scrapyd.stop()
        sites.stop()
        drop_pg_database(db_url)


def all_urls(c, job_id: str, limit: int = 33) -> list[str]:
    got, cursor = [], None
    while True:
        r = c.simulate_get(f"{API}/jobs/{job_id}/urls", params={"limit": limit, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        got += [u["url"] for u in r.json["urls"]]
        cursor = r.json["next_cursor"]
        if not cursor:
            return got


def test_health_with_database_and_scrapyd_up(env):
    _, c = env.client()
    r = c.simulate_get("/health")
    assert r.status_code == 200 and r.json["database"]["ok"] and r.json["scrapyd"]["ok"], r.text


def test_scan_to_completion_with_exact_urls(env):
    expected = env.add_site("scan-one.test", 45)
    app, c = env.client()
    job = c.simulate_post(f"{API}/scrapersky", json={"base_url": "https://WWW.Scan-One.test/some/page"}).json
    status = env.run_until(app, lambda: (s := c.simulate_get(job["status_url"]).json)["status"] in
                           ("complete", "failed", "cancelled") and s, what="scan to finish")
    assert status["status"] == "complete", status
    assert status["domain"] == "scan-one.test" and status["progress"] == 1.0
    assert status["result"]["urls_found"] == 90 and status["result"]["sitemaps_found"] == 3
    assert status["metadata"]["title"] == "scan-one.test"
    sd = status["scrapyd"]
    assert uuid.UUID(sd["jobid"]) and sd["node"] == env.scrapyd.url
    assert sd["log_url"] == f"{env.scrapyd.url}/logs/scrapersky/sitemap/{sd['jobid']}.log"
    assert requests.get(sd["log_url"], timeout=5).status_code == 200  # console and API point at the same crawl

    urls = all_urls(c, job["job_id"])
    assert len(urls) == len(expected) and set(urls) == expected
    lines = c.simulate_get(f"{API}/jobs/{job['job_id']}/urls", params={"format": "jsonl"}).text.splitlines()
    assert {json.loads(x)["url"] for x in lines} == expected
    rows = list(csv.DictReader(io.StringIO(c.simulate_get(f"{API}/jobs/{job['job_id']}/urls",
                                                          params={"format": "csv"}).text)))
    assert {r["url"] for r in rows} == expected and all(r["lastmod"].startswith("2024-01-02") for r in rows)
    maps = c.simulate_get(f"{API}/jobs/{job['job_id']}/sitemaps").json["sitemaps"]
    assert {(m["url"].rsplit("/", 1)[1], m["type"], m["discovered_by"]) for m in maps} == {
        ("sitemap_index.xml", "index", "robots"), ("sitemap-a.xml", "urlset", "index"),
        ("sitemap-b.xml.gz", "urlset", "index")}
    dom = c.simulate_get(f"{API}/domains/scan-one.test").json
    assert dom["latest_scan"]["job_id"] == job["job_id"] and dom["url_count"] == 90


def test_batch_packed_into_few_crawls_to_completion(env):
    hosts = [f"batch{i:02}.test" for i in range(12)]
    for h in hosts:
        env.add_site(h, 20)
    app, c = env.client(crawl_max_domains=5, crawl_min_domains=5)
    r = c.simulate_post(f"{API}/batch", json={"domains": hosts + ["WWW.batch00.test", "not valid", "missing.test"]})
    assert r.status_code == 202 and r.json["job_count"] == 13 and r.json["duplicates"] == 1
    assert [x["input"] for x in r.json["rejected"]] == ["not valid"]
    progress: list[float] = []

    def done():
        s = c.simulate_get(r.json["status_url"], params={"limit": 100}).json
        progress.append(s["progress"])
        return s if s["status"] == "complete" else None

    s = env.run_until(app, done, what="batch to complete")
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert (s["total_jobs"], s["pending_jobs"], s["running_jobs"]) == (13, 0, 0)
    assert (s["completed_jobs"], s["failed_jobs"]) == (12, 1)
    assert s["urls_found"] == 12 * 40 and s["finished_at"] is not None
    by_domain = {j["domain"]: j for j in s["jobs"]}
    # a host the fixture server does not know (502 from the proxy): finished, nothing found
    assert (by_domain["missing.test"]["status"], by_domain["missing.test"]["outcome"]) == ("failed", "unreachable")
    assert s["outcomes"] == {"ok": 12, "unreachable": 1}
    crawls = {j["scrapyd_jobid"] for j in s["jobs"]}
    assert len(crawls) <= 4  # 13 domains, at most 5 per scrapyd job
    for h in hosts:
        assert set(all_urls(c, by_domain[h]["job_id"], limit=15)) == env.expected[h]
    wait_until(lambda: all(_scrapyd_state(env, cr) == "finished" for cr in crawls), 60, what="crawls to exit")


def test_jobs_accepted_while_scrapyd_is_down_run_when_it_is_back(env):
    env.add_site("late.test", 10)
    late = ScrapydProcess(env.tmp / "late-scrapyd", {**env.sites.proxy_env(), "DATABASE_URL": env.db_url})
    app, c = env.client(late.url)
    job = c.simulate_post(f"{API}/scrapersky", json={"base_url": "late.test"})
    assert job.status_code == 202
    job = job.json
    for _ in range(3):
        app.scrapersky_dispatcher.tick()
    s = c.simulate_get(job["status_url"]).json
    assert s["status"] == "pending" and s["scrapyd"]["jobid"] is None
    assert c.simulate_get("/health").status_code == 503
    late.start()
    try:
        app.scrapersky_dispatcher._down_until.clear()
        s = env.run_until(app, lambda: (x := c.simulate_get(job["status_url"]).json)["status"] == "complete" and x,
                          what="late job to complete")
        assert s["scrapyd"]["node"] == late.url
        assert set(all_urls(c, job["job_id"])) == env.expected["late.test"]
    finally:
        late.stop()


def _scrapyd_state(env, crawl_id: str) -> str | None:
    listing = requests.get(f"{env.scrapyd.url}/listjobs.json", params={"project": "scrapersky"}, timeout=5).json()
    for state in ("pending", "running", "finished"):
        if any(j["id"] == crawl_id for j in listing[state]):
            return state
    return None


def test_cancel_job_in_a_packed_crawl_then_the_rest(env):
    env.sites.sites["slow1.test"] = SlowSite(60)
    env.sites.sites["slow2.test"] = SlowSite(60)
    app, c = env.client(crawl_min_domains=5)
    b = c.simulate_post(f"{API}/batch", json={"domains": ["slow1.test", "slow2.test"]}).json
    s = env.run_until(app, lambda: (x := c.simulate_get(b["status_url"]).json)["running_jobs"] == 2 and x,
                      what="both jobs running")
    j1, j2 = s["jobs"]
    crawl = j1["scrapyd_jobid"]
    assert crawl == j2["scrapyd_jobid"] and _scrapyd_state(env, crawl) == "running"

    r = c.simulate_post(f"{API}/jobs/{j1['job_id']}/cancel")
    assert r.status_code == 200 and r.json["status"] == "cancelled" and r.json["scrapyd_job_cancelled"] is False
    app.scrapersky_dispatcher.tick()
    assert _scrapyd_state(env, crawl) == "running"  # the crawl still carries slow2.test

    r = c.simulate_post(f"{API}/jobs/{j2['job_id']}/cancel")
    assert r.status_code == 200 and r.json["scrapyd_job_cancelled"] is True
    env.run_until(app, lambda: _scrapyd_state(env, crawl) == "finished", 30, what="scrapyd job to end")
    for _ in range(3):
        app.scrapersky_dispatcher.tick()
    s = c.simulate_get(b["status_url"]).json
    assert [j["status"] for j in s["jobs"]] == ["cancelled", "cancelled"]  # never overwritten by the crawl
    assert s["status"] == "complete" and s["cancelled_jobs"] == 2


def test_cancel_batch_cancels_its_crawl(env):
    env.sites.sites["slow3.test"] = SlowSite(60)
    app, c = env.client()
    b = c.simulate_post(f"{API}/batch", json={"domains": ["slow3.test"]}).json
    s = env.run_until(app, lambda: (x := c.simulate_get(b["status_url"]).json)["running_jobs"] == 1 and x,
                      what="job running")
    crawl = s["jobs"][0]["scrapyd_jobid"]
    r = c.simulate_post(f"{API}/batch/{b['batch_id']}/cancel")
    assert r.status_code == 200 and r.json["scrapyd_jobs_cancelled"] == 1
    env.run_until(app, lambda: _scrapyd_state(env, crawl) == "finished", 30, what="scrapyd job to end")
    s = c.simulate_get(b["status_url"]).json
    assert s["status"] == "cancelled" and s["jobs"][0]["status"] == "cancelled"


def test_killed_crawl_is_retried_in_a_new_crawl_then_fails_crawl_lost(env):
    env.sites.sites["slow4.test"] = SlowSite(60)
    app, c = env.client(max_dispatch_attempts=2)
    job = c.simulate_post(f"{API}/scrapersky", json={"base_url": "slow4.test"}).json
    import psutil

    crawls: list[str] = []
    for attempt in (1, 2):
        s = env.run_until(app, lambda: (x := c.simulate_get(job["status_url"]).json)["status"] == "running"
                          and x["scrapyd"]["jobid"] not in crawls and x, what=f"attempt {attempt} running")
        assert s["attempts"] == attempt
        crawls.append(s["scrapyd"]["jobid"])
        victims = [p for p in psutil.Process(env.scrapyd.proc.pid).children(recursive=True)
                   if any(crawls[-1] in a for a in p.cmdline())]
        assert victims
        for p in victims:
            os.kill(p.pid, signal.SIGKILL)
    s = env.run_until(app, lambda: (x := c.simulate_get(job["status_url"]).json)["status"] == "failed" and x,
                      what="job to fail after its last attempt")
    assert s["outcome"] == "crawl_lost" and s["attempts"] == 2
    assert "crawl process ended" in s["error"] and crawls[-1] in s["error"] and "after 2 attempts" in s["error"]


def test_log_links_say_when_scrapyd_has_deleted_the_log(env):
    node = ScrapydProcess(env.tmp / "keep-two-logs", {**env.sites.proxy_env(), "DATABASE_URL": env.db_url})
    with open(node.home / ".scrapyd.conf", "a") as conf:
        conf.write("jobs_to_keep = 2\n")
    node.start()
    try:
        app, c = env.client(node.url, scrapyd_jobs_to_keep=2)
        views = []
        for i in range(4):  # four crawls one after the other on a node that keeps two logs
            env.add_site(f"keep{i}.test", 5)
            job = c.simulate_post(f"{API}/scrapersky", json={"base_url": f"keep{i}.test"}).json
            views.append(env.run_until(app, lambda: (x := c.simulate_get(job["status_url"]).json)["status"]
                                       == "complete" and x, what=f"crawl {i}"))
        first = c.simulate_get(views[0]["links"]["status"]).json["scrapyd"]
        last = c.simulate_get(views[-1]["links"]["status"]).json["scrapyd"]
        assert requests.get(views[0]["scrapyd"]["log_url"], timeout=5).status_code == 404  # scrapyd deleted it
        assert first["log_expired"] is True and first["log_url"] is None  # and the API no longer links it
        assert last["log_expired"] is False and requests.get(last["log_url"], timeout=5).status_code == 200
    finally:
        node.stop()


def test_three_spellings_of_one_site_packed_in_one_crawl_all_finish(env):
    """Three scans of one site posted together are packed into one crawl; each job finishes with the
    site's URLs (none is lost, none is failed with a misleading reason)."""
    expected = env.add_site("packed-one.test", 12)
    app, c = env.client(crawl_min_domains=3)
    given = ["packed-one.test", "https://www.packed-one.test/", "http://packed-one.test/x"]
    posted = [c.simulate_post(f"{API}/scrapersky", json={"base_url": text}).json for text in given]
    assert {p["domain"] for p in posted} == {"packed-one.test"}

    def finished():
        states = [c.simulate_get(p["status_url"]).json for p in posted]
        return states if all(s["status"] in ("complete", "failed", "cancelled") for s in states) else None

    states = env.run_until(app, finished, what="three scans to finish")
    assert len({s["scrapyd"]["jobid"] for s in states}) == 1  # one crawl carried the three jobs
    for s in states:
        assert (s["status"], s["outcome"], s["error"]) == ("complete", "ok", None), s
        assert s["result"]["urls_found"] == len(expected)
        assert set(all_urls(c, s["job_id"])) == expected
    # each job records the origin that answered: the proxy refuses CONNECT, so https gives way to http,
    # and the site answers only on its apex, so the job given www. found it there
    assert [s["origin"] for s in states] == ["http://packed-one.test"] * 3


def test_dead_domain_through_the_api_fails_unreachable(env):
    app, c = env.client()
    job = c.simulate_post(f"{API}/scrapersky", json={"base_url": "nobody-home.test"}).json
    s = env.run_until(app, lambda: (x := c.simulate_get(job["status_url"]).json)["status"] in
                      ("complete", "failed") and x, what="dead domain to finish")
    assert (s["status"], s["outcome"]) == ("failed", "unreachable"), s
    assert "502" in s["error"] and s["result"]["urls_found"] == 0


def test_batch_with_callback_url_is_announced_once_when_its_crawl_finishes(env):
    """The real path: POST /batch with callback_url -> scrapyd crawl -> the dispatcher leader arms and
    sends one POST, signed with the key's webhook secret, whose counts are the batch status's."""
    import hashlib
    import hmac

    from api.auth import webhook_secret
    from tests.api_fixtures import key_client, new_key
    from tests.webhook_receiver import WebhookReceiver

    env.add_site("hook-one.test", 15)
    app, _ = env.client(allow_private=True)  # the receiver is on loopback
    name = f"hooks-{uuid.uuid4().hex[:8]}"
    c = key_client(app, new_key(app, name))
    with WebhookReceiver([200]) as hook:
        batch = c.simulate_post(f"{API}/batch", json={"domains": ["hook-one.test", "hook-dead.test"],
                                                      "callback_url": hook.url("/done")}).json
        status = env.run_until(app, lambda: (s := c.simulate_get(batch["status_url"]).json)["webhook"]["status"]
                               == "delivered" and s, what="the webhook to be delivered")
        for _ in range(3):
            app.scrapersky_dispatcher.tick()
        assert hook.count() == 1
    got = hook.received[0]
    secret = webhook_secret(app.scrapersky_store.engine, name)
    assert got.headers["x-scrapersky-signature"] == "sha256=" + hmac.new(secret.encode(), got.body,
                                                                         hashlib.sha256).hexdigest()
    payload = json.loads(got.body)
    assert payload["batch_id"] == batch["batch_id"] and payload["status"] == status["status"] == "complete"
    assert payload["counts"]["complete"] == status["completed_jobs"] == 1
    assert payload["counts"]["failed"] == status["failed_jobs"] == 1
    assert payload["outcomes"] == status["outcomes"] == {"ok": 1, "unreachable": 1}
    assert payload["urls_found"] == status["urls_found"] == 30
