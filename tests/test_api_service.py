"""The README's run command, `python -m api`: scrapyd + 2 waitress workers (each with a dispatcher
thread) over real HTTP; a batch posted, run to completion, its URLs downloaded as CSV."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys

import pytest
import requests

from tests.api_fixtures import *  # noqa: F401,F403
from tests.api_fixtures import REPO, free_port, small_site, wait_until

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_run_command_serves_a_batch_end_to_end(backend, request, tmp_path, api_sites):
    db_url = request.getfixturevalue("api_pg_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 'api.db'}"
    expected = {}
    hosts = [f"svc{i}-{backend}.test" for i in range(4)]
    for h in hosts:
        api_sites.sites[h], expected[h] = small_site(h, 15)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".scrapyd.conf").write_text(f"[scrapyd]\ndbs_dir = {tmp_path / 'dbs'}\nlogs_dir = {tmp_path / 'logs'}\n"
                                        "poll_interval = 0.2\n")
    port, sport = free_port(), free_port()
    env = {**os.environ, **api_sites.proxy_env(), "HOME": str(home), "DATABASE_URL": db_url,
           "API_PORT": str(port), "SCRAPYD_HTTP_PORT": str(sport), "SCRAPYD_LOGFILE": str(tmp_path / "scrapyd.log"),
           "SCRAPYD_USERNAME": "ops", "SCRAPYD_PASSWORD": "pw", "DISPATCH_INTERVAL": "0.3", "CRAWL_MIN_DOMAINS": "2"}
    # the first key, made as the README says (the CLI migrates the database first)
    made = subprocess.run([sys.executable, "-m", "api", "keys", "create", "svc-admin", "--admin"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=REPO, env=env, start_new_session=True,
                            stdout=open(tmp_path / "service.out", "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    s = requests.Session()
    s.trust_env = False
    s.headers["Authorization"] = f"Bearer {key}"
    try:
        def healthy():
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "service.out").read_text()[-3000:])
            try:
                return s.get(f"{base}/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, 60, 0.3, "service to be healthy")
        # scrapyd is behind basic auth
        assert s.get(f"http://127.0.0.1:{sport}/daemonstatus.json", timeout=2).status_code == 401
        anon = requests.Session()
        anon.trust_env = False
        assert anon.post(f"{base}/api/v1/batch", json={"domains": hosts}, timeout=10).status_code == 401
        r = s.post(f"{base}/api/v1/batch", json={"domains": hosts}, timeout=10)
        assert r.status_code == 202, r.text
        status_url = base + r.json()["status_url"]
        st = wait_until(lambda: (x := s.get(status_url, timeout=5).json())["status"] == "complete" and x, 120, 0.5,
                        "batch to complete")
        assert st["completed_jobs"] == 4 and st["progress"] == 1.0
        for job in st["jobs"]:
            text = s.get(f"{base}/api/v1/jobs/{job['job_id']}/urls", params={"format": "csv"}, timeout=10).text
            assert {row["url"] for row in csv.DictReader(io.StringIO(text))} == expected[job["domain"]]
            assert job["scrapyd_jobid"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
