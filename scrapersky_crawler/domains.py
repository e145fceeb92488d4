"""What a user types as a domain, made into the host the crawler scans."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# `https:/x`, `mailto:x`, `https//x`: a scheme gone wrong (a digit after the colon is a port)
_SCHEME_TYPO = re.compile(r"^[a-z][a-z0-9+.-]*:(?!\d|//)|^https?//", re.I)
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class DomainError(ValueError):
    pass


def parse_domain(text: str) -> tuple[str, str | None]:
    """`Example.COM.`, `https://example.com/path`, `bücher.de`, `127.0.0.1:8080` → (host[:port], scheme).

    The scheme is None for a bare host (the spider tries https, then http). Hosts are lowercased,
    lose a trailing dot, and IDNs become punycode. Raises DomainError with a reason when invalid.
    """
    text = (text or "").strip()
    if not text:
        raise DomainError("empty")
    scheme = None
    if _SCHEME_TYPO.match(text) and "://" not in text:
        raise DomainError(f"malformed URL {text!r}: write https://host or just the host")
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise DomainError(f"scheme {scheme!r} is not http or https")
    try:
        parts = urlsplit(text if scheme else "//" + text)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError as exc:
        raise DomainError(str(exc)) from None
    if not host:
        raise DomainError("no host name")
    if any(not label for label in host.split(".")):
        raise DomainError(f"{host!r} has an empty label (two dots in a row?)")
    if len(host) > 253:
        raise DomainError(f"host name longer than 253 characters ({len(host)})")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise DomainError("not a valid international domain name") from None
    if len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
        raise DomainError(f"{host!r} is not a valid host name")
    return (f"{host}:{port}" if port else host), scheme
