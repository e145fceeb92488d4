"""parse_domain: what a user types, made into the host the crawler scans."""

from __future__ import annotations

import pytest

from scrapersky_crawler.domains import DomainError, parse_domain


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", ("example.com", None)),
        ("Example.COM.", ("example.com", None)),
        ("  example.com \n", ("example.com", None)),
        ("https://www.example.com/path?q", ("www.example.com", "https")),
        ("https://www.example.com/path?q=1#frag", ("www.example.com", "https")),
        ("HTTP://Example.com", ("example.com", "http")),
        ("http://example.com:8080/x", ("example.com:8080", "http")),
        ("example.com/some/path", ("example.com", None)),
        ("http://user:secret@example.com/", ("example.com", "http")),
        ("bücher.de", ("xn--bcher-kva.de", None)),
        ("BÜCHER.de", ("xn--bcher-kva.de", None)),
        ("https://bücher.de/straße", ("xn--bcher-kva.de", "https")),
        ("xn--bcher-kva.de", ("xn--bcher-kva.de", None)),
        ("127.0.0.1:8080", ("127.0.0.1:8080", None)),
        ("127.0.0.1", ("127.0.0.1", None)),
        ("localhost", ("localhost", None)),
        ("sub-domain.example.co.uk", ("sub-domain.example.co.uk", None)),
        ("a" * 63 + ".com", ("a" * 63 + ".com", None)),
        (".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]), (".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]), None)),
    ],
)
def test_valid_domains(text: str, expected: tuple[str, str | None]) -> None:
    assert parse_domain(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ftp://x",
        "ftp://example.com",
        "file:///etc/passwd",
        "a..b",
        "",
        "   ",
        None,
        "-bad-.com",
        "bad-.com",
        "-bad.com",
        "a" * 300,
        "a" * 300 + ".com",
        "a" * 64 + ".com",
        ".".join(["a" * 63] * 4) + ".com",  # 259 chars
        "exa mple.com",
        "exa_mple.com",
        "ex!.com",
        "https://",
        "http://",
        "//example.com",
        ".",
        "http://.",
        "example.com:99999",
        "example.com:abc",
        "javascript:alert(1)",
    ],
)
def test_invalid_domains_raise_with_a_reason(text) -> None:
    with pytest.raises(DomainError) as info:
        parse_domain(text)
    assert str(info.value).strip()
    assert isinstance(info.value, ValueError)


def test_reasons_name_the_problem() -> None:
    with pytest.raises(DomainError, match="ftp"):
        parse_domain("ftp://x")
    with pytest.raises(DomainError, match="empty"):
        parse_domain("")
    with pytest.raises(DomainError, match="-bad-.com"):
        parse_domain("-bad-.com")


@pytest.mark.parametrize("text", ["https:/example.com", "https//example.com"])
def test_scheme_typo_is_not_taken_as_the_host(text: str) -> None:
    try:
        host, _ = parse_domain(text)
    except DomainError:
        return
    assert host == "example.com"
