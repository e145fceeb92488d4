"""Property-based: whatever the body, path or query, the API answers with JSON and never a 5xx."""

from __future__ import annotations

import json
import uuid

import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api_fixtures import *  # noqa: F401,F403
from tests.api_fixtures import free_port, make_client, make_config

API = "/api/v1"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
domainish = st.one_of(
    st.text(max_size=60),
    st.from_regex(r"(https?://)?(www\.)?[a-zA-Z0-9\-]{1,20}(\.[a-zA-Z\-]{1,10}){1,3}\.?(:[0-9]{1,5})?(/[a-z]*)?", fullmatch=True),
    st.integers(), st.none(),
)
scan_bodies = st.one_of(
    st.fixed_dictionaries({"base_url": domainish}, optional={"max_pages": st.one_of(st.integers(), st.text(max_size=5))}),
    st.dictionaries(st.sampled_from(["base_url", "max_pages", "domains", "x"]), json_values, max_size=3),
    json_values,
)
batch_bodies = st.one_of(
    st.fixed_dictionaries({"domains": st.lists(domainish, max_size=20)}, optional={"max_pages": json_values}),
    st.dictionaries(st.sampled_from(["domains", "max_pages", "extra"]), json_values, max_size=3),
    json_values,
)
raw_bodies = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
query = st.dictionaries(st.sampled_from(["limit", "cursor", "format", "change", "status", "from", "to"]),
                        st.text(max_size=20), max_size=4)


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory):
    from tests.api_fixtures import create_pg_database, drop_pg_database, require_pg

    require_pg()
    url = create_pg_database()
    app, c = make_client(make_config(url, f"http://127.0.0.1:{free_port()}", scrapyd_timeout=0.5,
                                     max_body_bytes=64 * 1024))
    job = c.simulate_post(f"{API}/scrapersky", json={"base_url": "seed.test"}).json["job_id"]
    batch = c.simulate_post(f"{API}/batch", json={"domains": ["seed.test", "seed2.test"]}).json["batch_id"]
    yield c, job, batch
    drop_pg_database(url)


def check(resp):
    assert resp.status_code < 500, (resp.status_code, resp.text)
    if resp.status_code >= 400:
        body = resp.json
        assert body["title"] and body["description"]


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(body=scan_bodies)
def test_scan_never_5xx(fuzz_client, body):
    c, _, _ = fuzz_client
    r = c.simulate_post(f"{API}/scrapersky", body=json.dumps(body), headers={"Content-Type": "application/json"})
    check(r)
    if r.status_code == 202:
        assert uuid.UUID(r.json["job_id"])


@FUZZ
@given(body=batch_bodies)
def test_batch_never_5xx(fuzz_client, body):
    c, _, _ = fuzz_client
    check(c.simulate_post(f"{API}/batch", body=json.dumps(body), headers={"Content-Type": "application/json"}))


@FUZZ
@given(raw=raw_bodies, ctype=st.sampled_from(["application/json", "text/plain", "", "application/x-www-form-urlencoded"]),
       path=st.sampled_from([f"{API}/scrapersky", f"{API}/batch"]))
def test_raw_bodies_never_5xx(fuzz_client, raw, ctype, path):
    c, _, _ = fuzz_client
    check(c.simulate_post(path, body=raw, headers={"Content-Type": ctype} if ctype else {}))


@FUZZ
@given(params=query, which=st.sampled_from(["status", "urls", "sitemaps", "batch", "domain", "changes", "junk"]),
       segment=st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s and "?" not in s and "#" not in s))
def test_gets_never_5xx(fuzz_client, params, which, segment):
    c, job, batch = fuzz_client
    path = {
        "status": f"{API}/status/{job}", "urls": f"{API}/jobs/{job}/urls", "sitemaps": f"{API}/jobs/{job}/sitemaps",
        "batch": f"{API}/batch/status/{batch}", "domain": f"{API}/domains/{segment}",
        "changes": f"{API}/domains/{segment}/changes", "junk": f"{API}/status/{segment}",
    }[which]
    check(c.simulate_get(path, params=params))
