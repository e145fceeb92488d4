"""Several scrapyd nodes: `docker-compose.nodes.yml` turns the compose file into three nodes behind one
API, and scrapyd.conf keeps what the API needs from each node bounded."""

from __future__ import annotations

import os
import shutil
import subprocess
from configparser import ConfigParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_three_node_override_is_valid_and_wired_to_the_api(tmp_path):
    yaml = pytest.importorskip("yaml")
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("docker-compose not installed (apt-get install docker-compose)")
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    # an empty --env-file: a local .env (./dev run writes one) must not change the result
    empty = tmp_path / "empty.env"
    empty.write_text("")
    out = subprocess.run([exe, "--env-file", str(empty), "-f", "docker-compose.yml", "-f", "docker-compose.nodes.yml",
                          "config"], cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "SCRAPYD_PASSWORD": "s3cret", "POSTGRES_PASSWORD": "pg-s3cret"})
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    nodes = ["scrapyd", "scrapyd2", "scrapyd3"]
    assert set(nodes) <= set(services)
    api = services["api"]["environment"]
    assert api["SCRAPYD_URL"].split(",") == [f"http://{n}:6800" for n in nodes]
    for name in nodes:
        node = services[name]
        assert "ports" not in node  # private to the compose network, like the first node
        assert node["environment"]["SCRAPYD_PASSWORD"] == "s3cret" == api["SCRAPYD_PASSWORD"]
        assert node["environment"]["DATABASE_URL"] == api["DATABASE_URL"]
    volumes = [tuple(sorted(v if isinstance(v, str) else v["source"] for v in services[n]["volumes"])) for n in nodes]
    assert len(set(volumes)) == 3  # each node its own state and logs


def test_scrapyd_lists_a_bounded_number_of_finished_crawls_and_keeps_logs_longer():
    cp = ConfigParser()
    cp.read(REPO / "scrapyd.conf")
    assert int(cp["scrapyd"]["finished_to_keep"]) <= 100
    assert int(cp["scrapyd"]["jobs_to_keep"]) >= 1000
