"""Running the service: the HTTP server (`python -m api web`) and the supervisor (`python -m api`).

**HTTP server.** waitress serves `api.app:create_app()`. Its I/O thread reads every request (headers
and body, chunked bodies de-chunked) into a buffer before a worker thread sees it, and closes a
connection idle for `API_READ_TIMEOUT` seconds: slow or stalled clients cost a socket, never a thread,
so `/health` keeps answering beside them (bench/bench_slow_clients.py).

**Supervisor.** `serve()` binds the API socket itself (a port already taken is one `error:` line and
exit 1, as is a taken scrapyd port) and hands it to `API_WORKERS` waitress processes, which share it.
It starts scrapyd (unless `API_START_SCRAPYD=0`) with basic auth: the password comes from the
environment or the env file (`.env`, generated there on first start). A child that dies is restarted
after a back-off (1 s, doubling up to 30 s; reset after 30 s of good running) while the others go
on; connections that arrive meanwhile wait in the shared socket's backlog. SIGTERM or SIGINT stops
the web workers, then scrapyd (SIGTERM, SIGKILL after 20 s): exit 0 when all stopped in time.

Hand-written rather than honcho or supervisord: honcho stops every process when one exits, which is
the behaviour this replaces; supervisord needs a generated config file and its own daemon and control
socket, cannot hand the shared listening socket to the workers, and would still need this module's
port checks and password set-up around it. The loop below is the part neither would save.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from api.config import REPO, ensure_scrapyd_password, env_file, load_env_file

BIN = Path(sys.executable).parent
log = logging.getLogger("api.service")

BACKOFF_FIRST, BACKOFF_MAX, STABLE_AFTER, STOP_TIMEOUT = 1.0, 30.0, 30.0, 20.0


class StartupError(Exception):
    """The service cannot start; the message is the one line the user sees."""


def setup_logging(level: int = logging.INFO) -> None:
    """One format for the supervisor and its web workers: time, level, logger, message."""
    logging.basicConfig(level=level, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "setup plugin ..." lines on every start
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is 1" on every wait


def _int_env(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise StartupError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1 or value > 65535:
        raise StartupError(f"{name} must be between 1 and 65535, not {value}")
    return value


def bind_api_socket(host: str, port: int) -> socket.socket:
    """The listening socket the web workers share (SO_REUSEADDR, as every server sets it)."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host}:{port} (API_HOST): {exc.strerror}") from None
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise StartupError(_port_message(host, port, "API_PORT", exc)) from None
    sock.set_inheritable(True)
    return sock


def check_port_free(host: str, port: int, variable: str) -> None:
    """Raise StartupError when something listens on host:port already."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError as exc:
            raise StartupError(_port_message(host, port, variable, exc)) from None


def _port_message(host: str, port: int, variable: str, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use ({variable}): stop what holds it or choose another port"
    return f"cannot listen on {host}:{port} ({variable}): {exc.strerror or exc}"


# ---------------------------------------------------------------------------------------- web server
def waitress_settings(env: dict[str, str] | None = None) -> dict:
    """waitress adjustments from the environment (one place for `serve` and `web`)."""
    from api.config import Config

    env = os.environ if env is None else env
    max_body = Config.from_env(env).max_body_bytes
    return {
        "threads": int(env.get("API_THREADS") or 4),
        # Slow clients are held by the I/O thread, not by a worker thread; bound how many.
        "connection_limit": int(env.get("API_CONNECTION_LIMIT") or 1000),
        "channel_timeout": int(env.get("API_READ_TIMEOUT") or 30),
        "cleanup_interval": 5,
        "asyncore_use_poll": True,  # select() stops at 1024 descriptors
        # The app answers a too-large body with JSON 413 itself; waitress refuses (plain text) only far beyond.
        "max_request_body_size": 4 * max_body,
        "ident": "ScraperSky",
    }


def serve_web(fd: int | None = None) -> int:
    """One web worker: waitress on the inherited socket `fd`, or on API_HOST:API_PORT."""
    import waitress

    from api.app import create_app

    setup_logging()
    env = dict(os.environ)
    settings = waitress_settings(env)
    if fd is not None:
        sockets = [socket.socket(fileno=fd)]
    else:
        host = env.get("API_HOST", "127.0.0.1")
        try:
            sockets = [bind_api_socket(host, _int_env(env, "API_PORT", 8000))]
        except StartupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    def _term(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _term)
    try:
        app = create_app()
    except Exception as exc:  # e.g. the database is down: one line; the supervisor retries with back-off
        log.error("web worker %d cannot start: %s", os.getpid(), str(exc).splitlines()[0][:300])
        return 1
    log.info("web worker %d serving (%d threads, read timeout %d s)", os.getpid(), settings["threads"],
             settings["channel_timeout"])
    waitress.serve(app, sockets=sockets, **settings)  # returns on SystemExit/KeyboardInterrupt
    return 0


# ---------------------------------------------------------------------------------------- supervisor
@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()
    log_hint: str = ""
    proc: subprocess.Popen | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=REPO, env=self.env, pass_fds=self.pass_fds)
        self.started = time.monotonic()
        self.restart_at = None

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()


class Supervisor:
    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.stopping = False

    def request_stop(self, signum: int, _frame=None) -> None:
        if not self.stopping:
            log.info("%s received: stopping", signal.Signals(signum).name)
        self.stopping = True

    def watch(self) -> None:
        """Restart children that die, with back-off, until asked to stop."""
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                code = child.exited()
                if code is not None and child.restart_at is None:
                    ran = now - child.started
                    child.failures = 0 if ran >= STABLE_AFTER else child.failures + 1
                    delay = min(BACKOFF_FIRST * 2 ** max(child.failures - 1, 0), BACKOFF_MAX)
                    how = f"signal {_signal_name(-code)}" if code < 0 else f"status {code}"
                    log.warning("%s (pid %d) exited with %s after %.0f s; restarting in %.0f s%s", child.name,
                                child.proc.pid, how, ran, delay, child.log_hint)
                    child.restart_at = now + delay
                elif child.restart_at is not None and now >= child.restart_at and not self.stopping:
                    child.start()
                    child.restarts += 1
                    log.info("%s restarted (pid %d)", child.name, child.proc.pid)
            time.sleep(0.2)

    def stop(self) -> bool:
        """SIGTERM to every running child, SIGKILL after STOP_TIMEOUT; True when all ended in time."""
        clean = True
        for child in self.children:
            if child.exited() is None and child.proc is not None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.error("%s (pid %d) did not stop within %.0f s: killed", child.name, child.proc.pid, STOP_TIMEOUT)
                child.proc.kill()
                child.proc.wait()
                clean = False
        return clean


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _wait_for_scrapyd(url: str, auth: tuple[str, str], child: Child, supervisor: Supervisor,
                      timeout: float = 30.0) -> bool:
    import requests

    session = requests.Session()
    session.trust_env = False  # a crawl http_proxy in the environment is not for us
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not supervisor.stopping:
        if child.exited() is not None:
            return False
        try:
            if session.get(url, auth=auth, timeout=1).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def serve() -> int:
    """`python -m api`: scrapyd + API_WORKERS web workers, supervised (see the module docstring)."""
    setup_logging()
    supervisor: Supervisor | None = None
    api_sock: socket.socket | None = None
    try:
        env = load_env_file(dict(os.environ))
        host = env.get("API_HOST", "127.0.0.1")
        port = _int_env(env, "API_PORT", 8000)
        workers = _int_env(env, "API_WORKERS", 2)
        start_scrapyd = env.get("API_START_SCRAPYD", "1").strip().lower() not in ("0", "false", "no", "off")
        sport = _int_env(env, "SCRAPYD_HTTP_PORT", 6800)
        shost = env.get("SCRAPYD_BIND_ADDRESS", "127.0.0.1")
        from api.auth import auth_off_problem
        from api.config import Config

        problem = auth_off_problem(Config.from_env(env))
        if problem:  # refused before anything starts (a web worker would refuse it again and again)
            print(problem, file=sys.stderr, flush=True)
            return 1
        api_sock = bind_api_socket(host, port)
        if start_scrapyd:
            check_port_free(shost, sport, "SCRAPYD_HTTP_PORT")
        # A relative SQLite default must mean the same file for the API and the crawl processes.
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = f"sqlite:///{REPO / 'scrapersky.db'}"
        children: list[Child] = []
        scrapyd: Child | None = None
        if start_scrapyd:
            env, generated = ensure_scrapyd_password(env)
            where = env_file(env)
            if generated:
                log.info("generated a scrapyd password: SCRAPYD_PASSWORD in %s (user %s)", where,
                         env["SCRAPYD_USERNAME"])
            else:
                log.info("scrapyd basic auth: user %s, password from %s", env["SCRAPYD_USERNAME"],
                         "SCRAPYD_PASSWORD in " + str(where) if "SCRAPYD_PASSWORD" not in os.environ
                         else "the environment (SCRAPYD_PASSWORD)")
            env.setdefault("SCRAPYD_URL", f"http://127.0.0.1:{sport}")
            logfile = Path(env.get("SCRAPYD_LOGFILE", str(REPO / "logs" / "scrapyd.log")))
            logfile.parent.mkdir(parents=True, exist_ok=True)
            scrapyd = Child("scrapyd", [str(BIN / "scrapyd"), "--pidfile=", f"--logfile={logfile}"],
                            {**env, "SCRAPYD_HTTP_PORT": str(sport), "SCRAPYD_BIND_ADDRESS": shost,
                             "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}, log_hint=f" (see {logfile})")
        from pipelines.db import dispose_all, get_engine, redact_url

        try:
            get_engine(env["DATABASE_URL"])  # migrate once, before the workers start
        except Exception as exc:  # one line, not a traceback
            raise StartupError(f"cannot open the database {redact_url(env['DATABASE_URL'])}: "
                               f"{str(exc).splitlines()[0]}") from None
        finally:
            dispose_all()

        supervisor = Supervisor(children)
        signal.signal(signal.SIGTERM, supervisor.request_stop)
        signal.signal(signal.SIGINT, supervisor.request_stop)
        if scrapyd is not None:
            scrapyd.start()
            if not _wait_for_scrapyd(f"http://127.0.0.1:{sport}/daemonstatus.json",
                                     (env["SCRAPYD_USERNAME"], env["SCRAPYD_PASSWORD"]), scrapyd, supervisor):
                supervisor.children = [scrapyd]
                supervisor.stop()
                if supervisor.stopping:
                    return 0
                raise StartupError(f"scrapyd did not start (see {logfile})")
            log.info("scrapyd on http://127.0.0.1:%d (console and logs; basic auth, user %s)", sport,
                     env["SCRAPYD_USERNAME"])
        else:
            log.info("scrapyd not started here (API_START_SCRAPYD=0): using %s",
                     ", ".join(redact_url(u.strip()) for u in env.get("SCRAPYD_URL", "http://127.0.0.1:6800").split(",")))
        fd = api_sock.fileno()
        for i in range(workers):
            children.append(Child(f"web worker {i + 1}", [sys.executable, "-m", "api", "web", "--fd", str(fd)],
                                  env, pass_fds=(fd,)))
        if scrapyd is not None:
            children.append(scrapyd)  # stopped last
        for child in children:
            if child.proc is None:
                child.start()
        log.info("ScraperSky API on http://%s:%d/api/v1 (OpenAPI: /api/v1/openapi.json, browsable at /docs; %d waitress workers)",
                 host, port, workers)
        log.info("ScraperSky console on http://%s:%d/console/ (log in with an API key)", host, port)
        supervisor.watch()
        clean = supervisor.stop()
        log.info("stopped" if clean else "stopped (some processes had to be killed)")
        return 0 if clean else 1
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if api_sock is not None:
            api_sock.close()
