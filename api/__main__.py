"""`python -m api`: run the whole service from the repository folder.

Starts scrapyd from the repository (it serves the `scrapersky` project of scrapy.cfg, no egg; state in
./dbs and ./logs; finished jobs kept in SQLite) unless API_START_SCRAPYD=0, then gunicorn serving
`api.app:create_app()` whose workers each run a dispatcher thread. Ctrl-C stops both.

Environment: DATABASE_URL (default: SQLite ./scrapersky.db), API_HOST (127.0.0.1), API_PORT (8000),
API_WORKERS (2), SCRAPYD_HTTP_PORT (6800), SCRAPYD_URL (default: the scrapyd started here),
SCRAPYD_USERNAME / SCRAPYD_PASSWORD (basic auth, given to both sides), SCRAPYD_LOGFILE.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _wait_for(url: str, auth, proc: subprocess.Popen, timeout: float = 30.0) -> bool:
    session = requests.Session()
    session.trust_env = False  # a crawl http_proxy in the environment is not for us
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if session.get(url, auth=auth, timeout=1).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:
        from api import keys_cli

        return keys_cli.main(argv[1:])
    env = dict(os.environ)
    procs: list[subprocess.Popen] = []
    host = env.get("API_HOST", "127.0.0.1")
    port = env.get("API_PORT", "8000")
    workers = env.get("API_WORKERS", "2")
    user, password = env.get("SCRAPYD_USERNAME"), env.get("SCRAPYD_PASSWORD")
    auth = (user, password or "") if user else None
    # A relative SQLite default must mean the same file for the API and the crawl processes.
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{REPO / 'scrapersky.db'}"
    if env.get("API_START_SCRAPYD", "1") not in ("0", "false", "no"):
        sport = env.get("SCRAPYD_HTTP_PORT", "6800")
        env.setdefault("SCRAPYD_URL", f"http://127.0.0.1:{sport}")
        logfile = Path(env.get("SCRAPYD_LOGFILE", str(REPO / "logs" / "scrapyd.log")))
        logfile.parent.mkdir(parents=True, exist_ok=True)
        scrapyd = subprocess.Popen([str(BIN / "scrapyd"), "--pidfile=", f"--logfile={logfile}"], cwd=REPO,
                                   env={**env, "SCRAPYD_HTTP_PORT": sport,
                                        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"})
        procs.append(scrapyd)
        if not _wait_for(f"http://127.0.0.1:{sport}/daemonstatus.json", auth, scrapyd):
            print(f"error: scrapyd did not start (see {logfile})", file=sys.stderr)
            scrapyd.terminate()
            return 1
        print(f"scrapyd on http://127.0.0.1:{sport} (console and logs)", flush=True)
    from pipelines.db import get_engine

    get_engine(env["DATABASE_URL"])  # migrate once, before the workers start
    api = subprocess.Popen([str(BIN / "gunicorn"), "--bind", f"{host}:{port}", "--workers", workers, "--threads", "4",
                            "--worker-class", "gthread", "--graceful-timeout", "10", "api.app:create_app()"],
                           cwd=REPO, env=env)
    procs.append(api)
    print(f"ScraperSky API on http://{host}:{port}/api/v1 (OpenAPI: /api/v1/openapi.json)", flush=True)

    def stop(*_):
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    finally:
        stop()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
