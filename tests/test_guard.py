"""The crawler never reaches inside: a hostile site points it at internal addresses and local files.

`hostile.test` (played by a loopback SiteServer acting as the crawler's proxy) lists, in robots.txt,
in a sitemap index, in home-page links and through redirects, every spelling of 127.0.0.1, private,
link-local, shared and metadata addresses, internal names, `file:`, `ftp:`, `s3:` and `data:` URLs.
The loopback spellings go straight to a second "secret" server (they are in `no_proxy`, as an
operator might set it), which counts every connection; the other internal targets go through the
proxy, whose request log shows whether anything asked for them. Nothing may be fetched, and each
refused location is a sitemap row whose error says why. A control crawl with the guard switched off
shows that this set-up does see the leaks.

Name resolution is tested in a crawl process whose `socket.gethostbyname` plays a DNS server (the
resolver Twisted connects through is the part under test), including an answer that changes
between two lookups (DNS rebinding).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipelines.db import make_engine
from pipelines.models import Base, Job, Page, Sitemap
from tests.conftest import REPO_ROOT, crawl_env, run_scrapy_crawl
from tests.site_catalogue import HTML, TEXT, XML, home_page, robots_txt, sitemap_index, urlset
from tests.sites import Resp, Site, SiteServer, redirect

pytestmark = pytest.mark.timeout(300)

HOST = "hostile.test"
BASE = f"http://{HOST}"
LEAK = "http://leaked.example/secret-page"  # what the secret server's "sitemap" lists

# The spellings of 127.0.0.1 a URL parser or resolver accepts (no_proxy sends them straight out).
LOOPBACK_SPELLINGS = ["127.0.0.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "127.1",
                      "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "127.0.0.1.", "[::1]"]
# Internal targets reached through the proxy if anything asked for them (host -> reason in the error).
PROXIED_TARGETS = {
    "10.0.0.5": "private", "192.168.1.1": "private", "169.254.169.254": "link-local",
    "100.64.0.1": "shared", "metadata.google.internal": "internal name", "kubernetes.default.svc": "internal name",
    "printer.local": "internal name", "foo.localhost": "internal name", "localhost.localdomain": "internal name",
}


class SecretServer:
    """A loopback listener that counts every connection and answers any HTTP request with a sitemap."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        body = urlset(LEAK)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with contextlib.suppress(OSError), conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nConnection: close\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def secret() -> Iterator[SecretServer]:
    server = SecretServer()
    yield server
    server.close()


def hostile_site(secret_port: int) -> tuple[Site, dict[str, str]]:
    """The site, and every location it lists that must be refused -> a word its error must contain."""
    refused: dict[str, str] = {}

    def loopback(spelling: str, path: str) -> str:
        url = f"http://{spelling}:{secret_port}{path}"
        refused[url] = "loopback"
        return url

    robots_lines = [f"Sitemap: {loopback(s, f'/robots-{i}.xml')}" for i, s in enumerate(LOOPBACK_SPELLINGS)]
    localhost = f"http://localhost:{secret_port}/robots-localhost.xml"
    refused[localhost] = "internal name"
    robots_lines.append(f"Sitemap: {localhost}")
    for host, why in PROXIED_TARGETS.items():
        url = f"http://{host}/robots.xml"
        refused[url] = why
        robots_lines.append(f"Sitemap: {url}")
    for url, why in {"file:///etc/passwd": "scheme file", f"ftp://127.0.0.1:{secret_port}/sitemap.xml": "scheme ftp",
                     "s3://bucket/sitemap.xml": "scheme s3", "data:,<urlset/>": "scheme data"}.items():
        refused[url] = why
        robots_lines.append(f"Sitemap: {url}")
    robots_lines.append(f"Sitemap: {BASE}/index.xml")

    index_children = [loopback("0x7f.1", "/child.xml"), "http://192.168.1.1/child.xml",
                      "http://169.254.169.254/latest/meta-data/sitemap.xml", "http://kubernetes.default.svc/child.xml",
                      f"{BASE}/pages.xml", f"{BASE}/go-loopback.xml", f"{BASE}/go-metadata.xml",
                      f"{BASE}/go-internal-name.xml", f"{BASE}/go-file.xml", f"{BASE}/refresh.xml"]
    refused.update({"http://192.168.1.1/child.xml": "private",
                    "http://169.254.169.254/latest/meta-data/sitemap.xml": "link-local",
                    "http://kubernetes.default.svc/child.xml": "internal name",
                    f"{BASE}/go-loopback.xml": "loopback", f"{BASE}/go-metadata.xml": "link-local",
                    f"{BASE}/go-internal-name.xml": "internal name", f"{BASE}/refresh.xml": "private"})
    home_head = (f'<link rel="sitemap" href="{loopback("0x7f000001", "/home-link.xml")}">'
                 '<link rel="sitemap" href="file:///etc/hostname">')
    refused["file:///etc/hostname"] = "scheme file"
    home_body = (f'<a href="{loopback("2130706433", "/home-sitemap.xml")}">sitemap</a>'
                 '<a href="http://10.0.0.5/a-sitemap.xml">sitemap</a>')
    refused["http://10.0.0.5/a-sitemap.xml"] = "private"
    site = Site({
        "/": Resp(body=home_page("Hostile", "points inside", "en", home_head, home_body), headers=HTML),
        "/robots.txt": Resp(body=robots_txt("User-agent: *", *robots_lines), headers=TEXT),
        "/index.xml": Resp(body=sitemap_index(*index_children), headers=XML),
        "/pages.xml": Resp(body=urlset(f"{BASE}/page-1", f"{BASE}/page-2"), headers=XML),
        "/go-loopback.xml": redirect(f"http://127.0.0.1:{secret_port}/redirected.xml", 301),
        "/go-metadata.xml": redirect("http://169.254.169.254/latest/meta-data/", 302),
        "/go-internal-name.xml": redirect("http://metadata.google.internal/computeMetadata/v1/", 307),
        "/go-file.xml": redirect("file:///etc/passwd", 301),
        "/refresh.xml": Resp(body=b'<html><head><meta http-equiv="refresh" content="0; url=http://10.0.0.5/r.xml">'
                                  b'</head><body></body></html>', headers=HTML),
    })
    return site, refused


@pytest.fixture
def hostile(secret: SecretServer) -> Iterator[tuple[SiteServer, dict[str, str]]]:
    site, refused = hostile_site(secret.port)
    sites = {HOST: site}
    for host in PROXIED_TARGETS:  # answers (and logs) anything asked of them through the proxy
        sites[host] = Site({"/robots.xml": Resp(body=urlset(LEAK))})
    with SiteServer(sites) as server:
        yield server, refused


def direct_loopback_env() -> dict[str, str]:
    hosts = [s.strip("[]") for s in LOOPBACK_SPELLINGS] + ["localhost", "0x7f.1"]
    value = ",".join(hosts)
    return {"no_proxy": value, "NO_PROXY": value}


def value(v: object) -> object:
    return getattr(v, "value", v)


def rows(db_url: str) -> tuple[list[Job], list[Sitemap], list[Page], str]:
    engine = make_engine(db_url)
    try:
        with Session(engine, expire_on_commit=False) as s:
            jobs = list(s.scalars(select(Job)))
            sitemaps = list(s.scalars(select(Sitemap)))
            pages = list(s.scalars(select(Page)))
            s.expunge_all()
        text = []
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                text.extend(repr(tuple(r)) for r in conn.execute(table.select()))
        return jobs, sitemaps, pages, "\n".join(text)
    finally:
        engine.dispose()


def test_hostile_site_gets_nothing_fetched_and_every_refusal_recorded(hostile, secret, db_url):
    server, refused = hostile
    result = run_scrapy_crawl(server, ["-a", f"domain={HOST}"], db_url, direct_loopback_env())
    assert result.returncode == 0, result.summary()

    assert secret.connections == 0, "a loopback spelling reached the secret server"
    asked = {host for host, _ in server.requests.snapshot()}
    assert asked == {HOST}, f"internal targets were asked for through the proxy: {asked - {HOST}}"

    jobs, sitemaps, pages, stored = rows(db_url)
    assert [value(j.status) for j in jobs] == ["complete"]
    assert {p.url for p in pages} == {f"{BASE}/page-1", f"{BASE}/page-2"}
    assert LEAK not in stored and "root:" not in stored

    by_url = {s.url: s for s in sitemaps}
    missing = [url for url in refused if url not in by_url]
    assert not missing, f"refused locations without a sitemap row: {missing}"
    for url, why in refused.items():
        row = by_url[url]
        error = row.error or ""
        assert error.startswith("refused: "), (url, error)
        assert why.split()[-1] in error, (url, error)
        assert "\n" not in error and row.http_status is None, (url, error)
    # a redirect to file: is not followed (RedirectMiddleware leaves such a 301 alone): an error, nothing read
    assert by_url[f"{BASE}/go-file.xml"].error and not by_url[f"{BASE}/go-file.xml"].url_count
    assert by_url[f"{BASE}/pages.xml"].error is None and by_url[f"{BASE}/pages.xml"].url_count == 2
    assert "refused: " in result.stderr  # one log line per refusal


def test_control_without_the_guard_the_same_site_reaches_the_secret_server(hostile, secret, sqlite_url):
    """The set-up above can fail: switch the guard and its resolver off and the leaks happen."""
    server, _ = hostile
    off = ["-s", "DOWNLOADER_MIDDLEWARES={}", "-s", "TWISTED_DNS_RESOLVER=scrapy.resolver.CachingThreadedResolver",
           "-s", 'DOWNLOAD_HANDLERS={"s3": null}', "-a", f"domain={HOST}"]
    result = run_scrapy_crawl(server, off, sqlite_url, direct_loopback_env())
    assert result.returncode == 0, result.summary()
    assert secret.connections >= 5
    assert {host for host, _ in server.requests.snapshot()} > {HOST}
    _, _, pages, _ = rows(sqlite_url)
    assert LEAK in {p.url for p in pages}


# --------------------------------------------------------------------------------------------------
# A loopback target given on the command line
# --------------------------------------------------------------------------------------------------
NO_PROXY = {name: "" for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")}


@pytest.fixture
def local_site() -> Iterator[SiteServer]:
    """A site served directly at 127.0.0.1:PORT (no proxy), as someone crawling their own machine."""
    with SiteServer({}) as server:
        base = f"http://127.0.0.1:{server.port}"
        server.sites["127.0.0.1"] = Site({
            "/": Resp(body=home_page("Local", "a local site", "en"), headers=HTML),
            "/robots.txt": Resp(body=robots_txt("User-agent: *", f"Sitemap: {base}/sitemap.xml"), headers=TEXT),
            "/sitemap.xml": Resp(body=urlset(f"{base}/a", f"{base}/b"), headers=XML),
        })
        yield server


def test_loopback_domain_is_refused_with_one_reason(local_site, sqlite_url):
    job_id = str(uuid.uuid4())
    result = run_scrapy_crawl(local_site, ["-a", f"domain=127.0.0.1:{local_site.port}", "-a", f"job_id={job_id}"],
                              sqlite_url, NO_PROXY)
    assert len(local_site.requests) == 0
    jobs, sitemaps, pages, _ = rows(sqlite_url)
    assert len(jobs) == 1 and (value(jobs[0].status), value(jobs[0].outcome)) == ("failed", "refused"), result.summary()
    assert jobs[0].error == f"could not reach 127.0.0.1:{local_site.port}: refused: 127.0.0.1 is a loopback address"
    assert not sitemaps and not pages


@pytest.mark.parametrize("how", ["env", "setting"])
def test_allow_private_crawls_a_loopback_domain(local_site, sqlite_url, how):
    env = {**NO_PROXY, "SCRAPERSKY_ALLOW_PRIVATE": "1"} if how == "env" else NO_PROXY
    args = ["-a", f"domain=http://127.0.0.1:{local_site.port}"]
    if how == "setting":
        args += ["-s", "SCRAPERSKY_ALLOW_PRIVATE=1"]
    result = run_scrapy_crawl(local_site, args, sqlite_url, env)
    assert result.returncode == 0, result.summary()
    jobs, _, pages, _ = rows(sqlite_url)
    assert value(jobs[0].status) == "complete", result.summary()
    base = f"http://127.0.0.1:{local_site.port}"
    assert {p.url for p in pages} == {f"{base}/a", f"{base}/b"}
    assert "SCRAPERSKY_ALLOW_PRIVATE is on" in result.stderr


def test_allow_private_still_refuses_other_schemes(secret, sqlite_url):
    with SiteServer({}) as server:
        base = f"http://127.0.0.1:{server.port}"
        server.sites["127.0.0.1"] = Site({
            "/": Resp(body=home_page("Local", "a local site", "en"), headers=HTML),
            "/robots.txt": Resp(body=robots_txt("Sitemap: file:///etc/passwd",
                                                f"Sitemap: ftp://127.0.0.1:{secret.port}/s.xml",
                                                f"Sitemap: {base}/sitemap.xml"), headers=TEXT),
            "/sitemap.xml": Resp(body=urlset(f"{base}/a"), headers=XML),
        })
        result = run_scrapy_crawl(server, ["-a", f"domain={base}"], sqlite_url,
                                  {**NO_PROXY, "SCRAPERSKY_ALLOW_PRIVATE": "1"})
    assert result.returncode == 0, result.summary()
    assert secret.connections == 0
    _, sitemaps, _, stored = rows(sqlite_url)
    errors = {s.url: s.error for s in sitemaps}
    assert errors["file:///etc/passwd"] == "refused: the scheme file: is not http or https"
    assert errors[f"ftp://127.0.0.1:{secret.port}/s.xml"] == "refused: the scheme ftp: is not http or https"
    assert "root:" not in stored


# --------------------------------------------------------------------------------------------------
# Names that resolve inside, and DNS rebinding (a crawl process whose DNS answers are scripted)
# --------------------------------------------------------------------------------------------------
FAKE_DNS = r'''
import json, socket, sys
ANSWERS = json.loads(sys.argv[1])  # name -> list of answers, one per lookup (the last one repeats)
LOOKUPS = {}
def gethostbyname(name):
    n = LOOKUPS[name] = LOOKUPS.get(name, 0) + 1
    if name not in ANSWERS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return ANSWERS[name][min(n, len(ANSWERS[name])) - 1]
socket.gethostbyname = gethostbyname
'''

CRAWL_WITH_FAKE_DNS = FAKE_DNS + r'''
from scrapy.cmdline import execute
execute(["scrapy", "crawl", "sitemap", *sys.argv[2:]])
'''


def test_name_resolving_to_loopback_is_refused_before_connecting(secret, sqlite_url):
    with SiteServer({}) as server:
        answers = {"intranet.example": ["127.0.0.1"], "files.example": ["10.1.2.3"]}
        cmd = [sys.executable, "-c", CRAWL_WITH_FAKE_DNS, json.dumps(answers),
               "-a", f"domains=http://intranet.example:{secret.port},http://files.example:{secret.port}"]
        env = crawl_env(server, sqlite_url, NO_PROXY)
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert secret.connections == 0, proc.stderr[-3000:]
    jobs, _, _, _ = rows(sqlite_url)
    errors = {j.domain: j.error for j in jobs}
    assert errors == {
        f"intranet.example:{secret.port}":
            f"could not reach intranet.example:{secret.port}: refused: intranet.example resolves to 127.0.0.1, "
            "a loopback address",
        f"files.example:{secret.port}":
            f"could not reach files.example:{secret.port}: refused: files.example resolves to 10.1.2.3, "
            "a private address",
    }, proc.stderr[-3000:]


RESOLVER_SCRIPT = FAKE_DNS + r'''
from twisted.internet import asyncioreactor
asyncioreactor.install()
from twisted.internet import defer, reactor, task
from twisted.internet.address import IPv4Address
from scrapy.resolver import dnscache
from scrapersky_crawler.guard import GuardedResolver, RefusedAddress

def connect_addresses(name):
    """What HostnameEndpoint (Twisted's HTTP client) would connect to for `name`."""
    d, found = defer.Deferred(), []
    class Receiver:
        def resolutionBegan(self, resolution): pass
        def addressResolved(self, address): found.append(address.host)
        def resolutionComplete(self): d.callback(found)
    reactor.nameResolver.resolveHostName(Receiver(), name, 80)
    return d

@defer.inlineCallbacks
def main(_):
    resolver = GuardedResolver(reactor, 10000, 15.0)
    resolver.install_on_reactor()
    out = {"checked": (yield resolver.checked("rebind.example"))}  # the guard's check: a public answer
    out["connect"] = yield connect_addresses("rebind.example")        # the DNS answer is now 127.0.0.1
    out["simple"] = yield reactor.resolver.getHostByName("rebind.example")
    out["lookups"] = LOOKUPS["rebind.example"]
    dnscache.clear()  # the cached answer expires: the next one is checked again
    out["connect_after_expiry"] = yield connect_addresses("rebind.example")
    try:
        yield resolver.checked("rebind.example")
    except RefusedAddress as exc:
        out["refused"] = exc.reason
    out["lookups_after_expiry"] = LOOKUPS["rebind.example"]
    print(json.dumps(out))

task.react(main)
'''


def test_resolver_connects_to_the_address_it_checked_dns_rebinding():
    answers = {"rebind.example": ["93.184.216.34", "127.0.0.1"]}
    proc = subprocess.run([sys.executable, "-c", RESOLVER_SCRIPT, json.dumps(answers)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {
        "checked": "93.184.216.34",
        "connect": ["93.184.216.34"],  # the checked address, although the DNS server now says 127.0.0.1
        "simple": "93.184.216.34",
        "lookups": 1,  # resolved once per host
        "connect_after_expiry": [],  # a new answer is checked before anyone connects: refused
        "refused": "rebind.example resolves to 127.0.0.1, a loopback address",
        "lookups_after_expiry": 2,
    }
