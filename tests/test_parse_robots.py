"""sitemap_urls_from_robots on bytes (REFERENCE §2 item 1)."""

from __future__ import annotations

import pytest

from scrapersky_crawler.sitemap import sitemap_urls_from_robots

ROBOTS = "https://example.com/robots.txt"
S = "https://example.com/sitemap.xml"


def sitemaps(body: bytes, base: str = ROBOTS) -> list[str]:
    return sitemap_urls_from_robots(body, base)


@pytest.mark.parametrize(
    "line",
    [
        b"Sitemap: https://example.com/sitemap.xml",
        b"sitemap: https://example.com/sitemap.xml",
        b"SITEMAP: https://example.com/sitemap.xml",
        b"SiteMap: https://example.com/sitemap.xml",
        b"Site-map: https://example.com/sitemap.xml",
        b"site-map: https://example.com/sitemap.xml",
        b"SITE-MAP: https://example.com/sitemap.xml",
        b"Sitemap:https://example.com/sitemap.xml",
        b"Sitemap   :   https://example.com/sitemap.xml   ",
        b"Sitemap :https://example.com/sitemap.xml",
        b"Site-map :  https://example.com/sitemap.xml",
        b"\tSitemap:\thttps://example.com/sitemap.xml\t",
        b"   Sitemap: https://example.com/sitemap.xml",
        b"Sitemap: https://example.com/sitemap.xml # the main one",
        b"Sitemap: https://example.com/sitemap.xml#comment-without-space",
        b"Sitemap: /sitemap.xml",
        b"Sitemap: sitemap.xml",
        b"Sitemap: https://example.com/sitemap.xml\r",
    ],
)
def test_sitemap_line_variants(line: bytes) -> None:
    body = b"User-agent: *\nDisallow: /private\n" + line + b"\n"
    assert sitemaps(body) == [S]
    assert sitemaps(line) == [S]  # first line of the file too


def test_bom_before_the_first_line() -> None:
    body = b"\xef\xbb\xbfSitemap: https://example.com/a.xml\nSitemap: https://example.com/b.xml\n"
    assert sitemaps(body) == ["https://example.com/a.xml", "https://example.com/b.xml"]


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"], ids=["crlf", "cr", "lf"])
def test_line_endings(newline: bytes) -> None:
    body = newline.join(
        [b"\xef\xbb\xbfUser-agent: *", b"Disallow: /", b"", b"Sitemap: https://example.com/a.xml", b"Sitemap: https://example.com/b.xml", b""]
    )
    assert sitemaps(body) == ["https://example.com/a.xml", "https://example.com/b.xml"]


def test_relative_urls_joined_against_robots_url() -> None:
    body = b"Sitemap: /sitemap_index.xml\nSitemap: maps/s.xml.gz\nSitemap: //cdn.example.net/s.xml\n"
    assert sitemaps(body) == [
        "https://example.com/sitemap_index.xml",
        "https://example.com/maps/s.xml.gz",
        "https://cdn.example.net/s.xml",
    ]
    assert sitemaps(b"Sitemap: /s.xml", "http://example.com:8080/robots.txt") == ["http://example.com:8080/s.xml"]


def test_sitemap_lines_in_every_user_agent_group() -> None:
    body = b"""# robots for example.com
User-agent: Googlebot
Disallow: /a
Sitemap: https://example.com/google.xml

User-agent: bingbot
Sitemap: https://example.com/bing.xml
Disallow: /

User-agent: *
Allow: /
Crawl-delay: 10
Sitemap: https://example.com/all.xml

Sitemap: https://example.com/trailing.xml
"""
    assert sitemaps(body) == [
        "https://example.com/google.xml",
        "https://example.com/bing.xml",
        "https://example.com/all.xml",
        "https://example.com/trailing.xml",
    ]


def test_sitemap_before_any_user_agent() -> None:
    body = b"Sitemap: https://example.com/first.xml\nUser-agent: *\nDisallow: /\n"
    assert sitemaps(body) == ["https://example.com/first.xml"]


def test_duplicates_removed_order_kept() -> None:
    body = (
        b"Sitemap: https://example.com/b.xml\n"
        b"Sitemap: https://example.com/a.xml\n"
        b"sitemap: https://example.com/b.xml\n"
        b"Sitemap: /a.xml\n"
        b"Site-map: https://example.com/b.xml # again\n"
        b"Sitemap: https://example.com/c.xml\n"
    )
    assert sitemaps(body) == ["https://example.com/b.xml", "https://example.com/a.xml", "https://example.com/c.xml"]


def test_commented_out_and_empty_sitemap_lines_ignored() -> None:
    body = b"# Sitemap: https://example.com/old.xml\nSitemap:\nSitemap:    \nSitemap: https://example.com/ok.xml\n"
    assert sitemaps(body) == ["https://example.com/ok.xml"]


def test_non_ascii_utf8_url() -> None:
    assert sitemaps("Sitemap: https://example.com/bücher.xml\n".encode()) == ["https://example.com/bücher.xml"]


def test_non_utf8_bytes_do_not_break_other_lines() -> None:
    body = b"User-agent: *\n\xff\xfe\x80 junk \xc3\n" b"Disallow: /caf\xe9\n" b"Sitemap: https://example.com/a.xml\n" b"\x00\x01\x02\n" b"Sitemap: https://example.com/b.xml\n"
    assert sitemaps(body) == ["https://example.com/a.xml", "https://example.com/b.xml"]


def test_non_utf8_sitemap_url_not_mangled() -> None:
    urls = sitemaps(b"Sitemap: https://example.com/caf\xe9.xml\nSitemap: https://example.com/b.xml\n")
    assert urls[1:] == ["https://example.com/b.xml"]
    assert urls[0].startswith("https://example.com/caf")
    assert "\ufffd" not in urls[0]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\n\n   \n",
        b"\xef\xbb\xbf",
        b"User-agent: *\nDisallow:\n",
        b"User-agent: *\nDisallow: /\n# no sitemap here\n",
        b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>",
        b"<!DOCTYPE html><html><body><a href=\"/sitemap.xml\">Sitemap</a></body></html>",
        b"\x1f\x8b\x08\x00garbage",
        b"Sitemaps are great: but this line is prose\n",
    ],
)
def test_no_sitemap_lines(body: bytes) -> None:
    assert sitemaps(body) == []


def test_large_robots_txt() -> None:
    lines = [b"User-agent: bot%d\nDisallow: /p%d\n" % (i, i) for i in range(5000)]
    body = b"".join(lines) + b"Sitemap: https://example.com/last.xml\n"
    assert sitemaps(body) == ["https://example.com/last.xml"]


def test_a_location_urllib_cannot_parse_is_kept_as_written_beside_the_rest() -> None:
    # the spider records such a line as a sitemap "not fetched: invalid URL"; the others are unaffected
    body = b"Sitemap: //[x/a.xml\nSitemap: https://example.com:port/b.xml\nSitemap: https://example.com/sitemap.xml\n"
    assert sitemaps(body) == ["//[x/a.xml", "https://example.com:port/b.xml", S]
