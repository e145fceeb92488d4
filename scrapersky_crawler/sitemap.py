"""Sitemap parsing: pure functions and classes on bytes, free of I/O.

`SitemapReader` streams one sitemap file of any kind ScraperSky knows — XML urlset or index (any
namespace, or none), plain text, RSS 2.0/1.0, Atom — gzipped or not (recognised by its magic bytes,
whatever the name or Content-Type says). It decompresses and parses in chunks, so memory stays
bounded by the chunk size whatever the file's size, and stops at `max_bytes` of decompressed data.
XML goes through lxml, except runs of simple urlset entries (loc, lastmod, changefreq, priority and
nothing else), which a regex reads with the same result at a fraction of the cost.

Safety: entities are never resolved (no billion laughs, no XXE), no DTD or network access.
Robustness: a BOM and blank lines before `<?xml` are stripped (libxml2's recover mode would otherwise
drop `&amp;` entities); a truncated file keeps the entries before the cut and drops the one that was
cut; invalid values (changefreq, priority, lastmod) are dropped while the URL is kept.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

from lxml import etree
from protego import Protego

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_BYTES = 100 * 1024 * 1024  # the protocol's 50 MB, with margin
CHUNK_SIZE = 256 * 1024
GZIP_INPUT_STEP = 16 * 1024
_HEAD_BYTES = 4096  # where the generator and HTML are recognised
MAX_URL_LENGTH = 2048
CHANGEFREQS = frozenset({"always", "hourly", "daily", "weekly", "monthly", "yearly", "never"})
_LEADING_JUNK = b"\xef\xbb\xbf \t\r\n\x00"

# Root element (local name) -> (sitemap type, local name of one entry element)
_ROOTS = {
    "urlset": ("urlset", "url"),
    "sitemapindex": ("index", "sitemap"),
    "rss": ("rss", "item"),
    "RDF": ("rss", "item"),
    "feed": ("atom", "entry"),
}
_EVENT_TAGS = tuple(f"{{*}}{name}" for name in {*_ROOTS, *(tag for _, tag in _ROOTS.values()), "html", "HTML"})
_ROOT_SEARCH_BYTES = 1024 * 1024
_GENERATORS = (
    (re.compile(rb"yoast", re.I), "Yoast SEO"),
    (re.compile(rb"rank[ -]?math", re.I), "Rank Math"),
    (re.compile(rb"all in one seo|aioseo", re.I), "All in One SEO"),
    (re.compile(rb"wp-sitemap", re.I), "WordPress"),
    (re.compile(rb"shopify", re.I), "Shopify"),
    (re.compile(rb"wix\.com|wixstatic", re.I), "Wix"),
    (re.compile(rb"squarespace", re.I), "Squarespace"),
    (re.compile(rb"generator=[\"']([^\"']{1,100})[\"']", re.I), None),
)


# -- the fast path for plain urlsets ---------------------------------------------------------------
# Most sitemaps are `<url>` entries made of nothing but loc, lastmod, changefreq and priority, in that
# order. Those are read with one regex per run of entries instead of one lxml event and one Python
# round per entry; at the first byte that does not fit that shape (an extension, a comment, CDATA, an
# attribute, a character reference or any entity but the five of XML, a CR or control character
# inside a value, a DOCTYPE, another encoding...) the rest goes to lxml, preceded by the prologue, so
# what comes out is what lxml alone would give.
_WS = rb"[ \t\r\n]*"


def _fast_entry(capture: bool) -> bytes:
    value = rb"(?:[^<&\]\r\x00-\x08\x0b\x0c\x0e-\x1f]++|&(?:amp|lt|gt|quot|apos);|\](?!\]>))*+"
    value = b"(" + value + b")" if capture else value
    return (_WS + b"<url>" + _WS + b"<loc>" + value + b"</loc>" + _WS
            + b"(?:<lastmod>" + value + b"</lastmod>" + _WS + b")?"
            + b"(?:<changefreq>" + value + b"</changefreq>" + _WS + b")?"
            + b"(?:<priority>" + value + b"</priority>" + _WS + b")?"
            + b"</url>")


_FAST_RUN = re.compile(b"(?:" + _fast_entry(False) + b")*+")  # bytes: where a run of simple entries ends
_FAST_FIELDS = re.compile(_fast_entry(True).decode("ascii"))  # str: the four values of each entry of a run
# Before the entries: an XML declaration (UTF-8 or no encoding named), processing instructions
# (stylesheets), comments, whitespace, then the root start tag <urlset ...>.
_FAST_PROLOGUE = re.compile(
    rb"(?:<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*[\"']1\.[0-9][\"']"
    rb"(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*[\"'](?i:utf-?8)[\"'])?"
    rb"(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*[\"'](?:yes|no)[\"'])?[ \t\r\n]*\?>)?"
    rb"(?:[ \t\r\n]++|<\?(?![xX][mM][lL][ \t\r\n?])[A-Za-z_][^?]*+(?:\?(?!>)[^?]*+)*+\?>|<!--(?:[^-]++|-(?!-))*+-->)*+"
    rb"<urlset(?:[ \t\r\n]+[A-Za-z_][\w.:-]*+[ \t\r\n]*=[ \t\r\n]*(?:\"[^\"<&]*+\"|'[^'<&]*+'))*+[ \t\r\n]*>"
)
_FAST_END = re.compile(rb"[ \t\r\n]*</urlset[ \t\r\n]*>[ \t\r\n]*")
# Characters XML forbids (C0 controls but tab, LF, CR; U+FFFE and U+FFFF in UTF-8): lxml refuses a
# document whose prologue holds one (in a comment or a processing instruction), so that is lxml's call.
_XML_FORBIDDEN = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\xef\xbf[\xbe\xbf]")
_FAST_MAX_PENDING = 64 * 1024  # an unfinished entry longer than this goes to lxml
_FAST_HEAD_BYTES = 4096  # bytes read before looking for the prologue
_FREQS = {name: name for name in CHANGEFREQS}
_PRIORITIES: dict[str, float | None] = {}  # priority text -> parse_priority of it (a handful of values)
_XML_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))


def _unescape(value: str) -> str:
    for entity, char in _XML_ENTITIES:  # &amp; last: "&amp;lt;" is "&lt;"
        value = value.replace(entity, char)
    return value


def join_url(base: str, ref: str) -> str | None:
    """`urljoin(base, ref)` that checks the result the way Scrapy's `Request` will: None for what
    urllib cannot parse (`//[x`, `http://a:port/`), so one bad link costs that link, not its file."""
    try:
        joined = urljoin(base, ref)
        urlsplit(joined).port
    except ValueError:
        return None
    return joined


def page_entry(url: str) -> dict[str, Any]:
    """A page entry with every attribute present (uniform rows make bulk inserts cheap)."""
    return {
        "url": url,
        "lastmod": None,
        "changefreq": None,
        "priority": None,
        "alternates": None,
        "images": None,
        "news": None,
        "videos": None,
    }


_LOCAL_NAMES: dict[Any, str] = {}


def _local(tag: Any) -> str:
    """The local name of a tag (`{ns}url` -> `url`), memoised: sitemaps repeat a handful of tags."""
    name = _LOCAL_NAMES.get(tag)
    if name is None:
        name = tag[tag.rfind("}") + 1 :] if isinstance(tag, str) else ""
        if len(_LOCAL_NAMES) < 10_000:
            _LOCAL_NAMES[tag] = name
    return name


def _text(elem: Any) -> str:
    text = elem.text
    return text.strip() if text else ""


_DATES: dict[str, dt.datetime | None] = {}


def parse_w3c_datetime(value: str | None) -> dt.datetime | None:
    """Memoised `_parse_w3c_datetime` (sitemaps repeat the same lastmod values many times)."""
    try:
        return _DATES[value]  # type: ignore[index]
    except KeyError:
        parsed = _DATES[value] = _parse_w3c_datetime(value)  # type: ignore[index]
        if len(_DATES) > 50_000:
            _DATES.clear()
        return parsed


def _parse_w3c_datetime(value: str | None) -> dt.datetime | None:
    """A W3C datetime (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, with `Thh:mm[:ss[.s]]TZD`) or an RFC 822 date
    (RSS) as an aware datetime; UTC when the value names no zone; None when unparseable."""
    if not value:
        return None
    value = value.strip()
    try:
        if len(value) == 4 and value.isdigit():
            parsed = dt.datetime(int(value), 1, 1)
        elif len(value) == 7 and value[4] == "-":
            parsed = dt.datetime(int(value[:4]), int(value[5:]), 1)
        else:
            parsed = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if parsed is None:
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


def parse_priority(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0.0 <= number <= 1.0 and not math.isnan(number) else None


def parse_changefreq(value: str) -> str | None:
    value = value.lower()
    return value if value in CHANGEFREQS else None


# Every _GENERATORS pattern matches only where one of these is in the lowercased head: most sitemaps
# hold none, and eight substring searches cost a tenth of the eight regexes (~90 us per 4 KB head).
_GENERATOR_HINTS = (b"yoast", b"math", b"all in one seo", b"aioseo", b"wp-sitemap", b"shopify", b"wix",
                    b"squarespace", b"generator=")


def detect_generator(head: bytes) -> str | None:
    """The software that wrote a sitemap, from its first few KB (comments, stylesheet PIs)."""
    low = head.lower()
    if not any(hint in low for hint in _GENERATOR_HINTS):
        return None
    for pattern, name in _GENERATORS:
        match = pattern.search(head)
        if match:
            return name or match.group(1).decode("utf-8", "replace").strip()
    return None


class SitemapReader:
    """Streams the entries of one sitemap body.

    After construction nothing is parsed; iterate to get entries. Attributes filled while iterating:
    `type` (urlset/index/text/rss/atom, None when not a sitemap), `gzipped`, `size` (decompressed
    bytes read), `truncated`, `error` (one line, None when fine), `generator`, and the counts
    `url_count`, `lastmod_count`, `priority_count`, `changefreq_count` (and `fast_url_count`, the entries
    of `url_count` that the regex path read).

    Page entries (urlset, text, rss, atom) are dicts made by `page_entry`; index entries are
    `{"url", "lastmod"}`.
    """

    def __init__(self, body: bytes, url: str, *, max_bytes: int = DEFAULT_MAX_BYTES, chunk_size: int = CHUNK_SIZE,
                 fast: bool = True):
        self.body = body
        self.fast = fast  # the regex path for simple urlset entries (False: lxml only; the result is the same)
        self.fast_url_count = 0  # entries of url_count read by that path
        self.url = url
        self.max_bytes = max_bytes
        self.chunk_size = chunk_size
        self.gzipped = body[:2] == GZIP_MAGIC
        self.type: str | None = None
        self.size = 0
        self.truncated = False
        self.error: str | None = None
        self.generator: str | None = None
        self.url_count = 0
        self.lastmod_count = 0
        self.priority_count = 0
        self.changefreq_count = 0
        self._tail = b""
        self._head = b""  # the first _HEAD_BYTES of the decompressed document

    @property
    def is_index(self) -> bool:
        return self.type == "index"

    # -- decompression -------------------------------------------------------------------------

    def _raw_chunks(self) -> Iterator[bytes]:
        if self.gzipped:
            yield from self._gunzip_chunks()
            return
        body, step = self.body, self.chunk_size
        for start in range(0, len(body), step):
            yield body[start : start + step]

    def _gunzip_chunks(self) -> Iterator[bytes]:
        """Decompress in steps of GZIP_INPUT_STEP input bytes; on corrupt data, keep what the input
        before the corruption decompresses to (the step that failed is replayed byte by byte)."""
        body = memoryview(self.body)
        pos = 0
        decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = b""
        while pending or pos < len(body):
            if not pending:
                pending = bytes(body[pos : pos + GZIP_INPUT_STEP])
                pos += len(pending)
            saved = decomp.copy()
            try:
                out = decomp.decompress(pending, self.chunk_size)
            except zlib.error as exc:
                yield from _salvage(saved, pending)
                self._fail(f"corrupt gzip data: {exc}", truncated=True)
                return
            pending = decomp.unconsumed_tail
            if out:
                yield out
            if decomp.eof:  # a further gzip member may follow; anything else after it is ignored
                rest = decomp.unused_data + bytes(body[pos:])
                if rest[:2] != GZIP_MAGIC:
                    return
                body, pos, pending = memoryview(rest), 0, b""
                decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
        rest = decomp.flush()
        if rest:
            yield rest
        self._fail("gzip data ends early (truncated download?)", truncated=True)

    def _chunks(self) -> Iterator[bytes]:
        """Decompressed chunks, leading BOM/whitespace removed, capped at `max_bytes`."""
        started = False
        head = b""
        try:
            for chunk in self._raw_chunks():
                if not started:
                    chunk = chunk.lstrip(_LEADING_JUNK)
                    if not chunk:
                        continue
                    started = True
                if len(head) < _HEAD_BYTES:
                    head = self._head = head + chunk[: _HEAD_BYTES - len(head)]
                room = self.max_bytes - self.size
                if len(chunk) > room:
                    chunk = chunk[: max(room, 0)]
                    self.size += len(chunk)
                    if chunk:
                        self._tail = chunk[-256:]
                        yield chunk
                    self._fail(f"larger than {self.max_bytes} bytes after decompression; entries after that cut", truncated=True)
                    return
                self.size += len(chunk)
                self._tail = (self._tail + chunk)[-256:] if len(chunk) < 256 else chunk[-256:]
                yield chunk
        finally:
            self.generator = detect_generator(head) if head else None

    def _fail(self, message: str, *, truncated: bool = False) -> None:
        if self.error is None:
            self.error = message
        self.truncated = self.truncated or truncated

    # -- iteration ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        chunks = self._chunks()
        first = next(chunks, None)
        if first is None:
            if self.error is None:
                self.error = "empty body"
            return
        if _looks_like_html(first):
            self.error = "not a sitemap: an HTML page (soft 404?)"
            return
        if first[:1] == b"<":
            yield from self._iter_xml(first, chunks)
        else:
            self.type = "text"
            yield from self._iter_text(first, chunks)

    def _count(self, entry: dict[str, Any]) -> None:
        self.url_count += 1
        if entry["lastmod"] is not None:
            self.lastmod_count += 1
        if entry.get("priority") is not None:
            self.priority_count += 1
        if entry.get("changefreq") is not None:
            self.changefreq_count += 1

    def _loc(self, raw: str) -> str | None:
        if not raw or len(raw) > MAX_URL_LENGTH:
            return None
        if "://" not in raw[:12]:
            raw = join_url(self.url, raw)
            if raw is None:
                return None
        if raw[:8].lower().startswith(("http://", "https://")) and " " not in raw:
            return raw
        return None

    def _iter_text(self, first: bytes, chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
        pending = b""
        for chunk in _prepend(first, chunks):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            yield from self._text_lines(lines)
        if pending and not self.truncated:
            yield from self._text_lines([pending])
        if not self.url_count:
            self.type = None
            self.error = self.error or "not a sitemap: neither XML nor a list of URLs"

    def _text_lines(self, lines: list[bytes]) -> Iterator[dict[str, Any]]:
        for line in lines:
            line = line.strip()
            if not line[:8].lower().startswith((b"http://", b"https://")):
                continue
            loc = self._loc(line.decode("utf-8", "replace"))
            if loc:
                entry = page_entry(loc)
                self._count(entry)
                yield entry

    def _iter_xml(self, first: bytes, chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
        """A urlset of simple entries goes through `_fast_entries` for as long as it stays simple;
        everything else, and the rest of a file from its first entry that is not simple, through lxml."""
        while self.fast and len(first) < _FAST_HEAD_BYTES:  # the prologue whole, whatever the chunk size
            more = next(chunks, None)
            if more is None:
                break
            first += more
        head = _FAST_PROLOGUE.match(first) if self.fast else None
        if head is None or _XML_FORBIDDEN.search(first, 0, head.end()):
            yield from self._iter_lxml(first, chunks)
            return
        prologue, buf, pos = first[: head.end()], first, head.end()
        self.type = "urlset"
        while True:
            end = _FAST_RUN.match(buf, pos).end()
            if end > pos:
                try:
                    text = buf[pos:end].decode("utf-8")
                except UnicodeDecodeError as exc:  # lxml decides what becomes of bytes that are not UTF-8
                    end = _FAST_RUN.match(buf, pos, pos + exc.start).end()  # the entries before them
                    yield from self._fast_entries(buf[pos:end].decode("utf-8"))
                    pos = end
                    break
                if "\ufffe" in text or "\uffff" in text:  # not characters of XML: lxml's call
                    break
                yield from self._fast_entries(text)
                pos = end
            if buf.find(b"</url>", pos) >= 0 or len(buf) - pos > _FAST_MAX_PENDING:
                break  # an entry that is not simple (or not an entry)
            chunk = next(chunks, None)
            if chunk is None:
                if _FAST_END.fullmatch(buf, pos):
                    return  # the whole document was simple
                break  # truncated, or something after the entries: lxml says what
            buf, pos = buf[pos:] + chunk, 0
        yield from self._iter_lxml(prologue + buf[pos:], chunks, root_known=True)

    def _fast_entries(self, text: str) -> Iterator[dict[str, Any]]:
        """The entries of a run of simple `<url>` entries (decoded): what `_urlset_entry` makes of them."""
        url_loc, dates, freqs, priorities = self._loc, parse_w3c_datetime, _FREQS, _PRIORITIES
        lastmods = changefreqs = prios = count = 0
        try:
            for loc, lastmod, changefreq, priority in _FAST_FIELDS.findall(text):
                if "&" in loc:
                    loc = _unescape(loc)
                loc = loc.strip()
                if not (loc.startswith(("http://", "https://")) and len(loc) <= MAX_URL_LENGTH and " " not in loc):
                    loc = url_loc(loc) if loc else None
                    if not loc:
                        continue
                if lastmod:
                    lastmod = dates((_unescape(lastmod) if "&" in lastmod else lastmod).strip())
                    if lastmod is not None:
                        lastmods += 1
                else:
                    lastmod = None
                if changefreq:
                    changefreq = freqs.get((_unescape(changefreq) if "&" in changefreq else changefreq).strip().lower())
                    if changefreq is not None:
                        changefreqs += 1
                else:
                    changefreq = None
                if priority:
                    try:
                        priority = priorities[priority]
                    except KeyError:
                        value = parse_priority((_unescape(priority) if "&" in priority else priority).strip())
                        if len(priorities) < 10_000:
                            priorities[priority] = value
                        priority = value
                    if priority is not None:
                        prios += 1
                else:
                    priority = None
                count += 1
                yield {  # page_entry's shape, written out: this runs once per URL
                    "url": loc,
                    "lastmod": lastmod,
                    "changefreq": changefreq,
                    "priority": priority,
                    "alternates": None,
                    "images": None,
                    "news": None,
                    "videos": None,
                }
        finally:
            self.url_count += count
            self.fast_url_count += count
            self.lastmod_count += lastmods
            self.changefreq_count += changefreqs
            self.priority_count += prios

    def _iter_lxml(self, first: bytes, chunks: Iterator[bytes], root_known: bool = False) -> Iterator[dict[str, Any]]:
        parser = etree.XMLPullParser(
            # Only root and entry elements make events; their children are read from the entry.
            events=("start", "end"),
            tag=_EVENT_TAGS,
            recover=True,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            remove_comments=True,
            remove_pis=True,
            huge_tree=False,
        )
        state = _XmlState()
        for chunk in _prepend(first, chunks):
            parser.feed(chunk)
            yield from self._xml_events(parser, state)
            if state.stop:
                return
            if state.root is None and self.size > _ROOT_SEARCH_BYTES and not root_known:
                self.error = "not a sitemap: no sitemap root element in the first megabyte"
                return
        # Whatever comes out of close() was closed by libxml2's recovery, not by the document:
        # the document was cut there, and the entry open at the cut is dropped.
        try:
            root = parser.close()
        except etree.XMLSyntaxError:
            root = None
        recovered = list(self._xml_events(parser, state, recovering=True))
        if state.stop:
            return
        if state.root is None:
            name = _local(root.tag) if root is not None else ""
            self.error = self.error or (f"not a sitemap: root element <{name}>" if name else _no_element(self._head))
            return
        if not state.root_closed:
            self._fail("truncated: the document ends before its closing tag", truncated=True)
        if recovered and not re.search(rb"</(?:[\w.-]+:)?" + state.entry_tag.encode() + rb"\s*>\s*$", self._tail):
            recovered.pop()
        for entry in recovered:
            self._count(entry)
            yield entry

    def _xml_events(self, parser: Any, state: _XmlState, recovering: bool = False) -> Iterator[dict[str, Any]]:
        for event, elem in parser.read_events():
            if state.root is None:
                if event != "start":
                    continue
                state.root = elem
                name = _local(elem.tag) or "?"
                kind = _ROOTS.get(name)
                if kind is None:
                    state.stop = True
                    self.error = (
                        "not a sitemap: an HTML page (soft 404?)" if name.lower() == "html" else f"not a sitemap: root element <{name}>"
                    )
                    return
                self.type, state.entry_tag = kind
                state.handler = self._HANDLERS[self.type]
                continue
            if event != "end":
                continue
            if elem is state.root:
                state.root_closed = not recovering
                continue
            if _local(elem.tag) != state.entry_tag:
                continue
            entry = state.handler(self, elem)
            _release(elem)
            if entry is not None:
                if not recovering:
                    self._count(entry)
                yield entry

    # -- one entry per kind ---------------------------------------------------------------------

    def _urlset_entry(self, elem: Any) -> dict[str, Any] | None:
        loc = None
        lastmod = changefreq = priority = None
        alternates = images = videos = news = None
        names = _LOCAL_NAMES
        for child in elem:
            tag = child.tag
            name = names.get(tag) or _local(tag)
            if name == "loc":
                # An entity reference (never resolved) shows as a child node: such a loc is unusable.
                loc = None if len(child) else _text(child)
            elif name == "lastmod":
                lastmod = parse_w3c_datetime(_text(child))
            elif name == "changefreq":
                changefreq = parse_changefreq(_text(child))
            elif name == "priority":
                priority = parse_priority(_text(child))
            elif name == "link":
                href = (child.get("href") or "").strip()
                rel = child.get("rel")
                if href and (rel is None or rel.strip().lower() == "alternate"):
                    alt = {"href": href}
                    hreflang = child.get("hreflang")
                    if hreflang:
                        alt["hreflang"] = hreflang.strip()
                    alternates = alternates or []
                    alternates.append(alt)
            elif name == "image":
                image = _children(child, ("loc", "title", "caption", "geo_location", "license"))
                if image.get("loc"):
                    images = images or []
                    images.append(image)
            elif name == "video":
                video = _children(
                    child,
                    ("title", "description", "thumbnail_loc", "content_loc", "player_loc", "duration", "publication_date"),
                )
                if video:
                    videos = videos or []
                    videos.append(video)
            elif name == "news":
                news = _news(child)
        loc = self._loc(loc) if loc else None
        if not loc:
            return None
        return {  # page_entry's shape, written out: this runs once per URL
            "url": loc,
            "lastmod": lastmod,
            "changefreq": changefreq,
            "priority": priority,
            "alternates": alternates,
            "images": images,
            "news": news,
            "videos": videos,
        }

    def _index_entry(self, elem: Any) -> dict[str, Any] | None:
        loc = lastmod = None
        for child in elem:
            name = _local(child.tag)
            if name == "loc":
                raw = _text(child)
                # A child that is not an http(s) URL (file:, ftp:, one urllib cannot parse) is kept as
                # written: the spider records it as refused or invalid, with the reason, and never fetches it.
                loc = self._loc(raw) or (raw if len(raw) <= MAX_URL_LENGTH else None)
            elif name == "lastmod":
                lastmod = parse_w3c_datetime(_text(child))
        if not loc:
            return None
        return {"url": loc, "lastmod": lastmod}

    def _rss_entry(self, elem: Any) -> dict[str, Any] | None:
        loc = lastmod = None
        for child in elem:
            name = _local(child.tag)
            if name == "link" and not loc:
                loc = self._loc(_text(child))
            elif name == "guid" and not loc and child.get("isPermaLink", "true") != "false":
                loc = self._loc(_text(child))
            elif name in ("pubDate", "date", "updated") and lastmod is None:
                lastmod = parse_w3c_datetime(_text(child))
        if not loc:
            return None
        entry = page_entry(loc)
        entry["lastmod"] = lastmod
        return entry

    def _atom_entry(self, elem: Any) -> dict[str, Any] | None:
        loc = lastmod = None
        for child in elem:
            name = _local(child.tag)
            if name == "link":
                rel = (child.get("rel") or "alternate").strip().lower()
                if rel == "alternate" and not loc:
                    loc = self._loc((child.get("href") or "").strip())
            elif name == "updated" or (name == "published" and lastmod is None):
                lastmod = parse_w3c_datetime(_text(child)) or lastmod
        if not loc:
            return None
        entry = page_entry(loc)
        entry["lastmod"] = lastmod
        return entry

    _HANDLERS = {
        "urlset": _urlset_entry,
        "index": _index_entry,
        "rss": _rss_entry,
        "atom": _atom_entry,
    }


class _XmlState:
    __slots__ = ("root", "root_closed", "entry_tag", "handler", "stop")

    def __init__(self) -> None:
        self.root: Any = None
        self.root_closed = False
        self.entry_tag = ""
        self.handler: Any = None
        self.stop = False


def _no_element(head: bytes) -> str:
    """The error of a file where libxml2 found no element: with the likely cause when its start holds a
    character XML forbids (libxml2 then gives up on the whole document)."""
    bad = _XML_FORBIDDEN.search(head)
    if bad is None:
        return "not a sitemap: no XML element found"
    char = ord(bad.group().decode("utf-8"))
    return f"not a sitemap: no XML element found (byte {bad.start()} is U+{char:04X}, a character XML forbids)"


def _looks_like_html(first: bytes) -> bool:
    start = first[:64].lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _salvage(decomp: Any, data: bytes) -> Iterator[bytes]:
    """What `data` decompresses to up to its first corrupt byte."""
    for i in range(len(data)):
        try:
            out = decomp.decompress(data[i : i + 1])
        except zlib.error:
            return
        if out:
            yield out


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _release(elem: Any) -> None:
    """Free a handled entry and the siblings before it: O(1) tree memory."""
    elem.clear()
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def _children(elem: Any, names: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for child in elem:
        name = _local(child.tag)
        if name in names and name not in found:
            text = _text(child)
            if text:
                found[name] = text
    return found


def _news(elem: Any) -> dict[str, str] | None:
    news: dict[str, str] = {}
    for child in elem:
        name = _local(child.tag)
        if name == "publication":
            pub = _children(child, ("name", "language"))
            if "name" in pub:
                news["publication"] = pub["name"]
            if "language" in pub:
                news["language"] = pub["language"]
        elif name in ("title", "publication_date", "keywords", "genres") and _text(child):
            news[name] = _text(child)
    return news or None


# -- robots.txt ------------------------------------------------------------------------------------

_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_SITE_MAP = re.compile(r"^(\s*)site-map(\s*):", re.I | re.M)


def sitemap_urls_from_robots(body: bytes, base_url: str) -> list[str]:
    """The `Sitemap:` URLs of a robots.txt body, absolute, in order, without duplicates.

    Protego does the parsing (any case, odd spacing, trailing comments, CRLF, any user-agent group);
    before it, a BOM is removed and the `Site-map:` spelling is read as `Sitemap:`.
    """
    text = body.decode("utf-8", "surrogateescape").lstrip("\ufeff")
    # bytes that are not UTF-8 are kept, percent-encoded
    text = _NOT_UTF8.sub(lambda m: f"%{ord(m.group()) - 0xDC00:02X}", text)
    text = _SITE_MAP.sub(r"\1sitemap\2:", text)
    seen: dict[str, None] = {}
    for url in Protego.parse(text).sitemaps:
        url = url.strip()
        if url:  # one urllib cannot parse is kept as written: the spider records it as invalid
            seen.setdefault(join_url(base_url, url) or url, None)
    return list(seen)
