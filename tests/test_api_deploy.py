"""Deploying the project as an egg with `scrapyd-deploy` to a second local scrapyd (one that does not
run from the repository), then running a crawl there through the API's dispatcher."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import requests

from tests.api_fixtures import *  # noqa: F401,F403
from tests.api_fixtures import REPO, VENV_BIN, ScrapydProcess, make_client, make_config, small_site, wait_until

pytestmark = pytest.mark.timeout(240)


def deploy_to_second_scrapyd(tmp_path, api_pg_url, api_sites) -> ScrapydProcess:
    if shutil.which("scrapyd-deploy", path=str(VENV_BIN)) is None:
        if os.environ.get("CI", "").lower() == "true":  # CI installs it (./dev): missing is a failure there
            pytest.fail("scrapyd-client not installed")
        pytest.skip("scrapyd-client not installed")
    # the remote: a scrapyd started from an empty folder, so it knows the project only from the egg
    remote_dir = tmp_path / "remote-cwd"
    remote_dir.mkdir()
    remote = ScrapydProcess(tmp_path / "remote", {**api_sites.proxy_env(), "DATABASE_URL": api_pg_url},
                            username="deployer", password="pw")
    remote.env.pop("PYTHONPATH", None)  # nothing of the repository on its path
    remote.start(cwd=remote_dir)
    try:
        # a clean copy of the project with a deploy target pointing at the remote
        src = tmp_path / "src"
        shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", "__pycache__", "dbs", "logs", "*.db*",
                                                                  "bench", ".pytest_cache", ".venv", "artifacts",
                                                                  "build", "*.egg-info", ".env"))
        with open(src / "scrapy.cfg", "a") as f:
            f.write(f"\n[deploy:second]\nurl = {remote.url}/\nproject = scrapersky\nusername = deployer\npassword = pw\n")
        out = subprocess.run([str(VENV_BIN / "scrapyd-deploy"), "second", "-p", "scrapersky", "--version", "r1"],
                             cwd=src, capture_output=True, text=True, timeout=180,
                             env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"})
        assert out.returncode == 0, out.stdout + out.stderr
        auth = ("deployer", "pw")
        assert "scrapersky" in requests.get(f"{remote.url}/listprojects.json", auth=auth, timeout=5).json()["projects"]
        spiders = requests.get(f"{remote.url}/listspiders.json", params={"project": "scrapersky"}, auth=auth,
                               timeout=30).json()
        assert spiders.get("spiders") == ["sitemap"], spiders
    except BaseException:
        remote.stop()
        raise
    return remote


def test_scrapyd_deploy_egg_to_a_second_scrapyd(tmp_path, api_pg_url, api_sites):
    remote = deploy_to_second_scrapyd(tmp_path, api_pg_url, api_sites)
    remote.stop()


def test_egg_crawl_runs_through_the_api(tmp_path, api_pg_url, api_sites):
    remote = deploy_to_second_scrapyd(tmp_path, api_pg_url, api_sites)
    try:
        # the API dispatches to it like to any node
        api_sites.sites["egg.test"], expected = small_site("egg.test", 10)
        from pipelines.db import get_engine

        get_engine(api_pg_url)  # the schema exists before the egg's crawl opens the database
        app, c = make_client(make_config(api_pg_url, remote.url, scrapyd_username="deployer", scrapyd_password="pw"))
        job = c.simulate_post("/api/v1/scrapersky", json={"base_url": "egg.test"}).json

        def finished():
            app.scrapersky_dispatcher.tick()
            s = c.simulate_get(job["status_url"]).json
            return s if s["status"] in ("complete", "failed") else None

        s = wait_until(finished, 120, 0.3, "egg crawl")
        assert s["status"] == "complete", (s, remote.log_text()[-3000:])
        got = {u["url"] for u in c.simulate_get(f"/api/v1/jobs/{job['job_id']}/urls").json["urls"]}
        assert got == expected
    finally:
        remote.stop()
