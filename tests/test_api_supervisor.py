"""`python -m api` (what `./dev run` execs) as a supervisor, with real processes: it restarts a killed
scrapyd or web worker while the service keeps answering, refuses a taken port with one line, starts
nothing for --help, locks scrapyd with a generated password kept in the env file, stops cleanly on
SIGTERM, and never shows a credential written into SCRAPYD_URL."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from tests.api_fixtures import *  # noqa: F401,F403
from tests.api_fixtures import REPO, free_port, small_site, wait_until

pytestmark = pytest.mark.timeout(240)

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")


def service_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A private environment for one `python -m api`: its own ports, state folders and env file."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".scrapyd.conf").write_text(f"[scrapyd]\ndbs_dir = {tmp_path / 'dbs'}\nlogs_dir = {tmp_path / 'logs'}\n"
                                        "poll_interval = 0.2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCRAPYD_", "API_"))}
    env.update({"HOME": str(home), "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
                "SCRAPERSKY_ENV_FILE": str(tmp_path / "secrets.env"), "API_PORT": str(free_port()),
                "SCRAPYD_HTTP_PORT": str(free_port()), "SCRAPYD_LOGFILE": str(tmp_path / "scrapyd.log"), **extra})
    return env


def start(env: dict[str, str], out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "api"], cwd=REPO, env=env, start_new_session=True,
                            stdout=open(out, "ab"), stderr=subprocess.STDOUT)


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def health(base: str, proc: subprocess.Popen, out: Path) -> int | None:
    if proc.poll() is not None:
        raise AssertionError(f"service exited {proc.returncode}:\n{out.read_text()[-3000:]}")
    try:
        return session().get(f"{base}/health", timeout=3).status_code
    except requests.RequestException:
        return None


def stop(proc: subprocess.Popen) -> int:
    """SIGTERM to the supervisor alone (it stops its children); kill the group if it does not."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(40)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        raise AssertionError("the supervisor did not stop within 40 s of SIGTERM")


def children(proc: subprocess.Popen) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {"scrapyd": [], "web": []}
    for child in psutil.Process(proc.pid).children():
        try:
            cmd = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if any(part.endswith("scrapyd") for part in cmd):
            found["scrapyd"].append(child.pid)
        elif "web" in cmd:
            found["web"].append(child.pid)
    return found


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
            return True
        except OSError:
            return False


@pytest.mark.parametrize("argv", [[sys.executable, "-m", "api", "--help"],
                                  [sys.executable, "-m", "api", "serve", "--help"],
                                  [str(REPO / "dev"), "run", "--help"]], ids=["api", "serve", "dev-run"])
def test_help_prints_usage_and_starts_nothing(argv, tmp_path):
    env = service_env(tmp_path)
    out = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m api")
    assert port_is_free(int(env["API_PORT"])) and port_is_free(int(env["SCRAPYD_HTTP_PORT"]))
    assert not (tmp_path / "scrapyd.log").exists() and not (tmp_path / "secrets.env").exists()
    assert not (tmp_path / "api.db").exists()


@pytest.mark.parametrize("taken", ["API_PORT", "SCRAPYD_HTTP_PORT"])
def test_a_taken_port_is_one_line_and_a_failure(taken, tmp_path):
    env = service_env(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env[taken])))
        holder.listen(1)
        out = subprocess.run([sys.executable, "-m", "api"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=60)
    assert out.returncode == 1
    lines = (out.stdout + out.stderr).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and env[taken] in lines[0] and taken in lines[0] and "in use" in lines[0]
    # nothing was started or written
    assert not (tmp_path / "scrapyd.log").exists() and not (tmp_path / "secrets.env").exists()


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path):
    env = service_env(tmp_path, DATABASE_URL=f"postgresql://scrapersky:Db-pw-4Kz@127.0.0.1:{free_port()}/x")
    out = subprocess.run([sys.executable, "-m", "api"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    errors = [line for line in (out.stdout + out.stderr).splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: cannot open the database"), errors
    assert "Db-pw-4Kz" not in out.stdout + out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "scrapyd.log").exists()


def test_supervisor_restarts_what_dies_and_stops_cleanly(tmp_path):
    env = service_env(tmp_path, API_RUN_DISPATCHER="0")
    out = tmp_path / "service.out"
    base = f"http://127.0.0.1:{env['API_PORT']}"
    scrapyd_url = f"http://127.0.0.1:{env['SCRAPYD_HTTP_PORT']}/daemonstatus.json"
    proc = start(env, out)
    try:
        wait_until(lambda: health(base, proc, out) == 200, 90, 0.3, "service to be healthy")
        # scrapyd is locked with a password generated into the env file and given to the API
        saved = dict(line.split("=", 1) for line in (tmp_path / "secrets.env").read_text().split())
        password = saved["SCRAPYD_PASSWORD"]
        assert len(password) >= 24
        assert (tmp_path / "secrets.env").stat().st_mode & 0o077 == 0
        assert session().get(scrapyd_url, timeout=3).status_code == 401
        assert session().get(scrapyd_url, auth=("scrapersky", password), timeout=3).status_code == 200
        assert str(tmp_path / "secrets.env") in out.read_text()

        first = children(proc)
        assert len(first["scrapyd"]) == 1 and len(first["web"]) == 2, first

        # scrapyd killed: restarted, the API answers throughout, /health is ok again
        os.kill(first["scrapyd"][0], signal.SIGKILL)
        wait_until(lambda: (c := children(proc)["scrapyd"]) and c != first["scrapyd"], 60, 0.2, "a new scrapyd")
        wait_until(lambda: health(base, proc, out) == 200, 60, 0.3, "scrapyd back in /health")

        # one web worker killed: the other keeps serving; then it is replaced
        os.kill(first["web"][0], signal.SIGKILL)
        for _ in range(10):
            assert health(base, proc, out) == 200
        wait_until(lambda: len(children(proc)["web"]) == 2, 60, 0.2, "the web worker to be replaced")

        # every web worker killed at once: the supervisor keeps the port and serves again
        for pid in children(proc)["web"]:
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: health(base, proc, out) == 200, 60, 0.3, "the API to answer again")
        assert proc.poll() is None
        last = children(proc)
    finally:
        code = stop(proc)
    assert code == 0
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in last["scrapyd"] + last["web"])
    text = out.read_text()
    assert password not in text and "Traceback" not in text
    assert re.search(r"WARNING api\.service: scrapyd \(pid \d+\) exited with signal SIGKILL .* restarting in", text)
    assert re.search(r"WARNING api\.service: web worker \d \(pid \d+\) exited with signal SIGKILL", text)
    ours = [line for line in text.splitlines() if "api.service" in line]
    assert ours and all(LOG_LINE.match(line) for line in ours), ours

    # a second start reuses the saved password
    proc = start(env, out)
    try:
        wait_until(lambda: health(base, proc, out) == 200, 90, 0.3, "service to be healthy again")
        assert session().get(scrapyd_url, auth=("scrapersky", password), timeout=3).status_code == 200
    finally:
        assert stop(proc) == 0
    assert (tmp_path / "secrets.env").read_text().count("SCRAPYD_PASSWORD=") == 1


def test_credentials_in_scrapyd_url_are_never_shown(tmp_path, api_sites, scrapyd_factory):
    secret = "Pw-in-url-7Hq2"
    db_url = f"sqlite:///{tmp_path / 'api.db'}"
    api_sites.sites["redact.test"], _ = small_site("redact.test", 5)
    node = scrapyd_factory({**api_sites.proxy_env(), "DATABASE_URL": db_url}, username="ops",
                           password=secret).start()
    env = service_env(tmp_path, API_START_SCRAPYD="0", DATABASE_URL=db_url, DISPATCH_INTERVAL="0.3",
                      CRAWL_MIN_DOMAINS="1", API_WORKERS="1",
                      SCRAPYD_URL=f"http://ops:{secret}@127.0.0.1:{node.port}")
    out = tmp_path / "service.out"
    base = f"http://127.0.0.1:{env['API_PORT']}"
    proc = start(env, out)
    s = session()
    try:
        wait_until(lambda: health(base, proc, out) == 200, 90, 0.3, "service to be healthy (auth from the URL)")
        from api.auth import create_key
        from pipelines.db import get_engine

        s.headers["Authorization"] = f"Bearer {create_key(get_engine(db_url), 'redact', admin=True)}"
        r = s.post(f"{base}/api/v1/scrapersky", json={"base_url": "redact.test"}, timeout=10)
        assert r.status_code == 202, r.text
        status_url = base + r.json()["status_url"]
        st = wait_until(lambda: (x := s.get(status_url, timeout=5).json())["status"] == "complete" and x, 120, 0.5,
                        "the job to complete")
        bodies = [s.get(f"{base}/health", timeout=5).text, s.get(status_url, timeout=5).text]
        log_url = st["scrapyd"]["log_url"]
        assert log_url.startswith(f"http://127.0.0.1:{node.port}/logs/")
        assert st["scrapyd"]["node"] == f"http://127.0.0.1:{node.port}"
        assert s.get(log_url, auth=("ops", secret), timeout=5).status_code == 200  # the link works
    finally:
        assert stop(proc) == 0
    for text in bodies + [out.read_text()]:
        assert secret not in text and "ops:" not in text


def test_db_upgrade_error_never_prints_the_password():
    secret = "Db-pw-9xQ"
    port = free_port()  # nothing listens there
    env = {**os.environ, "DATABASE_URL": f"postgresql://scrapersky:{secret}@127.0.0.1:{port}/nope"}
    out = subprocess.run([sys.executable, "-m", "pipelines.db", "upgrade"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    assert secret not in out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not upgrade") and f"127.0.0.1:{port}/nope" in lines[0]


@pytest.mark.parametrize("url, shown", [
    ("http://ops:pw@127.0.0.1:6800", "http://127.0.0.1:6800"),
    ("https://ops@scrapyd.example.net/", "https://scrapyd.example.net/"),
    ("postgresql+psycopg2://u:pa/ss@db.example:5432/x", "postgresql+psycopg2://db.example:5432/x"),
    ("postgresql://u@db/x", "postgresql://db/x"),
    ("postgresql://u:p@w@db/x", "postgresql://db/x"),
    ("http://u:p@w@127.0.0.1:6800", "http://127.0.0.1:6800"),
    ("http://127.0.0.1:6800/logs/a@b.log", "http://127.0.0.1:6800/logs/a@b.log"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_redact_url_drops_user_info(url, shown):
    from pipelines.db import redact_url

    assert redact_url(url) == shown
