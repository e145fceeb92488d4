"""Home-page reading: metadata and sitemap links, from HTML bytes (parsel/lxml, no I/O)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

from parsel import Selector

from scrapersky_crawler.sitemap import join_url

SOCIAL_HOSTS = {
    "facebook.com": "facebook",
    "twitter.com": "twitter",
    "x.com": "twitter",
    "linkedin.com": "linkedin",
    "instagram.com": "instagram",
    "youtube.com": "youtube",
    "tiktok.com": "tiktok",
    "pinterest.com": "pinterest",
    "github.com": "github",
    "mastodon.social": "mastodon",
}
_WP_VERSION = re.compile(r"wordpress\s*([\d.]+)", re.I)
_SITEMAP_SUFFIXES = (".xml", ".xml.gz", ".gz", ".txt")
_SITEMAP_NAME = re.compile(r"site[\s_-]?map", re.I)  # in a link's path
# a link's whole text: "Sitemap", "Site map", "site-map", "XML sitemap", "Sitemap (XML)", "Sitemap index"
_SITEMAP_TEXT = re.compile(r"(xml )?site[ _-]?maps?( xml| index)?", re.I)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _selector(body: bytes, encoding: str) -> Selector:
    # parsel refuses an empty body; an empty page is an empty document
    return Selector(body=body if body.strip() else b"<html></html>", type="html", encoding=encoding)


def _first(sel: Selector, *queries: str) -> str | None:
    for query in queries:
        value = sel.xpath(query).get()
        if value and value.strip():
            return " ".join(value.split())
    return None


def read_home_page(body: bytes, url: str, encoding: str = "utf-8") -> dict[str, Any]:
    """The home page's metadata: title, description, language, favicon, generator, WordPress,
    emails, phones and social links. Missing values are None (lists and dicts: empty)."""
    sel = _selector(body, encoding)
    generator = _first(sel, "//meta[translate(@name,'GENERATOR','generator')='generator']/@content")
    favicon = _first(
        sel,
        "//link[contains(concat(' ', translate(@rel,'ICON','icon'), ' '), ' icon ')]/@href",
        "//link[contains(translate(@rel,'ICON','icon'), 'icon')]/@href",
    )
    wp_version = None
    is_wordpress = False
    if generator and "wordpress" in generator.lower():
        is_wordpress = True
        match = _WP_VERSION.search(generator)
        wp_version = match.group(1) if match else None
    elif sel.xpath("//link/@href[contains(., '/wp-content/') or contains(., '/wp-includes/')]"
                   " | //script/@src[contains(., '/wp-content/') or contains(., '/wp-includes/')]"):
        is_wordpress = True

    emails: dict[str, None] = {}
    phones: dict[str, None] = {}
    social: dict[str, str] = {}
    for href in sel.xpath("//a/@href").getall():
        href = href.strip()
        lower = href.lower()
        if lower.startswith("mailto:"):
            address = unquote(href[7:].split("?", 1)[0]).strip()
            if _EMAIL.match(address):
                emails.setdefault(address.lower(), None)
        elif lower.startswith("tel:"):
            number = unquote(href[4:]).strip()
            if sum(c.isdigit() for c in number) >= 5:
                phones.setdefault(number, None)
        elif lower.startswith(("http://", "https://")) and join_url(href, "") is not None:
            host = (urlsplit(href).hostname or "").removeprefix("www.")
            name = SOCIAL_HOSTS.get(host)
            if name and name not in social:
                social[name] = href
    return {
        "title": _first(sel, "//title/text()", "//meta[@property='og:title']/@content"),
        "description": _first(
            sel, "//meta[translate(@name,'DESCRIPTION','description')='description']/@content",
            "//meta[@property='og:description']/@content",
        ),
        "language": _first(sel, "/html/@lang", "//meta[@http-equiv='content-language']/@content"),
        "favicon": (favicon and join_url(url, favicon)) or join_url(url, "/favicon.ico"),
        "generator": generator,
        "is_wordpress": is_wordpress,
        "wordpress_version": wp_version,
        "emails": list(emails),
        "phones": list(phones),
        "social_links": social,
    }


def sitemap_links(body: bytes, url: str, encoding: str = "utf-8") -> list[str]:
    """Sitemap URLs linked from a page: `<link rel="sitemap">`, and `<a href>` to a sitemap-like file
    (.xml, .xml.gz, .gz, .txt) named a sitemap by its path or by its text in the usual spellings
    (sitemap, site-map, site_map, "site map"; any case)."""
    sel = _selector(body, encoding)
    found: dict[str, None] = {}
    for href in sel.xpath("//link[translate(@rel,'SITEMAP','sitemap')='sitemap']/@href").getall():
        absolute = join_url(url, href.strip()) if href.strip() else None
        if absolute:
            found.setdefault(absolute, None)
    for a in sel.xpath("//a[@href]"):
        absolute = join_url(url, a.attrib["href"].strip())
        if absolute is None:
            continue
        path = urlsplit(absolute).path.lower()
        if not absolute.startswith(("http://", "https://")) or not path.endswith(_SITEMAP_SUFFIXES):
            continue
        text = " ".join(re.sub(r"[^\w\s-]", " ", " ".join(a.xpath(".//text()").getall())).split())
        if _SITEMAP_NAME.search(unquote(path)) or _SITEMAP_TEXT.fullmatch(text):
            found.setdefault(absolute, None)
    return list(found)
