"""SitemapReader and its helpers on bytes (REFERENCE §2, items 4-12): no network, no disk but tmp_path."""

from __future__ import annotations

import datetime as dt
import gzip
import resource
import struct
import tracemalloc
import zlib

import pytest

from scrapersky_crawler.sitemap import (
    CHUNK_SIZE,
    SitemapReader,
    detect_generator,
    page_entry,
    parse_w3c_datetime,
)

SM_URL = "https://example.com/sitemap.xml"
NS09 = "http://www.sitemaps.org/schemas/sitemap/0.9"
NS084 = "http://www.google.com/schemas/sitemap/0.84"
EXT_NS = (
    'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1" '
    'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9" '
    'xmlns:video="http://www.google.com/schemas/sitemap-video/1.1" '
    'xmlns:xhtml="http://www.w3.org/1999/xhtml"'
)
UTC = dt.timezone.utc


def read(body: bytes, url: str = SM_URL, **kwargs):
    reader = SitemapReader(body, url, **kwargs)
    entries = list(reader)
    return reader, entries


def urls_of(entries) -> list[str]:
    return [entry["url"] for entry in entries]


def urlset(*locs: str, ns: str | None = NS09) -> bytes:
    xmlns = f' xmlns="{ns}"' if ns else ""
    body = "".join(f"<url><loc>{loc}</loc></url>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset{xmlns}>{body}</urlset>\n'.encode()


def numbered_urlset(count: int, extra: str = "") -> bytes:
    body = "".join(f"<url><loc>https://example.com/page-{i}</loc>{extra}</url>" for i in range(count))
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="{NS09}">{body}</urlset>'.encode()


def gzip_members(*parts: bytes) -> bytes:
    return b"".join(gzip.compress(part, mtime=0) for part in parts)


# ------------------------------------------------------------------------------------------------
# XML urlset / index: namespaces, nesting
# ------------------------------------------------------------------------------------------------
A, B = "https://example.com/a", "https://example.com/b"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(urlset(A, B, ns=NS09), id="ns-0.9"),
        pytest.param(urlset(A, B, ns=NS084), id="ns-google-0.84"),
        pytest.param(urlset(A, B, ns=None), id="no-namespace"),
        pytest.param(urlset(A, B, ns="http://example.com/some/other/ns"), id="unknown-namespace"),
        pytest.param(
            f'<sm:urlset xmlns:sm="{NS09}"><sm:url><sm:loc>{A}</sm:loc></sm:url>'
            f"<sm:url><sm:loc>{B}</sm:loc></sm:url></sm:urlset>".encode(),
            id="prefixed",
        ),
        pytest.param(
            f'<urlset xmlns="{NS09}"><urlset><url><loc>{A}</loc></url></urlset>'
            f"<urlset><url><loc>{B}</loc></url></urlset></urlset>".encode(),
            id="nested-urlset",
        ),
        pytest.param(
            f'<?xml version="1.0"?>\n<!-- comment --><?xml-stylesheet href="s.xsl"?>\n<urlset xmlns="{NS09}">\n'
            f"  <url>\n    <loc>{A}</loc>\n  </url>\n  <!-- <url><loc>https://example.com/commented</loc></url> -->\n"
            f"  <url>\n    <loc>{B}</loc>\n  </url>\n</urlset>\n".encode(),
            id="pretty-printed-with-comments",
        ),
    ],
)
def test_urlset_namespaces_and_nesting(body: bytes) -> None:
    reader, entries = read(body)
    assert reader.type == "urlset"
    assert not reader.is_index
    assert reader.error is None
    assert reader.truncated is False
    assert urls_of(entries) == [A, B]
    assert entries[0] == page_entry(A)  # every attribute present, all None
    assert reader.url_count == 2


@pytest.mark.parametrize("ns", [NS09, NS084, None])
def test_sitemap_index(ns: str | None) -> None:
    xmlns = f' xmlns="{ns}"' if ns else ""
    body = (
        f"<sitemapindex{xmlns}>"
        "<sitemap><loc>https://example.com/sitemap-posts.xml</loc><lastmod>2024-03-04T05:06:07+00:00</lastmod></sitemap>"
        "<sitemap><loc> sitemap-pages.xml.gz </loc></sitemap>"
        "<sitemap><loc></loc></sitemap>"
        "<sitemap><lastmod>2024-01-01</lastmod></sitemap>"
        "<sitemap><loc>ftp://example.com/sitemap.xml</loc></sitemap>"
        "</sitemapindex>"
    ).encode()
    reader, entries = read(body, url="https://example.com/maps/index.xml")
    assert reader.type == "index"
    assert reader.is_index
    assert reader.error is None
    assert entries == [
        {"url": "https://example.com/sitemap-posts.xml", "lastmod": dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)},
        {"url": "https://example.com/maps/sitemap-pages.xml.gz", "lastmod": None},
        # not http(s): kept as written, so the crawl records it refused with the reason (never fetched)
        {"url": "ftp://example.com/sitemap.xml", "lastmod": None},
    ]
    assert reader.url_count == 3
    assert reader.lastmod_count == 1


def test_prefixed_sitemap_index() -> None:
    body = (
        f'<s:sitemapindex xmlns:s="{NS09}"><s:sitemap><s:loc>https://example.com/s1.xml</s:loc></s:sitemap>'
        "</s:sitemapindex>"
    ).encode()
    reader, entries = read(body)
    assert reader.type == "index"
    assert urls_of(entries) == ["https://example.com/s1.xml"]


def test_unknown_root_element_is_not_a_sitemap() -> None:
    reader, entries = read(b'<?xml version="1.0"?><catalog><url><loc>https://example.com/a</loc></url></catalog>')
    assert entries == []
    assert reader.type is None
    assert reader.error.startswith("not a sitemap")


# ------------------------------------------------------------------------------------------------
# <loc> forms
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        ("\n   https://example.com/spaced   \n\t", "https://example.com/spaced"),
        ("<![CDATA[https://example.com/cdata?x=1&y=2]]>", "https://example.com/cdata?x=1&y=2"),
        ("\n  <![CDATA[ https://example.com/cdata-spaced ]]>\n", "https://example.com/cdata-spaced"),
        ("https://example.com/q?a=1&amp;b=2", "https://example.com/q?a=1&b=2"),
        ("https://example.com/q?a=1&#38;b=2&#x26;c=3", "https://example.com/q?a=1&b=2&c=3"),
        ("https://example.com/&lt;tag&gt;", "https://example.com/<tag>"),
        ("/absolute-path", "https://example.com/absolute-path"),
        ("relative/page", "https://example.com/blog/relative/page"),
        ("//cdn.example.com/x", "https://cdn.example.com/x"),
        pytest.param(
            "HTTPS://Example.com/Upper", "HTTPS://Example.com/Upper"
        ),
        ("https://example.com/bücher/straße", "https://example.com/bücher/straße"),
        ("https://example.com/%E2%82%AC", "https://example.com/%E2%82%AC"),
        ("http://example.com/plain-http", "http://example.com/plain-http"),
    ],
)
def test_loc_forms_kept(loc: str, expected: str) -> None:
    body = f'<urlset xmlns="{NS09}"><url><loc>{loc}</loc></url></urlset>'.encode()
    reader, entries = read(body, url="https://example.com/blog/sitemap.xml")
    assert urls_of(entries) == [expected]
    assert reader.error is None


@pytest.mark.parametrize(
    "url_xml",
    [
        pytest.param("<url><loc></loc></url>", id="empty-loc"),
        pytest.param("<url><loc>   \n  </loc></url>", id="whitespace-loc"),
        pytest.param("<url><loc/></url>", id="self-closed-loc"),
        pytest.param("<url><lastmod>2024-01-01</lastmod></url>", id="missing-loc"),
        pytest.param("<url></url>", id="empty-url"),
        pytest.param("<url><loc>ftp://example.com/file</loc></url>", id="ftp"),
        pytest.param("<url><loc>mailto:someone@example.com</loc></url>", id="mailto"),
        pytest.param("<url><loc>javascript:alert(1)</loc></url>", id="javascript"),
        pytest.param("<url><loc>file:///etc/passwd</loc></url>", id="file"),
        pytest.param("<url><loc>data:text/html,hello</loc></url>", id="data"),
        pytest.param("<url><loc>https://example.com/has space</loc></url>", id="inner-space"),
        pytest.param("<url><loc>https://example.com/" + "a" * 2100 + "</loc></url>", id="over-2048-chars"),
        pytest.param("<url><loc>https://example.com/" + "b" * 50_000 + "</loc></url>", id="50k-chars"),
    ],
)
def test_unusable_loc_dropped_others_kept(url_xml: str) -> None:
    body = f'<urlset xmlns="{NS09}"><url><loc>{A}</loc></url>{url_xml}<url><loc>{B}</loc></url></urlset>'.encode()
    reader, entries = read(body)
    assert urls_of(entries) == [A, B]
    assert reader.url_count == 2
    assert reader.type == "urlset"


def test_long_but_legal_loc_kept() -> None:
    loc = "https://example.com/" + "a" * (2000 - len("https://example.com/"))
    reader, entries = read(urlset(loc, A))
    assert urls_of(entries) == [loc, A]


# ------------------------------------------------------------------------------------------------
# BOM and blank lines before <?xml (libxml2 recover mode would drop &amp;)
# ------------------------------------------------------------------------------------------------
AMP_DOC = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
    b"<url><loc>https://example.com/?a=1&amp;b=2</loc></url>"
    b"<url><loc>https://example.com/x?c=3&amp;d=4&amp;e=5</loc></url>"
    b"</urlset>"
)
AMP_URLS = ["https://example.com/?a=1&b=2", "https://example.com/x?c=3&d=4&e=5"]


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param(b"", id="none"),
        pytest.param(b"\xef\xbb\xbf", id="bom"),
        pytest.param(b"\n\n", id="blank-lines"),
        pytest.param(b"\r\n\r\n", id="crlf-blank-lines"),
        pytest.param(b"   \t \n", id="spaces-tabs"),
        pytest.param(b"\xef\xbb\xbf\r\n   \n\n", id="bom-and-blank-lines"),
    ],
)
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("chunk_size", [1, 7, CHUNK_SIZE])
def test_bom_and_blank_lines_before_xml_declaration_keep_entities(prefix: bytes, gzipped: bool, chunk_size: int) -> None:
    body = prefix + AMP_DOC
    if gzipped:
        body = gzip.compress(body, mtime=0)
    reader, entries = read(body, chunk_size=chunk_size)
    assert urls_of(entries) == AMP_URLS
    assert reader.type == "urlset"
    assert reader.error is None
    assert reader.gzipped is gzipped


# ------------------------------------------------------------------------------------------------
# gzip
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", [SM_URL, "https://example.com/sitemap.xml.gz", "https://example.com/sitemap", "https://example.com/s.txt"])
def test_gzip_recognised_by_magic_bytes_whatever_the_name(url: str) -> None:
    reader, entries = read(gzip.compress(urlset(A, B), mtime=0), url=url)
    assert reader.gzipped is True
    assert urls_of(entries) == [A, B]
    assert reader.error is None


def test_gz_name_holding_plain_xml() -> None:
    reader, entries = read(urlset(A, B), url="https://example.com/sitemap.xml.gz")
    assert reader.gzipped is False
    assert urls_of(entries) == [A, B]
    assert reader.error is None


def test_gzip_size_is_the_decompressed_size() -> None:
    doc = numbered_urlset(100)
    reader, _ = read(gzip.compress(doc, mtime=0))
    assert reader.size == len(doc)


@pytest.mark.parametrize("split", [1, 40, 100, 777, 2000])
@pytest.mark.parametrize("chunk_size", [7, CHUNK_SIZE])
def test_multi_member_gzip(split: int, chunk_size: int) -> None:
    doc = numbered_urlset(60)
    expected = urls_of(read(doc)[1])
    body = gzip_members(doc[:split], doc[split:])
    reader, entries = read(body, chunk_size=chunk_size)
    assert urls_of(entries) == expected
    assert reader.error is None
    assert reader.truncated is False


def test_three_member_gzip_text_sitemap() -> None:
    body = gzip_members(b"https://example.com/1\nhttps://exa", b"mple.com/2\n", b"https://example.com/3\n")
    reader, entries = read(body, url="https://example.com/sitemap.txt.gz")
    assert reader.type == "text"
    assert urls_of(entries) == ["https://example.com/1", "https://example.com/2", "https://example.com/3"]


def _gzip_with_corruption(good: bytes) -> bytes:
    """A gzip member whose deflate stream is valid for all of `good`, then hits an invalid block type."""
    comp = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    stream = comp.compress(good) + comp.flush(zlib.Z_FULL_FLUSH)
    return stream + b"\xff" * 64  # BFINAL=1, BTYPE=11: "invalid block type"


def _corrupt_case() -> tuple[bytes, list[str]]:
    doc = numbered_urlset(400)
    cut = doc.index(b"<url><loc>https://example.com/page-200<")
    full = urls_of(read(doc)[1])
    return _gzip_with_corruption(doc[:cut]), full[:200]


@pytest.mark.parametrize("chunk_size", [64, 4096, CHUNK_SIZE])
def test_corrupt_gzip_sets_error_and_keeps_a_clean_prefix(chunk_size: int) -> None:
    body, before = _corrupt_case()
    reader, entries = read(body, chunk_size=chunk_size)
    assert reader.error is not None and "gzip" in reader.error
    assert reader.truncated is True
    assert urls_of(entries) == before[: len(entries)]  # no garbage, nothing after the corruption


def test_corrupt_gzip_keeps_entries_before_the_corruption() -> None:
    body, before = _corrupt_case()
    reader, entries = read(body)
    assert reader.error is not None
    assert urls_of(entries) == before


@pytest.mark.parametrize("chunk_size", [7, 4096, CHUNK_SIZE])
def test_truncated_gzip_every_cut(chunk_size: int) -> None:
    doc = numbered_urlset(30, "<lastmod>2024-01-02</lastmod>")
    full = urls_of(read(doc)[1])
    compressed = gzip.compress(doc, mtime=0)
    for cut in range(2, len(compressed) - 8):  # the last 8 bytes are the CRC/size trailer
        reader, entries = read(compressed[:cut], chunk_size=chunk_size)
        got = urls_of(entries)
        assert got == full[: len(got)], cut
        assert reader.truncated is True, cut
        assert reader.error, cut
    # a cut where half the document has come through keeps the complete entries of that half
    cut = next(c for c in range(len(compressed)) if len(zlib.decompressobj(31).decompress(compressed[:c])) >= len(doc) // 2)
    reader, entries = read(compressed[:cut], chunk_size=chunk_size)
    assert "gzip" in reader.error
    half = zlib.decompressobj(31).decompress(compressed[:cut])
    assert urls_of(entries) == full[: half.count(b"</url>")]
    assert 0 < len(entries) < len(full)


def test_gzip_header_only() -> None:
    reader, entries = read(b"\x1f\x8b\x08\x00")
    assert entries == []
    assert reader.gzipped is True
    assert reader.error


# ------------------------------------------------------------------------------------------------
# Decompression cap (max_bytes) and bombs
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_max_bytes_keeps_entries_before_the_cap(gzipped: bool) -> None:
    doc = numbered_urlset(200)
    full = urls_of(read(doc)[1])
    for cap in (60, 100, 257, 1000, 4321, len(doc) - 1):
        body = gzip.compress(doc, mtime=0) if gzipped else doc
        for chunk_size in (64, CHUNK_SIZE):
            reader, entries = read(body, max_bytes=cap, chunk_size=chunk_size)
            assert urls_of(entries) == full[: doc[:cap].count(b"</url>")], (cap, chunk_size)
            assert reader.truncated is True
            assert str(cap) in reader.error
            assert reader.size == cap
    reader, entries = read(gzip.compress(doc, mtime=0) if gzipped else doc, max_bytes=len(doc))
    assert urls_of(entries) == full
    assert reader.truncated is False and reader.error is None


def _gzip_bomb(head: bytes, block: bytes, repeats: int, tail: bytes) -> bytes:
    """A valid gzip file of head + block * repeats + tail, built without ever holding the expansion:
    `block` is deflated once between full flushes, so its compressed form can be repeated verbatim."""

    def deflate(data: bytes, mode: int) -> bytes:
        comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        return comp.compress(data) + comp.flush(mode)

    crc = zlib.crc32(head)
    for _ in range(repeats):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + len(block) * repeats + len(tail)
    return (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        + deflate(head, zlib.Z_FULL_FLUSH)
        + deflate(block, zlib.Z_FULL_FLUSH) * repeats
        + deflate(tail, zlib.Z_FINISH)
        + struct.pack("<II", crc, size & 0xFFFFFFFF)
    )


def test_gzip_bomb_builder_is_valid_gzip() -> None:
    bomb = _gzip_bomb(b"<a>", b"0" * 1000, 3, b"</a>")
    assert gzip.decompress(bomb) == b"<a>" + b"0" * 3000 + b"</a>"


BOMB_HEAD = (
    b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
    + b"".join(b"<url><loc>https://example.com/%d</loc></url>" % i for i in range(3))
)


@pytest.mark.parametrize(
    ("head", "tail"),
    [
        pytest.param(BOMB_HEAD + b"<!-- ", b" --><url><loc>https://example.com/after</loc></url></urlset>", id="in-comment"),
        pytest.param(BOMB_HEAD + b"<url><loc>https://example.com/", b"</loc></url></urlset>", id="in-loc"),
        pytest.param(b"https://example.com/0\nhttps://example.com/1\nhttps://example.com/2\n", b"\n", id="text-line"),
    ],
)
def test_gzip_bomb_is_capped_and_memory_bounded(head: bytes, tail: bytes) -> None:
    mib = 1024 * 1024
    bomb = _gzip_bomb(head, b"0" * mib, 1024, tail)  # 1 GiB once decompressed, ~1 MB as sent
    assert len(bomb) < 2 * mib
    cap = 10 * mib

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        reader, entries = read(bomb, url="https://example.com/sitemap.xml.gz", max_bytes=cap)
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024

    assert urls_of(entries) == [f"https://example.com/{i}" for i in range(3)]
    assert reader.truncated is True
    assert str(cap) in reader.error
    assert reader.size == cap
    assert python_peak < 64 * mib
    assert rss_growth < 200 * mib


# ------------------------------------------------------------------------------------------------
# Truncated XML: the entry cut is dropped, every earlier complete entry kept
# ------------------------------------------------------------------------------------------------
TRUNC_DOC = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<urlset xmlns="{NS09}" {EXT_NS}>\n'
    + "".join(
        f"  <url>\n    <loc>https://example.com/p{i}?a=1&amp;b=2</loc>\n"
        f"    <lastmod>2024-01-0{i + 1}</lastmod>\n"
        f"    <image:image><image:loc>https://example.com/i{i}.png</image:loc></image:image>\n"
        "  </url>\n"
        for i in range(5)
    )
    + "</urlset>\n"
).encode()


@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_truncated_xml_at_every_cut_point(chunk_size: int) -> None:
    full_reader, full_entries = read(TRUNC_DOC)
    full = urls_of(full_entries)
    assert len(full) == 5 and full_reader.error is None
    root_open = TRUNC_DOC.index(b"<urlset")
    root_ready = TRUNC_DOC.index(b">", root_open) + 1
    end = len(TRUNC_DOC.rstrip())
    for cut in range(len(TRUNC_DOC) + 1):
        reader, entries = read(TRUNC_DOC[:cut], chunk_size=chunk_size)
        got = urls_of(entries)
        closed = TRUNC_DOC[:cut].count(b"</url>")
        assert got == full[:closed], (cut, TRUNC_DOC[max(0, cut - 20) : cut])
        assert reader.url_count == closed
        if root_ready <= cut < end:
            assert reader.truncated is True, cut
            assert reader.type == "urlset"
        if 0 < cut < end and TRUNC_DOC[:cut].strip():
            assert reader.error, cut
        if cut >= end:
            assert reader.error is None and reader.truncated is False
    # every entry that survived a cut is whole: its lastmod and image are there
    reader, entries = read(TRUNC_DOC[: TRUNC_DOC.rindex(b"</url>") - 1])
    assert [e["lastmod"].day for e in entries] == [1, 2, 3, 4]
    assert all(len(e["images"]) == 1 for e in entries)


def test_truncated_index_at_every_cut_point() -> None:
    doc = (
        f'<sitemapindex xmlns="{NS09}">'
        + "".join(f"<sitemap><loc>https://example.com/s{i}.xml</loc><lastmod>2024-02-0{i + 1}</lastmod></sitemap>" for i in range(4))
        + "</sitemapindex>"
    ).encode()
    full = urls_of(read(doc)[1])
    for cut in range(len(doc)):
        reader, entries = read(doc[:cut], chunk_size=7)
        assert urls_of(entries) == full[: doc[:cut].count(b"</sitemap>")], cut


def test_truncated_real_world_cut_mid_loc() -> None:
    doc = numbered_urlset(10)
    cut = doc.index(b"page-7") + 3
    reader, entries = read(doc[:cut])
    assert urls_of(entries) == [f"https://example.com/page-{i}" for i in range(7)]
    assert reader.truncated is True
    assert "truncated" in reader.error


# ------------------------------------------------------------------------------------------------
# chunk_size makes no difference
# ------------------------------------------------------------------------------------------------
RICH_DOC = f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="{NS09}" {EXT_NS}>
<url><loc>https://example.com/a?x=1&amp;y=2</loc><lastmod>2024-01-02T03:04:05Z</lastmod><changefreq>daily</changefreq><priority>0.7</priority>
 <xhtml:link rel="alternate" hreflang="de" href="https://example.com/de/a"/>
 <image:image><image:loc>https://example.com/1.jpg</image:loc><image:caption>c</image:caption></image:image>
</url>
<url><loc><![CDATA[https://example.com/b]]></loc><news:news><news:publication><news:name>N</news:name><news:language>en</news:language></news:publication><news:title>T</news:title></news:news></url>
<url><loc>https://example.com/ü</loc><video:video><video:title>V</video:title><video:thumbnail_loc>https://example.com/t.jpg</video:thumbnail_loc></video:video></url>
<url><loc>https://example.com/bad</loc><priority>7</priority><changefreq>often</changefreq><lastmod>never</lastmod></url>
</urlset>
""".encode()


@pytest.mark.parametrize("body", [RICH_DOC, gzip.compress(RICH_DOC, mtime=0), b"\xef\xbb\xbf\n" + RICH_DOC], ids=["plain", "gzip", "bom"])
def test_chunk_size_does_not_change_the_result(body: bytes) -> None:
    def summary(chunk_size: int):
        reader, entries = read(body, chunk_size=chunk_size)
        return entries, (
            reader.type, reader.error, reader.truncated, reader.gzipped, reader.url_count,
            reader.lastmod_count, reader.priority_count, reader.changefreq_count,
        )

    reference = summary(CHUNK_SIZE)
    assert len(reference[0]) == 4
    for chunk_size in (1, 7, 4096):
        assert summary(chunk_size) == reference, chunk_size


@pytest.mark.parametrize("chunk_size", [1, 7])
def test_generator_detected_whatever_the_chunk_size(chunk_size: int) -> None:
    body = b'<?xml version="1.0"?>\n<!-- XML Sitemap generated by Yoast SEO -->\n' + urlset(A)
    reader, _ = read(body, chunk_size=chunk_size)
    assert reader.generator == "Yoast SEO"


# ------------------------------------------------------------------------------------------------
# Security: entities never resolved
# ------------------------------------------------------------------------------------------------
def _billion_laughs(body: str) -> bytes:
    ents = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    ]
    return ('<?xml version="1.0"?>\n<!DOCTYPE urlset [\n' + "\n".join(ents) + f"\n]>\n<urlset>{body}</urlset>").encode()


@pytest.mark.parametrize(
    "body",
    [
        "<url><loc>https://example.com/ok</loc></url><url><loc>https://example.com/&lol9;</loc></url>",
        "<url><loc>https://example.com/ok</loc></url><url><loc>https://example.com/x</loc><lastmod>&lol9;</lastmod></url>",
        "<url><loc>https://example.com/ok</loc></url>&lol9;&lol9;",
        '<url><loc>https://example.com/ok</loc></url><url><loc>https://example.com/y</loc>'
        '<image:image xmlns:image="http://www.google.com/schemas/sitemap-image/1.1"><image:loc>https://example.com/i</image:loc>'
        "<image:title>&lol9;</image:title></image:image></url>",
    ],
)
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_billion_laughs_never_expanded(body: str, gzipped: bool) -> None:
    data = _billion_laughs(body)
    reader, entries = read(gzip.compress(data, mtime=0) if gzipped else data)
    output = repr(entries) + repr(reader.error) + repr(reader.generator)
    assert "lollol" not in output
    assert reader.size < 10_000
    assert urls_of(entries)[:1] == ["https://example.com/ok"]  # entries before the bomb kept


def test_xxe_internal_subset_entity_never_resolved() -> None:
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE urlset [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>\n'
        b'<urlset xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
        b"<url><loc>https://example.com/&xxe;</loc></url>"
        b"<url><loc>https://example.com/ok</loc><news:news><news:title>&xxe;</news:title></news:news></url>"
        b"<url><loc>&xxe;</loc></url>"
        b"</urlset>"
    )
    reader, entries = read(body)
    output = repr(entries) + repr(reader.error)
    assert "root:" not in output
    assert urls_of(entries) == ["https://example.com/ok"]


def test_entity_from_a_local_dtd_file_never_resolved(tmp_path) -> None:
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY leak "SECRET-FROM-DISK">')
    for doctype in (
        f'<!DOCTYPE urlset SYSTEM "{dtd.as_uri()}">',
        f'<!DOCTYPE urlset [ <!ENTITY % ext SYSTEM "{dtd.as_uri()}"> %ext; ]>',
    ):
        body = (doctype + "\n<urlset><url><loc>https://example.com/&leak;</loc></url>"
                "<url><loc>https://example.com/ok</loc></url></urlset>").encode()
        reader, entries = read(body)
        assert "SECRET" not in repr(entries) + repr(reader.error)
        assert "https://example.com/ok" in urls_of(entries)


@pytest.mark.parametrize("form", ["external-subset", "parameter-entity"])
def test_local_files_named_in_the_doctype_are_never_read(tmp_path, form: str) -> None:
    fake = tmp_path / "passwd"
    fake.write_text("root:x:0:0:root:/root:/bin/bash\n")
    doctype = (
        f'<!DOCTYPE urlset SYSTEM "{fake.as_uri()}">'
        if form == "external-subset"
        else f'<!DOCTYPE urlset [ <!ENTITY % p SYSTEM "{fake.as_uri()}"> %p; ]>'
    )
    body = (f'<?xml version="1.0"?>\n{doctype}\n<urlset xmlns="{NS09}">'
            "<url><loc>https://example.com/ok</loc></url></urlset>").encode()
    reader, entries = read(body)
    assert "root:" not in repr(entries) + repr(reader.error)
    assert urls_of(entries) == ["https://example.com/ok"]
    assert reader.error is None


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE urlset SYSTEM "http://127.0.0.1:9/sitemap.dtd">',
        '<!DOCTYPE urlset PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">',
        "<!DOCTYPE urlset>",
        '<!DOCTYPE urlset [ <!ENTITY a "b"> ]>',
    ],
)
def test_harmless_doctypes_do_not_hide_the_urls(doctype: str) -> None:
    body = f'<?xml version="1.0"?>\n{doctype}\n<urlset xmlns="{NS09}"><url><loc>{A}</loc></url></urlset>'.encode()
    reader, entries = read(body)
    assert urls_of(entries) == [A]
    assert reader.type == "urlset"


# ------------------------------------------------------------------------------------------------
# Not a sitemap: HTML soft 404, empty bodies
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'<html><head><title>Not found</title></head><body><a href="https://example.com/a">a</a></body></html>', id="html"),
        pytest.param(b"<HTML><BODY>Not found</BODY></HTML>", id="upper-case"),
        pytest.param(b"<!DOCTYPE html>\n<html lang=\"en\"><head><title>404</title></head><body></body></html>", id="doctype"),
        pytest.param(b"\n\n  <!DOCTYPE html><html><body>x</body></html>", id="leading-blank"),
        pytest.param(b'<html xmlns="http://www.w3.org/1999/xhtml"><body>x</body></html>', id="xhtml-ns"),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
            b'"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd"><html xmlns="http://www.w3.org/1999/xhtml"><body/></html>',
            id="xhtml-doctype",
        ),
        pytest.param(
            b"<!doctype html>\n<html><head><title>Page not found</title></head><body>Sorry</body></html>",
            id="lower-case-doctype"
        ),
    ],
)
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_html_soft_404(body: bytes, gzipped: bool) -> None:
    reader, entries = read(gzip.compress(body, mtime=0) if gzipped else body)
    assert entries == []
    assert reader.type is None
    assert "html" in reader.error.lower()
    assert reader.url_count == 0


@pytest.mark.parametrize(
    "body",
    [b"", b" ", b"   \n\t\r\n  ", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n", b"\x00\x00", gzip.compress(b"", mtime=0), gzip.compress(b" \n\n ", mtime=0)],
    ids=["empty", "space", "whitespace", "bom", "bom-ws", "nuls", "gzip-empty", "gzip-ws"],
)
def test_empty_and_whitespace_only_bodies(body: bytes) -> None:
    reader, entries = read(body)
    assert entries == []
    assert reader.type is None
    assert reader.error == "empty body"


def test_xml_declaration_only() -> None:
    reader, entries = read(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    assert entries == [] and reader.type is None and reader.error


def test_non_utf8_declared_encoding() -> None:
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><urlset><url><loc>https://example.com/café</loc></url></urlset>'.encode("latin-1")
    _, entries = read(body)
    assert urls_of(entries) == ["https://example.com/café"]


# ------------------------------------------------------------------------------------------------
# Text sitemaps
# ------------------------------------------------------------------------------------------------
TEXT_SITEMAP = (
    b"https://example.com/1\r\n"
    b"\r\n"
    b"   https://example.com/2   \n"
    b"\n\n"
    b"# a comment line\n"
    b"this is junk\n"
    b"ftp://example.com/ftp\n"
    b"/relative/path\n"
    b"https://example.com/has space\n"
    b"\thttp://example.com/3?a=1&b=2\t\r\n"
    b"https://example.com/b\xc3\xbccher\n"
    b"https://example.com/4"  # no final newline
)
TEXT_URLS = [
    "https://example.com/1",
    "https://example.com/2",
    "http://example.com/3?a=1&b=2",
    "https://example.com/bücher",
    "https://example.com/4",
]


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("chunk_size", [1, 5, 7, 23, 4096, CHUNK_SIZE])
def test_text_sitemap(gzipped: bool, chunk_size: int) -> None:
    body = gzip.compress(TEXT_SITEMAP, mtime=0) if gzipped else TEXT_SITEMAP
    reader, entries = read(body, url="https://example.com/sitemap.txt", chunk_size=chunk_size)
    assert reader.type == "text"
    assert reader.error is None
    assert reader.gzipped is gzipped
    assert urls_of(entries) == TEXT_URLS
    assert entries[0] == page_entry(TEXT_URLS[0])
    assert reader.url_count == len(TEXT_URLS)


def test_text_sitemap_with_bom_and_leading_blank_lines() -> None:
    reader, entries = read(b"\xef\xbb\xbf\n\r\nhttps://example.com/1\nhttps://example.com/2\n")
    assert reader.type == "text"
    assert urls_of(entries) == ["https://example.com/1", "https://example.com/2"]


def test_truncated_gzipped_text_sitemap_drops_the_cut_line() -> None:
    lines = [f"https://example.com/page-{i}" for i in range(300)]
    compressed = gzip.compress("\n".join(lines).encode(), mtime=0)
    for cut in range(20, len(compressed) - 8, 17):
        reader, entries = read(compressed[:cut], chunk_size=64)
        got = urls_of(entries)
        assert got == lines[: len(got)], cut
        assert reader.truncated is True


def test_text_sitemap_over_the_cap_drops_the_cut_line() -> None:
    lines = [f"https://example.com/page-{i}" for i in range(100)]
    body = "\n".join(lines).encode()
    cap = body.index(b"page-50") + 2
    reader, entries = read(body, max_bytes=cap, chunk_size=64)
    assert urls_of(entries) == lines[:50]
    assert reader.truncated is True and str(cap) in reader.error


# ------------------------------------------------------------------------------------------------
# RSS 2.0, RSS 1.0 (RDF), Atom
# ------------------------------------------------------------------------------------------------
def test_rss2() -> None:
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Feed</title><link>https://example.com/</link>
<item><title>A</title><link>https://example.com/a</link><pubDate>Tue, 10 Jun 2003 04:00:00 GMT</pubDate></item>
<item><title>B</title><guid isPermaLink="true">https://example.com/b</guid><pubDate>Tue, 10 Jun 2003 04:00:00 +0200</pubDate></item>
<item><guid>https://example.com/c</guid><pubDate>Wed, 11 Jun 2003 09:30:00 EST</pubDate></item>
<item><guid isPermaLink="false">tag:example.com,2003:42</guid></item>
<item><guid isPermaLink="false">https://example.com/not-a-permalink</guid></item>
<item><link>  https://example.com/d  </link><pubDate>not a date</pubDate></item>
<item><link>/e</link></item>
<item><title>no link at all</title></item>
</channel></rss>"""
    reader, entries = read(body, url="https://example.com/feed")
    assert reader.type == "rss"
    assert reader.error is None
    assert urls_of(entries) == [
        "https://example.com/a",
        "https://example.com/b",
        "https://example.com/c",
        "https://example.com/d",
        "https://example.com/e",
    ]
    lastmods = [entry["lastmod"] for entry in entries]
    assert lastmods[0] == dt.datetime(2003, 6, 10, 4, 0, tzinfo=UTC)
    assert lastmods[1] == dt.datetime(2003, 6, 10, 2, 0, tzinfo=UTC)
    assert lastmods[1].utcoffset() == dt.timedelta(hours=2)
    assert lastmods[2] == dt.datetime(2003, 6, 11, 14, 30, tzinfo=UTC)
    assert all(value.tzinfo is not None for value in lastmods[:3])
    assert lastmods[3:] == [None, None]
    assert reader.url_count == 5 and reader.lastmod_count == 3
    assert entries[0].keys() == page_entry("x").keys()


def test_rss1_rdf() -> None:
    body = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://example.com/"><title>t</title><link>https://example.com/</link></channel>
<item rdf:about="https://example.com/r1"><title>r1</title><link>https://example.com/r1</link><dc:date>2004-05-06T07:08:09Z</dc:date></item>
<item rdf:about="https://example.com/r2"><title>r2</title><link>https://example.com/r2</link></item>
</rdf:RDF>"""
    reader, entries = read(body)
    assert reader.type == "rss"
    assert urls_of(entries) == ["https://example.com/r1", "https://example.com/r2"]
    assert entries[0]["lastmod"] == dt.datetime(2004, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert entries[1]["lastmod"] is None


def test_atom() -> None:
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><link href="https://example.com/"/>
<updated>2003-12-13T18:30:02Z</updated>
<entry><title>a</title><link rel="self" href="https://example.com/api/a"/><link rel="alternate" href="https://example.com/a"/>
 <published>2003-01-01T00:00:00Z</published><updated>2003-12-13T18:30:02+01:00</updated></entry>
<entry><link href="https://example.com/b"/><link rel="alternate" href="https://example.com/b-second"/><published>2003-02-01T00:00:00Z</published></entry>
<entry><link rel="Alternate" href=" /c "/><updated>garbage</updated></entry>
<entry><link rel="enclosure" href="https://example.com/file.mp3"/><link rel="edit" href="https://example.com/edit"/></entry>
<entry><title>no link</title></entry>
</feed>"""
    reader, entries = read(body, url="https://example.com/feed.atom")
    assert reader.type == "atom"
    assert reader.error is None
    assert urls_of(entries) == ["https://example.com/a", "https://example.com/b", "https://example.com/c"]
    assert entries[0]["lastmod"] == dt.datetime(2003, 12, 13, 17, 30, 2, tzinfo=UTC)  # updated wins
    assert entries[1]["lastmod"] == dt.datetime(2003, 2, 1, tzinfo=UTC)  # published as a fallback
    assert entries[2]["lastmod"] is None
    assert reader.url_count == 3 and reader.lastmod_count == 2


# ------------------------------------------------------------------------------------------------
# Extensions: image, news, video, hreflang
# ------------------------------------------------------------------------------------------------
EXT_DOC = f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="{NS09}" {EXT_NS}>
<url><loc>https://example.com/img</loc>
 <image:image><image:loc>https://example.com/1.jpg</image:loc><image:title>One</image:title><image:caption>Caption one</image:caption></image:image>
 <image:image><image:loc> https://example.com/2.jpg </image:loc></image:image>
 <image:image><image:title>no loc: dropped</image:title></image:image>
 <image:image><image:loc>https://example.com/3.jpg</image:loc><image:caption><![CDATA[A & B]]></image:caption></image:image>
</url>
<url><loc>https://example.com/news</loc>
 <news:news>
  <news:publication><news:name>The Example Times</news:name><news:language>en</news:language></news:publication>
  <news:publication_date>2008-12-23T10:00:00+01:00</news:publication_date>
  <news:title>Companies A, B in Merger Talks</news:title>
 </news:news>
</url>
<url><loc>https://example.com/video</loc>
 <video:video>
  <video:thumbnail_loc>https://example.com/thumb.jpg</video:thumbnail_loc>
  <video:title>Grilling steaks</video:title>
  <video:description>How to grill &amp; serve.</video:description>
  <video:content_loc>https://example.com/video.mp4</video:content_loc>
  <video:player_loc>https://example.com/player?video=1&amp;autoplay=0</video:player_loc>
 </video:video>
 <video:video><video:title>Second</video:title><video:content_loc>https://example.com/2.mp4</video:content_loc></video:video>
</url>
<url><loc>https://example.com/en</loc>
 <xhtml:link rel="alternate" hreflang="de" href="https://example.com/de"/>
 <xhtml:link rel="alternate" href="https://example.com/no-hreflang"/>
 <xhtml:link rel="alternate" hreflang="fr"/>
 <xhtml:link rel="alternate" hreflang="es" href=""/>
 <xhtml:link rel="alternate" hreflang=" x-default " href=" https://example.com/ "/>
</url>
<url><loc>https://example.com/plain</loc></url>
</urlset>
""".encode()


@pytest.fixture(scope="module")
def ext_entries():
    reader, entries = read(EXT_DOC)
    assert reader.error is None
    return {entry["url"]: entry for entry in entries}


def test_image_extension(ext_entries) -> None:
    assert ext_entries["https://example.com/img"]["images"] == [
        {"loc": "https://example.com/1.jpg", "title": "One", "caption": "Caption one"},
        {"loc": "https://example.com/2.jpg"},
        {"loc": "https://example.com/3.jpg", "caption": "A & B"},
    ]


def test_news_extension(ext_entries) -> None:
    news = ext_entries["https://example.com/news"]["news"]
    assert news["publication"] == "The Example Times"
    assert news["language"] == "en"
    assert news["title"] == "Companies A, B in Merger Talks"
    assert news["publication_date"].startswith("2008-12-23")


def test_video_extension(ext_entries) -> None:
    videos = ext_entries["https://example.com/video"]["videos"]
    assert videos[0] == {
        "thumbnail_loc": "https://example.com/thumb.jpg",
        "title": "Grilling steaks",
        "description": "How to grill & serve.",
        "content_loc": "https://example.com/video.mp4",
        "player_loc": "https://example.com/player?video=1&autoplay=0",
    }
    assert videos[1] == {"title": "Second", "content_loc": "https://example.com/2.mp4"}


def test_hreflang_alternates(ext_entries) -> None:
    assert ext_entries["https://example.com/en"]["alternates"] == [
        {"href": "https://example.com/de", "hreflang": "de"},
        {"href": "https://example.com/no-hreflang"},  # missing hreflang tolerated
        {"href": "https://example.com/", "hreflang": "x-default"},  # missing/empty href dropped
    ]


def test_entries_without_extensions_have_none(ext_entries) -> None:
    plain = ext_entries["https://example.com/plain"]
    assert plain == page_entry("https://example.com/plain")
    assert ext_entries["https://example.com/img"]["news"] is None
    assert ext_entries["https://example.com/news"]["images"] is None


# ------------------------------------------------------------------------------------------------
# Bad values: the URL is kept, the value dropped
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("child", "field", "expected"),
    [
        ("<changefreq>sometimes</changefreq>", "changefreq", None),
        ("<changefreq></changefreq>", "changefreq", None),
        ("<changefreq>DAILY</changefreq>", "changefreq", "daily"),
        ("<changefreq> weekly\n</changefreq>", "changefreq", "weekly"),
        ("<changefreq>never</changefreq>", "changefreq", "never"),
        ("<priority>1.5</priority>", "priority", None),
        ("<priority>-0.1</priority>", "priority", None),
        ("<priority>NaN</priority>", "priority", None),
        ("<priority>inf</priority>", "priority", None),
        ("<priority>high</priority>", "priority", None),
        ("<priority></priority>", "priority", None),
        ("<priority>0,5</priority>", "priority", None),
        ("<priority>0</priority>", "priority", 0.0),
        ("<priority>1.0</priority>", "priority", 1.0),
        ("<priority> 0.8 </priority>", "priority", 0.8),
        ("<lastmod>yesterday</lastmod>", "lastmod", None),
        ("<lastmod>2024-13-45</lastmod>", "lastmod", None),
        ("<lastmod>2024-02-30</lastmod>", "lastmod", None),
        ("<lastmod></lastmod>", "lastmod", None),
        ("<lastmod>0000-00-00T00:00:00+00:00</lastmod>", "lastmod", None),
        ("<lastmod> 2024-02-03 </lastmod>", "lastmod", dt.datetime(2024, 2, 3, tzinfo=UTC)),
    ],
)
def test_bad_values_dropped_url_kept(child: str, field: str, expected) -> None:
    body = f'<urlset xmlns="{NS09}"><url><loc>{A}</loc>{child}</url><url><loc>{B}</loc></url></urlset>'.encode()
    reader, entries = read(body)
    assert urls_of(entries) == [A, B]
    assert entries[0][field] == expected
    assert reader.error is None
    count = {"lastmod": reader.lastmod_count, "priority": reader.priority_count, "changefreq": reader.changefreq_count}[field]
    assert count == (0 if expected is None else 1)


def test_bad_index_lastmod_keeps_the_sitemap() -> None:
    body = b"<sitemapindex><sitemap><loc>https://example.com/s.xml</loc><lastmod>last tuesday</lastmod></sitemap></sitemapindex>"
    _, entries = read(body)
    assert entries == [{"url": "https://example.com/s.xml", "lastmod": None}]


# ------------------------------------------------------------------------------------------------
# W3C datetime
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024", dt.datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-02", dt.datetime(2024, 2, 1, tzinfo=UTC)),
        ("2024-02-03", dt.datetime(2024, 2, 3, tzinfo=UTC)),
        ("2024-02-03T04:05Z", dt.datetime(2024, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-02-03T04:05+01:00", dt.datetime(2024, 2, 3, 3, 5, tzinfo=UTC)),
        ("2024-02-03T04:05:06Z", dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)),
        ("2024-02-03T04:05:06+00:00", dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)),
        ("2024-02-03T04:05:06-05:30", dt.datetime(2024, 2, 3, 9, 35, 6, tzinfo=UTC)),
        ("2024-02-03T04:05:06.5Z", dt.datetime(2024, 2, 3, 4, 5, 6, 500000, tzinfo=UTC)),
        ("2024-02-03T04:05:06.123456+02:00", dt.datetime(2024, 2, 3, 2, 5, 6, 123456, tzinfo=UTC)),
        ("2024-02-03t04:05:06z", dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)),
        ("2024-02-03T04:05:06", dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)),  # no zone: UTC
        ("  2024-02-03T04:05:06Z \n", dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)),
        ("Tue, 10 Jun 2003 04:00:00 GMT", dt.datetime(2003, 6, 10, 4, tzinfo=UTC)),
        ("Tue, 10 Jun 2003 04:00:00 +0200", dt.datetime(2003, 6, 10, 2, tzinfo=UTC)),
    ],
)
def test_w3c_datetime_forms(value: str, expected: dt.datetime) -> None:
    parsed = parse_w3c_datetime(value)
    assert parsed is not None
    assert parsed.tzinfo is not None and parsed.utcoffset() is not None
    assert parsed == expected


def test_w3c_datetime_keeps_the_offset() -> None:
    assert parse_w3c_datetime("2024-02-03T04:05:06+01:00").utcoffset() == dt.timedelta(hours=1)


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "abcd", "2024-13", "2024-00", "2024-02-30", "2024-13-01", "0000", "24-02-03", "2024/02/03x",
     "2024-02-03T25:00Z", "2024-02-03T04:05:06+25:00", "yesterday", "Mon, 99 Foo 2003"],
)
def test_w3c_datetime_unparseable(value) -> None:
    assert parse_w3c_datetime(value) is None


def test_w3c_datetime_memo_returns_equal_values() -> None:
    assert parse_w3c_datetime("2021-05-06") == parse_w3c_datetime("2021-05-06") == dt.datetime(2021, 5, 6, tzinfo=UTC)
    assert parse_w3c_datetime("nope") is None and parse_w3c_datetime("nope") is None


# ------------------------------------------------------------------------------------------------
# Counts and generator
# ------------------------------------------------------------------------------------------------
def test_counts() -> None:
    body = f"""<urlset xmlns="{NS09}">
<url><loc>https://example.com/1</loc><lastmod>2024-01-01</lastmod><changefreq>daily</changefreq><priority>0.5</priority></url>
<url><loc>https://example.com/2</loc><lastmod>2024-01-01</lastmod></url>
<url><loc>https://example.com/3</loc><priority>0.1</priority><lastmod>bad</lastmod></url>
<url><loc>https://example.com/4</loc><changefreq>hourly</changefreq><priority>2</priority></url>
<url><loc></loc><lastmod>2024-01-01</lastmod><priority>0.5</priority><changefreq>daily</changefreq></url>
<url><loc>https://example.com/5</loc><changefreq>nope</changefreq></url>
</urlset>""".encode()
    reader, entries = read(body)
    assert len(entries) == 5
    assert (reader.url_count, reader.lastmod_count, reader.priority_count, reader.changefreq_count) == (5, 2, 2, 2)


def test_counts_start_at_zero_before_iteration() -> None:
    reader = SitemapReader(urlset(A), SM_URL)
    assert (reader.type, reader.url_count, reader.error, reader.truncated) == (None, 0, None, False)


YOAST = (
    b'<?xml version="1.0" encoding="UTF-8"?><?xml-stylesheet type="text/xsl" href="//example.com/main-sitemap.xsl"?>\n'
    b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>https://example.com/a</loc></url></urlset>\n'
    b"<!-- XML Sitemap generated by Yoast SEO -->"
)
YOAST_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- This sitemap was generated by Yoast SEO -->\n'
    b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>https://example.com/a</loc></url></urlset>'
)
WP_CORE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<?xml-stylesheet type="text/xsl" href="https://example.com/wp-sitemap-index.xsl" ?>\n'
    b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>https://example.com/wp-sitemap-posts-post-1.xml</loc></sitemap></sitemapindex>'
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (YOAST, "Yoast SEO"),
        (YOAST_HEAD, "Yoast SEO"),
        (WP_CORE, "WordPress"),
        (b"\xef\xbb\xbf\n" + YOAST_HEAD, "Yoast SEO"),
        (gzip.compress(YOAST_HEAD, mtime=0), "Yoast SEO"),
        (urlset(A), None),
    ],
)
def test_generator_from_the_sitemap(body: bytes, expected) -> None:
    reader, entries = read(body)
    assert entries
    assert reader.generator == expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"<!-- XML Sitemap generated by Yoast SEO -->", "Yoast SEO"),
        (b'<?xml-stylesheet type="text/xsl" href="/wp-sitemap.xsl"?>', "WordPress"),
        (b"<!-- generated by Rank Math SEO -->", "Rank Math"),
        (b"<!-- generator by All in One SEO -->", "All in One SEO"),
        (b'<!-- generator="Some CMS 4.2" -->', "Some CMS 4.2"),
        (b"<urlset><url><loc>https://example.com/</loc></url></urlset>", None),
        (b"", None),
    ],
)
def test_detect_generator(head: bytes, expected) -> None:
    assert detect_generator(head) == expected


# ------------------------------------------------------------------------------------------------
# The fast path for simple urlsets gives what lxml alone gives, and hands over where it must
# ------------------------------------------------------------------------------------------------
HEAD = f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{NS09}" {EXT_NS}>\n'
SIMPLE = "<url><loc>https://example.com/s{i}</loc><lastmod>2024-01-0{d}</lastmod><changefreq>weekly</changefreq><priority>0.{d}</priority></url>\n"


def simple_entries(start: int, count: int) -> str:
    return "".join(SIMPLE.format(i=i, d=1 + i % 9) for i in range(start, start + count))


def outcome(body: bytes, fast: bool, chunk_size: int = CHUNK_SIZE, **kwargs):
    reader = SitemapReader(body, SM_URL, fast=fast, chunk_size=chunk_size, **kwargs)
    entries = list(reader)
    return entries, (reader.type, reader.error, reader.truncated, reader.size, reader.url_count,
                     reader.lastmod_count, reader.priority_count, reader.changefreq_count, reader.generator)


def assert_same_as_lxml(body: bytes, chunk_sizes=(1, 7, 64, 4096, CHUNK_SIZE), **kwargs) -> SitemapReader:
    reference = outcome(body, fast=False, **kwargs)
    for chunk_size in chunk_sizes:
        for data in (body, gzip.compress(body, mtime=0)):
            got = outcome(data, fast=True, chunk_size=chunk_size, **kwargs)
            assert got[0] == reference[0], chunk_size
            assert got[1] == reference[1], chunk_size
    reader = SitemapReader(body, SM_URL, **kwargs)
    list(reader)
    return reader


ODD_ENTRIES = {
    "entities": "<url><loc> https://example.com/a?x=1&amp;y=&lt;2&gt;&quot;&apos; </loc><lastmod>\n 2024-02-03 </lastmod>"
                "<changefreq> Daily </changefreq><priority> 0.5 </priority></url>",
    "char-reference": "<url><loc>https://example.com/&#38;x</loc></url>",
    "unknown-entity": "<url><loc>https://example.com/&nbsp;x</loc></url>",
    "cdata": "<url><loc><![CDATA[https://example.com/cdata?a&b]]></loc></url>",
    "comment-inside": "<url><!-- c --><loc>https://example.com/c</loc></url>",
    "comment-between": "<!-- between --><url><loc>https://example.com/c</loc></url>",
    "pi-between": "<?pi x?><url><loc>https://example.com/c</loc></url>",
    "attribute": '<url id="1"><loc>https://example.com/attr</loc></url>',
    "loc-attribute": '<url><loc lang="en">https://example.com/attr</loc></url>',
    "space-in-tag": "<url ><loc >https://example.com/sp</loc ></url >",
    "image": "<url><loc>https://example.com/img</loc><image:image><image:loc>https://example.com/i.jpg</image:loc></image:image></url>",
    "hreflang": '<url><loc>https://example.com/x</loc><xhtml:link rel="alternate" hreflang="de" href="https://example.com/de"/></url>',
    "prefixed": f'<sm:url xmlns:sm="{NS09}"><sm:loc>https://example.com/pre</sm:loc></sm:url>',
    "other-order": "<url><lastmod>2024-03-04</lastmod><loc>https://example.com/order</loc><priority>0.3</priority></url>",
    "twice": "<url><loc>https://example.com/one</loc><loc>https://example.com/two</loc></url>",
    "no-loc": "<url><lastmod>2024-03-04</lastmod></url>",
    "empty-loc": "<url><loc></loc></url><url><loc>   </loc></url><url><loc/></url>",
    "relative": "<url><loc>/relative/path</loc></url><url><loc>page.html</loc></url>",
    "not-http": "<url><loc>ftp://example.com/f</loc></url><url><loc>https://example.com/a b</loc></url>",
    "upper-scheme": "<url><loc>HTTPS://EXAMPLE.com/Up</loc></url>",
    "too-long": f"<url><loc>https://example.com/{'x' * 2100}</loc></url>",
    "non-ascii": "<url><loc>https://example.com/ü/日本</loc></url>",
    "cr-inside": "<url><loc>https://example.com/\r\nx</loc></url>",
    "crlf-between": "<url>\r\n<loc>https://example.com/crlf</loc>\r\n</url>\r\n",
    "tab-inside": "<url><loc>https://example.com/\tx</loc></url>",
    "cdata-end": "<url><loc>https://example.com/]]>x</loc></url>",
    "bad-values": "<url><loc>https://example.com/b</loc><lastmod>never</lastmod><changefreq>often</changefreq><priority>7</priority></url>",
    "empty-values": "<url><loc>https://example.com/e</loc><lastmod></lastmod><changefreq></changefreq><priority></priority></url>",
    "nbsp-values": "<url><loc>\u00a0https://example.com/nb\u00a0</loc><priority>\u20030.4</priority></url>",
    "nested-url": "<url><url><loc>https://example.com/n</loc></url></url>",
    "news": "<url><loc>https://example.com/news</loc><news:news><news:title>T</news:title></news:news></url>",
}


@pytest.mark.parametrize("odd", sorted(ODD_ENTRIES))
def test_fast_path_hands_over_mid_file_and_matches_lxml(odd: str) -> None:
    body = (HEAD + simple_entries(0, 30) + ODD_ENTRIES[odd] + "\n" + simple_entries(30, 30) + "</urlset>\n").encode()
    reader = assert_same_as_lxml(body)
    assert reader.url_count >= 60 and reader.fast_url_count >= 30  # the first run went the fast way


@pytest.mark.parametrize("odd", sorted(ODD_ENTRIES))
def test_fast_path_on_a_lone_odd_entry_matches_lxml(odd: str) -> None:
    assert_same_as_lxml((HEAD + ODD_ENTRIES[odd] + "</urlset>").encode())


def test_fast_path_reads_a_simple_urlset_whole() -> None:
    body = (HEAD + simple_entries(0, 500) + "</urlset>\n").encode()
    reader = assert_same_as_lxml(body)
    assert reader.url_count == reader.fast_url_count == 500
    assert reader.lastmod_count == reader.priority_count == reader.changefreq_count == 500


@pytest.mark.parametrize(
    "prologue",
    [
        '<?xml version="1.0"?>\n<urlset>',
        "<urlset>",
        '<?xml version="1.0" encoding="utf-8" standalone="yes"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">',
        '<?xml version="1.0" encoding="UTF-8"?><?xml-stylesheet type="text/xsl" href="//example.com/main-sitemap.xsl"?>\n'
        f'<!-- XML Sitemap generated by Yoast SEO --><urlset xmlns="{NS09}" {EXT_NS}>',
        f"<urlset xmlns='{NS09}'\n   xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'>",
        f'<!DOCTYPE urlset><urlset xmlns="{NS09}">',
        f'<?xml version="1.0" encoding="ISO-8859-1"?><urlset xmlns="{NS09}">',
        f'<sm:urlset xmlns:sm="{NS09}" xmlns="{NS09}">',
        f'<urlset xmlns="{NS09}" a="x &amp; y">',
    ],
)
def test_fast_path_prologues_match_lxml(prologue: str) -> None:
    assert_same_as_lxml((prologue + simple_entries(0, 20) + "</urlset>").encode())


def test_fast_path_latin1_bytes_in_a_utf8_file_match_lxml() -> None:
    body = (HEAD + simple_entries(0, 5)).encode() + b"<url><loc>https://example.com/caf\xe9</loc></url>" + (
        simple_entries(5, 5) + "</urlset>").encode()
    assert_same_as_lxml(body)


@pytest.mark.parametrize(
    "ending",
    ["</urlset>", "</urlset>\n\n", "</urlset>\n<!-- done -->\n", "</urlset><url><loc>https://example.com/after</loc></url>",
     "</urlset>junk", "", "\n", "</urlse", "<url><loc>https://example.com/cut"],
)
def test_fast_path_document_endings_match_lxml(ending: str) -> None:
    reader = assert_same_as_lxml((HEAD + simple_entries(0, 10) + ending).encode())
    assert reader.fast_url_count == 10


def test_fast_path_truncated_at_every_cut_point_matches_lxml() -> None:
    body = (HEAD + simple_entries(0, 3) + ODD_ENTRIES["entities"] + simple_entries(3, 2) + "</urlset>\n").encode()
    for cut in range(len(HEAD), len(body) + 1):
        assert_same_as_lxml(body[:cut], chunk_sizes=(7, CHUNK_SIZE))


def test_fast_path_gzip_chunk_boundaries_split_entries() -> None:
    # a file larger than one decompressed chunk: entries are cut at every chunk boundary
    body = (HEAD + simple_entries(0, 3000) + ODD_ENTRIES["image"] + simple_entries(3000, 100) + "</urlset>\n").encode()
    assert len(body) > CHUNK_SIZE
    for chunk_size in (997, 4096, CHUNK_SIZE // 4):
        reference = outcome(body, fast=False)
        got = outcome(gzip.compress(body, mtime=0), fast=True, chunk_size=chunk_size)
        assert got == reference, chunk_size
        assert len(got[0]) == 3101


def test_fast_path_max_bytes_cut_matches_lxml() -> None:
    body = (HEAD + simple_entries(0, 200) + "</urlset>\n").encode()
    for cap in (len(HEAD) + 1000, len(HEAD) + 1001, len(body) // 2, len(body) - 5):
        assert_same_as_lxml(body, chunk_sizes=(7, 4096, CHUNK_SIZE), max_bytes=cap)


def test_fast_path_matches_lxml_on_seeded_random_documents() -> None:
    """Simple entries with odd pieces spliced in at random places (inside entries too), cut anywhere:
    the regex path and lxml alone always agree."""
    import random

    rng = random.Random(20261201)
    pieces = [*ODD_ENTRIES.values(), "<!-- c -->", "&amp;", "&", "<", ">", "]]>", "\r", "\t", " ", "\u00e9", "\x01",
              "</url>", "<url>", "</urlset>", "<loc>", "</loc>", "<lastmod>2024-05-06</lastmod>", "<![CDATA[x]]>"]
    for case in range(300):
        parts = [HEAD]
        for i in range(rng.randint(0, 12)):
            parts.append(simple_entries(i, 1) if rng.random() < 0.8 else rng.choice(pieces))
        parts.append(rng.choice(["</urlset>\n", "", "</urlset>junk"]))
        doc = "".join(parts)
        if rng.random() < 0.5:  # something odd inside an entry
            at = rng.randrange(len(HEAD), len(doc) + 1)
            doc = doc[:at] + rng.choice(pieces) + doc[at:]
        body = doc.encode("utf-8", "surrogatepass")
        if rng.random() < 0.3:
            body = body[: rng.randrange(len(HEAD), len(body) + 1)]
        reference = outcome(body, fast=False)
        for chunk_size in (rng.randint(1, 64), CHUNK_SIZE):
            assert outcome(body, fast=True, chunk_size=chunk_size) == reference, (case, chunk_size, body)


@pytest.mark.parametrize("prologue", ["<!--\x0c-->", "<!-- generated \x01 by Foo -->", "<?a \x01?>",
                                      "<?xml-stylesheet href='a\x1f.xsl'?>", "<!-- \ufffe -->", "<?a \uffff?>"])
def test_fast_path_leaves_a_prologue_with_a_character_xml_forbids_to_lxml(prologue: str) -> None:
    # lxml refuses such a document; the fast path must not read it as a sitemap
    body = (prologue + f'<urlset xmlns="{NS09}" xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">'
            + simple_entries(0, 3) + ODD_ENTRIES["image"] + "</urlset>").encode()
    reader = assert_same_as_lxml(body)
    assert reader.fast_url_count == 0
    # libxml2 gives up on the whole file; the error says why rather than only "no XML element found"
    assert reader.type is None and "a character XML forbids" in reader.error
    assert f"U+{ord(next(c for c in prologue if ord(c) < 32 or ord(c) > 0xFFFD)):04X}" in reader.error


def test_a_loc_urllib_cannot_parse_costs_that_entry_only() -> None:
    body = (HEAD + simple_entries(0, 2) + "<url><loc>//[x</loc></url><url><loc>/a:b</loc></url>"
            "<url><loc>//example.com:port/p</loc></url>" + simple_entries(2, 2) + "</urlset>").encode()
    reader = assert_same_as_lxml(body)
    urls = [entry["url"] for entry in SitemapReader(body, SM_URL)]
    assert len(urls) == 5 and reader.error is None  # the four simple entries and the relative /a:b
    assert not any("[" in url or ":port" in url for url in urls)
