"""docker-compose.yml is valid (`docker-compose config`, Debian package `docker-compose`; no engine
needed) and keeps scrapyd private: not published, basic auth on, the API pointed at it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def compose_config(env_extra: dict[str, str] | None = None) -> dict:
    yaml = pytest.importorskip("yaml")
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":  # CI installs it (./dev): missing is a failure there
            pytest.fail("docker-compose not installed (apt-get install docker-compose)")
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    env = {"PATH": "/usr/bin:/bin", **(env_extra or {})}
    out = subprocess.run([exe, "-f", str(REPO / "docker-compose.yml"), "config"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_file_is_valid_and_scrapyd_private():
    cfg = compose_config({"SCRAPYD_PASSWORD": "s3cret"})
    services = cfg["services"]
    assert set(services) == {"postgres", "scrapyd", "api"}
    scrapyd, api = services["scrapyd"], services["api"]
    assert "ports" not in scrapyd and "ports" not in services["postgres"]
    assert scrapyd["environment"]["SCRAPYD_USERNAME"] and scrapyd["environment"]["SCRAPYD_PASSWORD"] == "s3cret"
    assert scrapyd["environment"]["SCRAPYD_BIND_ADDRESS"] == "0.0.0.0"
    assert api["environment"]["SCRAPYD_PASSWORD"] == "s3cret" and api["environment"]["SCRAPYD_URL"] == "http://scrapyd:6800"
    assert api["environment"]["DATABASE_URL"] == scrapyd["environment"]["DATABASE_URL"]
    assert "postgres:5432" in api["environment"]["DATABASE_URL"]
    assert [p["published"] if isinstance(p, dict) else p for p in api["ports"]] in ([8000], ["8000:8000"])
    assert "api.app:create_app()" in api["command"]
    assert "scrapyd" in scrapyd["command"][0]


def test_scrapyd_conf_keeps_finished_jobs_across_restarts():
    from configparser import ConfigParser

    cp = ConfigParser()
    cp.read(REPO / "scrapyd.conf")
    assert cp["scrapyd"]["jobstorage"] == "scrapyd.jobstorage.SqliteJobStorage"
    cfg = ConfigParser()
    cfg.read(REPO / "scrapy.cfg")
    assert cfg["settings"]["scrapersky"] == "scrapersky_crawler.settings"
