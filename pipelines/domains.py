"""Domain identity: what a user types, made into the site ScraperSky scans and the key it is stored under.

One module for the API, the spider and the dispatcher (no Scrapy here):

    >>> site = parse_site("HTTPS://WWW.Example.com/about")
    >>> site.name, site.host, site.scheme
    ('example.com', 'www.example.com', 'https')
    >>> parse_site("example.com").origins()
    ['https://example.com', 'http://example.com', 'https://www.example.com', 'http://www.example.com']

Rules:
- `name` is the site's identity, the key of its `domains` row: the host without a leading `www.` when
  what remains is a registrable domain (public-suffix aware, with tldextract's bundled list, never
  fetched), plus `:port` for a non-default port. `example.com`, `www.example.com`,
  `HTTPS://WWW.Example.com/about` are one site; so are `bücher.de` and `xn--bcher-kva.de`.
- Hosts are lowercased and lose one trailing dot; international names go through IDNA 2008 with UTS #46
  mapping (`faß.de` stays `xn--fa-hia.de`, it is not folded to `fass.de`).
- `origins()` is the order the crawl tries: the host as typed (with `www.` when it was typed), with the
  scheme typed first (https first for a bare host), then the other scheme; then the `www.`/apex
  counterpart of a registrable domain (none for `host:port`, IP literals and other subdomains).
  `scheme://host:port` is exactly that one origin.
- Two policies, one normaliser: `strict=True` (the API) refuses IP literals, internal names
  (`localhost`, `*.local`, `*.internal`, ...), non-default ports and bare public suffixes; the command
  line (`strict=False`) also takes `host:port`, IP literals and single-label names for local sites.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

import idna

from pipelines.netpolicy import host_reason, ip_literal

MAX_INPUT = 2048
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_DEFAULT_PORTS = {"80", "443"}


class DomainError(ValueError):
    """A domain that cannot be scanned; `reason` (and str()) says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Site:
    name: str  # identity: the domains row key ("example.com", "127.0.0.1:8080")
    host: str  # the host to crawl first, as typed ("www.example.com"), punycode, lowercase
    port: int | None = None  # a non-default port, kept
    scheme: str | None = None  # "http"/"https" when the user gave one; None: https first, then http
    counterpart: str | None = None  # the www./apex twin of a registrable domain, tried when `host` fails

    @property
    def target(self) -> str:
        """What the user asked for, in canonical form: `parse_site(site.target) == site` (stored on the
        job and handed to the crawl)."""
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{self.host}{port}" if self.scheme else f"{self.host}{port}"

    def origins(self) -> list[str]:
        """scheme://host[:port] in the order the crawl tries them."""
        if self.scheme and self.port:  # scheme://host:port: exactly that origin
            schemes = [self.scheme]
        else:  # the scheme typed first, then the other one
            schemes = ["http", "https"] if self.scheme == "http" else ["https", "http"]
        port = f":{self.port}" if self.port else ""
        hosts = [self.host] + ([self.counterpart] if self.counterpart else [])
        return [f"{scheme}://{host}{port}" for host in hosts for scheme in schemes]


@lru_cache(maxsize=1)
def _extract():
    import tldextract

    # The bundled public-suffix snapshot: never fetched from the network, no cache directory.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def site_name(text: str, strict: bool = False) -> str:
    """The identity key of what the user typed (see `parse_site`)."""
    return parse_site(text, strict=strict).name


def parse_site(value: object, strict: bool = False) -> Site:
    """Parse a domain or URL as a user types it; DomainError with a one-line reason when it cannot be scanned."""
    if not isinstance(value, str):
        raise DomainError("a domain must be a string")
    text = value.strip()
    if not text:
        raise DomainError("empty domain")
    if len(text) > MAX_INPUT:
        raise DomainError(f"longer than {MAX_INPUT} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise DomainError("contains control characters")
    scheme = None
    m = _SCHEME.match(text)
    if m and not text[m.end():m.end() + 1].isdigit():  # `example.com:8080` is a port, not a scheme
        scheme = m.group(1).lower()
        if scheme not in ("http", "https"):
            raise DomainError(f"unsupported scheme {scheme!r}: use a domain or an http(s) URL")
        if not text[m.end():].startswith("//"):
            raise DomainError(f"malformed URL {text!r}: write {scheme}://host or just the host")
        text = text[m.end() + 2:]
    elif re.match(r"^https?//", text, re.I):
        raise DomainError(f"malformed URL {text!r}: write https://host or just the host")
    elif text.startswith("//"):  # scheme-relative
        text = text[2:]
    authority = re.split(r"[/?#\\]", text, maxsplit=1)[0]
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    host, port = _split_port(authority)
    if strict and ip_literal(host) is not None:  # in any spelling: 0x7f.1, 2130706433, ::ffff:7f00:1
        raise DomainError(f"IP addresses are not domains ({host_reason(host)})")
    ip = _ip(host)
    if ip is not None:
        host = f"[{ip}]" if ip.version == 6 else str(ip)
    else:
        host = _hostname(host)
    if port in _DEFAULT_PORTS:
        port = ""
    if port and strict:
        raise DomainError(f"port {port} is not supported: the crawler uses the standard ports")
    counterpart = None
    name = host
    if ip is None:
        labels = host.split(".")
        if strict:
            if len(labels) < 2:
                raise DomainError("needs at least two labels, like example.com")
            if labels[-1].isdigit():
                raise DomainError("the last label is numeric: IP addresses are not domains")
            reason = host_reason(host)
            if reason:
                raise DomainError(f"{reason}, not a public site")
        registrable = _registrable(host)
        if registrable == "":
            raise DomainError(f"{host!r} is a public suffix, not a site: give a domain under it")
        if registrable and not port:  # host:port is exactly that origin
            if host == registrable and not host.startswith("www."):
                counterpart = "www." + host
            elif host == "www." + registrable:
                counterpart = name = registrable
    port_number = int(port) if port else None
    if port_number is not None:
        name = f"{name}:{port_number}"
    return Site(name=name, host=host, port=port_number, scheme=scheme, counterpart=counterpart)


def _registrable(host: str) -> str | None:
    """The registrable domain of a host name ("" for a bare public suffix, None for a single label).
    A name under a suffix missing from the list (`.test`, a TLD newer than the snapshot) counts its
    last label as the suffix."""
    parts = _extract()(host)
    if parts.suffix:
        return f"{parts.domain}.{parts.suffix}" if parts.domain else ""
    labels = host.split(".")
    return ".".join(labels[-2:]) if len(labels) >= 2 else None


def _split_port(authority: str) -> tuple[str, str]:
    if authority.startswith("["):  # [v6]:port
        end = authority.find("]")
        if end < 0:
            raise DomainError("unclosed [ in the host")
        host, rest = authority[1:end], authority[end + 1:]
        if rest and not rest.startswith(":"):
            raise DomainError(f"unexpected {rest!r} after the host")
        return host, _port(rest[1:]) if rest else ""
    if authority.count(":") > 1:  # a bare IPv6 address
        return authority, ""
    host, _, port = authority.partition(":")
    return host, _port(port) if _ else ""


def _port(text: str) -> str:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise DomainError(f"port {text!r} is not a number from 1 to 65535")
    return str(int(text))


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _hostname(host: str) -> str:
    host = host.strip()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise DomainError("no host name")
    if any(c.isspace() for c in host):
        raise DomainError("contains spaces")
    if host.isascii():
        host = host.lower()
    else:
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise DomainError(f"invalid internationalised name: {exc}") from None
    if len(host) > 253:
        raise DomainError("longer than 253 characters")
    for label in host.split("."):
        if not label:
            raise DomainError("empty label (two dots in a row)")
        if not _LABEL.match(label):
            if len(label) > 63:
                raise DomainError(f"label {label[:20]!r}... longer than 63 characters")
            raise DomainError(f"label {label!r} has characters other than letters, digits and inner hyphens")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError, ValueError):
                raise DomainError(f"label {label!r} is not valid punycode") from None
    return host
