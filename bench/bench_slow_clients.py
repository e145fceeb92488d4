#!/usr/bin/env python
"""Benchmark of issue "Safe to expose" (hardened serving): `/health` latency beside 100 slow clients.

Everything stays on 127.0.0.1:

1. The service as `./dev run` starts it (`python -m api`: scrapyd with its generated password, and
   API_WORKERS waitress processes), on a fresh SQLite file, the dispatcher off (API_RUN_DISPATCHER=0).
   With `--compare-gunicorn` also the previous server on another port, beside the same scrapyd:
   `gunicorn --workers 2 --threads 4 --worker-class gthread` (pip install gunicorn==27.0.1).
2. For each server, two phases of `--samples` GET /health requests, one after another, each on a new
   connection (a refused or timed-out request counts as `--request-timeout` seconds and is counted):
   - **alone**: nothing else talks to the server;
   - **slow**: `--clients` slow connections are open meanwhile, half sending complete headers of a
     POST with Content-Length 100,000 and then one body byte every `--trickle` seconds, half sending
     their request headers one byte every `--trickle` seconds. A slow connection that the server
     closes is opened again (counted as reopened).
3. It prints p50, p99 and max of each phase side by side, and the ratios slow/alone.

A phase ends after `--samples` requests or `--phase-seconds`, whichever comes first: the run is bounded
(about 2 x phase-seconds per server plus start-up). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

from tests.api_fixtures import free_port, wait_until  # noqa: E402

PY = sys.executable


def health_once(port: int, timeout: float) -> tuple[float, int | None]:
    t0 = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", "/health", headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return time.perf_counter() - t0, resp.status
    except (OSError, http.client.HTTPException):
        return timeout, None


class SlowClients:
    """`n` connections that never finish their request: a trickle of body, or of headers."""

    def __init__(self, port: int, n: int, trickle: float) -> None:
        self.port, self.n, self.trickle = port, n, trickle
        self.stop = threading.Event()
        self.reopened = 0
        self.open_failures = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, i: int) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            sock.setblocking(False)
            if i % 2 == 0:
                sock.send(b"POST /api/v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 100000\r\n\r\n{")
            else:
                sock.send(b"G")
            return sock
        except OSError:
            self.open_failures += 1
            return None

    def _next_byte(self, i: int, sent: int) -> bytes:
        if i % 2 == 0:
            return b" "  # more of the JSON body, whitespace forever
        head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"x" * 100_000
        return head[sent % len(head):sent % len(head) + 1]

    def _run(self) -> None:
        socks: list[socket.socket | None] = [self._open(i) for i in range(self.n)]
        sent = [1] * self.n
        while not self.stop.wait(self.trickle):
            for i, sock in enumerate(socks):
                if sock is None:
                    socks[i] = self._open(i)
                    sent[i] = 1
                    continue
                try:
                    if sock.recv(1 << 16) == b"":  # the server closed it (read timeout)
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                except OSError:
                    sock.close()
                    socks[i] = self._open(i)
                    self.reopened += 1
                    sent[i] = 1
                    continue
                try:
                    sock.send(self._next_byte(i, sent[i]))
                    sent[i] += 1
                except OSError:
                    sock.close()
                    socks[i] = self._open(i)
                    self.reopened += 1
                    sent[i] = 1
        for sock in socks:
            if sock is not None:
                sock.close()

    def __enter__(self) -> "SlowClients":
        self.thread.start()
        time.sleep(max(1.0, 2 * self.trickle))  # all connected and trickling
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)


def phase(port: int, args) -> dict:
    lat: list[float] = []
    failed = 0
    deadline = time.monotonic() + args.phase_seconds
    while len(lat) < args.samples and time.monotonic() < deadline:
        seconds, status = health_once(port, args.request_timeout)
        lat.append(seconds)
        failed += status is None
    lat.sort()

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000

    return {"n": len(lat), "failed": failed, "p50": pct(0.50), "p99": pct(0.99), "max": lat[-1] * 1000,
            "mean": statistics.fmean(lat) * 1000}


def measure(name: str, port: int, args) -> dict:
    health_once(port, args.request_timeout)  # warm up
    alone = phase(port, args)
    with SlowClients(port, args.clients, args.trickle) as slow_clients:
        slow = phase(port, args)
    print(f"  {name}: alone {alone['n']} requests, slow {slow['n']} requests "
          f"({slow_clients.reopened} slow connections reopened, {slow_clients.open_failures} refused)", flush=True)
    return {"name": name, "alone": alone, "slow": slow}


def start_service(tmp: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / ".scrapyd.conf").write_text(f"[scrapyd]\ndbs_dir = {tmp / 'dbs'}\nlogs_dir = {tmp / 'logs'}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "SCRAPYD_"))}
    env.update({"HOME": str(home), "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}", "API_PORT": str(free_port()),
                "SCRAPYD_HTTP_PORT": str(free_port()), "SCRAPYD_LOGFILE": str(tmp / "scrapyd.log"),
                "SCRAPERSKY_ENV_FILE": str(tmp / "secrets.env"), "API_RUN_DISPATCHER": "0"})
    proc = subprocess.Popen([PY, "-m", "api"], cwd=REPO, env=env, stdout=open(tmp / "service.out", "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(proc, int(env["API_PORT"]), tmp / "service.out")
    from dotenv import dotenv_values

    env.update(SCRAPYD_USERNAME="scrapersky", SCRAPYD_PASSWORD=dotenv_values(tmp / "secrets.env")["SCRAPYD_PASSWORD"],
               SCRAPYD_URL=f"http://127.0.0.1:{env['SCRAPYD_HTTP_PORT']}")
    return proc, env


def wait_for(proc: subprocess.Popen, port: int, out: Path) -> None:
    def up():
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{out.read_text()[-3000:]}")
        return health_once(port, 2)[1] == 200

    wait_until(up, 90, 0.3, "the server")


def start_gunicorn(tmp: Path, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    exe = Path(PY).parent / "gunicorn"
    if not exe.exists():
        raise SystemExit("--compare-gunicorn needs gunicorn: .venv/bin/pip install gunicorn==27.0.1")
    proc = subprocess.Popen([str(exe), "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
                             "--worker-class", "gthread", "api.app:create_app()"], cwd=REPO, env=env,
                            stdout=open(tmp / "gunicorn.out", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(proc, port, tmp / "gunicorn.out")
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(40)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=100, help="slow connections (default 100, at most 1,000)")
    ap.add_argument("--samples", type=int, default=300, help="/health requests per phase (default 300)")
    ap.add_argument("--trickle", type=float, default=0.5, help="seconds between two bytes of a slow client (0.5)")
    ap.add_argument("--request-timeout", type=float, default=5.0, help="per /health request (5 s)")
    ap.add_argument("--phase-seconds", type=float, default=60.0, help="a phase stops after this (60 s)")
    ap.add_argument("--compare-gunicorn", action="store_true", help="also measure the previous gunicorn gthread setup")
    args = ap.parse_args()
    if not 1 <= args.clients <= 1000 or not 10 <= args.samples <= 5000:
        ap.error("--clients must be 1..1000 and --samples 10..5000")

    tmp = Path(tempfile.mkdtemp(prefix="scrapersky_bench_slow_"))
    print(f"== /health beside {args.clients} slow clients, {args.samples} samples per phase, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} ==", flush=True)
    results = []
    service, env = start_service(tmp)
    try:
        results.append(measure("python -m api (waitress)", int(env["API_PORT"]), args))
        if args.compare_gunicorn:
            gproc, gport = start_gunicorn(tmp, env)
            try:
                results.append(measure("gunicorn gthread 2x4 (before)", gport, args))
            finally:
                stop(gproc)
    finally:
        stop(service)

    print(f"\n{'server':32} {'phase':6} {'n':>5} {'failed':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for r in results:
        for ph in ("alone", "slow"):
            x = r[ph]
            print(f"{r['name']:32} {ph:6} {x['n']:5} {x['failed']:6} {x['p50']:9.1f} {x['p99']:9.1f} {x['max']:9.1f}")
    print()
    for r in results:
        a, s = r["alone"], r["slow"]
        verdict = "met" if s["p99"] <= 1000 and not s["failed"] else "NOT met"
        print(f"{r['name']}: slow/alone p50 x{s['p50'] / a['p50']:.2f}, p99 x{s['p99'] / a['p99']:.2f}; "
              f"goal p99 <= 1 s beside {args.clients} slow clients: {verdict}")
    print(f"(logs in {tmp})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
