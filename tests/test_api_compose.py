"""docker-compose.yml is valid (`docker-compose config`, Debian package `docker-compose`; no engine
needed), keeps scrapyd private (not published, basic auth on, the API pointed at it), publishes the
API on the host's loopback only, and refuses to start with a secret unset."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_compose_config(env_extra: dict[str, str] | None, tmp_path: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":  # CI installs it (./dev): missing is a failure there
            pytest.fail("docker-compose not installed (apt-get install docker-compose)")
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    env = {"PATH": "/usr/bin:/bin", **(env_extra or {})}
    empty = tmp_path / "empty.env"  # not the repository's .env (./dev run keeps a password there)
    empty.write_text("")
    return subprocess.run([exe, "-f", str(REPO / "docker-compose.yml"), "--env-file", str(empty), "config"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def compose_config(env_extra: dict[str, str] | None, tmp_path: Path) -> dict:
    yaml = pytest.importorskip("yaml")
    out = run_compose_config(env_extra, tmp_path)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


SECRETS = {"SCRAPYD_PASSWORD": "s3cret", "POSTGRES_PASSWORD": "pg-s3cret"}


@pytest.mark.parametrize("unset", sorted(SECRETS))
def test_compose_refuses_an_unset_secret(unset, tmp_path):
    out = run_compose_config({k: v for k, v in SECRETS.items() if k != unset}, tmp_path)
    assert out.returncode != 0
    assert f"set {unset}" in out.stderr
    assert "change-me" not in out.stdout and "scrapersky@postgres" not in out.stdout


def test_compose_file_is_valid_and_scrapyd_private(tmp_path):
    cfg = compose_config(SECRETS, tmp_path)
    services = cfg["services"]
    assert set(services) == {"postgres", "scrapyd", "api"}
    scrapyd, api = services["scrapyd"], services["api"]
    assert "ports" not in scrapyd and "ports" not in services["postgres"]
    assert scrapyd["environment"]["SCRAPYD_USERNAME"] and scrapyd["environment"]["SCRAPYD_PASSWORD"] == "s3cret"
    assert scrapyd["environment"]["SCRAPYD_BIND_ADDRESS"] == "0.0.0.0"
    assert api["environment"]["SCRAPYD_PASSWORD"] == "s3cret" and api["environment"]["SCRAPYD_URL"] == "http://scrapyd:6800"
    assert api["environment"]["DATABASE_URL"] == scrapyd["environment"]["DATABASE_URL"]
    assert api["environment"]["DATABASE_URL"] == "postgresql://scrapersky:pg-s3cret@postgres:5432/scrapersky"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg-s3cret"
    # published on the host's loopback only
    assert [(p["host_ip"], str(p["published"])) if isinstance(p, dict) else p for p in api["ports"]] in (
        [("127.0.0.1", "8000")], ["127.0.0.1:8000:8000/tcp"], ["127.0.0.1:8000:8000"])
    assert api["command"] == ["python", "-m", "api", "serve"] and api["environment"]["API_START_SCRAPYD"] == "0"
    assert "scrapyd" in scrapyd["command"][0]


def test_scrapyd_conf_keeps_finished_jobs_across_restarts():
    from configparser import ConfigParser

    cp = ConfigParser()
    cp.read(REPO / "scrapyd.conf")
    assert cp["scrapyd"]["jobstorage"] == "scrapyd.jobstorage.SqliteJobStorage"
    cfg = ConfigParser()
    cfg.read(REPO / "scrapy.cfg")
    assert cfg["settings"]["scrapersky"] == "scrapersky_crawler.settings"
