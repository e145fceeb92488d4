"""The HTTP server (`python -m api web`, waitress) over real sockets: stalled clients hold no worker
thread and are cut off after API_READ_TIMEOUT, and chunked request bodies reach the app."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import requests

from tests.api_fixtures import REPO, free_port, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def web(tmp_path):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}", "API_PORT": str(port),
           "API_RUN_DISPATCHER": "0", "SCRAPYD_URL": f"http://127.0.0.1:{free_port()}", "API_THREADS": "1",
           "API_READ_TIMEOUT": "2"}
    out = tmp_path / "web.out"
    proc = subprocess.Popen([sys.executable, "-m", "api", "web"], cwd=REPO, env=env, stdout=open(out, "wb"),
                            stderr=subprocess.STDOUT)
    s = requests.Session()
    s.trust_env = False

    def up():
        assert proc.poll() is None, out.read_text()
        try:
            return s.get(f"http://127.0.0.1:{port}/health/database", timeout=2).ok
        except requests.RequestException:
            return False

    try:
        wait_until(up, 60, 0.2, "the web server")
        yield port, s
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "Traceback" not in out.read_text()


def request(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_text, _, payload = data.partition(b"\r\n\r\n")
    return int(head_text.split()[1]), json.loads(payload)


def test_stalled_clients_hold_no_thread_and_are_cut_off(web):
    port, s = web
    stalled = []
    for i in range(20):  # with one worker thread, a server that reads bodies in its threads would hang here
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        if i % 2:
            sock.sendall(b"POST /api/v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{")  # headers and one byte of a 1,000-byte body
        else:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # headers not finished
        stalled.append(sock)
    try:
        for _ in range(5):
            assert s.get(f"http://127.0.0.1:{port}/health/database", timeout=10).status_code == 200
        # API_READ_TIMEOUT=2: each stalled connection is closed by the server (recv sees the end)
        for sock in stalled:
            assert sock.recv(1) == b""
    finally:
        for sock in stalled:
            sock.close()


def test_a_chunked_body_reaches_the_app(web, tmp_path):
    port, _ = web
    body = json.dumps({"domains": ["chunked-a.example", "chunked-b.example"]}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:20], body[20:])) + b"0\r\n\r\n"
    from api.auth import create_key
    from pipelines.db import get_engine

    key = create_key(get_engine(f"sqlite:///{tmp_path / 'api.db'}"), "chunky").encode()
    status, doc = request(port, b"POST /api/v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                b"Authorization: Bearer " + key + b"\r\n"
                                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n", chunked)
    assert status == 202, doc
    assert doc["job_count"] == 2
