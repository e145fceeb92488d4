"""Where the crawler may go: the one policy for IP literals, internal addresses and internal names.

Pure (standard library and `idna` only): the crawler's request guard (`scrapersky_crawler.guard`) and
the API's domain check both use it.

- `ip_literal(host)`: the address a host written as an IP literal means, in any spelling a URL parser
  or resolver accepts (`127.0.0.1`, `2130706433`, `0x7f000001`, `0x7f.0.0.1`, `0177.0.0.1`, `127.1`,
  `[::ffff:127.0.0.1]`, `::ffff:7f00:1`, a trailing dot, full-width digits), else None.
- `address_reason(ip)`: why an address is refused (loopback, private, link-local, shared/CGNAT,
  multicast, reserved, unspecified, IPv6 unique-local or site-local, anything not globally
  reachable), else None. IPv4-mapped and IPv4-compatible IPv6 addresses are judged as the IPv4 address.
- `internal_name_reason(host)`: why a name is internal (`localhost`, `*.localhost`, `*.local`,
  `*.internal`, `*.svc`, `*.lan`, `*.home.arpa`, ... and single-label names), else None.
- `host_reason(host)`: the check made before any resolution: IP literals (all of them: a crawl target
  is a domain name) and internal names.
- `allow_private(settings_or_env)`: the one switch for local use, `SCRAPERSKY_ALLOW_PRIVATE=1` in the
  environment or the Scrapy setting of that name.
- `resolve_checked(host, port)`: for code that connects by itself (the API's webhooks): `host_reason`,
  then the name resolved once and every address checked with `address_reason`; the caller connects to
  one of the addresses returned, never resolves again (no DNS rebinding). Raises `Refused`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from typing import Any

import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_PRIVATE = "SCRAPERSKY_ALLOW_PRIVATE"
_TRUE = {"1", "true", "yes", "on"}

# What the BSD inet_aton (and so gethostbyname) reads as an IPv4 address: 1 to 4 parts, each decimal,
# octal (leading 0) or hex (0x). Anything else is left to ipaddress or treated as a name.
_INET_ATON_FORM = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$", re.I)

# Suffixes that never name a public site: RFC 6761/6762/8375, ICANN's withheld names, cloud and
# cluster conventions (metadata.google.internal, *.ec2.internal, kubernetes.default.svc).
INTERNAL_SUFFIXES = (
    "localhost",
    "localdomain",
    "local",  # mDNS; also *.cluster.local
    "internal",
    "intranet",
    "corp",
    "home",
    "lan",
    "home.arpa",
    "svc",
)

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_ULA = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _clean(host: str) -> str:
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.replace("%25", "%")  # a URL's zone id
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    if not host.isascii():
        try:  # what IDNA makes of it: full-width digits and dots become ASCII
            host = idna.uts46_remap(host, std3_rules=False, transitional=False)
        except (idna.IDNAError, UnicodeError, ValueError):
            pass
    return host.lower()


def ip_literal(host: str) -> IPAddress | None:
    """The address `host` spells, in any form a URL parser or resolver accepts; None for a name."""
    text = _clean(host or "")
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _INET_ATON_FORM.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(ip.packed[12:])
    return ip.sixtofour


def address_reason(ip: IPAddress | str) -> str | None:
    """Why the crawler must not connect to `ip` ("a loopback address", ...); None when it may."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip)
    inner = _embedded_ipv4(ip)
    if inner is not None:
        reason = address_reason(inner)
        if reason or ip.ipv4_mapped is not None:
            return reason
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "a shared (CGNAT) address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _ULA:
            return "a unique local IPv6 address"
        if ip.is_site_local:
            return "a site-local IPv6 address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a globally reachable address"
    return None


def internal_name_reason(host: str) -> str | None:
    """Why `host` names something inside a network rather than a public site; None otherwise."""
    name = _clean(host or "")
    if not name or ip_literal(name) is not None:
        return None
    for suffix in INTERNAL_SUFFIXES:
        if name == suffix or name.endswith("." + suffix):
            return f"{name} is an internal name (.{suffix})"
    if "." not in name:
        return f"{name} is a single-label name, not a public domain"
    return None


def host_reason(host: str) -> str | None:
    """Why a URL's host is refused before any name is resolved: an IP literal or an internal name."""
    ip = ip_literal(host)
    if ip is not None:
        written = _clean(host)
        shown = str(ip) if written == str(ip) else f"{written} ({ip})"
        reason = address_reason(ip)
        return f"{shown} is {reason}" if reason else f"{shown} is an IP address, not a domain name"
    return internal_name_reason(host)


class Refused(ValueError):
    """A destination the policy refuses; str() is the one-line reason."""


def resolve_checked(host: str, port: int, allow: bool = False, resolve: Any = None) -> list[IPAddress]:
    """The addresses to connect to for `host`:`port`, resolved once here and each checked.

    Refused: an IP literal or internal name (`host_reason`), or a name of which any address is
    refused (`address_reason`), unless `allow` (SCRAPERSKY_ALLOW_PRIVATE), which lifts both checks.
    A name that does not resolve raises `socket.gaierror`. `resolve` stands in for
    `socket.getaddrinfo` (tests)."""
    if not allow:
        reason = host_reason(host)
        if reason:
            raise Refused(reason)
    literal = ip_literal(host)
    if literal is not None:
        return [literal]
    name = _clean(host)
    infos = (resolve or socket.getaddrinfo)(name, port, 0, socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not allow:
            reason = address_reason(ip)
            if reason:
                raise Refused(f"{name} resolves to {ip}, {reason}")
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{name} has no address")
    return addresses


def allow_private(settings_or_env: Any = None) -> bool:
    """True when private targets are allowed: `SCRAPERSKY_ALLOW_PRIVATE` set to 1/true/yes/on.

    `settings_or_env`: Scrapy settings (the setting, or else the process environment, decides), a
    mapping taken as the environment, or None for the process environment."""
    if hasattr(settings_or_env, "getpriority"):  # Scrapy settings
        return _truthy(settings_or_env.get(ALLOW_PRIVATE)) or _truthy(os.environ.get(ALLOW_PRIVATE))
    if isinstance(settings_or_env, Mapping):
        return _truthy(settings_or_env.get(ALLOW_PRIVATE))
    return _truthy(os.environ.get(ALLOW_PRIVATE))


def _truthy(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in _TRUE
