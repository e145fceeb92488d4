"""read_home_page and sitemap_links on bytes (REFERENCE §2 item 2)."""

from __future__ import annotations

import pytest

from scrapersky_crawler.homepage import read_home_page, sitemap_links

HOME = "https://example.com/"

FULL_PAGE = b"""<!DOCTYPE html>
<html lang="en-GB">
<head>
  <meta charset="utf-8">
  <title>
     Example   Company
     Home </title>
  <meta name="description" content="  We make   examples. ">
  <meta property="og:title" content="OG title (not used)">
  <meta property="og:description" content="OG description (not used)">
  <meta name="generator" content="WordPress 6.4.2">
  <link rel="shortcut icon" href="/static/fav.png">
  <link rel="stylesheet" href="/wp-content/themes/twenty/style.css">
</head>
<body>
  <a href="mailto:Info@Example.com?subject=Hello">Mail us</a>
  <a href="mailto:info@example.com">again (duplicate, other case)</a>
  <a href="mailto:sales%40example.com">encoded</a>
  <a href="mailto:not-an-address">bad</a>
  <a href="mailto:">empty</a>
  <a href="tel:+1%20555-123-4567">Call</a>
  <a href="TEL:+44 20 7946 0958">Call UK</a>
  <a href="tel:12">too short</a>
  <a href="https://www.facebook.com/exampleco">Facebook</a>
  <a href="https://facebook.com/second">Facebook again (first kept)</a>
  <a href="https://twitter.com/example">Twitter</a>
  <a href="https://x.com/example2">X (twitter already found)</a>
  <a href="https://www.linkedin.com/company/example">LinkedIn</a>
  <a href="https://www.instagram.com/example/">Instagram</a>
  <a href="https://www.youtube.com/@example">YouTube</a>
  <a href="https://github.com/example">GitHub</a>
  <a href="https://notfacebook.com/x">lookalike</a>
  <a href="https://facebook.com.evil.example/x">lookalike 2</a>
  <a href="/about">About</a>
</body>
</html>
"""


@pytest.fixture(scope="module")
def full() -> dict:
    return read_home_page(FULL_PAGE, HOME)


def test_title_and_description_whitespace_collapsed(full) -> None:
    assert full["title"] == "Example Company Home"
    assert full["description"] == "We make examples."


def test_language(full) -> None:
    assert full["language"] == "en-GB"


def test_favicon_from_link_rel_icon(full) -> None:
    assert full["favicon"] == "https://example.com/static/fav.png"


def test_wordpress_by_generator_with_version(full) -> None:
    assert full["generator"] == "WordPress 6.4.2"
    assert full["is_wordpress"] is True
    assert full["wordpress_version"] == "6.4.2"


def test_mailto_links(full) -> None:
    assert full["emails"] == ["info@example.com", "sales@example.com"]


def test_tel_links(full) -> None:
    assert full["phones"] == ["+1 555-123-4567", "+44 20 7946 0958"]


def test_social_links(full) -> None:
    assert full["social_links"] == {
        "facebook": "https://www.facebook.com/exampleco",
        "twitter": "https://twitter.com/example",
        "linkedin": "https://www.linkedin.com/company/example",
        "instagram": "https://www.instagram.com/example/",
        "youtube": "https://www.youtube.com/@example",
        "github": "https://github.com/example",
    }


def test_x_com_counts_as_twitter() -> None:
    page = read_home_page(b'<html><body><a href="https://x.com/acme">X</a></body></html>', HOME)
    assert page["social_links"] == {"twitter": "https://x.com/acme"}


def test_og_fallbacks_and_defaults() -> None:
    body = b"""<html><head>
<meta property="og:title" content="Only OG title">
<meta property="og:description" content="Only OG description">
</head><body><p>hi</p></body></html>"""
    page = read_home_page(body, "https://example.com/home/")
    assert page["title"] == "Only OG title"
    assert page["description"] == "Only OG description"
    assert page["language"] is None
    assert page["favicon"] == "https://example.com/favicon.ico"
    assert page["generator"] is None
    assert page["is_wordpress"] is False
    assert page["wordpress_version"] is None
    assert page["emails"] == [] and page["phones"] == [] and page["social_links"] == {}


def test_empty_title_falls_back_to_og() -> None:
    body = b'<html><head><title>   </title><meta property="og:title" content="OG"></head></html>'
    assert read_home_page(body, HOME)["title"] == "OG"


def test_description_name_any_case() -> None:
    body = b'<html><head><meta name="Description" content="Upper"></head></html>'
    assert read_home_page(body, HOME)["description"] == "Upper"


def test_language_from_content_language_meta() -> None:
    body = b'<html><head><meta http-equiv="content-language" content="de"></head></html>'
    assert read_home_page(body, HOME)["language"] == "de"


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ('<link rel="icon" href="https://cdn.example.net/i.ico">', "https://cdn.example.net/i.ico"),
        ('<link rel="ICON" type="image/png" href="img/icon.png">', "https://example.com/dir/img/icon.png"),
        ('<link rel="apple-touch-icon" href="/apple.png">', "https://example.com/apple.png"),
        ('<link rel="stylesheet" href="/s.css">', "https://example.com/favicon.ico"),
        ("", "https://example.com/favicon.ico"),
    ],
)
def test_favicon(link: str, expected: str) -> None:
    body = f"<html><head>{link}</head><body></body></html>".encode()
    assert read_home_page(body, "https://example.com/dir/")["favicon"] == expected


@pytest.mark.parametrize(
    "asset",
    [
        '<link rel="stylesheet" href="https://example.com/wp-content/themes/x/style.css">',
        '<script src="/wp-includes/js/jquery/jquery.min.js"></script>',
        '<script src="https://example.com/wp-content/plugins/p/p.js?ver=1"></script>',
    ],
)
def test_wordpress_by_assets(asset: str) -> None:
    page = read_home_page(f"<html><head>{asset}</head><body></body></html>".encode(), HOME)
    assert page["is_wordpress"] is True
    assert page["wordpress_version"] is None


def test_wordpress_generator_without_version() -> None:
    page = read_home_page(b'<html><head><meta name="Generator" content="WordPress"></head></html>', HOME)
    assert page["is_wordpress"] is True
    assert page["wordpress_version"] is None


def test_other_generator_is_not_wordpress() -> None:
    page = read_home_page(b'<html><head><meta name="generator" content="Drupal 10 (https://www.drupal.org)"></head></html>', HOME)
    assert page["generator"] == "Drupal 10 (https://www.drupal.org)"
    assert page["is_wordpress"] is False


def test_wp_content_in_text_is_not_wordpress() -> None:
    page = read_home_page(b"<html><body><p>We do not use /wp-content/ here</p><a href='/blog'>b</a></body></html>", HOME)
    assert page["is_wordpress"] is False


def test_declared_encoding() -> None:
    body = "<html><head><title>Café Ünïcode</title></head></html>".encode("latin-1")
    assert read_home_page(body, HOME, encoding="latin-1")["title"] == "Café Ünïcode"


def test_utf8_title() -> None:
    body = "<html><head><title>Bücher – Straße</title></head></html>".encode()
    assert read_home_page(body, HOME)["title"] == "Bücher – Straße"


@pytest.mark.parametrize("body", [b" ", b"\n", b"garbage, not html", b"<html></html>", b"\x00\x00", b"<!-- only a comment -->"])
def test_degenerate_pages(body: bytes) -> None:
    page = read_home_page(body, HOME)
    assert page["title"] is None
    assert page["favicon"] == "https://example.com/favicon.ico"
    assert page["is_wordpress"] is False
    assert sitemap_links(body, HOME) == []


@pytest.mark.parametrize("func", [read_home_page, sitemap_links], ids=["read_home_page", "sitemap_links"])
def test_empty_body(func) -> None:
    result = func(b"", HOME)
    if func is sitemap_links:
        assert result == []
    else:
        assert result["title"] is None and result["favicon"] == "https://example.com/favicon.ico"


# ------------------------------------------------------------------------------------------------
# sitemap_links
# ------------------------------------------------------------------------------------------------
def test_sitemap_links() -> None:
    body = b"""<html><head>
<link rel="sitemap" type="application/xml" title="Sitemap" href="/sitemap_index.xml">
<link rel="Sitemap" href="https://example.com/other-sitemap.xml">
<link rel="sitemap" href="">
<link rel="stylesheet" href="/sitemap.css">
</head><body>
<a href="/sitemap.xml">Sitemap</a>
<a href="sitemap.xml">relative sitemap</a>
<a href="https://example.com/sitemap.xml">duplicate</a>
<a href="/about">About</a>
<a href="/contact.xml">not named sitemap</a>
<a href="/sitemap">html sitemap page, no extension</a>
<a href="/sitemap.html">html sitemap page</a>
<a href="/Sitemap.TXT">text sitemap, any case</a>
<a href="https://example.com/maps/post-sitemap.xml.gz">gz</a>
<a href="ftp://example.com/sitemap.xml">ftp</a>
<a href="mailto:sitemap@example.com">mail</a>
<a href="javascript:openSitemap('sitemap.xml')">js</a>
<a href="/footer/site-map.xml">Site map</a>
<a href="/footer/site_map.xml.gz">x</a>
<a href="/pages/map.xml">  XML <b>Sitemap</b> </a>
<a href="/pages/plan.xml">Site-Map</a>
<a href="/pages/siteplan.html">Site map</a>
</body></html>"""
    assert sitemap_links(body, "https://example.com/dir/") == [
        "https://example.com/sitemap_index.xml",
        "https://example.com/other-sitemap.xml",
        "https://example.com/sitemap.xml",
        "https://example.com/dir/sitemap.xml",
        "https://example.com/Sitemap.TXT",
        "https://example.com/maps/post-sitemap.xml.gz",
        "https://example.com/footer/site-map.xml",  # named by its path and its text, in other spellings
        "https://example.com/footer/site_map.xml.gz",
        "https://example.com/pages/map.xml",
        "https://example.com/pages/plan.xml",
    ]


def test_link_rel_sitemap_any_extension() -> None:
    body = b'<html><head><link rel="sitemap" href="/feeds/all"></head></html>'
    assert sitemap_links(body, HOME) == ["https://example.com/feeds/all"]


def test_sitemap_in_query_string_only_is_not_a_sitemap_file() -> None:
    body = b'<html><body><a href="/index.php?page=sitemap.xml">x</a><a href="/about?ref=sitemap">y</a></body></html>'
    assert sitemap_links(body, HOME) == []


def test_no_sitemap_links() -> None:
    body = b'<html><body><a href="/about">About</a><a href="https://example.com/blog/">Blog</a></body></html>'
    assert sitemap_links(body, HOME) == []


def test_links_urllib_cannot_parse_cost_only_themselves() -> None:
    page = (b'<html><head><title>T</title><link rel="sitemap" href="//[y/sitemap.xml"><link rel="icon" href="//[z">'
            b'</head><body><a href="http://example.com:xx/sitemap.xml">Sitemap</a> <a href="https://[bad/">x</a>'
            b'<a href="https://twitter.com/example">Twitter</a> <a href="/site-map.xml">Site map</a></body></html>')
    assert sitemap_links(page, HOME) == ["https://example.com/site-map.xml"]
    meta = read_home_page(page, HOME)
    assert meta["title"] == "T"
    assert meta["favicon"] == "https://example.com/favicon.ico"
    assert meta["social_links"] == {"twitter": "https://twitter.com/example"}
