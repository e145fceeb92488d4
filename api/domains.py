"""Turning what a user typed into the host the spider crawls.

`normalise_domain(" HTTPS://WWW.Example.COM./about?x=1 ")` -> "example.com". Rules:
scheme, user info, port 80/443, path, query and fragment are dropped; case is folded; one trailing
dot is removed; a leading `www.` is removed when what remains still has two labels; internationalised
names become punycode (IDNA 2008 with UTS #46 mapping). Anything that is not a public-looking DNS
name is rejected with a reason (`InvalidDomain.reason`): IP addresses (in any spelling), internal names
(`*.internal`, `*.local`, `*.localhost`, `*.svc`, ...: `pipelines.netpolicy`), single labels, bad
characters, labels over 63 characters, names over 253, other ports.
"""

from __future__ import annotations

import ipaddress
import re

import idna

from pipelines.netpolicy import host_reason

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
MAX_INPUT = 2048


class InvalidDomain(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalise_domain(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidDomain("a domain must be a string")
    text = value.strip()
    if not text:
        raise InvalidDomain("empty domain")
    if len(text) > MAX_INPUT:
        raise InvalidDomain(f"longer than {MAX_INPUT} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidDomain("contains control characters")
    m = _SCHEME.match(text)
    if m:
        scheme = m.group(0)[:-3].lower()
        if scheme not in ("http", "https"):
            raise InvalidDomain(f"unsupported scheme {scheme!r}: use a domain or an http(s) URL")
        text = text[m.end():]
    elif text.startswith("//"):
        text = text[2:]
    # authority ends at the first / ? or #
    host = re.split(r"[/?#\\]", text, maxsplit=1)[0]
    if "@" in host:
        host = host.rsplit("@", 1)[1]
    if host.startswith("["):
        raise InvalidDomain("IP addresses are not domains")
    if ":" in host:
        host, _, port = host.rpartition(":")
        if port and port not in ("80", "443"):
            raise InvalidDomain(f"port {port!r} is not supported: the crawler uses the standard ports")
    host = host.strip()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise InvalidDomain("no host name")
    if " " in host or "\t" in host:
        raise InvalidDomain("contains spaces")
    if _is_ip(host):
        raise InvalidDomain("IP addresses are not domains")
    if host.isascii():
        host = host.lower()
    else:
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise InvalidDomain(f"invalid internationalised name: {exc}") from None
    if len(host) > 253:
        raise InvalidDomain("longer than 253 characters")
    labels = host.split(".")
    if len(labels) < 2:
        raise InvalidDomain("needs at least two labels, like example.com")
    for label in labels:
        if not label:
            raise InvalidDomain("empty label (two dots in a row)")
        if not _LABEL.match(label):
            if len(label) > 63:
                raise InvalidDomain(f"label {label[:20]!r}... longer than 63 characters")
            raise InvalidDomain(f"label {label!r} has characters other than letters, digits and inner hyphens")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError, ValueError):
                raise InvalidDomain(f"label {label!r} is not valid punycode") from None
    if labels[-1].isdigit():
        raise InvalidDomain("the last label is numeric: IP addresses are not domains")
    internal = host_reason(host)  # the crawler's own policy: IP literals in any spelling, internal names
    if internal:
        raise InvalidDomain(internal)
    if labels[0] == "www" and len(labels) > 2:
        labels = labels[1:]
    return ".".join(labels)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
