"""Fixture web sites, one per case of REFERENCE.md §2 (items 1–13), each with what a correct crawl records.

Every `Case` holds the `Site` the loopback server plays (tests/sites.py) and the expectations:
`expected_urls` (the EXACT set of page URLs stored for the domain, plus `optional_urls` a crawler may or
may not store), `sitemaps` (url -> ExpectedSitemap: the sitemap rows that must exist, with type,
discovered_by, error or not; plus `optional_sitemaps` that may exist), `attrs` (per-URL attributes that
must be stored), `status` of the job, `fetched_once` (paths requested at most once per crawl), and the
home page's title/description/language.

Contract choices made here (to reconcile with the spider's author):
- Sites are crawled from a bare host; https is refused by the proxy, so every URL here is http://.
- A sitemap row's `url` is the URL as it was listed (robots line, index `<loc>`, home page link, or the
  well-known path), not the final URL after redirects; its children get that URL as `parent_url`.
  A redirect that leads back to an ancestor, or a redirect loop, never yields duplicate pages; the row
  of a sitemap that only redirects to an ancestor is optional; a redirect loop listed in robots.txt is
  recorded with an error (it is a failed sitemap listed in robots).
- Well-known paths are all probed (at least when robots.txt lists no sitemap: robots 404, 5xx or no
  Sitemap lines; the spider probes them always), and every one found is recorded (`well_known`);
  those that 404 leave no row. To keep the expectations independent of discovery order, sites that
  list sitemaps in robots.txt serve nothing at well-known paths (nor /rss.xml, /atom.xml, /sitemap)
  and link no sitemap from the home page, and home-page links never point at well-known paths.
- Failed sitemaps (404, 5xx, HTML soft-404, empty or whitespace-only body, redirect loop) listed in
  robots/index/home page are rows with `error` set; their `type` is not checked. An empty but valid
  `<urlset/>` is not an error.
- Page URLs are stored as the site wrote them after XML decoding and whitespace stripping: entities and
  CDATA decoded (`&amp;` -> `&`), no percent-encoding of non-ASCII characters, no other normalisation.
  Text-sitemap lines are stripped; lines that are not http(s) URLs are skipped.
- Duplicates: one page row per distinct URL per scan. job.urls_found counts distinct page URLs seen
  in the scan; job.new_urls those the domain's previous complete scan did not see; job.removed_urls
  those that scan saw and this one did not. job.sitemaps_found counts the sitemap rows of the scan that are
  usable sitemaps (a type was recognised, even if the file was cut or capped and `error` notes it);
  job.sitemaps_failed the rows that yielded no sitemap (type None, `error` set). Together: every row.
- lastmod: W3C datetime; date-only (and YYYY, YYYY-MM) values mean midnight UTC of the first day;
  unparseable dates are None. changefreq outside the 7 protocol values is None (surrounding whitespace
  stripped). priority outside 0.0–1.0 or not a number is None. The URL is kept in every case.
- Extensions: images [{"loc","title","caption"}], news {"title","publication","language",
  "publication_date"} (publication = the publication's name; date as written), videos [{"title",
  "thumbnail_loc","content_loc","player_loc","description"}], alternates [{"hreflang","href"}];
  keys absent from the file may be missing or None; an alternate without href is dropped; a page
  without an extension may store None or [].
- RSS/Atom: item/entry links are pages; the channel/feed's own link (the home page) is optional.
- Decompression bombs: the crawler caps decompressed size (far below 200 MB) and keeps the complete
  entries before the cap; entries after the padding are never stored.
- DOCTYPE entities are never expanded and external entities never resolved; a crawler may refuse such
  a document outright (hence those URLs are optional), but nothing from /etc/passwd and no expanded
  "lollol..." text is ever stored.
- A site with no sitemap anywhere completes with zero pages; an unreachable host ends `failed` with a
  one-line error.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import html
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.sites import Resp, Site, redirect

NS09 = "http://www.sitemaps.org/schemas/sitemap/0.9"
NS084 = "http://www.google.com/schemas/sitemap/0.84"
NS_IMAGE = "http://www.google.com/schemas/sitemap-image/1.1"
NS_NEWS = "http://www.google.com/schemas/sitemap-news/0.9"
NS_VIDEO = "http://www.google.com/schemas/sitemap-video/1.1"
NS_XHTML = "http://www.w3.org/1999/xhtml"
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'

HTML = {"Content-Type": "text/html; charset=utf-8"}
XML = {"Content-Type": "application/xml"}
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
GZIP = {"Content-Type": "application/x-gzip"}

BOMB_PADDING = 250 * 1024 * 1024  # bytes of whitespace inside the gzip bombs (> 200 MB decompressed)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


# --------------------------------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpectedSitemap:
    """A sitemap row that must exist. `None` in a field means "not checked"."""

    type: str | None
    discovered_by: str
    error: bool | None = False
    gzipped: bool | None = None
    url_count: int | None = None
    parent_url: str | None = None


@dataclass
class Case:
    host: str
    about: str
    site: Site = field(default_factory=Site)
    expected_urls: set[str] = field(default_factory=set)
    optional_urls: set[str] = field(default_factory=set)
    sitemaps: dict[str, ExpectedSitemap] = field(default_factory=dict)
    optional_sitemaps: set[str] = field(default_factory=set)
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "complete"
    fetched_once: set[str] = field(default_factory=set)  # paths fetched at most once per crawl
    forbidden_text: tuple[str, ...] = ()  # must appear nowhere in stored data
    hostile: bool = False  # crawled on its own (memory is measured), not in the catalogue batch
    title: str | None = None
    description: str | None = None
    language: str | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}"

    def __repr__(self) -> str:  # short ids in pytest output
        return f"Case({self.host})"


# --------------------------------------------------------------------------------------------------
# Document makers
# --------------------------------------------------------------------------------------------------
def esc(text: str) -> str:
    return html.escape(text, quote=True)


def url_entry(loc: str, **children: str) -> str:
    """`<url>` with an escaped `<loc>` and simple children (lastmod=..., changefreq=..., priority=...)."""
    inner = "".join(f"<{k}>{esc(v)}</{k}>" for k, v in children.items())
    return f"<url><loc>{esc(loc)}</loc>{inner}</url>"


def urlset(*entries: str, ns: str | None = NS09, extra_ns: str = "", decl: bool = True) -> bytes:
    """A `<urlset>`; each entry is a loc (escaped for you) or raw XML starting with '<'."""
    body = "\n".join(e if e.lstrip().startswith("<") else url_entry(e) for e in entries)
    xmlns = f' xmlns="{ns}"' if ns else ""
    return f'{XML_DECL if decl else ""}<urlset{xmlns}{extra_ns}>\n{body}\n</urlset>\n'.encode()


def sitemap_index(*locs: str, ns: str | None = NS09) -> bytes:
    xmlns = f' xmlns="{ns}"' if ns else ""
    body = "\n".join(f"<sitemap><loc>{esc(loc)}</loc><lastmod>2024-01-01</lastmod></sitemap>" for loc in locs)
    return f"{XML_DECL}<sitemapindex{xmlns}>\n{body}\n</sitemapindex>\n".encode()


def robots_txt(*lines: str, crlf: bool = False, bom: bool = False) -> bytes:
    text = ("\r\n" if crlf else "\n").join(lines) + ("\r\n" if crlf else "\n")
    return ("\ufeff" if bom else "").encode() + text.encode()


def home_page(title: str, description: str, language: str, head: str = "", body: str = "") -> bytes:
    return (
        f'<!DOCTYPE html>\n<html lang="{language}"><head><meta charset="utf-8"><title>{esc(title)}</title>\n'
        f'<meta name="description" content="{esc(description)}">\n{head}</head>\n'
        f'<body><h1>{esc(title)}</h1>\n{body}\n<a href="/about">About us</a></body></html>\n'
    ).encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


ROBOTS_NO_SITEMAP = robots_txt("User-agent: *", "Disallow: /private/", "Allow: /private/ok.html")


# --------------------------------------------------------------------------------------------------
# Builder
# --------------------------------------------------------------------------------------------------
class SiteBuilder:
    """Assemble a Case: serve files and record, at the same time, what the crawler must find."""

    def __init__(self, host: str, about: str, *, title: str | None = None, description: str | None = None,
                 language: str = "en", home_head: str = "", home_body: str = "", robots: bytes | None = None,
                 robots_status: int = 200):
        title = title or f"{host.split('.')[0].replace('-', ' ').title()} Test Site"
        description = description or f"Fixture site {host}: {about}"
        self.case = Case(host=host, about=about, title=title, description=description, language=language)
        self.serve("/", home_page(title, description, language, home_head, home_body), headers=HTML)
        if robots is not None or robots_status != 200:
            self.serve("/robots.txt", robots or b"", status=robots_status, headers=TEXT)

    @property
    def base(self) -> str:
        return self.case.base

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, body: Any = b"", *, status: int = 200, headers: dict[str, str] | None = None,
              gzip_encoding: bool = False) -> str:
        self.case.site[path] = Resp(status=status, body=body, headers=dict(XML if headers is None else headers),
                                    gzip=gzip_encoding)
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 301) -> str:
        self.case.site[path] = redirect(location, status)
        return self.url(path)

    def robots_listing(self, *paths: str, **kw: Any) -> None:
        self.serve("/robots.txt", robots_txt("User-agent: *", "Disallow: /private/", "",
                                             *(f"Sitemap: {self.url(p)}" for p in paths), **kw), headers=TEXT)

    def expect_sitemap(self, url_or_path: str, type: str | None, by: str, **kw: Any) -> str:  # noqa: A002
        url = url_or_path if "://" in url_or_path else self.url(url_or_path)
        self.case.sitemaps[url] = ExpectedSitemap(type, by, **kw)
        return url

    def sitemap(self, path: str, body: Any, type: str | None, by: str, *, status: int = 200,  # noqa: A002
                headers: dict[str, str] | None = None, gzip_encoding: bool = False, **kw: Any) -> str:
        self.serve(path, body, status=status, headers=headers, gzip_encoding=gzip_encoding)
        return self.expect_sitemap(path, type, by, **kw)

    def pages_sitemap(self, path: str, slugs: Iterable[str], by: str, *, gzipped: bool = False,
                      parent: str | None = None, headers: dict[str, str] | None = None) -> str:
        """A plain urlset of `base/slug` pages, all expected."""
        urls = [self.url("/" + s.lstrip("/")) for s in slugs]
        body = urlset(*urls)
        self.expect(*urls)
        return self.sitemap(path, gz(body) if gzipped else body, "urlset", by, gzipped=gzipped,
                            url_count=len(set(urls)), parent_url=parent,
                            headers=headers if headers is not None else (GZIP if gzipped else XML))

    def index(self, path: str, child_paths: Iterable[str], by: str, *, parent: str | None = None,
              ns: str = NS09, **kw: Any) -> str:
        return self.sitemap(path, sitemap_index(*(self.url(p) for p in child_paths), ns=ns), "index", by,
                            parent_url=parent, **kw)

    def expect(self, *urls: str, **attrs: Any) -> None:
        for url in urls:
            self.case.expected_urls.add(url)
            if attrs:
                self.case.attrs.setdefault(url, {}).update(attrs)

    def optional(self, *urls: str) -> None:
        self.case.optional_urls.update(urls)

    def build(self, **overrides: Any) -> Case:
        for key, value in overrides.items():
            setattr(self.case, key, value)
        return self.case


CATALOGUE: dict[str, Case] = {}


def _case(fn):  # noqa: ANN001, ANN202
    case = fn()
    assert case.host not in CATALOGUE, case.host
    CATALOGUE[case.host] = case
    return fn


# --------------------------------------------------------------------------------------------------
# 1. robots.txt
# --------------------------------------------------------------------------------------------------
@_case
def _robots_quirks() -> Case:
    b = SiteBuilder("robots-quirks.test", "robots.txt Sitemap lines in every odd form, BOM first, CRLF")
    b.serve("/robots.txt", robots_txt(
        f"Sitemap: {b.url('/rq/bom-first-line.xml')}",
        "User-agent: *",
        "Disallow: /private/",
        "",
        f"sitemap: {b.url('/rq/lowercase.xml')}",
        f"SITEMAP:{b.url('/rq/uppercase-nospace.xml')}",
        f"Site-map: {b.url('/rq/site-map.xml')}",
        f"   Sitemap   :    {b.url('/rq/odd-spacing.xml')}   ",
        f"Sitemap:\t{b.url('/rq/tab.xml')}",
        f"Sitemap: {b.url('/rq/comment.xml')} # the main one",
        "Sitemap: /rq/relative.xml",
        "# Sitemap: http://robots-quirks.test/rq/commented-out.xml",
        "",
        "User-agent: Googlebot",
        "Disallow: /nogoogle/",
        f"Sitemap: {b.url('/rq/in-group.xml')}",
        crlf=True, bom=True), headers=TEXT)
    for name in ("bom-first-line", "lowercase", "uppercase-nospace", "site-map", "odd-spacing", "tab",
                 "comment", "relative", "in-group"):
        b.pages_sitemap(f"/rq/{name}.xml", [f"from-{name}"], "robots")
    b.serve("/rq/commented-out.xml", urlset(b.url("/from-commented-out")))  # must not be found
    return b.build()


@_case
def _robots_500() -> Case:
    b = SiteBuilder("robots-500.test", "robots.txt answers 500; /sitemap_index.xml found by probing",
                    robots=b"<h1>Internal Server Error</h1>", robots_status=500)
    idx = b.index("/sitemap_index.xml", ["/r500/pages.xml"], "well_known")
    b.pages_sitemap("/r500/pages.xml", ["a", "b", "c"], "index", parent=idx)
    return b.build()


@_case
def _robots_nolines() -> Case:
    b = SiteBuilder("robots-nolines.test", "robots.txt without Sitemap lines; WordPress /wp-sitemap.xml",
                    robots=robots_txt("User-agent: *", "Disallow: /wp-admin/", "Allow: /wp-admin/admin-ajax.php"))
    idx = b.index("/wp-sitemap.xml", ["/wp-sitemap-posts-post-1.xml", "/wp-sitemap-taxonomies-category-1.xml"],
                  "well_known")
    b.pages_sitemap("/wp-sitemap-posts-post-1.xml", ["hello-world/", "second-post/"], "index", parent=idx)
    b.pages_sitemap("/wp-sitemap-taxonomies-category-1.xml", ["category/news/"], "index", parent=idx)
    return b.build()


# --------------------------------------------------------------------------------------------------
# 2. Well-known paths, home-page links, one fetch per sitemap
# --------------------------------------------------------------------------------------------------
@_case
def _well_known() -> Case:
    b = SiteBuilder("well-known.test", "robots.txt 404; /sitemap.xml, /sitemap_index.xml and /sitemap.txt all exist")
    b.pages_sitemap("/sitemap.xml", ["wk-1", "wk-2"], "well_known")
    idx = b.index("/sitemap_index.xml", ["/wk/child.xml"], "well_known")
    b.pages_sitemap("/wk/child.xml", ["wk-child"], "index", parent=idx)
    urls = [b.url("/wk-text-1"), b.url("/wk-text-2")]
    b.sitemap("/sitemap.txt", ("\n".join(urls) + "\n").encode(), "text", "well_known", headers=TEXT, url_count=2)
    b.expect(*urls)
    return b.build()


@_case
def _home_links() -> Case:
    b = SiteBuilder("home-links.test", "sitemaps linked from the home page only (<link rel=sitemap>, <a href>)",
                    robots=ROBOTS_NO_SITEMAP,
                    home_head='<link rel="sitemap" type="application/xml" title="Sitemap" href="/maps/main.xml">',
                    home_body='<p><a href="http://home-links.test/feeds/sitemap.xml">Our sitemap</a> '
                              '<a href="/contact">Contact</a></p>')
    b.pages_sitemap("/maps/main.xml", ["from-link-rel"], "home_page")
    b.pages_sitemap("/feeds/sitemap.xml", ["from-a-href"], "home_page")
    return b.build()


@_case
def _no_sitemaps() -> Case:
    b = SiteBuilder("no-sitemaps.test", "no sitemap anywhere: complete with zero pages", robots=ROBOTS_NO_SITEMAP)
    return b.build()


@_case
def _index_shared() -> Case:
    b = SiteBuilder("index-shared.test", "one sitemap listed by two indexes is fetched once")
    b.robots_listing("/index-a.xml", "/index-b.xml")
    a = b.index("/index-a.xml", ["/shared.xml", "/a-only.xml"], "robots")
    bb = b.index("/index-b.xml", ["/shared.xml", "/b-only.xml"], "robots")
    b.pages_sitemap("/shared.xml", ["shared-1", "shared-2"], "index")
    b.pages_sitemap("/a-only.xml", ["a-1"], "index", parent=a)
    b.pages_sitemap("/b-only.xml", ["b-1"], "index", parent=bb)
    return b.build(fetched_once={"/shared.xml", "/index-a.xml", "/index-b.xml", "/a-only.xml", "/b-only.xml"})


# --------------------------------------------------------------------------------------------------
# 3. Redirects and cycles
# --------------------------------------------------------------------------------------------------
@_case
def _redirects() -> Case:
    b = SiteBuilder("redirects.test", "redirected sitemaps, a redirect back to an ancestor, a redirect loop")
    b.robots_listing("/old-index.xml", "/loop-1.xml")
    b.redirect("/old-index.xml", b.url("/sitemaps/index.xml"), 301)
    b.serve("/sitemaps/index.xml", sitemap_index(b.url("/sitemaps/a.xml"), b.url("/go/b.xml"), b.url("/go/back.xml")))
    idx = b.expect_sitemap("/old-index.xml", "index", "robots")
    b.pages_sitemap("/sitemaps/a.xml", ["r/a1", "r/a2"], "index", parent=idx)
    b.redirect("/go/b.xml", "/sitemaps/b.xml", 302)  # relative Location
    b.serve("/sitemaps/b.xml", urlset(b.url("/r/b1")))
    b.expect_sitemap("/go/b.xml", "urlset", "index", parent_url=idx)
    b.expect(b.url("/r/b1"))
    b.redirect("/go/back.xml", b.url("/old-index.xml"), 301)  # back to the ancestor
    b.case.optional_sitemaps.add(b.url("/go/back.xml"))
    b.redirect("/loop-1.xml", b.url("/loop-2.xml"), 302)
    b.redirect("/loop-2.xml", b.url("/loop-1.xml"), 302)
    b.expect_sitemap("/loop-1.xml", None, "robots", error=True)
    b.case.optional_sitemaps.add(b.url("/loop-2.xml"))
    return b.build()


@_case
def _cycles() -> Case:
    b = SiteBuilder("cycles.test", "index listing itself, a 3-index cycle, a link back to the root")
    b.robots_listing("/idx-root.xml")
    root = b.index("/idx-root.xml", ["/pages-1.xml", "/idx-self.xml", "/idx-loop-a.xml"], "robots")
    self_ = b.index("/idx-self.xml", ["/idx-self.xml", "/pages-2.xml"], "index", parent=root)
    la = b.index("/idx-loop-a.xml", ["/idx-loop-b.xml"], "index", parent=root)
    lb = b.index("/idx-loop-b.xml", ["/idx-loop-c.xml", "/pages-3.xml"], "index", parent=la)
    b.index("/idx-loop-c.xml", ["/idx-loop-a.xml", "/idx-root.xml", "/pages-1.xml"], "index", parent=lb)
    b.pages_sitemap("/pages-1.xml", ["p1-a", "p1-b"], "index", parent=root)
    b.pages_sitemap("/pages-2.xml", ["p2-a"], "index", parent=self_)
    b.pages_sitemap("/pages-3.xml", ["p3-a"], "index", parent=lb)
    return b.build(fetched_once={p for p in b.case.site if p.endswith(".xml")})


# --------------------------------------------------------------------------------------------------
# 4. gzip
# --------------------------------------------------------------------------------------------------
@_case
def _gzip_magic() -> Case:
    b = SiteBuilder("gzip-magic.test", "gzip by magic bytes, .gz holding plain XML, Content-Encoding, gzipped text")
    b.robots_listing("/gz/posts.xml", "/gz/plain.xml.gz", "/gz/ce.xml", "/gz/urls.txt.gz", "/gz/index.xml.gz")
    b.pages_sitemap("/gz/posts.xml", ["gz/magic-1", "gz/magic-2"], "robots", gzipped=True, headers=HTML)
    b.pages_sitemap("/gz/plain.xml.gz", ["gz/plain-1"], "robots", headers=GZIP)
    urls = [b.url("/gz/ce-1"), b.url("/gz/ce-2")]
    b.sitemap("/gz/ce.xml", urlset(*urls), "urlset", "robots", gzip_encoding=True)
    b.expect(*urls)
    urls = [b.url("/gz/text-1"), b.url("/gz/text-2")]
    b.sitemap("/gz/urls.txt.gz", gz(("\n".join(urls) + "\n").encode()), "text", "robots", headers=GZIP, gzipped=True)
    b.expect(*urls)
    idx = b.sitemap("/gz/index.xml.gz", gz(sitemap_index(b.url("/gz/child.xml.gz"))), "index", "robots",
                    headers=GZIP, gzipped=True)
    b.pages_sitemap("/gz/child.xml.gz", ["gz/child-1"], "index", gzipped=True, parent=idx)
    return b.build()


@functools.lru_cache(maxsize=4)
def gzip_bomb(host: str, prefix: str, padding: int = BOMB_PADDING) -> bytes:
    """~250 KB of gzip holding 3 <url> entries, `padding` bytes of whitespace, then one more entry."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = urlset(*(f"http://{host}/{prefix}{i}" for i in (1, 2, 3))).rsplit(b"</urlset>", 1)[0]
    out = [comp.compress(head)]
    chunk = b" " * (1 << 20)
    for _ in range(padding // len(chunk)):
        out.append(comp.compress(chunk))
    out.append(comp.compress(f"<url><loc>http://{host}/{prefix}after-bomb</loc></url></urlset>\n".encode()))
    out.append(comp.flush())
    return b"".join(out)


@_case
def _gzip_bomb() -> Case:
    b = SiteBuilder("gzip-bomb.test", "gzip bombs (file and Content-Encoding): capped, entries before the cap kept")
    b.robots_listing("/bomb.xml.gz", "/bomb-ce.xml", "/normal.xml")
    host = b.case.host
    b.sitemap("/bomb.xml.gz", lambda: gzip_bomb(host, "b"), "urlset", "robots", error=None, gzipped=True,
              headers=GZIP)
    b.expect(*(b.url(f"/b{i}") for i in (1, 2, 3)))
    b.sitemap("/bomb-ce.xml", lambda: gzip_bomb(host, "cb"), None, "robots", error=None,
              headers={"Content-Type": "application/xml", "Content-Encoding": "gzip"})
    b.optional(*(b.url(f"/cb{i}") for i in (1, 2, 3)))
    b.pages_sitemap("/normal.xml", ["n1", "n2"], "robots")
    return b.build(hostile=True)


# --------------------------------------------------------------------------------------------------
# 5–6. BOM and blank lines, Content-Type lies, soft 404, empty bodies
# --------------------------------------------------------------------------------------------------
@_case
def _bom_amp() -> Case:
    b = SiteBuilder("bom-amp.test", "BOM and blank lines before <?xml; &amp; in locs must stay '&'")
    b.robots_listing("/bom.xml", "/bom-noprolog.xml")
    body = ("\ufeff\n\n  \r\n" + XML_DECL + f'<urlset xmlns="{NS09}">\n'
            "<url><loc>http://bom-amp.test/search?a=1&amp;b=2</loc></url>\n"
            "<url><loc>http://bom-amp.test/tom-&amp;-jerry</loc></url>\n"
            "<url><loc>http://bom-amp.test/q?x=rock&amp;y=&#233;t&#xE9;&amp;z=&apos;1&apos;</loc></url>\n"
            "</urlset>\n").encode()
    b.sitemap("/bom.xml", body, "urlset", "robots", url_count=3)
    b.expect("http://bom-amp.test/search?a=1&b=2", "http://bom-amp.test/tom-&-jerry",
             "http://bom-amp.test/q?x=rock&y=été&z='1'")
    body = ("\ufeff\r\n\r\n" + f'<urlset xmlns="{NS09}"><url><loc>http://bom-amp.test/p?a=1&amp;b=2&amp;c=3</loc>'
            "</url></urlset>").encode()
    b.sitemap("/bom-noprolog.xml", body, "urlset", "robots", url_count=1)
    b.expect("http://bom-amp.test/p?a=1&b=2&c=3")
    return b.build()


@_case
def _content_type() -> Case:
    b = SiteBuilder("content-type.test", "XML sitemaps served as text/html, octet-stream, text/plain")
    b.robots_listing("/ct/as-html.xml", "/ct/as-octet", "/ct/as-plain.xml", "/ct/index-as-html")
    b.pages_sitemap("/ct/as-html.xml", ["ct/html-1"], "robots", headers=HTML)
    b.pages_sitemap("/ct/as-octet", ["ct/octet-1"], "robots", headers={"Content-Type": "application/octet-stream"})
    b.pages_sitemap("/ct/as-plain.xml", ["ct/plain-1"], "robots", headers=TEXT)
    idx = b.index("/ct/index-as-html", ["/ct/child"], "robots", headers=HTML)
    b.pages_sitemap("/ct/child", ["ct/child-1"], "index", parent=idx, headers={"Content-Type": "application/json"})
    return b.build()


@_case
def _unparseable_urls() -> Case:
    b = SiteBuilder("bad-urls.test", "locations urllib cannot parse (`//[x`, a bad port) in robots.txt, an index, "
                    "a urlset and home-page links, and a file: index child: each costs itself, not its file or "
                    "the scan; the listed ones are failed rows with their reason",
                    home_head='<link rel="sitemap" href="//[y/sitemap.xml"><link rel="icon" href="//[z">',
                    home_body='<a href="http://bad-urls.test:xx/sitemap.xml">Sitemap</a> '
                              '<a href="https://[bad/">us elsewhere</a>')
    b.serve("/robots.txt", robots_txt("User-agent: *", "Sitemap: //[x/robots-sitemap.xml",
                                      f"Sitemap: {b.url('/bu/index.xml')}", f"Sitemap: {b.url('/bu/pages.xml')}"),
            headers=TEXT)
    b.case.sitemaps["//[x/robots-sitemap.xml"] = ExpectedSitemap(None, "robots", error=True)  # kept as written
    idx = b.sitemap("/bu/index.xml", sitemap_index("http://[x/s.xml", "file:///etc/passwd", b.url("/bu/child.xml")),
                    "index", "robots", url_count=3)
    b.expect_sitemap("http://[x/s.xml", None, "index", error=True, parent_url=idx)
    b.expect_sitemap("file:///etc/passwd", None, "index", error=True, parent_url=idx)
    b.pages_sitemap("/bu/child.xml", ["bu/child-1"], "index", parent=idx)
    good = [b.url("/bu/good-1"), b.url("/bu/good-2")]
    b.sitemap("/bu/pages.xml", urlset(good[0], "<url><loc>//[x</loc></url>", good[1]), "urlset", "robots",
              url_count=2)
    b.expect(*good)
    return b.build(status="complete")


SOFT_404 = (b"<!DOCTYPE html><html><head><title>Page not found</title></head><body>"
            b"<h1>Oops! That page can't be found.</h1><p>Try the <a href='/'>home page</a>.</p></body></html>")


@_case
def _bad_bodies() -> Case:
    b = SiteBuilder("bad-bodies.test", "soft-404 HTML, empty and blank bodies, 404/500 sitemaps, empty <urlset/>")
    b.robots_listing("/bb/soft-404.xml", "/bb/empty.xml", "/bb/blank.xml", "/bb/missing.xml",
                     "/bb/server-error.xml", "/bb/empty-urlset.xml", "/bb/index.xml", "/bb/good.xml")
    b.sitemap("/bb/soft-404.xml", SOFT_404, None, "robots", error=True, headers=HTML, url_count=0)
    b.sitemap("/bb/empty.xml", b"", None, "robots", error=True, url_count=0)
    b.sitemap("/bb/blank.xml", b"  \r\n\t\n   \n", None, "robots", error=True, url_count=0)
    b.expect_sitemap("/bb/missing.xml", None, "robots", error=True, url_count=0)
    b.sitemap("/bb/server-error.xml", b"<h1>500</h1>", None, "robots", error=True, status=500, headers=HTML)
    b.sitemap("/bb/empty-urlset.xml", urlset(), "urlset", "robots", url_count=0)
    idx = b.index("/bb/index.xml", ["/bb/gone.xml", "/bb/child.xml"], "robots")
    b.expect_sitemap("/bb/gone.xml", None, "index", error=True, parent_url=idx)
    b.pages_sitemap("/bb/child.xml", ["bb/child-1"], "index", parent=idx)
    b.pages_sitemap("/bb/good.xml", ["bb/good-1", "bb/good-2"], "robots")
    return b.build()


# --------------------------------------------------------------------------------------------------
# 7–9. Namespaces, <loc> forms, truncated files
# --------------------------------------------------------------------------------------------------
@_case
def _namespaces() -> Case:
    b = SiteBuilder("namespaces.test", "sitemap namespaces 0.9, Google 0.84, none, prefixed; nested urlset")
    b.robots_listing("/ns/09.xml", "/ns/084.xml", "/ns/none.xml", "/ns/prefixed.xml", "/ns/nested.xml",
                     "/ns/index-084.xml")
    for name, ns in (("09", NS09), ("084", NS084), ("none", None)):
        url = b.url(f"/ns/page-{name}")
        b.sitemap(f"/ns/{name}.xml", urlset(url, ns=ns), "urlset", "robots", url_count=1)
        b.expect(url)
    url = b.url("/ns/page-prefixed")
    b.sitemap("/ns/prefixed.xml", (f'{XML_DECL}<sm:urlset xmlns:sm="{NS09}">\n<sm:url><sm:loc>{url}</sm:loc>'
                                   "<sm:lastmod>2024-05-01</sm:lastmod></sm:url>\n</sm:urlset>\n").encode(),
              "urlset", "robots", url_count=1)
    b.expect(url, lastmod=utc(2024, 5, 1))
    inner, outer = b.url("/ns/page-nested-inner"), b.url("/ns/page-nested-outer")
    b.sitemap("/ns/nested.xml", (f'{XML_DECL}<urlset xmlns="{NS09}">\n<urlset><url><loc>{inner}</loc></url></urlset>\n'
                                 f"<url><loc>{outer}</loc></url>\n</urlset>\n").encode(), "urlset", "robots")
    b.expect(inner, outer)
    idx = b.index("/ns/index-084.xml", ["/ns/child-none.xml"], "robots", ns=NS084)
    url = b.url("/ns/page-child-none")
    b.sitemap("/ns/child-none.xml", urlset(url, ns=None), "urlset", "index", parent_url=idx, url_count=1)
    b.expect(url)
    return b.build()


@_case
def _loc_forms() -> Case:
    b = SiteBuilder("loc-forms.test", "<loc> with whitespace/newlines, CDATA, &amp;, empty or missing")
    b.robots_listing("/loc/forms.xml")
    b.sitemap("/loc/forms.xml", urlset(
        "<url><loc>\n      http://loc-forms.test/whitespace\n   </loc></url>",
        "<url><loc><![CDATA[http://loc-forms.test/cdata?a=1&b=2]]></loc></url>",
        "<url><loc>  <![CDATA[ http://loc-forms.test/cdata-spaced ]]>\n</loc></url>",
        "<url><loc>http://loc-forms.test/amp?a=1&amp;b=2</loc></url>",
        "<url><loc></loc><lastmod>2024-01-01</lastmod></url>",
        "<url><loc>   \n  </loc></url>",
        "<url><lastmod>2024-01-01</lastmod><priority>0.5</priority></url>",
        "<url><loc>http://loc-forms.test/tab\t</loc></url>",
        "<url><loc>http://loc-forms.test/last</loc></url>",
    ), "urlset", "robots", url_count=6)
    b.expect(*(b.url(p) for p in ("/whitespace", "/cdata?a=1&b=2", "/cdata-spaced", "/amp?a=1&b=2", "/tab", "/last")))
    return b.build()


def _cut_gzip(entries: list[str], keep_fraction: float) -> tuple[bytes, list[str], list[str]]:
    """gzip of a urlset cut to `keep_fraction` of its bytes: (data, entries surely kept, entries maybe kept)."""
    full = gz(urlset(*entries))
    cut = full[: int(len(full) * keep_fraction)]
    prefix = zlib.decompressobj(31).decompress(cut)
    complete = [e for e in entries if f"<loc>{esc(e)}</loc></url>".encode() in prefix]
    return cut, complete[:-2], complete[-2:]  # the last two: block boundaries may hide them from some readers


@_case
def _truncated() -> Case:
    b = SiteBuilder("truncated.test", "files cut mid-entry: entries before the cut kept, the cut entry dropped")
    b.robots_listing("/truncated.xml", "/truncated.xml.gz", "/after.xml")
    t1, t2, t3 = (b.url(f"/t{i}") for i in (1, 2, 3))
    body = urlset(t1, t2).rsplit(b"</urlset>", 1)[0] + f"<url><loc>{t3}</loc><lastmod>2024-0".encode()
    b.sitemap("/truncated.xml", body, "urlset", "robots", error=None)
    b.expect(t1, t2)
    data, sure, maybe = _cut_gzip([b.url(f"/tgz/{i:04d}-{'x' * (i % 7)}") for i in range(600)], 0.5)
    b.sitemap("/truncated.xml.gz", data, "urlset", "robots", error=None, gzipped=True, headers=GZIP)
    b.expect(*sure)
    b.optional(*maybe)
    b.pages_sitemap("/after.xml", ["t-after"], "robots")
    return b.build()


# --------------------------------------------------------------------------------------------------
# 10. Security: entity expansion and external entities
# --------------------------------------------------------------------------------------------------
def billion_laughs(host: str) -> bytes:
    ents = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10)
    ]
    return (f'{XML_DECL}<!DOCTYPE urlset [\n {chr(10).join(ents)}\n]>\n<urlset xmlns="{NS09}">\n'
            f"<url><loc>http://{host}/before</loc></url>\n"
            f"<url><loc>http://{host}/page-&lol9;</loc></url>\n"
            f"<url><loc>http://{host}/after</loc><changefreq>&lol9;</changefreq></url>\n</urlset>\n").encode()


@_case
def _laughs() -> Case:
    b = SiteBuilder("laughs.test", "billion laughs DOCTYPE: never expanded, memory bounded")
    b.robots_listing("/laughs.xml", "/normal.xml")
    b.sitemap("/laughs.xml", billion_laughs(b.case.host), None, "robots", error=None)
    b.optional(b.url("/before"), b.url("/after"), b.url("/page-"))
    b.pages_sitemap("/normal.xml", ["n1"], "robots")
    return b.build(hostile=True, forbidden_text=("lollollol",))


@_case
def _xxe() -> Case:
    b = SiteBuilder("xxe.test", "external entities (file:///etc/passwd) never resolved")
    b.robots_listing("/xxe.xml", "/xxe-param.xml", "/normal.xml")
    body = (f'{XML_DECL}<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
            f'<urlset xmlns="{NS09}" xmlns:image="{NS_IMAGE}">\n'
            "<url><loc>http://xxe.test/leak-&xxe;</loc></url>\n"
            "<url><loc>http://xxe.test/safe</loc><image:image><image:loc>http://xxe.test/i.png</image:loc>"
            "<image:caption>&xxe;</image:caption></image:image></url>\n</urlset>\n").encode()
    b.sitemap("/xxe.xml", body, None, "robots", error=None)
    body = (f'{XML_DECL}<!DOCTYPE urlset [<!ENTITY % ext SYSTEM "file:///etc/passwd"> %ext;]>\n'
            f'<urlset xmlns="{NS09}"><url><loc>http://xxe.test/param-safe</loc></url></urlset>\n').encode()
    b.sitemap("/xxe-param.xml", body, None, "robots", error=None)
    b.optional(b.url("/leak-"), b.url("/safe"), b.url("/param-safe"))
    b.pages_sitemap("/normal.xml", ["n1"], "robots")
    return b.build(hostile=True, forbidden_text=("root:", "/bin/bash", "nologin"))


# --------------------------------------------------------------------------------------------------
# 11. Extensions: news, images, videos, hreflang alternates
# --------------------------------------------------------------------------------------------------
@_case
def _extensions() -> Case:
    b = SiteBuilder("extensions.test", "news, image (several per page), video and xhtml:link alternates",
                    language="de")
    b.robots_listing("/ext/sitemap.xml")
    u = b.url
    entries = [
        f"""<url><loc>{u('/ext/article')}</loc>
  <news:news><news:publication><news:name>The Example Times</news:name><news:language>en</news:language>
  </news:publication><news:publication_date>2024-03-01T12:00:00+00:00</news:publication_date>
  <news:title>Big News &amp; More</news:title></news:news></url>""",
        f"""<url><loc>{u('/ext/gallery')}</loc>
  <image:image><image:loc>{u('/img/1.jpg')}</image:loc><image:title>First</image:title>
    <image:caption>The first picture</image:caption></image:image>
  <image:image><image:loc>{u('/img/2.jpg')}</image:loc></image:image>
  <image:image><image:loc>{u('/img/3.jpg')}</image:loc><image:caption>Third</image:caption></image:image></url>""",
        f"""<url><loc>{u('/ext/video')}</loc>
  <video:video><video:thumbnail_loc>{u('/thumbs/1.jpg')}</video:thumbnail_loc>
    <video:title>Grilling steaks</video:title><video:description>How to grill steaks.</video:description>
    <video:content_loc>{u('/video/1.mp4')}</video:content_loc>
    <video:player_loc>{u('/player?video=1')}</video:player_loc></video:video></url>""",
        f"""<url><loc>{u('/ext/en')}</loc>
  <xhtml:link rel="alternate" hreflang="de" href="{u('/ext/de')}"/>
  <xhtml:link rel="alternate" hreflang="fr" href="{u('/ext/fr')}"/>
  <xhtml:link rel="alternate" hreflang="x-default" href="{u('/ext/en')}"/>
  <xhtml:link rel="alternate" hreflang="es"/></url>""",
        f"<url><loc>{u('/ext/plain')}</loc></url>",
    ]
    extra = f' xmlns:news="{NS_NEWS}" xmlns:image="{NS_IMAGE}" xmlns:video="{NS_VIDEO}" xmlns:xhtml="{NS_XHTML}"'
    b.sitemap("/ext/sitemap.xml", urlset(*entries, extra_ns=extra), "urlset", "robots", url_count=5)
    b.expect(u("/ext/article"), news={"title": "Big News & More", "publication": "The Example Times",
                                      "language": "en", "publication_date": "2024-03-01T12:00:00+00:00"},
             images=None, videos=None, alternates=None)
    b.expect(u("/ext/gallery"), images=[
        {"loc": u("/img/1.jpg"), "title": "First", "caption": "The first picture"},
        {"loc": u("/img/2.jpg")},
        {"loc": u("/img/3.jpg"), "caption": "Third"},
    ], news=None, videos=None)
    b.expect(u("/ext/video"), videos=[{
        "title": "Grilling steaks", "thumbnail_loc": u("/thumbs/1.jpg"), "content_loc": u("/video/1.mp4"),
        "player_loc": u("/player?video=1"), "description": "How to grill steaks.",
    }], images=None, news=None)
    b.expect(u("/ext/en"), alternates=[
        {"hreflang": "de", "href": u("/ext/de")},
        {"hreflang": "fr", "href": u("/ext/fr")},
        {"hreflang": "x-default", "href": u("/ext/en")},
    ])
    b.expect(u("/ext/plain"), alternates=None, images=None, news=None, videos=None)
    return b.build()


# --------------------------------------------------------------------------------------------------
# 12. Bad values
# --------------------------------------------------------------------------------------------------
@_case
def _bad_values() -> Case:
    b = SiteBuilder("bad-values.test", "W3C lastmod forms; invalid changefreq, priority > 1, unparseable lastmod")
    b.robots_listing("/bv/sitemap.xml")
    rows = [  # slug, lastmod, changefreq, priority, expected (lastmod, changefreq, priority)
        ("bv/1", "2024", "daily", "0.5", (utc(2024, 1, 1), "daily", 0.5)),
        ("bv/2", "2024-02", "sometimes", "1.5", (utc(2024, 2, 1), None, None)),
        ("bv/3", "2024-03-05", "", "abc", (utc(2024, 3, 5), None, None)),
        ("bv/4", "2024-03-05T10:30+02:00", "never", "1.0", (utc(2024, 3, 5, 8, 30), "never", 1.0)),
        ("bv/5", "2024-03-05T10:30:15.5Z", "hourly", "0.0", (utc(2024, 3, 5, 10, 30, 15, 500000), "hourly", 0.0)),
        ("bv/6", "yesterday", "  weekly  ", "-0.1", (None, "weekly", None)),
        ("bv/7", "2024-13-45", "every day", "0.75", (None, None, 0.75)),
        ("bv/8", "2024-03-05T23:59:59-05:00", "monthly", "NaN", (utc(2024, 3, 6, 4, 59, 59), "monthly", None)),
    ]
    entries = []
    for slug, lastmod, changefreq, priority, (e_lastmod, e_changefreq, e_priority) in rows:
        url = b.url("/" + slug)
        entries.append(url_entry(url, lastmod=lastmod, changefreq=changefreq, priority=priority))
        b.expect(url, lastmod=e_lastmod, changefreq=e_changefreq, priority=e_priority)
    b.sitemap("/bv/sitemap.xml", urlset(*entries), "urlset", "robots", url_count=len(rows))
    return b.build()


# --------------------------------------------------------------------------------------------------
# 13. Duplicates and non-ASCII
# --------------------------------------------------------------------------------------------------
@_case
def _duplicates() -> Case:
    b = SiteBuilder("duplicates.test", "the same URL twice in one sitemap and in two sitemaps: one page row")
    b.robots_listing("/dup-a.xml", "/dup-b.xml")
    d = [b.url(f"/d/{i}") for i in range(5)]
    b.sitemap("/dup-a.xml", urlset(d[1], d[2], d[1], d[3], d[2] + "/"), "urlset", "robots")
    b.sitemap("/dup-b.xml", urlset(d[3], d[4], d[1], d[4]), "urlset", "robots")
    b.expect(d[1], d[2], d[3], d[4], d[2] + "/")
    return b.build()


@_case
def _unicode() -> Case:
    b = SiteBuilder("unicode.test", "non-ASCII paths, UTF-8 and ISO-8859-1 sitemaps, stored as written")
    b.robots_listing("/uni/utf8.xml", "/uni/latin1.xml")
    urls = [b.url("/café/crème-brûlée"), b.url("/%E6%97%A5%E6%9C%AC"), b.url("/日本語?q=ü"), b.url("/Ελλάδα")]
    b.sitemap("/uni/utf8.xml", urlset(*urls), "urlset", "robots", url_count=4)
    b.expect(*urls)
    latin = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n'
             f'<urlset xmlns="{NS09}"><url><loc>http://unicode.test/résumé</loc></url></urlset>\n').encode("latin-1")
    b.sitemap("/uni/latin1.xml", latin, "urlset", "robots", url_count=1)
    b.expect("http://unicode.test/résumé")
    return b.build()


# --------------------------------------------------------------------------------------------------
# Feeds and text sitemaps
# --------------------------------------------------------------------------------------------------
@_case
def _feeds() -> Case:
    b = SiteBuilder("feeds.test", "RSS 2.0 and Atom feeds as sitemaps")
    b.robots_listing("/feed/rss.xml", "/feed/atom.xml")
    rss = (f'{XML_DECL}<rss version="2.0"><channel><title>Feeds</title><link>{b.url("/")}</link>'
           "<description>News</description>\n"
           f"<item><title>A</title><link>{b.url('/posts/a')}</link><pubDate>Mon, 04 Mar 2024 10:00:00 GMT</pubDate></item>\n"
           f"<item><title>B</title><link>\n  {b.url('/posts/b')}\n</link></item>\n"
           "<item><title>No link</title></item>\n</channel></rss>\n").encode()
    b.sitemap("/feed/rss.xml", rss, "rss", "robots", headers={"Content-Type": "application/rss+xml"})
    b.expect(b.url("/posts/a"), b.url("/posts/b"))
    atom = (f'{XML_DECL}<feed xmlns="http://www.w3.org/2005/Atom"><title>Feeds</title>'
            f'<link href="{b.url("/")}"/><updated>2024-03-04T10:00:00Z</updated><id>urn:feeds</id>\n'
            f'<entry><title>X</title><link href="{b.url("/atom/x")}"/><id>urn:x</id>'
            "<updated>2024-03-04T10:00:00Z</updated></entry>\n"
            f'<entry><title>Y</title><link rel="alternate" type="text/html" href="{b.url("/atom/y")}"/><id>urn:y</id>'
            "<updated>2024-03-05T10:00:00Z</updated></entry>\n</feed>\n").encode()
    b.sitemap("/feed/atom.xml", atom, "atom", "robots", headers={"Content-Type": "application/atom+xml"})
    b.expect(b.url("/atom/x"), b.url("/atom/y"))
    b.optional(b.url("/"))
    return b.build()


@_case
def _text_sitemap() -> Case:
    b = SiteBuilder("text-sitemap.test", "plain text sitemap with blank lines, junk lines, CRLF, spaces")
    b.robots_listing("/urls.txt")
    u = b.url
    lines = [u("/one"), "", "   ", f"  {u('/two')}  ", "this is not a url", "# a comment line",
             u("/three?x=1&y=2"), "ftp://text-sitemap.test/file.zip", "<html>", "", u("/four")]
    b.sitemap("/urls.txt", "\r\n".join(lines).encode() + b"\r\n", "text", "robots", headers=TEXT, url_count=4)
    b.expect(u("/one"), u("/two"), u("/three?x=1&y=2"), u("/four"))
    return b.build()


# --------------------------------------------------------------------------------------------------
# Unreachable
# --------------------------------------------------------------------------------------------------
@_case
def _unreachable() -> Case:
    return Case(host="unreachable.test", about="every connection dropped: job failed with a one-line reason",
                site=Site(unreachable=True), status="failed")


# --------------------------------------------------------------------------------------------------
# Many small domains (tests and benchmarks)
# --------------------------------------------------------------------------------------------------
def bulk_case(host: str, urls_per_sitemap: int = 50) -> Case:
    """robots.txt -> index -> 2 sitemaps of `urls_per_sitemap` URLs, the second gzipped."""
    b = SiteBuilder(host, "small generated domain")
    b.robots_listing("/sitemaps/index.xml")
    idx = b.index("/sitemaps/index.xml", ["/sitemaps/posts.xml", "/sitemaps/pages.xml.gz"], "robots")
    b.pages_sitemap("/sitemaps/posts.xml", (f"posts/{i}" for i in range(urls_per_sitemap)), "index", parent=idx)
    b.pages_sitemap("/sitemaps/pages.xml.gz", (f"pages/{i}" for i in range(urls_per_sitemap)), "index",
                    gzipped=True, parent=idx)
    return b.build()


def bulk_cases(n: int, prefix: str = "bulk", urls_per_sitemap: int = 50) -> list[Case]:
    """`n` small domains named `{prefix}-0000.test` ..."""
    return [bulk_case(f"{prefix}-{i:04d}.test", urls_per_sitemap) for i in range(n)]


def sites_of(cases: Iterable[Case]) -> dict[str, Site]:
    return {case.host: case.site for case in cases}


def catalogue_sites() -> dict[str, Site]:
    return sites_of(CATALOGUE.values())


# --------------------------------------------------------------------------------------------------
# A site that changes between scans (re-scan tests)
# --------------------------------------------------------------------------------------------------
RESCAN_HOST = "rescan.test"


def rescan_versions() -> tuple[Case, Case]:
    """Two versions of `rescan.test`: the second drops a1 and sitemap b (b1, b2), adds a4 and sitemap c."""

    def version(a_slugs: list[str], other: str, other_slugs: list[str]) -> Case:
        b = SiteBuilder(RESCAN_HOST, "a site that changes between scans")
        b.robots_listing("/index.xml")
        idx = b.index("/index.xml", ["/a.xml", f"/{other}.xml"], "robots")
        b.pages_sitemap("/a.xml", a_slugs, "index", parent=idx)
        b.pages_sitemap(f"/{other}.xml", other_slugs, "index", parent=idx)
        return b.build()

    return version(["a1", "a2", "a3"], "b", ["b1", "b2"]), version(["a2", "a3", "a4"], "c", ["c1", "c2"])
