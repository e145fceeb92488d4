"""The loopback site server (tests/sites.py) and the site catalogue's own consistency."""

from __future__ import annotations

import gzip
import http.client
import socket
import zlib
from urllib.parse import urlsplit

import pytest

from tests.site_catalogue import BOMB_PADDING, CATALOGUE, bulk_cases, gzip_bomb, sites_of
from tests.sites import Resp, Site, SiteServer, redirect


@pytest.fixture(scope="module")
def server():
    sites = {
        "plain.test": Site({
            "/": Resp(body=b"<html>home</html>", headers={"Content-Type": "text/html"}),
            "/robots.txt": Resp(body=b"Sitemap: http://plain.test/s.xml\n", headers={"Content-Type": "text/plain"}),
            "/q?a=1&b=2": Resp(body=b"query"),
            "/moved": redirect("http://plain.test/", 301),
            "/ce.xml": Resp(body=b"<urlset/>" * 100, gzip=True),
            "/lazy": Resp(body=lambda: b"made on demand"),
            "/chunks": Resp(body=lambda: (b"part%d;" % i for i in range(5))),
            "/lie": Resp(body=b"<urlset/>", headers={"Content-Type": "text/html"}),
        }),
        "down.test": Site({"/": Resp(body=b"never sent")}, unreachable=True),
    }
    with SiteServer(sites) as srv:
        yield srv


def via_proxy(server: SiteServer, url: str, method: str = "GET", conn: http.client.HTTPConnection | None = None):
    conn = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request(method, url)
    resp = conn.getresponse()
    return conn, resp, resp.read()


def test_forward_proxy_request_picks_site_by_uri_host(server):
    before = server.requests[("plain.test", "/robots.txt")]
    _, resp, body = via_proxy(server, "http://plain.test/robots.txt")
    assert resp.status == 200 and body == b"Sitemap: http://plain.test/s.xml\n"
    assert resp.getheader("Content-Type") == "text/plain"
    assert server.requests[("plain.test", "/robots.txt")] == before + 1


def test_origin_form_request_uses_host_header(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/", headers={"Host": "PLAIN.test:80"})
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"<html>home</html>")


def test_query_string_is_part_of_the_path(server):
    _, resp, body = via_proxy(server, "http://plain.test/q?a=1&b=2")
    assert (resp.status, body) == (200, b"query")


def test_missing_path_is_html_404(server):
    _, resp, body = via_proxy(server, "http://plain.test/nope.xml")
    assert resp.status == 404 and b"Not Found" in body and resp.getheader("Content-Type").startswith("text/html")


def test_redirect_has_location(server):
    _, resp, _ = via_proxy(server, "http://plain.test/moved")
    assert resp.status == 301 and resp.getheader("Location") == "http://plain.test/"


def test_content_encoding_gzip_on_the_fly(server):
    _, resp, body = via_proxy(server, "http://plain.test/ce.xml")
    assert resp.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == b"<urlset/>" * 100
    assert int(resp.getheader("Content-Length")) == len(body)


def test_content_type_lies_are_served_as_configured(server):
    _, resp, body = via_proxy(server, "http://plain.test/lie")
    assert resp.getheader("Content-Type") == "text/html" and body == b"<urlset/>"


def test_lazy_bodies_bytes_and_chunked(server):
    _, _, body = via_proxy(server, "http://plain.test/lazy")
    assert body == b"made on demand"
    _, resp, body = via_proxy(server, "http://plain.test/chunks")
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert body == b"part0;part1;part2;part3;part4;"


def test_head_and_keep_alive_on_one_connection(server):
    conn, resp, body = via_proxy(server, "http://plain.test/", method="HEAD")
    assert resp.status == 200 and body == b"" and resp.getheader("Content-Length") == str(len(b"<html>home</html>"))
    sock = conn.sock
    for path in ("/robots.txt", "/nope", "/lazy"):
        conn, resp, _ = via_proxy(server, "http://plain.test" + path, conn=conn)
        assert conn.sock is sock, "connection was not kept alive"


def test_connect_is_refused_with_405_and_close(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"CONNECT plain.test:443 HTTP/1.1\r\nHost: plain.test:443\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 405")


def test_unknown_host_is_502_with_empty_body(server):
    _, resp, body = via_proxy(server, "http://nowhere.test/robots.txt")
    assert resp.status == 502 and body == b""


def test_unreachable_site_drops_the_connection(server):
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)):
        via_proxy(server, "http://down.test/robots.txt")
    assert ("down.test", "/robots.txt") in server.requests


def test_proxy_env_points_everything_at_the_server(server):
    env = server.proxy_env()
    assert {env[k] for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")} == {server.url}
    assert env["no_proxy"] == "" and server.url == f"http://127.0.0.1:{server.port}"


def test_sites_can_be_changed_while_serving(server):
    server.sites["late.test"] = Site({"/": Resp(body=b"v1")})
    assert via_proxy(server, "http://late.test/")[2] == b"v1"
    server.sites["late.test"]["/"] = Resp(body=b"v2")
    assert via_proxy(server, "http://late.test/")[2] == b"v2"
    del server.sites["late.test"]


# --------------------------------------------------------------------------------------------------
# Catalogue consistency: what the expectations claim is what the sites serve
# --------------------------------------------------------------------------------------------------
def fetch_local(site: Site, url: str, hops: int = 5) -> Resp:
    """The response the site gives for `url`, following redirects inside the site."""
    resp = site.lookup(path_of(url))
    while resp.status in (301, 302, 303, 307, 308) and hops:
        resp, hops = site.lookup(path_of(resp.headers["Location"])), hops - 1
    return resp


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def body_of(resp: Resp) -> bytes:
    body = resp.materialise()
    return body if isinstance(body, bytes) else b"".join(body)


@pytest.mark.parametrize("case", [c for c in CATALOGUE.values() if not c.hostile], ids=lambda c: c.host)
def test_catalogue_expectations_match_the_site(case):
    assert all(urlsplit(u).hostname == case.host for u in case.expected_urls | case.optional_urls)
    assert not case.expected_urls & case.optional_urls
    for url, exp in case.sitemaps.items():
        try:
            parts = urlsplit(url)
        except ValueError:  # a location urllib cannot parse: expected only as a failed row, never fetched
            assert exp.error, url
            continue
        if parts.scheme not in ("http", "https"):  # likewise a file: or ftp: location
            assert exp.error, url
            continue
        assert parts.hostname == case.host
        resp = fetch_local(case.site, url)
        if exp.error:
            continue
        assert resp.status == 200, url
        raw = body_of(resp)
        if resp.gzip:
            raw = gzip.decompress(raw)
        assert (raw[:2] == b"\x1f\x8b") == bool(exp.gzipped), url
    if case.status == "complete":
        assert case.site.lookup("/").status == 200


def test_gzip_bomb_is_small_and_huge():
    data = gzip_bomb("bomb.test", "x", padding=BOMB_PADDING)
    assert len(data) < 1024 * 1024
    d = zlib.decompressobj(31)
    total, tail = 0, b""
    for i in range(0, len(data), 64 * 1024):
        out = d.decompress(data[i:i + 64 * 1024])
        total += len(out)
        tail = (tail + out)[-200:]
    assert total > 200 * 1024 * 1024
    assert tail.rstrip().endswith(b"</urlset>") and b"after-bomb" in tail


def test_bulk_cases_shape():
    cases = bulk_cases(3, prefix="shape")
    assert [c.host for c in cases] == ["shape-0000.test", "shape-0001.test", "shape-0002.test"]
    assert all(len(c.expected_urls) == 100 and len(c.sitemaps) == 3 for c in cases)
    site = sites_of(cases)["shape-0001.test"]
    assert body_of(site.lookup("/sitemaps/pages.xml.gz"))[:2] == b"\x1f\x8b"
    assert b"Sitemap: http://shape-0001.test/sitemaps/index.xml" in body_of(site.lookup("/robots.txt"))
