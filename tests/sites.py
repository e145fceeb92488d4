"""A loopback HTTP server that plays many web sites, chosen by host name (standard library only).

The crawler under test is pointed at it through the proxy environment variables (`SiteServer.proxy_env`),
so it asks for `http://any-site.test/...` and this server answers as that site. Nothing leaves 127.0.0.1:

- forward-proxy requests (`GET http://site.test/robots.txt HTTP/1.1`) pick the site by the URI's host;
  origin-form requests (`GET /robots.txt` with `Host: site.test`) by the Host header;
- `CONNECT` (what a client does for https:// through a proxy) gets `405 Method Not Allowed` and the
  connection is closed, so a crawler trying https first falls back to http;
- an unknown host gets `502 Bad Gateway` (empty body, connection closed), as a proxy answers for a
  dead domain, and is tallied in `SiteServer.unknown`; a site flagged
  `unreachable=True` has its connections dropped without any answer (the client sees a connection error).

A `Site` maps path (+ query) to a `Resp`; missing paths get a small HTML 404 page. Responses support
redirects (status + Location header), any Content-Type (lies included), `Content-Encoding: gzip`
compressed on the fly (`Resp(..., gzip=True)`), HEAD, and bodies produced lazily by a callable
(returning bytes, or an iterable of byte chunks sent with chunked transfer encoding).
HTTP/1.1 keep-alive throughout.
"""

from __future__ import annotations

import collections
import gzip as _gzip
import socket
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

Body = bytes | Callable[[], "bytes | Iterable[bytes]"]

NOT_FOUND_BODY = b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>"


@dataclass
class Resp:
    """One canned response. `body` may be a callable, called per request (cache inside it if costly)."""

    status: int = 200
    body: Body = b""
    headers: dict[str, str] = field(default_factory=dict)
    gzip: bool = False  # compress on the fly and send `Content-Encoding: gzip`

    def materialise(self) -> bytes | Iterator[bytes]:
        body = self.body() if callable(self.body) else self.body
        if isinstance(body, (bytes, bytearray, memoryview)):
            body = bytes(body)
            return _gzip.compress(body, compresslevel=5, mtime=0) if self.gzip else body
        chunks = iter(body)
        return _gzip_chunks(chunks) if self.gzip else chunks


def _gzip_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = comp.compress(chunk)
        if out:
            yield out
    yield comp.flush()


def redirect(location: str, status: int = 301) -> Resp:
    return Resp(status=status, headers={"Location": location}, body=b"")


class Site(dict):
    """path (+ '?query') -> Resp. Plain dict, so tests may change a site between two crawls."""

    def __init__(self, pages: dict[str, Resp] | None = None, *, unreachable: bool = False):
        super().__init__(pages or {})
        self.unreachable = unreachable

    def lookup(self, path: str) -> Resp:
        resp = self.get(path)
        if resp is None:
            return Resp(status=404, body=NOT_FOUND_BODY, headers={"Content-Type": "text/html; charset=utf-8"})
        return resp


class RequestLog:
    """Thread-safe tally of (host, path) requests answered (GET and HEAD; dropped ones included)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def add(self, host: str, path: str) -> None:
        with self._lock:
            self._counts[(host, path)] += 1

    def snapshot(self) -> collections.Counter[tuple[str, str]]:
        with self._lock:
            return collections.Counter(self._counts)

    def __getitem__(self, key: tuple[str, str]) -> int:
        with self._lock:
            return self._counts[key]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return self._counts.get(key, 0) > 0  # type: ignore[arg-type]

    def __len__(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def for_host(self, host: str) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter({p: n for (h, p), n in self._counts.items() if h == host})

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ScraperSkyTestSites/1.0"
    timeout = 60  # idle keep-alive connections end eventually
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    # -- routing -----------------------------------------------------------------------------------
    def _target(self) -> tuple[str, str]:
        raw = self.path
        if raw[:8].lower().startswith(("http://", "https://")):
            parts = urlsplit(raw)
            path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
            return (parts.hostname or "").lower().rstrip("."), path
        host = urlsplit("//" + (self.headers.get("Host") or "")).hostname or ""
        return host.lower().rstrip("."), raw or "/"

    def _serve(self, head: bool) -> None:
        host, path = self._target()
        site = self.server.sites.get(host)
        if site is None:
            self.server.unknown.add(host, path)
            self.close_connection = True
            self._send(Resp(status=502, headers={"Connection": "close"}), head)
            return
        self.server.log.add(host, path)
        if site.unreachable:
            self._drop()
            return
        self._send(site.lookup(path), head)

    def _drop(self) -> None:
        self.close_connection = True
        try:  # RST rather than FIN: the client sees a connection error, never a response
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass

    def _send(self, resp: Resp, head: bool) -> None:
        body = resp.materialise()
        self.send_response(resp.status)
        headers = {k.lower(): (k, v) for k, v in resp.headers.items()}
        for key, value in headers.values():
            if key.lower() != "content-length":
                self.send_header(key, value)
        if "content-type" not in headers and resp.status != 204:
            self.send_header("Content-Type", "application/xml" if resp.status < 300 else "text/html")
        if resp.gzip:
            self.send_header("Content-Encoding", "gzip")
        if isinstance(body, bytes):
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return
        if head:
            self.send_header("Content-Length", "0")  # length unknown without producing it; good enough
            self.end_headers()
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in body:
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    # -- methods -----------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def do_CONNECT(self) -> None:  # noqa: N802
        self.close_connection = True
        body = b"CONNECT (https) is not offered here"
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _not_allowed(self) -> None:
        self.close_connection = True
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up stop()
    request_queue_size = 1024  # bursts of hundreds of connections from a many-domain crawl
    allow_reuse_address = True

    def __init__(self, sites: dict[str, Site], log: RequestLog, unknown: RequestLog):
        self.sites = sites
        self.log = log
        self.unknown = unknown
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        pass  # clients hanging up mid-response are normal in these tests


class SiteServer:
    """Serve `sites` (host -> Site) on 127.0.0.1, as origin server and HTTP forward proxy."""

    def __init__(self, sites: dict[str, Site]):
        self.sites = sites  # shared: adding or changing a site takes effect for the next request
        self.requests = RequestLog()
        self.unknown = RequestLog()  # requests for hosts that are not sites (answered 502)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SiteServer:
        if self._server is None:
            self._server = _Server(self.sites, self.requests, self.unknown)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                            name="SiteServer", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            if self._thread is not None:
                self._thread.join(5)
                self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("SiteServer not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def proxy_env(self) -> dict[str, str]:
        """Environment variables that send a client's http:// and https:// traffic through this server."""
        env = {name: self.url for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")}
        env.update(no_proxy="", NO_PROXY="")
        return env

    def __enter__(self) -> SiteServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
